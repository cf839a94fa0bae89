//! The server side: mechanisms as state machines, the registry and the
//! per-connection offer.
//!
//! A server mechanism never calls back into the application. When it needs
//! something it returns a request ([`ServerStep::NeedCredentials`],
//! [`ServerStep::NeedDecision`], [`ServerStep::NeedCustom`]); the caller
//! fetches the answer however it likes (an async database query, say) and
//! feeds it back with [`ServerSession::credentials`],
//! [`ServerSession::decision`] or [`ServerSession::custom`].
//!
//! What a connection is offered is the intersection of the registered
//! mechanisms, the configured allow-list (like Openfire's `sasl.mechs`), and
//! what the connection can support: `EXTERNAL` only when the client presented
//! a certificate, `PLAIN` only over TLS, the `-PLUS` variants only when
//! channel binding data exists.

mod ht;
mod mechanisms;

use core::any::Any;
use core::fmt;
use std::sync::Arc;

use crate::Failure;
use crate::channel_binding::{ChannelBinding, ChannelBindingType};
mod scram;
pub use self::scram::Scram as ScramServer;
use crate::scram::{Algorithm, StoredCredentials};

pub use ht::HashedToken;
pub use mechanisms::{Anonymous, External, MAX_ANONYMOUS_TRACE_CHARS, Plain};

/// The default cap on one message from the client, in bytes.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 8 * 1024;

/// What the server knows about the connection a login runs on.
#[derive(Clone, Debug, Default)]
pub struct ConnectionInfo {
    /// The stream is encrypted (TLS is up).
    pub encrypted: bool,
    /// The client presented a certificate in the TLS handshake.
    pub client_certificate: bool,
    /// The channel binding data this connection can verify.
    pub channel_bindings: Vec<ChannelBinding>,
}

impl ConnectionInfo {
    /// The channel binding types to advertise (XEP-0440), most preferred first.
    pub fn channel_binding_types(&self) -> Vec<ChannelBindingType> {
        ChannelBindingType::ALL
            .into_iter()
            .filter(|kind| self.channel_bindings.iter().any(|b| b.kind == *kind))
            .collect()
    }

    /// This connection's binding data of `kind`.
    pub fn channel_binding(&self, kind: ChannelBindingType) -> Option<&ChannelBinding> {
        self.channel_bindings.iter().find(|b| b.kind == kind)
    }
}

/// A server-side exchange failed: the condition to send, and why (for logs
/// only; it is never sent, so that failures do not tell an attacker which
/// part was wrong).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerError {
    /// The condition to put in `<failure/>`.
    pub failure: Failure,
    /// Why, for logs.
    pub detail: &'static str,
    /// The client and this connection share no channel binding type: it
    /// asked for one the connection does not have (a guess, such as
    /// `tls-unique`), or said `y` (it can bind, but thinks the server
    /// cannot) where `-PLUS` was offered. A protocol mismatch, refused
    /// before any credential is looked at: a server tells the client
    /// which types it has and need not count it as a failed login.
    pub channel_binding_mismatch: bool,
}

impl ServerError {
    /// A failure with a reason.
    pub fn new(failure: Failure, detail: &'static str) -> Self {
        Self {
            failure,
            detail,
            channel_binding_mismatch: false,
        }
    }

    /// The client's channel binding does not fit this connection's (see
    /// [`Self::channel_binding_mismatch`]).
    pub fn channel_binding_mismatch(detail: &'static str) -> Self {
        Self {
            failure: Failure::NotAuthorized,
            detail,
            channel_binding_mismatch: true,
        }
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.failure, self.detail)
    }
}

impl core::error::Error for ServerError {}

