//! The SASL failure conditions of RFC 6120 §6.5.
//!
//! What each kind of bad input gets from the server side of this crate:
//!
//! - `malformed-request`: a syntax error; a missing, repeated or unknown
//!   SCRAM attribute; a nonce mismatch; invalid UTF-8; an oversized
//!   message; a step out of order or after the end;
//! - `not-authorized`: a wrong proof or password, an unknown user, a
//!   channel binding mismatch or downgrade;
//! - `incorrect-encoding`: bad base64 ([`crate::xmpp::decode`]);
//! - `invalid-authzid`: a NUL in an EXTERNAL authzid;
//! - `encryption-required`: PLAIN on an unencrypted stream;
//! - `invalid-mechanism`: a mechanism this connection was not offered.

use core::fmt;
use core::str::FromStr;

/// A SASL failure condition, as carried in `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`.
///
/// Variants are in the order RFC 6120 §6.5 lists them (which is alphabetical).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    /// The receiving entity acknowledges that the exchange was aborted by the initiating entity.
    Aborted,
    /// The account of the principal is temporarily disabled.
    AccountDisabled,
    /// The credentials provided are valid but have expired (an expired certificate, say).
    CredentialsExpired,
    /// The mechanism requested may be used only over an encrypted stream.
    EncryptionRequired,
    /// The data provided was not correctly base64-encoded.
    IncorrectEncoding,
    /// The authzid is not valid, or the authcid may not act on its behalf.
    InvalidAuthzid,
    /// The mechanism is not supported, or not offered on this connection.
    InvalidMechanism,
    /// The request is malformed (a broken SASL message, a step out of order).
    MalformedRequest,
    /// The mechanism is weaker than server policy permits for this principal.
    MechanismTooWeak,
    /// The credentials are wrong, or the principal is unknown.
    NotAuthorized,
    /// A temporary error on the receiving side; the client may try again later.
    TemporaryAuthFailure,
}

impl Failure {
    /// Every condition, in RFC order.
    pub const ALL: [Self; 11] = [
        Self::Aborted,
        Self::AccountDisabled,
        Self::CredentialsExpired,
        Self::EncryptionRequired,
        Self::IncorrectEncoding,
        Self::InvalidAuthzid,
        Self::InvalidMechanism,
        Self::MalformedRequest,
        Self::MechanismTooWeak,
        Self::NotAuthorized,
        Self::TemporaryAuthFailure,
    ];

    /// The XML element name of the condition, e.g. `not-authorized`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aborted => "aborted",
            Self::AccountDisabled => "account-disabled",
            Self::CredentialsExpired => "credentials-expired",
            Self::EncryptionRequired => "encryption-required",
            Self::IncorrectEncoding => "incorrect-encoding",
            Self::InvalidAuthzid => "invalid-authzid",
            Self::InvalidMechanism => "invalid-mechanism",
            Self::MalformedRequest => "malformed-request",
            Self::MechanismTooWeak => "mechanism-too-weak",
            Self::NotAuthorized => "not-authorized",
            Self::TemporaryAuthFailure => "temporary-auth-failure",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of the RFC 6120 §6.5 condition names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownFailure(pub String);

impl fmt::Display for UnknownFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown SASL failure condition {:?}", self.0)
    }
}

impl core::error::Error for UnknownFailure {}

impl FromStr for Failure {
    type Err = UnknownFailure;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|failure| failure.as_str() == s)
            .ok_or_else(|| UnknownFailure(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for failure in Failure::ALL {
            assert_eq!(failure.as_str().parse::<Failure>(), Ok(failure));
        }
        assert_eq!(Failure::InvalidAuthzid.to_string(), "invalid-authzid");
        assert!("temporary-failure".parse::<Failure>().is_err());
    }
}
