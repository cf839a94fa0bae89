//! The XEP-0191 blocklists in memory (the feature is `blocking`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jid::{BareJid, Jid};

use crate::router::lock;

/// Blocklists in memory, loaded from the store on first use and replaced
/// when the user changes them, so routing does not query the store per
/// stanza. An account's list goes when its last session ends; lists read
/// for accounts with no session (a message to someone offline) are kept
/// up to `MAX_CACHED` (50,000) accounts, past which one is let go for each new
/// one.
#[derive(Debug, Default)]
pub struct Blocklists {
    lists: Mutex<HashMap<BareJid, Arc<Vec<Jid>>>>,
}

/// The most accounts whose lists are kept in memory.
pub(crate) const MAX_CACHED: usize = 50_000;

impl Blocklists {
    pub(crate) fn cached(&self, owner: &BareJid) -> Option<Arc<Vec<Jid>>> {
        lock(&self.lists).get(owner).cloned()
    }

    pub(crate) fn put(&self, owner: &BareJid, list: Vec<Jid>) -> Arc<Vec<Jid>> {
        let list = Arc::new(list);
        let mut lists = lock(&self.lists);
        if lists.len() >= MAX_CACHED
            && !lists.contains_key(owner)
            && let Some(other) = lists.keys().next().cloned()
        {
            lists.remove(&other);
        }
        lists.insert(owner.clone(), list.clone());
        list
    }

    /// How many accounts' lists are in memory.
    pub fn len(&self) -> usize {
        lock(&self.lists).len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn forget(&self, owner: &BareJid) {
        lock(&self.lists).remove(owner);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_cache_keeps_at_most_its_cap() {
        let lists = Blocklists::default();
        for n in 0..MAX_CACHED + 10 {
            let owner = BareJid::new(&format!("u{n}@example.org")).unwrap();
            lists.put(&owner, Vec::new());
        }
        assert_eq!(lock(&lists.lists).len(), MAX_CACHED);
        let last = BareJid::new(&format!("u{}@example.org", MAX_CACHED + 9)).unwrap();
        assert!(lists.cached(&last).is_some(), "the newest list is kept");
        lists.forget(&last);
        assert!(lists.cached(&last).is_none());
    }
}
