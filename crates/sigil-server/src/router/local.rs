//! The router of this node: its sessions, sharded by bare JID.
//!
//! Every session registers its full JID here with a bounded queue, kept in
//! its [`SessionHandle`] (a `Mailbox`, which holds no memory while
//! empty); external components register their domain
//! ([`Router::register_component`]).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};

use jid::{BareJid, FullJid};
use sigil_proto::error::StreamError;

use super::mailbox::Mailbox;
use super::{
    ComponentHandle, Components, Entry, Presence, Receipt, ReceiptId, Receipts, Routes, SendError,
    SessionId, SessionMessage, Settled, Undelivered, lock,
};

/// One bound session as others see it.
#[derive(Debug)]
pub struct SessionHandle {
    /// The bound full JID.
    pub jid: FullJid,
    /// Its queue, and whether it was told to end.
    mailbox: Mailbox,
    presence: Mutex<Option<Presence>>,
    /// [`ROSTER_REQUESTED`] and [`CARBONS`].
    flags: std::sync::atomic::AtomicU8,
    /// A number that tells this session from an older one with the same
    /// full JID.
    pub serial: u64,
    /// The certificate the session logged in with (EXTERNAL).
    pub certificate: Option<Box<SessionCertificate>>,
}

/// The certificate a session logged in with.
#[derive(Debug)]
pub struct SessionCertificate {
    /// Its SHA-256.
    pub fingerprint: [u8; 32],
    /// How revocation lists name it.
    pub revocation_key: sigil_x509::RevocationKey,
    /// When it logged in by CA trust, the chain presented (end entity
    /// first), to check again when the trusted CAs change; else empty.
    pub chain: Box<[rustls::pki_types::CertificateDer<'static>]>,
    /// It logged in by CA trust (not registered by the account).
    pub anchored: bool,
}

impl SessionHandle {
    /// SHA-256 of the certificate the session logged in with, if any.
    pub fn fingerprint(&self) -> Option<&[u8; 32]> {
        self.certificate.as_ref().map(|c| &c.fingerprint)
    }

    /// Which session this is, exactly.
    pub fn id(&self) -> SessionId {
        SessionId {
            jid: self.jid.clone(),
            serial: self.serial,
        }
    }

    /// What the directory says of it.
    pub fn entry(&self) -> Entry {
        Entry {
            id: self.id(),
            presence: self.presence(),
            roster_requested: self.roster_requested(),
            carbons: self.carbons(),
            fingerprint: self.fingerprint().copied(),
        }
    }

    /// Queues a message, or ends the session as too slow when its queue
    /// is full (the message is given back either way it fails).
    fn queue_or_end(&self, message: SessionMessage) -> Result<(), Undelivered> {
        let result = self.send(message);
        if let Err(undelivered) = &result
            && undelivered.error == SendError::Full
        {
            tracing::warn!(jid = %self.jid, "session queue full: stanza dropped, closing the session");
            self.end_too_slow();
        }
        result
    }
}

/// The client asked for its roster.
const ROSTER_REQUESTED: u8 = 1;
/// The client enabled message carbons.
const CARBONS: u8 = 2;

impl SessionHandle {
    /// Queues a message without waiting. A full queue means the client
    /// reads more slowly than stanzas arrive; the caller decides (it is
    /// closed as too slow rather than buffered without bound).
    pub fn send(&self, message: SessionMessage) -> Result<(), Undelivered> {
        self.mailbox.send(message)
    }

    /// The next queued message, if any (for the session's own task);
    /// none once the session was told to end.
    pub fn try_recv(&self) -> Option<SessionMessage> {
        self.mailbox.try_recv()
    }

    /// Waits for the next queued message (for the session's own task).
    pub async fn recv(&self) -> SessionMessage {
        self.mailbox.recv().await
    }

    /// How many messages are queued.
    pub fn queued(&self) -> usize {
        self.mailbox.queued()
    }

    /// Tells the session to end with `error`, ahead of anything queued
    /// for it (which its task reroutes as it ends): an account that was
    /// disabled, a revoked certificate or a newer session with the same
    /// resource does not wait behind a slow reader's backlog. The first
    /// error told is the one sent. `false` if the session had already
    /// ended.
    pub fn end(&self, error: StreamError) -> bool {
        self.mailbox.end(error)
    }

    /// The error the session was told to end with, if it was.
    pub fn end_error(&self) -> Option<StreamError> {
        self.mailbox.end_error()
    }

    /// Resolves once the session was told to end (at once if it already
    /// was).
    pub async fn ended(&self) {
        self.mailbox.ended().await;
    }

    /// Ends the queue: later sends fail with [`SendError::Gone`]; what was
    /// queued is returned, in order.
    pub fn close_queue(&self) -> VecDeque<SessionMessage> {
        self.mailbox.close_queue()
    }

