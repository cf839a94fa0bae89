//! XMPP over WebSocket (RFC 7395) on the HTTPS listener: the framing
//! Strophe.js expects, password and certificate logins, messages to and
//! from TCP clients, and the Origin and subprotocol checks.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::{DOMAIN, Identity, Login, TestClient, TestServer, get};
use futures_util::{SinkExt, StreamExt};
use sigil_server::config::ListenerKind;
use sigil_xml::{Element, ns};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

async fn open_ws(
    server: &TestServer,
    origin: Option<&str>,
    protocol: Option<&str>,
    identity: Option<Identity>,
) -> Result<Ws, WsError> {
    let address = server.address(ListenerKind::Https);
    let config = common::tls_client_config(&server.certificate(), identity);
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let tls = connector
        .connect(
            rustls::pki_types::ServerName::try_from(DOMAIN).unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let mut request = format!("wss://localhost:{}/xmpp-websocket", address.port())
        .into_client_request()
        .unwrap();
    if let Some(protocol) = protocol {
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    }
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", origin.parse().unwrap());
    }
    let (ws, response) = tokio_tungstenite::client_async(request, tls).await?;
    assert_eq!(
        response.headers().get("Sec-WebSocket-Protocol").unwrap(),
        "xmpp"
    );
    Ok(ws)
}

