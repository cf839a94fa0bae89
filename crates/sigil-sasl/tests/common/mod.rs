//! An in-memory driver that runs a client session against a server session,
//! the way a stream would, and a tiny credential store.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::HashMap;

use sigil_sasl::client::{ClientError, ClientSession};
use sigil_sasl::server::{
    ConnectionInfo, ExternalRequest, Outcome, ServerConfig, ServerError, ServerStep,
};
use sigil_sasl::{Algorithm, Failure, StoredCredentials};

#[derive(Debug)]
pub enum Ended {
    /// The server sent `<failure/>`.
    ServerRefused(ServerError),
    /// The client gave up (e.g. a wrong server signature).
    ClientRefused(ClientError),
    /// Both sides agree.
    Success(Outcome),
}

impl Ended {
    pub fn server_failure(&self) -> Option<Failure> {
        match self {
            Self::ServerRefused(e) => Some(e.failure),
            _ => None,
        }
    }

    pub fn unwrap_success(self) -> Outcome {
        match self {
            Self::Success(outcome) => outcome,
            other => panic!("expected success, got {other:?}"),
        }
    }
}

#[derive(Default)]
pub struct Store {
    credentials: HashMap<String, Vec<StoredCredentials>>,
    /// FAST tokens: (user, mechanism) → token, and whether it expired.
    tokens: HashMap<(String, String), (String, bool)>,
}

impl Store {
    pub fn with_user(mut self, user: &str, password: &str) -> Self {
        let all = Algorithm::ALL
            .into_iter()
            .map(|algorithm| {
                StoredCredentials::derive(algorithm, password, b"a pinch of salt", 4096).unwrap()
            })
            .collect();
        self.credentials.insert(user.to_owned(), all);
        self
    }

    pub fn with_token(mut self, user: &str, mechanism: &str, token: &str) -> Self {
        self.tokens.insert(
            (user.to_owned(), mechanism.to_owned()),
            (token.to_owned(), false),
        );
        self
    }

    /// A token that expired: a proof made with it is refused with
    /// `credentials-expired`.
    pub fn with_expired_token(mut self, user: &str, mechanism: &str, token: &str) -> Self {
        self.tokens.insert(
            (user.to_owned(), mechanism.to_owned()),
            (token.to_owned(), true),
        );
        self
    }

    /// The token issued to `user` for `mechanism`.
    pub fn token(
        &self,
        user: &str,
        mechanism: &str,
    ) -> Result<Vec<sigil_sasl::ht::TokenCandidate>, Failure> {
        let (token, expired) = self
            .tokens
            .get(&(user.to_owned(), mechanism.to_owned()))
            .ok_or(Failure::NotAuthorized)?;
        let key = sigil_sasl::ht::TokenKey::of(token).ok_or(Failure::NotAuthorized)?;
        Ok(vec![sigil_sasl::ht::TokenCandidate {
            key,
            refusal: expired.then_some(Failure::CredentialsExpired),
        }])
    }

    pub fn lookup(&self, user: &str, algorithm: Option<Algorithm>) -> Option<StoredCredentials> {
        self.credentials
            .get(user)?
            .iter()
            .find(|c| algorithm.is_none_or(|a| c.algorithm == a))
            .cloned()
    }
}

/// Runs the exchange to its end. `decide` answers EXTERNAL's question.
pub fn run(
    client: &mut ClientSession,
    server: &ServerConfig,
    connection: &ConnectionInfo,
    store: &Store,
    decide: impl Fn(&ExternalRequest) -> Result<(), Failure>,
) -> Ended {
    let mut session = match server.start(client.mechanism_name(), connection) {
        Ok(session) => session,
        Err(e) => return Ended::ServerRefused(e),
    };
    let initial = match client.start() {
        Ok(initial) => initial,
        Err(e) => return Ended::ClientRefused(e),
    };
    let mut step = session.start(initial.as_deref());
    for _ in 0..10 {
        match step {
            Err(e) => {
                client.failure(Some(e.failure), None);
                return Ended::ServerRefused(e);
            }
            Ok(ServerStep::Challenge(challenge)) => match client.challenge(&challenge) {
                Ok(response) => step = session.response(&response),
                Err(e) => return Ended::ClientRefused(e),
            },
            Ok(ServerStep::NeedCredentials(request)) => {
                step = session.credentials(store.lookup(&request.authcid, request.algorithm));
            }
            Ok(ServerStep::NeedDecision(request)) => step = session.decision(decide(&request)),
            Ok(ServerStep::NeedCustom(_)) => panic!("no custom mechanisms here"),
            Ok(ServerStep::NeedToken(request)) => {
                step = session.token(store.token(&request.authcid, &request.mechanism));
            }
            Ok(ServerStep::Success(outcome)) => {
                return match client.success(outcome.additional_data.as_deref()) {
                    Ok(()) => Ended::Success(outcome),
                    Err(e) => Ended::ClientRefused(e),
                };
            }
        }
    }
    panic!("exchange did not end");
}

pub fn tls() -> ConnectionInfo {
    ConnectionInfo {
        encrypted: true,
        ..ConnectionInfo::default()
    }
}
