//! The session registry's records, and this node's copy of the other
//! nodes' sessions.
//!
//! Every bound session has one record in the registry bucket, under its
//! full JID: the node it lives on, its number there, and what the
//! presence directory says of it (presence, roster and carbons flags,
//! certificate). Each node watches the bucket and keeps the records of
//! the other nodes' sessions here, by account, so that
//! [`Routes::sessions`](crate::router::Routes::sessions) answers without
//! waiting on the network.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jid::{BareJid, FullJid};
use serde::{Deserialize, Serialize};
use sigil_xml::Element;

use crate::router::{Entry, Presence, SessionId, lock};

/// A session's record in the registry bucket.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub(super) struct Record {
    /// The node it lives on.
    pub(super) node: String,
    /// That node's run (a node that restarts starts a new one).
    pub(super) run: u64,
    /// Its number on that node.
    pub(super) serial: u64,
    /// When it bound, in Unix microseconds: of two sessions with one full
    /// JID, the one that bound last wins.
    #[serde(default)]
    pub(super) bound: i64,
    /// Its available presence, serialised, with its priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) presence: Option<(i8, String)>,
    /// Its client asked for the roster.
    #[serde(default)]
    pub(super) roster: bool,
    /// Its client enabled carbons.
    #[serde(default)]
    pub(super) carbons: bool,
    /// SHA-256 of its certificate, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) certificate: Option<String>,
}

impl Record {
    /// The record of `entry`, a session of `node`'s run `run` that bound
    /// at `bound`.
    pub(super) fn of(entry: &Entry, node: &str, run: u64, bound: i64) -> Self {
        Self {
            node: node.to_owned(),
            run,
            serial: entry.id.serial,
            bound,
            presence: entry
                .presence
                .as_ref()
                .map(|p| (p.priority, p.stanza.to_xml())),
            roster: entry.roster_requested,
            carbons: entry.carbons,
            certificate: entry.fingerprint.map(|f| hex(&f)),
        }
    }

    /// What the directory says of the session `jid` this record names;
    /// `None` if the record is malformed.
    pub(super) fn entry(&self, jid: FullJid) -> Option<Entry> {
        let presence = match &self.presence {
            Some((priority, stanza)) => Some(Presence {
                priority: *priority,
                stanza: Arc::new(Element::parse(stanza).ok()?),
            }),
            None => None,
        };
        let fingerprint = match &self.certificate {
            Some(text) => Some(unhex(text)?),
            None => None,
        };
        Some(Entry {
            id: SessionId {
                jid,
                serial: self.serial,
            },
            presence,
            roster_requested: self.roster,
            carbons: self.carbons,
            fingerprint,
        })
    }
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The registry key of a full JID: its UTF-8 in unpadded base64url, which
/// NATS keys allow whatever the JID holds.
pub(super) fn key(jid: &FullJid) -> String {
    URL_SAFE_NO_PAD.encode(jid.as_str())
}

/// The full JID a registry key names.
pub(super) fn jid_of(key: &str) -> Option<FullJid> {
    let bytes = URL_SAFE_NO_PAD.decode(key).ok()?;
    FullJid::new(std::str::from_utf8(&bytes).ok()?).ok()
}

/// One session of another node, as this node knows it.
#[derive(Clone, Debug)]
pub(super) struct Remote {
    /// What the directory says of it.
    pub(super) entry: Entry,
    /// Its node.
    pub(super) node: Arc<str>,
    /// The registry revision of its record.
    pub(super) revision: u64,
}

type Shard = HashMap<BareJid, Vec<Remote>>;

/// The other nodes' sessions, by account.
#[derive(Debug)]
pub(super) struct Directory {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

const SHARDS: usize = 64;

impl Default for Directory {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl Directory {
    fn shard(&self, bare: &BareJid) -> std::sync::MutexGuard<'_, Shard> {
        lock(&self.shards[(self.hasher.hash_one(bare) as usize) % SHARDS])
    }

    /// Adds or replaces the session of `remote`'s full JID.
    pub(super) fn put(&self, remote: Remote) {
        let bare = remote.entry.id.jid.to_bare();
        let mut shard = self.shard(&bare);
        let sessions = shard.entry(bare).or_default();
        sessions.retain(|s| s.entry.id.jid != remote.entry.id.jid);
        sessions.push(remote);
    }

    /// Forgets the session of `jid`; what was known of it.
    pub(super) fn remove(&self, jid: &FullJid) -> Option<Remote> {
        let bare = jid.to_bare();
        let mut shard = self.shard(&bare);
        let sessions = shard.get_mut(&bare)?;
        let index = sessions.iter().position(|s| s.entry.id.jid == *jid)?;
        let removed = sessions.swap_remove(index);
        if sessions.is_empty() {
            shard.remove(&bare);
        }
        Some(removed)
    }

