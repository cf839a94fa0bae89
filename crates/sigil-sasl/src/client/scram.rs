//! The SCRAM client.

use core::marker::PhantomData;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq;

use crate::client::{ClientContext, ClientError, ClientMechanism, priority};
use crate::saslprep::saslprep;
use crate::scram::{
    Algorithm, Attributes, MIN_ITERATIONS, ScramHash, escape_saslname, fresh_nonce, is_printable,
    xor,
};

/// A SCRAM client mechanism: hash `H`, with channel binding when `PLUS`.
///
/// Use the aliases in [`crate::client`], e.g.
/// [`ScramSha256Plus`](crate::client::ScramSha256Plus).
pub struct Scram<H: ScramHash, const PLUS: bool> {
    state: State,
    nonce: Option<String>,
    hash: PhantomData<fn() -> H>,
}

enum State {
    Initial,
    SentFirst {
        gs2_header: Vec<u8>,
        client_first_bare: String,
        nonce: String,
    },
    SentFinal {
        server_signature: Vec<u8>,
    },
    Verified,
    Done,
}

impl<H: ScramHash, const PLUS: bool> Default for Scram<H, PLUS> {
    fn default() -> Self {
        Self {
            state: State::Initial,
            nonce: None,
            hash: PhantomData,
        }
    }
}

impl<H: ScramHash, const PLUS: bool> core::fmt::Debug for Scram<H, PLUS> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Scram")
            .field("mechanism", &H::ALGORITHM.mechanism_name(PLUS))
            .finish_non_exhaustive()
    }
}

impl<H: ScramHash, const PLUS: bool> Scram<H, PLUS> {
    /// A client that uses `nonce` instead of a fresh random one.
    ///
    /// Only for reproducing published test vectors: a fixed nonce in real use
    /// makes the exchange replayable.
    pub fn with_nonce(nonce: impl Into<String>) -> Self {
        Self {
            nonce: Some(nonce.into()),
            ..Self::default()
        }
    }

    fn client_first(&mut self, context: &ClientContext) -> Result<Vec<u8>, ClientError> {
        let authcid = context
            .authcid()
            .ok_or(ClientError::MissingCredentials("user name"))?;
        let authcid = saslprep(authcid)?;
        let mut gs2_header = if PLUS {
            let binding = context
                .channel_binding()
                .ok_or(ClientError::ChannelBindingUnavailable)?;
            format!("p={},", binding.kind)
        } else if context.channel_binding().is_some()
            && !context.offered().iter().any(|name| name.ends_with("-PLUS"))
        {
            // We could bind but the server offered no -PLUS: say so, so that
            // a server that does support binding detects the downgrade.
            "y,".to_owned()
        } else {
            "n,".to_owned()
        };
        if let Some(authzid) = context.authzid() {
            gs2_header.push_str("a=");
            gs2_header.push_str(&escape_saslname(authzid));
        }
        gs2_header.push(',');
        let nonce = match self.nonce.take() {
            Some(nonce) => nonce,
            None => fresh_nonce()?,
        };
        let client_first_bare = format!("n={},r={nonce}", escape_saslname(&authcid));
        let message = format!("{gs2_header}{client_first_bare}").into_bytes();
        let mut gs2_header = gs2_header.into_bytes();
        if PLUS {
            if let Some(binding) = context.channel_binding() {
                gs2_header.extend_from_slice(&binding.data);
            }
        }
        self.state = State::SentFirst {
            gs2_header,
            client_first_bare,
            nonce,
        };
        Ok(message)
    }

    fn client_final(
        context: &ClientContext,
        server_first: &[u8],
        gs2_header: &[u8],
        client_first_bare: &str,
        nonce: &str,
    ) -> Result<(Vec<u8>, Vec<u8>), ClientError> {
        let algorithm: Algorithm = H::ALGORITHM;
        let server_first = core::str::from_utf8(server_first)
            .map_err(|_| ClientError::InvalidServerMessage("server-first is not UTF-8"))?;
        if let Some(error) = server_first.strip_prefix("e=") {
            return Err(ClientError::ServerError(error.to_owned()));
        }
        let attributes = Attributes::parse(server_first).ok_or(
            ClientError::InvalidServerMessage("server-first is malformed"),
        )?;
        let [full_nonce, salt, iterations] = attributes.expect_prefix([b'r', b's', b'i']).ok_or(
            ClientError::InvalidServerMessage("server-first needs r, s and i, in order"),
        )?;
        // XEP-0474: the server's hash of what it advertised must be that
        // of what we received (a server without it is not checked).
        if let (Some(hash), Some(advertised)) =
            (attributes.extension(3, b'h'), context.advertised())
            && hash != advertised.attribute(algorithm)
        {
            return Err(ClientError::Downgrade);
        }
        if !is_printable(full_nonce) {
            return Err(ClientError::InvalidServerMessage(
                "the nonce is not printable",
            ));
        }
        if full_nonce.len() <= nonce.len() || !full_nonce.starts_with(nonce) {
            return Err(ClientError::NonceMismatch);
        }
        let salt = STANDARD
            .decode(salt)
            .map_err(|_| ClientError::InvalidServerMessage("the salt is not base64"))?;
        if salt.is_empty() {
            return Err(ClientError::InvalidServerMessage("the salt is empty"));
        }
        let iterations: u32 = iterations.parse().map_err(|_| {
            ClientError::InvalidServerMessage("the iteration count is not a number")
        })?;
        if !(MIN_ITERATIONS..=context.max_iterations()).contains(&iterations) {
            return Err(ClientError::IterationCount(iterations));
        }
        let password = context
            .password()
            .ok_or(ClientError::MissingCredentials("password"))?;
        let password = saslprep(password)?;

        let salted_password = algorithm.salted_password(password.as_bytes(), &salt, iterations);
        let client_key = algorithm.client_key(&salted_password);
        let stored_key = algorithm.hash(&client_key);
        let without_proof = format!("c={},r={full_nonce}", STANDARD.encode(gs2_header));
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = algorithm.hmac(&stored_key, auth_message.as_bytes());
        let proof = xor(&client_key, &client_signature);
        let server_key = algorithm.server_key(&salted_password);
        let server_signature = algorithm.hmac(&server_key, auth_message.as_bytes());
        let message = format!("{without_proof},p={}", STANDARD.encode(proof));
        Ok((message.into_bytes(), server_signature))
    }
}

