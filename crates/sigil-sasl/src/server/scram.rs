//! The SCRAM server.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq;

use crate::Failure;
use crate::channel_binding::{ChannelBinding, ChannelBindingType};
use crate::saslprep::saslprep;
use crate::scram::{
    Algorithm, Attributes, StoredCredentials, fresh_nonce, is_printable, unescape_saslname, xor,
};
use crate::server::{
    ConnectionInfo, CredentialsRequest, Negotiation, Outcome, ServerError, ServerInput,
    ServerMechanism, ServerMechanismFactory, ServerStep, unexpected, utf8,
};

/// A SCRAM server mechanism of one hash, with or without channel binding.
pub struct Scram {
    algorithm: Algorithm,
    plus: bool,
    plus_offered: bool,
    channel_bindings: Vec<ChannelBinding>,
    /// XEP-0474's `h` value, when what was advertised is known.
    downgrade_protection: Option<String>,
    server_nonce: Option<String>,
    fake_salt_key: [u8; 32],
    state: State,
}

enum State {
    Initial,
    AwaitingCredentials(ClientFirst),
    AwaitingFinal {
        first: ClientFirst,
        server_first: String,
        nonce: String,
        credentials: Option<StoredCredentials>,
    },
    Done,
}

struct ClientFirst {
    /// The GS2 header followed by the channel binding data we expect, i.e.
    /// what `c=` must decode to.
    expected_binding: Vec<u8>,
    bare: String,
    authcid: String,
    authzid: Option<String>,
    client_nonce: String,
}

fn malformed(detail: &'static str) -> ServerError {
    ServerError::new(Failure::MalformedRequest, detail)
}

fn refused(detail: &'static str) -> ServerError {
    ServerError::new(Failure::NotAuthorized, detail)
}

impl Scram {
    /// The factory for `SCRAM-<algorithm>` (`-PLUS` if `plus`).
    pub fn factory(algorithm: Algorithm, plus: bool) -> impl ServerMechanismFactory {
        let mut fake_salt_key = [0u8; 32];
        // Should the system generator fail, an all-zero key only makes the
        // salts invented for unknown users predictable; logins stay sound.
        let _ = crate::random::fill(&mut fake_salt_key);
        Factory {
            algorithm,
            plus,
            fake_salt_key,
        }
    }

    /// A server mechanism that uses `server_nonce` instead of a fresh random
    /// one. Only for reproducing published test vectors.
    pub fn with_nonce(
        algorithm: Algorithm,
        plus: bool,
        connection: &ConnectionInfo,
        server_nonce: impl Into<String>,
    ) -> Self {
        let mut scram = Self::new(algorithm, plus, connection, false, [0; 32]);
        scram.server_nonce = Some(server_nonce.into());
        scram
    }

    fn new(
        algorithm: Algorithm,
        plus: bool,
        connection: &ConnectionInfo,
        plus_offered: bool,
        fake_salt_key: [u8; 32],
    ) -> Self {
        Self {
            algorithm,
            plus,
            plus_offered,
            channel_bindings: connection.channel_bindings.clone(),
            downgrade_protection: None,
            server_nonce: None,
            fake_salt_key,
            state: State::Initial,
        }
    }

