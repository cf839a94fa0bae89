//! Bad input on both sides: every case ends in the right typed failure,
//! never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::tls;
use sigil_sasl::client::{AllowList, ClientConfig, ClientContext, ClientError, ClientSession};
use sigil_sasl::server::{ConnectionInfo, ServerConfig, ServerSession, ServerStep};
use sigil_sasl::{Algorithm, ChannelBinding, ChannelBindingType, Failure, StoredCredentials};

fn creds(algorithm: Algorithm) -> StoredCredentials {
    StoredCredentials::derive(algorithm, "pencil", b"salt and pepper", 4096).unwrap()
}

/// A SCRAM-SHA-1 server session that has received `client_first` and been
/// given credentials; returns it with the server-first message.
fn scram_after_first(client_first: &str) -> (ServerSession, String) {
    let mut session = ServerConfig::new().start("SCRAM-SHA-1", &tls()).unwrap();
    let step = session.start(Some(client_first.as_bytes())).unwrap();
    assert!(matches!(step, ServerStep::NeedCredentials(_)), "{step:?}");
    let ServerStep::Challenge(server_first) =
        session.credentials(Some(creds(Algorithm::Sha1))).unwrap()
    else {
        panic!("expected server-first")
    };
    (session, String::from_utf8(server_first).unwrap())
}

fn server_start(name: &str, connection: &ConnectionInfo, message: &[u8]) -> Failure {
    let mut session = ServerConfig::new().start(name, connection).unwrap();
    session.start(Some(message)).unwrap_err().failure
}

#[test]
fn malformed_client_first_messages() {
    let cases: &[(&str, Failure)] = &[
        ("", Failure::MalformedRequest),
        ("n", Failure::MalformedRequest),
        ("n,", Failure::MalformedRequest),
        ("n,,", Failure::MalformedRequest),
        ("n,,r=abc", Failure::MalformedRequest),
        ("n,,n=user", Failure::MalformedRequest),
        ("n,,n=user,n=user,r=abc", Failure::MalformedRequest),
        ("n,,n=user,r=abc,r=abc", Failure::MalformedRequest),
        ("n,,r=abc,n=user", Failure::MalformedRequest),
        ("n,,m=ext,n=user,r=abc", Failure::MalformedRequest),
        ("n,,n=us=er,r=abc", Failure::MalformedRequest),
        ("n,,n=,r=abc", Failure::MalformedRequest),
        ("n,,n=user,r=", Failure::MalformedRequest),
        ("n,,n=user,r=a\u{7f}b", Failure::MalformedRequest),
        ("x,,n=user,r=abc", Failure::MalformedRequest),
        ("n,b=user,n=user,r=abc", Failure::MalformedRequest),
        ("n,a=,n=user,r=abc", Failure::MalformedRequest),
        ("n,,n=\u{0007},r=abc", Failure::MalformedRequest),
        ("p=tls-exporter,,n=user,r=abc", Failure::MalformedRequest),
    ];
    for (message, failure) in cases {
        assert_eq!(
            server_start("SCRAM-SHA-1", &tls(), message.as_bytes()),
            *failure,
            "{message:?}"
        );
    }
    assert_eq!(
        server_start("SCRAM-SHA-1", &tls(), b"n,,n=user,r=\xff\xfe"),
        Failure::MalformedRequest
    );
}

#[test]
fn plus_mechanisms_refuse_missing_or_unknown_binding() {
    let connection = ConnectionInfo {
        encrypted: true,
        channel_bindings: vec![ChannelBinding::new(
            ChannelBindingType::TlsExporter,
            [1; 32],
        )],
        ..ConnectionInfo::default()
    };
    for message in [
        "n,,n=user,r=abc",
        "y,,n=user,r=abc",
        "p=tls-unique,,n=user,r=abc",
        "p=tls-server-end-point,,n=user,r=abc",
    ] {
        assert_eq!(
            server_start("SCRAM-SHA-256-PLUS", &connection, message.as_bytes()),
            Failure::NotAuthorized,
            "{message}"
        );
    }
    // "y" to a non-PLUS mechanism while -PLUS was offered: a downgrade.
    assert_eq!(
        server_start("SCRAM-SHA-256", &connection, b"y,,n=user,r=abc"),
        Failure::NotAuthorized
    );
    // A -PLUS mechanism on a connection without binding data is not offered.
    assert_eq!(
        ServerConfig::new()
            .start("SCRAM-SHA-256-PLUS", &tls())
            .unwrap_err()
            .failure,
        Failure::InvalidMechanism
    );
}

