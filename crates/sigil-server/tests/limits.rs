//! The limits on one client, over real TCP and TLS: the read rate of a
//! connection, and the connections one address may have logging in.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::{Login, TestClient, TestServer};
use sigil_server::config::{ClientCertificatePolicy, ListenerKind};
use sigil_xml::{Element, ns};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn message(to: &str, body: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attribute("to", to)
        .with_attribute("type", "chat")
        .with_child(Element::new("body", ns::CLIENT).with_text(body))
}

fn body(stanza: &Element) -> Option<String> {
    stanza.child("body", ns::CLIENT).map(Element::text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_faster_than_its_rate_is_slowed_not_dropped() {
    const RATE: u64 = 10_000;
    const COUNT: usize = 220;
    let mut config = common::config(ClientCertificatePolicy::Wanted);
    config.limits.read_bytes_per_second = RATE;
    let server = TestServer::start_with(config).await;
    let mut alice =
        TestClient::connect(&server, Login::new("alice", ListenerKind::DirectTls)).await;
    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::DirectTls)).await;
    // About 40 KB in one write: one second's worth passes at once, the rest
    // at 10,000 bytes a second, so the last message cannot arrive in less
    // than about three seconds (asserted: two).
    let padding = "x".repeat(100);
    let burst: String = (0..COUNT)
        .map(|n| message(&bob.jid(), &format!("{n} {padding}")).to_xml())
        .collect();
    assert!(burst.len() > 40_000, "{}", burst.len());
    let start = Instant::now();
    alice.send_raw(&burst).await;
    for n in 0..COUNT {
        let stanza = tokio::time::timeout(Duration::from_secs(30), bob.recv())
            .await
            .expect("messages keep coming at the connection's rate");
        let text = body(&stanza).unwrap();
        assert!(text.starts_with(&format!("{n} ")), "{n}: {text}");
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2),
        "{} bytes at {RATE} bytes/s arrived in {elapsed:?}",
        burst.len()
    );
    // Alice was slowed down, not disconnected: she is served again once
    // her connection has paid for the burst.
    alice.send(message(&bob.jid(), "after")).await;
    let stanza = bob.recv().await;
    assert_eq!(body(&stanza).as_deref(), Some("after"));
    // Bob, who sent nothing, was never slowed.
    bob.send(message(&alice.jid(), "back")).await;
    let stanza = alice.recv().await;
    assert_eq!(body(&stanza).as_deref(), Some("back"));
    alice.close().await;
    bob.close().await;
}

