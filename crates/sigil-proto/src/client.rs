//! The client side of a client-to-server stream, mirroring
//! [`crate::server`]: header, STARTTLS, registration by invitation if
//! asked for ([`JoinRequest`]), SASL through [`sigil_sasl`]'s client
//! selection, resource binding, then stanzas.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use jid::{BareJid, FullJid};
use sigil_sasl::client::{
    ClientConfig as SaslConfig, ClientContext, ClientError as SaslError, ClientSession,
};
use sigil_sasl::{ChannelBinding, ChannelBindingType, Failure};
use sigil_xml::{Element, Framer, FramerError, Limits, StreamEvent, ns};

use crate::error::{StanzaError, StreamError};
use crate::frame::{Frame, Opening};
use crate::random_id;

mod register;
mod sasl2;

pub use register::JoinRequest;

/// How the client treats TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// TLS from the first byte (XEP-0368): the stream starts encrypted.
    Direct,
    /// STARTTLS must be offered and is always negotiated.
    Required,
    /// Plaintext without STARTTLS. Only for loopback tests against servers
    /// configured without TLS.
    Unavailable,
}

/// What a client stream needs.
#[derive(Clone)]
pub struct ClientStreamConfig {
    /// The account (its domain is the stream's `to`).
    pub jid: BareJid,
    /// The resource to ask for (`None`: let the server pick).
    pub resource: Option<String>,
    /// TLS handling.
    pub tls: TlsMode,
    /// Registered and allowed SASL mechanisms.
    pub sasl: Arc<SaslConfig>,
    /// What the application supplied for SASL (password, certificate…).
    /// Encryption and channel binding are filled in by the stream.
    pub context: ClientContext,
    /// Framer limits for what the server sends.
    pub limits: Limits,
    /// Join by invitation before logging in: redeem this token and
    /// register the device, then log in (see [`JoinRequest`]).
    pub join: Option<JoinRequest>,
    /// Log in by SASL2 (XEP-0388) where the server offers it, binding
    /// by Bind 2 (XEP-0386) when no exact [`Self::resource`] is asked
    /// for; SASL 1 otherwise.
    pub sasl2: bool,
    /// The client software and device, told to the server with SASL2.
    /// Keep its id for the life of the installation: the server ties the
    /// client's resource (and its tokens) to it.
    pub user_agent: Option<crate::sasl2::UserAgent>,
}

/// Why a client stream ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// The server sent a stream error.
    Stream(StreamError),
    /// SASL failed (the server's `<failure/>`, or our own checks).
    Sasl(SaslError),
    /// Binding the resource failed.
    Bind(StanzaError),
    /// The server refused the FAST token (XEP-0484: `not-authorized` or
    /// `credentials-expired`): drop it and log in otherwise.
    FastTokenRefused(Option<Failure>),
    /// The server refused the invitation's token (XEP-0445: unknown,
    /// used, revoked or expired alike: `item-not-found`).
    TokenRefused(StanzaError),
    /// The server accepted the token but refused the device's
    /// registration (a name taken, a certificate it does not accept…).
    RegistrationRefused(StanzaError),
    /// A join was asked for, but the server offers no registration by
    /// invitation token on this stream (XEP-0445's stream feature).
    RegistrationUnavailable,
    /// The server does not offer STARTTLS although TLS is required.
    TlsUnavailable,
    /// The server refused STARTTLS.
    TlsRefused,
    /// The server sent something this client cannot follow.
    Protocol(String),
    /// The server's XML is broken or over a limit.
    Xml(FramerError),
    /// The server ended the stream.
    Closed,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stream(error) => error.fmt(f),
            Self::Sasl(error) => write!(f, "authentication failed: {error}"),
            Self::Bind(error) => write!(f, "resource binding failed: {error}"),
            Self::FastTokenRefused(failure) => match failure {
                Some(failure) => write!(f, "the server refused the FAST token: {failure}"),
                None => f.write_str("the server refused the FAST token"),
            },
            Self::TokenRefused(error) => write!(f, "the invitation was refused: {error}"),
            Self::RegistrationRefused(error) => {
                write!(f, "the device's registration was refused: {error}")
            }
            Self::RegistrationUnavailable => {
                f.write_str("the server offers no registration by invitation here")
            }
            Self::TlsUnavailable => f.write_str("the server does not offer STARTTLS"),
            Self::TlsRefused => f.write_str("the server refused STARTTLS"),
            Self::Protocol(detail) => write!(f, "protocol error: {detail}"),
            Self::Xml(error) => write!(f, "bad XML from the server: {error}"),
            Self::Closed => f.write_str("the server closed the stream"),
        }
    }
}

