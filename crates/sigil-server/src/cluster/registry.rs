//! Writing this node's sessions into the registry bucket.
//!
//! A session that binds, changes its presence or flags, or ends marks its
//! full JID dirty; one task writes what the session is *now* (so changes
//! that come quickly cost one write) with compare-and-set on the record's
//! revision:
//!
//! - a new session claims its key: created if free, else overwritten at
//!   the revision read, so the newest claim wins and the node whose record
//!   it replaced ends its session (`conflict`, RFC 6120 §7.7.2.2) when
//!   its watch shows the newer record;
//! - a change updates the node's own revision; if that fails, the key is
//!   another node's now (this session ends) or was purged while this
//!   node was taken for dead (it is claimed again);
//! - an ended session deletes its record only at its own revision, never
//!   a newer session's.
//!
//! Records expire from the bucket ([`MAX_AGE`]), so that those of a node
//! nobody purged, and the markers deleted records leave, go; each live
//! record is written again well before that ([`REFRESH`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::{self, Operation, UpdateErrorKind};
use futures_util::StreamExt as _;
use jid::FullJid;
use sigil_proto::error::{StreamCondition, StreamError};

use super::directory::{Record, key};
use crate::router::{Router, lock};

/// How long a record stays in the bucket unless written again.
pub(super) const MAX_AGE: Duration = Duration::from_secs(3600);

/// How often a live session's record is written again.
const REFRESH: Duration = Duration::from_secs(1800);

/// Records written at once.
const CONCURRENT_WRITES: usize = 64;

/// Now, in Unix microseconds.
fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX)
        })
}

/// This node's record of one of its sessions.
#[derive(Clone, Copy, Debug)]
pub(super) struct Owned {
    /// The session's number.
    pub(super) serial: u64,
    /// The revision of its record.
    pub(super) revision: u64,
    /// When it was written.
    written: Instant,
}

/// This node's side of the registry.
#[derive(Debug)]
pub(super) struct Registry {
    pub(super) bucket: kv::Store,
    node: Arc<str>,
    run: u64,
    local: Arc<Router>,
    /// Full JIDs whose records are to be written (or deleted); at most
    /// one per session of this node, and one per session that ended
    /// since the last pass.
    dirty: Mutex<HashSet<FullJid>>,
    wake: tokio::sync::Notify,
    /// The records this node wrote and that are still its own.
    owned: Mutex<HashMap<FullJid, Owned>>,
    /// When this node's sessions bound (Unix microseconds), by full JID,
    /// with their numbers.
    bound: Mutex<HashMap<FullJid, (u64, i64)>>,
}

impl Registry {
    pub(super) fn new(bucket: kv::Store, node: Arc<str>, run: u64, local: Arc<Router>) -> Self {
        Self {
            bucket,
            node,
            run,
            local,
            dirty: Mutex::default(),
            wake: tokio::sync::Notify::new(),
            owned: Mutex::default(),
            bound: Mutex::default(),
        }
    }

    /// A session of this node bound now.
    pub(super) fn bound(&self, jid: &FullJid, serial: u64) {
        lock(&self.bound).insert(jid.clone(), (serial, now_micros()));
        self.mark(jid);
    }

    /// When this node's session `serial` of `jid` bound.
    pub(super) fn bound_at(&self, jid: &FullJid, serial: u64) -> Option<i64> {
        lock(&self.bound)
            .get(jid)
            .filter(|(s, _)| *s == serial)
            .map(|(_, at)| *at)
    }

    /// The session of `jid` changed (bound, presence, flags, ended).
    pub(super) fn mark(&self, jid: &FullJid) {
        lock(&self.dirty).insert(jid.clone());
        self.wake.notify_one();
    }

    /// Every session of this node is to be claimed again (the registry
    /// was lost, or this node was taken for dead).
    pub(super) fn reclaim_all(&self) {
        lock(&self.owned).clear();
        let mut dirty = lock(&self.dirty);
        for handle in self.local.all() {
            dirty.insert(handle.jid.clone());
        }
        drop(dirty);
        self.wake.notify_one();
    }

    /// This node's sessions whose records are not among `present` claim
    /// them again (the registry was read from scratch).
    pub(super) fn reclaim_missing(&self, present: &HashSet<FullJid>) {
        let missing: Vec<FullJid> = self
            .local
            .all()
            .into_iter()
            .map(|handle| handle.jid.clone())
            .filter(|jid| !present.contains(jid))
            .collect();
        if missing.is_empty() {
            return;
        }
        let mut owned = lock(&self.owned);
        for jid in &missing {
            owned.remove(jid);
        }
        drop(owned);
        lock(&self.dirty).extend(missing);
        self.wake.notify_one();
    }

    /// Writes what is dirty now (at shutdown, once sessions ended).
    pub(super) async fn flush(self: &Arc<Self>) {
        let batch: Vec<FullJid> = lock(&self.dirty).drain().collect();
        futures_util::stream::iter(batch)
            .for_each_concurrent(CONCURRENT_WRITES, |jid| async move {
                let _ = self.write(&jid).await;
            })
            .await;
    }

    /// This node's record of `jid`, if it still owns it.
    pub(super) fn owned(&self, jid: &FullJid) -> Option<Owned> {
        lock(&self.owned).get(jid).copied()
    }

