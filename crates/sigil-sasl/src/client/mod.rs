//! The client side: mechanisms, what the application supplied, selection and
//! the exchange.
//!
//! Modelled on Strophe.js: a mechanism has a name, a client-first flag and a
//! priority, and says with [`ClientMechanism::test`] whether it can run with
//! what the application supplied. [`ClientConfig`] holds the registered
//! mechanisms (the built-ins by default) and an optional [`AllowList`];
//! [`ClientConfig::select`] picks the highest-priority mechanism that is
//! offered by the server, registered, allowed and passes its test.
//!
//! # Default priorities
//!
//! | mechanism | priority | runs when the application supplied |
//! |---|---|---|
//! | `EXTERNAL` | 100 | a client certificate |
//! | `SCRAM-SHA-512-PLUS` | 92 | user name, password, channel binding data |
//! | `SCRAM-SHA-256-PLUS` | 91 | user name, password, channel binding data |
//! | `SCRAM-SHA-1-PLUS` | 90 | user name, password, channel binding data |
//! | `SCRAM-SHA-512` | 72 | user name, password |
//! | `SCRAM-SHA-256` | 70 | user name, password |
//! | `SCRAM-SHA-1` | 60 | user name, password |
//! | `PLAIN` | 50 | user name, password, and the stream is encrypted |
//! | `OAUTHBEARER` | 40 | a bearer token |
//! | `ANONYMOUS` | 20 | no identity at all |
//!
//! Why: Strophe.js puts EXTERNAL lowest (10) because a server once offered it
//! to clients that had no certificate, and Strophe chose it and failed. Here
//! EXTERNAL's [`test`](ClientMechanism::test) passes only when the
//! application configured a client certificate, so it is safe to rank it
//! first: with a certificate it is always chosen (the user asked for a
//! passwordless login), without one it is never chosen. Channel binding
//! protects against a man in the middle that a plain SCRAM exchange cannot
//! see, so every `-PLUS` variant ranks above every plain SCRAM; within each
//! group the stronger hash wins, with Strophe's figures. PLAIN sends the
//! password itself, so it ranks below SCRAM and needs an encrypted stream.
//! Equal priorities are broken by the order of the server's offer, then by
//! name, so the choice is deterministic.

mod mechanisms;

use core::any::TypeId;
use core::fmt;
use std::sync::Arc;

use crate::Failure;
use crate::channel_binding::{self, ChannelBinding, ChannelBindingType};
use crate::random::RandomUnavailable;
use crate::saslprep::SaslprepError;
use crate::scram::{self, ScramClient};

pub use mechanisms::{Anonymous, External, OAuthBearer, Plain};

/// `SCRAM-SHA-1` on the client side.
pub type ScramSha1 = ScramClient<scram::Sha1, false>;
/// `SCRAM-SHA-1-PLUS` on the client side.
pub type ScramSha1Plus = ScramClient<scram::Sha1, true>;
/// `SCRAM-SHA-256` on the client side.
pub type ScramSha256 = ScramClient<scram::Sha256, false>;
/// `SCRAM-SHA-256-PLUS` on the client side.
pub type ScramSha256Plus = ScramClient<scram::Sha256, true>;
/// `SCRAM-SHA-512` on the client side.
pub type ScramSha512 = ScramClient<scram::Sha512, false>;
/// `SCRAM-SHA-512-PLUS` on the client side.
pub type ScramSha512Plus = ScramClient<scram::Sha512, true>;

/// The default priorities of the built-in client mechanisms (see the module
/// documentation for the reasons).
pub mod priority {
    /// `EXTERNAL`: first whenever a client certificate is configured.
    pub const EXTERNAL: u16 = 100;
    /// `SCRAM-SHA-512-PLUS`.
    pub const SCRAM_SHA_512_PLUS: u16 = 92;
    /// `SCRAM-SHA-256-PLUS`.
    pub const SCRAM_SHA_256_PLUS: u16 = 91;
    /// `SCRAM-SHA-1-PLUS`.
    pub const SCRAM_SHA_1_PLUS: u16 = 90;
    /// `SCRAM-SHA-512`.
    pub const SCRAM_SHA_512: u16 = 72;
    /// `SCRAM-SHA-256`.
    pub const SCRAM_SHA_256: u16 = 70;
    /// `SCRAM-SHA-1`.
    pub const SCRAM_SHA_1: u16 = 60;
    /// `PLAIN`.
    pub const PLAIN: u16 = 50;
    /// `OAUTHBEARER`.
    pub const OAUTHBEARER: u16 = 40;
    /// `ANONYMOUS`.
    pub const ANONYMOUS: u16 = 20;
}

