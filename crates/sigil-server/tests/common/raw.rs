//! Raw XMPP over TLS, for tests that speak XEP-0198 by hand.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::time::Instant;

use sigil_server::config::ListenerKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::{Identity, TestServer};

/// A client's stream header to localhost.
pub const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

/// Reads until `marker` has been seen (everything read is in `seen`).
pub async fn until(tls: &mut TlsStream<TcpStream>, marker: &str, seen: &mut String) {
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + super::TIMEOUT;
    while !seen.contains(marker) {
        let n = tokio::time::timeout_at(deadline.into(), tls.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {marker} in: {seen}"))
            .unwrap();
        assert!(n > 0, "closed before {marker}: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

/// A raw TLS connection logged in with PLAIN (`\0user\0password` in
/// base64) and restarted, not bound; what it saw so far.
pub async fn raw_login(server: &TestServer, plain: &str) -> (TlsStream<TcpStream>, String) {
    raw_login_with(server, None, plain).await
}

/// As [`raw_login`], or with EXTERNAL when a certificate is given.
pub async fn raw_login_with(
    server: &TestServer,
    identity: Option<Identity>,
    plain: &str,
) -> (TlsStream<TcpStream>, String) {
    let auth = match identity {
        Some(_) => "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>"
            .to_owned(),
        None => format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{plain}</auth>"
        ),
    };
    let config = super::tls_client_config(&server.certificate(), identity);
    let mut tls = super::tls_connect(server.address(ListenerKind::DirectTls), config)
        .await
        .unwrap();
    let mut seen = String::new();
    tls.write_all(format!("{HEADER}{auth}").as_bytes())
        .await
        .unwrap();
    until(&mut tls, "<success", &mut seen).await;
    tls.write_all(HEADER.as_bytes()).await.unwrap();
    until(&mut tls, "</stream:features>", &mut seen).await;
    (tls, seen)
}

/// What a new connection of `plain`'s account hears when it asks to
/// resume `id`, having handled `h`: up to the end of `<failed/>`.
pub async fn resume_failure(server: &TestServer, plain: &str, id: &str, h: u32) -> String {
    let (mut tls, mut seen) = raw_login(server, plain).await;
    tls.write_all(format!("<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='{h}'/>").as_bytes())
        .await
        .unwrap();
    until(&mut tls, "</failed>", &mut seen).await;
    seen[seen.find("<failed").expect("failed")..].to_owned()
}