/// Reads what the server says on a raw connection until it closes it.
async fn everything_said(mut tcp: TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(common::TIMEOUT, tcp.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_may_have_only_so_many_connections_logging_in() {
    let mut config = common::config(ClientCertificatePolicy::Wanted);
    config.limits.max_pending_per_address = 2;
    let server = TestServer::start_with(config).await;
    // A session that has bound no longer counts.
    let mut alice =
        TestClient::connect(&server, Login::new("alice", ListenerKind::DirectTls)).await;
    // Two connections that have not logged in: the address's limit.
    let starttls = server.address(ListenerKind::Starttls);
    let first = TcpStream::connect(starttls).await.unwrap();
    let mut second = TcpStream::connect(starttls).await.unwrap();
    second.write_all(HEADER.as_bytes()).await.unwrap();
    let mut greeting = [0u8; 64];
    let n = second.read(&mut greeting).await.unwrap();
    assert!(n > 0, "the second connection is served");

    // A third on STARTTLS gets its stream error in the clear, at once.
    let third = TcpStream::connect(starttls).await.unwrap();
    let said = everything_said(third).await;
    assert!(
        said.contains(
            "<stream:error><policy-violation xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\"/>"
        ),
        "{said}"
    );
    assert!(said.ends_with("</stream:stream>"), "{said}");
    // On the TLS listeners the connection is closed before any handshake.
    for kind in [ListenerKind::DirectTls, ListenerKind::Https] {
        let tcp = TcpStream::connect(server.address(kind)).await.unwrap();
        assert_eq!(everything_said(tcp).await, "", "{kind:?}");
    }

    // Alice, logged in already, is still served.
    alice.send(message(&alice.jid(), "still here")).await;
    let echo = alice.recv().await;
    assert_eq!(body(&echo).as_deref(), Some("still here"));

    // When one of the two goes, the address may log in again.
    drop(first);
    let deadline = Instant::now() + common::TIMEOUT;
    loop {
        let mut tcp = TcpStream::connect(starttls).await.unwrap();
        tcp.write_all(HEADER.as_bytes()).await.unwrap();
        let mut reply = vec![0u8; 4096];
        let n = tokio::time::timeout(common::TIMEOUT, tcp.read(&mut reply))
            .await
            .unwrap()
            .unwrap();
        let reply = String::from_utf8_lossy(&reply[..n]).into_owned();
        if !reply.contains("policy-violation") {
            assert!(reply.contains("<stream:features>"), "{reply}");
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(second);
    alice.close().await;
}

/// Sends one HTTP/1.1 request on a kept-alive connection and reads its
/// response (status and body, by Content-Length).
async fn request<S>(tls: &mut S, head: &str, body: &str) -> (u16, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let request = format!(
        "{head}\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(common::TIMEOUT, tls.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            n,
            1,
            "the response ended early: {}",
            String::from_utf8_lossy(&raw)
        );
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    tokio::time::timeout(common::TIMEOUT, tls.read_exact(&mut body))
        .await
        .unwrap()
        .unwrap();
    (status, String::from_utf8(body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_bosh_sessions_logging_in_count_against_their_address() {
    let mut config = common::config(ClientCertificatePolicy::Wanted);
    config.limits.max_pending_per_address = 2;
    let server = TestServer::start_with(config).await;
    // One raw connection logging in on STARTTLS.
    let _pending = TcpStream::connect(server.address(ListenerKind::Starttls))
        .await
        .unwrap();
    // An HTTPS connection: counted during its handshake only.
    let connector =
        tokio_rustls::TlsConnector::from(common::tls_client_config(&server.certificate(), None));
    let tcp = TcpStream::connect(server.address(ListenerKind::Https))
        .await
        .unwrap();
    let mut tls = connector
        .connect(
            rustls::pki_types::ServerName::try_from(common::DOMAIN).unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let create = "<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' rid='10' to='localhost' wait='5' hold='1' ver='1.6' xmpp:version='1.0'/>";
    // The first BOSH session fills the address's second slot.
    let (status, body) = request(&mut tls, "POST /http-bind HTTP/1.1", create).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("sid="), "{body}");
    // The next one is refused, and so is a WebSocket.
    let (status, body) = request(&mut tls, "POST /http-bind HTTP/1.1", create).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("condition='policy-violation'"), "{body}");
    let upgrade = "GET /xmpp-websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: xmpp";
    let (status, _) = request(&mut tls, upgrade, "").await;
    assert_eq!(status, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_after_the_write_timeout() {
    let mut config = common::config(ClientCertificatePolicy::Wanted);
    config.limits.write_timeout_seconds = 1;
    config.limits.read_bytes_per_second = 0;
    let server = TestServer::start_with(config).await;
    let mut alice =
        TestClient::connect(&server, Login::new("alice", ListenerKind::DirectTls)).await;
    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::DirectTls)).await;
    // Bob reads nothing while Alice sends him more than the socket buffers
    // of a loopback connection hold; the server's write to him blocks.
    let padding = "y".repeat(16 * 1024);
    let batch: String = (0..64)
        .map(|n| message(&bob.jid(), &format!("{n} {padding}")).to_xml())
        .collect();
    let mut sent = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) && sent < 64 * 1024 * 1024 {
        alice.send_raw(&batch).await;
        sent += batch.len();
    }
    assert!(sent >= 16 * 1024 * 1024, "only {sent} bytes sent");
    // Without reading a byte, Bob's session goes within about a second
    // of the write that blocked.
    let bob_jid: jid::FullJid = bob.jid().parse().unwrap();
    let router = &server.server.as_ref().unwrap().context().router;
    let deadline = Instant::now() + Duration::from_secs(15);
    while router.session(&bob_jid).is_some() {
        assert!(Instant::now() < deadline, "Bob's session was never dropped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What was in flight still arrives, then the end of the connection.
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        while bob.try_recv(Duration::from_secs(5)).await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "Bob's connection never ended");
    // Alice, who kept reading, is still served.
    alice.send(message(&alice.jid(), "still here")).await;
    let echo = alice
        .recv_matching(|s| body(s).as_deref() == Some("still here"))
        .await;
    assert_eq!(echo.name(), "message");
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starttls_handshake_that_never_comes_ends_with_the_login_deadline() {
    let mut config = common::config(ClientCertificatePolicy::Wanted);
    config.limits.login_timeout_seconds = 1;
    let server = TestServer::start_with(config).await;
    let mut tcp = TcpStream::connect(server.address(ListenerKind::Starttls))
        .await
        .unwrap();
    tcp.write_all(HEADER.as_bytes()).await.unwrap();
    tcp.write_all(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await
        .unwrap();
    // The server says <proceed/> and waits for a ClientHello that never
    // comes: the connection ends at the login deadline.
    let start = Instant::now();
    let mut said = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(8), tcp.read_to_end(&mut said)).await;
    assert!(ended.is_ok(), "the connection outlived the login deadline");
    let said = String::from_utf8_lossy(&said);
    assert!(said.contains("<proceed"), "{said}");
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_holds_at_most_max_sessions_websocket_and_bosh_sessions() {
    let mut config = common::config(ClientCertificatePolicy::Wanted);
    config.http.max_sessions = 1;
    let server = TestServer::start_with(config).await;
    let connector =
        tokio_rustls::TlsConnector::from(common::tls_client_config(&server.certificate(), None));
    let tcp = TcpStream::connect(server.address(ListenerKind::Https))
        .await
        .unwrap();
    let mut tls = connector
        .connect(
            rustls::pki_types::ServerName::try_from(common::DOMAIN).unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let create = "<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' rid='10' to='localhost' wait='5' hold='1' ver='1.6' xmpp:version='1.0'/>";
    let (status, body) = request(&mut tls, "POST /http-bind HTTP/1.1", create).await;
    assert_eq!(status, 200, "{body}");
    let sid = Element::parse(&body)
        .unwrap()
        .attribute("sid")
        .unwrap()
        .to_owned();
    let (status, _) = request(&mut tls, "POST /http-bind HTTP/1.1", create).await;
    assert_eq!(status, 503);
    let upgrade = "GET /xmpp-websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: xmpp";
    let (status, _) = request(&mut tls, upgrade, "").await;
    assert_eq!(status, 503);
    // When the session ends, its place is free again.
    let terminate = format!(
        "<body xmlns='http://jabber.org/protocol/httpbind' rid='11' sid='{sid}' type='terminate'/>"
    );
    let (status, _) = request(&mut tls, "POST /http-bind HTTP/1.1", &terminate).await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + common::TIMEOUT;
    loop {
        let (status, body) = request(&mut tls, "POST /http-bind HTTP/1.1", create).await;
        if status == 200 {
            assert!(body.contains("sid="), "{body}");
            break;
        }
        assert_eq!(status, 503);
        assert!(
            Instant::now() < deadline,
            "the ended session's place never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
