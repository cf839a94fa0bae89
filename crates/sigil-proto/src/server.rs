//! The server side of a client-to-server stream: header, features,
//! STARTTLS, SASL, resource binding and the legacy session, then stanzas.
//!
//! [`ServerStream`] is driven by [`ServerStream::receive`] (bytes from the
//! peer) and by the answers to what it asked for, and yields [`Action`]s
//! through [`ServerStream::poll_action`]. It does no I/O: the caller writes
//! what it is told to send, runs the TLS handshake when told, looks up
//! credentials, and registers the bound resource with its router.

use std::collections::VecDeque;
use std::sync::Arc;

use jid::{BareJid, FullJid, ResourcePart};
use sigil_sasl::Failure;
use sigil_sasl::scram::StoredCredentials;
use sigil_sasl::server::{
    Authzid, ConnectionInfo, CredentialsRequest, ServerConfig as SaslConfig, ServerError,
    ServerSession, ServerStep,
};
use sigil_xml::{Element, Framer, FramerError, Limits, StreamEvent, StreamHeader, ns};

use crate::error::{StanzaCondition, StanzaError, StreamCondition, StreamError};
use crate::random_id;

/// How a listener treats TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// The connection is TLS from the first byte (XEP-0368, port 5223).
    Direct,
    /// STARTTLS is offered and must be negotiated before anything else
    /// (the default for port 5222).
    Required,
    /// STARTTLS is offered but not required. PLAIN is still only offered
    /// over TLS.
    Optional,
    /// No TLS on this stream (only for loopback tests and for transports
    /// whose TLS lies outside the XML stream).
    Unavailable,
}

pub use crate::{CLOSE_FRAME, Framing};

/// The configuration of a server stream. Cheap to clone: share one per
/// listener.
#[derive(Clone)]
pub struct ServerStreamConfig {
    /// The domain served.
    pub domain: String,
    /// TLS handling.
    pub tls: TlsMode,
    /// SASL mechanisms and allow-list.
    pub sasl: Arc<SaslConfig>,
    /// Framer limits.
    pub limits: Limits,
    /// SASL failures tolerated before the stream is closed.
    pub max_auth_failures: u32,
    /// Bytes of input held while waiting for an answer (credentials,
    /// decisions, binding) before the stream is closed.
    pub max_pending_input: usize,
    /// How the stream is framed.
    pub framing: Framing,
    /// Offer XEP-0198 stream management (acknowledgements).
    pub stream_management: bool,
    /// Stanzas sent and not acknowledged before the stream is closed as
    /// too slow (only with stream management).
    pub max_unacked: usize,
    /// Seconds a session whose connection died may be resumed (XEP-0198
    /// resumption, told to the client as `max`); 0: no resumption.
    pub resume_seconds: u64,
}

impl ServerStreamConfig {
    /// A configuration with defaults: STARTTLS required, default limits,
    /// three SASL attempts.
    pub fn new(domain: impl Into<String>, sasl: Arc<SaslConfig>) -> Self {
        Self {
            domain: domain.into(),
            tls: TlsMode::Required,
            sasl,
            limits: Limits::default(),
            max_auth_failures: 3,
            max_pending_input: 64 * 1024,
            framing: Framing::Stream,
            stream_management: true,
            max_unacked: 1024,
            resume_seconds: 0,
        }
    }
}