/// What arrives at a server mechanism.
pub enum ServerInput<'a> {
    /// `<auth/>` with its initial response (`None`: there was none).
    Start(Option<&'a [u8]>),
    /// `<response/>`.
    Response(&'a [u8]),
    /// The answer to [`ServerStep::NeedCredentials`]: `None` for an unknown
    /// user.
    Credentials(Option<StoredCredentials>),
    /// The answer to [`ServerStep::NeedDecision`].
    Decision(Result<(), Failure>),
    /// The answer to [`ServerStep::NeedCustom`].
    Custom(Box<dyn Any + Send>),
    /// The answer to [`ServerStep::NeedToken`]: the keys of the tokens
    /// the client may hold, or the condition to fail with.
    Token(Result<Vec<crate::ht::TokenCandidate>, Failure>),
}

impl fmt::Debug for ServerInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Start(data) => f
                .debug_tuple("Start")
                .field(&data.map(<[u8]>::len))
                .finish(),
            Self::Response(data) => f.debug_tuple("Response").field(&data.len()).finish(),
            Self::Credentials(creds) => f.debug_tuple("Credentials").field(creds).finish(),
            Self::Decision(decision) => f.debug_tuple("Decision").field(decision).finish(),
            Self::Custom(_) => f.write_str("Custom(..)"),
            Self::Token(answer) => f.debug_tuple("Token").field(answer).finish(),
        }
    }
}

/// What a server mechanism wants next.
pub enum ServerStep {
    /// Send `<challenge/>` with this data and wait for `<response/>`.
    Challenge(Vec<u8>),
    /// Look up the stored credentials and answer with
    /// [`ServerSession::credentials`].
    NeedCredentials(CredentialsRequest),
    /// Decide whether the client certificate may log in with this authzid and
    /// answer with [`ServerSession::decision`] (EXTERNAL).
    NeedDecision(ExternalRequest),
    /// A custom mechanism needs something only the application knows; answer
    /// with [`ServerSession::custom`].
    NeedCustom(Box<dyn Any + Send>),
    /// An HT mechanism needs the key of the client's token (XEP-0484);
    /// answer with [`ServerSession::token`].
    NeedToken(TokenRequest),
    /// The client is authenticated: send `<success/>` with the outcome's
    /// additional data.
    Success(Outcome),
}

impl fmt::Debug for ServerStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Challenge(data) => f.debug_tuple("Challenge").field(&data.len()).finish(),
            Self::NeedCredentials(request) => {
                f.debug_tuple("NeedCredentials").field(request).finish()
            }
            Self::NeedDecision(request) => f.debug_tuple("NeedDecision").field(request).finish(),
            Self::NeedCustom(_) => f.write_str("NeedCustom(..)"),
            Self::NeedToken(request) => f.debug_tuple("NeedToken").field(request).finish(),
            Self::Success(outcome) => f.debug_tuple("Success").field(outcome).finish(),
        }
    }
}

/// The credentials a mechanism needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialsRequest {
    /// The authentication identity (SASLprep'd user name).
    pub authcid: String,
    /// The requested authorization identity, if any.
    pub authzid: Option<String>,
    /// The hash whose credentials are needed; `None` when any will do (PLAIN).
    pub algorithm: Option<Algorithm>,
}

/// An HT login asks for the key of the client's token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// The authentication identity the client named.
    pub authcid: String,
    /// The HT mechanism: the token must have been issued for it.
    pub mechanism: String,
}

/// What the client sent as the EXTERNAL authorization identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authzid {
    /// Nothing: no initial response, then an empty response to the empty
    /// challenge.
    Absent,
    /// An empty initial response (`=` in XMPP).
    Empty,
    /// An authzid.
    Value(String),
}

impl Authzid {
    /// The authzid, if the client named one.
    pub fn value(&self) -> Option<&str> {
        match self {
            Self::Value(value) => Some(value),
            Self::Absent | Self::Empty => None,
        }
    }
}

/// An EXTERNAL login asks for the caller's decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalRequest {
    /// The authzid the client sent.
    pub authzid: Authzid,
}

/// A successful exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The mechanism that ran (filled in by [`ServerSession`]; a mechanism
    /// may leave it empty).
    pub mechanism: String,
    /// Who authenticated (`None` for EXTERNAL, where the certificate speaks,
    /// and for ANONYMOUS).
    pub authcid: Option<String>,
    /// The authorization identity the client requested, if any. The caller
    /// must check that `authcid` may act as it.
    pub authzid: Option<String>,
    /// Data to send with `<success/>` (SCRAM's server signature).
    pub additional_data: Option<Vec<u8>>,
    /// For an HT login: which of the keys given to
    /// [`ServerSession::token`] the client's proof matched.
    pub token_index: Option<usize>,
}

