//! Certificate logins (SASL EXTERNAL, XEP-0178) and device certificates
//! (XEP-0257) over real TLS, for STARTTLS and direct TLS.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
#[path = "common/nats.rs"]
mod nats;
#[path = "common/cluster.rs"]
mod nodes;

use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{DOMAIN, Identity, Login, TestClient, TestServer};
use sigil_proto::client::{ClientError, LoginPath};
use sigil_proto::error::{StanzaCondition, StanzaError, StreamCondition};
use sigil_sasl::Failure;
use sigil_server::config::{ClientCertificatePolicy, ListenerKind};
use sigil_store::CertificateEntry;
use sigil_x509::generate::{Ca, Issued, Options, client_certificate};
use sigil_x509::{CertificateInfo, Jid, OffsetDateTime};
use sigil_xml::{Element, ns};

const SASLCERT: &str = "urn:xmpp:saslcert:1";

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn cert(jids: &[&str]) -> Issued {
    let jids: Vec<Jid> = jids.iter().map(|j| Jid::new(j).unwrap()).collect();
    client_certificate(&jids, &Options::new(now()), None).unwrap()
}

fn cert_at(jid: &str, start: OffsetDateTime, days: u32) -> Issued {
    let mut options = Options::new(start);
    options.days = days;
    client_certificate(&[Jid::new(jid).unwrap()], &options, None).unwrap()
}

/// Registers a certificate directly in the store (also ones the XEP-0257
/// checks would refuse, such as expired ones).
async fn register(server: &TestServer, owner: &str, name: &str, issued: &Issued) {
    let info = CertificateInfo::from_der(&issued.certificate_der).unwrap();
    let entry = CertificateEntry {
        owner: owner.into(),
        name: name.into(),
        fingerprint: info.sha256,
        der: issued.certificate_der.clone(),
        no_cert_management: false,
        disabled: false,
        added_at: now().unix_timestamp(),
    };
    server.store().add_certificate(&entry).await.unwrap();
}

/// A certificate made with rcgen directly, for the shapes our generator
/// refuses to make: no clientAuth, no xmppAddr, CN only.
fn odd_certificate(
    ca: &Ca,
    xmpp_addr: Option<&str>,
    client_auth: bool,
    common_name: &str,
) -> Issued {
    use rcgen::{
        CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair,
        OtherNameValue, SanType,
    };
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    params.not_before = now() - time::Duration::hours(1);
    params.not_after = now() + time::Duration::days(30);
    if let Some(jid) = xmpp_addr {
        params.subject_alt_names = vec![SanType::OtherName((
            vec![1, 3, 6, 1, 5, 5, 7, 8, 5],
            OtherNameValue::Utf8String(jid.into()),
        ))];
    }
    params.extended_key_usages = if client_auth {
        vec![ExtendedKeyUsagePurpose::ClientAuth]
    } else {
        vec![ExtendedKeyUsagePurpose::ServerAuth]
    };
    let key = KeyPair::generate().unwrap();
    let ca_key = KeyPair::from_pem(&ca.issued().key_pem()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca.issued().certificate_pem(), ca_key).unwrap();
    let certificate = params.signed_by(&key, &issuer).unwrap();
    Issued::from_pem(&certificate.pem(), &key.serialize_pem()).unwrap()
}

fn trust(server: &TestServer, name: &str, ca: &Ca) {
    let dir = server.dir.path().join("trusted-cas");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{name}.pem")),
        ca.issued().certificate_pem(),
    )
    .unwrap();
}

