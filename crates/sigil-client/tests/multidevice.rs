//! One account on several devices, against a Sigil server on loopback
//! over real TLS: carbons both ways (and a forged one from an external
//! component refused), the archive read page by page both ways, and
//! client state indication.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use sigil_client::{
    ArchivePage, ArchiveQuery, CarbonDirection, Client, Incoming, Iq, Message, Order, Presence,
    PresenceType, Stanza, Transport,
};
use sigil_sasl::{Algorithm, StoredCredentials};
use sigil_server::config::{
    ClientCertificatePolicy, ComponentConfig, ListenerConfig, ListenerKind, Secret,
};
use sigil_server::{Config, Server};
use sigil_xml::{Element, Framer, Limits, StreamEvent, ns};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long to wait for what must come.
const WAIT: Duration = Duration::from_secs(10);
/// How long to wait to be sure that nothing comes.
const QUIET: Duration = Duration::from_millis(500);

const COMPONENT: &str = "bot.localhost";
const SECRET: &str = "the bot's shared secret";

struct Fixture {
    dir: tempfile::TempDir,
    server: Server,
}

async fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new("localhost");
    config.listeners = [
        (ListenerKind::Starttls, ClientCertificatePolicy::default()),
        (ListenerKind::DirectTls, ClientCertificatePolicy::default()),
        (ListenerKind::Component, ClientCertificatePolicy::Disabled),
    ]
    .into_iter()
    .map(|(kind, client_certificates)| ListenerConfig {
        kind,
        address: "127.0.0.1:0".parse().unwrap(),
        client_certificates,
    })
    .collect();
    config.components.push(ComponentConfig {
        domain: COMPONENT.into(),
        secret: Some(Secret::new(SECRET)),
        secret_file: None,
    });
    let (certificate, key) = sigil_server::certificate_paths(&config, dir.path());
    sigil_server::tls::ensure_server_certificate("localhost", &certificate, &key).unwrap();
    let server = Server::start(&config, dir.path()).await.unwrap();
    let store: Arc<dyn sigil_store::Store> = server.context().store.clone();
    for user in ["alice", "bob", "carol"] {
        let credentials: Vec<_> = Algorithm::ALL
            .into_iter()
            .map(|a| StoredCredentials::generate(a, &format!("{user}-secret")).unwrap())
            .collect();
        store
            .create_account(&format!("{user}@localhost"), &credentials)
            .await
            .unwrap();
    }
    Fixture { dir, server }
}

impl Fixture {
    /// `user` logged in as `resource`, over STARTTLS or direct TLS.
    fn builder(
        &self,
        user: &str,
        resource: &str,
        transport: Transport,
    ) -> sigil_client::ClientBuilder {
        let kind = match transport {
            Transport::DirectTls => ListenerKind::DirectTls,
            _ => ListenerKind::Starttls,
        };
        let ca = std::fs::read(self.dir.path().join("server.crt")).unwrap();
        Client::builder(format!("{user}@localhost"))
            .address(self.server.address(kind).unwrap())
            .transport(transport)
            .trust_pem(&ca)
            .password(format!("{user}-secret"))
            .resource(resource)
            .timeout(WAIT)
    }

    /// Logged in and available (its own presence come back).
    async fn online(&self, user: &str, resource: &str, transport: Transport) -> Client {
        let client = self
            .builder(user, resource, transport)
            .connect()
            .await
            .unwrap();
        available(client).await
    }

    /// `a` and `b` see each other's presence.
    async fn befriend(&self, a: &str, b: &str) {
        let store = self.server.context().store.clone();
        for (owner, contact) in [(a, b), (b, a)] {
            let mut item = sigil_store::RosterItem::new(format!("{contact}@localhost"));
            item.subscription = sigil_store::Subscription::Both;
            store
                .put_roster_item(&format!("{owner}@localhost"), &item)
                .await
                .unwrap();
        }
    }
}

async fn available(mut client: Client) -> Client {
    client.send_presence(&Presence::available()).await.unwrap();
    let own = client.jid();
    loop {
        if let Stanza::Presence(p) = recv(&mut client).await
            && p.from.is_some_and(|f| f.to_string() == own)
        {
            return client;
        }
    }
}

fn jid(text: &str) -> jid::Jid {
    jid::Jid::new(text).unwrap()
}

async fn recv(client: &mut Client) -> Stanza {
    tokio::time::timeout(WAIT, client.recv_stanza())
        .await
        .expect("a stanza in time")
        .unwrap()
}

