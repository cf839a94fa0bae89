//! Cross-tests against an independent SASL implementation, `rsasl`: our
//! client against its server and its client against our server, for every
//! mechanism both implement, `-PLUS` included, with matching and
//! mismatching channel binding data.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use rsasl::callback::{Context, Request, SessionCallback, SessionData};
use rsasl::mechanisms::anonymous::AnonymousToken;
use rsasl::mechanisms::oauthbearer::properties::OAuthBearerValidate;
use rsasl::mechanisms::scram::properties::ScramStoredPassword;
use rsasl::prelude::{
    ChannelBindingCallback, Mechname, MessageSent, SASLClient, SASLConfig, SASLServer,
    SessionError, State, Validation,
};
use rsasl::prelude::{Mechanism, Registry};
use rsasl::property::{AuthId, AuthzId, OAuthBearerToken, OverrideCBType, Password};
use rsasl::validate::{Validate, ValidationError};

use common::{Store, tls};
use sigil_sasl::client::{AllowList, ClientConfig, ClientContext, ClientError};
use sigil_sasl::server::{Authzid, ConnectionInfo, Outcome, ServerConfig, ServerStep};
use sigil_sasl::{Algorithm, ChannelBinding, ChannelBindingType, Failure, StoredCredentials};

const USER: &str = "juliet";
const PASSWORD: &str = "r0m30";
const TOKEN: &str = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==";
/// rsasl's server reports the whole `auth` value, scheme included.
const AUTH_VALUE: &str = "Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==";

/// rsasl's default registry leaves the -PLUS variants out: name everything.
static MECHANISMS: &[Mechanism] = &[
    rsasl::mechanisms::scram::SCRAM_SHA512_PLUS,
    rsasl::mechanisms::scram::SCRAM_SHA256_PLUS,
    rsasl::mechanisms::scram::SCRAM_SHA1_PLUS,
    rsasl::mechanisms::scram::SCRAM_SHA512,
    rsasl::mechanisms::scram::SCRAM_SHA256,
    rsasl::mechanisms::scram::SCRAM_SHA1,
    rsasl::mechanisms::plain::PLAIN,
    rsasl::mechanisms::anonymous::ANONYMOUS,
    rsasl::mechanisms::external::EXTERNAL,
    rsasl::mechanisms::oauthbearer::OAUTHBEARER,
];

fn rsasl_config(callback: impl SessionCallback + 'static) -> Arc<SASLConfig> {
    SASLConfig::builder()
        .with_registry(Registry::with_mechanisms(MECHANISMS))
        .with_callback(callback)
        .unwrap()
}

fn credentials(algorithm: Algorithm) -> StoredCredentials {
    StoredCredentials::derive(algorithm, PASSWORD, b"the salt of the earth", 4096).unwrap()
}

/// Channel binding data as rsasl asks for it, by type name.
#[derive(Debug, Default, Clone)]
struct Bindings(Vec<(&'static str, Vec<u8>)>);

impl Bindings {
    fn of(bindings: &[ChannelBinding]) -> Self {
        Self(
            bindings
                .iter()
                .map(|b| (b.kind.as_str(), b.data.clone()))
                .collect(),
        )
    }
}

impl ChannelBindingCallback for Bindings {
    fn get_cb_data(&self, cbname: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(name, _)| *name == cbname)
            .map(|(_, data)| data.as_slice())
    }
}

// --- rsasl as the server -----------------------------------------------------

/// What rsasl's server saw when it accepted a login.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    authid: Option<String>,
    authzid: Option<String>,
    token: Option<String>,
}

struct Accepted;
impl Validation for Accepted {
    type Value = Result<Seen, String>;
}

struct RsServer;

impl SessionCallback for RsServer {
    fn callback(
        &self,
        session_data: &SessionData,
        context: &Context,
        request: &mut Request,
    ) -> Result<(), SessionError> {
        let mechanism = session_data.mechanism().mechanism.as_str();
        if context.get_ref::<AuthId>() == Some(USER) && mechanism.starts_with("SCRAM-") {
            let algorithm = if mechanism.starts_with("SCRAM-SHA-1") {
                Algorithm::Sha1
            } else if mechanism.starts_with("SCRAM-SHA-256") {
                Algorithm::Sha256
            } else {
                Algorithm::Sha512
            };
            let stored = credentials(algorithm);
            request.satisfy::<ScramStoredPassword>(&ScramStoredPassword::new(
                stored.iterations,
                &stored.salt,
                &stored.stored_key,
                &stored.server_key,
            ))?;
        }
        if mechanism == "OAUTHBEARER" {
            let valid = context.get_ref::<OAuthBearerToken>() == Some(AUTH_VALUE);
            let result = if valid {
                Ok(())
            } else {
                Err(
                    rsasl::mechanisms::oauthbearer::properties::OAuthBearerError::new(
                        "invalid_token",
                        None,
                        None,
                    ),
                )
            };
            request.satisfy::<OAuthBearerValidate>(&result)?;
        }
        Ok(())
    }

