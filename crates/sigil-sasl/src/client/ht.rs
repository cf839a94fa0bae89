//! The HT mechanisms on the client ([`crate::ht`]): usable when the
//! application holds a FAST token for that very mechanism
//! ([`ClientContext::with_fast_token`]) and, for a bound one, the
//! connection has the binding; the server's answer is checked (mutual
//! authentication).

use super::{ClientContext, ClientError, ClientMechanism, priority};
use crate::ht;

/// `HT-SHA-256-NONE`, `-ENDP` or `-EXPR`, by `NAME`'s index in
/// [`ht::MECHANISMS`].
#[derive(Debug, Default)]
pub struct HashedToken<const INDEX: usize> {
    cb_data: Vec<u8>,
}

/// `HT-SHA-256-ENDP` on the client side.
pub type HtSha256Endp = HashedToken<0>;
/// `HT-SHA-256-EXPR` on the client side.
pub type HtSha256Expr = HashedToken<1>;
/// `HT-SHA-256-NONE` on the client side.
pub type HtSha256None = HashedToken<2>;

impl<const INDEX: usize> HashedToken<INDEX> {
    const NAME: &'static str = ht::MECHANISMS[INDEX];

    fn cb_data(context: &ClientContext) -> Option<Vec<u8>> {
        match ht::binding_of(Self::NAME)? {
            ht::Binding::Unbound => Some(Vec::new()),
            ht::Binding::Channel(kind) => context.channel_binding_of(kind).map(|b| b.data.clone()),
        }
    }

    fn token(context: &ClientContext) -> Option<&str> {
        context
            .fast_token()
            .filter(|(mechanism, _)| *mechanism == Self::NAME)
            .map(|(_, token)| token)
    }
}

impl<const INDEX: usize> ClientMechanism for HashedToken<INDEX> {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn client_first(&self) -> bool {
        true
    }

    fn priority(&self) -> u16 {
        priority::HT
    }

    fn test(&self, context: &ClientContext) -> bool {
        context.encrypted()
            && context.authcid().is_some()
            && Self::token(context).is_some()
            && Self::cb_data(context).is_some()
    }

    fn initial_response(
        &mut self,
        context: &ClientContext,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        let authcid = context
            .authcid()
            .ok_or(ClientError::MissingCredentials("user"))?;
        let token = Self::token(context).ok_or(ClientError::MissingCredentials("FAST token"))?;
        self.cb_data = Self::cb_data(context).ok_or(ClientError::ChannelBindingUnavailable)?;
        Ok(Some(ht::initiator(
            authcid,
            token.as_bytes(),
            &self.cb_data,
        )))
    }

    fn challenge(&mut self, _: &ClientContext, _: &[u8]) -> Result<Vec<u8>, ClientError> {
        Err(ClientError::InvalidServerMessage("HT takes no challenge"))
    }

    fn success(
        &mut self,
        context: &ClientContext,
        additional_data: Option<&[u8]>,
    ) -> Result<(), ClientError> {
        let token = Self::token(context).ok_or(ClientError::MissingCredentials("FAST token"))?;
        match additional_data {
            Some(answer) if ht::verify_responder(token.as_bytes(), &self.cb_data, answer) => Ok(()),
            _ => Err(ClientError::InvalidServerMessage(
                "the server did not prove it holds the token",
            )),
        }
    }
}
