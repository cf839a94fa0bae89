//! The XEP-0191 blocklists in memory (the feature is `blocking`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jid::{BareJid, Jid};

use crate::router::lock;

/// Blocklists in memory, loaded from the store on first use and replaced
/// when the user changes them, so routing does not query the store per
/// stanza.
#[derive(Debug, Default)]
pub struct Blocklists {
    lists: Mutex<HashMap<BareJid, Arc<Vec<Jid>>>>,
}

impl Blocklists {
    pub(crate) fn cached(&self, owner: &BareJid) -> Option<Arc<Vec<Jid>>> {
        lock(&self.lists).get(owner).cloned()
    }

    pub(crate) fn put(&self, owner: &BareJid, list: Vec<Jid>) -> Arc<Vec<Jid>> {
        let list = Arc::new(list);
        lock(&self.lists).insert(owner.clone(), list.clone());
        list
    }

    pub(crate) fn forget(&self, owner: &BareJid) {
        lock(&self.lists).remove(owner);
    }
}