    fn client_first(&self, message: &[u8]) -> Result<ClientFirst, ServerError> {
        let message = utf8(message)?;
        // gs2-header = gs2-cbind-flag "," [ authzid ] ","
        let (flag, rest) = message.split_once(',').ok_or(malformed("no GS2 header"))?;
        let (authzid, bare) = rest.split_once(',').ok_or(malformed("no GS2 header"))?;
        let header_len = flag.len() + authzid.len() + 2;

        let binding: Option<&ChannelBinding> = match (flag, self.plus) {
            ("n", false) => None,
            ("y", false) if self.plus_offered => {
                // Still refused (it is how a stripped -PLUS offer shows),
                // but as a mismatch: a client whose only binding type is
                // not ours (slixmpp 1.8 with tls-unique) says `y` here.
                return Err(ServerError::channel_binding_mismatch(
                    "client says we do not support channel binding, but we offered it",
                ));
            }
            ("y", false) => None,
            ("n" | "y", true) => return Err(refused("-PLUS without channel binding")),
            (flag, plus) => {
                let kind = flag.strip_prefix("p=").ok_or(malformed("bad GS2 flag"))?;
                if !plus {
                    return Err(malformed("channel binding with a mechanism without -PLUS"));
                }
                let kind: ChannelBindingType = kind.parse().map_err(|()| {
                    ServerError::channel_binding_mismatch("unsupported channel binding type")
                })?;
                Some(
                    self.channel_bindings
                        .iter()
                        .find(|binding| binding.kind == kind)
                        .ok_or(ServerError::channel_binding_mismatch(
                            "unsupported channel binding type",
                        ))?,
                )
            }
        };

        let authzid = match authzid {
            "" => None,
            value => {
                let value = value.strip_prefix("a=").ok_or(malformed("bad authzid"))?;
                let value = unescape_saslname(value).ok_or(malformed("bad authzid escape"))?;
                if value.is_empty() {
                    return Err(malformed("empty authzid"));
                }
                Some(value)
            }
        };

        let attributes = Attributes::parse(bare).ok_or(malformed("client-first is malformed"))?;
        if bare.starts_with("m=") {
            return Err(malformed("unsupported mandatory extension"));
        }
        let [username, client_nonce] = attributes
            .expect([b'n', b'r'])
            .ok_or(malformed("client-first needs exactly n and r"))?;
        let username = unescape_saslname(username).ok_or(malformed("bad user name escape"))?;
        let authcid = saslprep(&username)
            .map_err(|_| malformed("invalid user name"))?
            .into_owned();
        if !is_printable(client_nonce) {
            return Err(malformed("the nonce is not printable"));
        }

        let mut expected_binding = message.as_bytes()[..header_len].to_vec();
        if let Some(binding) = binding {
            expected_binding.extend_from_slice(&binding.data);
        }
        Ok(ClientFirst {
            expected_binding,
            bare: bare.to_owned(),
            authcid,
            authzid,
            client_nonce: client_nonce.to_owned(),
        })
    }

    fn server_first(
        &mut self,
        first: ClientFirst,
        credentials: Option<StoredCredentials>,
    ) -> Result<ServerStep, ServerError> {
        let credentials = match credentials {
            Some(credentials) if credentials.algorithm != self.algorithm => {
                return Err(ServerError::new(
                    Failure::TemporaryAuthFailure,
                    "credentials of another hash",
                ));
            }
            other => other,
        };
        let server_nonce = match self.server_nonce.take() {
            Some(nonce) => nonce,
            None => fresh_nonce()
                .map_err(|_| ServerError::new(Failure::TemporaryAuthFailure, "no randomness"))?,
        };
        // An unknown user gets a plausible salt and count, so that the
        // exchange looks the same until the proof fails.
        let (salt, iterations) = match &credentials {
            Some(credentials) => (credentials.salt.clone(), credentials.iterations),
            None => (
                self.algorithm
                    .hmac(&self.fake_salt_key, first.authcid.as_bytes())[..16]
                    .to_vec(),
                crate::scram::DEFAULT_ITERATIONS,
            ),
        };
        let nonce = format!("{}{server_nonce}", first.client_nonce);
        let mut server_first = format!("r={nonce},s={},i={iterations}", STANDARD.encode(salt));
        // XEP-0474: signed by the proof, as part of the AuthMessage.
        if let Some(hash) = &self.downgrade_protection {
            server_first.push_str(",h=");
            server_first.push_str(hash);
        }
        let challenge = server_first.clone().into_bytes();
        self.state = State::AwaitingFinal {
            first,
            server_first,
            nonce,
            credentials,
        };
        Ok(ServerStep::Challenge(challenge))
    }