/// What the caller must do next.
#[derive(Debug)]
pub enum Action {
    /// A SASL attempt failed (informational, for logs: the `<failure/>` is
    /// already in the output).
    AuthFailed {
        /// The mechanism, if one was started.
        mechanism: String,
        /// The account it was for, when known.
        account: Option<BareJid>,
        /// What the client was told.
        failure: Failure,
        /// Why, for logs (never sent).
        detail: &'static str,
        /// Whether it counts toward the retry limit.
        counted: bool,
    },
    /// Write these bytes to the peer.
    Send(String),
    /// Write everything sent so far, then run the TLS handshake and call
    /// [`ServerStream::tls_established`]. Input that arrived after
    /// `<starttls/>` was discarded.
    StartTls,
    /// Look up the credentials of this bare JID and answer with
    /// [`ServerStream::credentials`].
    NeedCredentials {
        /// The account asked for (`authcid@domain`).
        jid: BareJid,
        /// What the mechanism needs.
        request: CredentialsRequest,
    },
    /// Decide a certificate login and answer with
    /// [`ServerStream::external_decision`].
    NeedDecision {
        /// What the client sent as authzid.
        authzid: Authzid,
    },
    /// SASL succeeded for this account (informational: the stream goes on).
    Authenticated {
        /// The account.
        jid: BareJid,
        /// The SASL mechanism.
        mechanism: String,
    },
    /// The client asked to bind a resource (`None`: the server picks one).
    /// Register it and answer with [`ServerStream::bound`] or
    /// [`ServerStream::bind_failed`].
    Bind {
        /// The resource requested, already checked by resourceprep.
        resource: Option<ResourcePart>,
    },
    /// The client asks to resume an earlier session (XEP-0198) instead of
    /// binding. Find it, check it belongs to [`ServerStream::account`],
    /// and answer with [`ServerStream::resumed`] or
    /// [`ServerStream::resume_failed`].
    Resume {
        /// The earlier stream's resumption id.
        previd: String,
        /// Stanzas of the earlier stream the client says it handled.
        h: u32,
    },
    /// A stanza from the bound client, with `from` set to its full JID.
    Stanza(Element),
    /// Close the connection after writing what was sent. `error` is the
    /// stream error sent, if any.
    Close {
        /// The stream error that ended the stream, `None` for a clean end.
        error: Option<StreamError>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Before TLS (or with TLS unavailable).
    Initial,
    /// Waiting for the handshake after `<proceed/>`.
    StartingTls,
    /// TLS up, not authenticated.
    Encrypted,
    /// SASL done, before binding.
    Authenticated,
    /// A resource is bound: stanzas flow.
    Bound,
    /// The stream ended.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    Nothing,
    Credentials,
    Decision,
    Bind,
    Resumption,
}

/// One server-side stream.
pub struct ServerStream {
    config: Arc<ServerStreamConfig>,
    connection: ConnectionInfo,
    framer: Framer,
    stage: Stage,
    header_sent: bool,
    /// Whether the stream header for the current (restarted) stream arrived.
    header_received: bool,
    stream_id: String,
    sasl: Option<ServerSession>,
    /// The account of the SASL exchange in progress or done.
    account: Option<BareJid>,
    full_jid: Option<FullJid>,
    bind_id: Option<String>,
    auth_failures: u32,
    /// SASL failures not counted (channel binding guesses), themselves
    /// counted once past [`MAX_UNCOUNTED_FAILURES`].
    uncounted_failures: u32,
    waiting: Waiting,
    pending: Vec<u8>,
    actions: VecDeque<Action>,
    /// Mechanisms offered alone, and the accounts the restriction is for
    /// (a header naming another account lifts it).
    only_mechanisms: Option<(Vec<String>, Vec<BareJid>)>,
    /// The account the client's stream header named (`from`), before
    /// authentication.
    claimed: Option<BareJid>,
    /// A failed EXTERNAL closes the stream (XEP-0178's identity cases);
    /// [`Self::external_declined`] leaves it open for another mechanism.
    close_after_external_failure: bool,
    /// The account of the credentials being checked is disabled.
    account_disabled: bool,
    /// XEP-0198, once enabled (boxed: most idle streams never enable it).
    sm: Option<Box<StreamManagement>>,
    /// The `<resume/>` being answered: previd and h.
    resumption: Option<(String, u32)>,
    /// Stream management may be offered on this stream (not over BOSH).
    sm_allowed: bool,
    /// The caller confirms each [`Action::Stanza`] once handled
    /// ([`Self::confirm`]); acknowledgements count only confirmed ones.
    confirming: bool,
    /// Stanzas handed to the caller and not confirmed yet.
    outstanding: u32,
}

/// The XEP-0198 namespace.
pub const NS_SM: &str = "urn:xmpp:sm:3";

/// Channel binding guesses a stream may make before they count as failed
/// attempts: enough for a client to try each binding type it knows, not
/// an endless supply of attempts.
const MAX_UNCOUNTED_FAILURES: u32 = 5;

/// Every this many unacknowledged stanzas the server asks for an ack.
const ACK_REQUEST_EVERY: usize = 5;

/// XEP-0198 state of one stream: what a resumed session carries over.
#[derive(Debug, Default)]
pub struct StreamManagement {
    /// Stanzas handled from the client, modulo 2^32.
    pub inbound: u32,
    /// Stanzas sent to the client, modulo 2^32.
    pub sent: u32,
    /// Of those, acknowledged by the client.
    pub acked: u32,
    /// Sent and not yet acknowledged, oldest first.
    pub unacked: VecDeque<Element>,
    /// The resumption id, when the client asked for resumption.
    pub id: Option<String>,
    /// Of the stanzas the caller has not confirmed
    /// ([`ServerStream::confirm_handling`]), how many came before stream
    /// management was enabled (so are not in `inbound`): the oldest.
    pub uncounted: u32,
    /// An `<r/>` is waiting for an answer until this count of the
    /// client's stanzas is handled.
    pub ack_owed: Option<u32>,
    /// `sent` when the server last asked for an acknowledgement.
    pub requested_at: u32,
}

impl ServerStream {
    /// A new stream. `connection` says what TLS gave this connection so far
    /// (for direct TLS: encrypted, with any client certificate and channel
    /// binding data).
    ///
    /// The configuration may be shared (`Arc`) by every stream of a
    /// listener: a stream then holds one pointer to it.
    pub fn new(config: impl Into<Arc<ServerStreamConfig>>, connection: ConnectionInfo) -> Self {
        let config = config.into();
        let framer = Framer::new(config.limits);
        let stage = if config.tls == TlsMode::Direct || connection.encrypted {
            Stage::Encrypted
        } else {
            Stage::Initial
        };
        Self {
            config,
            connection,
            framer,
            stage,
            header_sent: false,
            header_received: false,
            stream_id: random_id(),
            sasl: None,
            account: None,
            full_jid: None,
            bind_id: None,
            auth_failures: 0,
            uncounted_failures: 0,
            waiting: Waiting::Nothing,
            pending: Vec::new(),
            actions: VecDeque::new(),
            only_mechanisms: None,
            claimed: None,
            close_after_external_failure: true,
            account_disabled: false,
            sm: None,
            resumption: None,
            sm_allowed: true,
            confirming: false,
            outstanding: 0,
        }
    }

    /// From now on an acknowledgement (XEP-0198 `<a/>`, `<resumed/>`)
    /// counts a stanza handed over as [`Action::Stanza`] only once the
    /// caller confirms it with [`Self::confirm`]: for a server whose
    /// acknowledgement promises that the stanza is safe (delivered or on
    /// disk), not merely read. An `<r/>` that arrives while stanzas before
    /// it are unconfirmed is answered when they are.
    pub fn confirm_handling(&mut self) {
        self.confirming = true;
    }

    /// Confirms the oldest `count` unconfirmed stanzas (see
    /// [`Self::confirm_handling`]), in the order they were handed over.
    pub fn confirm(&mut self, count: u32) {
        let count = count.min(self.outstanding);
        self.outstanding -= count;
        let Some(sm) = self.sm.as_mut() else { return };
        sm.uncounted = sm.uncounted.saturating_sub(count);
        let handled = self.handled();
        let Some(sm) = self.sm.as_mut() else { return };
        let Some(owed) = sm.ack_owed else { return };
        // Wrapping: `handled` has reached `owed` when the difference is
        // small and non-negative.
        if handled.wrapping_sub(owed) < u32::MAX / 2 {
            sm.ack_owed = None;
            if self.stage == Stage::Bound {
                let answer = Element::new("a", NS_SM).with_attribute("h", handled.to_string());
                self.send_element(&answer);
            }
        }
    }

    /// The client's stanzas handled (XEP-0198 `h`): every one counted,
    /// less those the caller has not confirmed.
    fn handled(&self) -> u32 {
        match &self.sm {
            Some(sm) => sm
                .inbound
                .wrapping_sub(self.outstanding.saturating_sub(sm.uncounted)),
            None => 0,
        }
    }

