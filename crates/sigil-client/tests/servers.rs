//! The client against other servers, started on loopback by
//! `scripts/xmpp-peer` with generated configs: Prosody 0.12 with
//! mod_client_certs (SCRAM, XEP-0257 append and list, EXTERNAL with the
//! appended certificate, revoke), ejabberd 23 (SCRAM, EXTERNAL with a
//! CA-signed certificate) — neither offers SASL2, so the client falls back
//! to SASL 1 — and Prosody 13 with its community modules (SASL2, Bind 2,
//! FAST, inline stream resumption, downgrade protection).
//!
//! The test command installs them (`scripts/xmpp-peer install`, as root).
//! `SIGIL_SKIP_INTEROP=1` skips these tests.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sigil_client::{Client, Error, FastToken, LoginPath, Message, Transport, saslcert};
use sigil_x509::generate::{self, Options};
use sigil_x509::{Jid, OffsetDateTime};

const DOMAIN: &str = "example.test";

mod support;
use support::{QUICK, Relay, next_body, until_closed};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/xmpp-peer")
}

/// Whether the peers can run: false (with a note) only when
/// `SIGIL_SKIP_INTEROP=1`; a missing server is a failure.
fn enabled(test: &str, program: &str) -> bool {
    if std::env::var("SIGIL_SKIP_INTEROP").as_deref() == Ok("1") {
        eprintln!("{test}: skipped: SIGIL_SKIP_INTEROP=1");
        return false;
    }
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{program} is not installed: run `scripts/xmpp-peer install` as root \
         (the test command does), or set SIGIL_SKIP_INTEROP=1"
    );
    true
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[track_caller]
fn peer(args: &[&str]) -> String {
    let out = Command::new(script()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "xmpp-peer {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running peer server, stopped when dropped.
struct Peer {
    kind: &'static str,
    dir: tempfile::TempDir,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let dir = self.dir.path().to_str().unwrap().to_owned();
        let _ = Command::new(script())
            .args(["stop", self.kind, &dir])
            .output();
    }
}

/// A directory the servers' own users can enter.
fn shared_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("sigil-peer-")
        .tempdir_in("/tmp")
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn options() -> Options {
    Options::new(OffsetDateTime::now_utc())
}

fn client_certificate(jid: &str, ca: Option<&generate::Ca>) -> generate::Issued {
    generate::client_certificate(&[Jid::new(jid).unwrap()], &options(), ca).unwrap()
}

/// A Prosody (`kind`: `prosody` for 0.12, `prosody13`) on two free
/// loopback ports, STARTTLS and direct TLS, with a fresh server
/// certificate for `DOMAIN` and `user` registered with `password`.
struct Prosody {
    peer: Peer,
    c2s: u16,
    direct: u16,
    /// The server certificate, PEM, for the client to trust.
    trust: String,
}

fn start_prosody(kind: &'static str, user: &str, password: &str) -> Prosody {
    let dir = shared_dir();
    let d = dir.path().to_str().unwrap().to_owned();
    let server = generate::server_certificate(DOMAIN, &options(), None).unwrap();
    std::fs::write(dir.path().join("in.crt"), server.certificate_pem()).unwrap();
    std::fs::write(dir.path().join("in.key"), server.key_pem()).unwrap();
    let (c2s, direct) = (free_port(), free_port());
    let (c2s_text, direct_text) = (c2s.to_string(), direct.to_string());
    let crt = format!("{d}/in.crt");
    let key = format!("{d}/in.key");
    peer(&[
        "start",
        kind,
        &d,
        DOMAIN,
        &c2s_text,
        &direct_text,
        &crt,
        &key,
    ]);
    let peer_guard = Peer { kind, dir };
    peer(&["register", kind, &d, user, DOMAIN, password]);
    Prosody {
        peer: peer_guard,
        c2s,
        direct,
        trust: server.certificate_pem(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prosody_scram_then_xep_0257_then_external() {
    if !enabled("prosody", "prosody") {
        return;
    }
    let prosody = start_prosody("prosody", "alice", "alice-secret");
    let (c2s, direct, trust) = (prosody.c2s, prosody.direct, prosody.trust.clone());
    let builder = |transport: Transport| {
        let port = if transport == Transport::DirectTls {
            direct
        } else {
            c2s
        };
        Client::builder(format!("alice@{DOMAIN}"))
            .address(([127, 0, 0, 1], port).into())
            .transport(transport)
            .trust_pem(trust.as_bytes())
            .timeout(Duration::from_secs(10))
    };

    let mut manager = builder(Transport::StartTls)
        .password("alice-secret")
        .resource("manager")
        .connect()
        .await
        .unwrap();
    assert!(
        manager.mechanism().starts_with("SCRAM-SHA-1"),
        "{}",
        manager.mechanism()
    );
    assert_eq!(manager.jid(), format!("alice@{DOMAIN}/manager"));
    // Prosody 0.12 has no SASL2: the client falls back to SASL 1.
    assert_eq!(manager.login_path(), LoginPath::Sasl1);
    let wrong = builder(Transport::StartTls)
        .password("nope")
        .connect()
        .await;
    assert!(matches!(wrong, Err(Error::Stream(_))), "{wrong:?}");

    // XEP-0257: append a self-signed certificate and list it.
    let laptop = client_certificate(&format!("alice@{DOMAIN}"), None);
    let (cert, key) = (laptop.certificate_pem(), laptop.key_pem());
    let before = builder(Transport::StartTls)
        .client_certificate_pem(cert.as_bytes(), key.as_bytes())
        .connect()
        .await;
    assert!(before.is_err(), "not appended yet: {before:?}");
    saslcert::append(&mut manager, "laptop", &laptop.certificate_der, false)
        .await
        .unwrap();
    let items = saslcert::list(&mut manager).await.unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].name, "laptop");
    assert_eq!(items[0].der, laptop.certificate_der);

    // EXTERNAL with it, over STARTTLS and direct TLS.
    for transport in [Transport::StartTls, Transport::DirectTls] {
        let device = builder(transport)
            .client_certificate_pem(cert.as_bytes(), key.as_bytes())
            .resource("laptop")
            .connect()
            .await
            .unwrap();
        assert_eq!(device.mechanism(), "EXTERNAL", "{transport:?}");
        assert_eq!(device.jid(), format!("alice@{DOMAIN}/laptop"));
        device.close().await;
    }

    // Revoke: the live session ends, and the certificate no longer logs in.
    let mut device = builder(Transport::DirectTls)
        .client_certificate_pem(cert.as_bytes(), key.as_bytes())
        .connect()
        .await
        .unwrap();
    saslcert::revoke(&mut manager, "laptop").await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), device.recv())
        .await
        .expect("the revoked session ends");
    assert!(ended.is_err(), "{ended:?}");
    assert!(saslcert::list(&mut manager).await.unwrap().is_empty());
    let after = builder(Transport::StartTls)
        .client_certificate_pem(cert.as_bytes(), key.as_bytes())
        .connect()
        .await;
    assert!(after.is_err(), "revoked: {after:?}");
    manager.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejabberd_scram_and_external_with_a_ca_signed_certificate() {
    if !enabled("ejabberd", "ejabberdctl") {
        return;
    }
    let dir = shared_dir();
    let d = dir.path().to_str().unwrap().to_owned();
    let server = generate::server_certificate(DOMAIN, &options(), None).unwrap();
    std::fs::write(
        dir.path().join("in.pem"),
        format!("{}{}", server.certificate_pem(), server.key_pem()),
    )
    .unwrap();
    let ca = generate::Ca::new("Sigil interop CA", &options()).unwrap();
    std::fs::write(dir.path().join("ca.crt"), ca.issued().certificate_pem()).unwrap();
    let c2s = free_port();
    let c2s_text = c2s.to_string();
    let bundle = format!("{d}/in.pem");
    let ca_file = format!("{d}/ca.crt");
    peer(&[
        "start", "ejabberd", &d, DOMAIN, &c2s_text, &bundle, &ca_file,
    ]);
    let _ejabberd = Peer {
        kind: "ejabberd",
        dir,
    };
    peer(&["register", "ejabberd", &d, "bob", DOMAIN, "bob-secret"]);
    let trust = server.certificate_pem();
    let builder = || {
        Client::builder(format!("bob@{DOMAIN}"))
            .address(([127, 0, 0, 1], c2s).into())
            .trust_pem(trust.as_bytes())
            .timeout(Duration::from_secs(15))
    };

    let client = builder().password("bob-secret").connect().await.unwrap();
    assert!(
        client.mechanism().starts_with("SCRAM-SHA-1"),
        "{}",
        client.mechanism()
    );
    assert!(client.jid().starts_with(&format!("bob@{DOMAIN}/")));
    // ejabberd 23 has no SASL2: the client falls back to SASL 1.
    assert_eq!(client.login_path(), LoginPath::Sasl1);
    client.close().await;
    let scram_only = builder()
        .password("bob-secret")
        .sasl(
            sigil_sasl::client::ClientConfig::new()
                .allow(sigil_sasl::client::AllowList::new().name("SCRAM-SHA-1")),
        )
        .connect()
        .await
        .unwrap();
    assert_eq!(scram_only.mechanism(), "SCRAM-SHA-1");
    scram_only.close().await;

    let signed = client_certificate(&format!("bob@{DOMAIN}"), Some(&ca));
    let client = builder()
        .client_certificate_pem(
            signed.certificate_pem().as_bytes(),
            signed.key_pem().as_bytes(),
        )
        .resource("cert")
        .connect()
        .await
        .unwrap();
    assert_eq!(client.mechanism(), "EXTERNAL");
    assert_eq!(client.jid(), format!("bob@{DOMAIN}/cert"));
    client.close().await;

    // A self-signed certificate is not from the configured CA.
    let own = client_certificate(&format!("bob@{DOMAIN}"), None);
    let refused = builder()
        .client_certificate_pem(own.certificate_pem().as_bytes(), own.key_pem().as_bytes())
        .connect()
        .await;
    assert!(refused.is_err(), "{refused:?}");
}

/// Where the Prosody 13 of `scripts/xmpp-peer install` is unpacked.
fn prosody13() -> String {
    let root = std::env::var("XMPP_PEER_PROSODY13_ROOT")
        .unwrap_or_else(|_| "/opt/sigil-peers/prosody13".to_owned());
    format!("{root}/bin/prosody")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prosody13_sasl2_bind2_fast_and_inline_resumption() {
    if !enabled("prosody 13", &prosody13()) {
        return;
    }
    let prosody = start_prosody("prosody13", "carol", "carol-secret");
    let (c2s, direct, trust) = (prosody.c2s, prosody.direct, prosody.trust.clone());
    let log = prosody.peer.dir.path().join("log/prosody.log");
    let account = format!("carol@{DOMAIN}");
    let builder = |transport: Transport, port: u16| {
        Client::builder(account.clone())
            .address(([127, 0, 0, 1], port).into())
            .transport(transport)
            .trust_pem(trust.as_bytes())
            .timeout(Duration::from_secs(10))
    };

    for (transport, port) in [(Transport::StartTls, c2s), (Transport::DirectTls, direct)] {
        let agent = sigil_proto::sasl2::new_uuid().unwrap();
        let make = || builder(transport, port).user_agent(&agent, Some("interop test"));
        let mut client = make()
            .password("carol-secret")
            .fast(true)
            .connect()
            .await
            .unwrap();
        assert_eq!(client.login_path(), LoginPath::Sasl2Bind2, "{transport:?}");
        // Prosody's internal_hashed store has SHA-1 only; the client binds
        // it to the TLS 1.3 channel.
        assert_eq!(client.mechanism(), "SCRAM-SHA-1-PLUS", "{transport:?}");
        let token = client.fast_token().expect("Prosody issued a FAST token");
        assert_eq!(token.mechanism, "HT-SHA-256-EXPR", "{transport:?}");
        // Bind 2: Prosody names the resource after the client's software.
        let bound = client.jid();
        assert!(
            bound.starts_with(&format!("{account}/Sigil~")),
            "{transport:?}: {bound}"
        );
        client
            .send_message(&Message::chat(client.full_jid().clone().into(), "by SASL2"))
            .await
            .unwrap();
        assert_eq!(next_body(&mut client).await, "by SASL2");

        // A reconnection logs in with the token, to the same resource.
        client.reconnect(QUICK).await.unwrap();
        assert_eq!(client.mechanism(), token.mechanism, "{transport:?}");
        assert_eq!(client.jid(), bound, "{transport:?}");
        client.close().await;

        // The token alone, in a new run.
        let alone = make().fast_token(token.clone()).connect().await.unwrap();
        assert_eq!(alone.mechanism(), token.mechanism, "{transport:?}");
        assert_eq!(alone.jid(), bound, "{transport:?}");
        alone.close().await;

        // A token Prosody does not know: dropped, the password used.
        let wrong = FastToken {
            token: "x".repeat(40),
            ..token.clone()
        };
        let fallback = make()
            .password("carol-secret")
            .fast_token(wrong)
            .connect()
            .await
            .unwrap();
        assert_eq!(fallback.mechanism(), "SCRAM-SHA-1-PLUS", "{transport:?}");
        assert!(fallback.fast_token().is_none(), "{transport:?}");
        fallback.close().await;

        // SASL 1 on request: no token asked for.
        let sasl1 = make()
            .password("carol-secret")
            .sasl2(false)
            .fast(true)
            .connect()
            .await
            .unwrap();
        assert_eq!(sasl1.login_path(), LoginPath::Sasl1, "{transport:?}");
        assert!(sasl1.fast_token().is_none(), "{transport:?}");
        sasl1.close().await;
    }

    // XEP-0474: mod_sasl_ssdp signed what it advertised into every SCRAM
    // exchange, and the client (which checks h= against what it saw) got in.
    let logged = std::fs::read_to_string(&log).unwrap();
    let signed = logged.matches("Calculated SSDP string").count();
    assert!(signed >= 6, "{signed} SCRAM exchanges carried h=");

    // XEP-0198 resumption inline in the SASL2 <authenticate/>, through a
    // connection that drops.
    let relay = Relay::start(([127, 0, 0, 1], direct).into()).await;
    let agent = sigil_proto::sasl2::new_uuid().unwrap();
    let mut client = builder(Transport::DirectTls, relay.address.port())
        .user_agent(&agent, None)
        .password("carol-secret")
        .stream_management(true)
        .connect()
        .await
        .unwrap();
    assert!(client.stream_management());
    assert!(client.resumption_id().is_some());
    let own = client.full_jid().clone();
    client
        .send_message(&Message::chat(own.clone().into(), "before"))
        .await
        .unwrap();
    assert_eq!(next_body(&mut client).await, "before");
    let bound = client.jid();
    relay.cut();
    until_closed(&mut client).await;
    client.reconnect(QUICK).await.unwrap();
    assert!(client.resumed(), "Prosody resumed the session");
    assert_eq!(client.login_path(), LoginPath::Sasl2Bind2);
    assert_eq!(client.jid(), bound);
    client
        .send_message(&Message::chat(own.into(), "after"))
        .await
        .unwrap();
    assert_eq!(next_body(&mut client).await, "after");
    client.close().await;
}
