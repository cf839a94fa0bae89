//! The server over real TCP and real TLS (STARTTLS and direct TLS):
//! logins, roster, presence, messages, offline delivery across a restart,
//! IQ errors, conflicts, shutdown, and the exact errors for bad input.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{DOMAIN, Login, TestClient, TestServer, answers_a_ping};
use sigil_proto::client::ClientError;
use sigil_proto::error::{StanzaCondition, StanzaError, StreamCondition};
use sigil_server::config::{ClientCertificatePolicy, ListenerKind};
use sigil_xml::{Element, ns};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn message(to: &str, body: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attribute("to", to)
        .with_attribute("type", "chat")
        .with_attribute("id", format!("m-{body}"))
        .with_child(Element::new("body", ns::CLIENT).with_text(body))
}

fn iq(kind: &str, id: &str, to: Option<&str>, payload: Element) -> Element {
    let mut iq = Element::new("iq", ns::CLIENT)
        .with_attribute("type", kind)
        .with_attribute("id", id);
    if let Some(to) = to {
        iq.set_attribute("to", to);
    }
    iq.with_child(payload)
}

fn presence() -> Element {
    Element::new("presence", ns::CLIENT)
}

fn subscription(kind: &str, to: &str) -> Element {
    Element::new("presence", ns::CLIENT)
        .with_attribute("type", kind)
        .with_attribute("to", to)
}

fn body(stanza: &Element) -> Option<String> {
    stanza.child("body", ns::CLIENT).map(Element::text)
}