    /// Asks the client to acknowledge what it was sent (XEP-0198 `<r/>`),
    /// unless nothing is unacknowledged or it was asked since the last
    /// stanza: for the end of a burst, whose last stanzas would otherwise
    /// wait for the next request.
    pub fn request_ack(&mut self) {
        if self.stage != Stage::Bound {
            return;
        }
        let Some(sm) = self.sm.as_mut() else { return };
        if sm.unacked.is_empty() || sm.requested_at == sm.sent {
            return;
        }
        sm.requested_at = sm.sent;
        let request = self.serialize(&Element::new("r", NS_SM));
        self.actions.push_back(Action::Send(request));
    }

    /// How many of the stanzas sent to the client it has acknowledged
    /// (XEP-0198 `h`), once stream management is enabled: sent stanza
    /// number `n` (counting from 1) is acknowledged once this reaches `n`.
    pub fn acknowledged(&self) -> Option<u32> {
        self.sm.as_ref().map(|sm| sm.acked)
    }

    /// How many stanzas were sent to the client (XEP-0198 counting), once
    /// stream management is enabled.
    pub fn sent_count(&self) -> Option<u32> {
        self.sm.as_ref().map(|sm| sm.sent)
    }

    /// Never offers stream management on this stream (XEP-0198 is not for
    /// BOSH, whose requests carry their own acknowledgements).
    pub fn without_stream_management(&mut self) {
        self.sm_allowed = false;
    }

    /// Whether the client enabled stream management.
    pub fn stream_management_enabled(&self) -> bool {
        self.sm.is_some()
    }

    /// Takes the stanzas sent to the client that it has not acknowledged
    /// (with stream management enabled), oldest first: when a stream ends
    /// without acknowledging them, they were perhaps never received.
    pub fn take_unacked(&mut self) -> Vec<Element> {
        self.sm
            .as_mut()
            .map(|sm| std::mem::take(&mut sm.unacked).into())
            .unwrap_or_default()
    }

    /// The resumption id given to the client, if it may resume this
    /// session.
    pub fn resumption_id(&self) -> Option<&str> {
        self.sm.as_ref().and_then(|sm| sm.id.as_deref())
    }

    /// Takes the stream-management state out, for a session kept to be
    /// resumed on another connection.
    pub fn take_stream_management(&mut self) -> Option<Box<StreamManagement>> {
        // What the caller has not confirmed by now counts as not handled:
        // the client sends it again after resuming.
        let handled = self.handled();
        let mut sm = self.sm.take()?;
        sm.inbound = handled;
        sm.uncounted = 0;
        sm.ack_owed = None;
        Some(sm)
    }

    /// Answers [`Action::Resume`]: the earlier session continues on this
    /// stream as `jid`, with its state. The client's `h` acknowledges what
    /// it handled; `<resumed/>` tells it how much of its own was handled;
    /// what stays unacknowledged is sent again.
    pub fn resumed(&mut self, jid: FullJid, mut sm: Box<StreamManagement>) {
        if self.waiting != Waiting::Resumption {
            return;
        }
        let Some((previd, h)) = self.resumption.take() else {
            return;
        };
        self.waiting = Waiting::Nothing;
        if self.stage == Stage::Closed {
            // Closed while the answer was pending: the session stays with
            // its unacknowledged stanzas, for the caller to reroute.
            self.sm = Some(sm);
            return;
        }
        let newly = h.wrapping_sub(sm.acked) as usize;
        if newly > sm.unacked.len() {
            let error = handled_count_too_high(h, sm.sent);
            // Kept, so that what was not acknowledged is not lost.
            self.sm = Some(sm);
            return self.close(Some(error));
        }
        sm.unacked.drain(..newly);
        sm.acked = h;
        let again: Vec<Element> = sm.unacked.iter().cloned().collect();
        let answer = Element::new("resumed", NS_SM)
            .with_attribute("previd", previd)
            .with_attribute("h", sm.inbound.to_string());
        self.full_jid = Some(jid);
        self.stage = Stage::Bound;
        self.send_element(&answer);
        // Sent again as they were: they keep their place in the count.
        for stanza in &again {
            let out = self.serialize(stanza);
            self.actions.push_back(Action::Send(out));
        }
        self.sm = Some(sm);
        self.resume();
    }

    /// Answers [`Action::Resume`]: no such session (unknown, expired, or
    /// another account's). The client may bind a new one.
    ///
    /// `handled`, when known (the session ended at a server shutdown that
    /// saved its counters), is how many of the client's stanzas the server
    /// handled: the `<failed h='…'/>` of XEP-0198 §5, so that the client
    /// sends again only what was not.
    pub fn resume_failed(&mut self, handled: Option<u32>) {
        if self.waiting != Waiting::Resumption {
            return;
        }
        self.waiting = Waiting::Nothing;
        self.resumption = None;
        let mut failed = Element::new("failed", NS_SM);
        if let Some(h) = handled {
            failed = failed.with_attribute("h", h.to_string());
        }
        let failed = failed.with_child(Element::new("item-not-found", ns::STANZA_ERRORS));
        self.send_element(&failed);
        self.resume();
    }

    fn sm_offered(&self) -> bool {
        self.config.stream_management && self.sm_allowed
    }

    /// Offers only these mechanisms on this connection (and refuses the
    /// others with `invalid-mechanism`), e.g. EXTERNAL alone to a client
    /// whose certificate will log it in as one of `accounts`, so a client
    /// in certificate mode cannot pick a password mechanism it has no
    /// password for. A stream header whose `from` names another account
    /// lifts it (that client wants to log in as someone the certificate
    /// does not name); so does `None`. Takes effect with the next
    /// features.
    pub fn restrict_mechanisms(&mut self, names: Option<Vec<String>>, accounts: Vec<BareJid>) {
        self.only_mechanisms = names.map(|names| (names, accounts));
    }

    /// The account the client's stream header named in `from` (a bare JID
    /// with a local part on the served domain), before authentication.
    /// With EXTERNAL and no authzid, it is the account asked for.
    pub fn claimed_account(&self) -> Option<&BareJid> {
        self.claimed.as_ref()
    }

    /// Whether `name` may be used on this connection now.
    fn mechanism_allowed(&self, name: &str) -> bool {
        match &self.only_mechanisms {
            None => true,
            Some((only, accounts)) => {
                only.iter().any(|o| o == name)
                    || self
                        .claimed
                        .as_ref()
                        .is_some_and(|claimed| !accounts.contains(claimed))
            }
        }
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        let action = self.actions.pop_front();
        if action.is_none() && self.actions.capacity() > 0 {
            // Drained: an idle stream holds no queue.
            self.actions = VecDeque::new();
        }
        action
    }

