//! A new device joins by invitation against a Sigil server on loopback,
//! over real TLS and a real SQLite store: from nothing to a logged-in
//! device, with no password ever stored; and every way a join is
//! refused.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sigil_client::{Client, Error, JoinOptions, JoinRequest, Transport, join, saslcert};
use sigil_proto::client::ClientError;
use sigil_proto::error::StanzaCondition;
use sigil_sasl::client::{AllowList, ClientConfig};
use sigil_server::config::{ListenerConfig, ListenerKind};
use sigil_server::{Config, Server};
use sigil_store::{Invite, InviteKind, Store, invite_token_hash};
use sigil_xml::{Element, Framer, StreamEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Fixture {
    dir: tempfile::TempDir,
    server: Server,
}

async fn start() -> Fixture {
    start_with(|_, _| {}).await
}

/// [`start`], with `configure` changing the configuration first (the
/// directory is the server's).
async fn start_with(configure: impl FnOnce(&mut Config, &std::path::Path)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new("localhost");
    config.listeners = [
        ListenerKind::Starttls,
        ListenerKind::DirectTls,
        ListenerKind::Https,
    ]
    .into_iter()
    .map(|kind| ListenerConfig {
        kind,
        address: "127.0.0.1:0".parse().unwrap(),
        client_certificates: Default::default(),
    })
    .collect();
    // An administrator's name that no account has taken yet.
    config.admin.jids = vec!["root@localhost".into()];
    configure(&mut config, dir.path());
    let (certificate, key) = sigil_server::certificate_paths(&config, dir.path());
    sigil_server::tls::ensure_server_certificate("localhost", &certificate, &key).unwrap();
    let server = Server::start(&config, dir.path()).await.unwrap();
    // Alice exists, with a password and her laptop's certificate.
    let credentials =
        [
            sigil_sasl::StoredCredentials::generate(sigil_sasl::Algorithm::Sha256, "alice-secret")
                .unwrap(),
        ];
    let store = server.context().store.clone();
    store
        .create_account("alice@localhost", &credentials)
        .await
        .unwrap();
    store
        .create_account("mallory@localhost", &[])
        .await
        .unwrap();
    Fixture { dir, server }
}

impl Fixture {
    fn store(&self) -> Arc<dyn Store> {
        self.server.context().store.clone()
    }

    /// How to reach and trust the test server, for [`join`].
    fn reach(
        &self,
        transport: Transport,
    ) -> impl Fn(sigil_client::ClientBuilder) -> sigil_client::ClientBuilder + use<> {
        let kind = match transport {
            Transport::DirectTls => ListenerKind::DirectTls,
            Transport::WebSocket | Transport::Bosh => ListenerKind::Https,
            _ => ListenerKind::Starttls,
        };
        let address = self.server.address(kind).unwrap();
        let url = match transport {
            Transport::WebSocket => {
                Some(format!("wss://localhost:{}/xmpp-websocket", address.port()))
            }
            Transport::Bosh => Some(format!("https://localhost:{}/http-bind", address.port())),
            _ => None,
        };
        let ca = self.server_certificate();
        move |builder| {
            let builder = builder
                .address(address)
                .transport(transport)
                .trust_pem(&ca)
                .resource("test")
                .timeout(Duration::from_secs(10));
            match &url {
                Some(url) => builder.url(url.clone()),
                None => builder,
            }
        }
    }

    fn server_certificate(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("server.crt")).unwrap()
    }

    /// Makes an invitation of `kind` whose token is `token`, expiring
    /// `lifetime` seconds from now (negative: expired already).
    async fn invite(&self, token: &str, kind: InviteKind, lifetime: i64) -> String {
        let now = now();
        self.store()
            .create_invite(
                &Invite {
                    token_hash: invite_token_hash(token),
                    kind: kind.clone(),
                    device: None,
                    creator: None,
                    created_at: now - 7200,
                    expires_at: now + lifetime,
                },
                100,
                now,
            )
            .await
            .unwrap();
        match kind {
            InviteKind::Account { jid: None } => format!("xmpp:localhost?register;preauth={token}"),
            InviteKind::Account { jid: Some(jid) } | InviteKind::Device { account: jid } => {
                format!("xmpp:{jid}?register;preauth={token}")
            }
        }
    }

    async fn still_invited(&self, token: &str) -> bool {
        self.store()
            .invite(&invite_token_hash(token))
            .await
            .unwrap()
            .is_some()
    }
}