#[test]
fn malformed_client_final_messages() {
    let cases: &[(&str, Failure)] = &[
        ("", Failure::MalformedRequest),
        ("c=biws,r={nonce}", Failure::MalformedRequest),
        ("c=biws,p=AAAA", Failure::MalformedRequest),
        ("r={nonce},c=biws,p={proof}", Failure::MalformedRequest),
        (
            "c=biws,r={nonce},r={nonce},p={proof}",
            Failure::MalformedRequest,
        ),
        (
            "c=biws,c=biws,r={nonce},p={proof}",
            Failure::MalformedRequest,
        ),
        (
            "c=biws,r={nonce},x=ext,p={proof}",
            Failure::MalformedRequest,
        ),
        ("c=!!!!,r={nonce},p={proof}", Failure::MalformedRequest),
        ("c=biws,r={nonce},p=!!!!", Failure::MalformedRequest),
        ("c=biws,r={nonce},p=AAAA", Failure::MalformedRequest),
        ("c=biws,r={nonce}X,p={proof}", Failure::MalformedRequest),
        ("c=biws,r=fyko,p={proof}", Failure::MalformedRequest),
        ("c=eSws,r={nonce},p={proof}", Failure::NotAuthorized),
        ("c=biws,r={nonce},p={proof}", Failure::NotAuthorized),
    ];
    // A proof of the right length but wrong content.
    let proof = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    for (template, failure) in cases {
        let (mut session, server_first) = scram_after_first("n,,n=user,r=fyko");
        let nonce = server_first
            .strip_prefix("r=")
            .and_then(|rest| rest.split(',').next())
            .unwrap();
        let message = template.replace("{nonce}", nonce).replace("{proof}", proof);
        assert_eq!(
            session.response(message.as_bytes()).unwrap_err().failure,
            *failure,
            "{message}"
        );
        assert!(session.is_done());
    }
}

#[test]
fn steps_out_of_order_and_after_the_end() {
    let server = ServerConfig::new();
    let mut session = server.start("SCRAM-SHA-256", &tls()).unwrap();
    assert_eq!(
        session.response(b"early").unwrap_err().failure,
        Failure::MalformedRequest
    );
    assert_eq!(
        session.start(Some(b"n,,n=u,r=a")).unwrap_err().failure,
        Failure::MalformedRequest
    );

    let mut session = server.start("SCRAM-SHA-256", &tls()).unwrap();
    session.start(Some(b"n,,n=u,r=a")).unwrap();
    // A response while we wait for the credential lookup.
    assert_eq!(
        session.response(b"c=biws").unwrap_err().failure,
        Failure::MalformedRequest
    );

    let mut session = server.start("PLAIN", &tls()).unwrap();
    session.start(Some(b"\0user\0pencil")).unwrap();
    let ServerStep::Success(_) = session.credentials(Some(creds(Algorithm::Sha256))).unwrap()
    else {
        panic!("expected success");
    };
    assert!(session.is_done());
    assert_eq!(
        session.response(b"more").unwrap_err().failure,
        Failure::MalformedRequest
    );
    assert_eq!(
        session.credentials(None).unwrap_err().failure,
        Failure::MalformedRequest
    );
    assert_eq!(
        session.decision(Ok(())).unwrap_err().failure,
        Failure::MalformedRequest
    );

    let mut session = server.start("SCRAM-SHA-1", &tls()).unwrap();
    assert_eq!(session.abort().failure, Failure::Aborted);
    assert_eq!(
        session.start(None).unwrap_err().failure,
        Failure::MalformedRequest
    );
}

#[test]
fn messages_over_the_cap_are_refused() {
    let server = ServerConfig::new().with_max_message_len(64);
    let mut session = server.start("PLAIN", &tls()).unwrap();
    let big = vec![b'a'; 65];
    assert_eq!(
        session.start(Some(&big)).unwrap_err().failure,
        Failure::MalformedRequest
    );
    let mut session = server.start("SCRAM-SHA-1", &tls()).unwrap();
    session.start(None).unwrap();
    assert_eq!(
        session.response(&big).unwrap_err().failure,
        Failure::MalformedRequest
    );
}