#[derive(Clone, Copy)]
enum Expect {
    Bound(&'static str),
    Fails(Failure),
    NotOffered,
}

/// A certificate login by a client that names no account (its stream
/// header has no `from`), by SASL2 (binding `test` after it) or SASL 1.
async fn login(
    server: &TestServer,
    kind: ListenerKind,
    issued: &Issued,
    authzid: Option<&str>,
    sasl2: bool,
) -> TestClient {
    TestClient::connect(
        server,
        Login::certificate("", kind, Identity::from_issued(issued))
            .authzid(authzid)
            .resource(Some("test"))
            .sasl2(sasl2),
    )
    .await
}

async fn check(
    server: &TestServer,
    kind: ListenerKind,
    case: &str,
    issued: &Issued,
    authzid: Option<&str>,
    expect: Expect,
) {
    check_over(server, kind, case, issued, authzid, expect, false).await;
}

async fn check_over(
    server: &TestServer,
    kind: ListenerKind,
    case: &str,
    issued: &Issued,
    authzid: Option<&str>,
    expect: Expect,
    sasl2: bool,
) {
    let mut client = login(server, kind, issued, authzid, sasl2).await;
    let kind = (kind, if sasl2 { "SASL2" } else { "SASL 1" });
    match expect {
        Expect::Bound(jid) => {
            assert_eq!(client.jid(), jid, "{case} ({kind:?}): {:?}", client.closed);
            let path = client.stream.login_path();
            assert_eq!(
                path,
                if sasl2 {
                    LoginPath::Sasl2
                } else {
                    LoginPath::Sasl1
                },
                "{case}"
            );
            assert_eq!(client.mechanism.as_deref(), Some("EXTERNAL"), "{case}");
            client.close().await;
        }
        Expect::Fails(failure) => {
            let closed = client.closed().await;
            match closed {
                Err(ClientError::Sasl(sigil_sasl::client::ClientError::Failed {
                    failure: got,
                    ..
                })) => {
                    assert_eq!(got, Some(failure), "{case} ({kind:?})");
                }
                other => panic!("{case} ({kind:?}): expected {failure}, got {other:?}"),
            }
            assert!(client.jid.is_none(), "{case}");
        }
        Expect::NotOffered => {
            let closed = client.closed().await;
            assert!(
                matches!(
                    closed,
                    Err(ClientError::Sasl(
                        sigil_sasl::client::ClientError::NoMechanism
                    ))
                ),
                "{case} ({kind:?}): {closed:?}"
            );
            assert!(
                !client
                    .stream
                    .offered_mechanisms()
                    .iter()
                    .any(|m| m == "EXTERNAL"),
                "{case}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_external_decision_table() {
    let server = TestServer::start().await;
    decision_table(&[&server]).await;
}

/// The same on each node of a cluster: the accounts and certificates are
/// set up through one node, in the store they share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_external_decision_table_on_every_node_of_a_cluster() {
    let cluster = nodes::cluster(3).await;
    let nodes: Vec<&TestServer> = cluster.nodes.iter().collect();
    decision_table(&nodes).await;
}

/// Certificate logins, allowed and refused, on each of `servers` (which
/// share one store: the first sets it up).
async fn decision_table(servers: &[&TestServer]) {
    let server = servers[0];
    server
        .store()
        .set_disabled("carol@localhost", true)
        .await
        .unwrap();

    let alice = cert(&["alice@localhost"]);
    register(server, "alice@localhost", "laptop", &alice).await;
    let unregistered = cert(&["alice@localhost"]);
    let disabled = cert(&["alice@localhost"]);
    register(server, "alice@localhost", "old-phone", &disabled).await;
    server
        .store()
        .disable_certificate("alice@localhost", "old-phone")
        .await
        .unwrap();
    let revoked = cert(&["alice@localhost"]);
    register(server, "alice@localhost", "stolen", &revoked).await;
    server
        .store()
        .revoke_certificate("alice@localhost", "stolen", now().unix_timestamp())
        .await
        .unwrap();
    let expired = cert_at("alice@localhost", now() - time::Duration::days(10), 1);
    register(server, "alice@localhost", "expired", &expired).await;
    let future = cert_at("alice@localhost", now() + time::Duration::days(10), 30);
    register(server, "alice@localhost", "future", &future).await;
    let bobs = cert(&["bob@localhost"]);
    register(server, "bob@localhost", "bob", &bobs).await;
    let two = cert(&["alice@localhost", "bob@localhost"]);
    register(server, "alice@localhost", "shared", &two).await;
    register(server, "bob@localhost", "shared", &two).await;
    let carols = cert(&["carol@localhost"]);
    register(server, "carol@localhost", "carol", &carols).await;

    let ca = Ca::new("Trusted CA", &Options::new(now())).unwrap();
    for server in servers {
        trust(server, "trusted", &ca);
    }
    let other_ca = Ca::new("Other CA", &Options::new(now())).unwrap();
    let jids = [Jid::new("alice@localhost").unwrap()];
    let ca_signed = alice_by(&ca);
    let ca_expired = {
        let mut options = Options::new(now() - time::Duration::days(10));
        options.days = 1;
        client_certificate(&jids, &options, Some(&ca)).unwrap()
    };
    let untrusted_ca_signed =
        client_certificate(&jids, &Options::new(now()), Some(&other_ca)).unwrap();
    let no_client_auth = odd_certificate(&ca, Some("alice@localhost"), false, "alice");
    let no_xmpp_addr = odd_certificate(&ca, None, true, "alice@localhost");
    let nobody = client_certificate(
        &[Jid::new("nobody@localhost").unwrap()],
        &Options::new(now()),
        Some(&ca),
    )
    .unwrap();
    let other_domain = client_certificate(
        &[Jid::new("alice@elsewhere.example").unwrap()],
        &Options::new(now()),
        Some(&ca),
    )
    .unwrap();

    for (kind, sasl2) in [
        (ListenerKind::Starttls, false),
        (ListenerKind::DirectTls, false),
        (ListenerKind::Starttls, true),
        (ListenerKind::DirectTls, true),
    ] {
        let cases: Vec<(&str, &Issued, Option<&str>, Expect)> = vec![
            (
                "registered, no authzid",
                &alice,
                None,
                Expect::Bound("alice@localhost/test"),
            ),
            (
                "registered, bare JID",
                &alice,
                Some("alice@localhost"),
                Expect::Bound("alice@localhost/test"),
            ),
            (
                "registered, domain",
                &alice,
                Some("localhost"),
                Expect::Bound("alice@localhost/test"),
            ),
            (
                "registered, a full JID",
                &alice,
                Some("alice@localhost/test"),
                Expect::Fails(Failure::InvalidAuthzid),
            ),
            (
                "unregistered self-signed",
                &unregistered,
                None,
                Expect::Fails(Failure::NotAuthorized),
            ),
            (
                "registered but disabled",
                &disabled,
                None,
                Expect::Fails(Failure::NotAuthorized),
            ),
            (
                "revoked",
                &revoked,
                None,
                Expect::Fails(Failure::NotAuthorized),
            ),
            (
                "expired",
                &expired,
                None,
                Expect::Fails(Failure::CredentialsExpired),
            ),
            (
                "not yet valid",
                &future,
                None,
                Expect::Fails(Failure::NotAuthorized),
            ),
            (
                "another account's certificate naming this one",
                &bobs,
                Some("alice@localhost"),
                Expect::Fails(Failure::InvalidAuthzid),
            ),
            (
                "two identities, no authzid",
                &two,
                None,
                Expect::Fails(Failure::InvalidAuthzid),
            ),
            (
                "two identities, the first",
                &two,
                Some("alice@localhost"),
                Expect::Bound("alice@localhost/test"),
            ),
            (
                "two identities, the second",
                &two,
                Some("bob@localhost"),
                Expect::Bound("bob@localhost/test"),
            ),
            (
                "two identities, a third",
                &two,
                Some("carol@localhost"),
                Expect::Fails(Failure::InvalidAuthzid),
            ),
            (
                "CA-signed, trusted",
                &ca_signed,
                None,
                Expect::Bound("alice@localhost/test"),
            ),
            (
                "CA-signed, trusted, expired",
                &ca_expired,
                None,
                Expect::Fails(Failure::CredentialsExpired),
            ),
            (
                "CA-signed by an untrusted CA",
                &untrusted_ca_signed,
                None,
                Expect::Fails(Failure::NotAuthorized),
            ),
            (
                "CA-signed without clientAuth",
                &no_client_auth,
                None,
                Expect::Fails(Failure::NotAuthorized),
            ),
            (
                "CA-signed without xmppAddr (CN only)",
                &no_xmpp_addr,
                None,
                Expect::Fails(Failure::NotAuthorized),
            ),
            (
                "CA-signed, unknown account",
                &nobody,
                None,
                Expect::Fails(Failure::NotAuthorized),
            ),
            (
                "CA-signed, another domain",
                &other_domain,
                None,
                Expect::Fails(Failure::NotAuthorized),
            ),
            (
                "disabled account",
                &carols,
                None,
                Expect::Fails(Failure::AccountDisabled),
            ),
        ];
        for server in servers {
            for &(case, issued, authzid, expect) in &cases {
                check_over(server, kind, case, issued, authzid, expect, sasl2).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_certificate_or_on_a_disabled_listener_external_is_not_offered() {
    let server = TestServer::start().await;
    for kind in [ListenerKind::Starttls, ListenerKind::DirectTls] {
        let mut client =
            TestClient::connect(&server, Login::new("alice", kind).mechanism("EXTERNAL")).await;
        let closed = client.closed().await;
        assert!(
            matches!(
                closed,
                Err(ClientError::Sasl(
                    sigil_sasl::client::ClientError::NoMechanism
                ))
            ),
            "{closed:?}"
        );
        assert!(
            client
                .stream
                .offered_mechanisms()
                .iter()
                .any(|m| m == "SCRAM-SHA-256")
        );
        assert!(
            !client
                .stream
                .offered_mechanisms()
                .iter()
                .any(|m| m == "EXTERNAL")
        );
    }
    let server = TestServer::start_with(common::config(ClientCertificatePolicy::Disabled)).await;
    let alice = cert(&["alice@localhost"]);
    register(&server, "alice@localhost", "laptop", &alice).await;
    for kind in [ListenerKind::Starttls, ListenerKind::DirectTls] {
        check(
            &server,
            kind,
            "certificate on a disabled listener",
            &alice,
            None,
            Expect::NotOffered,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_certificate_is_offered_external_alone() {
    let server = TestServer::start().await;
    let alice = cert(&["alice@localhost"]);
    register(&server, "alice@localhost", "laptop", &alice).await;
    for kind in [ListenerKind::Starttls, ListenerKind::DirectTls] {
        let client = login(&server, kind, &alice, None, false).await;
        assert_eq!(client.stream.offered_mechanisms(), ["EXTERNAL"], "{kind:?}");
        client.close().await;
        // An unregistered certificate gets the full list, EXTERNAL included.
        let other = TestClient::connect(
            &server,
            Login::new("alice", kind).mechanism("SCRAM-SHA-256"),
        )
        .await;
        let _ = other.jid();
        let mut login = Login::new("alice", kind).mechanism("SCRAM-SHA-256");
        login.client_identity = Some(Identity::from_issued(&cert(&["alice@localhost"])));
        let with_unknown = TestClient::connect(&server, login).await;
        let offered = with_unknown.stream.offered_mechanisms();
        assert!(
            offered.iter().any(|m| m == "EXTERNAL") && offered.iter().any(|m| m == "SCRAM-SHA-256"),
            "{offered:?}"
        );
        assert_eq!(with_unknown.jid(), "alice@localhost/test");
        other.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_jid_certificate_pins_its_resource() {
    let server = TestServer::start().await;
    let phone = cert(&["alice@localhost/phone"]);
    register(&server, "alice@localhost", "phone", &phone).await;
    for kind in [ListenerKind::Starttls, ListenerKind::DirectTls] {
        // Asking for no resource, or for the pinned one, binds it.
        let mut first = TestClient::connect(
            &server,
            Login::certificate("alice", kind, Identity::from_issued(&phone)).resource(None),
        )
        .await;
        assert_eq!(first.jid(), "alice@localhost/phone");
        // Another login with it replaces the live session.
        let second = TestClient::connect(
            &server,
            Login::certificate("alice", kind, Identity::from_issued(&phone))
                .resource(Some("phone")),
        )
        .await;
        assert_eq!(second.jid(), "alice@localhost/phone");
        let Err(ClientError::Stream(error)) = first.closed().await else {
            panic!()
        };
        assert_eq!(error.condition, StreamCondition::Conflict);
        second.close().await;
        // Another resource is not allowed.
        let mut other = TestClient::connect(
            &server,
            Login::certificate("alice", kind, Identity::from_issued(&phone)).resource(Some("desk")),
        )
        .await;
        let Err(ClientError::Bind(error)) = other.closed().await else {
            panic!("{:?}", other.closed)
        };
        assert_eq!(error.condition, StanzaCondition::NotAllowed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_revocation_a_new_handshake_is_full_and_the_login_refused() {
    let server = TestServer::start().await;
    let alice = cert(&["alice@localhost"]);
    register(&server, "alice@localhost", "laptop", &alice).await;
    let config =
        common::tls_client_config(&server.certificate(), Some(Identity::from_issued(&alice)));
    // The same client configuration (and so session cache) for both logins.
    let first = login_with_config(&server, config.clone(), &alice).await;
    assert_eq!(first.0, Some(rustls::HandshakeKind::Full));
    assert!(first.1);
    server
        .store()
        .revoke_certificate("alice@localhost", "laptop", now().unix_timestamp())
        .await
        .unwrap();
    let second = login_with_config(&server, config, &alice).await;
    assert_eq!(
        second.0,
        Some(rustls::HandshakeKind::Full),
        "no resumption where client certificates are asked for"
    );
    assert!(!second.1, "a revoked certificate must not log in");
}

/// A raw EXTERNAL login over direct TLS with a given rustls config:
/// (handshake kind, success).
async fn login_with_config(
    server: &TestServer,
    config: std::sync::Arc<rustls::ClientConfig>,
    _issued: &Issued,
) -> (Option<rustls::HandshakeKind>, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = tokio::net::TcpStream::connect(server.address(ListenerKind::DirectTls))
        .await
        .unwrap();
    let mut tls = connector
        .connect(
            rustls::pki_types::ServerName::try_from(DOMAIN).unwrap(),
            tcp,
        )
        .await
        .unwrap();
    tls.write_all(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>").await.unwrap();
    let mut seen = String::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains("<success") && !seen.contains("<failure") && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buffer)).await {
            Ok(Ok(n)) if n > 0 => seen.push_str(&String::from_utf8_lossy(&buffer[..n])),
            _ => break,
        }
    }
    (tls.get_ref().1.handshake_kind(), seen.contains("<success"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_external_auth_gets_an_empty_challenge() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    let alice = cert(&["alice@localhost"]);
    register(&server, "alice@localhost", "laptop", &alice).await;
    let config =
        common::tls_client_config(&server.certificate(), Some(Identity::from_issued(&alice)));
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = tokio::net::TcpStream::connect(server.address(ListenerKind::DirectTls))
        .await
        .unwrap();
    let mut tls = connector
        .connect(
            rustls::pki_types::ServerName::try_from(DOMAIN).unwrap(),
            tcp,
        )
        .await
        .unwrap();
    tls.write_all(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'/>").await.unwrap();
    let mut seen = String::new();
    let mut buffer = [0u8; 4096];
    while !seen.contains("<challenge") {
        let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "{seen}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    assert!(
        seen.ends_with("<challenge xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\"/>"),
        "{seen}"
    );
    tls.write_all(b"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        .await
        .unwrap();
    let mut rest = String::new();
    while !rest.contains("<success") && !rest.contains("<failure") {
        let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "{rest}");
        rest.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    assert!(
        rest.contains("<success xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\"/>"),
        "{rest}"
    );
}

fn saslcert(kind: &str, id: &str, payload: Element) -> Element {
    Element::new("iq", ns::CLIENT)
        .with_attribute("type", kind)
        .with_attribute("id", id)
        .with_child(payload)
}

fn append(name: &str, der: &[u8], no_cert_management: bool) -> Element {
    let mut append = Element::new("append", SASLCERT)
        .with_child(Element::new("name", SASLCERT).with_text(name))
        .with_child(
            Element::new("x509cert", SASLCERT)
                .with_text(base64::engine::general_purpose::STANDARD.encode(der)),
        );
    if no_cert_management {
        append.push_child(Element::new("no-cert-management", SASLCERT));
    }
    append
}

fn named(op: &str, name: &str) -> Element {
    Element::new(op, SASLCERT).with_child(Element::new("name", SASLCERT).with_text(name))
}

async fn ask(client: &mut TestClient, request: Element) -> Result<Element, StanzaError> {
    let id = request.attribute("id").unwrap().to_owned();
    client.send(request).await;
    let reply = client
        .recv_matching(|s| s.name() == "iq" && s.attribute("id") == Some(id.as_str()))
        .await;
    match reply.attribute("type") {
        Some("result") => Ok(reply),
        _ => Err(StanzaError::from_stanza(&reply).unwrap()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep_0257_append_list_disable_revoke() {
    let server = TestServer::start().await;
    let mut admin = TestClient::connect(
        &server,
        Login::new("alice", ListenerKind::DirectTls).resource(Some("desk")),
    )
    .await;

    // The feature is advertised.
    let info = ask(
        &mut admin,
        saslcert("get", "d", Element::new("query", ns::DISCO_INFO)).with_attribute("to", DOMAIN),
    )
    .await
    .unwrap();
    assert!(
        info.child("query", ns::DISCO_INFO)
            .unwrap()
            .children()
            .any(|f| f.attribute("var") == Some(SASLCERT))
    );

    let laptop = cert(&["alice@localhost"]);
    let phone = cert(&["alice@localhost/phone"]);
    ask(
        &mut admin,
        saslcert(
            "set",
            "a1",
            append("laptop", &laptop.certificate_der, false),
        ),
    )
    .await
    .unwrap();
    ask(
        &mut admin,
        saslcert("set", "a2", append("phone", &phone.certificate_der, true)),
    )
    .await
    .unwrap();

    let errors = [
        (
            "a3",
            append("laptop", &cert(&["alice@localhost"]).certificate_der, false),
            StanzaCondition::Conflict,
        ),
        (
            "a4",
            append("again", &laptop.certificate_der, false),
            StanzaCondition::Conflict,
        ),
        (
            "a5",
            append("bob's", &cert(&["bob@localhost"]).certificate_der, false),
            StanzaCondition::NotAcceptable,
        ),
        (
            "a6",
            append(
                "old",
                &cert_at("alice@localhost", now() - time::Duration::days(10), 1).certificate_der,
                false,
            ),
            StanzaCondition::NotAcceptable,
        ),
        (
            "a7",
            append("garbage", b"not a certificate", false),
            StanzaCondition::BadRequest,
        ),
        (
            "a8",
            Element::new("append", SASLCERT)
                .with_child(Element::new("name", SASLCERT).with_text("x")),
            StanzaCondition::BadRequest,
        ),
        (
            "a9",
            append("", &cert(&["alice@localhost"]).certificate_der, false),
            StanzaCondition::BadRequest,
        ),
        (
            "d1",
            named("disable", "nothing"),
            StanzaCondition::ItemNotFound,
        ),
        (
            "r1",
            named("revoke", "nothing"),
            StanzaCondition::ItemNotFound,
        ),
    ];
    for (id, payload, condition) in errors {
        let error = ask(&mut admin, saslcert("set", id, payload))
            .await
            .unwrap_err();
        assert_eq!(error.condition, condition, "{id}");
    }
    let bad64 = Element::new("append", SASLCERT)
        .with_child(Element::new("name", SASLCERT).with_text("b"))
        .with_child(Element::new("x509cert", SASLCERT).with_text("!!!"));
    assert_eq!(
        ask(&mut admin, saslcert("set", "a10", bad64))
            .await
            .unwrap_err()
            .condition,
        StanzaCondition::BadRequest
    );

    // Both devices log in; the list shows who uses which.
    let mut on_laptop = TestClient::connect(
        &server,
        Login::certificate(
            "alice",
            ListenerKind::Starttls,
            Identity::from_issued(&laptop),
        )
        .resource(Some("lap")),
    )
    .await;
    assert_eq!(on_laptop.jid(), "alice@localhost/lap");
    let mut on_phone = TestClient::connect(
        &server,
        Login::certificate(
            "alice",
            ListenerKind::DirectTls,
            Identity::from_issued(&phone),
        )
        .resource(None),
    )
    .await;
    assert_eq!(on_phone.jid(), "alice@localhost/phone");
    let items = ask(
        &mut admin,
        saslcert("get", "i1", Element::new("items", SASLCERT)),
    )
    .await
    .unwrap();
    let items = items.child("items", SASLCERT).unwrap();
    let listed: Vec<(String, Vec<String>)> = items
        .children()
        .map(|item| {
            let name = item.child("name", SASLCERT).unwrap().text();
            let der = base64::engine::general_purpose::STANDARD
                .decode(item.child("x509cert", SASLCERT).unwrap().text())
                .unwrap();
            assert!(CertificateInfo::from_der(&der).is_ok());
            let users = item
                .child("users", SASLCERT)
                .unwrap()
                .children()
                .map(Element::text)
                .collect();
            (name, users)
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            ("laptop".into(), vec!["lap".into()]),
            ("phone".into(), vec!["phone".into()])
        ]
    );

    // A no-cert-management session may list but not change.
    assert!(
        ask(
            &mut on_phone,
            saslcert("get", "i2", Element::new("items", SASLCERT))
        )
        .await
        .is_ok()
    );
    for (id, payload) in [
        (
            "p1",
            append("x", &cert(&["alice@localhost"]).certificate_der, false),
        ),
        ("p2", named("disable", "laptop")),
        ("p3", named("revoke", "laptop")),
    ] {
        assert_eq!(
            ask(&mut on_phone, saslcert("set", id, payload))
                .await
                .unwrap_err()
                .condition,
            StanzaCondition::Forbidden,
            "{id}"
        );
    }
    // Nor may a certificate session change the password (XEP-0077).
    let change = Element::new("query", "jabber:iq:register")
        .with_child(Element::new("username", "jabber:iq:register").with_text("alice"))
        .with_child(Element::new("password", "jabber:iq:register").with_text("new"));
    assert_eq!(
        ask(&mut on_laptop, saslcert("set", "pw", change.clone()))
            .await
            .unwrap_err()
            .condition,
        StanzaCondition::NotAuthorized
    );
    // A password session may.
    ask(&mut admin, saslcert("set", "pw2", change))
        .await
        .unwrap();

    // Disable: no new logins, the live session stays.
    ask(
        &mut admin,
        saslcert("set", "d2", named("disable", "laptop")),
    )
    .await
    .unwrap();
    check(
        &server,
        ListenerKind::DirectTls,
        "disabled",
        &laptop,
        None,
        Expect::Fails(Failure::NotAuthorized),
    )
    .await;
    on_laptop
        .send(
            Element::new("iq", ns::CLIENT)
                .with_attribute("type", "get")
                .with_attribute("id", "alive")
                .with_child(Element::new("ping", ns::PING)),
        )
        .await;
    assert_eq!(on_laptop.recv().await.attribute("type"), Some("result"));

    // Revoke: the live session ends within a second.
    let started = Instant::now();
    ask(&mut admin, saslcert("set", "r2", named("revoke", "phone")))
        .await
        .unwrap();
    let Err(ClientError::Stream(error)) = on_phone.closed().await else {
        panic!()
    };
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(error.condition, StreamCondition::NotAuthorized);
    assert_eq!(
        error.text.as_deref(),
        Some("This client side certificate has been revoked.")
    );
    check(
        &server,
        ListenerKind::Starttls,
        "revoked",
        &phone,
        None,
        Expect::Fails(Failure::NotAuthorized),
    )
    .await;
    let items = ask(
        &mut admin,
        saslcert("get", "i3", Element::new("items", SASLCERT)),
    )
    .await
    .unwrap();
    assert_eq!(
        items.child("items", SASLCERT).unwrap().children().count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_cap_is_resource_constraint() {
    let mut config = common::config(ClientCertificatePolicy::Wanted);
    config.limits.max_certificates_per_account = 2;
    let server = TestServer::start_with(config).await;
    let mut admin =
        TestClient::connect(&server, Login::new("alice", ListenerKind::DirectTls)).await;
    for (i, expected) in [
        (1, None),
        (2, None),
        (3, Some(StanzaCondition::ResourceConstraint)),
    ] {
        let result = ask(
            &mut admin,
            saslcert(
                "set",
                &format!("c{i}"),
                append(
                    &format!("d{i}"),
                    &cert(&["alice@localhost"]).certificate_der,
                    false,
                ),
            ),
        )
        .await;
        assert_eq!(result.err().map(|e| e.condition), expected, "{i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passwordless_account_with_only_external() {
    let mut config = common::config(ClientCertificatePolicy::Wanted);
    config.sasl.mechanisms = vec!["EXTERNAL".into()];
    let server = TestServer::start_with(config).await;
    server
        .store()
        .create_account("dave@localhost", &[])
        .await
        .unwrap();
    let daves = cert(&["dave@localhost"]);
    register(&server, "dave@localhost", "only", &daves).await;
    for kind in [ListenerKind::Starttls, ListenerKind::DirectTls] {
        check(
            &server,
            kind,
            "passwordless",
            &daves,
            None,
            Expect::Bound("dave@localhost/test"),
        )
        .await;
        // No password mechanism is offered at all, even without a certificate.
        let mut client = TestClient::connect(&server, Login::new("dave", kind)).await;
        assert!(client.closed().await.is_err());
        assert!(
            client.stream.offered_mechanisms().is_empty(),
            "{:?}",
            client.stream.offered_mechanisms()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_socket_ends_sessions_of_a_certificate_revoked_elsewhere() {
    let server = TestServer::start().await;
    let alice = cert(&["alice@localhost"]);
    register(&server, "alice@localhost", "laptop", &alice).await;
    let mut live = TestClient::connect(
        &server,
        Login::certificate(
            "alice",
            ListenerKind::DirectTls,
            Identity::from_issued(&alice),
        ),
    )
    .await;
    assert_eq!(live.jid(), "alice@localhost/test");
    // What `sigil cert revoke` does: delete in the store, then tell the server.
    let entry = server
        .store()
        .revoke_certificate("alice@localhost", "laptop", now().unix_timestamp())
        .await
        .unwrap()
        .unwrap();
    let socket = server.dir.path().join("sigil.sock");
    let started = Instant::now();
    let closed =
        sigil_server::control::request_revoke(&socket, "alice@localhost", &entry.fingerprint).await;
    assert_eq!(closed, Some(1));
    let Err(ClientError::Stream(error)) = live.closed().await else {
        panic!()
    };
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(error.condition, StreamCondition::NotAuthorized);
    // Nonsense on the socket gets an error line, not a crash.
    assert_eq!(
        sigil_server::control::request_revoke(&socket, "not a jid@@", &[0; 32]).await,
        None
    );
}

/// A trusted CA's file changed in place (same name, the directory's own
/// time untouched) is read again at the next login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_ca_changed_in_place_is_read_again() {
    let server = TestServer::start().await;
    let first = Ca::new("First CA", &Options::new(now())).unwrap();
    let second = Ca::new("Second CA", &Options::new(now())).unwrap();
    trust(&server, "corp", &first);
    let jids = [Jid::new("alice@localhost").unwrap()];
    let by_second = client_certificate(&jids, &Options::new(now()), Some(&second)).unwrap();
    check(
        &server,
        ListenerKind::DirectTls,
        "not trusted yet",
        &by_second,
        None,
        Expect::Fails(Failure::NotAuthorized),
    )
    .await;
    let path = server.dir.path().join("trusted-cas/corp.pem");
    let directory_time = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .modified()
        .unwrap();
    // Rewritten in place, not replaced: the directory does not change.
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    file.write_all(second.issued().certificate_pem().as_bytes())
        .unwrap();
    drop(file);
    assert_eq!(
        std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .modified()
            .unwrap(),
        directory_time
    );
    check(
        &server,
        ListenerKind::DirectTls,
        "trusted after the change",
        &by_second,
        None,
        Expect::Bound("alice@localhost/test"),
    )
    .await;
}

/// Direct TLS negotiates ALPN `xmpp-client` (XEP-0368).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tls_speaks_alpn_xmpp_client() {
    let server = TestServer::start().await;
    let mut config = (*common::tls_client_config(&server.certificate(), None)).clone();
    config.alpn_protocols = vec![b"xmpp-client".to_vec()];
    let address = server.address(ListenerKind::DirectTls);
    let tls = common::tls_connect(address, std::sync::Arc::new(config))
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"xmpp-client"[..]));
}

/// `Server::reload` (SIGHUP) puts a renewed server certificate in use for
/// the next handshake, without a restart; a broken file leaves the one in
/// use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_server_certificate_is_used_after_a_reload() {
    let server = TestServer::start().await;
    let address = server.address(ListenerKind::DirectTls);
    let presented = |config: std::sync::Arc<rustls::ClientConfig>| async move {
        let tls = common::tls_connect(address, config).await.unwrap();
        tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    };
    let old = common::tls_client_config(&server.certificate(), None);
    let before = presented(old.clone()).await;
    let mut options = Options::new(now());
    options.days = 30;
    let renewed = sigil_x509::generate::server_certificate(DOMAIN, &options, None).unwrap();
    let running = server.server.as_ref().unwrap();
    // A broken file: refused, the old certificate stays.
    std::fs::write(server.dir.path().join("server.crt"), "not a certificate").unwrap();
    assert!(running.reload().is_err());
    assert_eq!(presented(old.clone()).await, before);
    // A certificate that does not fit the key: refused too.
    std::fs::write(
        server.dir.path().join("server.crt"),
        renewed.certificate_pem(),
    )
    .unwrap();
    assert!(running.reload().is_err());
    assert_eq!(presented(old).await, before);
    std::fs::write(server.dir.path().join("server.key"), renewed.key_pem()).unwrap();
    running.reload().unwrap();
    let new = common::tls_client_config(&server.certificate(), None);
    assert_eq!(presented(new).await, renewed.certificate_der);
}

/// A certificate whose extendedKeyUsage leaves out clientAuth is not for
/// logging in: XEP-0257 append refuses it, and one registered anyway
/// (by an older server) does not log in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_without_client_auth_is_neither_registered_nor_logged_in() {
    let server = TestServer::start().await;
    let ca = Ca::new("Some CA", &Options::new(now())).unwrap();
    let server_only = odd_certificate(&ca, Some("alice@localhost"), false, "alice");
    let mut admin =
        TestClient::connect(&server, Login::new("alice", ListenerKind::DirectTls)).await;
    let refused = ask(
        &mut admin,
        saslcert(
            "set",
            "a1",
            append("server-only", &server_only.certificate_der, false),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.condition, StanzaCondition::NotAcceptable);
    register(&server, "alice@localhost", "server-only", &server_only).await;
    check(
        &server,
        ListenerKind::DirectTls,
        "registered without clientAuth",
        &server_only,
        None,
        Expect::Fails(Failure::NotAuthorized),
    )
    .await;
    admin.close().await;
}

/// The control socket answers only the server's own user (or root): a
/// process of another user that could reach it (were its permissions
/// loosened) gets no answer. Needs root, to run that process as `nobody`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_socket_answers_only_the_servers_user() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start().await;
    let socket = server.dir.path().join("sigil.sock");
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root {
        eprintln!("skipped: needs root to run a client as another user");
        return;
    }
    // The server's user is answered.
    let own = sigil_server::control::request_end(
        &socket,
        "nobody@localhost",
        sigil_server::control::End::Disabled,
    )
    .await;
    assert_eq!(own, Some(0));
    // Let anyone reach the socket, then ask as nobody.
    std::fs::set_permissions(server.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let script = format!(
        "import socket\ns = socket.socket(socket.AF_UNIX)\ns.settimeout(5)\ns.connect({:?})\n\
         try:\n    s.sendall(b'ping\\n')\n    print(repr(s.recv(100)))\nexcept OSError as e:\n    print('refused', e)\n",
        socket.display().to_string()
    );
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("runuser")
            .args(["-u", "nobody", "--", "/usr/bin/python3", "-c", &script])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!said.contains("b'ok"), "another user was answered: {said}");
}

/// A server that trusts a new CA (as "corp").
async fn server_trusting_a_ca() -> (TestServer, Ca) {
    let server = TestServer::start().await;
    let ca = Ca::new("Corp CA", &Options::new(now())).unwrap();
    trust(&server, "corp", &ca);
    (server, ca)
}

/// A new certificate for alice@localhost issued by `ca`.
fn alice_by(ca: &Ca) -> Issued {
    client_certificate(
        &[Jid::new("alice@localhost").unwrap()],
        &Options::new(now()),
        Some(ca),
    )
    .unwrap()
}

fn crls_dir(server: &TestServer) -> std::path::PathBuf {
    server.dir.path().join("crls")
}

/// A revocation list signed by `ca` naming `revoked`, issued `days_ago`
/// and due again a day later.
fn crl(ca: &Ca, revoked: &[&Issued], days_ago: i64) -> Vec<u8> {
    let revoked: Vec<&[u8]> = revoked.iter().map(|i| &i.certificate_der[..]).collect();
    ca.revocation_list(&revoked, now() - time::Duration::days(days_ago), 1)
        .unwrap()
}

/// Revocation lists fail closed: a list a link points to is read again
/// when its target changes; every file in the directory is a list, so
/// OpenSSL's `<hash>.r0` names count; a directory that cannot be read,
/// one with more files than are read, and a list past its next update
/// refuse CA logins (temporary-auth-failure) rather than ignore what they
/// might say, as do lists other users may change; trusted CAs other users
/// may change are not used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_lists_fail_closed() {
    let (server, ca) = server_trusting_a_ca().await;
    let issued = alice_by(&ca);
    let other = alice_by(&ca);
    let dir = crls_dir(&server);
    std::fs::create_dir_all(&dir).unwrap();
    let expect = |case: &'static str, expect: Expect| {
        let server = &server;
        let issued = &issued;
        async move { check(server, ListenerKind::DirectTls, case, issued, None, expect).await }
    };

    // A link to a list kept elsewhere, whose target is rewritten.
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("corp.crl");
    std::fs::write(&target, crl(&ca, &[&other], 0)).unwrap();
    std::os::unix::fs::symlink(&target, dir.join("corp.crl")).unwrap();
    expect("listed elsewhere", Expect::Bound("alice@localhost/test")).await;
    std::fs::write(&target, crl(&ca, &[&other, &issued], 0)).unwrap();
    expect(
        "revoked through a link",
        Expect::Fails(Failure::NotAuthorized),
    )
    .await;
    std::fs::remove_file(dir.join("corp.crl")).unwrap();
    expect("no list", Expect::Bound("alice@localhost/test")).await;

    // c_rehash's names.
    std::fs::write(dir.join("1a2b3c4d.r0"), crl(&ca, &[&issued], 0)).unwrap();
    expect(
        "revoked in a .r0 file",
        Expect::Fails(Failure::NotAuthorized),
    )
    .await;
    std::fs::remove_file(dir.join("1a2b3c4d.r0")).unwrap();

    // A list past its next update: no CA login, but what it names stays
    // revoked (not-authorized, not a temporary failure).
    std::fs::write(dir.join("old.crl"), crl(&ca, &[&other], 10)).unwrap();
    expect("stale list", Expect::Fails(Failure::TemporaryAuthFailure)).await;
    check(
        &server,
        ListenerKind::DirectTls,
        "named by a stale list",
        &other,
        None,
        Expect::Fails(Failure::NotAuthorized),
    )
    .await;
    std::fs::remove_file(dir.join("old.crl")).unwrap();

    // Two lists of one CA: what either names is revoked, whichever comes
    // first by name.
    std::fs::write(dir.join("a-first.crl"), crl(&ca, &[&other], 0)).unwrap();
    std::fs::write(dir.join("b-second.crl"), crl(&ca, &[&issued], 0)).unwrap();
    expect(
        "named by the second list",
        Expect::Fails(Failure::NotAuthorized),
    )
    .await;
    std::fs::remove_file(dir.join("a-first.crl")).unwrap();
    std::fs::remove_file(dir.join("b-second.crl")).unwrap();

    // Not a directory: it cannot be read.
    std::fs::remove_dir(&dir).unwrap();
    std::fs::write(&dir, b"not a directory").unwrap();
    expect("unreadable", Expect::Fails(Failure::TemporaryAuthFailure)).await;
    std::fs::remove_file(&dir).unwrap();
    expect("no directory", Expect::Bound("alice@localhost/test")).await;

    // More files than are read.
    std::fs::create_dir_all(&dir).unwrap();
    for n in 0..=4096 {
        std::fs::write(dir.join(format!("{n}.crl")), crl(&ca, &[&other], 0)).unwrap();
    }
    expect(
        "too many files",
        Expect::Fails(Failure::TemporaryAuthFailure),
    )
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
    expect("fixed", Expect::Bound("alice@localhost/test")).await;

    // What others may change (and so lift a revocation or add a CA).
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("corp.crl"), crl(&ca, &[&other], 0)).unwrap();
    let anchors = server.dir.path().join("trusted-cas");
    // Lists others may change fail closed; trusted CAs others may change
    // are not used.
    for (path, loose, safe, case, failure) in [
        (
            dir.join("corp.crl"),
            0o666,
            0o644,
            "a list others may change",
            Failure::TemporaryAuthFailure,
        ),
        (
            dir.clone(),
            0o777,
            0o755,
            "a list directory others may change",
            Failure::TemporaryAuthFailure,
        ),
        (
            anchors.join("corp.pem"),
            0o646,
            0o644,
            "a CA others may change",
            Failure::NotAuthorized,
        ),
        (
            anchors.clone(),
            0o775,
            0o755,
            "a CA directory others may change",
            Failure::NotAuthorized,
        ),
    ] {
        mode(&path, loose);
        expect(case, Expect::Fails(failure)).await;
        mode(&path, safe);
    }
    expect("trusted again", Expect::Bound("alice@localhost/test")).await;
}

/// A reload (`SIGHUP`) checks the certificate sessions against the
/// revocation lists and trusted CAs read anew: the sessions of a
/// certificate a CA revoked end, registered or logged in by CA trust; a
/// registered CA-issued certificate its CA revoked no longer logs in; a
/// CA no longer trusted ends the sessions it vouched for; a self-signed
/// registered certificate is not concerned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_ends_the_sessions_of_certificates_no_longer_vouched_for() {
    let (server, ca) = server_trusting_a_ca().await;
    let by_ca = alice_by(&ca);
    let registered_by_ca = alice_by(&ca);
    let still_trusted = alice_by(&ca);
    let self_signed = cert(&["alice@localhost"]);
    register(&server, "alice@localhost", "ca-issued", &registered_by_ca).await;
    register(&server, "alice@localhost", "self-signed", &self_signed).await;
    let connect = |issued: &Issued, resource: &'static str| {
        let identity = Identity::from_issued(issued);
        let server = &server;
        async move {
            let client = TestClient::connect(
                server,
                Login::certificate("alice", ListenerKind::DirectTls, identity)
                    .resource(Some(resource)),
            )
            .await;
            assert_eq!(
                client.jid(),
                format!("alice@localhost/{resource}"),
                "{:?}",
                client.closed
            );
            client
        }
    };
    let mut anchored = connect(&by_ca, "anchored").await;
    let mut registered = connect(&registered_by_ca, "registered").await;
    let mut trusted = connect(&still_trusted, "trusted").await;
    let mut own = connect(&self_signed, "own").await;

    let dir = crls_dir(&server);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("corp.crl"),
        crl(&ca, &[&by_ca, &registered_by_ca], 0),
    )
    .unwrap();
    server.server.as_ref().unwrap().reload().unwrap();
    for client in [&mut anchored, &mut registered] {
        let Err(ClientError::Stream(error)) = client.closed().await else {
            panic!("a revoked certificate's session went on")
        };
        assert_eq!(error.condition, StreamCondition::NotAuthorized);
        assert_eq!(
            error.text.as_deref(),
            Some("This certificate has been revoked by its CA.")
        );
    }
    assert!(common::answers_a_ping(&mut trusted, "t").await);
    assert!(common::answers_a_ping(&mut own, "o").await);
    check(
        &server,
        ListenerKind::DirectTls,
        "registered, revoked by its CA",
        &registered_by_ca,
        None,
        Expect::Fails(Failure::NotAuthorized),
    )
    .await;

    // The CA is trusted no more.
    std::fs::remove_file(server.dir.path().join("trusted-cas/corp.pem")).unwrap();
    server.server.as_ref().unwrap().reload().unwrap();
    let Err(ClientError::Stream(error)) = trusted.closed().await else {
        panic!("a session of a CA no longer trusted went on")
    };
    assert_eq!(
        error.text.as_deref(),
        Some("This certificate is no longer trusted.")
    );
    assert!(common::answers_a_ping(&mut own, "o2").await);
    own.close().await;
}

/// A connection that had its certificate judged before a list named it
/// (EXTERNAL was offered alone at its handshake) is judged again when it
/// logs in: no verdict outlives the reading that gave it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verdict_from_before_a_revocation_list_is_not_reused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (server, ca) = server_trusting_a_ca().await;
    let issued = alice_by(&ca);
    let config =
        common::tls_client_config(&server.certificate(), Some(Identity::from_issued(&issued)));
    let mut tls = common::tls_connect(server.address(ListenerKind::DirectTls), config)
        .await
        .unwrap();
    tls.write_all(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>").await.unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 8192];
    while !seen.contains("</stream:features>") {
        let n = tokio::time::timeout(common::TIMEOUT, tls.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "{seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // Judged trusted: EXTERNAL alone.
    assert!(seen.contains("<mechanism>EXTERNAL</mechanism>"), "{seen}");
    assert!(!seen.contains("<mechanism>PLAIN</mechanism>"), "{seen}");
    let dir = crls_dir(&server);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("corp.crl"), crl(&ca, &[&issued], 0)).unwrap();
    server.server.as_ref().unwrap().reload().unwrap();
    tls.write_all(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
        .await
        .unwrap();
    let from = seen.len();
    while !seen[from..].contains("</failure>") && !seen[from..].contains("<success") {
        let n = tokio::time::timeout(common::TIMEOUT, tls.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "{seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        seen[from..].contains("<not-authorized/>"),
        "{}",
        &seen[from..]
    );
}
