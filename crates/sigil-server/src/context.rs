//! What every session of a server shares.

use std::sync::Arc;

use jid::{BareJid, FullJid, Jid};
use sigil_proto::error::{StanzaCondition, StanzaError};
use sigil_store::Store;
use sigil_xml::{Element, ns};

use crate::config::LimitsConfig;
use crate::router::{Receipt, Router, SendError, SessionHandle, SessionMessage};

/// The shared state of one server.
pub struct Context {
    /// The domain served.
    pub domain: String,
    /// Storage.
    pub store: Arc<dyn Store>,
    /// The local sessions.
    pub router: Router,
    /// Limits.
    pub limits: LimitsConfig,
    /// Certificate authorities whose client certificates may log in.
    pub anchors: crate::auth::TrustAnchors,
    /// Offer EXTERNAL alone to connections whose certificate would log in.
    pub external_alone: bool,
    /// XEP-0191 blocklists, cached.
    pub blocklists: crate::blocking::Blocklists,
    /// The accounts that may have offline messages.
    pub offline: OfflineIndex,
    /// Connections still logging in, per address.
    pub pending: Arc<crate::limits::Pending>,
    /// Sessions waiting to be resumed (XEP-0198).
    pub resumable: crate::session::Resumable,
    /// The XEP-0198 state of the sessions the shutdown under way ended,
    /// written to the store once every connection has ended.
    pub saved_sessions: std::sync::Mutex<Vec<sigil_store::SavedSession>>,
    /// When this server started, in Unix seconds: a session saved at an
    /// earlier shutdown counts as resumable (with `<failed h='…'/>`) for
    /// `limits.resume_timeout_seconds` from then.
    pub started_at: i64,
}

/// The accounts that may have offline messages, so that a login looks
/// them up only when there may be some. Filled from the store at start;
/// this process is the only writer of offline messages, so an account
/// missing here has none (a stale entry only costs one lookup).
#[derive(Debug, Default)]
pub struct OfflineIndex {
    owners: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Stored messages delivered and not yet safe (they stay stored until
    /// then): not to be delivered twice meanwhile.
    delivering: std::sync::Mutex<std::collections::HashSet<i64>>,
}

impl OfflineIndex {
    /// An index of these owners.
    pub fn new(owners: impl IntoIterator<Item = String>) -> Self {
        Self {
            owners: std::sync::Mutex::new(owners.into_iter().collect()),
            delivering: std::sync::Mutex::default(),
        }
    }

    /// Marks a stored message as being delivered: `false` if it already is.
    pub fn claim(&self, id: i64) -> bool {
        crate::router::lock(&self.delivering).insert(id)
    }

    /// Ends the delivery of these stored messages.
    pub fn release(&self, ids: impl IntoIterator<Item = i64>) {
        let mut delivering = crate::router::lock(&self.delivering);
        for id in ids {
            delivering.remove(&id);
        }
        if delivering.is_empty() && delivering.capacity() > 64 {
            delivering.shrink_to_fit();
        }
    }

    /// A message was stored for `owner`.
    pub fn insert(&self, owner: &BareJid) {
        crate::router::lock(&self.owners).insert(owner.to_string());
    }

    /// Takes `owner` out: whether it may have messages. Put it back with
    /// [`Self::insert`] if some remain after delivery.
    pub fn take(&self, owner: &BareJid) -> bool {
        crate::router::lock(&self.owners).remove(owner.as_str())
    }
}

impl Context {
    /// Whether a JID is on the domain served here.
    pub fn is_local(&self, jid: &Jid) -> bool {
        jid.domain().as_str() == self.domain
    }

    /// Whether `jid` is the server itself (the bare domain).
    pub fn is_server(&self, jid: &Jid) -> bool {
        jid.node().is_none() && jid.resource().is_none() && self.is_local(jid)
    }