fn is_roster_push_for(stanza: &Element, contact: &str) -> Option<String> {
    if stanza.name() != "iq" || stanza.attribute("type") != Some("set") {
        return None;
    }
    let item = stanza
        .child("query", ns::ROSTER)?
        .child("item", ns::ROSTER)?;
    (item.attribute("jid") == Some(contact)).then(|| {
        item.attribute("subscription")
            .unwrap_or_default()
            .to_owned()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_accounts_subscribe_exchange_presence_and_messages() {
    let server = TestServer::start().await;
    let mut alice = TestClient::connect(
        &server,
        Login::new("alice", ListenerKind::Starttls).mechanism("SCRAM-SHA-256"),
    )
    .await;
    let mut bob = TestClient::connect(
        &server,
        Login::new("bob", ListenerKind::DirectTls).mechanism("PLAIN"),
    )
    .await;
    assert_eq!(alice.mechanism.as_deref(), Some("SCRAM-SHA-256"));
    assert_eq!(bob.mechanism.as_deref(), Some("PLAIN"));
    assert_eq!(alice.jid(), "alice@localhost/test");
    assert_eq!(bob.jid(), "bob@localhost/test");

    // Both fetch their (empty) rosters, so they get pushes, and go online.
    for client in [&mut alice, &mut bob] {
        client
            .send(iq("get", "r1", None, Element::new("query", ns::ROSTER)))
            .await;
        let result = client.recv().await;
        assert_eq!(result.attribute("type"), Some("result"), "{result:?}");
        assert_eq!(
            result
                .child("query", ns::ROSTER)
                .unwrap()
                .children()
                .count(),
            0
        );
        client.send(presence()).await;
        // Own presence is reflected to the sender.
        let own = client.recv_matching(|s| s.name() == "presence").await;
        assert_eq!(own.attribute("from"), Some(client.jid().as_str()));
    }

    // alice asks bob; both see roster pushes; bob approves.
    alice.send(subscription("subscribe", "bob@localhost")).await;
    let push = alice
        .recv_matching(|s| is_roster_push_for(s, "bob@localhost").is_some())
        .await;
    let item = push
        .child("query", ns::ROSTER)
        .unwrap()
        .child("item", ns::ROSTER)
        .unwrap();
    assert_eq!(item.attribute("ask"), Some("subscribe"));
    let request = bob
        .recv_matching(|s| s.name() == "presence" && s.attribute("type") == Some("subscribe"))
        .await;
    assert_eq!(request.attribute("from"), Some("alice@localhost"));
    bob.send(subscription("subscribed", "alice@localhost"))
        .await;
    let push = bob
        .recv_matching(|s| is_roster_push_for(s, "alice@localhost").is_some())
        .await;
    assert_eq!(
        is_roster_push_for(&push, "alice@localhost").as_deref(),
        Some("from")
    );
    let push = alice
        .recv_matching(|s| is_roster_push_for(s, "bob@localhost").is_some())
        .await;
    assert_eq!(
        is_roster_push_for(&push, "bob@localhost").as_deref(),
        Some("to")
    );
    let subscribed = alice
        .recv_matching(|s| s.name() == "presence" && s.attribute("type") == Some("subscribed"))
        .await;
    assert_eq!(subscribed.attribute("from"), Some("bob@localhost"));
    // And alice now receives bob's current presence.
    let bobs = alice
        .recv_matching(|s| {
            s.name() == "presence"
                && s.attribute("type").is_none()
                && s.attribute("from") == Some("bob@localhost/test")
        })
        .await;
    assert_eq!(bobs.attribute("to"), Some("alice@localhost/test"));

    // A presence change of bob reaches alice (subscription to).
    bob.send(presence().with_child(Element::new("status", ns::CLIENT).with_text("away for lunch")))
        .await;
    let status = alice
        .recv_matching(|s| {
            s.name() == "presence" && s.attribute("from") == Some("bob@localhost/test")
        })
        .await;
    assert_eq!(
        status.child("status", ns::CLIENT).unwrap().text(),
        "away for lunch"
    );

    // Messages both ways, to the bare and the full JID.
    alice.send(message("bob@localhost", "hello bob")).await;
    let got = bob.recv_matching(|s| s.name() == "message").await;
    assert_eq!(body(&got).as_deref(), Some("hello bob"));
    assert_eq!(got.attribute("from"), Some("alice@localhost/test"));
    bob.send(message("alice@localhost/test", "hello alice"))
        .await;
    let got = alice.recv_matching(|s| s.name() == "message").await;
    assert_eq!(body(&got).as_deref(), Some("hello alice"));

    // The roster shows the subscription states.
    alice
        .send(iq("get", "r2", None, Element::new("query", ns::ROSTER)))
        .await;
    let roster = alice
        .recv_matching(|s| s.attribute("id") == Some("r2"))
        .await;
    let item = roster
        .child("query", ns::ROSTER)
        .unwrap()
        .child("item", ns::ROSTER)
        .unwrap();
    assert_eq!(item.attribute("subscription"), Some("to"));

    // bob leaves: alice sees him go.
    bob.close().await;
    let gone = alice
        .recv_matching(|s| s.name() == "presence" && s.attribute("type") == Some("unavailable"))
        .await;
    assert_eq!(gone.attribute("from"), Some("bob@localhost/test"));
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_message_survives_a_restart() {
    let mut server = TestServer::start().await;
    let mut alice =
        TestClient::connect(&server, Login::new("alice", ListenerKind::DirectTls)).await;
    alice
        .send(message("carol@localhost", "while you were out"))
        .await;
    // No error comes back: the message was stored.
    assert!(
        alice
            .try_recv(std::time::Duration::from_millis(300))
            .await
            .is_none()
    );
    alice.close().await;
    assert_eq!(
        server
            .store()
            .offline_count("carol@localhost")
            .await
            .unwrap(),
        1
    );

    server.restart().await;

    let mut carol = TestClient::connect(&server, Login::new("carol", ListenerKind::Starttls)).await;
    // Nothing before initial presence.
    assert!(
        carol
            .try_recv(std::time::Duration::from_millis(300))
            .await
            .is_none()
    );
    carol.send(presence()).await;
    let got = carol.recv_matching(|s| s.name() == "message").await;
    assert_eq!(body(&got).as_deref(), Some("while you were out"));
    assert_eq!(got.attribute("from"), Some("alice@localhost/test"));
    let delay = got.child("delay", ns::DELAY).expect("a delay stamp");
    assert_eq!(delay.attribute("from"), Some(DOMAIN));
    assert!(delay.attribute("stamp").unwrap().ends_with('Z'));
    // Written to a client without stream management: then deleted.
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    while server
        .store()
        .offline_count("carol@localhost")
        .await
        .unwrap()
        > 0
    {
        assert!(std::time::Instant::now() < deadline, "not deleted");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    carol.close().await;
}

/// Stanzas queued for a session leave in batches (one write for many);
/// a burst several batches long arrives whole and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_messages_arrives_whole_and_in_order() {
    let server = TestServer::start().await;
    let mut alice =
        TestClient::connect(&server, Login::new("alice", ListenerKind::DirectTls)).await;
    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::Starttls)).await;
    const BURST: usize = 1000;
    // In one write, so that the server routes them all at once and they
    // pile up in Bob's queue faster than his connection drains it.
    let burst: String = (0..BURST)
        .map(|n| message(&bob.jid(), &n.to_string()).to_xml())
        .collect();
    alice.send_raw(&burst).await;
    for n in 0..BURST {
        let stanza = bob.recv().await;
        assert_eq!(body(&stanza).as_deref(), Some(n.to_string().as_str()));
    }
    assert!(
        bob.try_recv(std::time::Duration::from_millis(200))
            .await
            .is_none()
    );
    alice.close().await;
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_to_unknown_accounts_and_resources() {
    let server = TestServer::start().await;
    let mut alice =
        TestClient::connect(&server, Login::new("alice", ListenerKind::DirectTls)).await;
    alice.send(message("nobody@localhost", "x")).await;
    let error = alice.recv().await;
    assert_eq!(
        StanzaError::from_stanza(&error).unwrap().condition,
        StanzaCondition::ServiceUnavailable
    );
    assert_eq!(error.attribute("from"), Some("nobody@localhost"));
    alice.send(message("bob@elsewhere.example", "x")).await;
    let error = alice.recv().await;
    assert_eq!(
        StanzaError::from_stanza(&error).unwrap().condition,
        StanzaCondition::RemoteServerNotFound
    );
    alice.send(message("to@", "x")).await;
    // An invalid `to` cannot even be parsed by the framer's JID rules:
    let error = alice.recv().await;
    assert_eq!(
        StanzaError::from_stanza(&error).unwrap().condition,
        StanzaCondition::JidMalformed
    );
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iq_to_the_server_and_its_errors() {
    let server = TestServer::start().await;
    let mut alice =
        TestClient::connect(&server, Login::new("alice", ListenerKind::DirectTls)).await;
    alice
        .send(iq(
            "get",
            "d1",
            Some(DOMAIN),
            Element::new("query", ns::DISCO_INFO),
        ))
        .await;
    let info = alice.recv().await;
    let query = info.child("query", ns::DISCO_INFO).unwrap();
    let identity = query.child("identity", ns::DISCO_INFO).unwrap();
    assert_eq!(
        (identity.attribute("category"), identity.attribute("type")),
        (Some("server"), Some("im"))
    );
    let features: Vec<&str> = query
        .children()
        .filter_map(|f| f.attribute("var"))
        .collect();
    assert!(
        features.contains(&ns::PING) && features.contains(&ns::VERSION),
        "{features:?}"
    );

    alice
        .send(iq(
            "get",
            "p1",
            Some(DOMAIN),
            Element::new("ping", ns::PING),
        ))
        .await;
    let pong = alice.recv().await;
    assert_eq!(
        (pong.attribute("type"), pong.attribute("id")),
        (Some("result"), Some("p1"))
    );

    alice
        .send(iq(
            "get",
            "v1",
            Some(DOMAIN),
            Element::new("query", ns::VERSION),
        ))
        .await;
    let version = alice.recv().await;
    assert_eq!(
        version
            .child("query", ns::VERSION)
            .unwrap()
            .child("name", ns::VERSION)
            .unwrap()
            .text(),
        "Sigil"
    );

    let cases = [
        (
            iq(
                "get",
                "e1",
                Some(DOMAIN),
                Element::new("query", "urn:example:unknown"),
            ),
            StanzaCondition::ServiceUnavailable,
        ),
        (
            iq(
                "set",
                "e2",
                Some(DOMAIN),
                Element::new("query", ns::DISCO_INFO),
            ),
            StanzaCondition::FeatureNotImplemented,
        ),
        (
            iq(
                "get",
                "e3",
                Some("bob@localhost/nowhere"),
                Element::new("ping", ns::PING),
            ),
            StanzaCondition::ServiceUnavailable,
        ),
        (
            iq(
                "set",
                "e4",
                None,
                Element::new("query", ns::ROSTER).with_child(
                    Element::new("item", ns::ROSTER)
                        .with_attribute("jid", "nobody@localhost")
                        .with_attribute("subscription", "remove"),
                ),
            ),
            StanzaCondition::ItemNotFound,
        ),
        (
            iq(
                "get",
                "e5",
                Some("elsewhere.example"),
                Element::new("ping", ns::PING),
            ),
            StanzaCondition::RemoteServerNotFound,
        ),
    ];
    for (request, condition) in cases {
        let id = request.attribute("id").unwrap().to_owned();
        alice.send(request).await;
        let reply = alice.recv().await;
        assert_eq!(reply.attribute("id"), Some(id.as_str()));
        assert_eq!(reply.attribute("type"), Some("error"), "{reply:?}");
        assert_eq!(
            StanzaError::from_stanza(&reply).unwrap().condition,
            condition,
            "{id}"
        );
    }

    // IQs between two clients are routed to the full JID.
    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::Starttls)).await;
    alice
        .send(iq(
            "get",
            "x1",
            Some("bob@localhost/test"),
            Element::new("query", "urn:example:custom"),
        ))
        .await;
    let routed = bob.recv().await;
    assert_eq!(routed.attribute("from"), Some("alice@localhost/test"));
    bob.send(
        Element::new("iq", ns::CLIENT)
            .with_attribute("type", "result")
            .with_attribute("id", "x1")
            .with_attribute("to", "alice@localhost/test"),
    )
    .await;
    let answer = alice.recv().await;
    assert_eq!(
        (answer.attribute("type"), answer.attribute("from")),
        (Some("result"), Some("bob@localhost/test"))
    );
    alice.close().await;
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scram_variant_and_plain_log_in_and_bad_passwords_do_not() {
    let server = TestServer::start().await;
    for (kind, mechanism) in [
        (ListenerKind::Starttls, "SCRAM-SHA-1"),
        (ListenerKind::Starttls, "SCRAM-SHA-512"),
        (ListenerKind::DirectTls, "SCRAM-SHA-256-PLUS"),
        (ListenerKind::Starttls, "SCRAM-SHA-512-PLUS"),
        (ListenerKind::DirectTls, "PLAIN"),
    ] {
        let client =
            TestClient::connect(&server, Login::new("alice", kind).mechanism(mechanism)).await;
        assert_eq!(client.mechanism.as_deref(), Some(mechanism), "{kind:?}");
        client.close().await;
    }
    // With no allow-list the strongest is chosen: -PLUS with tls-exporter.
    let client = TestClient::connect(&server, Login::new("alice", ListenerKind::DirectTls)).await;
    assert_eq!(client.mechanism.as_deref(), Some("SCRAM-SHA-512-PLUS"));
    client.close().await;

    let mut bad = TestClient::connect(
        &server,
        Login::new("alice", ListenerKind::Starttls)
            .password("wrong")
            .mechanism("SCRAM-SHA-256"),
    )
    .await;
    let Err(ClientError::Sasl(error)) = bad.closed().await else {
        panic!()
    };
    assert!(error.to_string().contains("not-authorized"), "{error}");
    let mut unknown = TestClient::connect(
        &server,
        Login::new("mallory", ListenerKind::DirectTls).mechanism("PLAIN"),
    )
    .await;
    let Err(ClientError::Sasl(error)) = unknown.closed().await else {
        panic!()
    };
    assert!(error.to_string().contains("not-authorized"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_account_cannot_log_in() {
    let server = TestServer::start().await;
    server
        .store()
        .set_disabled("bob@localhost", true)
        .await
        .unwrap();
    let mut bob = TestClient::connect(
        &server,
        Login::new("bob", ListenerKind::DirectTls).mechanism("SCRAM-SHA-256"),
    )
    .await;
    let Err(ClientError::Sasl(error)) = bob.closed().await else {
        panic!()
    };
    assert!(error.to_string().contains("account-disabled"), "{error}");
    // A wrong password does not learn that the account is disabled.
    let mut guess = TestClient::connect(
        &server,
        Login::new("bob", ListenerKind::DirectTls)
            .mechanism("PLAIN")
            .password("a guess"),
    )
    .await;
    let Err(ClientError::Sasl(error)) = guess.closed().await else {
        panic!()
    };
    assert!(error.to_string().contains("not-authorized"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_the_same_resource_replaces_the_older_session() {
    let server = TestServer::start().await;
    let mut first =
        TestClient::connect(&server, Login::new("alice", ListenerKind::DirectTls)).await;
    let second = TestClient::connect(&server, Login::new("alice", ListenerKind::Starttls)).await;
    assert_eq!(second.jid(), "alice@localhost/test");
    let Err(ClientError::Stream(error)) = first.closed().await else {
        panic!()
    };
    assert_eq!(error.condition, StreamCondition::Conflict);
    // Without a resource the server makes one up, different each time.
    let a = TestClient::connect(
        &server,
        Login::new("alice", ListenerKind::DirectTls).resource(None),
    )
    .await;
    let b = TestClient::connect(
        &server,
        Login::new("alice", ListenerKind::DirectTls).resource(None),
    )
    .await;
    assert!(a.jid().starts_with("alice@localhost/") && b.jid().starts_with("alice@localhost/"));
    assert_ne!(a.jid(), b.jid());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_streams_with_system_shutdown() {
    let mut server = TestServer::start().await;
    let mut alice =
        TestClient::connect(&server, Login::new("alice", ListenerKind::DirectTls)).await;
    server.stop().await;
    let Err(ClientError::Stream(error)) = alice.closed().await else {
        panic!()
    };
    assert_eq!(error.condition, StreamCondition::SystemShutdown);
}

/// Raw bytes over plain TCP to the STARTTLS listener; returns what the
/// server sent until it closed.
async fn raw_exchange(server: &TestServer, chunks: &[&str]) -> String {
    let mut tcp = tokio::net::TcpStream::connect(server.address(ListenerKind::Starttls))
        .await
        .unwrap();
    for chunk in chunks {
        if tcp.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(common::TIMEOUT, tcp.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_its_exact_stream_error() {
    let server = TestServer::start().await;
    let big = format!("<message><body>{}</body></message>", "x".repeat(300 * 1024));
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![HEADER.into(), "<message><body></iq>".into()], "not-well-formed"),
        (vec!["<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>".into()], "invalid-namespace"),
        (vec!["<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.net' version='1.0'>".into()], "host-unknown"),
        (vec![HEADER.into(), big], "policy-violation"),
        (vec![HEADER.into(), "<message to='bob@localhost'><body>hi</body></message>".into()], "not-authorized"),
        (vec![HEADER.into(), "<!DOCTYPE x [<!ENTITY a 'b'>]>".into()], "restricted-xml"),
        (vec![HEADER.into(), format!("{}{}", "<a>".repeat(1000), "</a>".repeat(1000))], "policy-violation"),
    ];
    for (chunks, condition) in cases {
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let sent = raw_exchange(&server, &refs).await;
        let expected =
            format!("<stream:error><{condition} xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\"/>");
        assert!(
            sent.contains(&expected),
            "expected {condition}, got: {}",
            &sent[..sent.len().min(600)]
        );
        assert!(sent.ends_with("</stream:stream>"), "{sent}");
    }
    // PLAIN before STARTTLS on a listener that requires TLS.
    let sent = raw_exchange(
        &server,
        &[HEADER, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAGFsaWNlLXNlY3JldA==</auth></stream:stream>"],
    )
    .await;
    assert!(
        sent.contains(
            "<failure xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\"><encryption-required/></failure>"
        ),
        "{sent}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_clients_bad_input_does_not_disturb_another() {
    let server = TestServer::start().await;
    let mut alice =
        TestClient::connect(&server, Login::new("alice", ListenerKind::DirectTls)).await;
    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::DirectTls)).await;
    bob.send(presence()).await;
    let _ = bob.recv_matching(|s| s.name() == "presence").await;
    alice.send_raw("<message><<<").await;
    let Err(ClientError::Stream(error)) = alice.closed().await else {
        panic!()
    };
    assert_eq!(error.condition, StreamCondition::NotWellFormed);
    let mut carol = TestClient::connect(&server, Login::new("carol", ListenerKind::Starttls)).await;
    carol.send(message("bob@localhost", "still here")).await;
    assert_eq!(
        body(&bob.recv_matching(|s| s.name() == "message").await).as_deref(),
        Some("still here")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_policies() {
    let issued = sigil_x509::generate::client_certificate(
        &[sigil_x509::Jid::new("alice@localhost").unwrap()],
        &sigil_x509::generate::Options::new(sigil_x509::OffsetDateTime::now_utc()),
        None,
    )
    .unwrap();
    let chain = vec![rustls::pki_types::CertificateDer::from(
        issued.certificate_der.clone(),
    )];
    let key = rustls::pki_types::PrivateKeyDer::try_from(issued.key_der()).unwrap();

    // needed: no certificate, no connection.
    let server = TestServer::start_with(common::config(ClientCertificatePolicy::Needed)).await;
    let mut refused =
        TestClient::connect(&server, Login::new("alice", ListenerKind::DirectTls)).await;
    assert!(refused.jid.is_none());
    assert!(refused.closed().await.is_err());
    // needed, with a self-signed certificate: TLS accepts it (trust is a
    // SASL-time decision); the password login goes on.
    let mut login = Login::new("alice", ListenerKind::Starttls).mechanism("SCRAM-SHA-256");
    login.client_identity = Some(common::Identity(chain.clone(), key.clone_key()));
    let client = TestClient::connect(&server, login).await;
    assert_eq!(client.jid(), "alice@localhost/test");

    // disabled: a client with a certificate still connects.
    let server = TestServer::start_with(common::config(ClientCertificatePolicy::Disabled)).await;
    let mut login = Login::new("alice", ListenerKind::DirectTls);
    login.client_identity = Some(common::Identity(chain, key));
    let client = TestClient::connect(&server, login).await;
    assert_eq!(client.jid(), "alice@localhost/test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_self_signed_client_certificates_pass_tls() {
    // Trust and validity are decided at SASL time, so an expired
    // certificate still completes the handshake (and a password login).
    let mut options = sigil_x509::generate::Options::new(
        sigil_x509::OffsetDateTime::now_utc() - time::Duration::days(30),
    );
    options.days = 1;
    let issued = sigil_x509::generate::client_certificate(
        &[sigil_x509::Jid::new("alice@localhost").unwrap()],
        &options,
        None,
    )
    .unwrap();
    let identity = common::Identity(
        vec![rustls::pki_types::CertificateDer::from(
            issued.certificate_der.clone(),
        )],
        rustls::pki_types::PrivateKeyDer::try_from(issued.key_der()).unwrap(),
    );
    let server = TestServer::start_with(common::config(ClientCertificatePolicy::Needed)).await;
    let mut login = Login::new("alice", ListenerKind::DirectTls).mechanism("SCRAM-SHA-256");
    login.client_identity = Some(identity);
    let client = TestClient::connect(&server, login).await;
    assert_eq!(client.jid(), "alice@localhost/test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tls_resumption_where_client_certificates_are_asked_for() {
    for (policy, resumes) in [
        (ClientCertificatePolicy::Wanted, false),
        (ClientCertificatePolicy::Disabled, true),
    ] {
        let server = TestServer::start_with(common::config(policy)).await;
        let config = common::tls_client_config(&server.certificate(), None);
        let connector = tokio_rustls::TlsConnector::from(config);
        let mut kinds = Vec::new();
        for _ in 0..2 {
            let tcp = tokio::net::TcpStream::connect(server.address(ListenerKind::DirectTls))
                .await
                .unwrap();
            let mut tls = connector
                .connect(
                    rustls::pki_types::ServerName::try_from(DOMAIN).unwrap(),
                    tcp,
                )
                .await
                .unwrap();
            // Read the server's first bytes so TLS 1.3 tickets arrive.
            tls.write_all(HEADER.as_bytes()).await.unwrap();
            let mut buffer = [0u8; 1024];
            let _ = tokio::time::timeout(common::TIMEOUT, tls.read(&mut buffer)).await;
            kinds.push(tls.get_ref().1.handshake_kind());
        }
        assert_eq!(kinds[0], Some(rustls::HandshakeKind::Full));
        let resumed = kinds[1] == Some(rustls::HandshakeKind::Resumed);
        assert_eq!(resumed, resumes, "{policy:?}: {kinds:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep_0191_blocking() {
    const BLOCKING: &str = "urn:xmpp:blocking";
    let server = TestServer::start().await;
    let mut alice =
        TestClient::connect(&server, Login::new("alice", ListenerKind::DirectTls)).await;
    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::DirectTls)).await;
    for client in [&mut alice, &mut bob] {
        client.send(presence()).await;
        let _ = client.recv_matching(|s| s.name() == "presence").await;
    }
    // The feature is announced; the list starts empty.
    alice
        .send(iq(
            "get",
            "d",
            Some(DOMAIN),
            Element::new("query", ns::DISCO_INFO),
        ))
        .await;
    let info = alice
        .recv_matching(|s| s.attribute("id") == Some("d"))
        .await;
    assert!(
        info.child("query", ns::DISCO_INFO)
            .unwrap()
            .children()
            .any(|f| f.attribute("var") == Some(BLOCKING))
    );
    alice
        .send(iq("get", "l1", None, Element::new("blocklist", BLOCKING)))
        .await;
    let list = alice
        .recv_matching(|s| s.attribute("id") == Some("l1"))
        .await;
    assert_eq!(
        list.child("blocklist", BLOCKING)
            .unwrap()
            .children()
            .count(),
        0
    );

    let block = Element::new("block", BLOCKING)
        .with_child(Element::new("item", BLOCKING).with_attribute("jid", "bob@localhost"));
    alice.send(iq("set", "b1", None, block)).await;
    let push = alice
        .recv_matching(|s| s.attribute("type") == Some("set") && s.has_child("block", BLOCKING))
        .await;
    assert_eq!(
        push.child("block", BLOCKING)
            .unwrap()
            .child("item", BLOCKING)
            .unwrap()
            .attribute("jid"),
        Some("bob@localhost")
    );
    let result = alice
        .recv_matching(|s| s.attribute("id") == Some("b1"))
        .await;
    assert_eq!(result.attribute("type"), Some("result"));

    // bob cannot reach alice; alice cannot write to bob.
    bob.send(message("alice@localhost", "let me in")).await;
    let error = bob
        .recv_matching(|s| s.attribute("type") == Some("error"))
        .await;
    assert_eq!(
        StanzaError::from_stanza(&error).unwrap().condition,
        StanzaCondition::ServiceUnavailable
    );
    alice.send(message("bob@localhost/test", "hello?")).await;
    let error = alice
        .recv_matching(|s| s.name() == "message" && s.attribute("type") == Some("error"))
        .await;
    assert_eq!(
        StanzaError::from_stanza(&error).unwrap().condition,
        StanzaCondition::NotAcceptable
    );
    assert!(
        error
            .child("error", ns::CLIENT)
            .unwrap()
            .has_child("blocked", "urn:xmpp:blocking:errors")
    );
    assert!(
        alice
            .try_recv(std::time::Duration::from_millis(200))
            .await
            .is_none()
    );

    // The list survives in the store; unblocking everything restores traffic.
    assert_eq!(
        server.store().blocklist("alice@localhost").await.unwrap(),
        ["bob@localhost"]
    );
    alice
        .send(iq("set", "u1", None, Element::new("unblock", BLOCKING)))
        .await;
    let _ = alice
        .recv_matching(|s| s.attribute("id") == Some("u1"))
        .await;
    bob.send(message("alice@localhost", "better now")).await;
    let got = alice
        .recv_matching(|s| s.name() == "message" && s.attribute("type") == Some("chat"))
        .await;
    assert_eq!(body(&got).as_deref(), Some("better now"));
    // An item without a valid JID is refused.
    let bad = Element::new("block", BLOCKING)
        .with_child(Element::new("item", BLOCKING).with_attribute("jid", "@@"));
    alice.send(iq("set", "b2", None, bad)).await;
    let error = alice
        .recv_matching(|s| s.attribute("id") == Some("b2"))
        .await;
    assert_eq!(
        StanzaError::from_stanza(&error).unwrap().condition,
        StanzaCondition::JidMalformed
    );
}

/// A connection that does not log in in time is closed with
/// `connection-timeout`; a bound session outlives that deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_deadline_closes_lingerers_and_spares_sessions() {
    let mut config = common::config(ClientCertificatePolicy::Wanted);
    config.limits.login_timeout_seconds = 1;
    let server = TestServer::start_with(config).await;
    let mut alice =
        TestClient::connect(&server, Login::new("alice", ListenerKind::DirectTls)).await;
    let started = std::time::Instant::now();
    let answer = raw_exchange(&server, &[HEADER]).await;
    assert!(
        answer.contains("<connection-timeout"),
        "no timeout error: {answer}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // Alice logged in before the deadline and is still served after it.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    alice.send(message(&alice.jid(), "still here")).await;
    let echo = alice.recv().await;
    assert_eq!(body(&echo).as_deref(), Some("still here"));
    alice.close().await;
}

/// What one account keeps is capped: roster items (a full roster takes no
/// new contact, not even by an inbound subscription request), blocked
/// JIDs, and the bytes of its offline messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rosters_blocklists_and_offline_bytes_are_capped() {
    let mut config = common::config(ClientCertificatePolicy::Wanted);
    config.limits.max_roster_items = 2;
    config.limits.max_blocked_jids = 2;
    config.limits.max_offline_bytes = 4096;
    let server = TestServer::start_with(config).await;
    let mut alice =
        TestClient::connect(&server, Login::new("alice", ListenerKind::DirectTls)).await;
    let set = |id: &str, jid: &str| {
        iq(
            "set",
            id,
            None,
            Element::new("query", ns::ROSTER)
                .with_child(Element::new("item", ns::ROSTER).with_attribute("jid", jid)),
        )
    };
    for (id, jid) in [("r1", "one@example.org"), ("r2", "two@example.org")] {
        alice.send(set(id, jid)).await;
        assert_eq!(
            answer(&mut alice, id).await.attribute("type"),
            Some("result")
        );
    }
    alice.send(set("r3", "three@example.org")).await;
    let refused = answer(&mut alice, "r3").await;
    assert_eq!(
        StanzaError::from_stanza(&refused).unwrap().condition,
        StanzaCondition::NotAllowed
    );
    // Changing an item already there still works.
    alice.send(set("r4", "one@example.org")).await;
    assert_eq!(
        answer(&mut alice, "r4").await.attribute("type"),
        Some("result")
    );
    // A subscription request from a stranger is not kept in a full roster.
    let mut carol =
        TestClient::connect(&server, Login::new("carol", ListenerKind::DirectTls)).await;
    carol
        .send(subscription("subscribe", "alice@localhost"))
        .await;
    carol
        .send(iq(
            "get",
            "sync",
            Some("localhost"),
            Element::new("ping", ns::PING),
        ))
        .await;
    answer(&mut carol, "sync").await;
    let roster = server.store().roster("alice@localhost").await.unwrap();
    assert_eq!(roster.items.len(), 2, "{roster:?}");

    let block = |id: &str, jids: &[&str]| {
        let mut block = Element::new("block", "urn:xmpp:blocking");
        for jid in jids {
            block.push_child(Element::new("item", "urn:xmpp:blocking").with_attribute("jid", *jid));
        }
        iq("set", id, None, block)
    };
    alice
        .send(block("b1", &["x@example.org", "y@example.org"]))
        .await;
    assert_eq!(
        answer(&mut alice, "b1").await.attribute("type"),
        Some("result")
    );
    alice.send(block("b2", &["z@example.org"])).await;
    let refused = answer(&mut alice, "b2").await;
    assert_eq!(
        StanzaError::from_stanza(&refused).unwrap().condition,
        StanzaCondition::NotAllowed
    );
    // Blocking one already blocked adds nothing: allowed.
    alice.send(block("b3", &["x@example.org"])).await;
    assert_eq!(
        answer(&mut alice, "b3").await.attribute("type"),
        Some("result")
    );

    // Bob is offline: a message of about 3,000 bytes (its body is in its
    // id too) fits under 4 KiB, two do not.
    let big = "x".repeat(1500);
    alice.send(message("bob@localhost", &big)).await;
    alice
        .send(message("bob@localhost", &format!("{big}y")))
        .await;
    let bounced = alice
        .recv_matching(|s| s.name() == "message" && s.attribute("type") == Some("error"))
        .await;
    assert_eq!(
        StanzaError::from_stanza(&bounced).unwrap().condition,
        StanzaCondition::ServiceUnavailable
    );
    assert_eq!(
        server.store().offline_count("bob@localhost").await.unwrap(),
        1
    );
}

/// The answer to the IQ `id`.
async fn answer(client: &mut TestClient, id: &str) -> Element {
    client
        .recv_matching(|s| s.name() == "iq" && s.attribute("id") == Some(id))
        .await
}

/// A feature's hook on a session's end runs: the blocklist read for a
/// session leaves the memory with the account's last session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocklist_leaves_the_memory_with_the_last_session() {
    let server = TestServer::start().await;
    let mut alice =
        TestClient::connect(&server, Login::new("alice", ListenerKind::DirectTls)).await;
    let phone_login = Login::new("alice", ListenerKind::DirectTls).resource(Some("phone"));
    let mut phone = TestClient::connect(&server, phone_login).await;
    alice
        .send(iq(
            "get",
            "l1",
            None,
            Element::new("blocklist", "urn:xmpp:blocking"),
        ))
        .await;
    alice
        .recv_matching(|s| s.attribute("id") == Some("l1"))
        .await;
    let blocklists = &server.context().blocklists;
    assert_eq!(blocklists.len(), 1);
    alice.close().await;
    // Another session of the account is still there: the list stays.
    assert!(answers_a_ping(&mut phone, "p1").await);
    assert_eq!(blocklists.len(), 1);
    phone.close().await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !blocklists.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        blocklists.is_empty(),
        "the list stayed after the last session"
    );
}
