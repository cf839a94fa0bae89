//! Receipts by id: what follows one stanza to where it ends up safe
//! (acknowledged by the client it went to, written to one that does not
//! acknowledge, or stored), so that the server acknowledges its sender's
//! copy only then (XEP-0198).
//!
//! A [`Receipt`] names its stanza by a [`ReceiptId`] and settles through
//! the table that issued it ([`Receipts`]): the copies of a stanza (every
//! resource it went to, the queues it passes through) share one receipt,
//! [`Receipt::done`] on any copy settles it `true`, and when the last copy
//! goes without that (dropped, bounced, lost with its session) it settles
//! `false`. Only the id needs to travel: a receipt that crosses to
//! another node is settled back by its id ([`super::Routes::settle`]).
//!
//! The table holds one entry per stanza being followed; each such stanza
//! sits in a bounded queue, among a session's unacknowledged stanzas
//! (bounded too) or in an offline write, so the table is bounded by them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::lock;

/// Names one followed stanza, unique in the table that issued it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReceiptId(pub u64);

/// Resolves when a receipt is settled: `true` once the stanza is safe.
pub type Settled = tokio::sync::oneshot::Receiver<bool>;

/// The waiters of one shard, by id.
type Waiters = HashMap<u64, tokio::sync::oneshot::Sender<bool>>;

/// The receipts being waited for, by id.
#[derive(Debug)]
pub struct Receipts {
    next: AtomicU64,
    shards: Box<[Mutex<Waiters>]>,
}

/// Shards of the table: it is touched once per followed stanza each way.
const SHARDS: usize = 16;

impl Default for Receipts {
    fn default() -> Self {
        Self {
            next: AtomicU64::new(1),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl Receipts {
    /// A new receipt, and what resolves when it is settled.
    pub fn issue(self: &Arc<Self>) -> (Receipt, Settled) {
        let id = ReceiptId(self.next.fetch_add(1, Ordering::Relaxed));
        let (sender, settled) = tokio::sync::oneshot::channel();
        self.shard(id).insert(id.0, sender);
        let token = Token {
            id,
            table: Arc::clone(self),
            settled: AtomicBool::new(false),
        };
        (Receipt(Arc::new(token)), settled)
    }

    /// Settles a receipt; later settlements of the same id do nothing.
    pub fn settle(&self, id: ReceiptId, safe: bool) {
        let waiter = self.shard(id).remove(&id.0);
        if let Some(waiter) = waiter {
            let _ = waiter.send(safe);
        }
    }

    /// How many receipts wait to be settled.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, id: ReceiptId) -> std::sync::MutexGuard<'_, Waiters> {
        lock(&self.shards[(id.0 as usize) % SHARDS])
    }
}

/// Follows one stanza to where it ends up safe; clones are copies of the
/// same receipt.
#[derive(Clone, Debug)]
pub struct Receipt(Arc<Token>);

#[derive(Debug)]
struct Token {
    id: ReceiptId,
    table: Arc<Receipts>,
    settled: AtomicBool,
}

impl Receipt {
    /// Which stanza it follows.
    pub fn id(&self) -> ReceiptId {
        self.0.id
    }

    /// The stanza is safe: acknowledged, written, or stored.
    pub fn done(&self) {
        if !self.0.settled.swap(true, Ordering::AcqRel) {
            self.0.table.settle(self.0.id, true);
        }
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        if !self.settled.swap(true, Ordering::AcqRel) {
            self.table.settle(self.id, false);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn a_receipt_says_done_once_or_not_done_when_every_copy_is_gone() {
        let table = Arc::new(Receipts::default());
        let (receipt, settled) = table.issue();
        let copy = receipt.clone();
        drop(receipt);
        copy.done();
        copy.done();
        drop(copy);
        assert!(settled.await.unwrap());
        let (receipt, settled) = table.issue();
        let copy = receipt.clone();
        drop(receipt);
        drop(copy);
        assert!(!settled.await.unwrap());
        assert!(table.is_empty(), "a settled receipt leaves the table");
    }

    #[tokio::test]
    async fn a_receipt_settles_by_its_id_once() {
        let table = Arc::new(Receipts::default());
        let (receipt, settled) = table.issue();
        let (other, other_settled) = table.issue();
        assert_ne!(receipt.id(), other.id());
        // Settled from elsewhere (a receipt that crossed to another node).
        table.settle(receipt.id(), true);
        assert!(settled.await.unwrap());
        // The local copies settle nothing more.
        drop(receipt);
        table.settle(other.id(), false);
        table.settle(other.id(), true);
        assert!(!other_settled.await.unwrap());
        assert!(table.is_empty());
    }
}
