//! XEP-0198 resumption: sessions whose connection died, waiting for a new
//! one to take them over.
//!
//! A client that asked for `resume='true'` gets an id from the operating
//! system's generator (without one, no resumption rather than a guessable
//! id). When its connection dies, the session is parked under that id for
//! `limits.resume_timeout_seconds`: still registered in the router, its
//! messages queueing, holding no connection (so it may resume on another
//! transport). A new stream of
//! the same account, logged in with the same certificate (or, for a
//! password session, with a password), takes it over with `<resume/>`;
//! anyone else, or anyone after the timeout, gets `item-not-found`. When
//! it ends (its time is up, its queue overflowed, or it was told to end),
//! its stanzas are rerouted as any ended session's.
//!
//! At a shutdown, the counters of resumable sessions are saved to the
//! store under [`stored_id`] (the SHA-256 of the id, never the id itself),
//! so that a client resuming after the restart learns what was handled.

use std::sync::Arc;

use jid::BareJid;

use crate::router::Receipt;
use crate::state::SessionState;

/// Sessions whose connection died, kept for XEP-0198 resumption by id.
#[derive(Default)]
pub struct Resumable {
    /// By resumption id: the parking's number and the session.
    parked: std::sync::Mutex<std::collections::HashMap<String, (u64, Parked)>>,
    parkings: std::sync::atomic::AtomicU64,
}

/// A session waiting to be resumed: still registered in the router (its
/// queue fills meanwhile), with its stream-management state.
pub struct Parked {
    /// The session.
    pub state: SessionState,
    /// Its XEP-0198 counters and unacknowledged stanzas.
    pub sm: Box<sigil_proto::server::StreamManagement>,
    /// The receipts of tracked stanzas among those, in order (each
    /// unacknowledged stanza carries its receipt's id as its tag).
    pub receipts: std::collections::VecDeque<Receipt>,
    /// Told when a new connection takes the session over, so that the
    /// waiting task ends at once.
    pub resumed: Arc<tokio::sync::Notify>,
}

impl Resumable {
    /// Keeps a session under its resumption id; the number returned
    /// reclaims it. (A resumed session keeps its id, so the same id may
    /// be parked again later, by another task.)
    pub fn park(&self, id: String, parked: Parked) -> u64 {
        let number = self
            .parkings
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::router::lock(&self.parked).insert(id, (number, parked));
        number
    }

    /// Takes the session `id` for a stream authenticated as `account`
    /// with the certificate `certificate` (`None`: a password login).
    /// Another account's session, or one that logged in with another
    /// certificate (or with a password, when this stream used a
    /// certificate, or the reverse), is left where it is: a resumed
    /// session keeps the rights and the pinned resource it was bound
    /// with, so only the same certificate may take it over.
    pub fn take(
        &self,
        id: &str,
        account: Option<&BareJid>,
        certificate: Option<&[u8; 32]>,
    ) -> Option<Parked> {
        let mut parked = crate::router::lock(&self.parked);
        let (_, entry) = parked.get(id)?;
        if Some(&entry.state.bare) != account
            || entry.state.handle.fingerprint() != certificate
            // Told to end: it ends; nothing of it is taken over.
            || entry.state.handle.end_error().is_some()
        {
            return None;
        }
        let (_, entry) = parked.remove(id)?;
        entry.resumed.notify_one();
        Some(entry)
    }

    /// Takes back the session parked as `number` when its time is up
    /// (`None`: it was resumed).
    pub fn reclaim(&self, id: &str, number: u64) -> Option<Parked> {
        let mut parked = crate::router::lock(&self.parked);
        if parked.get(id).is_none_or(|(n, _)| *n != number) {
            return None;
        }
        let taken = parked.remove(id).map(|(_, entry)| entry);
        if parked.is_empty() {
            parked.shrink_to_fit();
        }
        taken
    }

    /// How many sessions wait to be resumed.
    pub fn len(&self) -> usize {
        crate::router::lock(&self.parked).len()
    }

    /// Whether none does.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the store keeps of a resumption id: its SHA-256, hex. The id is a
/// secret (it takes the session over); a copy of the store does not give
/// it away.
pub fn stored_id(id: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