#[test]
fn plain_and_external_and_anonymous_bad_input() {
    let connection = ConnectionInfo {
        client_certificate: true,
        ..tls()
    };
    for message in [
        &b"user\0pencil"[..],
        b"\0user\0pencil\0",
        b"\0\0pencil",
        b"\0user\0",
        b"\xff\0u\0p",
    ] {
        assert_eq!(
            server_start("PLAIN", &tls(), message),
            Failure::MalformedRequest,
            "{message:?}"
        );
    }
    // Unknown user and wrong hash stored for PLAIN.
    let mut session = ServerConfig::new().start("PLAIN", &tls()).unwrap();
    session.start(Some(b"\0nobody\0pencil")).unwrap();
    assert_eq!(
        session.credentials(None).unwrap_err().failure,
        Failure::NotAuthorized
    );

    assert_eq!(
        server_start("EXTERNAL", &connection, b"a\0b"),
        Failure::InvalidAuthzid
    );
    assert_eq!(
        server_start("EXTERNAL", &connection, b"\xc3"),
        Failure::MalformedRequest
    );

    let anonymous = ServerConfig::new().allow(["ANONYMOUS"]);
    let mut session = anonymous.start("ANONYMOUS", &tls()).unwrap();
    let long = "x".repeat(256);
    assert_eq!(
        session.start(Some(long.as_bytes())).unwrap_err().failure,
        Failure::MalformedRequest
    );
}

#[test]
fn scram_credentials_of_another_hash_are_a_server_fault() {
    let mut session = ServerConfig::new().start("SCRAM-SHA-256", &tls()).unwrap();
    session.start(Some(b"n,,n=user,r=abc")).unwrap();
    assert_eq!(
        session
            .credentials(Some(creds(Algorithm::Sha1)))
            .unwrap_err()
            .failure,
        Failure::TemporaryAuthFailure
    );
}

// --- the client side -------------------------------------------------------

fn scram_client(context: ClientContext) -> (ClientSession, String) {
    let config = ClientConfig::new().allow(AllowList::new().name("SCRAM-SHA-256"));
    let mut session = config.select(context, &["SCRAM-SHA-256"]).unwrap();
    let first = String::from_utf8(session.start().unwrap().unwrap()).unwrap();
    let nonce = first.rsplit_once("r=").unwrap().1.to_owned();
    (session, nonce)
}

fn password() -> ClientContext {
    ClientContext::new()
        .with_authcid("user")
        .with_password("pencil")
}

#[test]
fn the_client_refuses_bad_server_first_messages() {
    let cases: &[(&str, ClientError)] = &[
        (
            "r={n}x,s=c2FsdA==,i=4095",
            ClientError::IterationCount(4095),
        ),
        ("r={n}x,s=c2FsdA==,i=0", ClientError::IterationCount(0)),
        (
            "r={n}x,s=c2FsdA==,i=4000000000",
            ClientError::IterationCount(4_000_000_000),
        ),
        ("r=other,s=c2FsdA==,i=4096", ClientError::NonceMismatch),
        ("r={n},s=c2FsdA==,i=4096", ClientError::NonceMismatch),
        (
            "r={n}x,s=!!!!,i=4096",
            ClientError::InvalidServerMessage("the salt is not base64"),
        ),
        (
            "r={n}x,s=,i=4096",
            ClientError::InvalidServerMessage("the salt is empty"),
        ),
        (
            "r={n}x,s=c2FsdA==,i=many",
            ClientError::InvalidServerMessage("the iteration count is not a number"),
        ),
        (
            "r={n}x,i=4096",
            ClientError::InvalidServerMessage("server-first needs r, s and i, in order"),
        ),
        (
            "r={n}x,r={n}x,s=c2FsdA==,i=4096",
            ClientError::InvalidServerMessage("server-first needs r, s and i, in order"),
        ),
        (
            "m=x,r={n}x,s=c2FsdA==,i=4096",
            ClientError::InvalidServerMessage("server-first needs r, s and i, in order"),
        ),
        (
            "e=other-error",
            ClientError::ServerError("other-error".into()),
        ),
        (
            "garbage",
            ClientError::InvalidServerMessage("server-first is malformed"),
        ),
    ];
    for (template, expected) in cases {
        let (mut session, nonce) = scram_client(password());
        let message = template.replace("{n}", &nonce);
        assert_eq!(
            session.challenge(message.as_bytes()).unwrap_err(),
            *expected,
            "{message}"
        );
        // And the session is over.
        assert_eq!(
            session.challenge(b"x").unwrap_err(),
            ClientError::OutOfOrder
        );
    }
    let (mut session, _) = scram_client(password());
    assert!(matches!(
        session.challenge(b"r=\xff").unwrap_err(),
        ClientError::InvalidServerMessage(_)
    ));
}