/// The default cap on one message received from the server (a challenge or
/// the data of `<success/>`), in bytes.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 16 * 1024;

/// A client-side SASL mechanism.
///
/// One value runs one exchange; [`ClientConfig`] makes a fresh one for every
/// selection. Implement this trait to add a mechanism of your own, register it
/// with [`ClientConfig::register`] and, if you want only some mechanisms
/// used, name it in an [`AllowList`].
pub trait ClientMechanism: Send {
    /// The registered SASL name, e.g. `SCRAM-SHA-256`.
    fn name(&self) -> &str;

    /// Whether the client speaks first, sending an initial response in
    /// `<auth/>` ([`initial_response`](Self::initial_response) is called only
    /// for such mechanisms).
    fn client_first(&self) -> bool;

    /// Higher is preferred.
    fn priority(&self) -> u16;

    /// Whether this mechanism can run with what the application supplied.
    fn test(&self, context: &ClientContext) -> bool;

    /// The initial response: `Some(data)` to send in `<auth/>` (which may be
    /// empty data), `None` to send none and wait for a challenge.
    fn initial_response(
        &mut self,
        context: &ClientContext,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        let _ = context;
        Ok(None)
    }

    /// The response to a server challenge.
    fn challenge(
        &mut self,
        context: &ClientContext,
        challenge: &[u8],
    ) -> Result<Vec<u8>, ClientError>;

    /// The server said `<success/>`, with optional additional data. Return an
    /// error if the server did not prove itself (SCRAM's server signature).
    fn success(
        &mut self,
        context: &ClientContext,
        additional_data: Option<&[u8]>,
    ) -> Result<(), ClientError> {
        let _ = context;
        match additional_data {
            None | Some([]) => Ok(()),
            Some(_) => Err(ClientError::InvalidServerMessage(
                "unexpected additional data with success",
            )),
        }
    }

    /// The server said `<failure/>`; a hook to forget secrets or log.
    fn failure(&mut self, context: &ClientContext, failure: Option<Failure>) {
        let _ = (context, failure);
    }
}

/// Why a client exchange could not go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// A `-PLUS` mechanism runs without usable channel binding data.
    ChannelBindingUnavailable,
    /// The server answered `<failure/>` with this condition (`None` when the
    /// condition was missing or unknown) and optional text.
    Failed {
        /// The condition the server sent.
        failure: Option<Failure>,
        /// The server's `<text/>`, if any.
        text: Option<String>,
    },
    /// A message from the server is not what the mechanism expects.
    InvalidServerMessage(&'static str),
    /// The server asks for a SCRAM iteration count outside the accepted
    /// range ([`scram::MIN_ITERATIONS`] to the configured maximum).
    IterationCount(u32),
    /// A message from the server exceeds the configured size cap.
    MessageTooLarge,
    /// The application did not supply what the mechanism needs.
    MissingCredentials(&'static str),
    /// No mechanism is offered, registered, allowed and usable.
    NoMechanism,
    /// The server's SCRAM nonce does not extend ours.
    NonceMismatch,
    /// A step was taken out of order (after success or failure, say).
    OutOfOrder,
    /// The system random number generator failed.
    Random(RandomUnavailable),
    /// A user name or password is refused by SASLprep.
    Saslprep(SaslprepError),
    /// The server reported a SCRAM error (`e=…`).
    ServerError(String),
    /// The server's SCRAM signature is wrong: it does not know our
    /// credentials, or someone sits in between.
    ServerSignatureMismatch,
    /// The server claimed success without proving itself.
    ServerSignatureMissing,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ChannelBindingUnavailable => f.write_str("no usable channel binding data"),
            Self::Failed { failure, text } => {
                f.write_str("the server refused the login")?;
                if let Some(failure) = failure {
                    write!(f, ": {failure}")?;
                }
                if let Some(text) = text {
                    write!(f, " ({text})")?;
                }
                Ok(())
            }
            Self::InvalidServerMessage(why) => write!(f, "invalid message from the server: {why}"),
            Self::IterationCount(count) => {
                write!(
                    f,
                    "the server asks for an unacceptable iteration count {count}"
                )
            }
            Self::MessageTooLarge => f.write_str("the server's message is too large"),
            Self::MissingCredentials(what) => write!(f, "missing credentials: {what}"),
            Self::NoMechanism => f.write_str("no usable SASL mechanism is offered"),
            Self::NonceMismatch => f.write_str("the server's nonce does not extend ours"),
            Self::OutOfOrder => f.write_str("SASL step out of order"),
            Self::Random(e) => e.fmt(f),
            Self::Saslprep(e) => e.fmt(f),
            Self::ServerError(e) => write!(f, "the server reported a SCRAM error: {e}"),
            Self::ServerSignatureMismatch => f.write_str("the server's signature is wrong"),
            Self::ServerSignatureMissing => f.write_str("the server did not prove itself"),
        }
    }
}

