//! Our client against our server, in memory, for every mechanism both sides
//! implement, including the failure paths a user would see.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{Ended, Store, run, tls};
use sigil_sasl::client::{AllowList, ClientConfig, ClientContext, ClientError};
use sigil_sasl::server::{Authzid, ConnectionInfo, ServerConfig, ServerStep};
use sigil_sasl::{ChannelBinding, ChannelBindingType, Failure};

fn store() -> Store {
    Store::default().with_user("juliet", "r0m30")
}

fn password(password: &str) -> ClientContext {
    ClientContext::new()
        .with_authcid("juliet")
        .with_password(password)
        .with_encrypted(true)
}

fn only(name: &str) -> ClientConfig {
    ClientConfig::new().allow(AllowList::new().name(name))
}

fn binding(kind: ChannelBindingType, byte: u8) -> ChannelBinding {
    ChannelBinding::new(kind, [byte; 32])
}

fn bound_connection(bindings: Vec<ChannelBinding>) -> ConnectionInfo {
    ConnectionInfo {
        encrypted: true,
        channel_bindings: bindings,
        ..ConnectionInfo::default()
    }
}

fn login(name: &str, context: ClientContext, connection: &ConnectionInfo) -> Ended {
    let server = ServerConfig::new();
    let offered = server.offered(connection);
    let mut client = only(name).select(context, &offered).unwrap();
    assert_eq!(client.mechanism_name(), name);
    run(&mut client, &server, connection, &store(), |_| Ok(()))
}

#[test]
fn every_scram_variant_logs_in_and_refuses_a_wrong_password() {
    for name in ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let outcome = login(name, password("r0m30"), &tls()).unwrap_success();
        assert_eq!(outcome.authcid.as_deref(), Some("juliet"));
        assert_eq!(outcome.mechanism, name);
        assert!(outcome.additional_data.unwrap().starts_with(b"v="));
        let refused = login(name, password("wrong"), &tls());
        assert_eq!(
            refused.server_failure(),
            Some(Failure::NotAuthorized),
            "{name}"
        );
    }
}

#[test]
fn scram_for_an_unknown_user_fails_only_at_the_proof() {
    let context = ClientContext::new()
        .with_authcid("romeo")
        .with_password("x");
    let ended = login("SCRAM-SHA-256", context, &tls());
    assert_eq!(ended.server_failure(), Some(Failure::NotAuthorized));
}

#[test]
fn plus_variants_log_in_with_matching_channel_binding_of_either_type() {
    for kind in ChannelBindingType::ALL {
        let connection = bound_connection(vec![binding(kind, 1)]);
        for name in [
            "SCRAM-SHA-1-PLUS",
            "SCRAM-SHA-256-PLUS",
            "SCRAM-SHA-512-PLUS",
        ] {
            let context = password("r0m30").with_channel_binding(binding(kind, 1));
            let outcome = login(name, context, &connection).unwrap_success();
            assert_eq!(outcome.authcid.as_deref(), Some("juliet"), "{name} {kind}");
        }
    }
}

#[test]
fn plus_variants_refuse_mismatching_channel_binding() {
    let connection = bound_connection(vec![binding(ChannelBindingType::TlsExporter, 1)]);
    for name in [
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-512-PLUS",
    ] {
        // A man in the middle terminates TLS: the client sees other data.
        let context =
            password("r0m30").with_channel_binding(binding(ChannelBindingType::TlsExporter, 2));
        assert_eq!(
            login(name, context, &connection).server_failure(),
            Some(Failure::NotAuthorized),
            "{name}"
        );
        // A type the server does not have.
        let context = password("r0m30")
            .with_channel_binding(binding(ChannelBindingType::TlsServerEndPoint, 1));
        assert_eq!(
            login(name, context, &connection).server_failure(),
            Some(Failure::NotAuthorized),
            "{name}"
        );
    }
}

#[test]
fn a_stripped_plus_offer_is_detected_by_the_server() {
    // The server offers -PLUS; an attacker strips it from the features. The
    // client, able to bind, says "y" and the server refuses.
    let connection = bound_connection(vec![binding(ChannelBindingType::TlsExporter, 1)]);
    let server = ServerConfig::new();
    let context =
        password("r0m30").with_channel_binding(binding(ChannelBindingType::TlsExporter, 1));
    let mut client = ClientConfig::new()
        .select(context.clone(), &["SCRAM-SHA-256"])
        .unwrap();
    let ended = run(&mut client, &server, &connection, &store(), |_| Ok(()));
    assert_eq!(ended.server_failure(), Some(Failure::NotAuthorized));

    // Without -PLUS on the server side, the same "y" is fine.
    let plain = tls();
    let mut client = ClientConfig::new()
        .select(context.clone(), &["SCRAM-SHA-256"])
        .unwrap();
    run(&mut client, &server, &plain, &store(), |_| Ok(())).unwrap_success();

    // A client that saw -PLUS but chose not to bind says "n": fine too.
    let offered = server.offered(&connection);
    let mut client = only("SCRAM-SHA-256").select(context, &offered).unwrap();
    assert_eq!(&client.start().unwrap().unwrap()[..2], b"n,");
}