    fn enable_channel_binding(&self) -> bool {
        true
    }

    fn validate(
        &self,
        session_data: &SessionData,
        context: &Context,
        validate: &mut Validate<'_>,
    ) -> Result<(), ValidationError> {
        let mechanism = session_data.mechanism().mechanism.as_str().to_owned();
        validate.with::<Accepted, _>(|| {
            let seen = Seen {
                authid: context.get_ref::<AuthId>().map(str::to_owned),
                authzid: context.get_ref::<AuthzId>().map(str::to_owned),
                token: context.get_ref::<AnonymousToken>().map(str::to_owned),
            };
            if mechanism == "PLAIN"
                && (seen.authid.as_deref() != Some(USER)
                    || context.get_ref::<Password>() != Some(PASSWORD.as_bytes()))
            {
                return Ok(Err("wrong password".to_owned()));
            }
            // rsasl validates even after it sent OAUTHBEARER's error challenge.
            if mechanism == "OAUTHBEARER"
                && context.get_ref::<OAuthBearerToken>() != Some(AUTH_VALUE)
            {
                return Ok(Err("invalid token".to_owned()));
            }
            Ok(Ok(seen))
        })?;
        Ok(())
    }
}

#[derive(Debug)]
enum RsServerEnd {
    /// rsasl's server accepted and validated; our client verified it.
    Accepted(Seen),
    /// rsasl's server refused (an error from its step, or a failed validation).
    Refused(#[allow(dead_code)] String),
    /// Our client refused rsasl's server.
    ClientRefused(#[allow(dead_code)] ClientError),
}

/// Our client, choosing among `offered`, against rsasl's server.
fn ours_against_rsasl(
    context: ClientContext,
    config: &ClientConfig,
    offered: &[&str],
    server_bindings: &[ChannelBinding],
) -> (String, RsServerEnd) {
    let rsasl_config = rsasl_config(RsServer);
    let mut ours = config.select(context, offered).unwrap();
    let name = ours.mechanism_name().to_owned();
    let server = SASLServer::<Accepted, _>::with_cb(rsasl_config, Bindings::of(server_bindings));
    let mut theirs = server
        .start_suggested(Mechname::parse(name.as_bytes()).unwrap())
        .unwrap();
    let mut input = ours.start().unwrap();
    for _ in 0..10 {
        let mut out = Vec::new();
        match theirs.step(input.as_deref(), &mut out) {
            Err(e) => return (name, RsServerEnd::Refused(e.to_string())),
            Ok(State::Running) => match ours.challenge(&out) {
                Ok(response) => input = Some(response),
                Err(e) => return (name, RsServerEnd::ClientRefused(e)),
            },
            Ok(State::Finished(sent)) => {
                let additional = matches!(sent, MessageSent::Yes).then_some(out.as_slice());
                let end = match theirs.validation() {
                    Some(Ok(seen)) => match ours.success(additional) {
                        Ok(()) => RsServerEnd::Accepted(seen),
                        Err(e) => RsServerEnd::ClientRefused(e),
                    },
                    Some(Err(why)) => RsServerEnd::Refused(why),
                    None => RsServerEnd::Refused("no validation".to_owned()),
                };
                return (name, end);
            }
        }
    }
    panic!("exchange did not end");
}

fn password_context() -> ClientContext {
    ClientContext::new()
        .with_authcid(USER)
        .with_password(PASSWORD)
        .with_encrypted(true)
}

fn only(name: &str) -> ClientConfig {
    ClientConfig::new().allow(AllowList::new().name(name))
}

fn binding(kind: ChannelBindingType, byte: u8) -> ChannelBinding {
    ChannelBinding::new(kind, [byte; 32])
}

fn accepted(end: RsServerEnd) -> Seen {
    match end {
        RsServerEnd::Accepted(seen) => seen,
        other => panic!("expected acceptance, got {other:?}"),
    }
}

#[test]
fn our_scram_client_against_rsasl_server() {
    for name in ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let (chosen, end) = ours_against_rsasl(password_context(), &only(name), &[name], &[]);
        assert_eq!(chosen, name);
        assert_eq!(accepted(end).authid.as_deref(), Some(USER), "{name}");

        let wrong = password_context().with_password("wrong");
        let (_, end) = ours_against_rsasl(wrong, &only(name), &[name], &[]);
        assert!(matches!(end, RsServerEnd::Refused(_)), "{name}: {end:?}");
    }
}

#[test]
fn our_scram_plus_client_against_rsasl_server() {
    for kind in ChannelBindingType::ALL {
        for name in [
            "SCRAM-SHA-1-PLUS",
            "SCRAM-SHA-256-PLUS",
            "SCRAM-SHA-512-PLUS",
        ] {
            let server_side = [binding(kind, 1)];
            let matching = password_context().with_channel_binding(binding(kind, 1));
            let (chosen, end) = ours_against_rsasl(matching, &only(name), &[name], &server_side);
            assert_eq!(chosen, name);
            assert_eq!(accepted(end).authid.as_deref(), Some(USER), "{name} {kind}");

            let mismatching = password_context().with_channel_binding(binding(kind, 2));
            let (_, end) = ours_against_rsasl(mismatching, &only(name), &[name], &server_side);
            assert!(
                matches!(end, RsServerEnd::Refused(_)),
                "{name} {kind}: {end:?}"
            );
        }
    }
}

#[test]
fn rsasl_server_detects_our_y_flag_when_it_supports_binding() {
    // The offer was stripped of -PLUS; we can bind, so we say "y"; rsasl's
    // server has -PLUS registered and refuses.
    let context =
        password_context().with_channel_binding(binding(ChannelBindingType::TlsExporter, 1));
    let (chosen, end) = ours_against_rsasl(
        context,
        &ClientConfig::new(),
        &["SCRAM-SHA-256"],
        &[binding(ChannelBindingType::TlsExporter, 1)],
    );
    assert_eq!(chosen, "SCRAM-SHA-256");
    assert!(matches!(end, RsServerEnd::Refused(_)), "{end:?}");
}

#[test]
fn our_plain_external_anonymous_oauthbearer_clients_against_rsasl_server() {
    let (_, end) = ours_against_rsasl(password_context(), &only("PLAIN"), &["PLAIN"], &[]);
    assert_eq!(accepted(end).authid.as_deref(), Some(USER));
    let wrong = password_context().with_password("nope");
    let (_, end) = ours_against_rsasl(wrong, &only("PLAIN"), &["PLAIN"], &[]);
    assert!(matches!(end, RsServerEnd::Refused(_)), "{end:?}");

    let certificate = ClientContext::new().with_client_certificate(true);
    let (_, end) = ours_against_rsasl(
        certificate.clone(),
        &ClientConfig::new(),
        &["EXTERNAL"],
        &[],
    );
    // rsasl reports an empty initial response as an empty authzid.
    assert_eq!(accepted(end).authzid.unwrap_or_default(), "");
    let (_, end) = ours_against_rsasl(
        certificate.with_authzid("juliet@capulet.lit"),
        &ClientConfig::new(),
        &["EXTERNAL"],
        &[],
    );
    assert_eq!(accepted(end).authzid.as_deref(), Some("juliet@capulet.lit"));

    let anonymous = ClientContext::new().with_anonymous_trace("sirhc");
    let (_, end) = ours_against_rsasl(anonymous, &ClientConfig::new(), &["ANONYMOUS"], &[]);
    assert_eq!(accepted(end).token.as_deref(), Some("sirhc"));

    let bearer = ClientContext::new()
        .with_bearer_token(TOKEN)
        .with_host("capulet.lit", Some(5222));
    let (chosen, end) = ours_against_rsasl(bearer, &ClientConfig::new(), &["OAUTHBEARER"], &[]);
    assert_eq!(chosen, "OAUTHBEARER");
    accepted(end);
    let bad = ClientContext::new().with_bearer_token("expired");
    let (_, end) = ours_against_rsasl(bad, &ClientConfig::new(), &["OAUTHBEARER"], &[]);
    assert!(matches!(end, RsServerEnd::Refused(_)), "{end:?}");
}

// --- rsasl as the client -----------------------------------------------------

struct RsClient {
    authzid: Option<&'static str>,
    password: &'static str,
    channel_binding: bool,
    binding_type: Option<&'static str>,
}

impl SessionCallback for RsClient {
    fn callback(
        &self,
        _session_data: &SessionData,
        _context: &Context,
        request: &mut Request,
    ) -> Result<(), SessionError> {
        request.satisfy::<AuthId>(USER)?;
        request.satisfy::<Password>(self.password.as_bytes())?;
        if let Some(authzid) = self.authzid {
            request.satisfy::<AuthzId>(authzid)?;
        }
        if let Some(kind) = self.binding_type {
            request.satisfy::<OverrideCBType>(kind)?;
        }
        Ok(())
    }

