//! XEP-0198 acknowledgements over real TLS: what a client did not
//! acknowledge when its connection died is not lost but stored offline.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::raw::{HEADER, raw_login, raw_login_with, resume_failure, until};
use common::{Identity, Login, TestClient, TestServer, answers_a_ping};
use sigil_proto::client::ClientError;
use sigil_proto::error::StreamCondition;
use sigil_server::config::ListenerKind;
use sigil_xml::{Element, ns};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const ALICE: &str = "AGFsaWNlAGFsaWNlLXNlY3JldA==";
const BOB: &str = "AGJvYgBib2Itc2VjcmV0";

/// Alice logged in as alice@localhost/sm on raw TLS, with stream
/// management enabled if asked.
async fn raw_alice(server: &TestServer, enable: bool) -> TlsStream<TcpStream> {
    let config = common::tls_client_config(&server.certificate(), None);
    let mut tls = common::tls_connect(server.address(ListenerKind::DirectTls), config)
        .await
        .unwrap();
    let mut seen = String::new();
    tls.write_all(format!("{HEADER}<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAGFsaWNlLXNlY3JldA==</auth>").as_bytes()).await.unwrap();
    until(&mut tls, "<success", &mut seen).await;
    tls.write_all(format!("{HEADER}<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>sm</resource></bind></iq>").as_bytes()).await.unwrap();
    until(&mut tls, "</iq>", &mut seen).await;
    assert!(seen.contains("<sm xmlns=\"urn:xmpp:sm:3\"/>"), "{seen}");
    // XEP-0352 is offered beside it.
    assert!(seen.contains("<csi xmlns=\"urn:xmpp:csi:0\"/>"), "{seen}");
    // And roster versioning (XEP-0237).
    assert!(
        seen.contains("<ver xmlns=\"urn:xmpp:features:rosterver\"/>"),
        "{seen}"
    );
    if enable {
        tls.write_all(b"<enable xmlns='urn:xmpp:sm:3'/>")
            .await
            .unwrap();
        until(&mut tls, "<enabled", &mut seen).await;
    }
    tls
}

fn message(body: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attribute("to", "alice@localhost/sm")
        .with_attribute("type", "chat")
        .with_child(Element::new("body", ns::CLIENT).with_text(body))
}

