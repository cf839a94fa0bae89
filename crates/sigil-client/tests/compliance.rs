//! XEP-0479 (XMPP Compliance Suites 2023), server side: a server with
//! every listener (STARTTLS, direct TLS, HTTPS, components) is asked what
//! it announces (stream features, disco#info of the server and of an
//! account, disco#items) and each specification the suites list for a
//! server is driven over the wire. The outcome is `COMPLIANCE.md`, which
//! this test writes with `SIGIL_WRITE_COMPLIANCE=1` and otherwise checks:
//! the file in the tree must say what the server does.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use sigil_client::{Client, Iq, Transport};
use sigil_sasl::{Algorithm, StoredCredentials};
use sigil_server::{Config, Server};
use sigil_xml::{Element, ns};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "a component secret of some length";
const COMPONENT: &str = "muc.localhost";

/// What the XEP requires of a server at a level.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Yes,
    /// Required, and may be met by an external component.
    Component,
    No,
    NotApplicable,
}

impl Need {
    fn text(self) -> &'static str {
        match self {
            Self::Yes => "required",
            Self::Component => "required (a component may provide it)",
            Self::No => "—",
            Self::NotApplicable => "n/a",
        }
    }

    fn required(self) -> bool {
        matches!(self, Self::Yes | Self::Component)
    }
}

/// One row of a suite's table.
struct Row {
    feature: &'static str,
    providers: &'static str,
    server: Need,
    advanced: Need,
    /// How Sigil does: `Ok(evidence)` when it was driven and answered as
    /// the specification says, `Err(why)` when it is not there.
    outcome: Result<String, String>,
}

struct Suite {
    name: &'static str,
    rows: Vec<Row>,
}

/// Everything the server was seen to announce.
struct Seen {
    /// The stream features after authentication (raw text).
    features: String,
    server_features: Vec<String>,
    server_identities: Vec<String>,
    account_features: Vec<String>,
    items: Vec<String>,
}

impl Seen {
    fn server_has(&self, var: &str) -> bool {
        self.server_features.iter().any(|f| f == var)
    }

    fn account_has(&self, var: &str) -> bool {
        self.account_features.iter().any(|f| f == var)
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    server: Server,
}

async fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"domain = "localhost"
[[listener]]
kind = "starttls"
address = "127.0.0.1:0"
[[listener]]
kind = "direct-tls"
address = "127.0.0.1:0"
[[listener]]
kind = "https"
address = "127.0.0.1:0"
[[listener]]
kind = "component"
address = "127.0.0.1:0"
[[component]]
domain = "{COMPONENT}"
secret = "{SECRET}"
"#
    );
    let config = Config::parse(&text).unwrap();
    let (certificate, key) = sigil_server::certificate_paths(&config, dir.path());
    sigil_server::tls::ensure_server_certificate("localhost", &certificate, &key).unwrap();
    let server = Server::start(&config, dir.path()).await.unwrap();
    let store: Arc<dyn sigil_store::Store> = server.context().store.clone();
    for (user, password) in [("alice", "alice-secret"), ("bob", "bob-secret")] {
        let credentials: Vec<_> = Algorithm::ALL
            .into_iter()
            .map(|a| StoredCredentials::generate(a, password).unwrap())
            .collect();
        store
            .create_account(&format!("{user}@localhost"), &credentials)
            .await
            .unwrap();
    }
    Fixture { dir, server }
}

impl Fixture {
    fn address(&self, kind: sigil_server::config::ListenerKind) -> std::net::SocketAddr {
        self.server.address(kind).unwrap()
    }

    async fn client(&self, user: &str, resource: &str, transport: Transport) -> Client {
        use sigil_server::config::ListenerKind;
        let https = self.address(ListenerKind::Https).port();
        let address = match transport {
            Transport::StartTls => self.address(ListenerKind::Starttls),
            Transport::DirectTls => self.address(ListenerKind::DirectTls),
            Transport::WebSocket | Transport::Bosh => self.address(ListenerKind::Https),
        };
        let ca = std::fs::read(self.dir.path().join("server.crt")).unwrap();
        let builder = Client::builder(format!("{user}@localhost"))
            .address(address)
            .transport(transport)
            .trust_pem(&ca)
            .resource(resource)
            .password(format!("{user}-secret"));
        let builder = match transport {
            Transport::WebSocket => builder.url(format!("wss://localhost:{https}/xmpp-websocket")),
            Transport::Bosh => builder.url(format!("https://localhost:{https}/http-bind")),
            _ => builder,
        };
        builder.connect().await.unwrap()
    }

    fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(self.dir.path().join("server.crt")).unwrap();
        use rustls_pki_types::pem::PemObject as _;
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
            roots.add(cert.unwrap()).unwrap();
        }
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    async fn tls(
        &self,
        kind: sigil_server::config::ListenerKind,
    ) -> tokio_rustls::client::TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.address(kind)).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        tokio_rustls::TlsConnector::from(self.tls_config())
            .connect(name, tcp)
            .await
            .unwrap()
    }
}

/// Reads until `marker` was seen (or fails after a while).
async fn until<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, marker: &str, seen: &mut String) {
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !seen.contains(marker) {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {marker} in: {seen}"))
            .unwrap();
        assert!(n > 0, "closed before {marker}: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

/// The stream features after a PLAIN login over direct TLS; then binds,
/// says it is inactive and active (XEP-0352) and checks a ping is still
/// answered.
async fn features_and_csi(f: &Fixture) -> (String, Result<String, String>) {
    let mut tls = f.tls(sigil_server::config::ListenerKind::DirectTls).await;
    let mut seen = String::new();
    // \0alice\0alice-secret
    tls.write_all(
        format!(
            "{HEADER}<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>\
             AGFsaWNlAGFsaWNlLXNlY3JldA==</auth>"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    until(&mut tls, "<success", &mut seen).await;
    tls.write_all(HEADER.as_bytes()).await.unwrap();
    seen.clear();
    until(&mut tls, "</stream:features>", &mut seen).await;
    let start = seen.find("<stream:features>").unwrap();
    let features = seen[start..].to_owned();
    if !features.contains("urn:xmpp:csi:0") {
        return (features, Err("not offered".into()));
    }
    tls.write_all(
        b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>\
          <inactive xmlns='urn:xmpp:csi:0'/><active xmlns='urn:xmpp:csi:0'/>\
          <iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>",
    )
    .await
    .unwrap();
    seen.clear();
    until(&mut tls, "id=\"p\"", &mut seen).await;
    let outcome = if seen.contains("type=\"result\" id=\"p\"")
        || seen.contains("id=\"p\" type=\"result\"")
    {
        Ok("offered after login; `<inactive/>` and `<active/>` taken, the stream goes on".into())
    } else {
        Err(format!("the ping after CSI was not answered: {seen}"))
    };
    (features, outcome)
}

/// XEP-0114: a component authenticates with its secret.
async fn component(f: &Fixture) -> Result<String, String> {
    use sha1::Digest as _;
    let mut tcp = TcpStream::connect(f.address(sigil_server::config::ListenerKind::Component))
        .await
        .map_err(|e| e.to_string())?;
    tcp.write_all(
        format!(
            "<stream:stream xmlns='jabber:component:accept' \
             xmlns:stream='http://etherx.jabber.org/streams' to='{COMPONENT}'>"
        )
        .as_bytes(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut seen = String::new();
    until(&mut tcp, "id=", &mut seen).await;
    until(&mut tcp, ">", &mut seen).await;
    let at = seen
        .find("id='")
        .map(|i| i + 4)
        .or_else(|| seen.find("id=\"").map(|i| i + 4));
    let at = at.ok_or("no stream id")?;
    let id = &seen[at..at + seen[at..].find(['\'', '"']).ok_or("no stream id")?];
    let digest = sha1::Sha1::digest(format!("{id}{SECRET}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    tcp.write_all(format!("<handshake>{hex}</handshake>").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    seen.clear();
    until(&mut tcp, "handshake", &mut seen).await;
    match seen.contains("<handshake/>") {
        true => Ok(format!(
            "`{COMPONENT}` accepted with its secret (handshake)"
        )),
        false => Err(format!("handshake refused: {seen}")),
    }
}

/// XEP-0156: host-meta names the WebSocket and BOSH endpoints.
async fn host_meta(f: &Fixture) -> Result<String, String> {
    let mut tls = f.tls(sigil_server::config::ListenerKind::Https).await;
    tls.write_all(
        b"GET /.well-known/host-meta HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    let _ = tls.read_to_end(&mut body).await;
    let body = String::from_utf8_lossy(&body);
    let websocket = body.contains("urn:xmpp:alt-connections:websocket");
    let bosh = body.contains("urn:xmpp:alt-connections:xbosh");
    match (websocket, bosh) {
        (true, true) => Ok("`/.well-known/host-meta` names both endpoints".into()),
        _ => Err(format!("host-meta lacks an endpoint: {body}")),
    }
}

async fn query(client: &mut Client, to: Option<&str>, payload: Element) -> Result<Iq, String> {
    let to = to.map(|to| jid::Jid::new(to).unwrap());
    client
        .iq(Iq::get(to, payload))
        .await
        .map_err(|e| e.to_string())
}

async fn set(client: &mut Client, payload: Element) -> Result<Iq, String> {
    client
        .iq(Iq::set(None, payload))
        .await
        .map_err(|e| e.to_string())
}

fn vars(iq: &Iq, name: &str, attribute: &str) -> Vec<String> {
    iq.payload
        .iter()
        .flat_map(|query| query.children())
        .filter(|c| c.name() == name)
        .filter_map(|c| c.attribute(attribute).map(str::to_owned))
        .collect()
}

async fn look(f: &Fixture, client: &mut Client) -> Seen {
    let (features, _) = features_and_csi(f).await;
    let info = query(
        client,
        Some("localhost"),
        Element::new("query", ns::DISCO_INFO),
    )
    .await
    .unwrap();
    let identities = info
        .payload
        .iter()
        .flat_map(|q| q.children())
        .filter(|c| c.name() == "identity")
        .map(|c| {
            format!(
                "{}/{}",
                c.attribute("category").unwrap_or_default(),
                c.attribute("type").unwrap_or_default()
            )
        })
        .collect();
    let account = query(
        client,
        Some("alice@localhost"),
        Element::new("query", ns::DISCO_INFO),
    )
    .await
    .unwrap();
    let items = query(
        client,
        Some("localhost"),
        Element::new("query", ns::DISCO_ITEMS),
    )
    .await
    .unwrap();
    Seen {
        features,
        server_features: vars(&info, "feature", "var"),
        server_identities: identities,
        account_features: vars(&account, "feature", "var"),
        items: vars(&items, "item", "jid"),
    }
}

fn missing(what: &str) -> Result<String, String> {
    Err(what.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compliance_suites_2023() {
    let f = start().await;
    let mut laptop = f.client("alice", "laptop", Transport::StartTls).await;
    let mut phone = f.client("alice", "phone", Transport::DirectTls).await;
    let seen = look(&f, &mut laptop).await;
    let (_, csi) = features_and_csi(&f).await;

    // Core.
    let core = match query(
        &mut laptop,
        Some("localhost"),
        Element::new("ping", "urn:xmpp:ping"),
    )
    .await
    {
        Ok(_) => Ok(format!(
            "STARTTLS, SASL {}, resource bound, an IQ answered",
            laptop.mechanism()
        )),
        Err(e) => Err(e),
    };
    let tls = match laptop.tls_version().as_str() {
        "TLSv1.3" | "TLSv1_3" => Ok("TLS 1.3 negotiated".to_owned()),
        other => Err(format!("negotiated {other}")),
    };
    let direct = Ok(format!(
        "a client logged in over direct TLS ({})",
        phone.tls_version()
    ));
    let disco = match seen.server_identities.iter().any(|i| i == "server/im") {
        true => Ok(format!(
            "disco#info: identity server/im, {} features",
            seen.server_features.len()
        )),
        false => Err("no server/im identity".into()),
    };
    let caps = match seen.features.contains("http://jabber.org/protocol/caps") {
        true => Ok("`<c/>` (sha-1) among the stream features, matching disco#info".into()),
        false => Err("no capabilities in the stream features".into()),
    };
    let components = component(&f).await.and_then(|evidence| {
        match seen.items.iter().any(|item| item == COMPONENT) {
            true => Ok(format!("{evidence}; listed in disco#items")),
            false => Err("the component is not listed in disco#items".into()),
        }
    });
    let pep = match seen.account_has("http://jabber.org/protocol/pubsub#publish") {
        true => Ok("announced".into()),
        false => missing("not built yet"),
    };

    // Web.
    let mut web = Vec::new();
    for transport in [Transport::WebSocket, Transport::Bosh] {
        let mut client = f.client("bob", "web", transport).await;
        let answered = query(
            &mut client,
            Some("localhost"),
            Element::new("ping", "urn:xmpp:ping"),
        )
        .await
        .is_ok();
        web.push(answered);
        client.close().await;
    }
    let web = match web.as_slice() {
        [true, true] => Ok("logins and IQs over WebSocket (RFC 7395) and BOSH (XEP-0206)".into()),
        _ => Err("a web transport failed".into()),
    };
    let discovery = host_meta(&f).await;

    // IM.
    let roster = query(&mut laptop, None, Element::new("query", ns::ROSTER))
        .await
        .map(|iq| {
            let ver = iq
                .payload
                .as_ref()
                .and_then(|q| q.attribute("ver"))
                .is_some();
            format!("roster get answered (versioned: {ver}); presence and subscriptions tested in the server's suite")
        });
    let mut card = Element::new("vCard", "vcard-temp");
    card.push_child(Element::new("FN", "vcard-temp").with_text("Alice"));
    let vcard = match set(&mut laptop, card).await {
        Ok(_) => match query(&mut phone, None, Element::new("vCard", "vcard-temp")).await {
            Ok(iq)
                if iq
                    .payload
                    .as_ref()
                    .is_some_and(|c| c.child("FN", "vcard-temp").is_some()) =>
            {
                Ok("a vCard set from one device is read from another".into())
            }
            other => Err(format!("vCard not read back: {other:?}")),
        },
        Err(e) => Err(e),
    };
    let avatars = match seen.account_has("urn:xmpp:pep-vcard-conversion:0") {
        true => Ok("XEP-0398 announced".into()),
        false => {
            Err("XEP-0153 hashes are put in presence; XEP-0398 needs PEP, not built yet".into())
        }
    };
    let carbons = carbons(&mut laptop, &mut phone, &f).await;
    let blocking = match seen.server_has("urn:xmpp:blocking") {
        true => query(
            &mut laptop,
            None,
            Element::new("blocklist", "urn:xmpp:blocking"),
        )
        .await
        .map(|_| "announced; the blocklist is answered".into()),
        false => Err("not announced".into()),
    };
    let muc = match seen.items.iter().any(|item| item != COMPONENT) {
        true => Ok("a service is listed".into()),
        false => {
            missing("no built-in MUC yet; an external MUC component can be attached (XEP-0114)")
        }
    };
    let private = {
        let mut stored = Element::new("query", "jabber:iq:private");
        stored.push_child(Element::new("note", "sigil:compliance").with_text("kept"));
        match set(&mut laptop, stored).await {
            Ok(_) => {
                let mut ask = Element::new("query", "jabber:iq:private");
                ask.push_child(Element::new("note", "sigil:compliance"));
                match query(&mut phone, None, ask).await {
                    Ok(iq) if format!("{:?}", iq.payload).contains("kept") => {
                        Ok("stored from one device, read from another".into())
                    }
                    other => Err(format!("not read back: {other:?}")),
                }
            }
            Err(e) => Err(e),
        }
    };
    let sm = {
        let ca = std::fs::read(f.dir.path().join("server.crt")).unwrap();
        let mut client = Client::builder("bob@localhost")
            .address(f.address(sigil_server::config::ListenerKind::DirectTls))
            .transport(Transport::DirectTls)
            .trust_pem(&ca)
            .password("bob-secret")
            .stream_management(true)
            .connect()
            .await
            .unwrap();
        // <enabled/> comes after the bind: an IQ answered behind it.
        let _ = query(
            &mut client,
            Some("localhost"),
            Element::new("ping", "urn:xmpp:ping"),
        )
        .await;
        let enabled = client.stream_management() && client.resumption_id().is_some();
        client.close().await;
        match enabled {
            true => Ok("enabled with resumption".into()),
            false => Err("not enabled".into()),
        }
    };
    let mam = mam(&mut phone, &seen).await;
    let upload = match seen.server_has("urn:xmpp:http:upload:0") {
        true => Ok("announced".into()),
        false => {
            missing("no built-in upload service yet; an external one can be attached (XEP-0114)")
        }
    };
    let push = match seen.account_has("urn:xmpp:push:0") {
        true => Ok("announced".into()),
        false => missing("not built yet"),
    };
    let not_yet = |what: &str| missing(what);

    use Need::{Component, No, NotApplicable as Na, Yes};
    let row = |feature, providers, server, advanced, outcome| Row {
        feature,
        providers,
        server,
        advanced,
        outcome,
    };
    let suites = vec![
        Suite {
            name: "Core",
            rows: vec![
                row("Core features", "RFC 6120", Yes, Yes, core),
                row("TLS", "RFC 7590", Yes, Yes, tls),
                row("Direct TLS", "XEP-0368", No, Yes, direct),
                row("Feature discovery", "XEP-0030", Yes, Yes, disco),
                row("Feature broadcasts", "XEP-0115", No, Yes, caps),
                row("Server extensibility", "XEP-0114", Yes, Yes, components),
                row("Event publishing", "XEP-0163", No, Yes, pep),
            ],
        },
        Suite {
            name: "Web",
            rows: vec![
                row(
                    "Web connection mechanisms",
                    "RFC 7395, XEP-0206",
                    Component,
                    Component,
                    web,
                ),
                row(
                    "Connection mechanism discovery",
                    "XEP-0156",
                    No,
                    Na,
                    discovery,
                ),
            ],
        },
        Suite {
            name: "IM",
            rows: vec![
                row("Core features", "RFC 6121", Yes, Yes, roster),
                row(
                    "User avatar compatibility",
                    "XEP-0398, XEP-0153",
                    No,
                    Yes,
                    avatars,
                ),
                row("vcard-temp", "XEP-0054", Yes, Yes, vcard),
                row(
                    "Outbound message synchronization",
                    "XEP-0280",
                    Yes,
                    Yes,
                    carbons,
                ),
                row("User blocking", "XEP-0191", No, Yes, blocking),
                row(
                    "Group chat",
                    "XEP-0045, XEP-0249",
                    Component,
                    Component,
                    muc,
                ),
                row(
                    "Advanced group chat",
                    "XEP-0048, XEP-0313 (rooms), XEP-0402, XEP-0410",
                    No,
                    Component,
                    not_yet("needs group chat"),
                ),
                row(
                    "Private data via PubSub",
                    "XEP-0223",
                    No,
                    Component,
                    not_yet("needs PEP"),
                ),
                row("Private XML storage", "XEP-0049", No, Component, private),
                row("Stream management", "XEP-0198", No, Yes, sm.clone()),
                row("History storage / retrieval", "XEP-0313", No, Yes, mam),
                row("File upload", "XEP-0363", Component, Component, upload),
            ],
        },
        Suite {
            name: "Mobile",
            rows: vec![
                row("Stream management", "XEP-0198", Yes, Yes, sm),
                row("Client state indication", "XEP-0352", Yes, Yes, csi),
                row(
                    "Third-party push notifications",
                    "XEP-0357",
                    No,
                    Component,
                    push,
                ),
            ],
        },
    ];
    laptop.close().await;
    phone.close().await;

    let text = render(&suites);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../COMPLIANCE.md");
    if std::env::var("SIGIL_WRITE_COMPLIANCE").as_deref() == Ok("1") {
        std::fs::write(&path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "COMPLIANCE.md does not say what the server does: run \
         `SIGIL_WRITE_COMPLIANCE=1 cargo nextest run -p sigil-client --test compliance` \
         and commit it. What the server does:\n{text}"
    );
    // The levels the issue promises.
    let met = |suite: &str, advanced: bool| level(&suites, suite, advanced).is_empty();
    assert!(
        met("Core", false),
        "Core server: {:?}",
        level(&suites, "Core", false)
    );
    assert!(met("Web", false));
    assert!(met("Mobile", false));
    assert_eq!(
        level(&suites, "IM", false),
        ["XEP-0045, XEP-0249", "XEP-0363"],
        "IM server: only group chat and upload missing"
    );
}

/// Carbons: the phone gets a copy of what the laptop sends.
async fn carbons(laptop: &mut Client, phone: &mut Client, f: &Fixture) -> Result<String, String> {
    for client in [&mut *laptop, &mut *phone] {
        set(client, Element::new("enable", "urn:xmpp:carbons:2")).await?;
    }
    let bob = f.client("bob", "desk", Transport::StartTls).await;
    let message = Element::new("message", ns::CLIENT)
        .with_attribute("to", "bob@localhost/desk")
        .with_attribute("type", "chat")
        .with_child(Element::new("body", ns::CLIENT).with_text("carbon check"));
    laptop.send(&message).await.map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let result = loop {
        let next = tokio::time::timeout_at(deadline, phone.recv()).await;
        let Ok(Ok(stanza)) = next else {
            break Err("no carbon arrived".to_owned());
        };
        if stanza.has_child("sent", "urn:xmpp:carbons:2")
            && stanza.attribute("from") == Some("alice@localhost")
        {
            break Ok("a message sent from one device is copied to the other".into());
        }
    };
    bob.close().await;
    result
}

/// MAM: announced on the account, and the archive pages.
async fn mam(phone: &mut Client, seen: &Seen) -> Result<String, String> {
    if !seen.account_has("urn:xmpp:mam:2") || !seen.account_has("urn:xmpp:mam:2#extended") {
        return Err("urn:xmpp:mam:2 not announced on the account".into());
    }
    // The message sent for the carbons check is committed to the archive
    // in the background: asked again for a while.
    let mut results = 0;
    let mut complete = false;
    for _ in 0..50 {
        let mut archive = phone.archive(sigil_client::ArchiveQuery::new(10));
        let page = archive
            .next_page(phone)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no page")?;
        results = page.messages.len();
        complete = page.last;
        if results > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    match results > 0 {
        true => Ok(format!(
            "urn:xmpp:mam:2 and #extended on the account; a device finds what another sent, paged with RSM (complete: {})",
            complete
        )),
        false => Err("no archived messages came".to_owned()),
    }
}

/// The rows a suite's level requires and Sigil does not meet (their
/// providers).
fn level(suites: &[Suite], name: &str, advanced: bool) -> Vec<&'static str> {
    suites
        .iter()
        .filter(|s| s.name == name)
        .flat_map(|s| &s.rows)
        .filter(|r| {
            let need = if advanced { r.advanced } else { r.server };
            need.required() && r.outcome.is_err()
        })
        .map(|r| r.providers)
        .collect()
}

fn render(suites: &[Suite]) -> String {
    let mut out = String::new();
    out.push_str(
        "# Compliance: XEP-0479, XMPP Compliance Suites 2023 (server)\n\n\
         Written by `crates/sigil-client/tests/compliance.rs`, which starts a\n\
         server with every listener, reads what it announces (stream features,\n\
         disco#info of the server and of an account, disco#items) and drives\n\
         each specification over the wire. The test fails when this file no\n\
         longer says what the server does; `SIGIL_WRITE_COMPLIANCE=1 cargo\n\
         nextest run -p sigil-client --test compliance` writes it again.\n\n\
         ## Levels\n\n\
         | Suite | Server | Advanced server |\n|---|---|---|\n",
    );
    for suite in suites {
        let say = |advanced| {
            let missing = level(suites, suite.name, advanced);
            if missing.is_empty() {
                "met".to_owned()
            } else {
                format!("not met: {}", missing.join("; "))
            }
        };
        writeln!(out, "| {} | {} | {} |", suite.name, say(false), say(true)).unwrap();
    }
    for suite in suites {
        write!(
            out,
            "\n## {} suite\n\n| Feature | Providers | Server | Advanced server | Sigil |\n|---|---|---|---|---|\n",
            suite.name
        )
        .unwrap();
        for row in &suite.rows {
            let status = match &row.outcome {
                Ok(evidence) => format!("yes: {evidence}"),
                Err(why) => format!("**no**: {why}"),
            };
            writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                row.feature,
                row.providers,
                row.server.text(),
                row.advanced.text(),
                status
            )
            .unwrap();
        }
    }
    out
}