    /// The bound full JID, once bound.
    pub fn full_jid(&self) -> Option<&FullJid> {
        self.full_jid.as_ref()
    }

    /// The authenticated account, once SASL succeeded.
    pub fn account(&self) -> Option<&BareJid> {
        if matches!(self.stage, Stage::Authenticated | Stage::Bound) {
            self.account.as_ref()
        } else {
            None
        }
    }

    /// What TLS gave this connection.
    pub fn connection(&self) -> &ConnectionInfo {
        &self.connection
    }

    /// The id of the current stream.
    pub fn stream_id(&self) -> &str {
        &self.stream_id
    }

    /// Whether the stream has ended.
    pub fn is_closed(&self) -> bool {
        self.stage == Stage::Closed
    }

    /// Bytes from the peer.
    pub fn receive(&mut self, data: &[u8]) {
        if self.stage == Stage::Closed || self.stage == Stage::StartingTls {
            // After <proceed/> nothing may arrive in plaintext: whatever did
            // is dropped (the CVE-2011-0411 class of injection).
            return;
        }
        if self.waiting != Waiting::Nothing {
            self.hold(data);
            return;
        }
        let mut input = data;
        self.process(&mut input);
        if !input.is_empty() && self.stage != Stage::Closed && self.stage != Stage::StartingTls {
            self.hold(input);
        } else {
            // Everything read is consumed: the client may stay quiet for
            // hours, so the parser's token buffer goes back until it speaks.
            self.framer.release_buffers();
        }
    }

    /// The TLS handshake after `<proceed/>` completed.
    pub fn tls_established(&mut self, connection: ConnectionInfo) {
        if self.stage != Stage::StartingTls {
            return;
        }
        self.connection = connection;
        self.stage = Stage::Encrypted;
        self.restart();
    }

    /// The answer to [`Action::NeedCredentials`]: the stored credentials,
    /// `Ok(None)` for an unknown account, or `Err` with the condition to
    /// report (`account-disabled`, `temporary-auth-failure`).
    pub fn credentials(&mut self, answer: Result<Option<StoredCredentials>, Failure>) {
        self.account_disabled = false;
        self.answer_credentials(answer);
    }

    /// The answer to [`Action::NeedCredentials`] for a disabled account:
    /// the credentials are checked all the same, and only a client that
    /// proves it knows them learns `account-disabled` (others get
    /// `not-authorized`, as for a wrong password).
    pub fn credentials_of_disabled_account(&mut self, credentials: Option<StoredCredentials>) {
        self.account_disabled = true;
        self.answer_credentials(Ok(credentials));
    }

    fn answer_credentials(&mut self, answer: Result<Option<StoredCredentials>, Failure>) {
        if self.waiting != Waiting::Credentials {
            return;
        }
        self.waiting = Waiting::Nothing;
        let step = match answer {
            Err(failure) => Err(ServerError::new(failure, "refused by the account store")),
            Ok(credentials) => match self.sasl.as_mut() {
                Some(session) => session.credentials(credentials),
                None => return,
            },
        };
        self.sasl_step(step);
        self.resume();
    }

    /// The answer to [`Action::NeedDecision`]: the certificate names no
    /// usable identity, or its identities do not match what the client
    /// asked for, after which the stream is closed (XEP-0178 §2).
    pub fn external_decision(&mut self, decision: Result<BareJid, Failure>) {
        self.close_after_external_failure = true;
        self.decide_external(decision);
    }

    /// The answer to [`Action::NeedDecision`]: the certificate names the
    /// account but may not log in to it (not trusted, expired, disabled,
    /// revoked). The failure counts toward the retry limit but leaves the
    /// stream open, so the client may try another offered mechanism
    /// (RFC 6120 §6.4.5), its password for instance.
    pub fn external_declined(&mut self, failure: Failure) {
        self.close_after_external_failure = false;
        self.decide_external(Err(failure));
    }

    fn decide_external(&mut self, decision: Result<BareJid, Failure>) {
        if self.waiting != Waiting::Decision {
            return;
        }
        self.waiting = Waiting::Nothing;
        let step = match (decision, self.sasl.as_mut()) {
            (_, None) => return,
            (Ok(jid), Some(session)) => {
                self.account = Some(jid);
                session.decision(Ok(()))
            }
            (Err(failure), Some(session)) => session.decision(Err(failure)),
        };
        self.sasl_step(step);
        self.resume();
    }

    /// The answer to [`Action::Bind`]: the resource is registered.
    pub fn bound(&mut self, jid: FullJid) {
        if self.waiting != Waiting::Bind {
            return;
        }
        self.waiting = Waiting::Nothing;
        let id = self.bind_id.take().unwrap_or_default();
        let reply = Element::new("iq", ns::CLIENT)
            .with_attribute("type", "result")
            .with_attribute("id", id)
            .with_child(
                Element::new("bind", ns::BIND)
                    .with_child(Element::new("jid", ns::BIND).with_text(jid.to_string())),
            );
        self.full_jid = Some(jid);
        self.stage = Stage::Bound;
        self.send_element(&reply);
        self.resume();
    }

    /// The answer to [`Action::Bind`]: binding failed with this error.
    pub fn bind_failed(&mut self, error: StanzaError) {
        if self.waiting != Waiting::Bind {
            return;
        }
        self.waiting = Waiting::Nothing;
        let id = self.bind_id.take().unwrap_or_default();
        let request = Element::new("iq", ns::CLIENT)
            .with_attribute("type", "set")
            .with_attribute("id", id)
            .with_child(Element::new("bind", ns::BIND));
        self.send_element(&error.reply_to(&request));
        self.resume();
    }

    /// Sends a stanza to the client.
    pub fn send_stanza(&mut self, stanza: &Element) {
        if self.stage != Stage::Closed {
            self.send_element(stanza);
        }
    }

    /// Serializes a stanza the way this stream writes it, without queueing
    /// it (for callers that write outside [`Self::poll_action`]).
    pub fn serialize(&self, stanza: &Element) -> String {
        let mut out = String::new();
        match self.config.framing {
            Framing::Stream => stanza.write_to(&mut out, ns::CLIENT, true),
            Framing::Standalone => stanza.write_to(&mut out, "", false),
        }
        out
    }