impl std::error::Error for ClientError {}

/// What the caller must do next.
#[derive(Debug)]
pub enum Action {
    /// Write this to the server.
    Send(Frame),
    /// Run the TLS handshake, then call [`ClientStream::tls_established`].
    StartTls,
    /// SASL succeeded with this mechanism.
    Authenticated {
        /// The mechanism used.
        mechanism: String,
    },
    /// The resource is bound: the stream is ready for stanzas. After a
    /// resumption, the earlier session's JID, after [`Action::Resumed`].
    Bound(FullJid),
    /// The earlier session resumed (XEP-0198): the server handled this
    /// many of the stanzas sent on it (`h`, in its count). Send again the
    /// ones after those.
    Resumed {
        /// The server's `h`.
        handled: u32,
    },
    /// The earlier session could not be resumed; a new one is being
    /// bound. `handled`, when the server says (it saved its state at a
    /// restart), is how many of the earlier session's stanzas it handled:
    /// only the ones after those need sending again.
    ResumeFailed {
        /// The server's `h`, if given.
        handled: Option<u32>,
    },
    /// The server signed the device's certificate signing request
    /// ([`JoinRequest::signing_request`]): the device is registered with
    /// this certificate (DER), and the stream ends (`Close(Ok(()))`
    /// follows). Log in on a new connection presenting it.
    Enrolled {
        /// The signed certificate, DER.
        certificate: Vec<u8>,
    },
    /// The server issued a FAST token (XEP-0484): keep it like a
    /// password, with its mechanism, for the next logins
    /// ([`sigil_sasl::client::ClientContext::with_fast_token`]); it
    /// replaces any token kept before.
    FastToken {
        /// The HT mechanism it is for.
        mechanism: String,
        /// The token and its expiry.
        token: crate::sasl2::IssuedToken,
    },
    /// A stanza from the server.
    Stanza(Element),
    /// Close the connection; `Err` tells why the stream failed.
    Close(Result<(), ClientError>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Initial,
    StartingTls,
    Encrypted,
    Registering,
    Authenticating,
    Authenticated,
    Resuming,
    Binding,
    Bound,
    Closed,
}

/// An earlier session to resume (XEP-0198), see
/// [`ClientStream::resume_from`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resumption {
    /// The session's full JID.
    pub jid: FullJid,
    /// The resumption id the server gave (`<enabled id/>`).
    pub id: String,
    /// The stanzas received on it (our `h`).
    pub received: u32,
}

/// One client-side stream.
pub struct ClientStream {
    config: ClientStreamConfig,
    framer: Framer,
    stage: Stage,
    encrypted: bool,
    channel_binding: Option<ChannelBinding>,
    sasl: Option<ClientSession>,
    mechanism: Option<String>,
    bind_id: String,
    actions: VecDeque<Action>,
    offered: Vec<String>,
    /// XEP-0198: asked for by the application, offered by the server, and
    /// the counters once enabled.
    sm_wanted: bool,
    sm_offered: bool,
    sm: Option<ClientAcks>,
    /// Resumption asked for, the id the server gave, and the earlier
    /// session to resume.
    resume_wanted: bool,
    resumption_id: Option<String>,
    resume_from: Option<Resumption>,
    bind_offered: bool,
    /// XEP-0352 offered among the features after authentication.
    csi_offered: bool,
    /// A join by invitation under way (boxed: most streams never join).
    joining: Option<Box<register::Joining>>,
    /// The device registered on this stream.
    registered: bool,
    /// A FAST token asked for (XEP-0484) when logging in otherwise.
    token_wanted: bool,
    /// Log in with the token and have it invalidated.
    token_invalidated: bool,
    /// Carbons asked for with Bind 2, and whether they were.
    carbons_wanted: bool,
    carbons_enabled: bool,
    /// The SASL2 exchange under way (boxed: once per stream).
    sasl2: Option<Box<sasl2::Exchange>>,
    /// How this stream logged in.
    path: LoginPath,
}