async fn next_frame(ws: &mut Ws) -> String {
    loop {
        match tokio::time::timeout(common::TIMEOUT, ws.next())
            .await
            .expect("a frame in time")
        {
            Some(Ok(Message::Text(text))) => return text.to_string(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn send(ws: &mut Ws, frame: &str) {
    ws.send(Message::text(frame.to_owned())).await.unwrap();
}

const OPEN: &str =
    "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";

/// Opens the stream and returns the features frame.
async fn open_stream(ws: &mut Ws) -> Element {
    send(ws, OPEN).await;
    let open = next_frame(ws).await;
    assert!(
        open.starts_with("<open xmlns=\"urn:ietf:params:xml:ns:xmpp-framing\""),
        "{open}"
    );
    assert!(open.contains("version=\"1.0\""), "{open}");
    let features = next_frame(ws).await;
    assert!(
        features.starts_with("<stream:features xmlns:stream=\"http://etherx.jabber.org/streams\">"),
        "{features}"
    );
    Element::parse(&features).unwrap()
}

async fn bind(ws: &mut Ws) -> String {
    let features = open_stream(ws).await;
    assert!(features.has_child("bind", ns::BIND));
    send(ws, "<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind></iq>").await;
    let result = Element::parse(&next_frame(ws).await).unwrap();
    assert_eq!(result.attribute("type"), Some("result"), "{result:?}");
    result
        .child("bind", ns::BIND)
        .unwrap()
        .child("jid", ns::BIND)
        .unwrap()
        .text()
}

fn mechanisms(features: &Element) -> Vec<String> {
    features
        .child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
        .map(|m| m.children().map(Element::text).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_login_and_messages_with_a_tcp_client() {
    let server = TestServer::start().await;
    let ws = open_ws(&server, Some("https://localhost:1"), Some("xmpp"), None)
        .await
        .unwrap_err();
    // The origin above is not the server's: refused before any XMPP.
    assert!(
        matches!(ws, WsError::Http(ref response) if response.status() == 403),
        "{ws:?}"
    );
    let port = server.address(ListenerKind::Https).port();
    let own_origin = format!("https://localhost:{port}");
    let mut ws = open_ws(&server, Some(&own_origin), Some("xmpp"), None)
        .await
        .unwrap();
    let features = open_stream(&mut ws).await;
    let offered = mechanisms(&features);
    assert!(
        offered.contains(&"PLAIN".to_owned()) && !offered.contains(&"EXTERNAL".to_owned()),
        "{offered:?}"
    );
    // PLAIN (alice / alice-secret).
    send(&mut ws, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAGFsaWNlLXNlY3JldA==</auth>").await;
    assert_eq!(
        next_frame(&mut ws).await,
        "<success xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\"/>"
    );
    assert_eq!(bind(&mut ws).await, "alice@localhost/web");
    send(&mut ws, "<presence xmlns='jabber:client'/>").await;
    let own = next_frame(&mut ws).await;
    assert!(
        own.starts_with("<presence xmlns=\"jabber:client\""),
        "{own}"
    );

    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::DirectTls)).await;
    bob.send(Element::new("presence", ns::CLIENT)).await;
    bob.send(
        Element::new("message", ns::CLIENT)
            .with_attribute("to", "alice@localhost/web")
            .with_attribute("type", "chat")
            .with_child(Element::new("body", ns::CLIENT).with_text("to the browser")),
    )
    .await;
    let got = Element::parse(&next_frame(&mut ws).await).unwrap();
    assert_eq!(
        got.child("body", ns::CLIENT).unwrap().text(),
        "to the browser"
    );
    send(&mut ws, "<message xmlns='jabber:client' to='bob@localhost' type='chat'><body>from the browser</body></message>").await;
    let got = bob.recv_matching(|s| s.name() == "message").await;
    assert_eq!(
        got.child("body", ns::CLIENT).unwrap().text(),
        "from the browser"
    );
    assert_eq!(got.attribute("from"), Some("alice@localhost/web"));

    // <close/> is answered with the exact close frame Strophe.js looks for.
    send(
        &mut ws,
        "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
    )
    .await;
    assert_eq!(
        next_frame(&mut ws).await,
        "<close xmlns=\"urn:ietf:params:xml:ns:xmpp-framing\" />"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_login_over_websocket() {
    let server = TestServer::start().await;
    let issued = sigil_x509::generate::client_certificate(
        &[sigil_x509::Jid::new("alice@localhost").unwrap()],
        &sigil_x509::generate::Options::new(sigil_x509::OffsetDateTime::now_utc()),
        None,
    )
    .unwrap();
    let info = sigil_x509::CertificateInfo::from_der(&issued.certificate_der).unwrap();
    server
        .store()
        .add_certificate(&sigil_store::CertificateEntry {
            owner: "alice@localhost".into(),
            name: "browser".into(),
            fingerprint: info.sha256,
            der: issued.certificate_der.clone(),
            no_cert_management: false,
            disabled: false,
            added_at: 0,
        })
        .await
        .unwrap();
    let mut ws = open_ws(
        &server,
        None,
        Some("xmpp"),
        Some(Identity::from_issued(&issued)),
    )
    .await
    .unwrap();
    let features = open_stream(&mut ws).await;
    // A certificate that logs in is offered EXTERNAL alone.
    assert_eq!(mechanisms(&features), ["EXTERNAL"]);
    // Strophe.js sends the bare JID as authzid.
    send(&mut ws, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>YWxpY2VAbG9jYWxob3N0</auth>").await;
    assert_eq!(
        next_frame(&mut ws).await,
        "<success xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\"/>"
    );
    assert_eq!(bind(&mut ws).await, "alice@localhost/web");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_checks_and_bad_frames() {
    let server = TestServer::start().await;
    // No xmpp subprotocol.
    let error = open_ws(&server, None, None, None).await.unwrap_err();
    assert!(
        matches!(error, WsError::Http(ref response) if response.status() == 400),
        "{error:?}"
    );
    // A foreign page.
    let error = open_ws(&server, Some("https://evil.example"), Some("xmpp"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, WsError::Http(ref response) if response.status() == 403),
        "{error:?}"
    );
    // A frame that is not XML gets not-well-formed, then the close frame.
    let mut ws = open_ws(&server, None, Some("xmpp"), None).await.unwrap();
    open_stream(&mut ws).await;
    send(&mut ws, "<message><body>").await;
    let error = next_frame(&mut ws).await;
    assert!(error.contains("<not-well-formed"), "{error}");
    assert_eq!(
        next_frame(&mut ws).await,
        "<close xmlns=\"urn:ietf:params:xml:ns:xmpp-framing\" />"
    );
    // A TCP-style stream header over WebSocket is the wrong framing.
    let mut ws = open_ws(&server, None, Some("xmpp"), None).await.unwrap();
    send(&mut ws, "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'/>").await;
    let _open = next_frame(&mut ws).await;
    let error = next_frame(&mut ws).await;
    assert!(error.contains("<invalid-namespace"), "{error}");
}

/// GET over a fresh TLS connection; returns (status, headers, body).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_chat_pages() {
    let server = TestServer::start().await;
    let issued = sigil_x509::generate::client_certificate(
        &[sigil_x509::Jid::new("alice@localhost").unwrap()],
        &sigil_x509::generate::Options::new(sigil_x509::OffsetDateTime::now_utc()),
        None,
    )
    .unwrap();
    let (status, headers, body) = get(&server, Some(Identity::from_issued(&issued)), "/").await;
    assert_eq!(status, 200);
    assert!(headers.contains("content-type: text/html"), "{headers}");
    assert!(headers.contains("x-frame-options: deny"), "{headers}");
    // Nothing from other hosts, and no HSTS for localhost (it would bind
    // every other local web server to HTTPS).
    assert!(
        headers.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{headers}"
    );
    assert!(!headers.contains("strict-transport-security"), "{headers}");
    // The vendored chat is there with no installation step; the
    // certificate's JID is filled in; the page has no password field.
    assert!(
        body.contains("<meta name=\"sigil-jid\" content=\"alice@localhost\">"),
        "{body}"
    );
    assert!(!body.contains("type=\"password\""));
    let (status, _, script) = get(&server, None, "/chat.js").await;
    assert_eq!(status, 200);
    assert!(script.contains("authentication: 'external'"), "{script}");
    // Without a certificate: how to get one, and the password page.
    let (status, _, body) = get(&server, None, "/").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("sigil cert new you@localhost --register"),
        "{body}"
    );
    assert!(body.contains("<a href=\"/password\">"), "{body}");
    let (status, _, body) = get(&server, None, "/password").await;
    assert_eq!(status, 200);
    assert!(body.contains("/password.js"), "{body}");
    let (_, _, script) = get(&server, None, "/password.js").await;
    assert!(script.contains("authentication: 'login'"), "{script}");
    // Files are streamed whole, with their length.
    let (status, headers, body) = get(&server, None, "/dist/converse.min.js").await;
    assert_eq!(status, 200);
    assert!(
        headers.contains("content-type: text/javascript"),
        "{headers}"
    );
    let vendored = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../web/converse/converse.min.js"
    ))
    .unwrap();
    assert!(
        headers.contains(&format!("content-length: {}", vendored.len())),
        "{headers}"
    );
    assert_eq!(body.as_bytes(), vendored.as_slice());
    for path in [
        "/dist/../Cargo.toml",
        "/dist/.hidden",
        "/dist/%2e%2e/x",
        "/nothing",
    ] {
        assert_eq!(get(&server, None, path).await.0, 404, "{path}");
    }
}

/// Source maps are not served unless asked for (`[http] source_maps`);
/// an operator's own Converse.js directory (`[http] web_assets`) is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_maps_only_when_asked_for() {
    let assets = tempfile::tempdir().unwrap();
    std::fs::write(assets.path().join("converse.min.js"), "// chat").unwrap();
    std::fs::write(assets.path().join("converse.min.js.map"), "{}").unwrap();
    for maps in [false, true] {
        let mut config = common::config(sigil_server::config::ClientCertificatePolicy::Wanted);
        config.http.web_assets = Some(assets.path().to_path_buf());
        config.http.source_maps = maps;
        let server = TestServer::start_with(config).await;
        let (status, _, body) = get(&server, None, "/dist/converse.min.js").await;
        assert_eq!((status, body.as_str()), (200, "// chat"));
        let (status, _, _) = get(&server, None, "/dist/converse.min.js.map").await;
        assert_eq!(status, if maps { 200 } else { 404 });
    }
}

/// A TLS connection to the HTTPS listener, or the error that ended it.
async fn https_connection(
    server: &TestServer,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let config = common::tls_client_config(&server.certificate(), None);
    common::tls_connect(server.address(ListenerKind::Https), config).await
}

/// Whether a new HTTPS connection is served (a page comes back).
async fn served(server: &TestServer) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut tls) = https_connection(server).await else {
        return false;
    };
    if tls
        .write_all(b"GET /password HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(common::TIMEOUT, tls.read_to_end(&mut seen)).await;
    seen.starts_with(b"HTTP/1.1 200")
}

/// HTTPS connections are capped per address, and a client that stops
/// reading what it asked for is dropped after the write timeout,
/// freeing its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_connections_are_capped_and_stalled_ones_dropped() {
    use tokio::io::AsyncWriteExt;
    let mut config = common::config(sigil_server::config::ClientCertificatePolicy::Wanted);
    config.http.max_connections_per_address = 1;
    config.limits.write_timeout_seconds = 1;
    let server = TestServer::start_with(config).await;
    assert!(served(&server).await);

    // Many large files asked for at once and never read: the server's
    // writes stall.
    let mut stalled = https_connection(&server).await.unwrap();
    let mut requests = String::new();
    for _ in 0..40 {
        requests.push_str("GET /dist/converse.min.js HTTP/1.1\r\nHost: localhost\r\n\r\n");
    }
    stalled.write_all(requests.as_bytes()).await.unwrap();
    // Its place is taken: another connection from the address is refused.
    assert!(!served(&server).await);
    // Dropped after the write timeout: the place is free again.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !served(&server).await {
        assert!(Instant::now() < deadline, "the stalled connection was kept");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(stalled);
}

/// A BOSH body that does not arrive in time is not waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bosh_body_that_does_not_come_times_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut config = common::config(sigil_server::config::ClientCertificatePolicy::Wanted);
    config.limits.write_timeout_seconds = 1;
    let server = TestServer::start_with(config).await;
    let mut tls = https_connection(&server).await.unwrap();
    tls.write_all(
        b"POST /http-bind HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\n\
          Content-Length: 500\r\n\r\n<body rid='1'",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 1024];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(common::TIMEOUT, tls.read(&mut buffer))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(n > 0, "closed without an answer");
        seen.extend_from_slice(&buffer[..n]);
    }
    assert!(
        seen.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    assert!(started.elapsed() < Duration::from_secs(8));
}

/// XEP-0156: host-meta, as XRD and as JSON, names the WebSocket and BOSH
/// endpoints of the HTTPS listener, for any origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_discovery_names_the_endpoints() {
    let server = TestServer::start().await;
    let port = server.address(ListenerKind::Https).port();
    let (status, headers, body) = get(&server, None, "/.well-known/host-meta").await;
    assert_eq!(status, 200, "{body}");
    let headers = headers.to_ascii_lowercase();
    assert!(
        headers.contains("content-type: application/xrd+xml"),
        "{headers}"
    );
    assert!(
        headers.contains("access-control-allow-origin: *"),
        "{headers}"
    );
    let xrd = Element::parse(body.split_once('\n').unwrap().1).unwrap();
    assert!(xrd.is("XRD", "http://docs.oasis-open.org/ns/xri/xrd-1.0"));
    let href = |rel: &str| {
        xrd.children()
            .find(|l| l.attribute("rel") == Some(rel))
            .and_then(|l| l.attribute("href"))
            .map(str::to_owned)
    };
    assert_eq!(
        href("urn:xmpp:alt-connections:websocket"),
        Some(format!("wss://localhost:{port}/xmpp-websocket"))
    );
    assert_eq!(
        href("urn:xmpp:alt-connections:xbosh"),
        Some(format!("https://localhost:{port}/http-bind"))
    );
    let (status, headers, body) = get(&server, None, "/.well-known/host-meta.json").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{headers}"
    );
    assert!(
        body.contains(&format!(
            "{{\"rel\":\"urn:xmpp:alt-connections:websocket\",\"href\":\"wss://localhost:{port}/xmpp-websocket\"}}"
        )),
        "{body}"
    );
}
