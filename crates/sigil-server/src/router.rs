//! Where stanzas go: the sessions of this node, sharded by bare JID.
//!
//! Every session registers its full JID here with a bounded queue. Routing
//! is one seam ([`Router`]) so that a cluster router (sessions on other
//! nodes reached through a message bus) can replace it without touching
//! sessions or modules.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};

use jid::{BareJid, FullJid};
use sigil_proto::error::StreamError;
use sigil_xml::Element;
use tokio::sync::mpsc;

/// What a session task receives from others.
///
/// Boxed, so that a message is two words: tokio's channel allocates a
/// block of 32 slots for every session up front, 512 bytes this way
/// instead of about 3 KiB with the element inline.
#[derive(Debug)]
pub enum SessionMessage {
    /// Deliver this stanza to the client.
    Stanza(Box<Element>),
    /// End the session with this stream error (replaced by a newer
    /// session, server shutting down…).
    Close(Box<StreamError>),
}

/// One bound session as others see it.
#[derive(Debug)]
pub struct SessionHandle {
    /// The bound full JID.
    pub jid: FullJid,
    sender: mpsc::Sender<SessionMessage>,
    presence: Mutex<Option<Presence>>,
    roster_requested: std::sync::atomic::AtomicBool,
    close: tokio::sync::Notify,
    /// A number that tells this session from an older one with the same
    /// full JID.
    pub serial: u64,
    /// SHA-256 of the certificate the session logged in with (EXTERNAL).
    pub certificate: Option<[u8; 32]>,
}

/// The last available presence of a session.
#[derive(Clone, Debug)]
pub struct Presence {
    /// Its priority (-128..=127).
    pub priority: i8,
    /// The presence stanza as broadcast.
    pub stanza: Element,
}

/// Why a stanza could not be queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The session has gone.
    Gone,
    /// Its queue is full: it reads too slowly.
    Full,
}

impl SessionHandle {
    /// Queues a message without waiting. A full queue means the client
    /// reads more slowly than stanzas arrive; the caller decides (it is
    /// closed as too slow rather than buffered without bound).
    pub fn send(&self, message: SessionMessage) -> Result<(), SendError> {
        self.sender.try_send(message).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => SendError::Full,
            mpsc::error::TrySendError::Closed(_) => SendError::Gone,
        })
    }

    /// The session's available presence, `None` when unavailable.
    pub fn presence(&self) -> Option<Presence> {
        lock(&self.presence).clone()
    }

    /// Asks the session task to close the stream (its queue overflowed).
    pub fn request_close(&self) {
        self.close.notify_one();
    }

    /// Resolves when [`Self::request_close`] was called.
    pub async fn close_requested(&self) {
        self.close.notified().await;
    }

    /// Whether the client asked for its roster (so it gets roster pushes,
    /// RFC 6121 §2.1.6).
    pub fn roster_requested(&self) -> bool {
        self.roster_requested
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records that the client asked for its roster.
    pub fn set_roster_requested(&self) {
        self.roster_requested
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Sets or clears the available presence.
    pub fn set_presence(&self, presence: Option<Presence>) {
        *lock(&self.presence) = presence;
    }
}

/// The local router.
#[derive(Debug)]
pub struct Router {
    shards: Vec<Mutex<HashMap<BareJid, Vec<Arc<SessionHandle>>>>>,
    hasher: RandomState,
    serial: std::sync::atomic::AtomicU64,
}

/// Shards: a power of two well above the core count keeps lock contention
/// low without costing memory.
const SHARDS: usize = 64;

impl Default for Router {
    fn default() -> Self {
        Self::new()
    }
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            serial: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// Registers a session. A session already bound to the same full JID
    /// is returned so the caller can close it with `conflict` (RFC 6120
    /// §7.7.2.2: the newer session wins).
    pub fn register(
        &self,
        jid: FullJid,
        sender: mpsc::Sender<SessionMessage>,
        certificate: Option<[u8; 32]>,
    ) -> (Arc<SessionHandle>, Option<Arc<SessionHandle>>) {
        let serial = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let handle = Arc::new(SessionHandle {
            jid: jid.clone(),
            sender,
            presence: Mutex::new(None),
            roster_requested: std::sync::atomic::AtomicBool::new(false),
            close: tokio::sync::Notify::new(),
            serial,
            certificate,
        });
        let bare = jid.to_bare();
        let mut shard = self.shard(&bare);
        let sessions = shard.entry(bare).or_default();
        let replaced = sessions
            .iter()
            .position(|s| s.jid == jid)
            .map(|index| sessions.remove(index));
        sessions.push(handle.clone());
        (handle, replaced)
    }

    /// Removes a session (only that one: a newer session with the same
    /// full JID stays).
    pub fn unregister(&self, handle: &SessionHandle) {
        let bare = handle.jid.to_bare();
        let mut shard = self.shard(&bare);
        if let Some(sessions) = shard.get_mut(&bare) {
            sessions.retain(|s| s.serial != handle.serial);
            if sessions.is_empty() {
                shard.remove(&bare);
                // Give memory back after a crowd has left: a map keeps
                // its largest capacity otherwise.
                let len = shard.len();
                if shard.capacity() > 64 && len < shard.capacity() / 4 {
                    shard.shrink_to(len * 2);
                }
            }
        }
    }

    /// The sessions of an account.
    pub fn sessions(&self, bare: &BareJid) -> Vec<Arc<SessionHandle>> {
        self.shard(bare).get(bare).cloned().unwrap_or_default()
    }

    /// The session bound to a full JID.
    pub fn session(&self, jid: &FullJid) -> Option<Arc<SessionHandle>> {
        let bare = jid.to_bare();
        self.shard(&bare)
            .get(&bare)
            .and_then(|sessions| sessions.iter().find(|s| s.jid == *jid).cloned())
    }

    /// Every session (for shutdown).
    pub fn all(&self) -> Vec<Arc<SessionHandle>> {
        let mut out = Vec::new();
        for shard in &self.shards {
            for sessions in lock(shard).values() {
                out.extend(sessions.iter().cloned());
            }
        }
        out
    }

    /// How many sessions are bound.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| lock(s).values().map(Vec::len).sum::<usize>())
            .sum()
    }

    /// Whether no session is bound.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, bare: &BareJid) -> MutexGuard<'_, HashMap<BareJid, Vec<Arc<SessionHandle>>>> {
        let index = (self.hasher.hash_one(bare) as usize) % SHARDS;
        lock(&self.shards[index])
    }
}

/// Locks a mutex; a panic in another holder leaves plain data that is
/// still consistent (every critical section here is a single insert,
/// remove or clone), so poisoning is ignored.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
