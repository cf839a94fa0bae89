//! The client's one error type.

use std::fmt;

use sigil_proto::client::ClientError;
use sigil_proto::error::StanzaError;

/// Why a connection failed or ended, or a request failed.
#[derive(Debug)]
pub enum Error {
    /// The configuration is incomplete or invalid.
    Config(String),
    /// Connecting or reading/writing the socket failed.
    Io(std::io::Error),
    /// The TLS handshake failed (certificate not trusted, refused client
    /// certificate…).
    Tls(String),
    /// The XMPP stream failed: stream error, SASL failure, bind error.
    Stream(ClientError),
    /// The transport broke its protocol (HTTP status, WebSocket handshake,
    /// BOSH body).
    Protocol(String),
    /// An IQ request was answered with an error.
    Iq(StanzaError),
    /// No answer in time.
    Timeout,
    /// Joining by invitation with a certificate signing request
    /// ([`sigil_proto::client::JoinRequest::signing_request`]): the server
    /// registered the device with this certificate (DER), which it signed
    /// for the request's key, and ended the stream. Connect again
    /// presenting it ([`crate::join()`] does).
    Enrolled(Vec<u8>),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(detail) => write!(f, "configuration: {detail}"),
            Self::Io(error) => write!(f, "connection: {error}"),
            Self::Tls(detail) => write!(f, "TLS: {detail}"),
            Self::Stream(error) => error.fmt(f),
            Self::Protocol(detail) => f.write_str(detail),
            Self::Iq(error) => write!(f, "the request failed: {error}"),
            Self::Timeout => f.write_str("timed out"),
            Self::Enrolled(_) => f.write_str(
                "the server signed the device's certificate: connect again presenting it",
            ),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// Whether trying again later might help (the server was unreachable
    /// or went away), as opposed to a refusal or a configuration mistake.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Io(_) | Self::Timeout => true,
            Self::Stream(ClientError::Closed) => true,
            Self::Stream(ClientError::Stream(error)) => matches!(
                error.condition,
                sigil_proto::error::StreamCondition::SystemShutdown
                    | sigil_proto::error::StreamCondition::ConnectionTimeout
                    | sigil_proto::error::StreamCondition::ResourceConstraint
                    | sigil_proto::error::StreamCondition::Reset
                    | sigil_proto::error::StreamCondition::InternalServerError
            ),
            _ => false,
        }
    }
}