/// Bob sends Alice two messages; her raw connection reads them and dies
/// without acknowledging; then she logs in again. What does she get?
async fn after_a_dead_connection(server: &TestServer, enable: bool) -> Vec<String> {
    let mut alice = raw_alice(server, enable).await;
    let mut bob = TestClient::connect(server, Login::new("bob", ListenerKind::DirectTls)).await;
    bob.send(message("one")).await;
    bob.send(message("two")).await;
    let mut seen = String::new();
    until(&mut alice, "two</body>", &mut seen).await;
    // The connection dies: no acknowledgement, no closing of the stream.
    drop(alice);
    let router = &server.server.as_ref().unwrap().context().router;
    let jid: jid::FullJid = "alice@localhost/sm".parse().unwrap();
    let deadline = Instant::now() + common::TIMEOUT;
    while router.session(&jid).is_some() {
        assert!(Instant::now() < deadline, "the dead session stayed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bodies = alice_offline_bodies(server).await;
    bob.close().await;
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_messages_of_a_dead_connection_are_stored_offline() {
    let server = TestServer::start().await;
    assert_eq!(after_a_dead_connection(&server, true).await, ["one", "two"]);
    // Without stream management, written counts as delivered: nothing
    // comes back (which is why clients enable it).
    assert!(after_a_dead_connection(&server, false).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_are_not_stored_again() {
    let server = TestServer::start().await;
    let mut alice = raw_alice(&server, true).await;
    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::DirectTls)).await;
    bob.send(message("one")).await;
    bob.send(message("two")).await;
    let mut seen = String::new();
    until(&mut alice, "two</body>", &mut seen).await;
    // The ack, then a request whose answer shows the ack was read.
    alice
        .write_all(b"<a xmlns='urn:xmpp:sm:3' h='2'/><r xmlns='urn:xmpp:sm:3'/>")
        .await
        .unwrap();
    until(&mut alice, "<a xmlns=\"urn:xmpp:sm:3\"", &mut seen).await;
    drop(alice);
    let router = &server.server.as_ref().unwrap().context().router;
    let jid: jid::FullJid = "alice@localhost/sm".parse().unwrap();
    let deadline = Instant::now() + common::TIMEOUT;
    while router.session(&jid).is_some() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut again =
        TestClient::connect(&server, Login::new("alice", ListenerKind::DirectTls)).await;
    again.send(Element::new("presence", ns::CLIENT)).await;
    while let Some(stanza) = again.try_recv(Duration::from_millis(500)).await {
        assert!(stanza.child("body", ns::CLIENT).is_none(), "{stanza:?}");
    }
    again.close().await;
    bob.close().await;
}

/// Alice's session with resumption: its id, once two messages from Bob
/// arrived and the first was acknowledged, and the connection died.
async fn resumable_alice(server: &TestServer, bob: &mut TestClient) -> String {
    let (mut alice, mut seen) = raw_login(server, ALICE).await;
    alice.write_all(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>sm</resource></bind></iq><enable xmlns='urn:xmpp:sm:3' resume='true'/>").await.unwrap();
    until(&mut alice, "<enabled", &mut seen).await;
    let enabled = &seen[seen.find("<enabled").unwrap()..];
    let enabled = Element::parse(&enabled[..enabled.find("/>").unwrap() + 2]).unwrap();
    assert_eq!(enabled.attribute("resume"), Some("true"));
    let id = enabled.attribute("id").unwrap().to_owned();
    bob.send(message("one")).await;
    bob.send(message("two")).await;
    until(&mut alice, "two</body>", &mut seen).await;
    alice
        .write_all(b"<a xmlns='urn:xmpp:sm:3' h='1'/><r xmlns='urn:xmpp:sm:3'/>")
        .await
        .unwrap();
    until(&mut alice, "<a xmlns=\"urn:xmpp:sm:3\"", &mut seen).await;
    drop(alice);
    let resumable = &server.server.as_ref().unwrap().context().resumable;
    let deadline = Instant::now() + common::TIMEOUT;
    while resumable.is_empty() {
        assert!(Instant::now() < deadline, "the session was not kept");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_resumes_with_what_was_unacknowledged_and_what_came_meanwhile() {
    let server = TestServer::start().await;
    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::DirectTls)).await;
    let id = resumable_alice(&server, &mut bob).await;
    // While the session waits, messages to it queue.
    bob.send(message("three")).await;

    // Another account cannot take it.
    let failed = resume_failure(&server, BOB, &id, 0).await;
    assert!(failed.contains("<item-not-found"), "{failed}");

    let (mut alice, mut seen) = raw_login(&server, ALICE).await;
    alice
        .write_all(format!("<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='1'/>").as_bytes())
        .await
        .unwrap();
    until(&mut alice, "three</body>", &mut seen).await;
    let resumed = seen.find("<resumed").expect("resumed");
    let tail = &seen[resumed..];
    assert!(
        tail.starts_with(&format!(
            "<resumed xmlns=\"urn:xmpp:sm:3\" previd=\"{id}\" h=\"0\"/>"
        )),
        "{tail}"
    );
    // The unacknowledged one again, then the one that waited; not the one
    // acknowledged.
    let two = tail.find(">two</body>").unwrap();
    let three = tail.find(">three</body>").unwrap();
    assert!(two < three, "{tail}");
    assert!(!seen.contains(">one</body>"), "{seen}");
    // The session goes on on the new connection.
    bob.send(message("four")).await;
    until(&mut alice, "four</body>", &mut seen).await;
    assert!(
        server
            .server
            .as_ref()
            .unwrap()
            .context()
            .resumable
            .is_empty()
    );
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_not_resumed_in_time_ends_and_its_messages_go_offline() {
    let mut config = common::config(sigil_server::config::ClientCertificatePolicy::Wanted);
    config.limits.resume_timeout_seconds = 1;
    let server = TestServer::start_with(config).await;
    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::DirectTls)).await;
    let id = resumable_alice(&server, &mut bob).await;
    bob.send(message("three")).await;
    let router = &server.server.as_ref().unwrap().context().router;
    let jid: jid::FullJid = "alice@localhost/sm".parse().unwrap();
    let deadline = Instant::now() + common::TIMEOUT;
    while router.session(&jid).is_some() {
        assert!(
            Instant::now() < deadline,
            "the session outlived its resumption time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Too late to resume.
    resume_failure(&server, ALICE, &id, 1).await;
    // What it had not delivered is offline: the unacknowledged message,
    // then the one that waited.
    assert_eq!(alice_offline_bodies(&server).await, ["two", "three"]);
    bob.close().await;
}

/// A raw session of `plain`'s account bound to `resource`, with stream
/// management enabled; what it saw so far.
async fn raw_enabled(
    server: &TestServer,
    plain: &str,
    resource: &str,
) -> (TlsStream<TcpStream>, String) {
    let (mut tls, mut seen) = raw_login(server, plain).await;
    tls.write_all(format!("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq><enable xmlns='urn:xmpp:sm:3'/>").as_bytes()).await.unwrap();
    until(&mut tls, "<enabled", &mut seen).await;
    (tls, seen)
}

/// Stanzas the server sent after `<enabled/>` (the XEP-0198 count).
fn stanzas_after_enabled(seen: &str) -> usize {
    let after = &seen[seen.find("<enabled").unwrap()..];
    ["<message", "<presence", "<iq"]
        .iter()
        .map(|start| after.matches(start).count())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_acknowledges_a_message_once_its_recipient_did() {
    let server = TestServer::start().await;
    let mut alice = raw_alice(&server, true).await;
    let (mut bob, mut bob_seen) = raw_enabled(&server, BOB, "phone").await;
    bob.write_all(b"<message to='alice@localhost/sm' type='chat'><body>safe?</body></message><r xmlns='urn:xmpp:sm:3'/>").await.unwrap();
    let mut seen = String::new();
    until(&mut alice, "safe?</body>", &mut seen).await;
    // Alice has it but has not acknowledged it: Bob hears nothing yet.
    let mut buf = [0u8; 4096];
    if let Ok(read) = tokio::time::timeout(Duration::from_millis(300), bob.read(&mut buf)).await {
        bob_seen.push_str(&String::from_utf8_lossy(&buf[..read.unwrap()]));
    }
    assert!(!bob_seen.contains("<a "), "{bob_seen}");
    alice
        .write_all(b"<a xmlns='urn:xmpp:sm:3' h='1'/>")
        .await
        .unwrap();
    until(
        &mut bob,
        "<a xmlns=\"urn:xmpp:sm:3\" h=\"1\"/>",
        &mut bob_seen,
    )
    .await;
    // Presence and requests are safe at once.
    bob.write_all(b"<presence/><iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq><r xmlns='urn:xmpp:sm:3'/>").await.unwrap();
    until(
        &mut bob,
        "<a xmlns=\"urn:xmpp:sm:3\" h=\"3\"/>",
        &mut bob_seen,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_message_stays_stored_until_acknowledged() {
    let server = TestServer::start().await;
    let store = server.server.as_ref().unwrap().context().store.clone();
    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::DirectTls)).await;
    bob.send(message("kept")).await;
    let deadline = Instant::now() + common::TIMEOUT;
    while store.offline_count("alice@localhost").await.unwrap() == 0 {
        assert!(Instant::now() < deadline, "not stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let router = &server.server.as_ref().unwrap().context().router;
    let jid: jid::FullJid = "alice@localhost/sm".parse().unwrap();
    let mut ids = Vec::new();
    for acknowledge in [false, true] {
        let (mut alice, mut seen) = raw_enabled(&server, ALICE, "sm").await;
        alice.write_all(b"<presence/>").await.unwrap();
        until(&mut alice, "kept</body>", &mut seen).await;
        // Alice's stanza id (bob's archive gave the message one too).
        let id = seen
            .match_indices("<stanza-id")
            .map(|(at, _)| {
                Element::parse(&seen[at..at + seen[at..].find("/>").unwrap() + 2]).unwrap()
            })
            .find(|id| id.attribute("by") == Some("alice@localhost"))
            .expect("a stanza id by alice");
        ids.push(id.attribute("id").unwrap().to_owned());
        if acknowledge {
            let h = stanzas_after_enabled(&seen);
            alice
                .write_all(format!("<a xmlns='urn:xmpp:sm:3' h='{h}'/>").as_bytes())
                .await
                .unwrap();
            let deadline = Instant::now() + common::TIMEOUT;
            while store.offline_count("alice@localhost").await.unwrap() > 0 {
                assert!(Instant::now() < deadline, "still stored once acknowledged");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // The connection dies.
        drop(alice);
        let deadline = Instant::now() + common::TIMEOUT;
        while router.session(&jid).is_some() {
            assert!(Instant::now() < deadline, "the dead session stayed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !acknowledge {
            // Delivered, not acknowledged: still on disk, once.
            assert_eq!(store.offline_count("alice@localhost").await.unwrap(), 1);
        }
    }
    // The same message both times, by its stanza id.
    assert_eq!(ids[0], ids[1]);
    assert_eq!(store.offline_count("alice@localhost").await.unwrap(), 0);
    bob.close().await;
}

/// Alice's resumable session at a shutdown: she sent Bob two messages
/// (handled), got three from him and acknowledged the first. Her
/// resumption id.
async fn alice_at_a_shutdown(server: &mut TestServer) -> String {
    let mut bob = TestClient::connect(server, Login::new("bob", ListenerKind::DirectTls)).await;
    let (mut alice, mut seen) = raw_login(server, ALICE).await;
    alice.write_all(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>sm</resource></bind></iq><enable xmlns='urn:xmpp:sm:3' resume='true'/>").await.unwrap();
    until(&mut alice, "<enabled", &mut seen).await;
    let enabled = &seen[seen.find("<enabled").unwrap()..];
    let enabled = Element::parse(&enabled[..enabled.find("/>").unwrap() + 2]).unwrap();
    let id = enabled.attribute("id").unwrap().to_owned();
    alice.write_all(b"<message to='bob@localhost' type='chat'><body>a</body></message><message to='bob@localhost' type='chat'><body>b</body></message>").await.unwrap();
    for body in ["one", "two", "three"] {
        bob.send(message(body)).await;
    }
    until(&mut alice, "three</body>", &mut seen).await;
    alice
        .write_all(b"<a xmlns='urn:xmpp:sm:3' h='1'/><r xmlns='urn:xmpp:sm:3'/>")
        .await
        .unwrap();
    until(
        &mut alice,
        "<a xmlns=\"urn:xmpp:sm:3\" h=\"2\"/>",
        &mut seen,
    )
    .await;
    server.restart().await;
    id
}

/// The bodies of the messages a fresh login of Alice gets (her offline
/// messages), once she is available.
async fn alice_offline_bodies(server: &TestServer) -> Vec<String> {
    let mut again = TestClient::connect(server, Login::new("alice", ListenerKind::DirectTls)).await;
    again.send(Element::new("presence", ns::CLIENT)).await;
    let mut bodies = Vec::new();
    while let Some(stanza) = again.try_recv(Duration::from_millis(500)).await {
        if let Some(body) = stanza.child("body", ns::CLIENT) {
            bodies.push(body.text());
        }
    }
    again.close().await;
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_saved_at_shutdown_tell_a_client_what_was_handled_after_the_restart() {
    let mut server = TestServer::start().await;
    let id = alice_at_a_shutdown(&mut server).await;

    // The store keeps no resumption id, only a hash of it: a copy of the
    // store takes no session over.
    let by_id = server
        .store()
        .take_saved_session("alice@localhost", &id)
        .await
        .unwrap();
    assert_eq!(by_id, None);

    // After the restart, another account's resumption learns nothing.
    let failed = resume_failure(&server, BOB, &id, 0).await;
    assert!(
        failed.starts_with("<failed xmlns=\"urn:xmpp:sm:3\"><item-not-found"),
        "{failed}"
    );

    // Alice says she got two of the three: she hears that both her
    // messages were handled, and only the third waits for her.
    let failed = resume_failure(&server, ALICE, &id, 2).await;
    assert!(
        failed.starts_with("<failed xmlns=\"urn:xmpp:sm:3\" h=\"2\"><item-not-found"),
        "{failed}"
    );
    // Told once: the state is gone.
    let failed = resume_failure(&server, ALICE, &id, 2).await;
    assert!(
        failed.starts_with("<failed xmlns=\"urn:xmpp:sm:3\"><item-not-found"),
        "{failed}"
    );
    assert_eq!(alice_offline_bodies(&server).await, ["three"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_saved_at_shutdown_expire_with_the_resumption_timeout() {
    let mut config = common::config(sigil_server::config::ClientCertificatePolicy::Wanted);
    config.limits.resume_timeout_seconds = 1;
    let mut server = TestServer::start_with(config).await;
    let id = alice_at_a_shutdown(&mut server).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let failed = resume_failure(&server, ALICE, &id, 2).await;
    assert!(
        failed.starts_with("<failed xmlns=\"urn:xmpp:sm:3\"><item-not-found"),
        "{failed}"
    );
    // Too late to tell: everything unacknowledged is delivered.
    assert_eq!(alice_offline_bodies(&server).await, ["two", "three"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_waiting_for_resumption_at_shutdown_is_saved_too() {
    let mut server = TestServer::start().await;
    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::DirectTls)).await;
    // Parked with "two" unacknowledged; "three" queues while it waits.
    let id = resumable_alice(&server, &mut bob).await;
    bob.send(message("three")).await;
    // Handled in order: once the ping is answered, "three" was routed.
    bob.send_raw("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    bob.recv_matching(|e| e.attribute("id") == Some("sync"))
        .await;
    bob.close().await;
    server.restart().await;
    let failed = resume_failure(&server, ALICE, &id, 2).await;
    assert!(
        failed.starts_with("<failed xmlns=\"urn:xmpp:sm:3\" h=\"0\"><item-not-found"),
        "{failed}"
    );
    // "two" reached her before (her h says so); "three" never did.
    assert_eq!(alice_offline_bodies(&server).await, ["three"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handled_count_below_the_saved_one_deletes_nothing() {
    let mut server = TestServer::start().await;
    let id = alice_at_a_shutdown(&mut server).await;
    // She had acknowledged one: an h of 0 is her mistake.
    let failed = resume_failure(&server, ALICE, &id, 0).await;
    assert!(
        failed.starts_with("<failed xmlns=\"urn:xmpp:sm:3\" h=\"2\">"),
        "{failed}"
    );
    assert_eq!(alice_offline_bodies(&server).await, ["two", "three"]);
}

/// A session of `plain`'s account (or of `identity`'s, with EXTERNAL)
/// bound to `resource` with resumption, whose connection then died: its
/// resumption id, once the server keeps it waiting.
async fn parked(
    server: &TestServer,
    identity: Option<Identity>,
    plain: &str,
    resource: &str,
) -> String {
    let resumable = &server.server.as_ref().unwrap().context().resumable;
    let before = resumable.len();
    let (mut tls, mut seen) = raw_login_with(server, identity, plain).await;
    tls.write_all(format!("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq><enable xmlns='urn:xmpp:sm:3' resume='true'/>").as_bytes()).await.unwrap();
    until(&mut tls, "<enabled", &mut seen).await;
    let enabled = &seen[seen.find("<enabled").unwrap()..];
    let enabled = Element::parse(&enabled[..enabled.find("/>").unwrap() + 2]).unwrap();
    let id = enabled.attribute("id").unwrap().to_owned();
    drop(tls);
    let deadline = Instant::now() + common::TIMEOUT;
    while resumable.len() == before {
        assert!(Instant::now() < deadline, "the session was not kept");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    id
}

/// Waits until no session is bound to `jid`; panics after a second.
async fn gone_within_a_second(server: &TestServer, jid: &str) {
    let router = &server.server.as_ref().unwrap().context().router;
    let jid: jid::FullJid = jid.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    while router.session(&jid).is_some() {
        assert!(
            Instant::now() < deadline,
            "{jid} outlived its right to exist"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn certificate(jid: &str) -> sigil_x509::generate::Issued {
    sigil_x509::generate::client_certificate(
        &[sigil_x509::Jid::new(jid).unwrap()],
        &sigil_x509::generate::Options::new(sigil_x509::OffsetDateTime::now_utc()),
        None,
    )
    .unwrap()
}

async fn register(
    server: &TestServer,
    name: &str,
    issued: &sigil_x509::generate::Issued,
    no_cert_management: bool,
) {
    let info = sigil_x509::CertificateInfo::from_der(&issued.certificate_der).unwrap();
    server
        .store()
        .add_certificate(&sigil_store::CertificateEntry {
            owner: "alice@localhost".into(),
            name: name.into(),
            fingerprint: info.sha256,
            der: issued.certificate_der.clone(),
            no_cert_management,
            disabled: false,
            added_at: 0,
        })
        .await
        .unwrap();
}

fn control_socket(server: &TestServer) -> std::path::PathBuf {
    server.dir.path().join("sigil.sock")
}

/// Disabling an account ends every session of it within a second, the
/// ones waiting to be resumed included; deleting it does too, and a new
/// account of the same name shares nothing with the old sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_or_deleting_an_account_ends_its_sessions_parked_ones_too() {
    use sigil_server::control::{End, request_end};
    let server = TestServer::start().await;
    let mut live = TestClient::connect(&server, Login::new("alice", ListenerKind::DirectTls)).await;
    let id = parked(&server, None, ALICE, "parked").await;
    let store = server.store();
    store.set_disabled("alice@localhost", true).await.unwrap();
    let ended = request_end(&control_socket(&server), "alice@localhost", End::Disabled).await;
    assert_eq!(ended, Some(2));
    let Err(ClientError::Stream(error)) = live.closed().await else {
        panic!("the live session went on")
    };
    assert_eq!(error.condition, StreamCondition::NotAuthorized);
    gone_within_a_second(&server, "alice@localhost/parked").await;
    gone_within_a_second(&server, "alice@localhost/test").await;
    assert!(
        server
            .server
            .as_ref()
            .unwrap()
            .context()
            .resumable
            .is_empty()
    );
    // Nothing to resume, even once the account is enabled again.
    store.set_disabled("alice@localhost", false).await.unwrap();
    let failed = resume_failure(&server, ALICE, &id, 0).await;
    assert!(failed.contains("<item-not-found"), "{failed}");

    let mut live = TestClient::connect(&server, Login::new("alice", ListenerKind::DirectTls)).await;
    parked(&server, None, ALICE, "parked").await;
    assert!(store.delete_account("alice@localhost").await.unwrap());
    let ended = request_end(&control_socket(&server), "alice@localhost", End::Deleted).await;
    assert_eq!(ended, Some(2));
    assert!(live.closed().await.is_err());
    gone_within_a_second(&server, "alice@localhost/parked").await;
    // A new Alice gets none of the old one's messages.
    server.add_user("alice", "new-secret").await;
    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::DirectTls)).await;
    bob.send(message("for the new alice")).await;
    let mut new = TestClient::connect(
        &server,
        Login::new("alice", ListenerKind::DirectTls).password("new-secret"),
    )
    .await;
    new.send(Element::new("presence", ns::CLIENT)).await;
    let got = new.recv_matching(|s| s.name() == "message").await;
    assert_eq!(
        got.child("body", ns::CLIENT).unwrap().text(),
        "for the new alice"
    );
    new.close().await;
    bob.close().await;
}

/// A password change ends the sessions that logged in with a password,
/// parked ones included; certificate sessions stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_ends_the_password_sessions() {
    use sigil_server::control::{End, request_end};
    let server = TestServer::start().await;
    let laptop = certificate("alice@localhost");
    register(&server, "laptop", &laptop, false).await;
    let mut with_password =
        TestClient::connect(&server, Login::new("alice", ListenerKind::DirectTls)).await;
    let mut with_certificate = TestClient::connect(
        &server,
        Login::certificate(
            "alice",
            ListenerKind::DirectTls,
            Identity::from_issued(&laptop),
        )
        .resource(Some("laptop")),
    )
    .await;
    assert_eq!(with_certificate.jid(), "alice@localhost/laptop");
    parked(&server, None, ALICE, "parked").await;
    let ended = request_end(&control_socket(&server), "alice@localhost", End::Password).await;
    assert_eq!(ended, Some(2));
    assert!(with_password.closed().await.is_err());
    gone_within_a_second(&server, "alice@localhost/parked").await;
    // The certificate session still answers.
    assert!(answers_a_ping(&mut with_certificate, "p").await);

    // In band (XEP-0077): the session that changed it stays, the other
    // password session ends, the certificate session stays.
    let mut changer = TestClient::connect(
        &server,
        Login::new("alice", ListenerKind::DirectTls).resource(Some("changer")),
    )
    .await;
    let mut other = TestClient::connect(
        &server,
        Login::new("alice", ListenerKind::DirectTls).resource(Some("other")),
    )
    .await;
    let change = Element::new("iq", ns::CLIENT)
        .with_attribute("type", "set")
        .with_attribute("id", "pw")
        .with_child(
            Element::new("query", "jabber:iq:register")
                .with_child(Element::new("username", "jabber:iq:register").with_text("alice"))
                .with_child(Element::new("password", "jabber:iq:register").with_text("new")),
        );
    changer.send(change).await;
    let answer = changer
        .recv_matching(|s| s.name() == "iq" && s.attribute("id") == Some("pw"))
        .await;
    assert_eq!(answer.attribute("type"), Some("result"));
    let Err(ClientError::Stream(error)) = other.closed().await else {
        panic!("the other password session went on")
    };
    assert_eq!(error.condition, StreamCondition::NotAuthorized);
    assert!(answers_a_ping(&mut changer, "c").await);
    assert!(answers_a_ping(&mut with_certificate, "d").await);
    changer.close().await;
    with_certificate.close().await;
}

/// Only the certificate a session logged in with may resume it (not
/// another of the account's, which may have fewer rights or pin another
/// resource, nor a password); revoking that certificate ends the session
/// while it waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_same_certificate_resumes_a_session_and_revocation_ends_it_parked() {
    let server = TestServer::start().await;
    let laptop = certificate("alice@localhost");
    let limited = certificate("alice@localhost");
    register(&server, "laptop", &laptop, false).await;
    register(&server, "limited", &limited, true).await;
    let id = parked(&server, Some(Identity::from_issued(&laptop)), "", "laptop").await;

    for identity in [Some(Identity::from_issued(&limited)), None] {
        let (mut tls, mut seen) = raw_login_with(&server, identity, ALICE).await;
        tls.write_all(format!("<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='0'/>").as_bytes())
            .await
            .unwrap();
        until(&mut tls, "</failed>", &mut seen).await;
        assert!(seen.contains("<item-not-found"), "{seen}");
    }
    // The same certificate takes it over.
    let (mut tls, mut seen) =
        raw_login_with(&server, Some(Identity::from_issued(&laptop)), "").await;
    tls.write_all(format!("<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='0'/>").as_bytes())
        .await
        .unwrap();
    until(&mut tls, "<resumed", &mut seen).await;
    drop(tls);

    // Parked again, then revoked: it ends at once.
    let resumable = &server.server.as_ref().unwrap().context().resumable;
    let deadline = Instant::now() + common::TIMEOUT;
    while resumable.is_empty() {
        assert!(Instant::now() < deadline, "the session was not kept");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let entry = server
        .store()
        .revoke_certificate("alice@localhost", "laptop", 0)
        .await
        .unwrap()
        .unwrap();
    let ended = sigil_server::control::request_revoke(
        &control_socket(&server),
        "alice@localhost",
        &entry.fingerprint,
    )
    .await;
    assert_eq!(ended, Some(1));
    gone_within_a_second(&server, "alice@localhost/laptop").await;
    assert!(resumable.is_empty());
}

/// Binds a raw login to `resource`: what the server answered, up to the
/// bind result or the end of the stream.
async fn bind_raw(tls: &mut TlsStream<TcpStream>, seen: &mut String, resource: &str) -> String {
    let from = seen.len();
    tls.write_all(format!("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>").as_bytes()).await.unwrap();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + common::TIMEOUT;
    while !seen[from..].contains("</iq>") && !seen[from..].contains("</stream:stream>") {
        let read = tokio::time::timeout_at(deadline.into(), tls.read(&mut buf))
            .await
            .expect("no answer to the bind");
        match read {
            Ok(n) if n > 0 => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => break,
        }
    }
    seen[from..].to_owned()
}

fn refused_as_overtaken(answer: &str) -> bool {
    answer.contains("<not-authorized") && answer.contains("the account changed while logging in")
}

/// A login the account changes under (authenticated, not yet bound, when
/// the account is disabled, its password changed or a certificate
/// revoked) neither binds nor resumes afterwards: it read the account
/// before the change, and the router did not have it to end. The fence
/// is per kind of login: a password change does not refuse a
/// certificate login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_overtaken_by_a_change_to_its_account_neither_binds_nor_resumes() {
    use sigil_server::control::{End, request_end, request_revoke};
    let server = TestServer::start().await;
    let socket = control_socket(&server);
    let laptop = certificate("alice@localhost");
    let phone = certificate("alice@localhost");
    register(&server, "laptop", &laptop, false).await;
    register(&server, "phone", &phone, false).await;
    let router = &server.server.as_ref().unwrap().context().router;

    for end in [End::Disabled, End::Deleted, End::Password] {
        let (mut tls, mut seen) = raw_login(&server, ALICE).await;
        assert_eq!(request_end(&socket, "alice@localhost", end).await, Some(0));
        let answer = bind_raw(&mut tls, &mut seen, "late").await;
        assert!(refused_as_overtaken(&answer), "{end:?}: {answer}");
        assert!(
            router
                .session(&"alice@localhost/late".parse().unwrap())
                .is_none()
        );
    }

    // A certificate login under way outlives a password change, and not
    // a revocation.
    let (mut tls, mut seen) =
        raw_login_with(&server, Some(Identity::from_issued(&laptop)), "").await;
    assert_eq!(
        request_end(&socket, "alice@localhost", End::Password).await,
        Some(0)
    );
    let answer = bind_raw(&mut tls, &mut seen, "laptop").await;
    assert!(
        answer.contains("<jid>alice@localhost/laptop</jid>"),
        "{answer}"
    );
    drop(tls);
    let phone_fingerprint = sigil_x509::CertificateInfo::from_der(&phone.certificate_der)
        .unwrap()
        .sha256;
    let (mut tls, mut seen) =
        raw_login_with(&server, Some(Identity::from_issued(&laptop)), "").await;
    assert_eq!(
        request_revoke(&socket, "alice@localhost", &phone_fingerprint).await,
        Some(0)
    );
    let answer = bind_raw(&mut tls, &mut seen, "laptop2").await;
    assert!(refused_as_overtaken(&answer), "{answer}");

    // Nor does it resume a session waiting for it.
    let id = parked(&server, Some(Identity::from_issued(&laptop)), "", "parked").await;
    let (mut tls, mut seen) =
        raw_login_with(&server, Some(Identity::from_issued(&laptop)), "").await;
    assert_eq!(
        request_revoke(&socket, "alice@localhost", &phone_fingerprint).await,
        Some(0)
    );
    tls.write_all(format!("<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='0'/>").as_bytes())
        .await
        .unwrap();
    until(&mut tls, "</stream:stream>", &mut seen).await;
    assert!(refused_as_overtaken(&seen), "{seen}");
    assert!(!seen.contains("<resumed"), "{seen}");
}

/// A session told to end does not wait behind what is queued for it: a
/// client that stopped reading, with a backlog the server cannot write,
/// is gone within seconds of its account being disabled, not after the
/// write timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_session_does_not_wait_behind_its_backlog() {
    use sigil_server::control::{End, request_end};
    let mut config = common::config(sigil_server::config::ClientCertificatePolicy::Wanted);
    config.limits.session_queue = 100_000;
    config.limits.write_timeout_seconds = 600;
    config.limits.read_bytes_per_second = 1 << 30;
    let server = TestServer::start_with(config).await;
    // Alice binds, then reads nothing more.
    let alice = raw_alice(&server, false).await;
    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::DirectTls)).await;
    let handle = server
        .server
        .as_ref()
        .unwrap()
        .context()
        .router
        .session(&"alice@localhost/sm".parse().unwrap())
        .unwrap();
    let body = "x".repeat(16 * 1024);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 0;
    // Until her socket's buffers are full and messages wait in her queue.
    while handle.queued() < 20 {
        assert!(
            sent < 4000 && Instant::now() < deadline,
            "no backlog after {sent} messages"
        );
        for _ in 0..20 {
            bob.send(message(&body)).await;
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    assert_eq!(
        request_end(&control_socket(&server), "alice@localhost", End::Disabled).await,
        Some(1)
    );
    let router = &server.server.as_ref().unwrap().context().router;
    while router
        .session(&"alice@localhost/sm".parse().unwrap())
        .is_some()
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the session waited behind its backlog"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(alice);
    bob.close().await;
}

/// XEP-0198 with archives: what the server tells a client it handled is
/// in the archives already (sender's and recipient's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_archived_before_it_is_acknowledged() {
    let server = TestServer::start().await;
    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::DirectTls)).await;
    bob.send(Element::new("presence", ns::CLIENT)).await;
    let mut alice = raw_alice(&server, true).await;
    let mut seen = String::new();
    for n in 0..20 {
        alice
            .write_all(
                format!(
                    "<message to='bob@localhost' type='chat' id='a{n}'><body>n{n}</body></message>"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
    }
    alice
        .write_all(b"<r xmlns='urn:xmpp:sm:3'/>")
        .await
        .unwrap();
    // The answer to the request counts every message as handled only once
    // each is committed.
    loop {
        until(&mut alice, "<a xmlns=\"urn:xmpp:sm:3\"", &mut seen).await;
        if seen.contains("h=\"20\"") {
            break;
        }
        seen.clear();
        alice
            .write_all(b"<r xmlns='urn:xmpp:sm:3'/>")
            .await
            .unwrap();
    }
    let query = sigil_store::ArchiveQuery {
        max: 100,
        ..sigil_store::ArchiveQuery::default()
    };
    for owner in ["alice@localhost", "bob@localhost"] {
        let archived = server.store().archive_query(owner, &query).await.unwrap();
        assert_eq!(archived.messages.len(), 20, "{owner}'s archive");
    }
}

/// XEP-0115: the capabilities offered among the stream features hash
/// exactly what the server's disco#info says (checked by the algorithm of
/// §5.1, done again here), and the node#ver asks for the same answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_capabilities_match_its_disco_info() {
    use base64::Engine as _;
    use sha1::Digest as _;
    let server = TestServer::start().await;
    let (mut tls, mut seen) = raw_login(&server, ALICE).await;
    // The features after authentication.
    until(
        &mut tls,
        "<bind xmlns=\"urn:ietf:params:xml:ns:xmpp-bind\"",
        &mut seen,
    )
    .await;
    until(&mut tls, "</stream:features>", &mut seen).await;
    let at = seen
        .find("<c xmlns=\"http://jabber.org/protocol/caps\"")
        .unwrap_or_else(|| panic!("caps among the features: {seen}"));
    let caps = Element::parse(&seen[at..at + seen[at..].find("/>").unwrap() + 2]).unwrap();
    assert_eq!(caps.attribute("hash"), Some("sha-1"));
    let (node, ver) = (
        caps.attribute("node").unwrap(),
        caps.attribute("ver").unwrap(),
    );
    let mut alice = TestClient::connect(&server, Login::new("alice", ListenerKind::Starttls)).await;
    alice
        .send(
            Element::new("iq", ns::CLIENT)
                .with_attribute("type", "get")
                .with_attribute("id", "caps")
                .with_attribute("to", "localhost")
                .with_child(
                    Element::new("query", ns::DISCO_INFO)
                        .with_attribute("node", format!("{node}#{ver}")),
                ),
        )
        .await;
    let info = alice
        .recv_matching(|s| s.attribute("id") == Some("caps"))
        .await;
    let query = info.child("query", ns::DISCO_INFO).unwrap();
    assert_eq!(
        query.attribute("node"),
        Some(format!("{node}#{ver}").as_str())
    );
    let mut identities: Vec<String> = query
        .children()
        .filter(|c| c.name() == "identity")
        .map(|i| {
            format!(
                "{}/{}/{}/{}<",
                i.attribute("category").unwrap_or_default(),
                i.attribute("type").unwrap_or_default(),
                i.attribute("xml:lang").unwrap_or_default(),
                i.attribute("name").unwrap_or_default()
            )
        })
        .collect();
    identities.sort();
    let mut features: Vec<String> = query
        .children()
        .filter(|c| c.name() == "feature")
        .map(|f| format!("{}<", f.attribute("var").unwrap()))
        .collect();
    features.sort();
    assert!(features.contains(&"http://jabber.org/protocol/caps<".to_owned()));
    let text = identities.concat() + &features.concat();
    let expected =
        base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(text.as_bytes()));
    assert_eq!(ver, expected);
}

/// Archive results a session did not acknowledge are not stored offline
/// when it dies: they are copies of what the archive keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_archive_results_are_not_kept_offline() {
    let server = TestServer::start().await;
    let rows: Vec<sigil_store::ArchivedMessage> = (0..3)
        .map(|n| sigil_store::ArchivedMessage {
            id: format!("a{n}"),
            owner: "alice@localhost".into(),
            with: "bob@localhost/x".into(),
            at: 1_000_000 + n,
            stanza: format!(
                "<message xmlns='jabber:client' from='bob@localhost/x' to='alice@localhost' \
                 type='chat'><body>old {n}</body></message>"
            ),
        })
        .collect();
    server.store().archive(rows.clone()).await.unwrap();
    let mut alice = raw_alice(&server, true).await;
    alice
        .write_all(b"<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'/></iq>")
        .await
        .unwrap();
    let mut seen = String::new();
    until(&mut alice, "<fin", &mut seen).await;
    assert!(seen.contains("old 2"), "{seen}");
    // The connection dies without acknowledging anything.
    drop(alice);
    let router = &server.server.as_ref().unwrap().context().router;
    let jid: jid::FullJid = "alice@localhost/sm".parse().unwrap();
    let deadline = Instant::now() + common::TIMEOUT;
    while router.session(&jid).is_some() {
        assert!(Instant::now() < deadline, "the dead session stayed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        server
            .store()
            .offline_count("alice@localhost")
            .await
            .unwrap(),
        0
    );
}
