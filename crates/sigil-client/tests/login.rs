//! The client against a Sigil server on loopback: password, certificate
//! and anonymous logins over STARTTLS, direct TLS, WebSocket and BOSH;
//! custom mechanisms and allow-lists; pinning; messages, IQs, XEP-0257
//! management and reconnection.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use std::time::Duration;

use sigil_client::{
    Backoff, Client, Error, Iq, IqType, Message, MessageType, Presence, PresenceType, Stanza,
    Transport, saslcert,
};
use sigil_sasl::client::{AllowList, ClientConfig};
use sigil_sasl::{Algorithm, StoredCredentials};
use sigil_server::config::{ListenerConfig, ListenerKind};
use sigil_server::{Config, Server};
use sigil_store::CertificateEntry;
use sigil_xml::{Element, ns};

mod support;
use support::{QUICK, Relay, next_body, until_closed};

struct Fixture {
    dir: tempfile::TempDir,
    server: Server,
    alice_certificate: sigil_x509::generate::Issued,
}

fn config(addresses: [std::net::SocketAddr; 3]) -> Config {
    let mut config = Config::new("localhost");
    config.sasl.mechanisms.push("ANONYMOUS".into());
    config.listeners = [
        ListenerKind::Starttls,
        ListenerKind::DirectTls,
        ListenerKind::Https,
    ]
    .into_iter()
    .zip(addresses)
    .map(|(kind, address)| ListenerConfig {
        kind,
        address,
        client_certificates: Default::default(),
    })
    .collect();
    config
}

async fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = config(["127.0.0.1:0".parse().unwrap(); 3]);
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
    let alice_certificate = sigil_x509::generate::client_certificate(
        &[sigil_x509::Jid::new("alice@localhost").unwrap()],
        &sigil_x509::generate::Options::new(sigil_x509::OffsetDateTime::now_utc()),
        None,
    )
    .unwrap();
    let info = sigil_x509::CertificateInfo::from_der(&alice_certificate.certificate_der).unwrap();
    store
        .add_certificate(&CertificateEntry {
            owner: "alice@localhost".into(),
            name: "laptop".into(),
            fingerprint: info.sha256,
            der: alice_certificate.certificate_der.clone(),
            no_cert_management: false,
            disabled: false,
            added_at: 0,
        })
        .await
        .unwrap();
    Fixture {
        dir,
        server,
        alice_certificate,
    }
}

impl Fixture {
    fn builder(&self, user: &str, transport: Transport) -> sigil_client::ClientBuilder {
        builder(self.dir.path(), self.addresses(), user, transport)
    }

    /// Where the server listens: STARTTLS, direct TLS, HTTPS.
    fn addresses(&self) -> [std::net::SocketAddr; 3] {
        [
            ListenerKind::Starttls,
            ListenerKind::DirectTls,
            ListenerKind::Https,
        ]
        .map(|kind| self.server.address(kind).unwrap())
    }
}

/// A client for `user` (empty: anonymous) of the server listening on
/// `addresses` (STARTTLS, direct TLS, HTTPS) with its certificate in `dir`.
fn builder(
    dir: &std::path::Path,
    addresses: [std::net::SocketAddr; 3],
    user: &str,
    transport: Transport,
) -> sigil_client::ClientBuilder {
    builder_for(dir, addresses, user, transport, Some("test"))
}

/// As [`builder`], with this resource (`None`: the server's choice).
fn builder_for(
    dir: &std::path::Path,
    addresses: [std::net::SocketAddr; 3],
    user: &str,
    transport: Transport,
    resource: Option<&str>,
) -> sigil_client::ClientBuilder {
    let jid = if user.is_empty() {
        "localhost".to_owned()
    } else {
        format!("{user}@localhost")
    };
    let address = match transport {
        Transport::StartTls => addresses[0],
        Transport::DirectTls => addresses[1],
        Transport::WebSocket | Transport::Bosh => addresses[2],
    };
    let ca = std::fs::read(dir.join("server.crt")).unwrap();
    let builder = Client::builder(jid)
        .address(address)
        .transport(transport)
        .trust_pem(&ca);
    let builder = match resource {
        Some(resource) => builder.resource(resource),
        None => builder,
    };
    match transport {
        Transport::WebSocket => {
            builder.url(format!("wss://localhost:{}/xmpp-websocket", address.port()))
        }
        Transport::Bosh => builder.url(format!("https://localhost:{}/http-bind", address.port())),
        _ => builder,
    }
}

const ALL: [Transport; 4] = [
    Transport::StartTls,
    Transport::DirectTls,
    Transport::WebSocket,
    Transport::Bosh,
];

