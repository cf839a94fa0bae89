//! The built-in server mechanisms other than SCRAM.

use super::{
    Authzid, ConnectionInfo, CredentialsRequest, ExternalRequest, Negotiation, Outcome,
    ServerError, ServerInput, ServerMechanism, ServerMechanismFactory, ServerStep, unexpected,
    utf8,
};
use crate::Failure;
use crate::saslprep::saslprep;

/// A factory for the built-in mechanisms: a name, where it may run, and how
/// to make one.
pub(crate) struct Builtin {
    pub(crate) name: &'static str,
    pub(crate) available: fn(&ConnectionInfo) -> Result<(), Failure>,
    pub(crate) make: fn() -> Box<dyn ServerMechanism>,
}

impl ServerMechanismFactory for Builtin {
    fn name(&self) -> &str {
        self.name
    }

    fn available(&self, connection: &ConnectionInfo) -> Result<(), Failure> {
        (self.available)(connection)
    }

    fn start(&self, _: Negotiation<'_>) -> Result<Box<dyn ServerMechanism>, ServerError> {
        Ok((self.make)())
    }
}

fn outcome(authcid: Option<String>, authzid: Option<String>) -> ServerStep {
    ServerStep::Success(Outcome {
        mechanism: String::new(),
        token_index: None,
        authcid,
        authzid,
        additional_data: None,
    })
}

/// `EXTERNAL` on the server: offered only to connections that presented a
/// client certificate; asks the caller to decide.
///
/// An `<auth/>` without initial response gets an *empty* challenge (never
/// `=`, which Strophe.js cannot decode).
#[derive(Debug, Default)]
pub struct External {
    decided_authzid: Option<Authzid>,
}

impl External {
    /// The factory to register.
    pub fn factory() -> impl ServerMechanismFactory {
        Builtin {
            name: "EXTERNAL",
            available: |connection| {
                if connection.client_certificate {
                    Ok(())
                } else {
                    Err(Failure::InvalidMechanism)
                }
            },
            make: || Box::new(Self::default()),
        }
    }

    fn ask(&mut self, authzid: Authzid) -> ServerStep {
        self.decided_authzid = Some(authzid.clone());
        ServerStep::NeedDecision(ExternalRequest { authzid })
    }

    fn parse(data: &[u8], empty: Authzid) -> Result<Authzid, ServerError> {
        if data.is_empty() {
            return Ok(empty);
        }
        let authzid = utf8(data)?;
        if authzid.contains('\0') {
            return Err(ServerError::new(Failure::InvalidAuthzid, "NUL in authzid"));
        }
        Ok(Authzid::Value(authzid.to_owned()))
    }
}

impl ServerMechanism for External {
    fn step(&mut self, input: ServerInput<'_>) -> Result<ServerStep, ServerError> {
        match input {
            ServerInput::Start(None) => Ok(ServerStep::Challenge(Vec::new())),
            ServerInput::Start(Some(data)) => Ok(self.ask(Self::parse(data, Authzid::Empty)?)),
            ServerInput::Response(data) if self.decided_authzid.is_none() => {
                Ok(self.ask(Self::parse(data, Authzid::Absent)?))
            }
            ServerInput::Decision(Ok(())) => {
                let authzid = self.decided_authzid.take().ok_or_else(unexpected)?;
                Ok(outcome(None, authzid.value().map(str::to_owned)))
            }
            ServerInput::Decision(Err(failure)) => {
                Err(ServerError::new(failure, "the certificate may not log in"))
            }
            _ => Err(unexpected()),
        }
    }
}

/// `PLAIN` on the server: offered only over TLS. It asks for the stored SCRAM
/// credentials of any hash and checks the password against them, so the
/// server stores one form of credential for both.
#[derive(Debug, Default)]
pub struct Plain {
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    authcid: String,
    authzid: Option<String>,
    password: String,
}

impl Plain {
    /// The factory to register.
    pub fn factory() -> impl ServerMechanismFactory {
        Builtin {
            name: "PLAIN",
            available: |connection| {
                if connection.encrypted {
                    Ok(())
                } else {
                    Err(Failure::EncryptionRequired)
                }
            },
            make: || Box::new(Self::default()),
        }
    }

    fn parse(&mut self, message: &[u8]) -> Result<ServerStep, ServerError> {
        let malformed = |detail| ServerError::new(Failure::MalformedRequest, detail);
        let message = utf8(message)?;
        let mut parts = message.split('\0');
        let (Some(authzid), Some(authcid), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("PLAIN needs exactly three fields"));
        };
        let authcid = saslprep(authcid).map_err(|_| malformed("invalid user name"))?;
        if password.is_empty() {
            return Err(malformed("empty password"));
        }
        let authzid = (!authzid.is_empty()).then(|| authzid.to_owned());
        self.pending = Some(Pending {
            authcid: authcid.clone().into_owned(),
            authzid: authzid.clone(),
            password: password.to_owned(),
        });
        Ok(ServerStep::NeedCredentials(CredentialsRequest {
            authcid: authcid.into_owned(),
            authzid,
            algorithm: None,
        }))
    }
}

impl ServerMechanism for Plain {
    fn step(&mut self, input: ServerInput<'_>) -> Result<ServerStep, ServerError> {
        match input {
            ServerInput::Start(None) => Ok(ServerStep::Challenge(Vec::new())),
            ServerInput::Start(Some(message)) => self.parse(message),
            ServerInput::Response(message) if self.pending.is_none() => self.parse(message),
            ServerInput::Credentials(credentials) => {
                let pending = self.pending.take().ok_or_else(unexpected)?;
                // An unknown user (or one without a password) costs the
                // same derivation as a known one: how long a failure takes
                // tells nothing of which accounts exist.
                let verified = match credentials {
                    Some(credentials) => credentials.verify_password(&pending.password),
                    None => {
                        let _ = crate::scram::StoredCredentials::stand_in()
                            .verify_password(&pending.password);
                        false
                    }
                };
                if verified {
                    Ok(outcome(Some(pending.authcid), pending.authzid))
                } else {
                    Err(ServerError::new(
                        Failure::NotAuthorized,
                        "wrong password or unknown user",
                    ))
                }
            }
            _ => Err(unexpected()),
        }
    }
}

/// The longest trace `ANONYMOUS` accepts, in characters (RFC 4505 §3).
pub const MAX_ANONYMOUS_TRACE_CHARS: usize = 255;

/// `ANONYMOUS` on the server (registered but not allowed by default).
#[derive(Debug, Default)]
pub struct Anonymous {
    challenged: bool,
}

impl Anonymous {
    /// The factory to register.
    pub fn factory() -> impl ServerMechanismFactory {
        Builtin {
            name: "ANONYMOUS",
            available: |_| Ok(()),
            make: || Box::new(Self::default()),
        }
    }

    fn accept(trace: &[u8]) -> Result<ServerStep, ServerError> {
        let trace = utf8(trace)?;
        if trace.chars().count() > MAX_ANONYMOUS_TRACE_CHARS {
            return Err(ServerError::new(
                Failure::MalformedRequest,
                "trace too long",
            ));
        }
        Ok(outcome(None, None))
    }
}

impl ServerMechanism for Anonymous {
    fn step(&mut self, input: ServerInput<'_>) -> Result<ServerStep, ServerError> {
        match input {
            ServerInput::Start(None) => {
                self.challenged = true;
                Ok(ServerStep::Challenge(Vec::new()))
            }
            ServerInput::Start(Some(trace)) => Self::accept(trace),
            ServerInput::Response(trace) if self.challenged => Self::accept(trace),
            _ => Err(unexpected()),
        }
    }
}