impl core::error::Error for ClientError {}

impl From<SaslprepError> for ClientError {
    fn from(e: SaslprepError) -> Self {
        Self::Saslprep(e)
    }
}

impl From<RandomUnavailable> for ClientError {
    fn from(e: RandomUnavailable) -> Self {
        Self::Random(e)
    }
}

/// What the application supplied for a login, and what the connection knows.
///
/// Built with the `with_*` methods; mechanisms read it through the accessors.
#[derive(Clone, Default)]
pub struct ClientContext {
    authcid: Option<String>,
    authzid: Option<String>,
    password: Option<String>,
    client_certificate: bool,
    bearer_token: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    anonymous_trace: Option<String>,
    encrypted: bool,
    channel_bindings: Vec<ChannelBinding>,
    server_channel_binding_types: Option<Vec<ChannelBindingType>>,
    max_iterations: Option<u32>,
    offered: Vec<String>,
}

impl ClientContext {
    /// An empty context: no identity, no credentials, an unencrypted stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// The authentication identity (for XMPP, the localpart of the JID).
    pub fn with_authcid(mut self, authcid: impl Into<String>) -> Self {
        self.authcid = Some(authcid.into());
        self
    }

    /// The authorization identity to request, if different from the
    /// authentication identity.
    pub fn with_authzid(mut self, authzid: impl Into<String>) -> Self {
        self.authzid = Some(authzid.into());
        self
    }

    /// The password.
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Whether the connection presents a client certificate in its TLS
    /// handshake (this is what lets `EXTERNAL` run).
    pub fn with_client_certificate(mut self, presented: bool) -> Self {
        self.client_certificate = presented;
        self
    }

    /// An OAuth 2.0 bearer token for `OAUTHBEARER`.
    pub fn with_bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// The host and port the client connected to (sent by `OAUTHBEARER`).
    pub fn with_host(mut self, host: impl Into<String>, port: Option<u16>) -> Self {
        self.host = Some(host.into());
        self.port = port;
        self
    }

    /// The trace information `ANONYMOUS` sends (RFC 4505), if any.
    pub fn with_anonymous_trace(mut self, trace: impl Into<String>) -> Self {
        self.anonymous_trace = Some(trace.into());
        self
    }

    /// Whether the stream is encrypted (TLS). `PLAIN` runs only if it is.
    pub fn with_encrypted(mut self, encrypted: bool) -> Self {
        self.encrypted = encrypted;
        self
    }

    /// Channel binding data of this connection (for the `-PLUS` mechanisms).
    pub fn with_channel_binding(mut self, binding: ChannelBinding) -> Self {
        self.channel_bindings.retain(|b| b.kind != binding.kind);
        self.channel_bindings.push(binding);
        self
    }

    /// The channel binding types the server advertised (XEP-0440). Without
    /// this, any type is assumed acceptable.
    pub fn with_server_channel_binding_types(mut self, types: Vec<ChannelBindingType>) -> Self {
        self.server_channel_binding_types = Some(types);
        self
    }

    /// The highest SCRAM iteration count to accept from a server (default
    /// [`scram::DEFAULT_MAX_ITERATIONS`]).
    pub fn with_max_iterations(mut self, max: u32) -> Self {
        self.max_iterations = Some(max);
        self
    }

    /// The authentication identity.
    pub fn authcid(&self) -> Option<&str> {
        self.authcid.as_deref()
    }

    /// The authorization identity.
    pub fn authzid(&self) -> Option<&str> {
        self.authzid.as_deref()
    }

    /// The password.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// Whether a client certificate is presented.
    pub fn client_certificate(&self) -> bool {
        self.client_certificate
    }

    /// The bearer token.
    pub fn bearer_token(&self) -> Option<&str> {
        self.bearer_token.as_deref()
    }

    /// The host the client connected to.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// The port the client connected to.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The `ANONYMOUS` trace information.
    pub fn anonymous_trace(&self) -> Option<&str> {
        self.anonymous_trace.as_deref()
    }

    /// Whether the stream is encrypted.
    pub fn encrypted(&self) -> bool {
        self.encrypted
    }

    /// The channel binding to use: the most preferred type we have that the
    /// server accepts.
    pub fn channel_binding(&self) -> Option<&ChannelBinding> {
        channel_binding::choose(
            &self.channel_bindings,
            self.server_channel_binding_types.as_deref(),
        )
    }