/// Checks `v=…` from server-final against what we computed.
fn verify_server_final(message: &[u8], expected: &[u8]) -> Result<(), ClientError> {
    let message = core::str::from_utf8(message)
        .map_err(|_| ClientError::InvalidServerMessage("server-final is not UTF-8"))?;
    let attributes = Attributes::parse(message).ok_or(ClientError::InvalidServerMessage(
        "server-final is malformed",
    ))?;
    if let Some([error]) = attributes.expect([b'e']) {
        return Err(ClientError::ServerError(error.to_owned()));
    }
    let [verifier] = attributes
        .expect([b'v'])
        .ok_or(ClientError::InvalidServerMessage("server-final needs v"))?;
    let signature = STANDARD
        .decode(verifier)
        .map_err(|_| ClientError::InvalidServerMessage("the server signature is not base64"))?;
    if bool::from(signature.ct_eq(expected)) {
        Ok(())
    } else {
        Err(ClientError::ServerSignatureMismatch)
    }
}

impl<H: ScramHash, const PLUS: bool> ClientMechanism for Scram<H, PLUS> {
    fn name(&self) -> &str {
        H::ALGORITHM.mechanism_name(PLUS)
    }

    fn client_first(&self) -> bool {
        true
    }

    fn priority(&self) -> u16 {
        match (H::ALGORITHM, PLUS) {
            (Algorithm::Sha512, true) => priority::SCRAM_SHA_512_PLUS,
            (Algorithm::Sha256, true) => priority::SCRAM_SHA_256_PLUS,
            (Algorithm::Sha1, true) => priority::SCRAM_SHA_1_PLUS,
            (Algorithm::Sha512, false) => priority::SCRAM_SHA_512,
            (Algorithm::Sha256, false) => priority::SCRAM_SHA_256,
            (Algorithm::Sha1, false) => priority::SCRAM_SHA_1,
        }
    }

    fn test(&self, context: &ClientContext) -> bool {
        context.authcid().is_some()
            && context.password().is_some()
            && (!PLUS || context.channel_binding().is_some())
    }

    fn initial_response(
        &mut self,
        context: &ClientContext,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        match self.state {
            State::Initial => self.client_first(context).map(Some),
            _ => Err(ClientError::OutOfOrder),
        }
    }

    fn challenge(
        &mut self,
        context: &ClientContext,
        challenge: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        match core::mem::replace(&mut self.state, State::Done) {
            // The server sent an empty challenge instead of waiting for our
            // initial response.
            State::Initial if challenge.is_empty() => self.client_first(context),
            State::SentFirst {
                gs2_header,
                client_first_bare,
                nonce,
            } => {
                let (message, server_signature) = Self::client_final(
                    context,
                    challenge,
                    &gs2_header,
                    &client_first_bare,
                    &nonce,
                )?;
                self.state = State::SentFinal { server_signature };
                Ok(message)
            }
            // Some servers send server-final as a challenge, then an empty
            // success.
            State::SentFinal { server_signature } => {
                verify_server_final(challenge, &server_signature)?;
                self.state = State::Verified;
                Ok(Vec::new())
            }
            _ => Err(ClientError::OutOfOrder),
        }
    }

    fn success(
        &mut self,
        _context: &ClientContext,
        additional_data: Option<&[u8]>,
    ) -> Result<(), ClientError> {
        match core::mem::replace(&mut self.state, State::Done) {
            State::SentFinal { server_signature } => match additional_data {
                Some(data) if !data.is_empty() => verify_server_final(data, &server_signature),
                _ => Err(ClientError::ServerSignatureMissing),
            },
            State::Verified => match additional_data {
                None | Some([]) => Ok(()),
                Some(_) => Err(ClientError::InvalidServerMessage(
                    "additional data after the server signature",
                )),
            },
            // Success before we proved anything: the server skipped SCRAM.
            _ => Err(ClientError::ServerSignatureMissing),
        }
    }

    fn failure(&mut self, _context: &ClientContext, _failure: Option<crate::Failure>) {
        self.state = State::Done;
    }
}