    /// One standalone element from the peer (a WebSocket frame, or one
    /// child of a BOSH body): `<open/>` starts or restarts the stream,
    /// `<close/>` ends it, anything else is an element of the stream.
    pub fn receive_element(&mut self, element: &Element) {
        if element.is("open", ns::FRAMING) {
            // The same checks as for a stream header: the framer sees the
            // equivalent header.
            let mut header = String::from(
                "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'",
            );
            for attribute in element.attributes() {
                if attribute.namespace.is_empty()
                    && matches!(attribute.name.as_str(), "to" | "version" | "from" | "id")
                {
                    header.push(' ');
                    header.push_str(&attribute.name);
                    header.push_str("='");
                    sigil_xml::escape_attribute(&mut header, &attribute.value);
                    header.push('\'');
                }
            }
            header.push('>');
            self.receive(header.as_bytes());
        } else if element.is("close", ns::FRAMING) {
            self.receive(b"</stream:stream>");
        } else if element.is("stream", ns::STREAM) {
            // A stream header in a standalone framing is the wrong framing.
            self.close(Some(StreamError::new(StreamCondition::InvalidNamespace)));
        } else {
            let mut text = String::new();
            element.write_to(&mut text, "", false);
            self.receive(text.as_bytes());
        }
    }

    /// Ends the stream: sends the error if any, then `</stream:stream>`.
    pub fn close(&mut self, error: Option<StreamError>) {
        if self.stage == Stage::Closed {
            return;
        }
        self.ensure_header();
        match self.config.framing {
            Framing::Stream => {
                let mut out = String::new();
                if let Some(error) = &error {
                    error.to_element().write_to(&mut out, ns::CLIENT, true);
                }
                out.push_str("</stream:stream>");
                self.actions.push_back(Action::Send(out));
            }
            Framing::Standalone => {
                if let Some(error) = &error {
                    let mut out = String::new();
                    error.to_element().write_to(&mut out, "", false);
                    self.actions.push_back(Action::Send(out));
                }
                self.actions.push_back(Action::Send(CLOSE_FRAME.to_owned()));
            }
        }
        self.stage = Stage::Closed;
        self.pending.clear();
        self.actions.push_back(Action::Close { error });
    }

    fn hold(&mut self, data: &[u8]) {
        if self.pending.len() + data.len() > self.config.max_pending_input {
            self.close(Some(StreamError::with_text(
                StreamCondition::PolicyViolation,
                "too much input while waiting",
            )));
            return;
        }
        self.pending.extend_from_slice(data);
    }

    fn resume(&mut self) {
        if self.waiting != Waiting::Nothing || self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        self.receive(&pending);
    }

    fn process(&mut self, input: &mut &[u8]) {
        while !input.is_empty() && self.waiting == Waiting::Nothing {
            match self.stage {
                Stage::Closed => return,
                Stage::StartingTls => {
                    *input = &[];
                    return;
                }
                _ => {}
            }
            let event = match self.framer.next_event(input) {
                Ok(Some(event)) => event,
                Ok(None) => return,
                Err(error) => {
                    self.close(Some(framer_error(&error)));
                    return;
                }
            };
            match event {
                StreamEvent::Open(header) => self.on_header(&header),
                StreamEvent::Element(element) => self.on_element(element),
                StreamEvent::Close => {
                    self.close(None);
                    return;
                }
            }
        }
    }

    fn restart(&mut self) {
        self.framer.reset();
        self.header_sent = false;
        self.header_received = false;
        self.stream_id = random_id();
    }

    fn ensure_header(&mut self) {
        if self.header_sent {
            return;
        }
        self.header_sent = true;
        if self.config.framing == Framing::Standalone {
            let mut open =
                String::from("<open xmlns=\"urn:ietf:params:xml:ns:xmpp-framing\" id=\"");
            sigil_xml::escape_attribute(&mut open, &self.stream_id);
            open.push_str("\" from=\"");
            sigil_xml::escape_attribute(&mut open, &self.config.domain);
            open.push_str("\" version=\"1.0\" xml:lang=\"en\"/>");
            self.actions.push_back(Action::Send(open));
            return;
        }
        let mut header = String::from(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='",
        );
        sigil_xml::escape_attribute(&mut header, &self.stream_id);
        header.push_str("' from='");
        sigil_xml::escape_attribute(&mut header, &self.config.domain);
        header.push_str("' version='1.0' xml:lang='en'>");
        self.actions.push_back(Action::Send(header));
    }

    fn on_header(&mut self, header: &StreamHeader) {
        self.ensure_header();
        if header.namespace != ns::STREAM || header.name != "stream" {
            return self.close(Some(StreamError::new(StreamCondition::InvalidNamespace)));
        }
        if header.default_namespace != ns::CLIENT {
            return self.close(Some(StreamError::new(StreamCondition::InvalidNamespace)));
        }
        match header.attribute("version") {
            Some(version) if version.split('.').next() == Some("1") => {}
            _ => return self.close(Some(StreamError::new(StreamCondition::UnsupportedVersion))),
        }
        if let Some(to) = header.attribute("to") {
            // The same domain on every restart: a stream may not change its
            // host after authentication (Prosody CVE-2018-10847).
            if !to.eq_ignore_ascii_case(&self.config.domain) {
                return self.close(Some(StreamError::new(StreamCondition::HostUnknown)));
            }
        }
        if matches!(self.stage, Stage::Initial | Stage::Encrypted) {
            self.claimed = header
                .attribute("from")
                .and_then(|from| account_jid_from(from, &self.config.domain));
        }
        self.header_received = true;
        let features = self.features();
        self.send_element(&features);
    }

    fn features(&self) -> Element {
        let mut features = Element::new("features", ns::STREAM);
        match self.stage {
            Stage::Initial => {
                if matches!(self.config.tls, TlsMode::Required | TlsMode::Optional) {
                    let mut starttls = Element::new("starttls", ns::TLS);
                    if self.config.tls == TlsMode::Required {
                        starttls.push_child(Element::new("required", ns::TLS));
                    }
                    features.push_child(starttls);
                }
                if self.config.tls != TlsMode::Required {
                    self.push_sasl_features(&mut features);
                }
            }
            Stage::Encrypted => self.push_sasl_features(&mut features),
            Stage::Authenticated => {
                features.push_child(Element::new("bind", ns::BIND));
                features.push_child(
                    Element::new("session", ns::SESSION)
                        .with_child(Element::new("optional", ns::SESSION)),
                );
                if self.sm_offered() {
                    features.push_child(Element::new("sm", NS_SM));
                }
            }
            Stage::StartingTls | Stage::Bound | Stage::Closed => {}
        }
        features
    }