/// A server-side SASL mechanism: a state machine fed [`ServerInput`]s.
///
/// [`ServerSession`] guarantees the order of inputs (only a response after a
/// challenge, only the matching answer after a request, nothing after the
/// end), so an implementation may treat an unexpected input as a bug and
/// answer [`Failure::MalformedRequest`].
pub trait ServerMechanism: Send {
    /// Takes one input and says what is next.
    fn step(&mut self, input: ServerInput<'_>) -> Result<ServerStep, ServerError>;
}

/// What a factory sees when a mechanism is offered or started.
#[derive(Clone, Copy, Debug)]
pub struct Negotiation<'a> {
    /// The connection.
    pub connection: &'a ConnectionInfo,
    /// Whether some `-PLUS` mechanism is offered on this connection (SCRAM
    /// uses it to detect a downgrade: a client that says `y` although we
    /// offered channel binding).
    pub plus_offered: bool,
    /// What the server advertised in the profile in use, for SCRAM's
    /// XEP-0474 `h` attribute (`None`: no downgrade protection).
    pub advertised: Option<&'a crate::ssdp::Advertised>,
}

/// Makes server mechanisms and says where they may run.
pub trait ServerMechanismFactory: Send + Sync {
    /// The registered SASL name.
    fn name(&self) -> &str;

    /// Whether the mechanism may run on this connection: `Err` with the
    /// condition to report when a client asks for it anyway
    /// ([`Failure::EncryptionRequired`] for PLAIN without TLS, say).
    fn available(&self, connection: &ConnectionInfo) -> Result<(), Failure>;