#[test]
fn plain_logs_in_over_tls_only() {
    let outcome = login("PLAIN", password("r0m30"), &tls()).unwrap_success();
    assert_eq!(outcome.authcid.as_deref(), Some("juliet"));
    assert_eq!(
        login("PLAIN", password("nope"), &tls()).server_failure(),
        Some(Failure::NotAuthorized)
    );
    let server = ServerConfig::new();
    assert!(
        !server
            .offered(&ConnectionInfo::default())
            .contains(&"PLAIN")
    );
    assert_eq!(
        server
            .start("PLAIN", &ConnectionInfo::default())
            .unwrap_err()
            .failure,
        Failure::EncryptionRequired
    );
}

#[test]
fn plain_passes_the_authzid_on() {
    let context = password("r0m30").with_authzid("juliet@capulet.lit");
    let outcome = login("PLAIN", context, &tls()).unwrap_success();
    assert_eq!(outcome.authzid.as_deref(), Some("juliet@capulet.lit"));
}

fn certificate_connection() -> ConnectionInfo {
    ConnectionInfo {
        encrypted: true,
        client_certificate: true,
        ..ConnectionInfo::default()
    }
}

#[test]
fn external_asks_the_caller_and_passes_the_authzid() {
    let server = ServerConfig::new();
    let connection = certificate_connection();
    for (context, expected) in [
        (ClientContext::new(), Authzid::Empty),
        (
            ClientContext::new().with_authzid("juliet@capulet.lit"),
            Authzid::Value("juliet@capulet.lit".into()),
        ),
    ] {
        let mut client = ClientConfig::new()
            .select(
                context.with_client_certificate(true),
                &server.offered(&connection),
            )
            .unwrap();
        assert_eq!(client.mechanism_name(), "EXTERNAL");
        let seen = std::cell::RefCell::new(None);
        let outcome = run(&mut client, &server, &connection, &store(), |request| {
            *seen.borrow_mut() = Some(request.authzid.clone());
            Ok(())
        })
        .unwrap_success();
        assert_eq!(outcome.authzid.as_deref(), expected.value());
        assert_eq!(seen.into_inner(), Some(expected));
    }
}

#[test]
fn external_reports_the_callers_refusal() {
    let server = ServerConfig::new();
    let connection = certificate_connection();
    for failure in [
        Failure::CredentialsExpired,
        Failure::InvalidAuthzid,
        Failure::NotAuthorized,
    ] {
        let mut client = ClientConfig::new()
            .select(
                ClientContext::new().with_client_certificate(true),
                &["EXTERNAL"],
            )
            .unwrap();
        let ended = run(&mut client, &server, &connection, &store(), |_| {
            Err(failure)
        });
        assert_eq!(ended.server_failure(), Some(failure));
    }
}

#[test]
fn external_without_initial_response_gets_an_empty_challenge() {
    let server = ServerConfig::new();
    let mut session = server.start("EXTERNAL", &certificate_connection()).unwrap();
    let ServerStep::Challenge(challenge) = session.start(None).unwrap() else {
        panic!("expected a challenge");
    };
    assert!(
        challenge.is_empty(),
        "never '=': Strophe's atob throws on it"
    );
    let ServerStep::NeedDecision(request) = session.response(b"").unwrap() else {
        panic!("expected a decision request");
    };
    assert_eq!(request.authzid, Authzid::Absent);
    let ServerStep::Success(outcome) = session.decision(Ok(())).unwrap() else {
        panic!("expected success");
    };
    assert_eq!(outcome.authzid, None);
    assert_eq!(outcome.mechanism, "EXTERNAL");
}

#[test]
fn external_is_offered_only_to_connections_with_a_certificate() {
    let server = ServerConfig::new();
    assert!(!server.offered(&tls()).contains(&"EXTERNAL"));
    assert!(
        server
            .offered(&certificate_connection())
            .contains(&"EXTERNAL")
    );
    assert_eq!(
        server.start("EXTERNAL", &tls()).unwrap_err().failure,
        Failure::InvalidMechanism
    );
}