    fn push_sasl_features(&self, features: &mut Element) {
        let mut mechanisms = Element::new("mechanisms", ns::SASL);
        for name in self.config.sasl.offered(&self.connection) {
            if !self.mechanism_allowed(name) {
                continue;
            }
            mechanisms.push_child(Element::new("mechanism", ns::SASL).with_text(name));
        }
        features.push_child(mechanisms);
        let types = self.connection.channel_binding_types();
        if !types.is_empty() {
            let mut bindings = Element::new("sasl-channel-binding", crate::NS_SASL_CB);
            for kind in types {
                bindings.push_child(
                    Element::new("channel-binding", crate::NS_SASL_CB)
                        .with_attribute("type", kind.as_str()),
                );
            }
            features.push_child(bindings);
        }
    }

    fn on_element(&mut self, element: Element) {
        if !self.header_received {
            return self.close(Some(StreamError::new(StreamCondition::NotWellFormed)));
        }
        match element.namespace() {
            ns::TLS => self.on_tls(&element),
            ns::SASL => self.on_sasl(&element),
            ns::CLIENT if matches!(element.name(), "message" | "presence" | "iq") => {
                self.on_stanza(element)
            }
            NS_SM
                if self.sm_offered()
                    && matches!(self.stage, Stage::Authenticated | Stage::Bound) =>
            {
                self.on_sm(&element)
            }
            _ => self.close(Some(StreamError::new(
                StreamCondition::UnsupportedStanzaType,
            ))),
        }
    }

    fn on_tls(&mut self, element: &Element) {
        let offered = self.stage == Stage::Initial
            && matches!(self.config.tls, TlsMode::Required | TlsMode::Optional);
        if element.name() != "starttls" || !offered {
            self.send_element(&Element::new("failure", ns::TLS));
            return self.close(None);
        }
        self.send_element(&Element::new("proceed", ns::TLS));
        self.stage = Stage::StartingTls;
        self.pending.clear();
        self.actions.push_back(Action::StartTls);
    }

    fn on_sasl(&mut self, element: &Element) {
        let may_authenticate = match self.stage {
            Stage::Encrypted => true,
            Stage::Initial => self.config.tls != TlsMode::Required,
            _ => false,
        };
        match element.name() {
            "auth" if self.stage == Stage::Initial && !may_authenticate => {
                self.sasl_failure(Failure::EncryptionRequired, None);
            }
            "auth" if may_authenticate => {
                if self.sasl.as_ref().is_some_and(|s| !s.is_done()) {
                    self.sasl = None;
                    return self.sasl_failure(Failure::MalformedRequest, None);
                }
                let mechanism = element
                    .attribute("mechanism")
                    .unwrap_or_default()
                    .to_owned();
                if !self.mechanism_allowed(&mechanism) {
                    return self.sasl_failure(Failure::InvalidMechanism, None);
                }
                self.close_after_external_failure = true;
                let initial = match sigil_sasl::xmpp::decode(&element.text()) {
                    Ok(data) => data,
                    Err(failure) => return self.sasl_failure(failure, None),
                };
                match self.config.sasl.start(&mechanism, &self.connection) {
                    Ok(mut session) => {
                        let step = session.start(initial.as_deref());
                        self.sasl = Some(session);
                        self.account = None;
                        self.sasl_step(step);
                    }
                    Err(error) => self.sasl_failure(error.failure, None),
                }
            }
            "response" if self.sasl.is_some() => {
                let data = match sigil_sasl::xmpp::decode(&element.text()) {
                    Ok(data) => data.unwrap_or_default(),
                    Err(failure) => return self.sasl_failure(failure, None),
                };
                let step = match self.sasl.as_mut() {
                    Some(session) => session.response(&data),
                    None => return,
                };
                self.sasl_step(step);
            }
            "abort" if self.sasl.is_some() => {
                let error = self.sasl.as_mut().map(ServerSession::abort);
                self.sasl_failure(error.map_or(Failure::Aborted, |e| e.failure), None);
            }
            _ => self.close(Some(StreamError::new(
                StreamCondition::UnsupportedStanzaType,
            ))),
        }
    }