fn now() -> i64 {
    sigil_x509::OffsetDateTime::now_utc().unix_timestamp()
}

fn free() -> InviteKind {
    InviteKind::Account { jid: None }
}

fn options(device: &str, username: Option<&str>) -> JoinOptions {
    JoinOptions {
        username: username.map(str::to_owned),
        ..JoinOptions::new(device)
    }
}

/// The stanza error a join was refused with: token or registration.
fn refusal(result: Result<sigil_client::Joined, Error>) -> (bool, StanzaCondition, String) {
    match result {
        Err(Error::Stream(ClientError::TokenRefused(error))) => {
            (true, error.condition, error.text.unwrap_or_default())
        }
        Err(Error::Stream(ClientError::RegistrationRefused(error))) => {
            (false, error.condition, error.text.unwrap_or_default())
        }
        other => panic!("not refused by the server: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_account_with_a_free_name_joins_without_a_password() {
    let f = start().await;
    for (n, transport) in [
        Transport::StartTls,
        Transport::DirectTls,
        Transport::WebSocket,
        Transport::Bosh,
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("carol{n}");
        let token = format!("free-{n}");
        let uri = f.invite(&token, free(), 3600).await;
        let joined = join(&uri, options("phone", Some(&name)), f.reach(transport))
            .await
            .unwrap();
        let account = format!("{name}@localhost");
        assert_eq!(joined.account.as_str(), account);
        assert_eq!(joined.device, "phone");
        assert_eq!(joined.client.jid(), format!("{account}/test"));
        assert_eq!(joined.client.mechanism(), "EXTERNAL");
        // No password: the account has no credentials at all.
        let stored = f.store().account(&account).await.unwrap().unwrap();
        assert!(stored.credentials.is_empty(), "{transport:?}");
        // The certificate it made is the one registered, under its name.
        let certificates = f.store().certificates(&account).await.unwrap();
        assert_eq!(certificates.len(), 1);
        assert_eq!(certificates[0].name, "phone");
        let der = sigil_x509::pem_certificates(joined.certificate_pem.as_bytes()).unwrap();
        assert_eq!(certificates[0].der, der[0]);
        let info = sigil_x509::CertificateInfo::from_der(&der[0]).unwrap();
        assert_eq!(info.identities.len(), 1);
        assert_eq!(info.identities[0].as_str(), account);
        assert!(info.client_auth.permits_client_auth());
        // The token is used up.
        assert!(!f.still_invited(&token).await);
        joined.client.close().await;
        // The credentials it returned log in again, with EXTERNAL.
        let again = f.reach(transport)(Client::builder(&account))
            .client_certificate_pem(joined.certificate_pem.as_bytes(), joined.key_pem.as_bytes())
            .connect()
            .await
            .unwrap();
        assert_eq!(again.mechanism(), "EXTERNAL");
        again.close().await;
        // A used token is unknown.
        let (token_refused, condition, _) =
            refusal(join(&uri, options("tablet", Some("zed")), f.reach(transport)).await);
        assert!(token_refused);
        assert_eq!(condition, StanzaCondition::ItemNotFound);
        assert!(f.store().account("zed@localhost").await.unwrap().is_none());
    }
    // A name taken is a conflict, and the token stays good.
    let uri = f.invite("taken", free(), 3600).await;
    let (token_refused, condition, text) = refusal(
        join(
            &uri,
            options("phone", Some("alice")),
            f.reach(Transport::StartTls),
        )
        .await,
    );
    assert!(!token_refused);
    assert_eq!(condition, StanzaCondition::Conflict, "{text}");
    assert!(f.still_invited("taken").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_naming_the_account_takes_no_other_name() {
    let f = start().await;
    let uri = f
        .invite(
            "fixed",
            InviteKind::Account {
                jid: Some("dave@localhost".into()),
            },
            3600,
        )
        .await;
    let (token_refused, condition, text) = refusal(
        join(
            &uri,
            options("phone", Some("eve")),
            f.reach(Transport::StartTls),
        )
        .await,
    );
    assert!(!token_refused);
    assert_eq!(condition, StanzaCondition::NotAcceptable);
    assert!(text.contains("dave@localhost"), "{text}");
    assert!(f.store().account("eve@localhost").await.unwrap().is_none());
    // Its own name, given or not.
    let joined = join(&uri, options("phone", None), f.reach(Transport::StartTls))
        .await
        .unwrap();
    assert_eq!(joined.account.as_str(), "dave@localhost");
    let stored = f.store().account("dave@localhost").await.unwrap().unwrap();
    assert!(stored.credentials.is_empty());
    joined.client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_joins_an_existing_account_and_is_listed_by_name() {
    let f = start().await;
    let uri = f
        .invite(
            "alice-phone",
            InviteKind::Device {
                account: "alice@localhost".into(),
            },
            3600,
        )
        .await;
    let mut joined = join(&uri, options("phone", None), f.reach(Transport::DirectTls))
        .await
        .unwrap();
    assert_eq!(joined.client.jid(), "alice@localhost/test");
    assert_eq!(joined.client.mechanism(), "EXTERNAL");
    // Alice keeps her password; the phone is one more device (XEP-0257).
    let stored = f.store().account("alice@localhost").await.unwrap().unwrap();
    assert!(!stored.credentials.is_empty());
    let items = saslcert::list(&mut joined.client).await.unwrap();
    let phone = items.iter().find(|item| item.name == "phone").unwrap();
    let der = sigil_x509::pem_certificates(joined.certificate_pem.as_bytes()).unwrap();
    assert_eq!(phone.der, der[0]);
    assert!(!phone.no_cert_management);
    joined.client.close().await;
    assert!(!f.still_invited("alice-phone").await);
    // A second device, that may not manage certificates.
    let uri = f
        .invite(
            "alice-tablet",
            InviteKind::Device {
                account: "alice@localhost".into(),
            },
            3600,
        )
        .await;
    let mut restricted = options("tablet", None);
    restricted.no_cert_management = true;
    let mut tablet = join(&uri, restricted, f.reach(Transport::StartTls))
        .await
        .unwrap();
    let items = saslcert::list(&mut tablet.client).await.unwrap();
    let names: Vec<&str> = items.iter().map(|item| item.name.as_str()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"phone") && names.contains(&"tablet"));
    assert!(
        items
            .iter()
            .find(|item| item.name == "tablet")
            .unwrap()
            .no_cert_management
    );
    tablet.client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_used_and_revoked_tokens_are_item_not_found() {
    let f = start().await;
    let expired = f.invite("expired", free(), -60).await;
    let revoked = f.invite("revoked", free(), 3600).await;
    assert!(
        f.store()
            .revoke_invite(&invite_token_hash("revoked"))
            .await
            .unwrap()
    );
    let used = f.invite("used", free(), 3600).await;
    join(
        &used,
        options("phone", Some("first")),
        f.reach(Transport::StartTls),
    )
    .await
    .unwrap()
    .client
    .close()
    .await;
    let never = "xmpp:localhost?register;preauth=never-made".to_owned();
    for uri in [expired, revoked, used, never] {
        let (token_refused, condition, text) = refusal(
            join(
                &uri,
                options("phone", Some("second")),
                f.reach(Transport::StartTls),
            )
            .await,
        );
        assert!(token_refused, "{uri}");
        assert_eq!(condition, StanzaCondition::ItemNotFound, "{uri}");
        assert_eq!(text, "The provided token is invalid or expired");
    }
    assert!(
        f.store()
            .account("second@localhost")
            .await
            .unwrap()
            .is_none()
    );
}

/// A client for `jid` presenting `certificate` (naming whoever it names)
/// and asking to join with `request`.
fn raw_join(
    f: &Fixture,
    jid: &str,
    certificate: Option<&sigil_x509::generate::Issued>,
    request: JoinRequest,
) -> sigil_client::ClientBuilder {
    let mut builder = f.reach(Transport::StartTls)(Client::builder(jid))
        .sasl(ClientConfig::new().allow(AllowList::new().name("EXTERNAL")))
        .join(request);
    if let Some(issued) = certificate {
        builder = builder.client_certificate_pem(
            issued.certificate_pem().as_bytes(),
            issued.key_pem().as_bytes(),
        );
    }
    builder
}

fn certificate_for(jid: &str) -> sigil_x509::generate::Issued {
    sigil_x509::generate::client_certificate(
        &[sigil_x509::Jid::new(jid).unwrap()],
        &sigil_x509::generate::Options::new(sigil_x509::OffsetDateTime::now_utc()),
        None,
    )
    .unwrap()
}

fn request(token: &str, username: Option<&str>) -> JoinRequest {
    JoinRequest {
        token: token.into(),
        username: username.map(str::to_owned),
        device: "phone".into(),
        no_cert_management: false,
        signing_request: None,
    }
}

fn registration_refused(result: Result<Client, Error>) -> StanzaCondition {
    match result {
        Err(Error::Stream(ClientError::RegistrationRefused(error))) => error.condition,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_for_alice_adds_no_device_to_mallory() {
    let f = start().await;
    f.invite(
        "for-alice",
        InviteKind::Device {
            account: "alice@localhost".into(),
        },
        3600,
    )
    .await;
    let mallory = certificate_for("mallory@localhost");
    // Mallory's certificate for Alice's account: refused.
    let attempt = raw_join(
        &f,
        "alice@localhost",
        Some(&mallory),
        request("for-alice", None),
    );
    assert_eq!(
        registration_refused(attempt.connect().await),
        StanzaCondition::NotAcceptable
    );
    // Asking for Mallory's account by name: refused too.
    let attempt = raw_join(
        &f,
        "mallory@localhost",
        Some(&mallory),
        request("for-alice", Some("mallory")),
    );
    assert_eq!(
        registration_refused(attempt.connect().await),
        StanzaCondition::NotAcceptable
    );
    assert!(
        f.store()
            .certificates("mallory@localhost")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        f.store()
            .certificates("alice@localhost")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(f.still_invited("for-alice").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_certificate_is_refused() {
    let f = start().await;
    f.invite("no-cert", free(), 3600).await;
    let attempt = raw_join(
        &f,
        "carol@localhost",
        None,
        request("no-cert", Some("carol")),
    );
    assert_eq!(
        registration_refused(attempt.connect().await),
        StanzaCondition::NotAcceptable
    );
    assert!(
        f.store()
            .account("carol@localhost")
            .await
            .unwrap()
            .is_none()
    );
    assert!(f.still_invited("no-cert").await);
}

/// A raw stream over direct TLS with a certificate for carol: what
/// [`sigil_proto::client::ClientStream`] never sends.
struct Raw {
    tls: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    framer: Framer,
    buffer: Vec<u8>,
    elements: std::collections::VecDeque<Element>,
    ended: bool,
}

impl Raw {
    async fn connect(f: &Fixture) -> Self {
        let carol = certificate_for("carol@localhost");
        let mut roots = rustls::RootCertStore::empty();
        for der in CertificateDer::pem_slice_iter(&f.server_certificate()) {
            roots.add(der.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![CertificateDer::from(carol.certificate_der.clone())],
                PrivateKeyDer::from_pem_slice(carol.key_pem().as_bytes()).unwrap(),
            )
            .unwrap();
        let tcp =
            tokio::net::TcpStream::connect(f.server.address(ListenerKind::DirectTls).unwrap())
                .await
                .unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let mut raw = Self {
            tls,
            framer: Framer::new(Default::default()),
            buffer: vec![0; 16 * 1024],
            elements: Default::default(),
            ended: false,
        };
        raw.send("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>").await;
        let features = raw.next().await.unwrap();
        assert!(features.has_child("register", "urn:xmpp:ibr-token:0"));
        raw
    }

    async fn send(&mut self, text: &str) {
        self.tls.write_all(text.as_bytes()).await.unwrap();
        self.tls.flush().await.unwrap();
    }

    /// The next element, or `None` once the stream ended.
    async fn next(&mut self) -> Option<Element> {
        loop {
            if let Some(element) = self.elements.pop_front() {
                return Some(element);
            }
            if self.ended {
                return None;
            }
            let read =
                tokio::time::timeout(Duration::from_secs(10), self.tls.read(&mut self.buffer))
                    .await
                    .unwrap();
            let n = match read {
                Ok(0) | Err(_) => return None,
                Ok(n) => n,
            };
            let mut input = &self.buffer[..n];
            while !input.is_empty() {
                match self.framer.next_event(&mut input).unwrap() {
                    Some(StreamEvent::Element(element)) => self.elements.push_back(element),
                    Some(StreamEvent::Close) => self.ended = true,
                    Some(_) => {}
                    None => break,
                }
            }
        }
    }

    /// The answer to an IQ: its type and error condition.
    async fn answer(&mut self, iq: &str) -> (String, Option<String>) {
        self.send(iq).await;
        let reply = self.next().await.unwrap();
        let condition = reply
            .children()
            .find(|child| child.name() == "error")
            .and_then(|error| error.children().next())
            .map(|condition| condition.name().to_owned());
        (
            reply.attribute("type").unwrap_or_default().to_owned(),
            condition,
        )
    }
}

fn preauth(id: &str, token: &str) -> String {
    format!("<iq type='set' id='{id}'><preauth xmlns='urn:xmpp:pars:0' token='{token}'/></iq>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_is_refused_and_three_refusals_close_the_stream() {
    let f = start().await;
    f.invite("good", free(), 3600).await;
    let mut raw = Raw::connect(&f).await;
    assert_eq!(
        raw.answer(&preauth("p1", "good")).await,
        ("result".into(), None)
    );
    let with_password = "<iq type='set' id='r1'><query xmlns='jabber:iq:register'>\
        <username>carol</username><password>secret</password>\
        <append xmlns='urn:xmpp:saslcert:1'><name>phone</name></append></query></iq>";
    assert_eq!(
        raw.answer(with_password).await,
        ("error".into(), Some("not-acceptable".into()))
    );
    assert!(
        f.store()
            .account("carol@localhost")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        raw.answer(&preauth("p2", "bad")).await,
        ("error".into(), Some("item-not-found".into()))
    );
    // The third refusal: answered, then the stream ends.
    assert_eq!(
        raw.answer(&preauth("p3", "worse")).await,
        ("error".into(), Some("item-not-found".into()))
    );
    let error = raw.next().await.unwrap();
    assert_eq!(error.name(), "error");
    assert!(
        error
            .children()
            .any(|condition| condition.name() == "policy-violation"),
        "{}",
        error.to_xml()
    );
    assert!(raw.next().await.is_none());
    assert!(f.still_invited("good").await);
}

/// A name the operator made an administrator cannot be taken with an
/// invitation that lets its holder pick any name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrators_name_is_not_for_the_taking() {
    let f = start().await;
    let uri = f.invite("free-for-root", free(), 3600).await;
    let (token_refused, condition, text) = refusal(
        join(
            &uri,
            options("phone", Some("root")),
            f.reach(Transport::StartTls),
        )
        .await,
    );
    assert!(!token_refused);
    assert_eq!(condition, StanzaCondition::NotAllowed, "{text}");
    assert!(f.store().account("root@localhost").await.unwrap().is_none());
    assert!(f.still_invited("free-for-root").await);
}

/// Writes a new CA into `dir/issuing` (its key private) and returns it.
fn issuing_ca(dir: &std::path::Path) -> sigil_x509::generate::Ca {
    use std::os::unix::fs::OpenOptionsExt;
    let ca = sigil_x509::generate::Ca::new(
        "Sigil issuing CA",
        &sigil_x509::generate::Options::new(sigil_x509::OffsetDateTime::now_utc()),
    )
    .unwrap();
    let issuing = dir.join("issuing");
    std::fs::create_dir_all(&issuing).unwrap();
    std::fs::write(issuing.join("ca.crt"), ca.issued().certificate_pem()).unwrap();
    let mut key = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(issuing.join("ca.key"))
        .unwrap();
    std::io::Write::write_all(&mut key, ca.issued().key_pem().as_bytes()).unwrap();
    ca
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_issuing_ca_the_device_gets_a_signed_certificate_and_logs_in_with_it() {
    let mut ca_subject = String::new();
    let mut the_ca = None;
    let f = start_with(|config, dir| {
        let ca = issuing_ca(dir);
        ca_subject = sigil_x509::CertificateInfo::from_der(&ca.issued().certificate_der)
            .unwrap()
            .subject;
        // Trusted as well, by mistake: it must not widen who logs in.
        std::fs::create_dir_all(dir.join("trusted-cas")).unwrap();
        std::fs::write(
            dir.join("trusted-cas/issuing.pem"),
            ca.issued().certificate_pem(),
        )
        .unwrap();
        config.auth.issuing_ca = Some("issuing".into());
        config.auth.issued_days = 30;
        the_ca = Some(ca);
    })
    .await;
    // A certificate the issuing CA signed that no device registered:
    // refused, though its CA is a trusted one.
    let unregistered = sigil_x509::generate::client_certificate(
        &[sigil_x509::Jid::new("alice@localhost").unwrap()],
        &sigil_x509::generate::Options::new(sigil_x509::OffsetDateTime::now_utc()),
        the_ca.as_ref(),
    )
    .unwrap();
    let refused = f.reach(Transport::DirectTls)(Client::builder("alice@localhost"))
        .client_certificate_pem(
            unregistered.certificate_pem().as_bytes(),
            unregistered.key_pem().as_bytes(),
        )
        .sasl(ClientConfig::new().allow(AllowList::new().name("EXTERNAL")))
        .connect()
        .await;
    assert!(
        matches!(refused, Err(Error::Stream(ClientError::Sasl(_)))),
        "{refused:?}"
    );
    // While a certificate of another CA in the same folder logs in by
    // trust (the folder is read).
    let other_ca = sigil_x509::generate::Ca::new(
        "Another CA",
        &sigil_x509::generate::Options::new(sigil_x509::OffsetDateTime::now_utc()),
    )
    .unwrap();
    std::fs::write(
        f.dir.path().join("trusted-cas/other.pem"),
        other_ca.issued().certificate_pem(),
    )
    .unwrap();
    f.server.context().anchors.reload();
    let by_trust = sigil_x509::generate::client_certificate(
        &[sigil_x509::Jid::new("alice@localhost").unwrap()],
        &sigil_x509::generate::Options::new(sigil_x509::OffsetDateTime::now_utc()),
        Some(&other_ca),
    )
    .unwrap();
    let trusted = f.reach(Transport::DirectTls)(Client::builder("alice@localhost"))
        .resource("trusted")
        .client_certificate_pem(
            by_trust.certificate_pem().as_bytes(),
            by_trust.key_pem().as_bytes(),
        )
        .sasl(ClientConfig::new().allow(AllowList::new().name("EXTERNAL")))
        .connect()
        .await
        .unwrap();
    trusted.close().await;
    for (n, transport) in [Transport::StartTls, Transport::DirectTls]
        .into_iter()
        .enumerate()
    {
        let name = format!("dave{n}");
        let uri = f.invite(&format!("signed-{n}"), free(), 3600).await;
        let joined = join(&uri, options("phone", Some(&name)), f.reach(transport))
            .await
            .unwrap();
        assert!(joined.signed, "{transport:?}");
        assert_eq!(joined.client.mechanism(), "EXTERNAL");
        let account = format!("{name}@localhost");
        assert_eq!(joined.client.jid(), format!("{account}/test"));
        // What is registered is the CA's certificate, for the device's key.
        let der = sigil_x509::pem_certificates(joined.certificate_pem.as_bytes()).unwrap();
        let info = sigil_x509::CertificateInfo::from_der(&der[0]).unwrap();
        assert_eq!(info.issuer, ca_subject);
        assert_eq!(info.identities[0].as_str(), account);
        assert!(info.client_auth.permits_client_auth());
        assert_eq!(
            (info.not_after - sigil_x509::OffsetDateTime::now_utc()).whole_days(),
            29
        );
        let certificates = f.store().certificates(&account).await.unwrap();
        assert_eq!(certificates.len(), 1);
        assert_eq!(certificates[0].name, "phone");
        assert_eq!(certificates[0].der, der[0]);
        let stored = f.store().account(&account).await.unwrap().unwrap();
        assert!(stored.credentials.is_empty());
        joined.client.close().await;
        let again = f.reach(transport)(Client::builder(&account))
            .client_certificate_pem(joined.certificate_pem.as_bytes(), joined.key_pem.as_bytes())
            .connect()
            .await
            .unwrap();
        assert_eq!(again.mechanism(), "EXTERNAL");
        again.close().await;
    }

    // A request that is not one is refused, the token kept.
    f.invite("bad-request", free(), 3600).await;
    let presented = certificate_for("erin@localhost");
    let mut bad = request("bad-request", Some("erin"));
    bad.signing_request = Some(b"not a request".to_vec());
    let attempt = raw_join(&f, "erin@localhost", Some(&presented), bad);
    assert_eq!(
        registration_refused(attempt.connect().await),
        StanzaCondition::BadRequest
    );
    // A forged one (its signature broken) too.
    let mut forged = presented
        .signing_request(&sigil_x509::Jid::new("erin@localhost").unwrap())
        .unwrap();
    let last = forged.len() - 2;
    forged[last] ^= 1;
    let mut bad = request("bad-request", Some("erin"));
    bad.signing_request = Some(forged);
    let attempt = raw_join(&f, "erin@localhost", Some(&presented), bad);
    assert_eq!(
        registration_refused(attempt.connect().await),
        StanzaCondition::BadRequest
    );
    assert!(f.still_invited("bad-request").await);
    assert!(f.store().account("erin@localhost").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_issuing_ca_the_device_registers_its_own_and_a_shared_ca_key_stops_the_start() {
    let f = start().await;
    f.invite("unsigned", free(), 3600).await;
    let presented = certificate_for("erin@localhost");
    // A client that sends a request though the server offered no signing.
    let mut raw = request("unsigned", Some("erin"));
    raw.signing_request = Some(
        presented
            .signing_request(&sigil_x509::Jid::new("erin@localhost").unwrap())
            .unwrap(),
    );
    // The stream sends it only where signing is offered: so the
    // device's own certificate is registered instead.
    let client = raw_join(&f, "erin@localhost", Some(&presented), raw)
        .connect()
        .await
        .unwrap();
    assert_eq!(client.mechanism(), "EXTERNAL");
    let certificates = f.store().certificates("erin@localhost").await.unwrap();
    assert_eq!(certificates[0].der, presented.certificate_der);
    client.close().await;

    // A CA key others can read: the server does not start.
    let dir = tempfile::tempdir().unwrap();
    issuing_ca(dir.path());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.path().join("issuing/ca.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let mut config = Config::new("localhost");
    config.listeners = vec![ListenerConfig {
        kind: ListenerKind::Starttls,
        address: "127.0.0.1:0".parse().unwrap(),
        client_certificates: Default::default(),
    }];
    config.auth.issuing_ca = Some("issuing".into());
    let (certificate, key) = sigil_server::certificate_paths(&config, dir.path());
    sigil_server::tls::ensure_server_certificate("localhost", &certificate, &key).unwrap();
    let error = Server::start(&config, dir.path())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("chmod 600"), "{error}");
    // A directory with no CA in it: told how to make one.
    config.auth.issuing_ca = Some("nowhere".into());
    let error = Server::start(&config, dir.path())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("nowhere") && error.contains("sigil ca new"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_in_device_adds_another_by_ad_hoc_command() {
    use sigil_client::commands::{self, Action, DataForm, Field, FieldType, FormType};
    let f = start().await;
    // Alice's laptop: a registered certificate, logged in with EXTERNAL.
    let laptop = certificate_for("alice@localhost");
    let info = sigil_x509::CertificateInfo::from_der(&laptop.certificate_der).unwrap();
    f.store()
        .add_certificate(&sigil_store::CertificateEntry {
            owner: "alice@localhost".into(),
            name: "laptop".into(),
            fingerprint: info.sha256,
            der: laptop.certificate_der.clone(),
            no_cert_management: false,
            disabled: false,
            added_at: now(),
        })
        .await
        .unwrap();
    let mut on_laptop = f.reach(Transport::DirectTls)(Client::builder("alice@localhost"))
        .resource("laptop")
        .client_certificate_pem(
            laptop.certificate_pem().as_bytes(),
            laptop.key_pem().as_bytes(),
        )
        .sasl(ClientConfig::new().allow(AllowList::new().name("EXTERNAL")))
        .connect()
        .await
        .unwrap();
    let domain = sigil_x509::Jid::new("localhost").unwrap();
    let add = async |client: &mut Client, name: &str| {
        let stage = commands::execute(client, &domain, "urn:sigil:devices#add")
            .await
            .unwrap();
        let mut form = DataForm::typed(FormType::Submit, "urn:sigil:devices");
        form.fields
            .push(Field::new("name", FieldType::TextSingle).value(name));
        let done = commands::submit(client, &domain, &stage, Action::Complete, form)
            .await
            .unwrap();
        done.form.unwrap().value("uri").unwrap().to_owned()
    };
    let uri = add(&mut on_laptop, "tablet").await;

    // The tablet joins with it: alice's account, a certificate of its own.
    let joined = join(
        &uri,
        JoinOptions::new("tablet"),
        f.reach(Transport::StartTls),
    )
    .await
    .unwrap();
    assert_eq!(joined.account.as_str(), "alice@localhost");
    assert_eq!(joined.client.mechanism(), "EXTERNAL");
    let mut names: Vec<String> = f
        .store()
        .certificates("alice@localhost")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    names.sort();
    assert_eq!(names, ["laptop", "tablet"]);
    joined.client.close().await;

    // An invitation the laptop made ends when the laptop is revoked.
    let uri = add(&mut on_laptop, "watch").await;
    on_laptop.close().await;
    sigil_server::saslcert::revoke(
        f.server.context(),
        &"alice@localhost".parse().unwrap(),
        "laptop",
    )
    .await
    .unwrap();
    let (token_refused, condition, _) = refusal(
        join(
            &uri,
            JoinOptions::new("watch"),
            f.reach(Transport::StartTls),
        )
        .await,
    );
    assert!(token_refused);
    assert_eq!(condition, StanzaCondition::ItemNotFound);
}
