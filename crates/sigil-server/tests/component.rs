//! External components (XEP-0114) over real sockets: a raw component
//! speaking `jabber:component:accept` to the test server, and users
//! logged in over STARTTLS talking to it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{Login, TIMEOUT, TestClient, TestServer};
use sigil_proto::component::handshake;
use sigil_proto::error::{StanzaCondition, StanzaError, StreamCondition, StreamError};
use sigil_server::config::{
    ClientCertificatePolicy, ComponentConfig, ListenerConfig, ListenerKind, Secret,
};
use sigil_xml::{Element, Framer, Limits, StreamEvent, ns};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const COMPONENT: &str = "echo.localhost";
const SECRET: &str = "the echo component's shared secret";
const NS_COMPONENT: &str = "jabber:component:accept";

fn server_config() -> sigil_server::Config {
    let mut config = common::config(ClientCertificatePolicy::Wanted);
    config.listeners.push(ListenerConfig {
        kind: ListenerKind::Component,
        address: "127.0.0.1:0".parse().unwrap(),
        client_certificates: ClientCertificatePolicy::Disabled,
    });
    config.components.push(ComponentConfig {
        domain: COMPONENT.into(),
        secret: Some(Secret::new(SECRET)),
        secret_file: None,
    });
    config
}

async fn start() -> TestServer {
    TestServer::start_with(server_config()).await
}

/// A component speaking XEP-0114 by hand, reading the server with
/// sigil-xml's framer.
struct RawComponent {
    tcp: TcpStream,
    framer: Framer,
    input: Vec<u8>,
    stream_id: Option<String>,
    /// The stream's end: the stream error, if one came.
    closed: Option<Option<StreamError>>,
}

impl RawComponent {
    /// Connects and opens a stream for `domain`; returns once the
    /// server's header arrived (or the stream ended).
    async fn open(server: &TestServer, domain: &str) -> Self {
        let tcp = TcpStream::connect(server.address(ListenerKind::Component))
            .await
            .unwrap();
        let mut component = Self {
            tcp,
            framer: Framer::new(Limits::default()),
            input: Vec::new(),
            stream_id: None,
            closed: None,
        };
        component
            .send(&format!(
                "<stream:stream xmlns='{NS_COMPONENT}' \
                 xmlns:stream='http://etherx.jabber.org/streams' to='{domain}'>"
            ))
            .await;
        while component.stream_id.is_none() && component.closed.is_none() {
            if let Some(element) = component.next_event().await {
                panic!("an element before the stream header: {element:?}");
            }
        }
        component
    }

    /// Opens a stream and sends the handshake for `secret`.
    async fn handshake(server: &TestServer, domain: &str, secret: &str) -> Self {
        let mut component = Self::open(server, domain).await;
        let id = component.stream_id.clone().expect("no stream id");
        let digest = handshake(&id, secret.as_bytes());
        component
            .send(&format!("<handshake>{digest}</handshake>"))
            .await;
        component
    }

    /// A connected component of the test server.
    async fn connect(server: &TestServer) -> Self {
        let mut component = Self::handshake(server, COMPONENT, SECRET).await;
        let reply = component.recv().await;
        assert!(reply.is("handshake", NS_COMPONENT), "{reply:?}");
        assert!(reply.text().is_empty());
        component
    }

    async fn send(&mut self, data: &str) {
        self.tcp.write_all(data.as_bytes()).await.unwrap();
    }

    async fn send_element(&mut self, element: &Element) {
        let mut out = String::new();
        element.write_to(&mut out, NS_COMPONENT, true);
        self.send(&out).await;
    }

