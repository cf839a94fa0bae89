//! The HT mechanisms on the server ([`crate::ht`]): offered only inside
//! XEP-0484's `<fast/>`, never in a mechanism list
//! ([`ServerMechanismFactory::token_based`]); they ask the caller for the
//! key of the client's token ([`ServerStep::NeedToken`]) and check the
//! proof against this connection's channel binding.

use super::{
    ConnectionInfo, Negotiation, Outcome, ServerError, ServerInput, ServerMechanism,
    ServerMechanismFactory, ServerStep, TokenRequest, unexpected,
};
use crate::Failure;
use crate::ht;

/// An HT mechanism's factory.
#[derive(Debug)]
pub struct HashedToken {
    name: &'static str,
}

impl HashedToken {
    /// The factory of `name`, one of [`ht::MECHANISMS`].
    pub fn factory(name: &'static str) -> Self {
        Self { name }
    }

    fn cb_data(&self, connection: &ConnectionInfo) -> Result<Vec<u8>, Failure> {
        match ht::binding_of(self.name) {
            Some(ht::Binding::Unbound) => Ok(Vec::new()),
            Some(ht::Binding::Channel(kind)) => connection
                .channel_binding(kind)
                .map(|binding| binding.data.clone())
                .ok_or(Failure::InvalidMechanism),
            None => Err(Failure::InvalidMechanism),
        }
    }
}

impl ServerMechanismFactory for HashedToken {
    fn name(&self) -> &str {
        self.name
    }

    fn available(&self, connection: &ConnectionInfo) -> Result<(), Failure> {
        if !connection.encrypted {
            return Err(Failure::EncryptionRequired);
        }
        self.cb_data(connection).map(|_| ())
    }

    fn start(&self, negotiation: Negotiation<'_>) -> Result<Box<dyn ServerMechanism>, ServerError> {
        let cb_data = self
            .cb_data(negotiation.connection)
            .map_err(|failure| ServerError::new(failure, "no channel binding of this kind here"))?;
        Ok(Box::new(Exchange {
            name: self.name,
            cb_data,
            proof: None,
        }))
    }

    fn token_based(&self) -> bool {
        true
    }
}

struct Exchange {
    name: &'static str,
    cb_data: Vec<u8>,
    /// The authcid and the client's proof, while the key is looked up.
    proof: Option<(String, Vec<u8>)>,
}

impl ServerMechanism for Exchange {
    fn step(&mut self, input: ServerInput<'_>) -> Result<ServerStep, ServerError> {
        match input {
            ServerInput::Start(Some(message)) if self.proof.is_none() => {
                let (authcid, proof) = ht::split_initiator(message).ok_or(ServerError::new(
                    Failure::MalformedRequest,
                    "not an HT initiator message",
                ))?;
                self.proof = Some((authcid.to_owned(), proof.to_vec()));
                Ok(ServerStep::NeedToken(TokenRequest {
                    authcid: authcid.to_owned(),
                    mechanism: self.name.to_owned(),
                }))
            }
            ServerInput::Start(None) => Err(ServerError::new(
                Failure::MalformedRequest,
                "HT needs an initial response",
            )),
            ServerInput::Token(answer) => {
                let (authcid, proof) = self.proof.take().ok_or_else(unexpected)?;
                let keys = answer.map_err(|failure| ServerError::new(failure, "token refused"))?;
                // Every key is tried, so the time taken tells nothing.
                let mut matched = None;
                for (index, candidate) in keys.iter().enumerate() {
                    if ht::verify_initiator(&candidate.key, &self.cb_data, &proof)
                        && matched.is_none()
                    {
                        matched = Some(index);
                    }
                }
                let Some(index) = matched else {
                    return Err(ServerError::new(
                        Failure::NotAuthorized,
                        "wrong token proof",
                    ));
                };
                // Only a client that holds the token learns why it fails.
                if let Some(refusal) = keys[index].refusal {
                    return Err(ServerError::new(refusal, "token no longer valid"));
                }
                Ok(ServerStep::Success(Outcome {
                    mechanism: String::new(),
                    token_index: Some(index),
                    authcid: Some(authcid),
                    authzid: None,
                    additional_data: Some(
                        ht::responder(&keys[index].key.0, &self.cb_data).to_vec(),
                    ),
                }))
            }
            _ => Err(unexpected()),
        }
    }
}
