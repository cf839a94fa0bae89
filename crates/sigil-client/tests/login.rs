//! The client against a Sigil server on loopback: password and
//! certificate logins over STARTTLS and direct TLS, allow-lists, pinning,
//! messages.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use sigil_client::{Client, Error, Transport};
use sigil_sasl::client::{AllowList, ClientConfig};
use sigil_sasl::{Algorithm, StoredCredentials};
use sigil_server::config::{ListenerConfig, ListenerKind};
use sigil_server::{Config, Server};
use sigil_store::CertificateEntry;
use sigil_xml::{Element, ns};

struct Fixture {
    dir: tempfile::TempDir,
    server: Server,
    alice_certificate: sigil_x509::generate::Issued,
}

async fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new("localhost");
    config.listeners = [ListenerKind::Starttls, ListenerKind::DirectTls]
        .into_iter()
        .map(|kind| ListenerConfig {
            kind,
            address: "127.0.0.1:0".parse().unwrap(),
            client_certificates: Default::default(),
        })
        .collect();
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
        let kind = match transport {
            Transport::StartTls => ListenerKind::Starttls,
            Transport::DirectTls => ListenerKind::DirectTls,
        };
        let ca = std::fs::read(self.dir.path().join("server.crt")).unwrap();
        Client::builder(format!("{user}@localhost"))
            .address(self.server.address(kind).unwrap())
            .transport(transport)
            .trust_pem(&ca)
            .resource("test")
    }
}

fn only(name: &str) -> ClientConfig {
    ClientConfig::new().allow(AllowList::new().name(name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_mechanisms_on_both_transports() {
    let f = start().await;
    for transport in [Transport::StartTls, Transport::DirectTls] {
        for mechanism in [
            "SCRAM-SHA-1",
            "SCRAM-SHA-256",
            "SCRAM-SHA-512",
            "SCRAM-SHA-256-PLUS",
            "PLAIN",
        ] {
            let client = f
                .builder("bob", transport)
                .password("bob-secret")
                .sasl(only(mechanism))
                .connect()
                .await
                .unwrap();
            assert_eq!(client.mechanism(), mechanism, "{transport:?}");
            assert_eq!(client.jid(), "bob@localhost/test");
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
        assert_eq!(client.mechanism(), "SCRAM-SHA-512-PLUS");
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
    for transport in [Transport::StartTls, Transport::DirectTls] {
        // A password is configured too: EXTERNAL still comes first.
        let client = f
            .builder("alice", transport)
            .password("alice-secret")
            .client_certificate_pem(cert.as_bytes(), key.as_bytes())
            .connect()
            .await
            .unwrap();
        assert_eq!(client.mechanism(), "EXTERNAL");
        assert_eq!(client.jid(), "alice@localhost/test");
        client.close().await;
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
