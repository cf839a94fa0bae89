//! BOSH (XEP-0124/0206) at /http-bind: session creation, SASL, restart,
//! bind, messages, rids, terminate, CORS, and the certificate bound to the
//! session.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{DOMAIN, Identity, Login, TestClient, TestServer};
use sigil_server::config::ListenerKind;
use sigil_xml::{Element, ns};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HTTPBIND: &str = "http://jabber.org/protocol/httpbind";

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

/// One POST over a fresh TLS connection.
async fn post(
    server: &TestServer,
    identity: Option<Identity>,
    origin: Option<&str>,
    body: &str,
) -> Reply {
    let address = server.address(ListenerKind::Https);
    let config = common::tls_client_config(&server.certificate(), identity);
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut tls = connector
        .connect(
            rustls::pki_types::ServerName::try_from(DOMAIN).unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST /http-bind HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml; charset=utf-8\r\n{origin}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // The server may refuse an oversized body and close before reading it
    // all: a failed write then still leaves its answer to read.
    let _ = tls.write_all(request.as_bytes()).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(70),
        tls.read_to_end(&mut raw),
    )
    .await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Reply {
        status,
        headers: head.to_owned(),
        body: body.to_owned(),
    }
}

fn body(sid: Option<&str>, rid: u64, extra: &str, content: &str) -> String {
    let sid = sid.map(|s| format!(" sid='{s}'")).unwrap_or_default();
    format!(
        "<body xmlns='{HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh' rid='{rid}'{sid}{extra}>{content}</body>"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strophe_like_session_from_creation_to_terminate() {
    let server = TestServer::start().await;
    let create = body(
        None,
        1000,
        " to='localhost' wait='5' hold='1' ver='1.6' xmpp:version='1.0' xml:lang='en'",
        "",
    );
    let reply = post(&server, None, None, &create).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let created = Element::parse(&reply.body).unwrap();
    assert!(created.is("body", HTTPBIND));
    let sid = created.attribute("sid").unwrap().to_owned();
    assert_eq!(sid.len(), 32, "128 bits of sid");
    assert_eq!(created.attribute("wait"), Some("5"));
    assert_eq!(created.attribute("requests"), Some("2"));
    assert_eq!(created.attribute("ack"), Some("1000"));
    assert_eq!(
        created.attribute_ns("restartlogic", "urn:xmpp:xbosh"),
        Some("true")
    );
    assert!(
        reply
            .body
            .contains("xmlns:stream='http://etherx.jabber.org/streams'"),
        "{}",
        reply.body
    );
    let features = created
        .child("features", "http://etherx.jabber.org/streams")
        .expect("features in the creation response");
    assert!(features.has_child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl"));

    let auth = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAGFsaWNlLXNlY3JldA==</auth>";
    let reply = post(&server, None, None, &body(Some(&sid), 1001, "", auth)).await;
    assert!(
        reply
            .body
            .contains("<success xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\"/>"),
        "{}",
        reply.body
    );
    let reply = post(
        &server,
        None,
        None,
        &body(Some(&sid), 1002, " xmpp:restart='true' to='localhost'", ""),
    )
    .await;
    assert!(
        reply.body.contains("urn:ietf:params:xml:ns:xmpp-bind"),
        "{}",
        reply.body
    );
    let bind = "<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>bosh</resource></bind></iq>";
    let reply = post(&server, None, None, &body(Some(&sid), 1003, "", bind)).await;
    assert!(
        reply.body.contains("<jid>alice@localhost/bosh</jid>"),
        "{}",
        reply.body
    );

    // A TCP client sends; the BOSH client polls and receives.
    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::DirectTls)).await;
    let reply = post(
        &server,
        None,
        None,
        &body(Some(&sid), 1004, "", "<presence xmlns='jabber:client'/>"),
    )
    .await;
    assert!(reply.body.contains("<presence"), "{}", reply.body);
    bob.send(
        Element::new("message", ns::CLIENT)
            .with_attribute("to", "alice@localhost/bosh")
            .with_child(Element::new("body", ns::CLIENT).with_text("over BOSH")),
    )
    .await;
    let reply = post(&server, None, None, &body(Some(&sid), 1005, "", "")).await;
    assert!(reply.body.contains("over BOSH"), "{}", reply.body);
    // And sends.
    post(
        &server,
        None,
        None,
        &body(
            Some(&sid),
            1006,
            "",
            "<message xmlns='jabber:client' to='bob@localhost/test'><body>back</body></message>",
        ),
    )
    .await;
    let got = bob.recv_matching(|s| s.name() == "message").await;
    assert_eq!(got.attribute("from"), Some("alice@localhost/bosh"));

    // A repeated rid gets the same answer again; one out of the window is refused.
    let again = post(&server, None, None, &body(Some(&sid), 1006, "", "")).await;
    assert_eq!(again.status, 200);
    let stale = post(&server, None, None, &body(Some(&sid), 900, "", "")).await;
    assert_eq!(stale.status, 404);
    assert!(stale.body.contains("item-not-found"), "{}", stale.body);

    // Two connections in flight: the later rid arrives first and waits
    // for the earlier one; the elements reach the session in rid order.
    let message = |text: &str| {
        format!(
            "<message xmlns='jabber:client' to='bob@localhost/test'><body>{text}</body></message>"
        )
    };
    let later = body(Some(&sid), 1008, "", &message("second"));
    let earlier = body(Some(&sid), 1007, "", &message("first"));
    let (second, first) = tokio::join!(post(&server, None, None, &later), async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        post(&server, None, None, &earlier).await
    });
    assert_eq!(
        (first.status, second.status),
        (200, 200),
        "{} {}",
        first.body,
        second.body
    );
    for expected in ["first", "second"] {
        let got = bob.recv_matching(|s| s.name() == "message").await;
        assert_eq!(got.child("body", ns::CLIENT).unwrap().text(), expected);
    }

    // Terminate.
    let reply = post(
        &server,
        None,
        None,
        &body(
            Some(&sid),
            1009,
            " type='terminate'",
            "<presence xmlns='jabber:client' type='unavailable'/>",
        ),
    )
    .await;
    assert!(reply.body.contains("type='terminate'"), "{}", reply.body);
    let unknown = post(&server, None, None, &body(Some(&sid), 1010, "", "")).await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_keeps_the_certificate_it_was_created_with() {
    let server = TestServer::start().await;
    let issued = |jid: &str| {
        sigil_x509::generate::client_certificate(
            &[sigil_x509::Jid::new(jid).unwrap()],
            &sigil_x509::generate::Options::new(sigil_x509::OffsetDateTime::now_utc()),
            None,
        )
        .unwrap()
    };
    let alice = issued("alice@localhost");
    let mallory = issued("alice@localhost");
    let create = body(
        None,
        1,
        " to='localhost' wait='2' hold='1' xmpp:version='1.0'",
        "",
    );
    let reply = post(&server, Some(Identity::from_issued(&alice)), None, &create).await;
    let sid = Element::parse(&reply.body)
        .unwrap()
        .attribute("sid")
        .unwrap()
        .to_owned();
    for identity in [Some(Identity::from_issued(&mallory)), None] {
        let reply = post(&server, identity, None, &body(Some(&sid), 2, "", "")).await;
        assert_eq!(reply.status, 403, "{}", reply.body);
    }
    let reply = post(
        &server,
        Some(Identity::from_issued(&alice)),
        None,
        &body(Some(&sid), 2, "", ""),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_cors_and_bad_requests() {
    let server = TestServer::start().await;
    let port = server.address(ListenerKind::Https).port();
    let own = format!("https://localhost:{port}");
    let create = body(
        None,
        1,
        " to='localhost' wait='1' hold='1' xmpp:version='1.0'",
        "",
    );
    let reply = post(&server, None, Some(&own), &create).await;
    assert_eq!(reply.status, 200);
    let headers = reply.headers.to_ascii_lowercase();
    assert!(
        headers.contains(&format!("access-control-allow-origin: {own}")),
        "{headers}"
    );
    assert!(
        headers.contains("access-control-allow-credentials: true"),
        "{headers}"
    );
    let foreign = post(&server, None, Some("https://evil.example"), &create).await;
    assert_eq!(foreign.status, 403);
    for bad in [
        "not xml",
        "<body xmlns='urn:wrong' rid='1'/>",
        "<body xmlns='http://jabber.org/protocol/httpbind'/>",
    ] {
        let reply = post(&server, None, None, bad).await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.body);
    }
    let unknown = post(
        &server,
        None,
        None,
        &body(Some("0123456789abcdef0123456789abcdef"), 5, "", ""),
    )
    .await;
    assert_eq!(unknown.status, 404);
    let huge = body(None, 1, "", &"x".repeat(400 * 1024));
    // 413, or the connection reset after the refusal when the server
    // closes before the client finished sending.
    let status = post(&server, None, None, &huge).await.status;
    assert!(status == 413 || status == 0, "{status}");
    // Either way the server goes on serving.
    assert_eq!(post(&server, None, None, &create).await.status, 200);
}

/// The stanza size limit applies to each stanza of a request on its own:
/// two stanzas that together pass it are fine, one that passes it alone
/// ends the session, whatever its place in the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stanza_size_limit_is_per_stanza() {
    let mut config = common::config(sigil_server::config::ClientCertificatePolicy::Wanted);
    config.limits.max_stanza_bytes = 4096;
    let server = TestServer::start_with(config).await;
    let create = body(
        None,
        1,
        " to='localhost' wait='5' hold='1' ver='1.6' xmpp:version='1.0'",
        "",
    );
    let created = Element::parse(&post(&server, None, None, &create).await.body).unwrap();
    let sid = created.attribute("sid").unwrap().to_owned();
    let auth = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAGFsaWNlLXNlY3JldA==</auth>";
    post(&server, None, None, &body(Some(&sid), 2, "", auth)).await;
    post(
        &server,
        None,
        None,
        &body(Some(&sid), 3, " xmpp:restart='true' to='localhost'", ""),
    )
    .await;
    let bind = "<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>";
    let reply = post(&server, None, None, &body(Some(&sid), 4, "", bind)).await;
    assert!(reply.body.contains("<jid>"), "{}", reply.body);
    let message = |size: usize| {
        format!(
            "<message xmlns='jabber:client' to='bob@localhost'><body>{}</body></message>",
            "x".repeat(size)
        )
    };
    // 3,000 bytes each, 6,000 together: each under the limit.
    let two = format!("{}{}", message(3000), message(3000));
    let reply = post(&server, None, None, &body(Some(&sid), 5, "", &two)).await;
    assert_eq!(reply.status, 200);
    assert!(!reply.body.contains("terminate"), "{}", reply.body);
    // A small stanza, then one over the limit.
    let over = format!("{}{}", message(10), message(5000));
    let reply = post(&server, None, None, &body(Some(&sid), 6, "", &over)).await;
    assert!(
        reply.body.contains("type='terminate'") && reply.body.contains("policy-violation"),
        "{}",
        reply.body
    );
}