/// How a stream logged in, once it did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoginPath {
    /// Not (yet).
    #[default]
    None,
    /// SASL (RFC 6120 §6), then resource binding (§7).
    Sasl1,
    /// SASL2 (XEP-0388), then resource binding (RFC 6120 §7).
    Sasl2,
    /// SASL2 with the resource bound inline by Bind 2 (XEP-0386), or an
    /// earlier session resumed inline (XEP-0198).
    Sasl2Bind2,
}

impl fmt::Display for LoginPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "not logged in",
            Self::Sasl1 => "SASL",
            Self::Sasl2 => "SASL2",
            Self::Sasl2Bind2 => "SASL2 + Bind 2",
        })
    }
}

/// XEP-0198 counters on the client side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientAcks {
    /// Stanzas received from the server since `<enabled/>`, modulo 2^32.
    pub received: u32,
    /// Stanzas sent since `<enable/>`, modulo 2^32.
    pub sent: u32,
    /// Of those, what the server last said it handled (`<a h/>`).
    pub acknowledged: u32,
}

impl ClientStream {
    /// A new stream; the stream header is queued at once.
    pub fn new(config: ClientStreamConfig) -> Self {
        let framer = Framer::new(Limits {
            max_unauthenticated_bytes: u64::MAX,
            ..config.limits
        });
        let encrypted = config.tls == TlsMode::Direct;
        let mut stream = Self {
            config,
            framer,
            stage: if encrypted {
                Stage::Encrypted
            } else {
                Stage::Initial
            },
            encrypted,
            channel_binding: None,
            sasl: None,
            mechanism: None,
            bind_id: random_id(),
            actions: VecDeque::new(),
            offered: Vec::new(),
            sm_wanted: false,
            sm_offered: false,
            sm: None,
            resume_wanted: false,
            resumption_id: None,
            resume_from: None,
            bind_offered: false,
            csi_offered: false,
            joining: None,
            registered: false,
            token_wanted: false,
            token_invalidated: false,
            carbons_wanted: false,
            carbons_enabled: false,
            sasl2: None,
            path: LoginPath::None,
        };
        stream.send_header();
        stream
    }

    /// Asks for XEP-0198 acknowledgements once bound, if the server offers
    /// them. Call before the stream is bound.
    pub fn request_stream_management(&mut self) {
        self.sm_wanted = true;
    }

    /// Like [`Self::request_stream_management`], asking the server to keep
    /// the session for a while if the connection drops (XEP-0198
    /// `resume='true'`), so that [`Self::resume_from`] on a new stream
    /// takes it over.
    pub fn request_resumption(&mut self) {
        self.sm_wanted = true;
        self.resume_wanted = true;
    }

    /// The id under which the server keeps this session for resumption,
    /// once it enabled stream management with resumption.
    pub fn resumption_id(&self) -> Option<&str> {
        self.resumption_id.as_deref()
    }

    /// On a new stream, before it binds: resume this earlier session
    /// instead of binding, if the server offers stream management. The
    /// answer is [`Action::Resumed`] then [`Action::Bound`], or
    /// [`Action::ResumeFailed`] and a new session bound as usual.
    pub fn resume_from(&mut self, earlier: Resumption) {
        self.resume_from = Some(earlier);
    }