    fn sasl_step(&mut self, step: Result<ServerStep, ServerError>) {
        let mechanism = self
            .sasl
            .as_ref()
            .map(|s| s.mechanism_name().to_owned())
            .unwrap_or_default();
        match step {
            Ok(ServerStep::Challenge(data)) => {
                let challenge =
                    Element::new("challenge", ns::SASL).with_text(encode_challenge(&data));
                self.send_element(&challenge);
            }
            Ok(ServerStep::NeedCredentials(request)) => {
                let Some(jid) = account_jid(&request.authcid, &self.config.domain) else {
                    return self.sasl_failure(Failure::NotAuthorized, Some(&mechanism));
                };
                if let Some(authzid) = &request.authzid {
                    // No proxy authorization: an authzid must name the
                    // account itself.
                    if !authzid_names(authzid, &jid) {
                        return self.sasl_failure(Failure::InvalidAuthzid, Some(&mechanism));
                    }
                }
                self.account = Some(jid.clone());
                self.waiting = Waiting::Credentials;
                self.actions
                    .push_back(Action::NeedCredentials { jid, request });
            }
            Ok(ServerStep::NeedDecision(request)) => {
                self.waiting = Waiting::Decision;
                self.actions.push_back(Action::NeedDecision {
                    authzid: request.authzid,
                });
            }
            Ok(ServerStep::NeedCustom(_)) => {
                // Custom server mechanisms need an application hook this
                // server does not expose yet.
                self.sasl_failure(Failure::TemporaryAuthFailure, Some(&mechanism));
            }
            Ok(ServerStep::Success(_)) if std::mem::take(&mut self.account_disabled) => {
                self.sasl_failure_with(
                    Failure::AccountDisabled,
                    Some(&mechanism),
                    None,
                    true,
                    "disabled account",
                );
            }
            Ok(ServerStep::Success(outcome)) => {
                let jid = match (&self.account, &outcome.authcid) {
                    (Some(jid), _) => jid.clone(),
                    (None, None) if outcome.mechanism == "ANONYMOUS" => {
                        match account_jid(&random_id(), &self.config.domain) {
                            Some(jid) => jid,
                            None => {
                                return self
                                    .sasl_failure(Failure::TemporaryAuthFailure, Some(&mechanism));
                            }
                        }
                    }
                    _ => return self.sasl_failure(Failure::NotAuthorized, Some(&mechanism)),
                };
                let mut success = Element::new("success", ns::SASL);
                if let Some(data) = &outcome.additional_data {
                    success.push_text(sigil_sasl::xmpp::encode(data));
                }
                self.send_element(&success);
                self.account = Some(jid.clone());
                self.sasl = None;
                // Only SASL uses these; a long session need not keep them.
                self.connection.channel_bindings = Vec::new();
                self.only_mechanisms = None;
                self.claimed = None;
                self.stage = Stage::Authenticated;
                self.framer.set_authenticated();
                self.actions.push_back(Action::Authenticated {
                    jid,
                    mechanism: outcome.mechanism,
                });
                self.restart();
            }
            Err(error) if error.channel_binding_mismatch => {
                // Not a failed credential: the client guessed a binding
                // type (slixmpp 1.8 offers tls-unique), or cannot bind
                // with ours. Said, not counted, so it can try another
                // mechanism within its limit.
                let types: Vec<&str> = self
                    .connection
                    .channel_binding_types()
                    .into_iter()
                    .map(|kind| kind.as_str())
                    .collect();
                let text = format!(
                    "no channel binding type in common; this server supports {}",
                    if types.is_empty() {
                        "none on this connection".to_owned()
                    } else {
                        types.join(", ")
                    }
                );
                self.sasl_failure_with(
                    error.failure,
                    Some(&mechanism),
                    Some(&text),
                    false,
                    error.detail,
                );
            }
            Err(error) => {
                self.sasl_failure_with(error.failure, Some(&mechanism), None, true, error.detail);
            }
        }
    }

    fn sasl_failure(&mut self, failure: Failure, mechanism: Option<&str>) {
        self.sasl_failure_with(failure, mechanism, None, true, "");
    }

    /// Sends `<failure/>` (with a text, if given), counts it toward the
    /// retry limit if `counted`, and reports it ([`Action::AuthFailed`]).
    fn sasl_failure_with(
        &mut self,
        failure: Failure,
        mechanism: Option<&str>,
        text: Option<&str>,
        counted: bool,
        detail: &'static str,
    ) {
        self.sasl = None;
        let account = self.account.take();
        let counted = counted || {
            self.uncounted_failures = self.uncounted_failures.saturating_add(1);
            self.uncounted_failures > MAX_UNCOUNTED_FAILURES
        };
        let mut element =
            Element::new("failure", ns::SASL).with_child(Element::new(failure.as_str(), ns::SASL));
        if let Some(text) = text {
            element.push_child(Element::new("text", ns::SASL).with_text(text));
        }
        self.send_element(&element);
        self.actions.push_back(Action::AuthFailed {
            mechanism: mechanism.unwrap_or_default().to_owned(),
            account,
            failure,
            detail,
            counted,
        });
        if !counted {
            return;
        }
        self.auth_failures += 1;
        if mechanism == Some("EXTERNAL") && self.close_after_external_failure {
            // XEP-0178: the stream is closed after a failed EXTERNAL whose
            // certificate names no usable identity.
            return self.close(None);
        }
        if self.auth_failures >= self.config.max_auth_failures {
            self.close(Some(StreamError::with_text(
                StreamCondition::PolicyViolation,
                "too many failed authentication attempts",
            )));
        }
    }

    fn on_stanza(&mut self, mut stanza: Element) {
        match self.stage {
            Stage::Authenticated => self.on_stanza_before_bind(&stanza),
            Stage::Bound => {
                if let Some(sm) = self.sm.as_mut() {
                    sm.inbound = sm.inbound.wrapping_add(1);
                }
                // (A legacy session request is answered here and counts
                // as handled at once.)
                if stanza.name() == "iq"
                    && stanza.attribute("type") == Some("set")
                    && stanza.has_child("session", ns::SESSION)
                {
                    let reply = Element::new("iq", ns::CLIENT)
                        .with_attribute("type", "result")
                        .with_attribute("id", stanza.attribute("id").unwrap_or_default());
                    return self.send_element(&reply);
                }
                if let Some(jid) = &self.full_jid {
                    stanza.set_attribute("from", jid.to_string());
                }
                if self.confirming {
                    self.outstanding = self.outstanding.saturating_add(1);
                }
                self.actions.push_back(Action::Stanza(stanza));
            }
            _ => self.close(Some(StreamError::new(StreamCondition::NotAuthorized))),
        }
    }

    fn on_stanza_before_bind(&mut self, stanza: &Element) {
        let is_bind = stanza.name() == "iq" && stanza.attribute("type") == Some("set");
        let Some(bind) = stanza.child("bind", ns::BIND).filter(|_| is_bind) else {
            return self.close(Some(StreamError::with_text(
                StreamCondition::NotAuthorized,
                "bind a resource first",
            )));
        };
        let resource = match bind.child("resource", ns::BIND).map(Element::text) {
            None => None,
            Some(text) if text.is_empty() => None,
            Some(text) => match ResourcePart::new(&text) {
                Ok(resource) => Some(resource.into_owned()),
                Err(_) => {
                    let error =
                        StanzaError::with_text(StanzaCondition::BadRequest, "invalid resource");
                    return self.send_element(&error.reply_to(stanza));
                }
            },
        };
        self.bind_id = Some(stanza.attribute("id").unwrap_or_default().to_owned());
        self.waiting = Waiting::Bind;
        self.actions.push_back(Action::Bind { resource });
    }

