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

mod config;
mod context;
mod ht;
mod mechanisms;
mod session;

use core::fmt;

use crate::Failure;
use crate::random::RandomUnavailable;
use crate::saslprep::SaslprepError;
mod scram;
pub use self::scram::Scram as ScramClient;

pub use config::{AllowList, ClientConfig};
pub use context::ClientContext;
pub use ht::{HashedToken, HtSha256Endp, HtSha256Expr, HtSha256None};
pub use mechanisms::{Anonymous, External, OAuthBearer, Plain};
pub use session::ClientSession;

/// `SCRAM-SHA-1` on the client side.
pub type ScramSha1 = ScramClient<crate::scram::Sha1, false>;
/// `SCRAM-SHA-1-PLUS` on the client side.
pub type ScramSha1Plus = ScramClient<crate::scram::Sha1, true>;
/// `SCRAM-SHA-256` on the client side.
pub type ScramSha256 = ScramClient<crate::scram::Sha256, false>;
/// `SCRAM-SHA-256-PLUS` on the client side.
pub type ScramSha256Plus = ScramClient<crate::scram::Sha256, true>;
/// `SCRAM-SHA-512` on the client side.
pub type ScramSha512 = ScramClient<crate::scram::Sha512, false>;
/// `SCRAM-SHA-512-PLUS` on the client side.
pub type ScramSha512Plus = ScramClient<crate::scram::Sha512, true>;

/// The default priorities of the built-in client mechanisms (see the module
/// documentation for the reasons).
pub mod priority {
    /// The HT mechanisms (XEP-0484 FAST): a token the server issued is
    /// the quickest login, and is only ever offered for it.
    pub const HT: u16 = 110;
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
    /// XEP-0474: the server's hash of the mechanisms and channel-binding
    /// types it advertised differs from what this client received: a
    /// man-in-the-middle may have removed some to force a weaker one.
    Downgrade,
    /// The server asks for a SCRAM iteration count outside the accepted
    /// range ([`crate::scram::MIN_ITERATIONS`] to the configured maximum).
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
            Self::Downgrade => f.write_str(
                "the mechanisms the server offered were changed on the way (XEP-0474): \
                 possible man-in-the-middle",
            ),
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