    fn enable_channel_binding(&self) -> bool {
        self.channel_binding
    }
}

#[derive(Debug)]
enum OursEnd {
    Success(Outcome),
    /// Our server refused.
    Refused(Failure),
    /// rsasl's client refused our server's final message.
    ClientRefused(#[allow(dead_code)] String),
}

/// rsasl's client, offered `offered`, against our server on `connection`.
fn rsasl_against_ours(
    client: RsClient,
    client_bindings: &[ChannelBinding],
    offered: &[&str],
    server: &ServerConfig,
    connection: &ConnectionInfo,
) -> (String, OursEnd) {
    let config = rsasl_config(client);
    let offered: Vec<&Mechname> = offered
        .iter()
        .map(|name| Mechname::parse(name.as_bytes()).unwrap())
        .collect();
    let mut theirs = SASLClient::with_cb(config, Bindings::of(client_bindings))
        .start_suggested(&offered)
        .unwrap();
    let name = theirs.get_mechname().as_str().to_owned();
    let store = Store::default().with_user(USER, PASSWORD);
    let mut ours = match server.start(&name, connection) {
        Ok(session) => session,
        Err(e) => return (name, OursEnd::Refused(e.failure)),
    };
    let initial = if theirs.are_we_first() {
        let mut out = Vec::new();
        theirs.step(None, &mut out).unwrap();
        Some(out)
    } else {
        None
    };
    let mut step = ours.start(initial.as_deref());
    for _ in 0..10 {
        step = match step {
            Err(e) => return (name, OursEnd::Refused(e.failure)),
            Ok(ServerStep::Challenge(challenge)) => {
                let mut out = Vec::new();
                if let Err(e) = theirs.step(Some(&challenge), &mut out) {
                    return (name, OursEnd::ClientRefused(e.to_string()));
                }
                ours.response(&out)
            }
            Ok(ServerStep::NeedCredentials(request)) => {
                ours.credentials(store.lookup(&request.authcid, request.algorithm))
            }
            Ok(ServerStep::NeedDecision(_)) => ours.decision(Ok(())),
            Ok(ServerStep::NeedCustom(_) | ServerStep::NeedToken(_)) => unreachable!(),
            Ok(ServerStep::Success(outcome)) => {
                if let Some(data) = &outcome.additional_data {
                    let mut out = Vec::new();
                    match theirs.step(Some(data), &mut out) {
                        Ok(State::Finished(_)) => {}
                        Ok(State::Running) => {
                            return (name, OursEnd::ClientRefused("still running".into()));
                        }
                        Err(e) => return (name, OursEnd::ClientRefused(e.to_string())),
                    }
                }
                return (name, OursEnd::Success(outcome));
            }
        };
    }
    panic!("exchange did not end");
}

fn rs_client(password: &'static str) -> RsClient {
    RsClient {
        authzid: None,
        password,
        channel_binding: false,
        binding_type: None,
    }
}

fn success(end: OursEnd) -> Outcome {
    match end {
        OursEnd::Success(outcome) => outcome,
        other => panic!("expected success, got {other:?}"),
    }
}

#[test]
fn rsasl_scram_client_against_our_server() {
    let server = ServerConfig::new();
    for name in ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let (chosen, end) = rsasl_against_ours(rs_client(PASSWORD), &[], &[name], &server, &tls());
        assert_eq!(chosen, name);
        let outcome = success(end);
        assert_eq!(outcome.authcid.as_deref(), Some(USER));
        assert_eq!(outcome.mechanism, name);

        let (_, end) = rsasl_against_ours(rs_client("wrong"), &[], &[name], &server, &tls());
        assert!(
            matches!(end, OursEnd::Refused(Failure::NotAuthorized)),
            "{name}: {end:?}"
        );
    }
}

#[test]
fn rsasl_scram_plus_client_against_our_server() {
    let server = ServerConfig::new();
    for kind in ChannelBindingType::ALL {
        let connection = ConnectionInfo {
            encrypted: true,
            channel_bindings: vec![binding(kind, 1)],
            ..ConnectionInfo::default()
        };
        for name in [
            "SCRAM-SHA-1-PLUS",
            "SCRAM-SHA-256-PLUS",
            "SCRAM-SHA-512-PLUS",
        ] {
            let client = || RsClient {
                channel_binding: true,
                binding_type: Some(kind.as_str()),
                ..rs_client(PASSWORD)
            };
            let (chosen, end) =
                rsasl_against_ours(client(), &[binding(kind, 1)], &[name], &server, &connection);
            assert_eq!(chosen, name);
            assert_eq!(success(end).authcid.as_deref(), Some(USER), "{name} {kind}");

            let (_, end) =
                rsasl_against_ours(client(), &[binding(kind, 2)], &[name], &server, &connection);
            assert!(
                matches!(end, OursEnd::Refused(Failure::NotAuthorized)),
                "{name} {kind}: {end:?}"
            );
        }
    }
}

#[test]
fn our_server_detects_rsasl_y_flag() {
    // rsasl can bind but was offered no -PLUS: it says "y". Our server, which
    // has binding data on this connection, offered -PLUS and refuses.
    let server = ServerConfig::new();
    let exporter = binding(ChannelBindingType::TlsExporter, 1);
    let client = || RsClient {
        channel_binding: true,
        ..rs_client(PASSWORD)
    };
    let bound = ConnectionInfo {
        encrypted: true,
        channel_bindings: vec![exporter.clone()],
        ..ConnectionInfo::default()
    };
    let (chosen, end) = rsasl_against_ours(
        client(),
        std::slice::from_ref(&exporter),
        &["SCRAM-SHA-256"],
        &server,
        &bound,
    );
    assert_eq!(chosen, "SCRAM-SHA-256");
    assert!(
        matches!(end, OursEnd::Refused(Failure::NotAuthorized)),
        "{end:?}"
    );
    // Without binding data on our side, "y" is honest and accepted.
    let (_, end) = rsasl_against_ours(client(), &[exporter], &["SCRAM-SHA-256"], &server, &tls());
    success(end);
}

#[test]
fn rsasl_plain_external_anonymous_clients_against_our_server() {
    let server = ServerConfig::new().allow(["PLAIN", "EXTERNAL", "ANONYMOUS"]);
    let (_, end) = rsasl_against_ours(rs_client(PASSWORD), &[], &["PLAIN"], &server, &tls());
    assert_eq!(success(end).authcid.as_deref(), Some(USER));
    let (_, end) = rsasl_against_ours(rs_client("nope"), &[], &["PLAIN"], &server, &tls());
    assert!(
        matches!(end, OursEnd::Refused(Failure::NotAuthorized)),
        "{end:?}"
    );

    let certificate = ConnectionInfo {
        client_certificate: true,
        ..tls()
    };
    let (_, end) = rsasl_against_ours(
        rs_client(PASSWORD),
        &[],
        &["EXTERNAL"],
        &server,
        &certificate,
    );
    assert_eq!(success(end).authzid, None);
    let with_authzid = RsClient {
        authzid: Some("juliet@capulet.lit"),
        ..rs_client(PASSWORD)
    };
    let (_, end) = rsasl_against_ours(with_authzid, &[], &["EXTERNAL"], &server, &certificate);
    assert_eq!(success(end).authzid.as_deref(), Some("juliet@capulet.lit"));
    // No certificate: EXTERNAL is not available.
    let (_, end) = rsasl_against_ours(rs_client(PASSWORD), &[], &["EXTERNAL"], &server, &tls());
    assert!(
        matches!(end, OursEnd::Refused(Failure::InvalidMechanism)),
        "{end:?}"
    );

    let (_, end) = rsasl_against_ours(rs_client(PASSWORD), &[], &["ANONYMOUS"], &server, &tls());
    let outcome = success(end);
    assert_eq!((outcome.authcid, outcome.authzid), (None, None));
}

#[test]
fn rsasl_sees_the_same_authzid_forms_as_xmpp_clients_send() {
    // An empty EXTERNAL initial response is "=" in XMPP; our server reports
    // it as Authzid::Empty, distinct from no initial response at all.
    let server = ServerConfig::new();
    let certificate = ConnectionInfo {
        client_certificate: true,
        ..tls()
    };
    let mut session = server.start("EXTERNAL", &certificate).unwrap();
    let ServerStep::NeedDecision(request) = session.start(Some(b"")).unwrap() else {
        panic!("expected a decision request");
    };
    assert_eq!(request.authzid, Authzid::Empty);
}