    /// The highest SCRAM iteration count accepted.
    pub fn max_iterations(&self) -> u32 {
        self.max_iterations.unwrap_or(scram::DEFAULT_MAX_ITERATIONS)
    }

    /// The mechanisms the server offered (set by [`ClientConfig::select`]).
    pub fn offered(&self) -> &[String] {
        &self.offered
    }

    /// Whether the server offered `name`.
    pub fn server_offers(&self, name: &str) -> bool {
        self.offered.iter().any(|offered| offered == name)
    }
}

impl fmt::Debug for ClientContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientContext")
            .field("authcid", &self.authcid)
            .field("authzid", &self.authzid)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .field("client_certificate", &self.client_certificate)
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "…"))
            .field("encrypted", &self.encrypted)
            .field("channel_bindings", &self.channel_bindings)
            .field("offered", &self.offered)
            .finish_non_exhaustive()
    }
}

/// Which registered mechanisms may be used, by name or by type (like
/// Strophe.js's `mechanisms` connection option).
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    names: Vec<String>,
    types: Vec<TypeId>,
}

impl AllowList {
    /// An allow-list that allows nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows the mechanism registered under `name`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.names.push(name.into());
        self
    }

    /// Allows the mechanism type `M`, whatever its name.
    pub fn mechanism<M: ClientMechanism + 'static>(mut self) -> Self {
        self.types.push(TypeId::of::<M>());
        self
    }

    fn allows(&self, name: &str, type_id: TypeId) -> bool {
        self.names.iter().any(|allowed| allowed == name) || self.types.contains(&type_id)
    }
}

type Factory = Arc<dyn Fn() -> Box<dyn ClientMechanism> + Send + Sync>;

#[derive(Clone)]
struct Registered {
    name: String,
    type_id: TypeId,
    factory: Factory,
}

/// The registered client mechanisms, the allow-list and limits.
#[derive(Clone)]
pub struct ClientConfig {
    mechanisms: Vec<Registered>,
    allow: Option<AllowList>,
    max_message_len: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientConfig {
    /// Every built-in mechanism registered, none filtered out.
    pub fn new() -> Self {
        Self::empty()
            .register::<External>()
            .register::<ScramSha512Plus>()
            .register::<ScramSha256Plus>()
            .register::<ScramSha1Plus>()
            .register::<ScramSha512>()
            .register::<ScramSha256>()
            .register::<ScramSha1>()
            .register::<Plain>()
            .register::<OAuthBearer>()
            .register::<Anonymous>()
    }

    /// No mechanism registered.
    pub fn empty() -> Self {
        Self {
            mechanisms: Vec::new(),
            allow: None,
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
        }
    }

    /// Registers `M`, made with `M::default()` for every exchange. A mechanism
    /// already registered under the same name is replaced.
    pub fn register<M: ClientMechanism + Default + 'static>(self) -> Self {
        self.register_with(M::default)
    }

    /// Registers a mechanism made by `make` for every exchange. A mechanism
    /// already registered under the same name is replaced.
    pub fn register_with<M, F>(mut self, make: F) -> Self
    where
        M: ClientMechanism + 'static,
        F: Fn() -> M + Send + Sync + 'static,
    {
        let name = make().name().to_owned();
        self.mechanisms.retain(|registered| registered.name != name);
        self.mechanisms.push(Registered {
            name,
            type_id: TypeId::of::<M>(),
            factory: Arc::new(move || Box::new(make())),
        });
        self
    }

    /// Uses only the mechanisms `allow` names (replacing any earlier list).
    pub fn allow(mut self, allow: AllowList) -> Self {
        self.allow = Some(allow);
        self
    }

    /// Caps the size of one message from the server (default
    /// [`DEFAULT_MAX_MESSAGE_LEN`]).
    pub fn with_max_message_len(mut self, max: usize) -> Self {
        self.max_message_len = max;
        self
    }

    /// The names of the registered mechanisms, in registration order.
    pub fn registered(&self) -> impl Iterator<Item = &str> {
        self.mechanisms
            .iter()
            .map(|registered| registered.name.as_str())
    }

    /// The usable mechanisms for this offer, best first: offered by the
    /// server, registered, allowed, and passing their test.
    pub fn candidates(&self, context: &ClientContext, offered: &[&str]) -> Vec<String> {
        self.ranked(context, offered)
            .into_iter()
            .map(|(_, mechanism)| mechanism.name().to_owned())
            .collect()
    }