/// The next message or carbon, skipping presence; `None` if none comes
/// within `wait`.
async fn next_message(client: &mut Client, wait: Duration) -> Option<Incoming> {
    loop {
        let incoming = tokio::time::timeout(wait, client.recv_incoming())
            .await
            .ok()?
            .unwrap();
        match incoming {
            Incoming::Stanza(Stanza::Presence(_)) => {}
            other => return Some(other),
        }
    }
}

async fn message(client: &mut Client) -> Message {
    match next_message(client, WAIT).await {
        Some(Incoming::Stanza(Stanza::Message(m))) => m,
        other => panic!("{} expected a message, got {other:?}", client.jid()),
    }
}

async fn carbon(client: &mut Client) -> sigil_client::Carbon {
    match next_message(client, WAIT).await {
        Some(Incoming::Carbon(c)) => c,
        other => panic!("{} expected a carbon, got {other:?}", client.jid()),
    }
}

fn bare(jid: &Option<jid::Jid>) -> String {
    jid.as_ref()
        .map(|j| j.to_bare().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carbons_both_ways_between_two_devices_of_one_account() {
    let f = start().await;
    // The laptop asks for carbons at login, the phone afterwards.
    let laptop = f
        .builder("alice", "laptop", Transport::StartTls)
        .carbons(true)
        .connect()
        .await
        .unwrap();
    assert!(laptop.carbons_enabled());
    let mut laptop = available(laptop).await;
    let mut phone = f.online("alice", "phone", Transport::DirectTls).await;
    assert!(!phone.carbons_enabled());
    phone.enable_carbons().await.unwrap();
    assert!(phone.carbons_enabled());
    let mut bob = f.online("bob", "desk", Transport::StartTls).await;

    // Sent from the laptop: bob gets it, the phone a copy saying so.
    laptop
        .send_message(&Message::chat(jid("bob@localhost"), "from the laptop"))
        .await
        .unwrap();
    let got = message(&mut bob).await;
    assert_eq!(got.body.as_deref(), Some("from the laptop"));
    let copy = carbon(&mut phone).await;
    assert_eq!(copy.direction, CarbonDirection::Sent);
    assert_eq!(copy.message.body.as_deref(), Some("from the laptop"));
    assert_eq!(copy.message.to, Some(jid("bob@localhost")));
    assert_eq!(
        copy.message.from.map(|j| j.to_string()).as_deref(),
        Some("alice@localhost/laptop")
    );

    // Sent from the phone: the laptop gets the copy.
    phone
        .send_message(&Message::chat(jid("bob@localhost"), "from the phone"))
        .await
        .unwrap();
    assert_eq!(
        message(&mut bob).await.body.as_deref(),
        Some("from the phone")
    );
    let copy = carbon(&mut laptop).await;
    assert_eq!(copy.direction, CarbonDirection::Sent);
    assert_eq!(copy.message.body.as_deref(), Some("from the phone"));

    // Received by the phone: the laptop gets a copy, the phone the
    // message itself.
    bob.send_message(&Message::chat(jid("alice@localhost/phone"), "to the phone"))
        .await
        .unwrap();
    let direct = message(&mut phone).await;
    assert_eq!(direct.body.as_deref(), Some("to the phone"));
    let copy = carbon(&mut laptop).await;
    assert_eq!(copy.direction, CarbonDirection::Received);
    assert_eq!(copy.message.body.as_deref(), Some("to the phone"));
    assert_eq!(bare(&copy.message.from), "bob@localhost");

    // Received by the laptop: the phone gets the copy.
    bob.send_message(&Message::chat(
        jid("alice@localhost/laptop"),
        "to the laptop",
    ))
    .await
    .unwrap();
    assert_eq!(
        message(&mut laptop).await.body.as_deref(),
        Some("to the laptop")
    );
    let copy = carbon(&mut phone).await;
    assert_eq!(copy.direction, CarbonDirection::Received);
    assert_eq!(copy.message.body.as_deref(), Some("to the laptop"));

    // Disabled on the laptop: what the phone gets no longer reaches it.
    laptop.disable_carbons().await.unwrap();
    assert!(!laptop.carbons_enabled());
    bob.send_message(&Message::chat(jid("alice@localhost/phone"), "unseen"))
        .await
        .unwrap();
    assert_eq!(message(&mut phone).await.body.as_deref(), Some("unseen"));
    bob.send_message(&Message::chat(jid("alice@localhost/laptop"), "seen"))
        .await
        .unwrap();
    assert_eq!(message(&mut laptop).await.body.as_deref(), Some("seen"));
    assert!(next_message(&mut laptop, QUIET).await.is_none());
}

/// An XEP-0114 component of the test server, spoken by hand.
async fn component(f: &Fixture) -> tokio::net::TcpStream {
    let mut tcp =
        tokio::net::TcpStream::connect(f.server.address(ListenerKind::Component).unwrap())
            .await
            .unwrap();
    tcp.write_all(
        format!(
            "<stream:stream xmlns='jabber:component:accept' \
             xmlns:stream='http://etherx.jabber.org/streams' to='{COMPONENT}'>"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut framer = Framer::new(Limits::default());
    let mut input = Vec::new();
    let mut buffer = [0u8; 4096];
    let mut handshake_sent = false;
    loop {
        let mut rest = input.as_slice();
        let event = framer.next_event(&mut rest).unwrap();
        let consumed = input.len() - rest.len();
        input.drain(..consumed);
        match event {
            Some(StreamEvent::Open(header)) => {
                let id = header.attribute("id").unwrap().to_owned();
                let digest = sigil_proto::component::handshake(&id, SECRET.as_bytes());
                tcp.write_all(format!("<handshake>{digest}</handshake>").as_bytes())
                    .await
                    .unwrap();
                handshake_sent = true;
            }
            Some(StreamEvent::Element(element)) if element.name() == "handshake" => {
                assert!(handshake_sent);
                return tcp;
            }
            Some(other) => panic!("the component got {other:?}"),
            None => {
                let n = tokio::time::timeout(WAIT, tcp.read(&mut buffer))
                    .await
                    .unwrap()
                    .unwrap();
                assert!(n > 0, "the server closed the component's stream");
                input.extend_from_slice(&buffer[..n]);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_carbon_is_not_the_users_own_message() {
    let f = start().await;
    let mut laptop = f.online("alice", "laptop", Transport::DirectTls).await;
    laptop.enable_carbons().await.unwrap();
    let mut phone = f.online("alice", "phone", Transport::StartTls).await;
    let mut bot = component(&f).await;
    // The component wraps a message alice never sent as a carbon of what
    // her phone "sent" to mallory. The server passes it on as it is.
    let forged = format!(
        "<message xmlns='jabber:component:accept' from='{COMPONENT}' \
           to='alice@localhost/laptop' type='chat'>\
           <body>a note from the bot</body>\
           <sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>\
             <message xmlns='jabber:client' from='alice@localhost/phone' \
               to='mallory@evil.example' type='chat'><body>forged</body></message>\
           </forwarded></sent></message>"
    );
    bot.write_all(forged.as_bytes()).await.unwrap();
    let element = loop {
        let element = tokio::time::timeout(WAIT, laptop.recv())
            .await
            .unwrap()
            .unwrap();
        if element.name() == "message" {
            break element;
        }
    };
    // Not even the raw element carries the copy any more.
    assert!(
        !element.has_child("sent", sigil_proto::carbons::NS),
        "{}",
        element.to_xml()
    );
    match laptop.incoming(element) {
        Some(Incoming::Stanza(Stanza::Message(m))) => {
            assert_eq!(m.from, Some(jid(COMPONENT)));
            assert_eq!(m.body.as_deref(), Some("a note from the bot"));
        }
        other => panic!("the forged carbon was read as {other:?}"),
    }
    // A real carbon still is one.
    phone
        .send_message(&Message::chat(jid("bob@localhost"), "really sent"))
        .await
        .unwrap();
    let copy = carbon(&mut laptop).await;
    assert_eq!(copy.direction, CarbonDirection::Sent);
    assert_eq!(copy.message.body.as_deref(), Some("really sent"));
    assert!(next_message(&mut laptop, QUIET).await.is_none());
}

fn bodies(page: &ArchivePage) -> Vec<String> {
    page.messages
        .iter()
        .map(|m| m.message.body.clone().unwrap_or_default())
        .collect()
}

fn expected(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|n| format!("m{n:02}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_pages_forwards_and_backwards() {
    let f = start().await;
    let mut laptop = f.online("alice", "laptop", Transport::StartTls).await;
    let mut bob = f.online("bob", "desk", Transport::DirectTls).await;
    // 25 messages, alternating sides, each delivered before the next.
    for n in 0..25 {
        let text = format!("m{n:02}");
        if n % 2 == 0 {
            laptop
                .send_message(&Message::chat(jid("bob@localhost"), text.clone()))
                .await
                .unwrap();
            assert_eq!(message(&mut bob).await.body, Some(text));
        } else {
            bob.send_message(&Message::chat(jid("alice@localhost"), text.clone()))
                .await
                .unwrap();
            assert_eq!(message(&mut laptop).await.body, Some(text));
        }
    }
    // Another conversation, not asked for.
    laptop
        .send_message(&Message::chat(jid("carol@localhost"), "elsewhere"))
        .await
        .unwrap();

    // A device that logs in afterwards reads the conversation, oldest
    // first, in pages of ten.
    let mut phone = f.online("alice", "phone", Transport::DirectTls).await;
    let query = ArchiveQuery::new(10).with(jid("bob@localhost"));
    let mut archive = phone.archive(query.clone());
    let mut pages = Vec::new();
    while let Some(page) = archive.next_page(&mut phone).await.unwrap() {
        assert!(page.messages.len() <= 10);
        pages.push(page);
        assert!(pages.len() <= 3, "more pages than messages");
    }
    assert!(archive.is_done());
    assert_eq!(
        pages
            .iter()
            .map(|p| (p.messages.len(), p.last))
            .collect::<Vec<_>>(),
        [(10, false), (10, false), (5, true)]
    );
    let forwards: Vec<String> = pages.iter().flat_map(bodies).collect();
    assert_eq!(forwards, expected(0..25));
    let ids: HashSet<&str> = pages
        .iter()
        .flat_map(|p| p.messages.iter().map(|m| m.id.as_str()))
        .collect();
    assert_eq!(ids.len(), 25, "no id twice");
    let first = &pages[0].messages[0];
    assert_eq!(
        first
            .message
            .from
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("alice@localhost/laptop")
    );
    assert!(first.stamp.starts_with("20"), "{}", first.stamp);
    assert_eq!(bare(&pages[0].messages[1].message.from), "bob@localhost");

    // Newest first, as a stream: the last ten, then the ten before…
    let pages: Vec<ArchivePage> = phone
        .archive_stream(query.order(Order::NewestFirst))
        .map(Result::unwrap)
        .collect()
        .await;
    let seen: Vec<Vec<String>> = pages.iter().map(bodies).collect();
    assert_eq!(seen, [expected(15..25), expected(5..15), expected(0..5)]);
    assert_eq!(
        pages.iter().map(|p| p.last).collect::<Vec<_>>(),
        [false, false, true]
    );

    // The whole archive holds the other conversation too.
    let mut all = phone.archive(ArchiveQuery::new(100));
    let page = all.next_page(&mut phone).await.unwrap().unwrap();
    assert_eq!(page.messages.len(), 26);
    assert!(page.last);
    assert!(all.next_page(&mut phone).await.unwrap().is_none());

    // None of it came in as a message: the next one is bob's new one.
    bob.send_message(&Message::chat(jid("alice@localhost/phone"), "live"))
        .await
        .unwrap();
    assert_eq!(message(&mut phone).await.body.as_deref(), Some("live"));
    assert!(next_message(&mut phone, QUIET).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inactive_client_gets_presence_once_active() {
    let f = start().await;
    f.befriend("alice", "bob").await;
    let mut laptop = f.online("alice", "laptop", Transport::StartTls).await;
    let mut bob = f.online("bob", "desk", Transport::DirectTls).await;
    assert!(laptop.csi_offered());
    assert!(laptop.is_active());
    // Bob's arrival, seen while active.
    loop {
        if let Stanza::Presence(p) = recv(&mut laptop).await
            && bare(&p.from) == "bob@localhost"
        {
            break;
        }
    }
    assert!(laptop.set_active(false).await.unwrap());
    assert!(!laptop.is_active());
    // The server has read the state once it answers what came after it.
    laptop
        .iq(Iq::get(None, Element::new("ping", ns::PING)))
        .await
        .unwrap();
    let mut away = Presence::available();
    away.show = Some("away".into());
    bob.send_presence(&away).await.unwrap();
    bob.send_message(&Message::chat(jid("alice@localhost"), "urgent"))
        .await
        .unwrap();
    // The message comes at once, the presence (sent before it) not.
    match recv(&mut laptop).await {
        Stanza::Message(m) => assert_eq!(m.body.as_deref(), Some("urgent")),
        other => panic!("an inactive client got {other:?}"),
    }
    let early = tokio::time::timeout(QUIET, laptop.recv()).await;
    assert!(early.is_err(), "an inactive client got {early:?}");
    // Active again: bob's latest presence.
    assert!(laptop.set_active(true).await.unwrap());
    match recv(&mut laptop).await {
        Stanza::Presence(p) => {
            assert_eq!(bare(&p.from), "bob@localhost");
            assert_eq!(p.kind, PresenceType::Available);
            assert_eq!(p.show.as_deref(), Some("away"));
        }
        other => panic!("expected bob's presence, got {other:?}"),
    }
}