    /// Writes what is dirty, for ever.
    pub(super) async fn run(self: Arc<Self>) {
        loop {
            let _ = tokio::time::timeout(Duration::from_secs(1), self.wake.notified()).await;
            self.refresh_due();
            let batch: Vec<FullJid> = lock(&self.dirty).drain().collect();
            futures_util::stream::iter(batch)
                .for_each_concurrent(CONCURRENT_WRITES, |jid| {
                    let this = self.clone();
                    async move {
                        if !this.write(&jid).await {
                            // NATS is away: again on the next pass.
                            lock(&this.dirty).insert(jid);
                        }
                    }
                })
                .await;
        }
    }

    /// Marks the records due to be written again.
    fn refresh_due(&self) {
        let due: Vec<FullJid> = lock(&self.owned)
            .iter()
            .filter(|(_, owned)| owned.written.elapsed() > REFRESH)
            .map(|(jid, _)| jid.clone())
            .take(10_000)
            .collect();
        if !due.is_empty() {
            lock(&self.dirty).extend(due);
        }
    }

    /// Writes the record of `jid` as its session is now; `false` when
    /// NATS could not be reached.
    async fn write(&self, jid: &FullJid) -> bool {
        let key = key(jid);
        let handle = self.local.session(jid).filter(|h| h.end_error().is_none());
        let Some(handle) = handle else {
            // Ended: its bind time goes, unless a newer session of the
            // same full JID bound meanwhile.
            {
                let mut bound = lock(&self.bound);
                let current = self.local.session(jid).map(|h| h.serial);
                if bound
                    .get(jid)
                    .is_some_and(|(serial, _)| Some(*serial) != current)
                {
                    bound.remove(jid);
                }
            }
            // Its record goes, at its own revision only.
            let owned = lock(&self.owned).remove(jid);
            let revision = match owned {
                Some(owned) => owned.revision,
                // Not known as this node's (claimed again meanwhile): the
                // record goes if this run wrote it.
                None => match self.bucket.entry(key.as_str()).await {
                    Ok(Some(entry)) if entry.operation == Operation::Put => {
                        let ours = serde_json::from_slice::<Record>(&entry.value)
                            .is_ok_and(|r| *r.node == *self.node && r.run == self.run);
                        if !ours || self.local.session(jid).is_some() {
                            return true;
                        }
                        entry.revision
                    }
                    Ok(_) => return true,
                    Err(_) => return false,
                },
            };
            return match self
                .bucket
                .delete_expect_revision(&key, Some(revision))
                .await
            {
                // Gone, or another session's now: done either way.
                Ok(()) => true,
                Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => true,
                Err(_) => {
                    if let Some(owned) = owned {
                        lock(&self.owned).insert(jid.clone(), owned);
                    }
                    false
                }
            };
        };
        let Some(bound) = self.bound_at(jid, handle.serial) else {
            // Bound and replaced before it was written: the newer one
            // is marked too.
            return true;
        };
        let record = Record::of(&handle.entry(), &self.node, self.run, bound);
        let Ok(value) = serde_json::to_vec(&record) else {
            return true;
        };
        let value = bytes::Bytes::from(value);
        let owned = self.owned(jid).filter(|o| o.serial == handle.serial);
        if let Some(owned) = owned {
            match self
                .bucket
                .update(&key, value.clone(), owned.revision)
                .await
            {
                Ok(revision) => {
                    self.own(jid, handle.serial, revision);
                    return true;
                }
                Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => {}
                Err(_) => return false,
            }
        }
        // A claim: the key is free, deleted, or another session's.
        for _ in 0..8 {
            let Ok(current) = self.bucket.entry(key.as_str()).await else {
                return false;
            };
            let written = match current {
                Some(entry) if entry.operation == Operation::Put => {
                    let theirs: Option<Record> = serde_json::from_slice(&entry.value).ok();
                    let ours = theirs.as_ref().is_some_and(|r| {
                        *r.node == *self.node && r.run == self.run && r.serial == handle.serial
                    });
                    // Another session's: the one that bound last keeps
                    // the full JID (ties go by node name).
                    if !ours
                        && let Some(theirs) = &theirs
                        && (theirs.bound, theirs.node.as_str()) > (bound, &*self.node)
                    {
                        lock(&self.owned).remove(jid);
                        handle.end(StreamError::with_text(
                            StreamCondition::Conflict,
                            "replaced by a new connection",
                        ));
                        return true;
                    }
                    self.bucket
                        .update(&key, value.clone(), entry.revision)
                        .await
                }
                Some(entry) => {
                    self.bucket
                        .update(&key, value.clone(), entry.revision)
                        .await
                }
                None => self.bucket.update(&key, value.clone(), 0).await,
            };
            match written {
                Ok(revision) => {
                    self.own(jid, handle.serial, revision);
                    return true;
                }
                Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => continue,
                Err(_) => return false,
            }
        }
        tracing::warn!(jid = %jid, "cluster: could not claim the session's registry record");
        false
    }

    fn own(&self, jid: &FullJid, serial: u64, revision: u64) {
        lock(&self.owned).insert(
            jid.clone(),
            Owned {
                serial,
                revision,
                written: Instant::now(),
            },
        );
    }

    /// Forgets a record that is no longer this node's.
    pub(super) fn disown(&self, jid: &FullJid) {
        lock(&self.owned).remove(jid);
    }
}