    /// The next element; `None` once the stream ended (header events are
    /// noted on the way).
    async fn next_event(&mut self) -> Option<Element> {
        loop {
            if self.closed.is_some() {
                return None;
            }
            let mut input = self.input.as_slice();
            let event = self.framer.next_event(&mut input);
            let consumed = self.input.len() - input.len();
            self.input.drain(..consumed);
            match event {
                Ok(Some(StreamEvent::Open(header))) => {
                    assert_eq!(header.default_namespace, NS_COMPONENT);
                    self.stream_id = header.attribute("id").map(str::to_owned);
                    return None;
                }
                Ok(Some(StreamEvent::Element(element))) if element.is("error", ns::STREAM) => {
                    self.closed = Some(StreamError::from_element(&element));
                }
                Ok(Some(StreamEvent::Element(element))) => return Some(element),
                Ok(Some(StreamEvent::Close)) => self.closed = Some(None),
                Err(error) => panic!("the server sent bad XML: {error}"),
                Ok(None) => {
                    let mut buffer = [0u8; 16384];
                    let read = tokio::time::timeout(TIMEOUT, self.tcp.read(&mut buffer))
                        .await
                        .expect("the server sent nothing in time");
                    match read {
                        Ok(0) | Err(_) => self.closed = Some(None),
                        Ok(n) => self.input.extend_from_slice(&buffer[..n]),
                    }
                }
            }
        }
    }

    /// The next element, which must come.
    async fn recv(&mut self) -> Element {
        loop {
            if let Some(element) = self.next_event().await {
                return element;
            }
            assert!(self.closed.is_none(), "the stream ended: {:?}", self.closed);
        }
    }

    /// Waits for the stream to end and returns its stream error.
    async fn stream_error(&mut self) -> StreamCondition {
        while self.closed.is_none() {
            if let Some(element) = self.next_event().await {
                panic!("an element instead of the end: {element:?}");
            }
        }
        self.closed
            .clone()
            .unwrap()
            .expect("the stream ended without an error")
            .condition
    }
}

fn message(to: &str, from: Option<&str>, body: &str) -> Element {
    let mut message = Element::new("message", ns::CLIENT)
        .with_attribute("to", to)
        .with_attribute("type", "chat")
        .with_attribute("id", format!("m-{body}"))
        .with_child(Element::new("body", ns::CLIENT).with_text(body));
    if let Some(from) = from {
        message.set_attribute("from", from);
    }
    message
}

fn body(stanza: &Element, namespace: &str) -> Option<String> {
    stanza.child("body", namespace).map(Element::text)
}

fn stanza_error(stanza: &Element) -> Option<StanzaCondition> {
    (stanza.attribute("type") == Some("error"))
        .then(|| StanzaError::from_stanza(stanza).map(|e| e.condition))
        .flatten()
}