    /// The session's available presence, `None` when unavailable.
    pub fn presence(&self) -> Option<Presence> {
        lock(&self.presence).clone()
    }

    /// Ends the session because its queue overflowed: the client reads
    /// more slowly than stanzas arrive for it.
    pub fn end_too_slow(&self) {
        self.end(StreamError::with_text(
            sigil_proto::error::StreamCondition::PolicyViolation,
            "too many stanzas queued: the client reads too slowly",
        ));
    }

    /// Whether the client asked for its roster (so it gets roster pushes,
    /// RFC 6121 §2.1.6).
    pub fn roster_requested(&self) -> bool {
        self.flag(ROSTER_REQUESTED)
    }

    /// Records that the client asked for its roster.
    pub fn set_roster_requested(&self) {
        self.set_flag(ROSTER_REQUESTED, true);
    }

    /// Whether the client enabled message carbons (XEP-0280).
    pub fn carbons(&self) -> bool {
        self.flag(CARBONS)
    }

    /// Enables or disables message carbons for the client.
    pub fn set_carbons(&self, enabled: bool) {
        self.set_flag(CARBONS, enabled);
    }

    fn flag(&self, flag: u8) -> bool {
        self.flags.load(std::sync::atomic::Ordering::Relaxed) & flag != 0
    }

    fn set_flag(&self, flag: u8, on: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        if on {
            self.flags.fetch_or(flag, Relaxed);
        } else {
            self.flags.fetch_and(!flag, Relaxed);
        }
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
    /// The receipts of stanzas followed until safe.
    receipts: Arc<Receipts>,
    hasher: RandomState,
    serial: std::sync::atomic::AtomicU64,
    /// The external components connected.
    components: Components,
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
        Self::with_serials_from(1)
    }

