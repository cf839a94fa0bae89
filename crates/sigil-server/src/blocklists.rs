//! The XEP-0191 blocklists in memory (the feature is `blocking`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use jid::{BareJid, Jid};

use crate::router::lock;

/// Blocklists in memory, loaded from the store on first use and replaced
/// when the user changes them, so routing does not query the store per
/// stanza. Only the lists of accounts with a session are kept, and an
/// account's list goes when its last session ends; `MAX_CACHED` (50,000)
/// accounts at most, past which one is let go for each new one.
#[derive(Debug, Default)]
pub struct Blocklists {
    lists: Mutex<HashMap<BareJid, Arc<Vec<Jid>>>>,
    /// Bumped by every [`Self::forget`]: a list read before it is not
    /// kept after it.
    generation: AtomicU64,
}

/// The most accounts whose lists are kept in memory.
pub(crate) const MAX_CACHED: usize = 50_000;

impl Blocklists {
    pub(crate) fn cached(&self, owner: &BareJid) -> Option<Arc<Vec<Jid>>> {
        lock(&self.lists).get(owner).cloned()
    }

    /// Where changes stand, before a list is read from the store.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps a list read from the store when `generation` was current,
    /// unless the list was changed or forgotten since.
    pub(crate) fn put(&self, owner: &BareJid, list: Vec<Jid>, generation: u64) -> Arc<Vec<Jid>> {
        let list = Arc::new(list);
        let mut lists = lock(&self.lists);
        if self.generation.load(Ordering::Acquire) != generation {
            return list;
        }
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
        let mut lists = lock(&self.lists);
        self.generation.fetch_add(1, Ordering::AcqRel);
        lists.remove(owner);
    }

    /// Forgets every list (changes may have been missed).
    pub(crate) fn clear(&self) {
        let mut lists = lock(&self.lists);
        self.generation.fetch_add(1, Ordering::AcqRel);
        *lists = HashMap::new();
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
            lists.put(&owner, Vec::new(), lists.generation());
        }
        assert_eq!(lock(&lists.lists).len(), MAX_CACHED);
        let last = BareJid::new(&format!("u{}@example.org", MAX_CACHED + 9)).unwrap();
        assert!(lists.cached(&last).is_some(), "the newest list is kept");
        lists.forget(&last);
        assert!(lists.cached(&last).is_none());
    }

    #[test]
    fn a_list_read_before_a_change_is_not_kept() {
        let lists = Blocklists::default();
        let owner = BareJid::new("juliet@example.org").unwrap();
        let before = lists.generation();
        // The user changes the list while the old one is being read.
        lists.forget(&owner);
        lists.put(&owner, Vec::new(), before);
        assert!(lists.cached(&owner).is_none());
        lists.put(&owner, Vec::new(), lists.generation());
        assert!(lists.cached(&owner).is_some());
    }
}