#[test]
fn the_iteration_cap_is_configurable() {
    let (mut session, nonce) = scram_client(password().with_max_iterations(5000));
    let message = format!("r={nonce}x,s=c2FsdA==,i=5001");
    assert_eq!(
        session.challenge(message.as_bytes()).unwrap_err(),
        ClientError::IterationCount(5001)
    );
    let (mut session, nonce) = scram_client(password().with_max_iterations(5000));
    let message = format!("r={nonce}x,s=c2FsdA==,i=5000");
    assert!(session.challenge(message.as_bytes()).is_ok());
}

#[test]
fn the_client_refuses_bad_server_final_messages() {
    for (last, expected) in [
        (
            &b"v=!!!"[..],
            ClientError::InvalidServerMessage("the server signature is not base64"),
        ),
        (b"v=AAAA", ClientError::ServerSignatureMismatch),
        (
            b"e=invalid-proof",
            ClientError::ServerError("invalid-proof".into()),
        ),
        (
            b"x=1",
            ClientError::InvalidServerMessage("server-final needs v"),
        ),
        (
            b"v=AAAA,v=AAAA",
            ClientError::InvalidServerMessage("server-final needs v"),
        ),
        (b"", ClientError::ServerSignatureMissing),
    ] {
        let (mut session, nonce) = scram_client(password());
        session
            .challenge(format!("r={nonce}x,s=c2FsdA==,i=4096").as_bytes())
            .unwrap();
        assert_eq!(session.success(Some(last)).unwrap_err(), expected);
        assert!(!session.is_complete());
        assert_eq!(session.success(None).unwrap_err(), ClientError::OutOfOrder);
    }
}

#[test]
fn the_client_caps_message_size_and_order() {
    let config = ClientConfig::new().with_max_message_len(16);
    let mut session = config.select(password(), &["SCRAM-SHA-1"]).unwrap();
    assert_eq!(
        session.challenge(b"r=a").unwrap_err(),
        ClientError::OutOfOrder
    );
    let mut session = config.select(password(), &["SCRAM-SHA-1"]).unwrap();
    session.start().unwrap();
    assert_eq!(
        session.challenge(&[b'a'; 17]).unwrap_err(),
        ClientError::MessageTooLarge
    );
    let mut session = config.select(password(), &["SCRAM-SHA-1"]).unwrap();
    session.start().unwrap();
    assert_eq!(session.start().unwrap_err(), ClientError::OutOfOrder);
    let mut session = config.select(password(), &["SCRAM-SHA-1"]).unwrap();
    session.start().unwrap();
    let error = session.failure(Some(Failure::NotAuthorized), Some("bad".into()));
    assert_eq!(
        error.to_string(),
        "the server refused the login: not-authorized (bad)"
    );
    assert_eq!(
        session.challenge(b"x").unwrap_err(),
        ClientError::OutOfOrder
    );
}

#[test]
fn the_client_refuses_credentials_saslprep_rejects() {
    let config = ClientConfig::new();
    let context = ClientContext::new()
        .with_authcid("user\u{0007}")
        .with_password("p");
    let mut session = config.select(context, &["SCRAM-SHA-1"]).unwrap();
    assert!(matches!(
        session.start().unwrap_err(),
        ClientError::Saslprep(_)
    ));
    let context = ClientContext::new()
        .with_authcid("user")
        .with_password("\u{0627}1")
        .with_encrypted(true);
    let mut session = config.select(context, &["PLAIN"]).unwrap();
    assert!(matches!(
        session.start().unwrap_err(),
        ClientError::Saslprep(_)
    ));
}

#[test]
fn oauthbearer_client_messages() {
    let context = ClientContext::new()
        .with_bearer_token("vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==")
        .with_authzid("user@example.com")
        .with_host("server.example.com", Some(143));
    let mut session = ClientConfig::new()
        .select(context, &["OAUTHBEARER"])
        .unwrap();
    // RFC 7628 §4.1, with the port and host the example uses.
    assert_eq!(
        session.start().unwrap().unwrap(),
        b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    );
    // An error challenge is answered with 0x01 (RFC 7628 §3.2.3).
    assert_eq!(
        session.challenge(br#"{"status":"invalid_token"}"#).unwrap(),
        [1]
    );
    let context = ClientContext::new().with_bearer_token("bad\ntoken");
    let mut session = ClientConfig::new()
        .select(context, &["OAUTHBEARER"])
        .unwrap();
    assert!(matches!(
        session.start().unwrap_err(),
        ClientError::MissingCredentials(_)
    ));
}