#[test]
fn anonymous_must_be_allowed_explicitly() {
    let default = ServerConfig::new();
    assert!(!default.offered(&tls()).contains(&"ANONYMOUS"));
    assert_eq!(
        default.start("ANONYMOUS", &tls()).unwrap_err().failure,
        Failure::InvalidMechanism
    );
    let server = ServerConfig::new().allow(["ANONYMOUS"]);
    assert_eq!(server.offered(&tls()), ["ANONYMOUS"]);
    let mut client = ClientConfig::new()
        .select(
            ClientContext::new().with_anonymous_trace("sirhc"),
            &["ANONYMOUS"],
        )
        .unwrap();
    let outcome = run(&mut client, &server, &tls(), &store(), |_| Ok(())).unwrap_success();
    assert_eq!((outcome.authcid, outcome.authzid), (None, None));
}

#[test]
fn the_server_allow_list_and_offer_order() {
    let server = ServerConfig::new();
    assert_eq!(
        server.offered(&certificate_connection()),
        [
            "SCRAM-SHA-512",
            "SCRAM-SHA-256",
            "SCRAM-SHA-1",
            "PLAIN",
            "EXTERNAL"
        ]
    );
    let bound = ConnectionInfo {
        client_certificate: true,
        ..bound_connection(vec![binding(ChannelBindingType::TlsExporter, 0)])
    };
    assert_eq!(
        server.offered(&bound)[..3],
        [
            "SCRAM-SHA-512-PLUS",
            "SCRAM-SHA-256-PLUS",
            "SCRAM-SHA-1-PLUS"
        ]
    );
    assert_eq!(
        bound.channel_binding_types(),
        [ChannelBindingType::TlsExporter]
    );
    // Openfire's `sasl.mechs = EXTERNAL`.
    let external_only = ServerConfig::new().allow(["EXTERNAL"]);
    assert_eq!(external_only.offered(&bound), ["EXTERNAL"]);
    assert_eq!(
        external_only.start("PLAIN", &bound).unwrap_err().failure,
        Failure::InvalidMechanism
    );
    assert_eq!(
        server.start("DIGEST-MD5", &bound).unwrap_err().failure,
        Failure::InvalidMechanism
    );
}

#[test]
fn a_server_that_skips_the_proof_is_caught_by_the_client() {
    let context = password("r0m30");
    let mut client = only("SCRAM-SHA-256")
        .select(context, &["SCRAM-SHA-256"])
        .unwrap();
    client.start().unwrap();
    assert_eq!(
        client.success(None),
        Err(ClientError::ServerSignatureMissing)
    );
}

/// XEP-0484 FAST: every HT variant logs in with the token issued for it,
/// the server proves it holds the token too, and a token for another
/// mechanism, another token, or another channel fails.
#[test]
fn hashed_tokens_log_in_bound_to_their_mechanism_and_channel() {
    let token = "f".repeat(96);
    let connection = bound_connection(vec![
        binding(ChannelBindingType::TlsExporter, 1),
        binding(ChannelBindingType::TlsServerEndPoint, 2),
    ]);
    let server = ServerConfig::new();
    assert!(
        !server
            .offered(&connection)
            .iter()
            .any(|m| m.starts_with("HT-")),
        "token mechanisms are never in the mechanism list"
    );
    assert_eq!(
        server.offered_tokens(&connection),
        vec!["HT-SHA-256-ENDP", "HT-SHA-256-EXPR", "HT-SHA-256-NONE"]
    );
    let client_context = |mechanism: &str, token: &str, exporter: u8| {
        ClientContext::new()
            .with_authcid("juliet")
            .with_encrypted(true)
            .with_fast_token(mechanism, token)
            .with_channel_binding(binding(ChannelBindingType::TlsExporter, exporter))
            .with_channel_binding(binding(ChannelBindingType::TlsServerEndPoint, 2))
    };
    for mechanism in sigil_sasl::ht::MECHANISMS {
        let store = Store::default().with_token("juliet", mechanism, &token);
        let offered = server.offered_tokens(&connection);
        let mut client = ClientConfig::new()
            .select(client_context(mechanism, &token, 1), &offered)
            .unwrap();
        assert_eq!(client.mechanism_name(), mechanism);
        let outcome = run(&mut client, &server, &connection, &store, |_| Ok(())).unwrap_success();
        assert_eq!(outcome.authcid.as_deref(), Some("juliet"));

        // The same token, another one, or the token of another mechanism.
        let wrong = Store::default().with_token("juliet", mechanism, &"g".repeat(96));
        let mut client = ClientConfig::new()
            .select(client_context(mechanism, &token, 1), &offered)
            .unwrap();
        let ended = run(&mut client, &server, &connection, &wrong, |_| Ok(()));
        assert_eq!(
            ended.server_failure(),
            Some(Failure::NotAuthorized),
            "{mechanism}"
        );
        // An expired token: its holder is told so, a guesser is not.
        for (held, expected) in [
            (token.clone(), Failure::CredentialsExpired),
            ("g".repeat(96), Failure::NotAuthorized),
        ] {
            let expired = Store::default().with_expired_token("juliet", mechanism, &token);
            let mut client = ClientConfig::new()
                .select(client_context(mechanism, &held, 1), &offered)
                .unwrap();
            let ended = run(&mut client, &server, &connection, &expired, |_| Ok(()));
            assert_eq!(ended.server_failure(), Some(expected), "{mechanism}");
        }
    }
    // A token used over another channel (the client's exporter differs).
    let store = Store::default().with_token("juliet", "HT-SHA-256-EXPR", &token);
    let mut client = ClientConfig::new()
        .select(
            client_context("HT-SHA-256-EXPR", &token, 9),
            &["HT-SHA-256-EXPR"],
        )
        .unwrap();
    let ended = run(&mut client, &server, &connection, &store, |_| Ok(()));
    assert_eq!(ended.server_failure(), Some(Failure::NotAuthorized));
    // The unbound variant does not care.
    let store = Store::default().with_token("juliet", "HT-SHA-256-NONE", &token);
    let mut client = ClientConfig::new()
        .select(
            client_context("HT-SHA-256-NONE", &token, 9),
            &["HT-SHA-256-NONE"],
        )
        .unwrap();
    assert!(matches!(
        run(&mut client, &server, &connection, &store, |_| Ok(())),
        Ended::Success(_)
    ));
    // Without a token, no HT mechanism is chosen; without TLS none is offered.
    assert!(
        ClientConfig::new()
            .select(password("r0m30"), &["HT-SHA-256-NONE"])
            .is_err()
    );
    assert!(server.offered_tokens(&ConnectionInfo::default()).is_empty());
}