    /// Picks the mechanism for this offer and starts an exchange with it.
    pub fn select(
        &self,
        context: ClientContext,
        offered: &[&str],
    ) -> Result<ClientSession, ClientError> {
        let mut context = context;
        context.offered = offered.iter().map(|name| (*name).to_owned()).collect();
        let (_, mechanism) = self
            .ranked(&context, offered)
            .into_iter()
            .next()
            .ok_or(ClientError::NoMechanism)?;
        Ok(ClientSession {
            mechanism,
            context,
            state: ClientState::New,
            max_message_len: self.max_message_len,
        })
    }

    fn ranked(
        &self,
        context: &ClientContext,
        offered: &[&str],
    ) -> Vec<(usize, Box<dyn ClientMechanism>)> {
        let mut usable: Vec<(usize, Box<dyn ClientMechanism>)> = self
            .mechanisms
            .iter()
            .filter(|registered| {
                self.allow
                    .as_ref()
                    .is_none_or(|allow| allow.allows(&registered.name, registered.type_id))
            })
            .filter_map(|registered| {
                let position = offered.iter().position(|name| *name == registered.name)?;
                let mechanism = (registered.factory)();
                mechanism.test(context).then_some((position, mechanism))
            })
            .collect();
        usable.sort_by(|(pos_a, a), (pos_b, b)| {
            b.priority()
                .cmp(&a.priority())
                .then(pos_a.cmp(pos_b))
                .then_with(|| a.name().cmp(b.name()))
        });
        usable
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("mechanisms", &self.registered().collect::<Vec<_>>())
            .field("allow", &self.allow)
            .field("max_message_len", &self.max_message_len)
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientState {
    New,
    Running,
    Done,
    Failed,
}

/// One client-side exchange with the chosen mechanism.
///
/// Drive it with what arrives from the server; it enforces the order of steps
/// and the message size cap.
pub struct ClientSession {
    mechanism: Box<dyn ClientMechanism>,
    context: ClientContext,
    state: ClientState,
    max_message_len: usize,
}

impl ClientSession {
    /// The chosen mechanism's name, for `<auth mechanism='…'>`.
    pub fn mechanism_name(&self) -> &str {
        self.mechanism.name()
    }

    /// The context the exchange runs with.
    pub fn context(&self) -> &ClientContext {
        &self.context
    }

    /// Whether the exchange completed with a verified success.
    pub fn is_complete(&self) -> bool {
        self.state == ClientState::Done
    }

    /// Starts the exchange: the initial response to put in `<auth/>`
    /// (`None`: send no initial response; `Some` of empty data: send `=`).
    pub fn start(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        if self.state != ClientState::New {
            return Err(self.fail(ClientError::OutOfOrder));
        }
        self.state = ClientState::Running;
        if !self.mechanism.client_first() {
            return Ok(None);
        }
        let result = self.mechanism.initial_response(&self.context);
        self.check(result)
    }

    /// Answers a `<challenge/>`.
    pub fn challenge(&mut self, challenge: &[u8]) -> Result<Vec<u8>, ClientError> {
        if self.state != ClientState::Running {
            return Err(self.fail(ClientError::OutOfOrder));
        }
        if challenge.len() > self.max_message_len {
            return Err(self.fail(ClientError::MessageTooLarge));
        }
        let result = self.mechanism.challenge(&self.context, challenge);
        self.check(result)
    }

    /// Handles `<success/>`; an error means the server did not prove itself
    /// and the stream must not be trusted.
    pub fn success(&mut self, additional_data: Option<&[u8]>) -> Result<(), ClientError> {
        if self.state != ClientState::Running {
            return Err(self.fail(ClientError::OutOfOrder));
        }
        if additional_data.is_some_and(|data| data.len() > self.max_message_len) {
            return Err(self.fail(ClientError::MessageTooLarge));
        }
        let result = self.mechanism.success(&self.context, additional_data);
        self.check(result)?;
        self.state = ClientState::Done;
        Ok(())
    }

    /// Handles `<failure/>`: runs the mechanism's hook and returns the error
    /// to report.
    pub fn failure(&mut self, failure: Option<Failure>, text: Option<String>) -> ClientError {
        if self.state == ClientState::Running {
            self.mechanism.failure(&self.context, failure);
        }
        self.state = ClientState::Failed;
        ClientError::Failed { failure, text }
    }

    fn check<T>(&mut self, result: Result<T, ClientError>) -> Result<T, ClientError> {
        result.map_err(|e| self.fail(e))
    }

    fn fail(&mut self, error: ClientError) -> ClientError {
        self.state = ClientState::Failed;
        error
    }
}

impl fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSession")
            .field("mechanism", &self.mechanism.name())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}