fn only(name: &str) -> ClientConfig {
    ClientConfig::new().allow(AllowList::new().name(name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_mechanisms_on_every_transport() {
    let f = start().await;
    for transport in ALL {
        for mechanism in [
            "SCRAM-SHA-1",
            "SCRAM-SHA-256",
            "SCRAM-SHA-512",
            "SCRAM-SHA-1-PLUS",
            "SCRAM-SHA-256-PLUS",
            "SCRAM-SHA-512-PLUS",
            "PLAIN",
        ] {
            if mechanism.ends_with("-PLUS") && transport == Transport::Bosh {
                // Several HTTPS connections carry a BOSH session: there is
                // no one TLS channel to bind to.
                continue;
            }
            let client = f
                .builder("bob", transport)
                .password("bob-secret")
                .sasl(only(mechanism))
                .connect()
                .await
                .unwrap();
            assert_eq!(client.mechanism(), mechanism, "{transport:?}");
            assert_eq!(client.jid(), "bob@localhost/test");
            assert_eq!(client.transport(), transport);
            assert_eq!(client.tls_version(), "TLSv1_3");
            client.close().await;
        }
        // Without an allow-list the strongest wins: channel binding.
        let client = f
            .builder("bob", transport)
            .password("bob-secret")
            .connect()
            .await
            .unwrap();
        let best = if transport == Transport::Bosh {
            "SCRAM-SHA-512"
        } else {
            "SCRAM-SHA-512-PLUS"
        };
        assert_eq!(client.mechanism(), best, "{transport:?}");
        client.close().await;
    }
    let wrong = f
        .builder("bob", Transport::StartTls)
        .password("nope")
        .connect()
        .await;
    assert!(matches!(wrong, Err(Error::Stream(_))), "{wrong:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_logs_in_with_external_first() {
    let f = start().await;
    let cert = f.alice_certificate.certificate_pem();
    let key = f.alice_certificate.key_pem();
    for transport in ALL {
        // A password is configured too: EXTERNAL still comes first.
        let client = f
            .builder("alice", transport)
            .password("alice-secret")
            .client_certificate_pem(cert.as_bytes(), key.as_bytes())
            .connect()
            .await
            .unwrap();
        assert_eq!(client.mechanism(), "EXTERNAL", "{transport:?}");
        assert_eq!(client.jid(), "alice@localhost/test");
        client.close().await;
    }
    // The same certificate from a .p12 file, as made for browsers.
    let p12 = sigil_x509::pkcs12::bundle(&f.alice_certificate, &[], "alice", "p12-secret").unwrap();
    let client = f
        .builder("alice", Transport::DirectTls)
        .client_certificate_p12(&p12, "p12-secret")
        .connect()
        .await
        .unwrap();
    assert_eq!(client.mechanism(), "EXTERNAL");
    client.close().await;
    let wrong = f
        .builder("alice", Transport::DirectTls)
        .client_certificate_p12(&p12, "not-it")
        .connect()
        .await;
    assert!(matches!(wrong, Err(Error::Config(_))), "{wrong:?}");
}

/// TLS settings built once serve many connections, and they decide: a
/// builder given settings with a certificate logs in with EXTERNAL even
/// without one of its own, and settings without one leave it to SCRAM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_settings_built_once_serve_many_connections() {
    let f = start().await;
    let cert = f.alice_certificate.certificate_pem();
    let key = f.alice_certificate.key_pem();
    let with_certificate = f
        .builder("alice", Transport::DirectTls)
        .client_certificate_pem(cert.as_bytes(), key.as_bytes())
        .build_tls()
        .unwrap();
    let without = f
        .builder("alice", Transport::DirectTls)
        .build_tls()
        .unwrap();
    for transport in ALL {
        let client = f
            .builder("alice", transport)
            .password("alice-secret")
            .tls(with_certificate.clone())
            .connect()
            .await
            .unwrap();
        assert_eq!(client.mechanism(), "EXTERNAL", "{transport:?}");
        client.close().await;
        let client = f
            .builder("alice", transport)
            .password("alice-secret")
            .client_certificate_pem(cert.as_bytes(), key.as_bytes())
            .tls(without.clone())
            .connect()
            .await
            .unwrap();
        assert!(
            client.mechanism().starts_with("SCRAM-SHA-512"),
            "{transport:?}: {}",
            client.mechanism()
        );
        client.close().await;
    }
    // Building settings reports what is wrong with the parts.
    let broken = f
        .builder("alice", Transport::DirectTls)
        .client_certificate_pem(b"not PEM", key.as_bytes())
        .build_tls();
    assert!(matches!(broken, Err(Error::Config(_))), "{broken:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_logins_on_every_transport() {
    let f = start().await;
    for transport in ALL {
        let client = f.builder("", transport).connect().await.unwrap();
        assert_eq!(client.mechanism(), "ANONYMOUS", "{transport:?}");
        let jid = client.full_jid().clone();
        assert_eq!(jid.domain().as_str(), "localhost");
        assert!(jid.node().is_some(), "{jid}");
        client.close().await;
    }
}

/// A mechanism of the application's own: PLAIN with a higher priority
/// than every SCRAM, like a Strophe.js `SASLMechanism` subclass.
#[derive(Default)]
struct EagerPlain;

impl sigil_sasl::client::ClientMechanism for EagerPlain {
    fn name(&self) -> &str {
        "PLAIN"
    }
    fn client_first(&self) -> bool {
        true
    }
    fn priority(&self) -> u16 {
        1000
    }
    fn test(&self, context: &sigil_sasl::client::ClientContext) -> bool {
        context.password().is_some()
    }
    fn initial_response(
        &mut self,
        context: &sigil_sasl::client::ClientContext,
    ) -> Result<Option<Vec<u8>>, sigil_sasl::client::ClientError> {
        let message = format!(
            "\0{}\0{}",
            context.authcid().unwrap_or_default(),
            context.password().unwrap_or_default()
        );
        Ok(Some(message.into_bytes()))
    }
    fn challenge(
        &mut self,
        _: &sigil_sasl::client::ClientContext,
        _: &[u8],
    ) -> Result<Vec<u8>, sigil_sasl::client::ClientError> {
        Err(sigil_sasl::client::ClientError::InvalidServerMessage(
            "PLAIN takes no challenge",
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_mechanism_and_an_allow_list_change_the_choice() {
    let f = start().await;
    for transport in ALL {
        let custom = f
            .builder("bob", transport)
            .password("bob-secret")
            .sasl(ClientConfig::new().register::<EagerPlain>())
            .connect()
            .await
            .unwrap();
        assert_eq!(custom.mechanism(), "PLAIN", "{transport:?}");
        custom.close().await;
        let listed = f
            .builder("bob", transport)
            .password("bob-secret")
            .sasl(
                ClientConfig::new()
                    .register::<EagerPlain>()
                    .allow(AllowList::new().name("SCRAM-SHA-1")),
            )
            .connect()
            .await
            .unwrap();
        assert_eq!(listed.mechanism(), "SCRAM-SHA-1", "{transport:?}");
        listed.close().await;
        let nothing = f
            .builder("bob", transport)
            .password("bob-secret")
            .sasl(ClientConfig::new().allow(AllowList::new().name("X-NOT-OFFERED")))
            .connect()
            .await;
        assert!(matches!(nothing, Err(Error::Stream(_))), "{nothing:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinning_the_server_certificate() {
    let f = start().await;
    let pem = std::fs::read_to_string(f.dir.path().join("server.crt")).unwrap();
    let der = sigil_x509::pem_certificates(pem.as_bytes())
        .unwrap()
        .remove(0);
    let info = sigil_x509::CertificateInfo::from_der(&der).unwrap();
    let address = f.server.address(ListenerKind::DirectTls).unwrap();
    let pinned = Client::builder("bob@localhost")
        .address(address)
        .transport(Transport::DirectTls)
        .pin_sha256(info.sha256)
        .password("bob-secret")
        .connect()
        .await
        .unwrap();
    pinned.close().await;
    let wrong = Client::builder("bob@localhost")
        .address(address)
        .transport(Transport::DirectTls)
        .pin_sha256([7; 32])
        .password("bob-secret")
        .connect()
        .await;
    assert!(matches!(wrong, Err(Error::Tls(_))), "{wrong:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_between_two_clients() {
    let f = start().await;
    let mut alice = f
        .builder("alice", Transport::StartTls)
        .password("alice-secret")
        .connect()
        .await
        .unwrap();
    let mut bob = f
        .builder("bob", Transport::DirectTls)
        .password("bob-secret")
        .connect()
        .await
        .unwrap();
    bob.send(&Element::new("presence", ns::CLIENT))
        .await
        .unwrap();
    let _own = bob.recv().await.unwrap();
    alice
        .send(
            &Element::new("message", ns::CLIENT)
                .with_attribute("to", "bob@localhost")
                .with_attribute("type", "chat")
                .with_child(Element::new("body", ns::CLIENT).with_text("hi bob")),
        )
        .await
        .unwrap();
    let got = bob.recv().await.unwrap();
    assert_eq!(got.child("body", ns::CLIENT).unwrap().text(), "hi bob");
    assert_eq!(got.attribute("from"), Some("alice@localhost/test"));
    alice.close().await;
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_stanzas_presence_and_iq_requests() {
    let f = start().await;
    for transport in ALL {
        let mut alice = f
            .builder("alice", transport)
            .password("alice-secret")
            .timeout(Duration::from_secs(5))
            .connect()
            .await
            .unwrap();
        let mut bob = f
            .builder("bob", Transport::StartTls)
            .password("bob-secret")
            .connect()
            .await
            .unwrap();
        bob.send_presence(&Presence::available()).await.unwrap();
        let own = bob.recv_stanza().await.unwrap();
        assert!(
            matches!(&own, Stanza::Presence(p) if p.kind == PresenceType::Available),
            "{own:?}"
        );
        // An IQ to our own server: the roster.
        let roster = alice
            .iq(Iq::get(None, Element::new("query", "jabber:iq:roster")))
            .await
            .unwrap();
        assert_eq!(roster.kind, IqType::Result);
        assert!(roster.payload.unwrap().is("query", "jabber:iq:roster"));
        // A ping to the server's domain.
        let pong = alice
            .iq(Iq::get(
                Some("localhost".parse().unwrap()),
                Element::new("ping", "urn:xmpp:ping"),
            ))
            .await
            .unwrap();
        assert_eq!(pong.kind, IqType::Result);
        // An error answer is an error.
        let missing = alice
            .iq(Iq::get(
                Some("nobody@localhost".parse().unwrap()),
                Element::new("query", "jabber:iq:version"),
            ))
            .await;
        assert!(matches!(missing, Err(Error::Iq(_))), "{missing:?}");
        // A full JID that never answers: the request times out, and what
        // arrived meanwhile is kept.
        let bob_jid: jid::Jid = bob.jid().parse().unwrap();
        let silent = alice
            .iq_with_timeout(
                Iq::get(
                    Some(bob_jid.clone()),
                    Element::new("query", "urn:example:silent"),
                ),
                Duration::from_millis(500),
            )
            .await;
        assert!(matches!(silent, Err(Error::Timeout)), "{silent:?}");
        let asked = bob.recv_stanza().await.unwrap();
        let Stanza::Iq(asked) = asked else {
            panic!("{asked:?}")
        };
        assert_eq!(asked.kind, IqType::Get);
        // Bob answers an IQ from alice.
        let question = Iq {
            id: "q1".into(),
            ..Iq::get(
                Some(bob_jid.clone()),
                Element::new("query", "urn:example:echo"),
            )
        };
        alice.send(&question.to_element()).await.unwrap();
        let Stanza::Iq(request) = bob.recv_stanza().await.unwrap() else {
            panic!("not an IQ")
        };
        assert_eq!(request.id, "q1");
        bob.send(&Iq::result_for(&request, None).to_element())
            .await
            .unwrap();
        let answer = alice.recv_stanza().await.unwrap();
        assert!(
            matches!(&answer, Stanza::Iq(iq) if iq.id == "q1" && iq.kind == IqType::Result),
            "{answer:?}"
        );
        // A typed message.
        alice
            .send_message(&Message::chat(bob_jid.to_bare().into(), "typed"))
            .await
            .unwrap();
        let got = bob.recv_stanza().await.unwrap();
        let Stanza::Message(got) = got else {
            panic!("{got:?}")
        };
        assert_eq!(got.body.as_deref(), Some("typed"));
        assert_eq!(got.kind, MessageType::Chat);
        assert_eq!(got.from.unwrap().to_string(), alice.jid());
        alice.close().await;
        bob.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_managed_over_xep_0257() {
    let f = start().await;
    let mut bob = f
        .builder("bob", Transport::DirectTls)
        .password("bob-secret")
        .connect()
        .await
        .unwrap();
    assert!(saslcert::list(&mut bob).await.unwrap().is_empty());
    let phone = sigil_x509::generate::client_certificate(
        &[sigil_x509::Jid::new("bob@localhost").unwrap()],
        &sigil_x509::generate::Options::new(sigil_x509::OffsetDateTime::now_utc()),
        None,
    )
    .unwrap();
    saslcert::append(&mut bob, "phone", &phone.certificate_der, false)
        .await
        .unwrap();
    let again = saslcert::append(&mut bob, "phone", &phone.certificate_der, false).await;
    assert!(matches!(again, Err(Error::Iq(_))), "{again:?}");
    // The new device logs in with it, over BOSH.
    let mut device = f
        .builder("bob", Transport::Bosh)
        .client_certificate_pem(
            phone.certificate_pem().as_bytes(),
            phone.key_pem().as_bytes(),
        )
        .resource("phone")
        .connect()
        .await
        .unwrap();
    assert_eq!(device.mechanism(), "EXTERNAL");
    let items = saslcert::list(&mut bob).await.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].name, "phone");
    assert_eq!(items[0].der, phone.certificate_der);
    assert_eq!(items[0].resources, ["phone"]);
    assert!(!items[0].disabled);
    saslcert::disable(&mut bob, "phone").await.unwrap();
    assert!(saslcert::list(&mut bob).await.unwrap()[0].disabled);
    // Revoking ends the device's session.
    saslcert::revoke(&mut bob, "phone").await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), device.recv())
        .await
        .expect("the revoked session ends");
    assert!(ended.is_err(), "{ended:?}");
    assert!(device.is_closed());
    assert!(saslcert::list(&mut bob).await.unwrap().is_empty());
    let refused = f
        .builder("bob", Transport::StartTls)
        .client_certificate_pem(
            phone.certificate_pem().as_bytes(),
            phone.key_pem().as_bytes(),
        )
        .connect()
        .await;
    assert!(matches!(refused, Err(Error::Stream(_))), "{refused:?}");
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_after_the_server_restarts() {
    let f = start().await;
    let addresses = f.addresses();
    let Fixture { dir, server, .. } = f;
    let bob = |transport| builder(dir.path(), addresses, "bob", transport).password("bob-secret");
    let mut clients = Vec::new();
    for transport in ALL {
        clients.push(bob(transport).connect().await.unwrap());
    }
    server.shutdown().await;
    for client in &mut clients {
        let ended = tokio::time::timeout(Duration::from_secs(10), client.recv()).await;
        assert!(matches!(ended, Ok(Err(_))), "{ended:?}");
    }
    // Nobody listens: the attempts are bounded and the error is transient.
    let backoff = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(100),
        attempts: 2,
    };
    let failed = clients[0].reconnect(backoff).await;
    assert!(
        failed.as_ref().is_err_and(Error::is_transient),
        "{failed:?}"
    );
    // The server comes back on the same ports while the clients retry.
    let restart = {
        let base = dir.path().to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Server::start(&config(addresses), &base).await.unwrap()
        })
    };
    let backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(1),
        attempts: 20,
    };
    for client in &mut clients {
        client.reconnect(backoff).await.unwrap();
        assert!(!client.is_closed());
        assert_eq!(client.jid(), "bob@localhost/test");
        let roster = client
            .iq(Iq::get(None, Element::new("query", "jabber:iq:roster")))
            .await;
        assert!(roster.is_ok(), "{:?}: {roster:?}", client.transport());
    }
    let server = restart.await.unwrap();
    for client in clients {
        client.close().await;
    }
    server.shutdown().await;
}

/// Several addresses (the nodes of a cluster): an address nobody
/// listens on is passed over, on the first connection and on a
/// reconnection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_several_addresses_the_first_that_answers_is_used() {
    let f = start().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let live = f.addresses()[0];
    let mut bob = f
        .builder("bob", Transport::StartTls)
        .addresses([closed, live])
        .password("bob-secret")
        .connect()
        .await
        .unwrap();
    assert_eq!(bob.jid(), "bob@localhost/test");
    bob.reconnect(QUICK).await.unwrap();
    assert!(!bob.is_closed());
    bob.close().await;
    // Nobody listens at any: the error names the last address tried.
    let nowhere = f
        .builder("bob", Transport::StartTls)
        .addresses([closed])
        .password("bob-secret")
        .connect()
        .await;
    match nowhere {
        Err(error) => {
            assert!(error.is_transient(), "{error:?}");
            assert!(error.to_string().contains(&closed.to_string()), "{error}");
        }
        Ok(_) => panic!("connected to a closed port"),
    }
    f.server.shutdown().await;
}

/// dnsmasq on a loopback port, answering SRV queries for `localhost`;
/// killed when dropped.
struct Dnsmasq {
    child: std::process::Child,
    address: std::net::SocketAddr,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dnsmasq(records: &[String]) -> Option<Dnsmasq> {
    use std::io::BufRead;
    if std::env::var("SIGIL_SKIP_INTEROP").as_deref() == Ok("1") {
        eprintln!("skipped: SIGIL_SKIP_INTEROP=1");
        return None;
    }
    let program = ["/usr/sbin/dnsmasq", "dnsmasq"]
        .into_iter()
        .find(|p| !p.starts_with('/') || std::path::Path::new(p).exists())
        .unwrap();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = std::process::Command::new(program);
    command
        .args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--log-facility=-",
            "--pid-file=",
            &format!("--port={port}"),
        ])
        .args(records.iter().map(|r| format!("--srv-host={r}")))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot run dnsmasq ({e}): the test command installs dnsmasq-base \
             (or set SIGIL_SKIP_INTEROP=1)"
        )
    });
    // Ready once it says it started.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("dnsmasq starts");
        if line.contains("started") {
            break;
        }
    }
    Some(Dnsmasq {
        child,
        address: ([127, 0, 0, 1], port).into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_srv_records_lead_to_the_server() {
    let f = start().await;
    let starttls = f.server.address(ListenerKind::Starttls).unwrap().port();
    let direct = f.server.address(ListenerKind::DirectTls).unwrap().port();
    let Some(dns) = dnsmasq(&[
        // A dead target first at a better priority, then the server.
        "_xmpp-client._tcp.localhost,localhost,1,0,10".to_owned(),
        format!("_xmpp-client._tcp.localhost,localhost,{starttls},10,10"),
        format!("_xmpps-client._tcp.localhost,localhost,{direct},0,0"),
    ]) else {
        return;
    };
    let ca = std::fs::read(f.dir.path().join("server.crt")).unwrap();
    for transport in [Transport::StartTls, Transport::DirectTls] {
        // No address: SRV says where. The certificate is checked against
        // the domain, whatever host the record names.
        let client = Client::builder("bob@localhost")
            .transport(transport)
            .dns_server(dns.address)
            .trust_pem(&ca)
            .password("bob-secret")
            .timeout(Duration::from_secs(10))
            .connect()
            .await
            .unwrap();
        assert_eq!(client.transport(), transport);
        assert!(client.jid().starts_with("bob@localhost/"));
        client.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_resumes_its_session() {
    let f = start().await;
    let relay = Relay::start(f.server.address(ListenerKind::DirectTls).unwrap()).await;
    let mut alice = f
        .builder("alice", Transport::DirectTls)
        .password("alice-secret")
        .stream_management(true)
        .address(relay.address)
        .connect()
        .await
        .unwrap();
    let mut bob = f
        .builder("bob", Transport::DirectTls)
        .password("bob-secret")
        .connect()
        .await
        .unwrap();
    bob.send_presence(&Presence::available()).await.unwrap();
    alice.send_presence(&Presence::available()).await.unwrap();
    // Its own presence comes back, after <enabled/>.
    let own = alice.recv_stanza().await.unwrap();
    assert!(matches!(own, Stanza::Presence(_)), "{own:?}");
    assert!(alice.resumption_id().is_some());
    for body in ["a", "b"] {
        alice
            .send_message(&Message::chat(jid("bob@localhost"), body))
            .await
            .unwrap();
    }
    for body in ["a", "b"] {
        assert_eq!(next_body(&mut bob).await, body);
    }
    // Handled by the server, not acknowledged to Alice yet.
    assert_eq!(alice.unacknowledged(), 3);
    let bound = alice.jid();

    relay.cut();
    until_closed(&mut alice).await;
    // The session waits, still available: a message to the bare JID
    // queues for it.
    bob.send_message(&Message::chat(jid("alice@localhost"), "meanwhile"))
        .await
        .unwrap();
    alice.reconnect(QUICK).await.unwrap();
    assert!(alice.resumed());
    assert_eq!(alice.jid(), bound);
    // The server said it handled all three: none goes again.
    assert_eq!(alice.unacknowledged(), 0);
    assert_eq!(next_body(&mut alice).await, "meanwhile");
    // And it goes on.
    alice
        .send_message(&Message::chat(jid("bob@localhost"), "c"))
        .await
        .unwrap();
    alice
        .wait_acknowledged(Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(next_body(&mut bob).await, "c");
    alice.close().await;
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_server_restart_only_what_was_not_handled_is_sent_again() {
    let f = start().await;
    let addresses = f.addresses();
    let Fixture { dir, server, .. } = f;
    let store = server.context().store.clone();
    let mut alice = builder(dir.path(), addresses, "alice", Transport::DirectTls)
        .password("alice-secret")
        .stream_management(true)
        .connect()
        .await
        .unwrap();
    // Bob is offline: what the server handled is on disk, countable.
    for body in ["a", "b", "c"] {
        alice
            .send_message(&Message::chat(jid("bob@localhost"), body))
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.offline_count("bob@localhost").await.unwrap() < 3 {
        assert!(std::time::Instant::now() < deadline, "not stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(alice.unacknowledged(), 3);
    drop(store);
    server.shutdown().await;
    until_closed(&mut alice).await;
    let server = Server::start(&config(addresses), dir.path()).await.unwrap();
    alice.reconnect(QUICK).await.unwrap();
    assert!(!alice.resumed());
    // The server's saved count says all three were handled.
    assert_eq!(alice.unacknowledged(), 0);
    alice
        .send_message(&Message::chat(jid("bob@localhost"), "d"))
        .await
        .unwrap();
    alice
        .wait_acknowledged(Duration::from_secs(10))
        .await
        .unwrap();
    let store = server.context().store.clone();
    assert_eq!(store.offline_count("bob@localhost").await.unwrap(), 4);
    drop(store);
    alice.close().await;
    server.shutdown().await;
}

fn jid(text: &str) -> jid::Jid {
    jid::Jid::new(text).unwrap()
}

/// A revocation is final, on every transport: a CA-issued certificate
/// that the account registered and then revoked never logs in again,
/// though its CA is trusted, nor can it be registered again; and one that
/// the CA's revocation list names (`[auth] crls`) never logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_certificates_log_in_on_no_transport() {
    use sigil_x509::generate::{Ca, Options, client_certificate};
    let f = start().await;
    let now = sigil_x509::OffsetDateTime::now_utc();
    let options = Options::new(now);
    let ca = Ca::new("Test CA", &options).unwrap();
    let trusted = f.dir.path().join("trusted-cas");
    std::fs::create_dir_all(&trusted).unwrap();
    std::fs::write(trusted.join("test.pem"), ca.issued().certificate_pem()).unwrap();
    let alice = [sigil_x509::Jid::new("alice@localhost").unwrap()];
    let registered = client_certificate(&alice, &options, Some(&ca)).unwrap();
    let listed = client_certificate(&alice, &options, Some(&ca)).unwrap();
    let login = |issued: &sigil_x509::generate::Issued, transport| {
        let cert = issued.certificate_pem();
        let key = issued.key_pem();
        let builder = f
            .builder("alice", transport)
            .client_certificate_pem(cert.as_bytes(), key.as_bytes());
        async move { builder.connect().await }
    };
    for transport in ALL {
        for issued in [&registered, &listed] {
            let client = login(issued, transport).await.unwrap();
            assert_eq!(client.mechanism(), "EXTERNAL", "{transport:?}");
            client.close().await;
        }
    }

    // Alice registers the CA's certificate from her laptop, then revokes it.
    let mut laptop = login(&f.alice_certificate, Transport::DirectTls)
        .await
        .unwrap();
    saslcert::append(&mut laptop, "ca-phone", &registered.certificate_der, false)
        .await
        .unwrap();
    saslcert::revoke(&mut laptop, "ca-phone").await.unwrap();
    // The CA lists the other one.
    let crls = f.dir.path().join("crls");
    std::fs::create_dir_all(&crls).unwrap();
    let list = ca
        .revocation_list(&[listed.certificate_der.as_slice()], now, 7)
        .unwrap();
    std::fs::write(crls.join("test.crl"), list).unwrap();

    for transport in ALL {
        for issued in [&registered, &listed] {
            let refused = login(issued, transport).await;
            assert!(
                matches!(
                    refused,
                    Err(Error::Stream(sigil_proto::client::ClientError::Sasl(_)))
                ),
                "{transport:?}: {refused:?}"
            );
        }
    }
    let again = saslcert::append(&mut laptop, "ca-phone", &registered.certificate_der, false).await;
    let Err(Error::Iq(error)) = again else {
        panic!("{again:?}")
    };
    assert_eq!(
        error.condition,
        sigil_proto::error::StanzaCondition::NotAllowed
    );
    // Deleting the account and making it again does not lift the revocation.
    let store = f.server.context().store.clone();
    assert!(store.delete_account("alice@localhost").await.unwrap());
    store.create_account("alice@localhost", &[]).await.unwrap();
    let refused = login(&registered, Transport::StartTls).await;
    assert!(refused.is_err(), "{refused:?}");
    laptop.close().await;
}

/// The EXTERNAL decisions give the same results by SASL 1, by SASL2 with
/// an exact resource, and by SASL2 with Bind 2, on every transport; and
/// the client says which path it took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_decides_alike_over_sasl_1_and_sasl2_on_every_transport() {
    use sigil_proto::client::{ClientError as StreamError, LoginPath};
    use sigil_sasl::Failure;
    use sigil_x509::generate::{Issued, Options, client_certificate};
    let f = start().await;
    let store = f.server.context().store.clone();
    let now = sigil_x509::OffsetDateTime::now_utc();
    let make = |jid: &str, start: sigil_x509::OffsetDateTime, days: u32| {
        let mut options = Options::new(start);
        options.days = days;
        client_certificate(&[sigil_x509::Jid::new(jid).unwrap()], &options, None).unwrap()
    };
    let register = |owner: &'static str, name: &'static str, issued: &Issued| {
        let store = store.clone();
        let der = issued.certificate_der.clone();
        async move {
            let info = sigil_x509::CertificateInfo::from_der(&der).unwrap();
            store
                .add_certificate(&CertificateEntry {
                    owner: owner.into(),
                    name: name.into(),
                    fingerprint: info.sha256,
                    der,
                    no_cert_management: false,
                    disabled: false,
                    added_at: 0,
                })
                .await
                .unwrap();
        }
    };
    let unregistered = make("alice@localhost", now, 30);
    let disabled = make("alice@localhost", now, 30);
    register("alice@localhost", "old-phone", &disabled).await;
    store
        .disable_certificate("alice@localhost", "old-phone")
        .await
        .unwrap();
    let revoked = make("alice@localhost", now, 30);
    register("alice@localhost", "stolen", &revoked).await;
    store
        .revoke_certificate("alice@localhost", "stolen", now.unix_timestamp())
        .await
        .unwrap();
    let expired = make("alice@localhost", now - Duration::from_secs(10 * 86_400), 1);
    register("alice@localhost", "expired", &expired).await;
    let bobs = make("bob@localhost", now, 30);
    register("bob@localhost", "bob", &bobs).await;
    store.create_account("carol@localhost", &[]).await.unwrap();
    let carols = make("carol@localhost", now, 30);
    register("carol@localhost", "carol", &carols).await;
    store.set_disabled("carol@localhost", true).await.unwrap();

    let cases: [(&str, &str, &Issued, Option<Failure>); 7] = [
        ("registered", "alice", &f.alice_certificate, None),
        (
            "unregistered",
            "alice",
            &unregistered,
            Some(Failure::NotAuthorized),
        ),
        ("disabled", "alice", &disabled, Some(Failure::NotAuthorized)),
        ("revoked", "alice", &revoked, Some(Failure::NotAuthorized)),
        (
            "expired",
            "alice",
            &expired,
            Some(Failure::CredentialsExpired),
        ),
        (
            "another account's",
            "alice",
            &bobs,
            Some(Failure::InvalidAuthzid),
        ),
        (
            "disabled account",
            "carol",
            &carols,
            Some(Failure::AccountDisabled),
        ),
    ];
    for transport in ALL {
        for (sasl2, resource, path) in [
            (false, Some("test"), LoginPath::Sasl1),
            (true, Some("test"), LoginPath::Sasl2),
            (true, None, LoginPath::Sasl2Bind2),
        ] {
            for (case, user, issued, expect) in &cases {
                let builder = builder_for(f.dir.path(), f.addresses(), user, transport, resource)
                    .sasl2(sasl2)
                    .sasl(only("EXTERNAL"))
                    .client_certificate_pem(
                        issued.certificate_pem().as_bytes(),
                        issued.key_pem().as_bytes(),
                    );
                let result = builder.connect().await;
                let label = format!("{case}, {transport:?}, {path}");
                match (expect, result) {
                    (None, Ok(client)) => {
                        assert_eq!(client.login_path(), path, "{label}");
                        assert_eq!(client.mechanism(), "EXTERNAL", "{label}");
                        let jid = client.jid();
                        match resource {
                            Some(resource) => {
                                assert_eq!(jid, format!("alice@localhost/{resource}"), "{label}")
                            }
                            None => {
                                assert!(jid.starts_with("alice@localhost/Sigil~"), "{label}: {jid}")
                            }
                        }
                        client.close().await;
                    }
                    (
                        Some(expected),
                        Err(Error::Stream(StreamError::Sasl(
                            sigil_sasl::client::ClientError::Failed { failure, .. },
                        ))),
                    ) => assert_eq!(failure.as_ref(), Some(expected), "{label}"),
                    (expected, got) => panic!(
                        "{label}: expected {expected:?}, got {:?}",
                        got.map(|c| c.jid())
                    ),
                }
            }
        }
    }
}

/// FAST (XEP-0484) through the library on every transport: a password
/// login asks for a token (bound to the TLS exporter where the connection
/// has it), a reconnection uses it, the token alone logs in, and a token
/// the server refuses is dropped for the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_tokens_log_in_again_on_every_transport() {
    use sigil_client::{FastToken, LoginPath};
    let f = start().await;
    for transport in ALL {
        let agent = sigil_proto::sasl2::new_uuid().unwrap();
        let make = || {
            builder_for(f.dir.path(), f.addresses(), "bob", transport, None)
                .user_agent(&agent, Some("bob's phone"))
        };
        let mut client = make()
            .password("bob-secret")
            .fast(true)
            .connect()
            .await
            .unwrap();
        assert_eq!(client.login_path(), LoginPath::Sasl2Bind2, "{transport:?}");
        assert!(client.mechanism().starts_with("SCRAM-"), "{transport:?}");
        let token = client.fast_token().expect("a token");
        let expected = match transport {
            // BOSH spreads a session over several connections: no binding.
            Transport::Bosh => "HT-SHA-256-NONE",
            _ => "HT-SHA-256-EXPR",
        };
        assert_eq!(token.mechanism, expected, "{transport:?}");
        let jid = client.jid();

        // A reconnection logs in with the token, to the same resource.
        client.reconnect(Backoff::default()).await.unwrap();
        assert_eq!(client.mechanism(), expected, "{transport:?}");
        assert_eq!(client.jid(), jid, "{transport:?}");
        client.close().await;

        // The token alone, in a new run.
        let alone = make().fast_token(token.clone()).connect().await.unwrap();
        assert_eq!(alone.mechanism(), expected, "{transport:?}");
        alone.close().await;

        // A token the server does not know: dropped, the password used.
        let wrong = FastToken {
            token: "x".repeat(96),
            ..token.clone()
        };
        let fallback = make()
            .password("bob-secret")
            .fast_token(wrong)
            .connect()
            .await
            .unwrap();
        assert!(fallback.mechanism().starts_with("SCRAM-"), "{transport:?}");
        assert!(fallback.fast_token().is_none(), "{transport:?}");
        fallback.close().await;
        // Without SASL2, no token is asked for or used.
        let sasl1 = make()
            .password("bob-secret")
            .sasl2(false)
            .fast(true)
            .fast_token(token)
            .connect()
            .await
            .unwrap();
        assert_eq!(sasl1.login_path(), LoginPath::Sasl1, "{transport:?}");
        assert!(sasl1.mechanism().starts_with("SCRAM-"), "{transport:?}");
        sasl1.close().await;
    }
}
