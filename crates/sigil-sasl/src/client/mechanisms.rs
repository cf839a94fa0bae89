//! The built-in client mechanisms other than SCRAM.

use super::{ClientContext, ClientError, ClientMechanism, priority};
use crate::saslprep::saslprep;
use crate::scram::escape_saslname;

/// `EXTERNAL` (RFC 4422 Appendix A): the TLS client certificate authenticates.
///
/// Per XEP-0178 the initial response carries the authzid only when the
/// application set one (a certificate with several identities needs it);
/// otherwise it is empty, which XMPP encodes as `=`.
#[derive(Debug, Default)]
pub struct External;

impl ClientMechanism for External {
    fn name(&self) -> &str {
        "EXTERNAL"
    }

    fn client_first(&self) -> bool {
        true
    }

    fn priority(&self) -> u16 {
        priority::EXTERNAL
    }

    fn test(&self, context: &ClientContext) -> bool {
        context.client_certificate()
    }

    fn initial_response(
        &mut self,
        context: &ClientContext,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        Ok(Some(authzid_bytes(context)))
    }

    fn challenge(
        &mut self,
        context: &ClientContext,
        _challenge: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        Ok(authzid_bytes(context))
    }
}

fn authzid_bytes(context: &ClientContext) -> Vec<u8> {
    context.authzid().unwrap_or_default().as_bytes().to_vec()
}

/// `PLAIN` (RFC 4616): `authzid NUL authcid NUL password`, only over an
/// encrypted stream.
#[derive(Debug, Default)]
pub struct Plain;

impl ClientMechanism for Plain {
    fn name(&self) -> &str {
        "PLAIN"
    }

    fn client_first(&self) -> bool {
        true
    }

    fn priority(&self) -> u16 {
        priority::PLAIN
    }

    fn test(&self, context: &ClientContext) -> bool {
        context.encrypted() && context.authcid().is_some() && context.password().is_some()
    }

    fn initial_response(
        &mut self,
        context: &ClientContext,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        let authcid = context
            .authcid()
            .ok_or(ClientError::MissingCredentials("user name"))?;
        let password = context
            .password()
            .ok_or(ClientError::MissingCredentials("password"))?;
        let authcid = saslprep(authcid)?;
        let password = saslprep(password)?;
        let authzid = context.authzid().unwrap_or_default();
        if [authzid, &authcid, &password]
            .iter()
            .any(|part| part.contains('\0'))
        {
            return Err(ClientError::MissingCredentials("credentials contain NUL"));
        }
        let mut message = Vec::with_capacity(authzid.len() + authcid.len() + password.len() + 2);
        message.extend_from_slice(authzid.as_bytes());
        message.push(0);
        message.extend_from_slice(authcid.as_bytes());
        message.push(0);
        message.extend_from_slice(password.as_bytes());
        Ok(Some(message))
    }

    fn challenge(
        &mut self,
        context: &ClientContext,
        challenge: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        // A server that wants the credentials after an empty challenge.
        if !challenge.is_empty() {
            return Err(ClientError::InvalidServerMessage(
                "PLAIN takes no challenge",
            ));
        }
        self.initial_response(context)
            .map(Option::unwrap_or_default)
    }
}

/// `ANONYMOUS` (RFC 4505): runs only when the application supplied no
/// identity at all.
#[derive(Debug, Default)]
pub struct Anonymous;

impl ClientMechanism for Anonymous {
    fn name(&self) -> &str {
        "ANONYMOUS"
    }

    fn client_first(&self) -> bool {
        true
    }

    fn priority(&self) -> u16 {
        priority::ANONYMOUS
    }

    fn test(&self, context: &ClientContext) -> bool {
        !context.client_certificate()
            && context.authcid().is_none()
            && context.password().is_none()
            && context.bearer_token().is_none()
    }

    fn initial_response(
        &mut self,
        context: &ClientContext,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        Ok(Some(
            context
                .anonymous_trace()
                .unwrap_or_default()
                .as_bytes()
                .to_vec(),
        ))
    }

    fn challenge(
        &mut self,
        context: &ClientContext,
        _challenge: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        self.initial_response(context)
            .map(Option::unwrap_or_default)
    }
}

/// `OAUTHBEARER` (RFC 7628), client side only.
///
/// On an error the server sends a JSON challenge; the client answers with the
/// single byte `0x01` and the server then sends `<failure/>`. The JSON is kept
/// in [`OAuthBearer::error`].
#[derive(Debug, Default)]
pub struct OAuthBearer {
    error: Option<String>,
}

impl OAuthBearer {
    /// The server's JSON error document, if it sent one.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

impl ClientMechanism for OAuthBearer {
    fn name(&self) -> &str {
        "OAUTHBEARER"
    }

    fn client_first(&self) -> bool {
        true
    }

    fn priority(&self) -> u16 {
        priority::OAUTHBEARER
    }

    fn test(&self, context: &ClientContext) -> bool {
        context.bearer_token().is_some()
    }

    fn initial_response(
        &mut self,
        context: &ClientContext,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        let token = context
            .bearer_token()
            .ok_or(ClientError::MissingCredentials("bearer token"))?;
        if token.bytes().any(|b| !(0x20..0x7f).contains(&b)) {
            return Err(ClientError::MissingCredentials(
                "the bearer token is not printable ASCII",
            ));
        }
        let mut message = String::from("n,");
        if let Some(authzid) = context.authzid() {
            message.push_str("a=");
            message.push_str(&escape_saslname(authzid));
        }
        message.push_str(",\x01");
        if let Some(host) = context.host() {
            message.push_str("host=");
            message.push_str(host);
            message.push('\x01');
        }
        if let Some(port) = context.port() {
            message.push_str(&format!("port={port}\x01"));
        }
        message.push_str("auth=Bearer ");
        message.push_str(token);
        message.push_str("\x01\x01");
        Ok(Some(message.into_bytes()))
    }

    fn challenge(
        &mut self,
        _context: &ClientContext,
        challenge: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        self.error = Some(String::from_utf8_lossy(challenge).into_owned());
        Ok(vec![0x01])
    }
}
