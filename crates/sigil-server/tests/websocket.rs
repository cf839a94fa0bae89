//! XMPP over WebSocket (RFC 7395) on the HTTPS listener: the framing
//! Strophe.js expects, password and certificate logins, messages to and
//! from TCP clients, and the Origin and subprotocol checks.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{DOMAIN, Identity, Login, TestClient, TestServer};
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
async fn get(server: &TestServer, identity: Option<Identity>, path: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = common::tls_client_config(&server.certificate(), identity);
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = tokio::net::TcpStream::connect(server.address(ListenerKind::Https))
        .await
        .unwrap();
    let mut tls = connector
        .connect(
            rustls::pki_types::ServerName::try_from(DOMAIN).unwrap(),
            tcp,
        )
        .await
        .unwrap();
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(common::TIMEOUT, tls.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

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
    if body.contains("not installed") {
        // Without scripts/ensure-web the page says how to install the chat.
        assert!(body.contains("scripts/ensure-web"), "{body}");
        return;
    }
    // The certificate's JID is filled in; the page has no password field.
    assert!(body.contains("const jid = \"alice@localhost\";"), "{body}");
    assert!(body.contains("authentication: 'external'"), "{body}");
    assert!(!body.contains("type=\"password\""));
    let (status, _, body) = get(&server, None, "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("const jid = \"\";"), "{body}");
    let (status, _, body) = get(&server, None, "/password").await;
    assert_eq!(status, 200);
    assert!(body.contains("authentication: 'login'"), "{body}");
    let (status, headers, body) = get(&server, None, "/dist/converse.min.js").await;
    assert_eq!(status, 200);
    assert!(
        headers.contains("content-type: text/javascript"),
        "{headers}"
    );
    assert!(body.len() > 100_000);
    for path in [
        "/dist/../Cargo.toml",
        "/dist/.hidden",
        "/dist/%2e%2e/x",
        "/nothing",
    ] {
        assert_eq!(get(&server, None, path).await.0, 404, "{path}");
    }
}