    /// The session of `jid` elsewhere, if known.
    pub(super) fn get(&self, jid: &FullJid) -> Option<Remote> {
        let bare = jid.to_bare();
        self.shard(&bare)
            .get(&bare)?
            .iter()
            .find(|s| s.entry.id.jid == *jid)
            .cloned()
    }

    /// The sessions of `account` elsewhere.
    pub(super) fn sessions(&self, account: &BareJid) -> Vec<Remote> {
        self.shard(account)
            .get(account)
            .cloned()
            .unwrap_or_default()
    }

    /// Forgets every session of `node` (or, with `None`, every session);
    /// returns them.
    pub(super) fn remove_node(&self, node: Option<&str>) -> Vec<Remote> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut shard = lock(shard);
            shard.retain(|_, sessions| {
                let (gone, kept): (Vec<Remote>, Vec<Remote>) = std::mem::take(sessions)
                    .into_iter()
                    .partition(|s| node.is_none_or(|node| &*s.node == node));
                out.extend(gone);
                *sessions = kept;
                !sessions.is_empty()
            });
        }
        out
    }

    /// Forgets the sessions whose full JIDs are not in `kept` (the
    /// registry was read again from scratch).
    pub(super) fn retain(&self, kept: &std::collections::HashSet<FullJid>) {
        for shard in &self.shards {
            lock(shard).retain(|_, sessions| {
                sessions.retain(|s| kept.contains(&s.entry.id.jid));
                !sessions.is_empty()
            });
        }
    }

    /// How many sessions each node has, as known here.
    pub(super) fn counts(&self) -> HashMap<Arc<str>, usize> {
        let mut counts = HashMap::new();
        for shard in &self.shards {
            for sessions in lock(shard).values() {
                for session in sessions {
                    *counts.entry(session.node.clone()).or_default() += 1;
                }
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn keys_name_any_jid_and_back() {
        for jid in [
            "a@b/c",
            "ünïcode@例え.jp/ресурс with spaces/and/slashes",
            "x@y/.",
        ] {
            let jid = FullJid::new(jid).unwrap();
            let key = key(&jid);
            assert!(
                key.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{key}"
            );
            assert_eq!(jid_of(&key), Some(jid));
        }
        assert_eq!(jid_of("!!"), None);
    }

    #[test]
    fn records_carry_the_directory_entry() {
        let jid = FullJid::new("a@b/c").unwrap();
        let entry = Entry {
            id: SessionId {
                jid: jid.clone(),
                serial: 42,
            },
            presence: Some(Presence {
                priority: -3,
                stanza: Arc::new(
                    Element::parse("<presence xmlns='jabber:client'><show>away</show></presence>")
                        .unwrap(),
                ),
            }),
            roster_requested: true,
            carbons: false,
            fingerprint: Some([0xab; 32]),
        };
        let record = Record::of(&entry, "n1", 9, 1_700_000_000_000_000);
        let text = serde_json::to_vec(&record).unwrap();
        let back: Record = serde_json::from_slice(&text).unwrap();
        assert_eq!(back, record);
        let again = back.entry(jid).unwrap();
        assert_eq!(again.id, entry.id);
        assert_eq!(again.fingerprint, entry.fingerprint);
        assert_eq!(again.presence.unwrap().priority, -3);
        assert!(again.roster_requested && !again.carbons);
    }

    #[test]
    fn the_directory_keeps_one_session_per_full_jid() {
        let directory = Directory::default();
        let remote = |resource: &str, serial, node: &str| Remote {
            entry: Record {
                node: node.into(),
                run: 1,
                serial,
                bound: 0,
                presence: None,
                roster: false,
                carbons: false,
                certificate: None,
            }
            .entry(FullJid::new(&format!("a@b/{resource}")).unwrap())
            .unwrap(),
            node: node.into(),
            revision: serial,
        };
        directory.put(remote("one", 1, "n1"));
        directory.put(remote("one", 2, "n2"));
        directory.put(remote("two", 3, "n1"));
        let account = BareJid::new("a@b").unwrap();
        assert_eq!(directory.sessions(&account).len(), 2);
        let one = FullJid::new("a@b/one").unwrap();
        assert_eq!(&*directory.get(&one).unwrap().node, "n2");
        assert_eq!(directory.remove_node(Some("n1")).len(), 1);
        assert_eq!(directory.sessions(&account).len(), 1);
        assert!(directory.remove(&one).is_some());
        assert!(directory.sessions(&account).is_empty());
        assert!(directory.counts().is_empty());
    }
}