    /// The acknowledgement counters, once the server enabled stream
    /// management.
    pub fn acks(&self) -> Option<ClientAcks> {
        self.sm
    }

    /// Asks the server how many of our stanzas it has handled (answered
    /// by `<a/>`, read into [`Self::acks`]).
    pub fn request_ack(&mut self) {
        if self.sm.is_some() && self.stage == Stage::Bound {
            self.send(Element::new("r", crate::sm::NS));
        }
    }

    /// Asks for XEP-0280 carbons inline with Bind 2, when the stream
    /// binds that way ([`Self::carbons_enabled`] says whether it did; if
    /// not, the application enables them itself once bound).
    pub fn request_carbons(&mut self) {
        self.carbons_wanted = true;
    }

    /// Asks the server for a FAST token (XEP-0484) when logging in by
    /// SASL2 with anything but a token; it comes as [`Action::FastToken`].
    /// Needs a [`ClientStreamConfig::user_agent`] with an id.
    pub fn request_fast_token(&mut self) {
        self.token_wanted = true;
    }

    /// Logs in with the FAST token and asks the server to invalidate it
    /// once used (`<fast invalidate='true'/>`): a client signing out for
    /// good.
    pub fn invalidate_fast_token(&mut self) {
        self.token_invalidated = true;
    }

    /// Whether carbons were enabled inline with Bind 2.
    pub fn carbons_enabled(&self) -> bool {
        self.carbons_enabled
    }

    /// How the stream logged in.
    pub fn login_path(&self) -> LoginPath {
        self.path
    }

    /// Whether the server offered XEP-0352 client state indication
    /// (`<csi/>` among the features after authentication).
    pub fn offers_csi(&self) -> bool {
        self.csi_offered
    }

    /// Tells the server whether the user is looking (XEP-0352): queues
    /// `<active/>` or `<inactive/>`, a nonza (not counted by XEP-0198).
    /// Returns whether it was queued: only once bound, and only if the
    /// server offered `<csi/>`.
    pub fn set_client_state(&mut self, state: crate::csi::State) -> bool {
        if self.stage != Stage::Bound || !self.csi_offered {
            return false;
        }
        self.send(state.to_element());
        true
    }