    fn client_final(
        &self,
        message: &[u8],
        first: &ClientFirst,
        server_first: &str,
        nonce: &str,
        credentials: Option<&StoredCredentials>,
    ) -> Result<ServerStep, ServerError> {
        let message = utf8(message)?;
        let (without_proof, proof) = message
            .rsplit_once(",p=")
            .ok_or(malformed("client-final needs a proof"))?;
        let attributes =
            Attributes::parse(without_proof).ok_or(malformed("client-final is malformed"))?;
        let [binding, final_nonce] = attributes
            .expect([b'c', b'r'])
            .ok_or(malformed("client-final needs exactly c, r and p"))?;
        let binding = STANDARD
            .decode(binding)
            .map_err(|_| malformed("channel binding is not base64"))?;
        if final_nonce != nonce {
            return Err(malformed("nonce mismatch"));
        }
        let proof = STANDARD
            .decode(proof)
            .map_err(|_| malformed("proof is not base64"))?;
        if proof.len() != self.algorithm.output_len() {
            return Err(malformed("proof of the wrong length"));
        }
        if !bool::from(binding.ct_eq(&first.expected_binding)) {
            return Err(refused("channel binding mismatch"));
        }
        let credentials = credentials.ok_or(refused("unknown user"))?;

        let auth_message = format!("{},{server_first},{without_proof}", first.bare);
        let client_signature = self
            .algorithm
            .hmac(&credentials.stored_key, auth_message.as_bytes());
        let client_key = xor(&proof, &client_signature);
        let stored_key = self.algorithm.hash(&client_key);
        if !bool::from(stored_key.ct_eq(&credentials.stored_key)) {
            return Err(refused("wrong proof"));
        }
        let server_signature = self
            .algorithm
            .hmac(&credentials.server_key, auth_message.as_bytes());
        Ok(ServerStep::Success(Outcome {
            mechanism: String::new(),
            token_index: None,
            authcid: Some(first.authcid.clone()),
            authzid: first.authzid.clone(),
            additional_data: Some(format!("v={}", STANDARD.encode(server_signature)).into_bytes()),
        }))
    }

    fn start(&mut self, message: &[u8]) -> Result<ServerStep, ServerError> {
        let first = self.client_first(message)?;
        let request = CredentialsRequest {
            authcid: first.authcid.clone(),
            authzid: first.authzid.clone(),
            algorithm: Some(self.algorithm),
        };
        self.state = State::AwaitingCredentials(first);
        Ok(ServerStep::NeedCredentials(request))
    }
}

impl ServerMechanism for Scram {
    fn step(&mut self, input: ServerInput<'_>) -> Result<ServerStep, ServerError> {
        match (core::mem::replace(&mut self.state, State::Done), input) {
            (State::Initial, ServerInput::Start(None)) => {
                self.state = State::Initial;
                Ok(ServerStep::Challenge(Vec::new()))
            }
            (
                State::Initial,
                ServerInput::Start(Some(message)) | ServerInput::Response(message),
            ) => self.start(message),
            (State::AwaitingCredentials(first), ServerInput::Credentials(credentials)) => {
                self.server_first(first, credentials)
            }
            (
                State::AwaitingFinal {
                    first,
                    server_first,
                    nonce,
                    credentials,
                },
                ServerInput::Response(message),
            ) => self.client_final(message, &first, &server_first, &nonce, credentials.as_ref()),
            _ => Err(unexpected()),
        }
    }
}

struct Factory {
    algorithm: Algorithm,
    plus: bool,
    fake_salt_key: [u8; 32],
}

impl ServerMechanismFactory for Factory {
    fn name(&self) -> &str {
        self.algorithm.mechanism_name(self.plus)
    }

    fn available(&self, connection: &ConnectionInfo) -> Result<(), Failure> {
        if self.plus && connection.channel_bindings.is_empty() {
            Err(Failure::InvalidMechanism)
        } else {
            Ok(())
        }
    }

    fn start(&self, negotiation: Negotiation<'_>) -> Result<Box<dyn ServerMechanism>, ServerError> {
        let mut scram = Scram::new(
            self.algorithm,
            self.plus,
            negotiation.connection,
            negotiation.plus_offered,
            self.fake_salt_key,
        );
        scram.downgrade_protection = negotiation
            .advertised
            .map(|advertised| advertised.attribute(self.algorithm));
        Ok(Box::new(scram))
    }
}
