//! The followed stanzas this node sent to sessions on other nodes.
//!
//! A stanza followed by a receipt (its sender's server acknowledges it
//! only once it is safe, XEP-0198) keeps its receipt here, with a copy of
//! the stanza, until the node it went to answers: safe (the receipt is
//! done), or gone without being safe (the copy is dropped). If that node
//! dies first, or the stanza or its answer were lost on the way, the copy
//! kept here goes where the stanza would have gone had the session not
//! been there (the account's other sessions, or offline storage), so
//! what the sender was told is safe is never lost; its recipient may see
//! it twice, under the same stanza id.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sigil_xml::Element;

use crate::router::{Receipt, lock};

/// The most copies followed at once: past it, stanzas for other nodes are
/// refused as if their sessions' queues were full (their sender's server
/// then keeps them offline).
pub(super) const MAX_COPIES: usize = 100_000;

/// The most bytes of stanzas kept in copies at once.
pub(super) const MAX_COPY_BYTES: usize = 256 << 20;

/// How long a copy may go unanswered by a node that is alive before it
/// is taken for lost on the way (an answer may be slow: a client that
/// acknowledges late, a queue that drains slowly; so it is generous).
pub(super) const UNANSWERED: Duration = Duration::from_secs(120);

/// One followed copy.
#[derive(Debug)]
pub(super) struct Copy {
    /// The receipt it settles.
    pub(super) receipt: Receipt,
    /// The stanza, to send elsewhere if the copy is lost.
    pub(super) stanza: Element,
    /// The node it went to.
    pub(super) node: Arc<str>,
    /// When it was sent.
    pub(super) sent: Instant,
    /// Its size, serialised.
    size: usize,
}

/// The copies followed, by number.
#[derive(Debug, Default)]
pub(super) struct Copies {
    next: AtomicU64,
    copies: Mutex<HashMap<u64, Copy>>,
    /// The bytes of the stanzas kept.
    bytes: std::sync::atomic::AtomicUsize,
}

impl Copies {
    /// Follows a copy of `size` bytes serialised; its number, or the
    /// receipt back when [`MAX_COPIES`], or [`MAX_COPY_BYTES`], are
    /// followed already.
    pub(super) fn follow(
        &self,
        receipt: Receipt,
        stanza: Element,
        node: Arc<str>,
        size: usize,
    ) -> Result<u64, Receipt> {
        let mut copies = lock(&self.copies);
        if copies.len() >= MAX_COPIES
            || self.bytes.load(Ordering::Relaxed).saturating_add(size) > MAX_COPY_BYTES
        {
            return Err(receipt);
        }
        self.bytes.fetch_add(size, Ordering::Relaxed);
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        copies.insert(
            number,
            Copy {
                receipt,
                stanza,
                node,
                sent: Instant::now(),
                size,
            },
        );
        Ok(number)
    }

    /// The answer for copy `number` came: safe or not, it is forgotten.
    pub(super) fn settle(&self, number: u64, safe: bool) {
        let copy = self.take(number);
        if let Some(copy) = copy
            && safe
        {
            copy.receipt.done();
        }
    }

    /// Takes back the copy `number` (it could not be sent).
    pub(super) fn take(&self, number: u64) -> Option<Copy> {
        let copy = lock(&self.copies).remove(&number)?;
        self.bytes.fetch_sub(copy.size, Ordering::Relaxed);
        Some(copy)
    }

    /// Takes back the copies sent to `node` (it died), and those
    /// unanswered for longer than `unanswered`.
    pub(super) fn lost(&self, dead: &[Arc<str>], unanswered: Duration) -> Vec<Copy> {
        let now = Instant::now();
        self.take_where(|copy| {
            dead.contains(&copy.node) || now.duration_since(copy.sent) > unanswered
        })
    }

    /// Takes back the copies sent before `instant` (when the connection
    /// to NATS was lost, or messages from it dropped: they, or their
    /// answers, may never come), but those whose receipts are in `spared`
    /// (taken back once already).
    pub(super) fn sent_before(&self, instant: Instant, spared: &HashSet<u64>) -> Vec<Copy> {
        self.take_where(|copy| copy.sent < instant && !spared.contains(&copy.receipt.id().0))
    }

    /// Takes back the copies `lost` picks, in the order they were sent
    /// (so that they are stored in that order).
    fn take_where(&self, lost: impl Fn(&Copy) -> bool) -> Vec<Copy> {
        let mut copies = lock(&self.copies);
        let mut numbers: Vec<u64> = copies
            .iter()
            .filter(|(_, copy)| lost(copy))
            .map(|(number, _)| *number)
            .collect();
        numbers.sort_unstable();
        let lost: Vec<Copy> = numbers
            .into_iter()
            .filter_map(|number| copies.remove(&number))
            .collect();
        let size: usize = lost.iter().map(|copy| copy.size).sum();
        self.bytes.fetch_sub(size, Ordering::Relaxed);
        lost
    }

    /// How many copies are followed.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        lock(&self.copies).len()
    }

    /// How many copies are followed, and their bytes.
    pub(super) fn load(&self) -> (usize, usize) {
        (lock(&self.copies).len(), self.bytes.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::router::Receipts;

    #[tokio::test]
    async fn copies_settle_by_number_or_come_back_when_their_node_dies() {
        let receipts = Arc::new(Receipts::default());
        let copies = Copies::default();
        let stanza = Element::new("message", "jabber:client");
        let (receipt, settled) = receipts.issue();
        let a = copies
            .follow(receipt, stanza.clone(), "n1".into(), 10)
            .unwrap();
        copies.settle(a, true);
        assert!(settled.await.unwrap());
        let (receipt, settled) = receipts.issue();
        let b = copies
            .follow(receipt, stanza.clone(), "n2".into(), 10)
            .unwrap();
        let (receipt, _kept) = receipts.issue();
        copies
            .follow(receipt, stanza.clone(), "n3".into(), 10)
            .unwrap();
        let lost = copies.lost(&["n2".into()], UNANSWERED);
        assert_eq!(lost.len(), 1);
        assert_eq!(&*lost[0].node, "n2");
        // Its answer, if it comes after all, changes nothing.
        copies.settle(b, true);
        drop(lost);
        assert!(!settled.await.unwrap());
        assert_eq!(copies.len(), 1);
        assert_eq!(copies.lost(&[], Duration::ZERO).len(), 1);
        assert_eq!(copies.len(), 0);
        // Sent before the connection was lost: taken back; after: kept.
        let (receipt, _) = receipts.issue();
        copies
            .follow(receipt, stanza.clone(), "n1".into(), 10)
            .unwrap();
        let lost_at = Instant::now();
        let (receipt, _) = receipts.issue();
        copies
            .follow(receipt, stanza.clone(), "n1".into(), 10)
            .unwrap();
        assert_eq!(copies.sent_before(lost_at, &HashSet::new()).len(), 1);
        assert_eq!(copies.len(), 1);
        assert_eq!(copies.lost(&[], Duration::ZERO).len(), 1);
        assert_eq!(copies.bytes.load(Ordering::Relaxed), 0);
        // Past the byte budget, a copy is refused and its receipt given
        // back.
        let (receipt, _) = receipts.issue();
        let kept = copies
            .follow(receipt, stanza.clone(), "n1".into(), MAX_COPY_BYTES)
            .unwrap();
        let (receipt, _) = receipts.issue();
        assert!(copies.follow(receipt, stanza, "n1".into(), 1).is_err());
        copies.settle(kept, true);
        assert_eq!(copies.bytes.load(Ordering::Relaxed), 0);
    }
}