    /// For direct TLS: the channel binding data of the connection, before
    /// the first bytes are received.
    pub fn set_channel_binding(&mut self, binding: Option<ChannelBinding>) {
        self.channel_binding = binding;
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The SASL mechanism that succeeded, if any.
    pub fn mechanism(&self) -> Option<&str> {
        self.mechanism.as_deref()
    }

    /// The SASL mechanisms the server offered, in its order.
    pub fn offered_mechanisms(&self) -> &[String] {
        &self.offered
    }

    /// Whether the stream ended.
    pub fn is_closed(&self) -> bool {
        self.stage == Stage::Closed
    }

    /// The handshake after `<proceed/>` finished.
    pub fn tls_established(&mut self, binding: Option<ChannelBinding>) {
        if self.stage != Stage::StartingTls {
            return;
        }
        self.encrypted = true;
        self.channel_binding = binding;
        self.stage = Stage::Encrypted;
        self.framer.reset();
        self.send_header();
    }

    /// One standalone element from the server (a WebSocket message, or a
    /// child of a BOSH body): `<open/>` answers our header, `<close/>`
    /// ends the stream, anything else is an element of the stream.
    pub fn receive_element(&mut self, element: Element) {
        if matches!(self.stage, Stage::Closed | Stage::StartingTls) {
            return;
        }
        if element.is("open", ns::FRAMING) {
            if element.attribute("version") != Some("1.0") {
                self.fail(ClientError::Protocol(
                    "the server does not speak XMPP 1.0".into(),
                ));
            }
        } else if element.is("close", ns::FRAMING) {
            self.actions.push_back(Action::Send(Frame::Close));
            self.stage = Stage::Closed;
            self.actions
                .push_back(Action::Close(Err(ClientError::Closed)));
        } else if element.is("stream", ns::STREAM) {
            self.fail(ClientError::Protocol(
                "a stream header in a framed transport".into(),
            ));
        } else {
            self.on_element(element);
        }
    }

    /// Bytes from the server.
    pub fn receive(&mut self, data: &[u8]) {
        let mut input = data;
        while !input.is_empty() {
            if matches!(self.stage, Stage::Closed | Stage::StartingTls) {
                return;
            }
            match self.framer.next_event(&mut input) {
                Ok(Some(StreamEvent::Open(header))) => {
                    if header.namespace != ns::STREAM || header.default_namespace != ns::CLIENT {
                        return self.fail(ClientError::Protocol("wrong stream namespace".into()));
                    }
                }
                Ok(Some(StreamEvent::Element(element))) => self.on_element(element),
                Ok(Some(StreamEvent::Close)) => {
                    if self.stage != Stage::Closed {
                        self.actions.push_back(Action::Send(Frame::Close));
                        self.stage = Stage::Closed;
                        self.actions
                            .push_back(Action::Close(Err(ClientError::Closed)));
                    }
                    return;
                }
                Ok(None) => break,
                Err(error) => return self.fail(ClientError::Xml(error)),
            }
        }
        // All consumed: the parser's token buffer goes back while the
        // connection waits (a program holding many idle connections).
        self.framer.release_buffers();
    }

    /// Sends a stanza (once bound).
    pub fn send_stanza(&mut self, stanza: Element) {
        if self.stage == Stage::Bound {
            self.send(stanza);
            if let Some(sm) = self.sm.as_mut() {
                sm.sent = sm.sent.wrapping_add(1);
            }
        }
    }

    /// Ends the stream cleanly.
    pub fn close(&mut self) {
        if self.stage == Stage::Closed {
            return;
        }
        self.actions.push_back(Action::Send(Frame::Close));
        self.stage = Stage::Closed;
        self.actions.push_back(Action::Close(Ok(())));
    }

    fn send_header(&mut self) {
        // RFC 6120 §4.7.1: once encrypted, the header names the account
        // (XEP-0388 servers offer SASL2 for it, and only for it).
        let from = (self.encrypted && self.config.jid.node().is_some())
            .then(|| self.config.jid.to_string());
        let opening = Opening {
            to: Some(self.config.jid.domain().to_string()),
            from,
            ..Opening::default()
        };
        self.actions.push_back(Action::Send(Frame::Open(opening)));
    }

    fn send(&mut self, element: Element) {
        self.actions
            .push_back(Action::Send(Frame::Element(element)));
    }

    fn fail(&mut self, error: ClientError) {
        if self.stage == Stage::Closed {
            return;
        }
        self.actions.push_back(Action::Send(Frame::Close));
        self.stage = Stage::Closed;
        self.actions.push_back(Action::Close(Err(error)));
    }

    fn on_element(&mut self, element: Element) {
        if let Some(error) = StreamError::from_element(&element) {
            self.stage = Stage::Closed;
            self.actions
                .push_back(Action::Close(Err(ClientError::Stream(error))));
            return;
        }
        match self.stage {
            Stage::Initial | Stage::Encrypted | Stage::Authenticated
                if element.is("features", ns::STREAM) =>
            {
                self.on_features(&element)
            }
            Stage::Initial if element.namespace() == ns::TLS => {
                if element.name() == "proceed" {
                    self.stage = Stage::StartingTls;
                    self.actions.push_back(Action::StartTls);
                } else {
                    self.fail(ClientError::TlsRefused);
                }
            }
            Stage::Registering if element.is("iq", ns::CLIENT) => {
                self.on_registration_answer(&element)
            }
            Stage::Authenticating if element.namespace() == ns::SASL && self.sasl2.is_none() => {
                self.on_sasl(&element)
            }
            Stage::Authenticating
                if element.namespace() == crate::sasl2::NS && self.sasl2.is_some() =>
            {
                self.on_sasl2(&element)
            }
            Stage::Binding if element.is("iq", ns::CLIENT) => self.on_bind_result(&element),
            Stage::Resuming if element.namespace() == crate::sm::NS => {
                self.on_resume_answer(&element)
            }
            Stage::Bound if element.namespace() == ns::CLIENT => {
                if let Some(sm) = self.sm.as_mut() {
                    sm.received = sm.received.wrapping_add(1);
                }
                self.actions.push_back(Action::Stanza(element));
            }
            Stage::Bound if element.namespace() == crate::sm::NS => self.on_sm(&element),
            // After Bind 2 the server sends the features left.
            Stage::Bound if element.is("features", ns::STREAM) => {
                self.csi_offered = element.has_child("csi", crate::csi::NS);
            }
            _ => self.fail(ClientError::Protocol(format!(
                "unexpected <{}/>",
                element.name()
            ))),
        }
    }

    fn on_features(&mut self, features: &Element) {
        match self.stage {
            Stage::Initial => {
                if self.config.tls == TlsMode::Required {
                    if features.has_child("starttls", ns::TLS) {
                        self.send(Element::new("starttls", ns::TLS));
                    } else {
                        self.fail(ClientError::TlsUnavailable);
                    }
                    return;
                }
                self.on_secure_features(features);
            }
            Stage::Encrypted => self.on_secure_features(features),
            _ => self.start_bind(features),
        }
    }

    fn start_sasl(&mut self, features: &Element) {
        let offered: Vec<String> = features
            .child("mechanisms", ns::SASL)
            .map(|m| {
                m.children()
                    .filter(|c| c.is("mechanism", ns::SASL))
                    .map(Element::text)
                    .collect()
            })
            .unwrap_or_default();
        let server_types: Vec<ChannelBindingType> = features
            .child("sasl-channel-binding", crate::NS_SASL_CB)
            .map(|cb| {
                cb.children()
                    .filter_map(|c| c.attribute("type"))
                    .filter_map(|t| match t {
                        "tls-exporter" => Some(ChannelBindingType::TlsExporter),
                        "tls-server-end-point" => Some(ChannelBindingType::TlsServerEndPoint),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut context = self.config.context.clone().with_encrypted(self.encrypted);
        if let Some(binding) = &self.channel_binding {
            context = context.with_channel_binding(binding.clone());
        }
        // Channel binding only with a type the server names (XEP-0440).
        // Without that list the RFC 9266 default for TLS 1.3 would be
        // tls-exporter, but servers that advertise nothing bind to other
        // data (ejabberd 23.01 answers "Invalid channel binding"): such
        // servers get SCRAM without binding, with the `n` flag.
        context = context.with_server_channel_binding_types(server_types);
        let sasl2 = features
            .child("authentication", crate::sasl2::NS)
            .filter(|_| self.config.sasl2 && self.encrypted)
            .map(crate::sasl2::Offer::from_element);
        // XEP-0474: SCRAM checks the server's hash of what it advertised
        // in the profile used against what arrived here.
        let advertised = sigil_sasl::ssdp::Advertised {
            mechanisms: match &sasl2 {
                Some(offer) => offer.mechanisms.clone(),
                None => offered.clone(),
            },
            channel_bindings: features
                .child("sasl-channel-binding", crate::NS_SASL_CB)
                .map(|cb| {
                    cb.children()
                        .filter_map(|c| c.attribute("type").map(str::to_owned))
                        .collect()
                }),
        };
        let context = context.with_advertised(advertised);
        let offered = match &sasl2 {
            Some(offer) => {
                // A token for a mechanism offered inside <fast/> (XEP-0484).
                let token = self.config.context.fast_token().map(|(m, _)| m.to_owned());
                let mut names = offer.mechanisms.clone();
                names.extend(token.filter(|m| offer.fast.contains(m)));
                names
            }
            None => offered,
        };
        self.offered = offered.clone();
        let names: Vec<&str> = offered.iter().map(String::as_str).collect();
        let mut session = match self.config.sasl.select(context, &names) {
            Ok(session) => session,
            Err(error) => return self.fail(ClientError::Sasl(error)),
        };
        let initial = match session.start() {
            Ok(initial) => initial,
            Err(error) => return self.fail(ClientError::Sasl(error)),
        };
        if let Some(offer) = sasl2 {
            self.authenticate(session.mechanism_name().to_owned(), initial, &offer);
        } else {
            let mut auth = Element::new("auth", ns::SASL)
                .with_attribute("mechanism", session.mechanism_name());
            if let Some(data) = initial {
                auth.push_text(sigil_sasl::xmpp::encode(&data));
            }
            self.send(auth);
        }
        self.sasl = Some(session);
        self.stage = Stage::Authenticating;
    }

    fn on_sasl(&mut self, element: &Element) {
        let Some(session) = self.sasl.as_mut() else {
            return self.fail(ClientError::Protocol(
                "SASL element without exchange".into(),
            ));
        };
        let Ok(data) = sigil_sasl::xmpp::decode(&element.text()) else {
            return self.fail(ClientError::Protocol("bad base64 from the server".into()));
        };
        match element.name() {
            "challenge" => match session.challenge(&data.unwrap_or_default()) {
                Ok(response) => {
                    let response = Element::new("response", ns::SASL)
                        .with_text(sigil_sasl::xmpp::encode(&response));
                    self.send(response);
                }
                Err(error) => {
                    self.send(Element::new("abort", ns::SASL));
                    self.fail(ClientError::Sasl(error));
                }
            },
            "success" => match session.success(data.as_deref()) {
                Ok(()) => {
                    let mechanism = session.mechanism_name().to_owned();
                    self.mechanism = Some(mechanism.clone());
                    self.sasl = None;
                    self.path = LoginPath::Sasl1;
                    self.stage = Stage::Authenticated;
                    self.actions.push_back(Action::Authenticated { mechanism });
                    self.framer.reset();
                    self.send_header();
                }
                Err(error) => self.fail(ClientError::Sasl(error)),
            },
            "failure" => {
                let failure = element
                    .children()
                    .find_map(|c| c.name().parse::<Failure>().ok());
                let text = element.child("text", ns::SASL).map(Element::text);
                let error = session.failure(failure, text);
                self.fail(ClientError::Sasl(error));
            }
            other => self.fail(ClientError::Protocol(format!(
                "unexpected SASL element {other}"
            ))),
        }
    }

    /// `<enabled/>`, `<failed/>`, `<r/>`, `<a/>` once bound.
    fn on_sm(&mut self, element: &Element) {
        match element.name() {
            // Counting started when <enable/> was sent.
            "enabled" => {
                if self.resume_wanted && matches!(element.attribute("resume"), Some("true" | "1")) {
                    self.resumption_id = element.attribute("id").map(str::to_owned);
                }
            }
            "failed" => self.sm = None,
            "r" => {
                if let Some(sm) = self.sm {
                    let answer = Element::new("a", crate::sm::NS)
                        .with_attribute("h", sm.received.to_string());
                    self.send(answer);
                }
            }
            "a" => {
                let h = element.attribute("h").and_then(|h| h.parse::<u32>().ok());
                match (self.sm.as_mut(), h) {
                    (Some(sm), Some(h))
                        if h.wrapping_sub(sm.acknowledged)
                            <= sm.sent.wrapping_sub(sm.acknowledged) =>
                    {
                        sm.acknowledged = h;
                    }
                    (Some(_), _) => self.fail(ClientError::Protocol(
                        "the server acknowledged more than was sent".into(),
                    )),
                    (None, _) => {}
                }
            }
            other => self.fail(ClientError::Protocol(format!("unexpected <{other}/>"))),
        }
    }

    fn start_bind(&mut self, features: &Element) {
        self.sm_offered = features.has_child("sm", crate::sm::NS);
        self.bind_offered = features.has_child("bind", ns::BIND);
        self.csi_offered = features.has_child("csi", crate::csi::NS);
        if self.sm_offered
            && let Some(earlier) = &self.resume_from
        {
            let resume = Element::new("resume", crate::sm::NS)
                .with_attribute("previd", earlier.id.clone())
                .with_attribute("h", earlier.received.to_string());
            self.send(resume);
            self.stage = Stage::Resuming;
            return;
        }
        self.bind();
    }

    /// `<resumed/>` or `<failed/>` in answer to `<resume/>`.
    fn on_resume_answer(&mut self, element: &Element) {
        let Some(earlier) = self.resume_from.take() else {
            return self.fail(ClientError::Protocol("unexpected resumption answer".into()));
        };
        let h = element.attribute("h").and_then(|h| h.parse::<u32>().ok());
        match (element.name(), h) {
            ("resumed", Some(handled)) => self.resumed(earlier, handled),
            ("resumed", None) => {
                self.fail(ClientError::Protocol("<resumed/> without a valid h".into()))
            }
            ("failed", handled) => {
                self.actions.push_back(Action::ResumeFailed { handled });
                self.bind();
            }
            (other, _) => self.fail(ClientError::Protocol(format!(
                "unexpected <{other}/> in answer to <resume/>"
            ))),
        }
    }

    /// The earlier session goes on, the server having handled `handled`
    /// of our stanzas.
    fn resumed(&mut self, earlier: Resumption, handled: u32) {
        self.stage = Stage::Bound;
        // The earlier count goes on: what the server sends again comes
        // after what we received.
        self.sm = Some(ClientAcks {
            received: earlier.received,
            sent: handled,
            acknowledged: handled,
        });
        self.resumption_id = Some(earlier.id);
        self.actions.push_back(Action::Resumed { handled });
        self.actions.push_back(Action::Bound(earlier.jid));
    }

    fn bind(&mut self) {
        if !self.bind_offered {
            return self.fail(ClientError::Protocol(
                "the server offers no resource binding".into(),
            ));
        }
        let mut bind = Element::new("bind", ns::BIND);
        if let Some(resource) = &self.config.resource {
            bind.push_child(Element::new("resource", ns::BIND).with_text(resource.clone()));
        }
        let iq = Element::new("iq", ns::CLIENT)
            .with_attribute("type", "set")
            .with_attribute("id", self.bind_id.clone())
            .with_child(bind);
        self.send(iq);
        self.stage = Stage::Binding;
    }

    fn on_bind_result(&mut self, iq: &Element) {
        if iq.attribute("id") != Some(self.bind_id.as_str()) {
            return self.fail(ClientError::Protocol("unexpected IQ during binding".into()));
        }
        match iq.attribute("type") {
            Some("result") => {
                let jid = iq
                    .child("bind", ns::BIND)
                    .and_then(|b| b.child("jid", ns::BIND))
                    .map(Element::text)
                    .and_then(|text| FullJid::new(&text).ok());
                match jid {
                    Some(jid) => {
                        self.stage = Stage::Bound;
                        self.actions.push_back(Action::Bound(jid));
                        if self.sm_wanted && self.sm_offered {
                            // Our count starts with <enable/>: stanzas sent
                            // from here on count.
                            let mut enable = Element::new("enable", crate::sm::NS);
                            if self.resume_wanted {
                                enable.set_attribute("resume", "true");
                            }
                            self.send(enable);
                            self.sm = Some(ClientAcks::default());
                        }
                    }
                    None => self.fail(ClientError::Protocol(
                        "bind result without a full JID".into(),
                    )),
                }
            }
            _ => {
                let error = StanzaError::from_stanza(iq).unwrap_or_else(|| {
                    StanzaError::new(crate::error::StanzaCondition::UndefinedCondition)
                });
                self.fail(ClientError::Bind(error));
            }
        }
    }
}