    /// A fresh mechanism for one exchange.
    fn start(&self, negotiation: Negotiation<'_>) -> Result<Box<dyn ServerMechanism>, ServerError>;

    /// Whether the mechanism logs in with a token the server issued
    /// (XEP-0484 FAST): such mechanisms are never in the mechanism lists
    /// ([`ServerConfig::offered`]), only in [`ServerConfig::offered_tokens`].
    fn token_based(&self) -> bool {
        false
    }
}

/// The registered server mechanisms, the allow-list and limits.
#[derive(Clone)]
pub struct ServerConfig {
    factories: Vec<Arc<dyn ServerMechanismFactory>>,
    allow: Option<Vec<String>>,
    max_message_len: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerConfig {
    /// Every built-in mechanism registered, in the order they are offered;
    /// `ANONYMOUS` is registered but not allowed (anonymous login is a choice
    /// to make explicitly, with [`ServerConfig::allow`]).
    pub fn new() -> Self {
        let mut config = Self::empty();
        for plus in [true, false] {
            for algorithm in Algorithm::ALL {
                config = config.register(ScramServer::factory(algorithm, plus));
            }
        }
        let mut config = config
            .register(Plain::factory())
            .register(External::factory())
            .register(Anonymous::factory());
        for name in crate::ht::MECHANISMS {
            config = config.register(HashedToken::factory(name));
        }
        let allowed: Vec<String> = config
            .factories
            .iter()
            .map(|factory| factory.name().to_owned())
            .filter(|name| name != "ANONYMOUS")
            .collect();
        config.allow(allowed)
    }

    /// No mechanism registered.
    pub fn empty() -> Self {
        Self {
            factories: Vec::new(),
            allow: None,
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
        }
    }

    /// Registers a mechanism (replacing one of the same name). Mechanisms are
    /// offered in registration order.
    pub fn register(mut self, factory: impl ServerMechanismFactory + 'static) -> Self {
        self.factories
            .retain(|registered| registered.name() != factory.name());
        self.factories.push(Arc::new(factory));
        self
    }

    /// Offers only the registered mechanisms named here (replacing any
    /// earlier list).
    pub fn allow<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.allow = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Caps the size of one client message (default
    /// [`DEFAULT_MAX_MESSAGE_LEN`]).
    pub fn with_max_message_len(mut self, max: usize) -> Self {
        self.max_message_len = max;
        self
    }

    /// The mechanisms to advertise on this connection, in preference order.
    pub fn offered<'a>(&'a self, connection: &'a ConnectionInfo) -> Vec<&'a str> {
        self.usable(connection)
            .filter(|factory| !factory.token_based())
            .map(|factory| factory.name())
            .collect()
    }

    /// The token mechanisms usable on this connection (XEP-0484's
    /// `<fast/>` list), in preference order.
    pub fn offered_tokens<'a>(&'a self, connection: &'a ConnectionInfo) -> Vec<&'a str> {
        self.usable(connection)
            .filter(|factory| factory.token_based())
            .map(|factory| factory.name())
            .collect()
    }

    /// Starts the exchange the client asked for with `<auth mechanism='name'/>`.
    pub fn start(
        &self,
        name: &str,
        connection: &ConnectionInfo,
    ) -> Result<ServerSession, ServerError> {
        self.start_advertised(name, connection, None)
    }

    /// [`Self::start`], telling SCRAM what was advertised for XEP-0474
    /// downgrade protection.
    pub fn start_advertised(
        &self,
        name: &str,
        connection: &ConnectionInfo,
        advertised: Option<&crate::ssdp::Advertised>,
    ) -> Result<ServerSession, ServerError> {
        let factory = self
            .factories
            .iter()
            .find(|factory| factory.name() == name && self.allowed(factory.name()))
            .ok_or(ServerError::new(
                Failure::InvalidMechanism,
                "mechanism not offered",
            ))?;
        factory.available(connection).map_err(|failure| {
            ServerError::new(failure, "mechanism not available on this connection")
        })?;
        let plus_offered = self
            .usable(connection)
            .any(|factory| factory.name().ends_with("-PLUS") && !factory.token_based());
        let mechanism = factory.start(Negotiation {
            connection,
            plus_offered,
            advertised,
        })?;
        Ok(ServerSession {
            name: name.to_owned(),
            mechanism,
            state: ServerState::New,
            max_message_len: self.max_message_len,
        })
    }

    fn allowed(&self, name: &str) -> bool {
        self.allow
            .as_ref()
            .is_none_or(|allow| allow.iter().any(|allowed| allowed == name))
    }

    fn usable<'a>(
        &'a self,
        connection: &'a ConnectionInfo,
    ) -> impl Iterator<Item = &'a Arc<dyn ServerMechanismFactory>> {
        self.factories.iter().filter(move |factory| {
            self.allowed(factory.name()) && factory.available(connection).is_ok()
        })
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field(
                "mechanisms",
                &self.factories.iter().map(|f| f.name()).collect::<Vec<_>>(),
            )
            .field("allow", &self.allow)
            .field("max_message_len", &self.max_message_len)
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ServerState {
    New,
    AwaitingResponse,
    AwaitingCredentials,
    AwaitingDecision,
    AwaitingCustom,
    AwaitingToken,
    Done,
}

/// One server-side exchange. It checks the order of steps and the size of
/// client messages before the mechanism sees them, and ends on the first
/// error.
pub struct ServerSession {
    name: String,
    mechanism: Box<dyn ServerMechanism>,
    state: ServerState,
    max_message_len: usize,
}

impl ServerSession {
    /// The mechanism's name.
    pub fn mechanism_name(&self) -> &str {
        &self.name
    }

    /// Whether the exchange has ended (with success or failure).
    pub fn is_done(&self) -> bool {
        self.state == ServerState::Done
    }

    /// `<auth/>` arrived with this initial response (`None`: none).
    pub fn start(&mut self, initial_response: Option<&[u8]>) -> Result<ServerStep, ServerError> {
        self.expect(ServerState::New)?;
        if initial_response.is_some_and(|data| data.len() > self.max_message_len) {
            return Err(self.too_large());
        }
        self.run(ServerInput::Start(initial_response))
    }

    /// `<response/>` arrived.
    pub fn response(&mut self, data: &[u8]) -> Result<ServerStep, ServerError> {
        self.expect(ServerState::AwaitingResponse)?;
        if data.len() > self.max_message_len {
            return Err(self.too_large());
        }
        self.run(ServerInput::Response(data))
    }

    /// The answer to [`ServerStep::NeedCredentials`] (`None`: no such user,
    /// or no credentials of the requested hash).
    pub fn credentials(
        &mut self,
        credentials: Option<StoredCredentials>,
    ) -> Result<ServerStep, ServerError> {
        self.expect(ServerState::AwaitingCredentials)?;
        self.run(ServerInput::Credentials(credentials))
    }

    /// The answer to [`ServerStep::NeedDecision`].
    pub fn decision(&mut self, decision: Result<(), Failure>) -> Result<ServerStep, ServerError> {
        self.expect(ServerState::AwaitingDecision)?;
        self.run(ServerInput::Decision(decision))
    }

    /// The answer to [`ServerStep::NeedCustom`].
    pub fn custom(&mut self, answer: Box<dyn Any + Send>) -> Result<ServerStep, ServerError> {
        self.expect(ServerState::AwaitingCustom)?;
        self.run(ServerInput::Custom(answer))
    }

    /// The answer to [`ServerStep::NeedToken`]: the tokens issued to this
    /// client for this mechanism (XEP-0484 keeps two: the new one and the
    /// one in use; [`Outcome::token_index`] says which one matched), each
    /// a [`crate::ht::TokenKey`] or a [`crate::ht::TokenCandidate`] that
    /// refuses a matching proof (`credentials-expired` for an expired
    /// token), or the condition to fail with before any proof is checked.
    pub fn token<K: Into<crate::ht::TokenCandidate>>(
        &mut self,
        answer: Result<Vec<K>, Failure>,
    ) -> Result<ServerStep, ServerError> {
        self.expect(ServerState::AwaitingToken)?;
        let answer = answer.map(|keys| keys.into_iter().map(Into::into).collect());
        self.run(ServerInput::Token(answer))
    }

    /// The client sent `<abort/>`.
    pub fn abort(&mut self) -> ServerError {
        self.state = ServerState::Done;
        ServerError::new(Failure::Aborted, "the client aborted")
    }

    fn expect(&mut self, wanted: ServerState) -> Result<(), ServerError> {
        if self.state == wanted {
            return Ok(());
        }
        let detail = if self.state == ServerState::Done {
            "step after the exchange ended"
        } else {
            "step out of order"
        };
        self.state = ServerState::Done;
        Err(ServerError::new(Failure::MalformedRequest, detail))
    }

    fn too_large(&mut self) -> ServerError {
        self.state = ServerState::Done;
        ServerError::new(Failure::MalformedRequest, "message too large")
    }

    fn run(&mut self, input: ServerInput<'_>) -> Result<ServerStep, ServerError> {
        let mut result = self.mechanism.step(input);
        self.state = match &result {
            Ok(ServerStep::Challenge(_)) => ServerState::AwaitingResponse,
            Ok(ServerStep::NeedCredentials(_)) => ServerState::AwaitingCredentials,
            Ok(ServerStep::NeedDecision(_)) => ServerState::AwaitingDecision,
            Ok(ServerStep::NeedCustom(_)) => ServerState::AwaitingCustom,
            Ok(ServerStep::NeedToken(_)) => ServerState::AwaitingToken,
            Ok(ServerStep::Success(_)) | Err(_) => ServerState::Done,
        };
        if let Ok(ServerStep::Success(outcome)) = &mut result {
            outcome.mechanism.clone_from(&self.name);
        }
        result
    }
}

impl fmt::Debug for ServerSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSession")
            .field("mechanism", &self.name)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// The error for an input a mechanism did not expect.
pub(crate) fn unexpected() -> ServerError {
    ServerError::new(Failure::MalformedRequest, "unexpected input")
}

/// Decodes a client message as UTF-8.
pub(crate) fn utf8(data: &[u8]) -> Result<&str, ServerError> {
    core::str::from_utf8(data).map_err(|_| ServerError::new(Failure::MalformedRequest, "not UTF-8"))
}