    fn send_element(&mut self, element: &Element) {
        self.ensure_header();
        let out = self.serialize(element);
        self.actions.push_back(Action::Send(out));
        let is_stanza = element.namespace() == ns::CLIENT
            && matches!(element.name(), "message" | "presence" | "iq");
        let Some(sm) = self.sm.as_mut().filter(|_| is_stanza) else {
            return;
        };
        sm.sent = sm.sent.wrapping_add(1);
        sm.unacked.push_back(element.clone());
        let unacked = sm.unacked.len();
        if unacked > self.config.max_unacked {
            self.close(Some(StreamError::with_text(
                StreamCondition::PolicyViolation,
                "too many stanzas unacknowledged: the client acknowledges too slowly",
            )));
        } else if unacked % ACK_REQUEST_EVERY == 0 {
            sm.requested_at = sm.sent;
            let request = self.serialize(&Element::new("r", NS_SM));
            self.actions.push_back(Action::Send(request));
        }
    }

    /// XEP-0198: `<enable/>`, `<r/>`, `<a/>`, `<resume/>`.
    fn on_sm(&mut self, element: &Element) {
        let failed = |condition: &str| {
            Element::new("failed", NS_SM).with_child(Element::new(condition, ns::STANZA_ERRORS))
        };
        match element.name() {
            "enable" => {
                if self.stage != Stage::Bound || self.sm.is_some() {
                    return self.send_element(&failed("unexpected-request"));
                }
                let mut sm = Box::<StreamManagement>::default();
                // Stanzas still being handled are older than the count.
                sm.uncounted = self.outstanding;
                let mut enabled = Element::new("enabled", NS_SM);
                let asked = matches!(element.attribute("resume"), Some("true" | "1"));
                // Without randomness, no resumption (fail closed): a
                // guessable id would let another stream take the session.
                let id = (asked && self.config.resume_seconds > 0)
                    .then(crate::secret_id)
                    .flatten();
                if let Some(id) = id {
                    enabled = enabled
                        .with_attribute("id", id.clone())
                        .with_attribute("resume", "true")
                        .with_attribute("max", self.config.resume_seconds.to_string());
                    sm.id = Some(id);
                }
                self.sm = Some(sm);
                self.send_element(&enabled);
            }
            "r" => {
                let handled = self.handled();
                let Some(sm) = self.sm.as_mut() else { return };
                if handled != sm.inbound {
                    // Answered by `confirm` once what came before is handled.
                    sm.ack_owed = Some(sm.inbound);
                    return;
                }
                let answer = Element::new("a", NS_SM).with_attribute("h", handled.to_string());
                self.send_element(&answer);
            }
            "a" => {
                let Some(h) = element.attribute("h").and_then(|h| h.parse::<u32>().ok()) else {
                    return self.close(Some(StreamError::with_text(
                        StreamCondition::InvalidXml,
                        "<a/> without a valid h",
                    )));
                };
                let Some(sm) = self.sm.as_mut() else { return };
                let newly = h.wrapping_sub(sm.acked) as usize;
                if newly > sm.unacked.len() {
                    let error = handled_count_too_high(h, sm.sent);
                    return self.close(Some(error));
                }
                sm.unacked.drain(..newly);
                sm.acked = h;
                if sm.unacked.is_empty() {
                    sm.unacked = VecDeque::new();
                }
            }
            "resume" => {
                let previd = element.attribute("previd").unwrap_or_default().to_owned();
                let h = element.attribute("h").and_then(|h| h.parse::<u32>().ok());
                match h {
                    Some(h)
                        if self.stage == Stage::Authenticated
                            && self.config.resume_seconds > 0
                            && !previd.is_empty() =>
                    {
                        self.resumption = Some((previd.clone(), h));
                        self.waiting = Waiting::Resumption;
                        self.actions.push_back(Action::Resume { previd, h });
                    }
                    Some(_) if self.stage == Stage::Bound => {
                        self.send_element(&failed("unexpected-request"));
                    }
                    Some(_) => self.send_element(&failed("item-not-found")),
                    None => self.close(Some(StreamError::with_text(
                        StreamCondition::InvalidXml,
                        "<resume/> without a valid h",
                    ))),
                }
            }
            _ => self.close(Some(StreamError::new(
                StreamCondition::UnsupportedStanzaType,
            ))),
        }
    }
}

/// XEP-0198 §4: an `h` above what was sent.
fn handled_count_too_high(h: u32, sent: u32) -> StreamError {
    let mut error = StreamError::with_text(
        StreamCondition::UndefinedCondition,
        format!("handled-count-too-high: h {h}, sent {sent}"),
    );
    error.application = Some(Box::new(
        Element::new("handled-count-too-high", NS_SM)
            .with_attribute("h", h.to_string())
            .with_attribute("send-count", sent.to_string()),
    ));
    error
}

/// `authcid@domain`, when the authcid is a valid local part.
fn account_jid(authcid: &str, domain: &str) -> Option<BareJid> {
    BareJid::new(&format!("{authcid}@{domain}"))
        .ok()
        .filter(|jid| jid.node().is_some())
}

/// Whether a PLAIN/SCRAM authzid names this account (as a bare JID, or as
/// its local part, which some clients send).
fn authzid_names(authzid: &str, jid: &BareJid) -> bool {
    if authzid.is_empty() {
        return true;
    }
    match BareJid::new(authzid) {
        Ok(parsed) if parsed == *jid => true,
        _ => jid.node().is_some_and(|node| node.as_str() == authzid),
    }
}

/// An empty challenge is sent as an empty element: Strophe.js cannot decode
/// `=` (its `atob("=")` throws).
fn encode_challenge(data: &[u8]) -> String {
    if data.is_empty() {
        String::new()
    } else {
        sigil_sasl::xmpp::encode(data)
    }
}

/// The stream error for a framer error.
pub fn framer_error(error: &FramerError) -> StreamError {
    let condition = match error {
        FramerError::NotWellFormed(_) | FramerError::DataAfterClose => {
            StreamCondition::NotWellFormed
        }
        FramerError::RestrictedXml(_) => StreamCondition::RestrictedXml,
        FramerError::LimitExceeded(_) => StreamCondition::PolicyViolation,
        FramerError::TextAtStreamLevel => StreamCondition::BadFormat,
        FramerError::NestedStreamHeader => StreamCondition::UnsupportedStanzaType,
    };
    StreamError::with_text(condition, error.to_string())
}

/// The account a stream header's `from` names: a bare JID with a local part
/// on `domain` (a full JID counts as its bare JID).
fn account_jid_from(from: &str, domain: &str) -> Option<BareJid> {
    let jid = jid::Jid::new(from).ok()?;
    (jid.node().is_some() && jid.domain().as_str() == domain).then(|| jid.to_bare())
}