    /// An empty router whose sessions are numbered from `first` on (a
    /// node of a cluster starts at a random number, so that numbers are
    /// unique in the cluster).
    pub fn with_serials_from(first: u64) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            receipts: Arc::default(),
            hasher: RandomState::new(),
            serial: std::sync::atomic::AtomicU64::new(first),
            components: Components::default(),
        }
    }

    /// Takes `domain` for a newly connected external component, with a
    /// queue of `queue_limit` messages; `None` while another connection
    /// serves it (see [`ComponentHandle`]).
    pub fn register_component(
        &self,
        domain: &str,
        queue_limit: usize,
    ) -> Option<Arc<ComponentHandle>> {
        self.components.register(domain, queue_limit)
    }

    /// Gives a component's domain back when its connection ends.
    pub fn unregister_component(&self, handle: &ComponentHandle) {
        self.components.unregister(handle);
    }

    /// The component connected for `domain`, if any.
    pub fn component(&self, domain: &str) -> Option<Arc<ComponentHandle>> {
        self.components.get(domain)
    }

    /// Registers a session whose queue holds up to `queue_limit` messages,
    /// unless `refused` says otherwise. A session already bound to the
    /// same full JID is returned so the caller can end it with `conflict`
    /// (RFC 6120 §7.7.2.2: the newer session wins).
    ///
    /// `refused` is asked with the account's shard locked, so that whoever
    /// changes the account and then looks up its sessions (which locks the
    /// shard too) either is seen by `refused` or finds the new session.
    pub fn register(
        &self,
        jid: FullJid,
        queue_limit: usize,
        certificate: Option<Box<SessionCertificate>>,
        refused: impl FnOnce() -> bool,
    ) -> Option<(Arc<SessionHandle>, Option<Arc<SessionHandle>>)> {
        let bare = jid.to_bare();
        let mut shard = self.shard(&bare);
        if refused() {
            return None;
        }
        let serial = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let handle = Arc::new(SessionHandle {
            jid: jid.clone(),
            mailbox: Mailbox::new(queue_limit),
            presence: Mutex::new(None),
            flags: std::sync::atomic::AtomicU8::new(0),
            serial,
            certificate,
        });
        let sessions = shard.entry(bare).or_default();
        let replaced = sessions
            .iter()
            .position(|s| s.jid == jid)
            .map(|index| sessions.remove(index));
        sessions.push(handle.clone());
        Some((handle, replaced))
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

    /// The sessions of an account, on this node.
    pub fn handles(&self, bare: &BareJid) -> Vec<Arc<SessionHandle>> {
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

impl Routes for Router {
    fn deliver(&self, to: &FullJid, message: SessionMessage) -> Result<(), Undelivered> {
        match self.session(to) {
            Some(handle) => handle.queue_or_end(message),
            None => Err(Undelivered {
                error: SendError::Gone,
                message,
            }),
        }
    }

    fn send(&self, to: &SessionId, message: SessionMessage) -> Result<(), Undelivered> {
        match self.session(&to.jid).filter(|h| h.serial == to.serial) {
            Some(handle) => handle.queue_or_end(message),
            None => Err(Undelivered {
                error: SendError::Gone,
                message,
            }),
        }
    }

    fn deliver_to_component(
        &self,
        domain: &str,
        message: SessionMessage,
    ) -> Result<(), Undelivered> {
        self.components.deliver(domain, message)
    }

    fn sessions(&self, account: &BareJid) -> Vec<Entry> {
        self.handles(account)
            .iter()
            .filter(|handle| handle.end_error().is_none())
            .map(|handle| handle.entry())
            .collect()
    }

    fn end(&self, session: &SessionId, error: StreamError) -> bool {
        self.session(&session.jid)
            .filter(|h| h.serial == session.serial)
            .is_some_and(|handle| handle.end(error))
    }

    fn end_sessions(
        &self,
        account: &BareJid,
        which: &dyn Fn(&Entry) -> bool,
        error: &StreamError,
    ) -> usize {
        self.handles(account)
            .iter()
            .filter(|handle| which(&handle.entry()) && handle.end(error.clone()))
            .count()
    }

    fn set_presence(&self, session: &SessionId, presence: Option<Presence>) {
        if let Some(handle) = self
            .session(&session.jid)
            .filter(|h| h.serial == session.serial)
        {
            handle.set_presence(presence);
        }
    }

    fn set_roster_requested(&self, session: &SessionId) {
        if let Some(handle) = self
            .session(&session.jid)
            .filter(|h| h.serial == session.serial)
        {
            handle.set_roster_requested();
        }
    }

    fn set_carbons(&self, session: &SessionId, enabled: bool) {
        if let Some(handle) = self
            .session(&session.jid)
            .filter(|h| h.serial == session.serial)
        {
            handle.set_carbons(enabled);
        }
    }

    fn receipt(&self) -> (Receipt, Settled) {
        self.receipts.issue()
    }

    fn settle(&self, receipt: ReceiptId, safe: bool) {
        self.receipts.settle(receipt, safe);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use sigil_xml::Element;

    fn jid(text: &str) -> FullJid {
        FullJid::new(text).unwrap()
    }

    fn stanza(id: &str) -> SessionMessage {
        SessionMessage::Stanza(Box::new(
            Element::new("message", "jabber:client").with_attribute("id", id),
        ))
    }

    fn id(message: SessionMessage) -> String {
        match message {
            SessionMessage::Stanza(stanza) | SessionMessage::Tracked(stanza, _) => {
                stanza.attribute("id").unwrap().to_owned()
            }
        }
    }

    #[test]
    fn a_queue_keeps_order_refuses_past_its_limit_and_ends() {
        let router = Router::new();
        let (handle, replaced) = router
            .register(jid("juliet@example.org/balcony"), 3, None, || false)
            .unwrap();
        assert!(replaced.is_none());
        for n in ["a", "b", "c"] {
            handle.send(stanza(n)).unwrap();
        }
        assert_eq!(handle.send(stanza("d")).unwrap_err().error, SendError::Full);
        assert_eq!(id(handle.try_recv().unwrap()), "a");
        handle.send(stanza("d")).unwrap();
        let left: Vec<String> = handle.close_queue().into_iter().map(id).collect();
        assert_eq!(left, ["b", "c", "d"]);
        assert_eq!(handle.send(stanza("e")).unwrap_err().error, SendError::Gone);
        assert!(handle.try_recv().is_none());
    }

    #[test]
    fn an_empty_queue_holds_no_memory() {
        let router = Router::new();
        let (handle, _) = router
            .register(jid("juliet@example.org/balcony"), 8, None, || false)
            .unwrap();
        handle.send(stanza("a")).unwrap();
        assert!(handle.mailbox.capacity() > 0);
        handle.try_recv().unwrap();
        assert_eq!(handle.mailbox.capacity(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_receiver_wakes_for_each_message() {
        let router = Router::new();
        let (handle, _) = router
            .register(jid("juliet@example.org/balcony"), 1024, None, || false)
            .unwrap();
        let receiver = {
            let handle = Arc::clone(&handle);
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for _ in 0..500 {
                    ids.push(id(handle.recv().await));
                }
                ids
            })
        };
        for n in 0..500 {
            handle.send(stanza(&n.to_string())).unwrap();
            if n % 7 == 0 {
                tokio::task::yield_now().await;
            }
        }
        let ids = tokio::time::timeout(std::time::Duration::from_secs(10), receiver)
            .await
            .unwrap()
            .unwrap();
        let expected: Vec<String> = (0..500).map(|n: i32| n.to_string()).collect();
        assert_eq!(ids, expected);
    }

    /// Ending overtakes the queue, wakes every waiter (a parked session's
    /// task and the connection that took it over), is seen by a waiter
    /// that comes later, and keeps the first error told.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ending_overtakes_the_queue_and_wakes_every_waiter() {
        use sigil_proto::error::StreamCondition;
        let router = Router::new();
        let (handle, _) = router
            .register(jid("juliet@example.org/balcony"), 8, None, || false)
            .unwrap();
        handle.send(stanza("a")).unwrap();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let handle = Arc::clone(&handle);
                tokio::spawn(async move { handle.ended().await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(handle.end(StreamError::new(StreamCondition::NotAuthorized)));
        assert!(handle.end(StreamError::new(StreamCondition::Conflict)));
        for waiter in waiters {
            tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
                .await
                .unwrap()
                .unwrap();
        }
        handle.ended().await;
        assert_eq!(
            handle.end_error().unwrap().condition,
            StreamCondition::NotAuthorized
        );
        assert!(handle.try_recv().is_none(), "delivered after the end");
        assert_eq!(handle.send(stanza("b")).unwrap_err().error, SendError::Gone);
        let left: Vec<String> = handle.close_queue().into_iter().map(id).collect();
        assert_eq!(left, ["a"]);
        assert!(!handle.end(StreamError::new(StreamCondition::Conflict)));
    }

    #[test]
    fn a_refused_registration_changes_nothing() {
        let router = Router::new();
        let full = jid("juliet@example.org/balcony");
        let (first, _) = router.register(full.clone(), 8, None, || false).unwrap();
        assert!(router.register(full.clone(), 8, None, || true).is_none());
        assert_eq!(router.session(&full).unwrap().serial, first.serial);
    }

    #[test]
    fn the_newer_session_replaces_the_older_one() {
        let router = Router::new();
        let full = jid("juliet@example.org/balcony");
        let (first, _) = router.register(full.clone(), 8, None, || false).unwrap();
        let (second, replaced) = router.register(full.clone(), 8, None, || false).unwrap();
        assert_eq!(replaced.unwrap().serial, first.serial);
        router.unregister(&first);
        assert_eq!(router.session(&full).unwrap().serial, second.serial);
        router.unregister(&second);
        assert!(router.is_empty());
    }

    /// The seam: the directory lists the live sessions with their
    /// presence, a [`SessionId`] reaches exactly one session (not a newer
    /// one with the same full JID), a full queue ends its session and
    /// gives the message back, and an ended session takes nothing.
    #[test]
    fn the_routes_seam_addresses_sessions_exactly() {
        use sigil_proto::error::StreamCondition;
        let router = Router::new();
        let routes: &dyn Routes = &router;
        let full = jid("juliet@example.org/balcony");
        let bare = full.to_bare();
        let (old, _) = router.register(full.clone(), 1, None, || false).unwrap();
        let old_id = old.id();
        let (new, _) = router.register(full.clone(), 1, None, || false).unwrap();
        let new_id = new.id();
        assert_eq!(
            routes.send(&old_id, stanza("a")).unwrap_err().error,
            SendError::Gone
        );
        routes.send(&new_id, stanza("b")).unwrap();
        assert_eq!(id(new.try_recv().unwrap()), "b");

        routes.set_presence(
            &new_id,
            Some(Presence {
                priority: 5,
                stanza: Arc::new(Element::new("presence", "jabber:client")),
            }),
        );
        routes.set_roster_requested(&new_id);
        let entries = routes.sessions(&bare);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].id, new_id);
        assert_eq!(entries[0].presence.as_ref().unwrap().priority, 5);
        assert!(entries[0].roster_requested);

        routes.deliver(&full, stanza("c")).unwrap();
        let full_queue = routes.deliver(&full, stanza("d")).unwrap_err();
        assert_eq!(full_queue.error, SendError::Full);
        assert_eq!(id(full_queue.message), "d");
        assert!(new.end_error().is_some(), "a full queue ends its session");
        assert!(
            routes.sessions(&bare).is_empty(),
            "an ended session is not listed"
        );
        let gone = routes.deliver(&full, stanza("e")).unwrap_err();
        assert_eq!(gone.error, SendError::Gone);

        let other = jid("juliet@example.org/garden");
        let (garden, _) = router.register(other, 8, None, || false).unwrap();
        let told = routes.end_sessions(
            &bare,
            &|entry| entry.id == garden.id(),
            &StreamError::new(StreamCondition::Conflict),
        );
        assert_eq!(told, 1);
        assert_eq!(
            garden.end_error().unwrap().condition,
            StreamCondition::Conflict
        );
        // An id that names no session ends nothing.
        assert!(!routes.end(&old_id, StreamError::new(StreamCondition::Conflict)));
    }
}