    /// Whether an account exists (store errors count as "no": the caller
    /// answers as for an unknown recipient rather than failing).
    pub async fn account_exists(&self, bare: &BareJid) -> bool {
        matches!(self.store.account(bare.as_str()).await, Ok(Some(_)))
    }

    /// Queues a stanza for one session.
    pub fn deliver(&self, session: &SessionHandle, stanza: Element) {
        self.try_deliver(session, stanza);
    }

    /// Queues a stanza for one session; `false` when it was not queued
    /// (the session ended, or its queue is full and it is being closed).
    pub fn try_deliver(&self, session: &SessionHandle, stanza: Element) -> bool {
        self.send_to(session, stanza, None)
    }

    /// Queues a stanza for one session, followed by `receipt` if given;
    /// `false` when it was not queued.
    pub fn send_to(
        &self,
        session: &SessionHandle,
        stanza: Element,
        receipt: Option<Receipt>,
    ) -> bool {
        let message = match receipt {
            Some(receipt) => SessionMessage::Tracked(Box::new(stanza), receipt),
            None => SessionMessage::Stanza(Box::new(stanza)),
        };
        match session.send(message) {
            Ok(()) => true,
            Err(SendError::Gone) => false,
            Err(SendError::Full) => {
                tracing::warn!(jid = %session.jid, "session queue full: stanza dropped, closing the session");
                session.request_close();
                false
            }
        }
    }

    /// Ends every session of `owner` that `which` picks (live ones and
    /// those waiting to be resumed, which stay registered) with `error`;
    /// returns how many.
    pub fn close_sessions(
        &self,
        owner: &BareJid,
        which: impl Fn(&SessionHandle) -> bool,
        error: &sigil_proto::error::StreamError,
    ) -> usize {
        let mut closed = 0;
        for live in self.router.sessions(owner) {
            if which(&live) {
                if live
                    .send(SessionMessage::Close(Box::new(error.clone())))
                    .is_err()
                {
                    live.request_close();
                }
                closed += 1;
            }
        }
        closed
    }

    /// Queues a stanza for every available session of an account.
    pub fn deliver_to_available(&self, bare: &BareJid, stanza: &Element) -> usize {
        let mut count = 0;
        for session in self.router.sessions(bare) {
            if session.presence().is_some() {
                let mut copy = stanza.clone();
                copy.set_attribute("to", session.jid.to_string());
                self.deliver(&session, copy);
                count += 1;
            }
        }
        count
    }

    /// Delivers to a full JID if that session exists.
    pub fn deliver_to_full(&self, jid: &FullJid, stanza: Element) -> bool {
        match self.router.session(jid) {
            Some(session) => {
                self.deliver(&session, stanza);
                true
            }
            None => false,
        }
    }

    /// Sends an error reply for `stanza` back to its sender (never for
    /// error stanzas: RFC 6120 §8.3.1 forbids answering errors).
    pub fn bounce(&self, stanza: &Element, condition: StanzaCondition) {
        if stanza.attribute("type") == Some("error") {
            return;
        }
        let Some(from) = stanza.attribute("from").and_then(|f| FullJid::new(f).ok()) else {
            return;
        };
        let reply = StanzaError::new(condition).reply_to(stanza);
        self.deliver_to_full(&from, reply);
    }

    /// An IQ result to `request`, from `to` of the request (or the server).
    pub fn iq_result(&self, request: &Element, payload: Option<Element>) -> Element {
        let mut reply = Element::new("iq", ns::CLIENT)
            .with_attribute("type", "result")
            .with_attribute("id", request.attribute("id").unwrap_or_default());
        if let Some(from) = request.attribute("from") {
            reply.set_attribute("to", from);
        }
        // A request without `to` was handled for the account: the reply
        // carries no `from` (RFC 6120 §8.1.2.1).
        if let Some(to) = request.attribute("to") {
            reply.set_attribute("from", to);
        }
        if let Some(payload) = payload {
            reply.push_child(payload);
        }
        reply
    }
}
