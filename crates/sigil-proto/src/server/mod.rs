//! The server side of a client-to-server stream: header, features,
//! STARTTLS, SASL, resource binding and the legacy session, then stanzas.
//!
//! [`ServerStream`] is driven by [`ServerStream::receive`] (bytes from the
//! peer) and by the answers to what it asked for, and yields [`Action`]s
//! through [`ServerStream::poll_action`]. It does no I/O: the caller writes
//! what it is told to send, runs the TLS handshake when told, looks up
//! credentials, and registers the bound resource with its router.
//! Output is typed ([`Frame`]): the transport writes it in its framing.
//!
//! Each stage has its module: the opening of each stream (header,
//! features, STARTTLS), SASL, binding and the stanzas of a bound stream,
//! and XEP-0198 stream management.

use std::collections::VecDeque;
use std::sync::Arc;

use jid::{BareJid, FullJid, ResourcePart};
use sigil_sasl::Failure;
use sigil_sasl::server::{
    Authzid, ConnectionInfo, CredentialsRequest, ServerConfig as SaslConfig, ServerSession,
};
use sigil_xml::{Element, Framer, FramerError, Limits, StreamEvent, StreamHeader, ns};

use crate::error::{StreamCondition, StreamError};
use crate::frame::{Frame, Opening};
use crate::random_id;

mod bind;
mod opening;
mod register;
mod sasl;
mod sasl2;
mod sm;

pub use register::{
    DeviceRegistration, NS_ENROLL, NS_IBR_TOKEN, NS_INVITE_LEGACY, NS_PREAUTH, NS_REGISTER,
    NS_REGISTER_FEATURE, Registration, invalid_token, signed_certificate,
};

pub use sm::StreamManagement;

/// The XEP-0198 namespace, by the name it had here first.
pub use crate::sm::NS as NS_SM;

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
    /// Offer XEP-0198 stream management (acknowledgements).
    pub stream_management: bool,
    /// Stanzas sent and not acknowledged before the stream is closed as
    /// too slow (only with stream management).
    pub max_unacked: usize,
    /// Seconds a session whose connection died may be resumed (XEP-0198
    /// resumption, told to the client as `max`); 0: no resumption.
    pub resume_seconds: u64,
    /// More stream features offered after authentication (XEP-0115
    /// capabilities, say).
    pub more_features: Arc<[Element]>,
    /// Offer registration by invitation before authentication (XEP-0445
    /// tokens, XEP-0077): see [`Registration`].
    pub registration: bool,
    /// Offer SASL2 (XEP-0388) with Bind 2 (XEP-0386) beside SASL 1 on
    /// encrypted streams.
    pub sasl2: bool,
    /// With [`Self::registration`]: the server signs the certificate
    /// signing requests of joining devices (it offers
    /// `<enroll xmlns='urn:sigil:enroll:0'/>`).
    pub signs_certificates: bool,
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
            stream_management: true,
            max_unacked: 1024,
            resume_seconds: 0,
            more_features: Arc::new([]),
            registration: false,
            sasl2: true,
            signs_certificates: false,
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
    /// Write this to the peer.
    Send(Frame),
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
    /// An HT login (XEP-0484 FAST): find the token issued to this
    /// account and client for this mechanism and answer with
    /// [`ServerStream::token`] (and [`ServerStream::rotate_token`] when it
    /// is due for replacement).
    NeedToken {
        /// The account named.
        jid: BareJid,
        /// The HT mechanism.
        mechanism: String,
        /// The client's user-agent id.
        agent: String,
    },
    /// Issue a token for this HT mechanism to the client that just
    /// authenticated (its `<user-agent/>` came with
    /// [`Action::Authenticated`]) and answer with
    /// [`ServerStream::token_issued`].
    IssueToken {
        /// The HT mechanism the token is for.
        mechanism: String,
    },
    /// An HT login succeeded with the token whose key was at `index` of
    /// the answer to [`Action::NeedToken`] (before
    /// [`Action::Authenticated`]): a new token becomes the client's
    /// current one, and with `invalidate` (`<fast invalidate='true'/>`)
    /// it goes.
    TokenUsed {
        /// Which key matched.
        index: usize,
        /// The client asked for the token to be invalidated.
        invalidate: bool,
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
        /// The client's `<user-agent/>`, when it logged in by SASL2.
        user_agent: Option<Box<crate::sasl2::UserAgent>>,
    },
    /// A client that has not logged in asks to join by invitation: answer
    /// as [`Registration`] says.
    Register(Registration),
    /// The client asked to bind a resource (`None`: the server picks one).
    /// Register it and answer with [`ServerStream::bound`] or
    /// [`ServerStream::bind_failed`].
    Bind {
        /// The resource requested, already checked by resourceprep.
        resource: Option<ResourcePart>,
        /// A Bind 2 request (XEP-0386) inside SASL2: the resource was
        /// made by the server from the client's tag (a certificate pinned
        /// to a full JID binds its own instead), and what to enable with
        /// the session.
        inline: Option<InlineBind>,
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
    /// The bound client says whether its user is looking (XEP-0352).
    ClientState(crate::csi::State),
    /// Close the connection after writing what was sent. `error` is the
    /// stream error sent, if any.
    Close {
        /// The stream error that ended the stream, `None` for a clean end.
        error: Option<StreamError>,
    },
}

