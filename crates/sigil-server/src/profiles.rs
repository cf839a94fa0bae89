//! What the server keeps in memory of the accounts with a session for
//! the features `vcard` and `last`: the XEP-0153 hash of the avatar in
//! the account's vCard (so that presence is amended without a store read),
//! and the status of its last unavailable presence (recorded as its last
//! activity when its last session ends).
//!
//! Per account, not per session, and only for accounts with a session:
//! an account's entry goes when its last session ends. `MAX_CACHED`
//! (50,000) accounts at most, past which one is let go for each new one
//! (its avatar is read again when needed; a status let go is only missing
//! from the last activity).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use jid::BareJid;

use crate::router::lock;

/// A SHA-1 digest: the XEP-0153 hash of an avatar.
pub type AvatarHash = [u8; 20];

/// The accounts' entries.
#[derive(Debug, Default)]
pub struct Profiles {
    entries: Mutex<HashMap<BareJid, Profile>>,
    /// Bumped by every change of an avatar: a hash read from the store
    /// before it is not kept after it.
    generation: AtomicU64,
}

#[derive(Clone, Debug, Default)]
struct Profile {
    /// The avatar hash, once known (`Some(None)`: no avatar).
    avatar: Option<Option<AvatarHash>>,
    /// The status of the last unavailable presence, while the account has
    /// not been available since.
    status: Option<Box<str>>,
}

/// The most accounts kept in memory.
pub(crate) const MAX_CACHED: usize = 50_000;

impl Profiles {
    /// The avatar hash of `owner`, if known (`Some(None)`: no avatar).
    pub(crate) fn avatar(&self, owner: &BareJid) -> Option<Option<AvatarHash>> {
        lock(&self.entries).get(owner).and_then(|p| p.avatar)
    }

    /// Where avatar changes stand, before a vCard is read from the store.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps an avatar hash read from the store when `generation` was
    /// current, unless the avatar changed since.
    pub(crate) fn put_avatar(&self, owner: &BareJid, avatar: Option<AvatarHash>, generation: u64) {
        let mut entries = lock(&self.entries);
        if self.generation.load(Ordering::Acquire) == generation {
            make_room(&mut entries, owner).avatar = Some(avatar);
        }
    }

    /// The avatar of `owner` changed (its vCard was written).
    pub(crate) fn set_avatar(&self, owner: &BareJid, avatar: Option<AvatarHash>) {
        let mut entries = lock(&self.entries);
        self.generation.fetch_add(1, Ordering::AcqRel);
        make_room(&mut entries, owner).avatar = Some(avatar);
    }

    /// Notes the status of an unavailable presence of `owner` (`None`:
    /// the account is available again, or left without a status).
    pub(crate) fn set_status(&self, owner: &BareJid, status: Option<String>) {
        let mut entries = lock(&self.entries);
        match status {
            Some(status) => make_room(&mut entries, owner).status = Some(status.into()),
            None => {
                if let Some(entry) = entries.get_mut(owner) {
                    entry.status = None;
                }
            }
        }
    }

    /// The last session of `owner` ended: its avatar hash goes.
    pub(crate) fn forget_avatar(&self, owner: &BareJid) {
        let mut entries = lock(&self.entries);
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(entry) = entries.get_mut(owner) {
            entry.avatar = None;
        }
        tidy(&mut entries, owner);
    }

    /// Forgets every avatar hash (changes may have been missed).
    pub(crate) fn forget_avatars(&self) {
        let mut entries = lock(&self.entries);
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.retain(|_, profile| {
            profile.avatar = None;
            profile.status.is_some()
        });
    }

    /// The last session of `owner` ended: the status it left with goes,
    /// returned.
    pub(crate) fn take_status(&self, owner: &BareJid) -> Option<String> {
        let mut entries = lock(&self.entries);
        let status = entries.get_mut(owner).and_then(|p| p.status.take());
        tidy(&mut entries, owner);
        status.map(String::from)
    }

    /// How many accounts have an entry.
    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    /// Whether none has.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drops the entry of `owner` once it holds nothing.
fn tidy(entries: &mut HashMap<BareJid, Profile>, owner: &BareJid) {
    if entries
        .get(owner)
        .is_some_and(|p| p.avatar.is_none() && p.status.is_none())
    {
        entries.remove(owner);
    }
    if entries.is_empty() && entries.capacity() > 64 {
        entries.shrink_to_fit();
    }
}

/// The entry of `owner`, made (letting another go past the cap) if needed.
fn make_room<'a>(entries: &'a mut HashMap<BareJid, Profile>, owner: &BareJid) -> &'a mut Profile {
    if entries.len() >= MAX_CACHED
        && !entries.contains_key(owner)
        && let Some(other) = entries.keys().next().cloned()
    {
        entries.remove(&other);
    }
    entries.entry(owner.clone()).or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn at_most_the_cap_is_kept_and_the_last_session_takes_the_entry() {
        let profiles = Profiles::default();
        for n in 0..MAX_CACHED + 10 {
            let owner = BareJid::new(&format!("u{n}@example.org")).unwrap();
            profiles.set_avatar(&owner, None);
        }
        assert_eq!(profiles.len(), MAX_CACHED);
        let last = BareJid::new(&format!("u{}@example.org", MAX_CACHED + 9)).unwrap();
        assert_eq!(profiles.avatar(&last), Some(None));
        profiles.set_status(&last, Some("away".into()));
        profiles.forget_avatar(&last);
        assert_eq!(profiles.avatar(&last), None);
        assert_eq!(profiles.len(), MAX_CACHED);
        assert_eq!(profiles.take_status(&last).as_deref(), Some("away"));
        assert_eq!(profiles.take_status(&last), None);
        assert_eq!(profiles.len(), MAX_CACHED - 1);
    }

    #[test]
    fn a_hash_read_before_a_change_is_not_kept() {
        let profiles = Profiles::default();
        let owner = BareJid::new("juliet@example.org").unwrap();
        let before = profiles.generation();
        profiles.set_avatar(&owner, Some([1; 20]));
        profiles.put_avatar(&owner, None, before);
        assert_eq!(profiles.avatar(&owner), Some(Some([1; 20])));
        profiles.set_status(&owner, Some("gone".into()));
        profiles.set_status(&owner, None);
        assert_eq!(profiles.take_status(&owner), None);
        profiles.forget_avatar(&owner);
        assert!(profiles.is_empty());
    }
}