/// XEP-0474: the server signs what it advertised into SCRAM; a client
/// that received the same logs in, one that received a list a
/// man-in-the-middle changed (the `-PLUS` variants or the binding types
/// removed) refuses, and without the attribute nothing is checked.
#[test]
fn scram_downgrade_protection() {
    use sigil_sasl::ssdp::Advertised;
    let connection = bound_connection(vec![binding(ChannelBindingType::TlsExporter, 1)]);
    let server = ServerConfig::new();
    let sent = Advertised {
        mechanisms: server
            .offered(&connection)
            .into_iter()
            .map(str::to_owned)
            .collect(),
        channel_bindings: Some(vec!["tls-exporter".into()]),
    };
    let stripped = Advertised {
        mechanisms: sent
            .mechanisms
            .iter()
            .filter(|m| !m.ends_with("-PLUS"))
            .cloned()
            .collect(),
        channel_bindings: None,
    };
    for (received, name, expect_ok) in [
        (&sent, "SCRAM-SHA-256-PLUS", true),
        (&sent, "SCRAM-SHA-1", true),
        (&stripped, "SCRAM-SHA-256", false),
        (&stripped, "SCRAM-SHA-1", false),
    ] {
        // (A client with binding data would say `y` to a stripped offer,
        // which SCRAM itself catches; XEP-0474 also covers one without.)
        let mut context = password("r0m30").with_advertised(received.clone());
        if name.ends_with("-PLUS") {
            context = context.with_channel_binding(binding(ChannelBindingType::TlsExporter, 1));
        }
        let mut client = only(name).select(context, &[name]).unwrap();
        let mut session = server
            .start_advertised(name, &connection, Some(&sent))
            .unwrap();
        let first = client.start().unwrap();
        let ServerStep::NeedCredentials(request) = session.start(first.as_deref()).unwrap() else {
            panic!("credentials first");
        };
        let ServerStep::Challenge(server_first) = session
            .credentials(store().lookup(&request.authcid, request.algorithm))
            .unwrap()
        else {
            panic!("a challenge");
        };
        assert!(
            String::from_utf8_lossy(&server_first).contains(",h="),
            "the server signs what it advertised"
        );
        match client.challenge(&server_first) {
            Ok(final_message) if expect_ok => {
                let ServerStep::Success(outcome) = session.response(&final_message).unwrap() else {
                    panic!("success");
                };
                client.success(outcome.additional_data.as_deref()).unwrap();
            }
            Err(ClientError::Downgrade) if !expect_ok => {}
            other => panic!("{name}: {other:?}"),
        }
    }
    // A server without SSDP: no attribute, nothing checked.
    let context = password("r0m30").with_advertised(stripped);
    let mut client = only("SCRAM-SHA-1")
        .select(context, &["SCRAM-SHA-1"])
        .unwrap();
    let ended = run(&mut client, &server, &connection, &store(), |_| Ok(()));
    assert!(matches!(ended, Ended::Success(_)), "{ended:?}");
}