/// Alice logged in over STARTTLS and available (her own presence came
/// back, so the server has handled it).
async fn alice_online(server: &TestServer) -> TestClient {
    let mut alice = TestClient::connect(server, Login::new("alice", ListenerKind::Starttls)).await;
    assert_eq!(alice.jid(), "alice@localhost/test");
    alice.send(Element::new("presence", ns::CLIENT)).await;
    alice
        .recv_matching(|s| {
            s.name() == "presence" && s.attribute("from") == Some("alice@localhost/test")
        })
        .await;
    alice
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_go_both_ways_between_a_user_and_the_component() {
    let server = start().await;
    let mut component = RawComponent::connect(&server).await;
    let mut alice = alice_online(&server).await;

    // Component to user: to her bare JID, delivered to her resource.
    component
        .send_element(&message(
            "alice@localhost",
            Some("bot@echo.localhost/robot"),
            "hello alice",
        ))
        .await;
    let received = alice.recv_matching(|s| s.name() == "message").await;
    assert_eq!(received.attribute("from"), Some("bot@echo.localhost/robot"));
    assert_eq!(body(&received, ns::CLIENT).as_deref(), Some("hello alice"));

    // User to component: any address in its domain reaches it, from the
    // user's full JID, in the component's namespace.
    alice
        .send(message("bot@echo.localhost", None, "hello bot"))
        .await;
    let received = component.recv().await;
    assert!(received.is("message", NS_COMPONENT), "{received:?}");
    assert_eq!(received.attribute("from"), Some("alice@localhost/test"));
    assert_eq!(received.attribute("to"), Some("bot@echo.localhost"));
    assert_eq!(body(&received, NS_COMPONENT).as_deref(), Some("hello bot"));

    // A subdomain of the component's domain is the component's too.
    alice
        .send(message("room@rooms.echo.localhost", None, "deeper"))
        .await;
    let received = component.recv().await;
    assert_eq!(received.attribute("to"), Some("room@rooms.echo.localhost"));

    // A message to an account with no session is kept for it.
    component
        .send_element(&message(
            "bob@localhost",
            Some("bot@echo.localhost"),
            "for later",
        ))
        .await;
    // The component's ping to the server is answered: behind it, the
    // message was handled.
    component
        .send(
            "<iq type='get' id='ping-1' from='echo.localhost' to='localhost'>\
             <ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
    let pong = component.recv().await;
    assert_eq!(pong.attribute("id"), Some("ping-1"));
    assert_eq!(pong.attribute("type"), Some("result"));
    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::DirectTls)).await;
    bob.send(Element::new("presence", ns::CLIENT)).await;
    let stored = bob.recv_matching(|s| s.name() == "message").await;
    assert_eq!(stored.attribute("from"), Some("bot@echo.localhost"));
    assert_eq!(body(&stored, ns::CLIENT).as_deref(), Some("for later"));
    assert!(stored.has_child("delay", ns::DELAY), "{stored:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iq_round_trips_both_ways() {
    let server = start().await;
    let mut component = RawComponent::connect(&server).await;
    let mut alice = alice_online(&server).await;

    // User to component and back.
    alice
        .send(
            Element::new("iq", ns::CLIENT)
                .with_attribute("type", "get")
                .with_attribute("id", "v-1")
                .with_attribute("to", COMPONENT)
                .with_child(Element::new("query", ns::VERSION)),
        )
        .await;
    let request = component.recv().await;
    assert!(request.is("iq", NS_COMPONENT), "{request:?}");
    assert_eq!(request.attribute("from"), Some("alice@localhost/test"));
    assert!(request.has_child("query", ns::VERSION));
    component
        .send(
            "<iq type='result' id='v-1' from='echo.localhost' to='alice@localhost/test'>\
             <query xmlns='jabber:iq:version'><name>echo</name></query></iq>",
        )
        .await;
    let result = alice
        .recv_matching(|s| s.name() == "iq" && s.attribute("id") == Some("v-1"))
        .await;
    assert_eq!(result.attribute("type"), Some("result"));
    assert_eq!(result.attribute("from"), Some(COMPONENT));
    let name = result
        .child("query", ns::VERSION)
        .and_then(|q| q.child("name", ns::VERSION))
        .map(Element::text);
    assert_eq!(name.as_deref(), Some("echo"));

    // Component to user and back.
    component
        .send(
            "<iq type='get' id='c-1' from='echo.localhost' to='alice@localhost/test'>\
             <ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
    let request = alice
        .recv_matching(|s| s.name() == "iq" && s.attribute("id") == Some("c-1"))
        .await;
    assert_eq!(request.attribute("from"), Some(COMPONENT));
    alice
        .send(
            Element::new("iq", ns::CLIENT)
                .with_attribute("type", "result")
                .with_attribute("id", "c-1")
                .with_attribute("to", COMPONENT),
        )
        .await;
    let result = component.recv().await;
    assert_eq!(result.attribute("id"), Some("c-1"));
    assert_eq!(result.attribute("type"), Some("result"));
    assert_eq!(result.attribute("from"), Some("alice@localhost/test"));

    // A request to a resource that is not there is answered for it.
    component
        .send(
            "<iq type='get' id='c-2' from='echo.localhost' to='alice@localhost/elsewhere'>\
             <ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
    let error = component.recv().await;
    assert_eq!(error.attribute("id"), Some("c-2"));
    assert_eq!(
        stanza_error(&error),
        Some(StanzaCondition::ServiceUnavailable)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_not_authorized() {
    let server = start().await;
    let mut component =
        RawComponent::handshake(&server, COMPONENT, "not the component's secret").await;
    assert_eq!(
        component.stream_error().await,
        StreamCondition::NotAuthorized
    );
    // The domain is still free for the right secret.
    RawComponent::connect(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_domain_is_host_unknown() {
    let server = start().await;
    let mut component = RawComponent::open(&server, "other.localhost").await;
    assert!(component.stream_id.is_some(), "no header before the error");
    assert_eq!(component.stream_error().await, StreamCondition::HostUnknown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_for_a_domain_is_a_conflict() {
    let server = start().await;
    let mut first = RawComponent::connect(&server).await;
    let mut second = RawComponent::handshake(&server, COMPONENT, SECRET).await;
    assert_eq!(second.stream_error().await, StreamCondition::Conflict);
    // The first one still serves the domain.
    let mut alice = alice_online(&server).await;
    alice
        .send(message("bot@echo.localhost", None, "still there?"))
        .await;
    let received = first.recv().await;
    assert_eq!(
        body(&received, NS_COMPONENT).as_deref(),
        Some("still there?")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_cannot_speak_for_a_user() {
    let server = start().await;
    let mut alice = alice_online(&server).await;
    let mut component = RawComponent::connect(&server).await;
    component
        .send_element(&message(
            "alice@localhost",
            Some("bob@localhost/x"),
            "spoofed",
        ))
        .await;
    assert_eq!(component.stream_error().await, StreamCondition::InvalidFrom);
    assert!(
        alice
            .try_recv(std::time::Duration::from_millis(300))
            .await
            .is_none(),
        "the spoofed message was delivered"
    );
    // Nor for the server, nor without a `from`.
    for stanza in [
        "<message from='localhost' to='alice@localhost'><body>x</body></message>",
        "<message to='alice@localhost'><body>x</body></message>",
    ] {
        let mut component = RawComponent::connect(&server).await;
        component.send(stanza).await;
        let condition = component.stream_error().await;
        assert!(
            matches!(
                condition,
                StreamCondition::InvalidFrom | StreamCondition::ImproperAddressing
            ),
            "{stanza}: {condition}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_component_a_domain_is_service_unavailable() {
    let server = start().await;
    let mut alice = alice_online(&server).await;
    alice
        .send(message("bot@echo.localhost", None, "anyone?"))
        .await;
    let error = alice.recv_matching(|s| s.name() == "message").await;
    assert_eq!(
        stanza_error(&error),
        Some(StanzaCondition::ServiceUnavailable)
    );
    assert_eq!(error.attribute("from"), Some("bot@echo.localhost"));
    alice
        .send(
            Element::new("iq", ns::CLIENT)
                .with_attribute("type", "get")
                .with_attribute("id", "q-1")
                .with_attribute("to", COMPONENT)
                .with_child(Element::new("query", ns::DISCO_INFO)),
        )
        .await;
    let error = alice.recv_matching(|s| s.name() == "iq").await;
    assert_eq!(
        stanza_error(&error),
        Some(StanzaCondition::ServiceUnavailable)
    );
    // Another domain is still another server's.
    alice
        .send(message("someone@elsewhere.example", None, "far"))
        .await;
    let error = alice.recv_matching(|s| s.name() == "message").await;
    assert_eq!(
        stanza_error(&error),
        Some(StanzaCondition::RemoteServerNotFound)
    );

    // Once the component is gone again, its domain is unavailable again.
    let component = RawComponent::connect(&server).await;
    assert!(server.context().router.component(COMPONENT).is_some());
    drop(component);
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while server.context().router.component(COMPONENT).is_some() {
        assert!(tokio::time::Instant::now() < deadline, "still connected");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    alice
        .send(message("bot@echo.localhost", None, "gone?"))
        .await;
    let reply = alice.recv_matching(|s| s.name() == "message").await;
    assert_eq!(
        stanza_error(&reply),
        Some(StanzaCondition::ServiceUnavailable)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disco_items_of_the_server_list_the_component() {
    let server = start().await;
    let mut alice = alice_online(&server).await;
    for (to, expected) in [(Some("localhost"), vec![COMPONENT]), (None, vec![])] {
        let mut request = Element::new("iq", ns::CLIENT)
            .with_attribute("type", "get")
            .with_attribute("id", "items")
            .with_child(Element::new("query", ns::DISCO_ITEMS));
        if let Some(to) = to {
            request.set_attribute("to", to);
        }
        alice.send(request).await;
        let result = alice
            .recv_matching(|s| s.name() == "iq" && s.attribute("id") == Some("items"))
            .await;
        assert_eq!(result.attribute("type"), Some("result"), "{result:?}");
        let items: Vec<&str> = result
            .child("query", ns::DISCO_ITEMS)
            .unwrap()
            .children()
            .filter_map(|item| item.attribute("jid"))
            .collect();
        assert_eq!(items, expected, "disco#items to {to:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_timeout_and_stanza_limit_apply() {
    let mut config = server_config();
    config.limits.login_timeout_seconds = 1;
    config.limits.max_stanza_bytes = 4096;
    let server = TestServer::start_with(config).await;
    let mut idle = RawComponent::open(&server, COMPONENT).await;
    assert_eq!(
        idle.stream_error().await,
        StreamCondition::ConnectionTimeout
    );
    let mut component = RawComponent::connect(&server).await;
    let big = "x".repeat(5000);
    component
        .send_element(&message(
            "alice@localhost",
            Some("bot@echo.localhost"),
            &big,
        ))
        .await;
    assert_eq!(
        component.stream_error().await,
        StreamCondition::PolicyViolation
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_blocks_the_component_gets_nothing_from_it() {
    let server = start().await;
    let mut alice = alice_online(&server).await;
    alice
        .send(
            Element::new("iq", ns::CLIENT)
                .with_attribute("type", "set")
                .with_attribute("id", "block")
                .with_child(
                    Element::new("block", "urn:xmpp:blocking").with_child(
                        Element::new("item", "urn:xmpp:blocking")
                            .with_attribute("jid", "spam@echo.localhost"),
                    ),
                ),
        )
        .await;
    let result = alice
        .recv_matching(|s| s.name() == "iq" && s.attribute("id") == Some("block"))
        .await;
    assert_eq!(result.attribute("type"), Some("result"));
    let mut component = RawComponent::connect(&server).await;
    component
        .send_element(&message(
            "alice@localhost",
            Some("spam@echo.localhost"),
            "buy",
        ))
        .await;
    let error = component.recv().await;
    assert_eq!(
        stanza_error(&error),
        Some(StanzaCondition::ServiceUnavailable)
    );
    component
        .send_element(&message(
            "alice@localhost",
            Some("friend@echo.localhost"),
            "hi",
        ))
        .await;
    let received = alice.recv_matching(|s| s.name() == "message").await;
    assert_eq!(body(&received, ns::CLIENT).as_deref(), Some("hi"));
}

/// A component cannot make a carbon: the wrapper is taken out of its
/// message before a user's client sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_cannot_forge_a_carbon() {
    let server = start().await;
    let mut alice = alice_online(&server).await;
    let mut component = RawComponent::connect(&server).await;
    let mut forged = message(
        "alice@localhost",
        Some("bot@echo.localhost/robot"),
        "wrapper",
    );
    forged.push_child(
        Element::new("sent", "urn:xmpp:carbons:2").with_child(
            Element::new("forwarded", "urn:xmpp:forward:0").with_child(
                Element::new("message", "jabber:client")
                    .with_attribute("from", "alice@localhost/laptop")
                    .with_child(Element::new("body", "jabber:client").with_text("forged")),
            ),
        ),
    );
    component.send_element(&forged).await;
    let got = alice.recv_matching(|s| s.name() == "message").await;
    assert!(
        !got.has_child("sent", "urn:xmpp:carbons:2"),
        "{}",
        got.to_xml()
    );
}
