//! Where stanzas go: the [`Routes`] seam, and this node's router.
//!
//! Features and sessions reach other sessions only through [`Routes`]:
//! by full JID ([`Routes::deliver`]), through the presence directory of
//! an account ([`Routes::sessions`], one [`Entry`] per bound session with
//! its presence and what else others need to know of it), and by
//! [`SessionId`] (a full JID with the number that tells a session from an
//! older one with the same JID) to send to, end or describe exactly one
//! session. External components (XEP-0114) are reached by their domain
//! ([`Routes::deliver_to_component`]). [`Router`] implements it for the
//! sessions and components of this node; a
//! cluster router (sessions on other nodes, reached through a message
//! bus) implements the same trait, and no feature knows which it has.
//!
//! A session's own end of its queue ([`SessionHandle`]: receiving, being
//! told to end, closing) stays with the session's task on its node.

use std::sync::{Arc, Mutex, MutexGuard};

use jid::{BareJid, FullJid};
use sigil_proto::error::StreamError;
use sigil_xml::Element;

mod components;
mod local;
mod mailbox;
mod receipts;

pub use components::ComponentHandle;
pub(crate) use components::Components;
pub use local::{Router, SessionCertificate, SessionHandle};
pub use receipts::{Receipt, ReceiptId, Receipts, Settled};

/// What a session task receives from others (boxed: two words in the
/// queue). Ending a session is not a message: it overtakes whatever is
/// queued ([`SessionHandle::end`]).
#[derive(Debug)]
pub enum SessionMessage {
    /// Deliver this stanza to the client.
    Stanza(Box<Element>),
    /// Deliver this stanza, and tell `Receipt` once it is safe: the
    /// client acknowledged it (XEP-0198), or it was written to a client
    /// that does not acknowledge.
    Tracked(Box<Element>, Receipt),
}

/// The last available presence of a session.
#[derive(Clone, Debug)]
pub struct Presence {
    /// Its priority (-128..=127).
    pub priority: i8,
    /// The presence stanza as broadcast (shared: the directory hands out
    /// copies of it cheaply).
    pub stanza: Arc<Element>,
}

/// Why a stanza could not be queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The session has gone.
    Gone,
    /// Its queue is full: it reads too slowly.
    Full,
}

/// One bound session, exactly: its full JID, and the number that tells it
/// from an older or newer session with the same full JID.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionId {
    /// The bound full JID.
    pub jid: FullJid,
    /// Unique per router (a cluster router makes it unique per cluster).
    pub serial: u64,
}

/// What the directory says of one bound session.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Which session.
    pub id: SessionId,
    /// Its available presence; `None` while unavailable.
    pub presence: Option<Presence>,
    /// Its client asked for the roster (it gets roster pushes).
    pub roster_requested: bool,
    /// Its client enabled message carbons (XEP-0280).
    pub carbons: bool,
    /// SHA-256 of the certificate it logged in with, if any.
    pub fingerprint: Option<[u8; 32]>,
}

/// Which sessions of an account an account change ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Closing {
    /// Every one (the account was deleted or disabled).
    Every,
    /// Those that logged in with a password (it changed), but `except`
    /// (the session that changed it).
    Password {
        /// The session that stays.
        except: Option<SessionId>,
    },
    /// Those that logged in with this certificate (SHA-256): it was
    /// revoked, disabled or replaced.
    Certificate([u8; 32]),
}

impl Closing {
    /// Whether the change ends this session.
    pub fn picks(&self, entry: &Entry) -> bool {
        match self {
            Self::Every => true,
            Self::Password { except } => {
                entry.fingerprint.is_none() && except.as_ref() != Some(&entry.id)
            }
            Self::Certificate(fingerprint) => entry.fingerprint.as_ref() == Some(fingerprint),
        }
    }
}

/// A message that could not be queued, given back with why.
#[derive(Debug)]
pub struct Undelivered {
    /// Why.
    pub error: SendError,
    /// The message, for the caller to send elsewhere.
    pub message: SessionMessage,
}

/// Where stanzas go: the sessions of this server, by address.
///
/// A queue that is full ends its session as too slow (the client reads
/// more slowly than stanzas arrive for it) rather than buffering without
/// bound; a session told to end takes nothing more, as if gone.
pub trait Routes: Send + Sync {
    /// Queues a message for the session bound to `to`.
    fn deliver(&self, to: &FullJid, message: SessionMessage) -> Result<(), Undelivered>;

    /// Queues a message for exactly this session.
    fn send(&self, to: &SessionId, message: SessionMessage) -> Result<(), Undelivered>;

    /// Queues a message for the external component connected for `domain`
    /// (a configured component domain, not a subdomain of it);
    /// [`SendError::Gone`] when none is connected.
    fn deliver_to_component(
        &self,
        domain: &str,
        message: SessionMessage,
    ) -> Result<(), Undelivered>;

    /// The presence directory of an account: its bound sessions, those
    /// told to end left out.
    fn sessions(&self, account: &BareJid) -> Vec<Entry>;

    /// Tells this session to end with `error`, ahead of anything queued
    /// for it. `false` if it had already ended or is not bound.
    fn end(&self, session: &SessionId, error: StreamError) -> bool;

    /// Tells every bound session of `account` that `which` picks to end
    /// with `error`; returns how many were told.
    fn end_sessions(
        &self,
        account: &BareJid,
        which: &dyn Fn(&Entry) -> bool,
        error: &StreamError,
    ) -> usize;

    /// Sets or clears a session's available presence.
    fn set_presence(&self, session: &SessionId, presence: Option<Presence>);

    /// Records that a session's client asked for its roster.
    fn set_roster_requested(&self, session: &SessionId);

    /// Enables or disables message carbons (XEP-0280) for a session.
    fn set_carbons(&self, session: &SessionId, enabled: bool);

    /// A new receipt, to follow one stanza to where it ends up safe, and
    /// what resolves when it is settled.
    fn receipt(&self) -> (Receipt, Settled);

    /// Settles a receipt by its id: the stanza it follows is safe
    /// (`true`), or every copy of it went without being safe (`false`).
    /// Whoever holds a copy settles it through [`Receipt::done`] or by
    /// dropping it; a receipt that crossed to another node comes back by
    /// its id through this.
    fn settle(&self, receipt: ReceiptId, safe: bool);
}

/// Locks a mutex; a panic in another holder leaves plain data that is
/// still consistent (every critical section here is a single insert,
/// remove or clone), so poisoning is ignored.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