/// What a Bind 2 request enables with the session it binds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InlineBind {
    /// XEP-0280 carbons, from the first message on.
    pub carbons: bool,
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
    Token,
    IssueToken,
    Bind,
    Resumption,
    Registration,
}

/// How a stanza sent with [`ServerStream::send_tracked`] is followed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Followed {
    /// By the client's XEP-0198 acknowledgements.
    ByAcknowledgement,
    /// By nothing the stream knows (no stream management): it is done
    /// with once written.
    ByWrite,
    /// Not sent: the stream has ended. The stanza is given back, for the
    /// caller to send elsewhere.
    NotSent(Box<Element>),
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
    /// counted once past `MAX_UNCOUNTED_FAILURES` (in `sasl`).
    uncounted_failures: u32,
    waiting: Waiting,
    pending: Vec<u8>,
    /// Standalone elements held while waiting, with their size on the
    /// wire.
    held: VecDeque<(Element, usize)>,
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
    /// Tags of tracked stanzas the client acknowledged, for the caller.
    acknowledged_tags: Vec<u64>,
    /// Registration by invitation, once asked for (boxed: most streams
    /// never do).
    registration: Option<Box<register::RegistrationState>>,
    /// A SASL2 exchange, from `<authenticate/>` to `<success/>` or
    /// `<failure/>` (boxed: most streams are past it).
    sasl2: Option<Box<sasl2::Exchange>>,
    /// What the last features advertised for SASL, for SCRAM's XEP-0474
    /// downgrade protection (until authenticated).
    advertised: Option<Box<sigil_sasl::ssdp::Advertised>>,
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
            held: VecDeque::new(),
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
            acknowledged_tags: Vec::new(),
            registration: None,
            sasl2: None,
            advertised: None,
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

    /// One standalone element from the peer (a WebSocket message, or one
    /// child of a BOSH body) that took `bytes` on the wire: `<open/>`
    /// starts or restarts the stream, `<close/>` ends it, anything else is
    /// an element of the stream. It meets the same limits as an element
    /// read from bytes ([`sigil_xml::Framer::count_element`]).
    pub fn receive_element(&mut self, element: Element, bytes: usize) {
        if self.stage == Stage::Closed || self.stage == Stage::StartingTls {
            return;
        }
        // An element that declares no namespace is in the stream's
        // (`jabber:client`), as it would be inside a stream header.
        let element = if element.namespace().is_empty() {
            crate::bosh::renamespace(&element, "", ns::CLIENT)
        } else {
            element
        };
        if self.waiting != Waiting::Nothing {
            if self.hold_check(bytes) {
                self.held.push_back((element, bytes));
            }
            return;
        }
        if let Err(error) = self.framer.count_element(&element, bytes) {
            return self.close(Some(framer_error(&error)));
        }
        if element.is("open", ns::FRAMING) {
            if self.header_received {
                // A second opening without a restart, as a nested stream
                // header in a stream.
                return self.close(Some(framer_error(&FramerError::NestedStreamHeader)));
            }
            // The checks of a stream header, on the header it stands for.
            let header = StreamHeader {
                name: "stream".into(),
                namespace: ns::STREAM.into(),
                default_namespace: ns::CLIENT.into(),
                attributes: element
                    .attributes()
                    .iter()
                    .filter(|a| {
                        a.namespace.is_empty()
                            && matches!(a.name.as_str(), "to" | "version" | "from" | "id")
                    })
                    .cloned()
                    .collect(),
            };
            self.on_header(&header);
        } else if element.is("close", ns::FRAMING) {
            self.close(None);
        } else if element.is("stream", ns::STREAM) {
            // A stream header in a standalone framing is the wrong framing.
            self.close(Some(StreamError::new(StreamCondition::InvalidNamespace)));
        } else {
            self.on_element(element);
        }
    }

    /// Sends a stanza to the client.
    pub fn send_stanza(&mut self, stanza: Element) {
        if self.stage != Stage::Closed {
            self.send_element(stanza, None);
        }
    }

    /// Sends a stanza to the client and follows it by `tag`: once the
    /// client acknowledges it, the tag comes out of
    /// [`Self::take_acknowledged`]; while it does not, it stays with the
    /// stanza in [`Self::take_unacked`] (and across a resumption).
    pub fn send_tracked(&mut self, stanza: Element, tag: u64) -> Followed {
        if self.stage == Stage::Closed {
            return Followed::NotSent(Box::new(stanza));
        }
        let followed = if self.sm.is_some() {
            Followed::ByAcknowledgement
        } else {
            Followed::ByWrite
        };
        self.send_element(stanza, Some(tag));
        followed
    }

    /// Ends the stream: sends the error if any, then the stream's end.
    pub fn close(&mut self, error: Option<StreamError>) {
        if self.stage == Stage::Closed {
            return;
        }
        self.ensure_header();
        if let Some(error) = &error {
            self.actions
                .push_back(Action::Send(Frame::Element(error.to_element())));
        }
        self.actions.push_back(Action::Send(Frame::Close));
        self.stage = Stage::Closed;
        self.pending.clear();
        self.held.clear();
        self.actions.push_back(Action::Close { error });
    }

    /// Whether `bytes` more of input may be held while waiting; closes the
    /// stream if not.
    fn hold_check(&mut self, bytes: usize) -> bool {
        let held: usize = self.held.iter().map(|(_, bytes)| bytes).sum();
        if self.pending.len() + held + bytes > self.config.max_pending_input {
            self.close(Some(StreamError::with_text(
                StreamCondition::PolicyViolation,
                "too much input while waiting",
            )));
            return false;
        }
        true
    }

    fn hold(&mut self, data: &[u8]) {
        if self.hold_check(data.len()) {
            self.pending.extend_from_slice(data);
        }
    }

    /// Goes on with the input held while waiting for an answer.
    fn resume(&mut self) {
        if self.waiting != Waiting::Nothing {
            return;
        }
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.receive(&pending);
        }
        while self.waiting == Waiting::Nothing
            && let Some((element, bytes)) = self.held.pop_front()
        {
            self.receive_element(element, bytes);
        }
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
        self.actions.push_back(Action::Send(Frame::Open(Opening {
            id: Some(self.stream_id.clone()),
            from: Some(self.config.domain.clone()),
            to: None,
        })));
    }

    fn on_element(&mut self, element: Element) {
        if !self.header_received {
            return self.close(Some(StreamError::new(StreamCondition::NotWellFormed)));
        }
        match element.namespace() {
            ns::TLS => self.on_tls(&element),
            ns::SASL => self.on_sasl(&element),
            crate::sasl2::NS => self.on_sasl2(&element),
            ns::CLIENT if matches!(element.name(), "message" | "presence" | "iq") => {
                self.on_stanza(element)
            }
            NS_SM
                if self.sm_offered()
                    && matches!(self.stage, Stage::Authenticated | Stage::Bound) =>
            {
                self.on_sm(&element)
            }
            crate::csi::NS if self.stage == Stage::Bound => {
                match crate::csi::State::from_element(&element) {
                    Some(state) => self.actions.push_back(Action::ClientState(state)),
                    None => self.close(Some(StreamError::new(
                        StreamCondition::UnsupportedStanzaType,
                    ))),
                }
            }
            _ => self.close(Some(StreamError::new(
                StreamCondition::UnsupportedStanzaType,
            ))),
        }
    }

    /// Queues an element for the client (counted and kept for XEP-0198,
    /// with `tag`, when it is a stanza and stream management is on).
    fn send_element(&mut self, element: Element, tag: Option<u64>) {
        self.ensure_header();
        let is_stanza = element.namespace() == ns::CLIENT
            && matches!(element.name(), "message" | "presence" | "iq");
        let tracked = (is_stanza && self.sm.is_some()).then(|| element.clone());
        self.actions
            .push_back(Action::Send(Frame::Element(element)));
        if let Some(stanza) = tracked {
            self.track_sent(stanza, tag);
        }
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
