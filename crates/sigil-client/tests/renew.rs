//! A device renews its certificate against a Sigil server on loopback,
//! over real TLS and a real SQLite store: the next certificate logs in
//! beside the current one until its first login makes it the device's;
//! at no point can the device not log in.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sigil_client::renew::{self, RenewOptions, Renewal};
use sigil_client::{Client, Error, Transport};
use sigil_proto::client::ClientError;
use sigil_proto::error::StanzaCondition;
use sigil_server::config::{ListenerConfig, ListenerKind};
use sigil_server::{Config, Server};
use sigil_store::{CertificateEntry, Store};
use sigil_x509::generate::{self, Issued, Options};
use sigil_x509::{CertificateInfo, Jid, OffsetDateTime};

struct Fixture {
    _dir: tempfile::TempDir,
    server: Server,
    ca: Vec<u8>,
}

async fn start(issuing_ca: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new("localhost");
    config.listeners = vec![ListenerConfig {
        kind: ListenerKind::DirectTls,
        address: "127.0.0.1:0".parse().unwrap(),
        client_certificates: Default::default(),
    }];
    if issuing_ca {
        let ca = generate::Ca::new("Sigil issuing CA", &Options::new(now())).unwrap();
        let issuing = dir.path().join("issuing");
        std::fs::create_dir(&issuing).unwrap();
        std::fs::write(issuing.join("ca.crt"), ca.issued().certificate_pem()).unwrap();
        std::fs::write(issuing.join("ca.key"), ca.issued().key_pem()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            issuing.join("ca.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        config.auth.issuing_ca = Some("issuing".into());
    }
    let (certificate, key) = sigil_server::certificate_paths(&config, dir.path());
    sigil_server::tls::ensure_server_certificate("localhost", &certificate, &key).unwrap();
    let server = Server::start(&config, dir.path()).await.unwrap();
    let credentials: Vec<_> = sigil_sasl::Algorithm::ALL
        .into_iter()
        .map(|a| sigil_sasl::StoredCredentials::generate(a, "pw").unwrap())
        .collect();
    server
        .context()
        .store
        .create_account("alice@localhost", &credentials)
        .await
        .unwrap();
    let ca = std::fs::read(dir.path().join("server.crt")).unwrap();
    Fixture {
        _dir: dir,
        server,
        ca,
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// A certificate for alice made `age` days ago, valid `days` from then.
fn made(age: i64, days: u32, ca: Option<&generate::Ca>) -> Issued {
    generate::client_certificate(
        &[Jid::new("alice@localhost").unwrap()],
        &Options {
            days,
            ..Options::new(now() - time_days(age))
        },
        ca,
    )
    .unwrap()
}

fn time_days(days: i64) -> Duration {
    Duration::from_secs(u64::try_from(days).unwrap() * 86_400)
}

impl Fixture {
    fn store(&self) -> Arc<dyn Store> {
        self.server.context().store.clone()
    }

    fn builder(&self, resource: &str) -> sigil_client::ClientBuilder {
        Client::builder("alice@localhost")
            .address(self.server.address(ListenerKind::DirectTls).unwrap())
            .transport(Transport::DirectTls)
            .trust_pem(&self.ca)
            .resource(resource)
            .timeout(Duration::from_secs(10))
    }

    async fn register(&self, name: &str, issued: &Issued, no_cert_management: bool) {
        let info = CertificateInfo::from_der(&issued.certificate_der).unwrap();
        self.store()
            .add_certificate(&CertificateEntry {
                owner: "alice@localhost".into(),
                name: name.into(),
                fingerprint: info.sha256,
                der: issued.certificate_der.clone(),
                no_cert_management,
                disabled: false,
                added_at: now().unix_timestamp(),
            })
            .await
            .unwrap();
    }

    async fn login(
        &self,
        certificate_pem: &str,
        key_pem: &str,
        resource: &str,
    ) -> Result<Client, Error> {
        self.builder(resource)
            .client_certificate_pem(certificate_pem.as_bytes(), key_pem.as_bytes())
            .connect()
            .await
    }

    async fn fingerprint_of(&self, name: &str) -> [u8; 32] {
        self.store()
            .certificates("alice@localhost")
            .await
            .unwrap()
            .into_iter()
            .find(|entry| entry.name == name)
            .unwrap()
            .fingerprint
    }
}

fn sha256(pem: &str) -> [u8; 32] {
    CertificateInfo::parse(pem.as_bytes()).unwrap().sha256
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_certificate_logs_in_beside_the_old_until_it_replaces_it() {
    let f = start(false).await;
    let old = made(10, 365, None);
    f.register("laptop", &old, true).await;
    let (old_pem, old_key) = (old.certificate_pem(), old.key_pem());
    let mut session = f.login(&old_pem, &old_key, "laptop").await.unwrap();
    // A device that may not manage certificates still renews its own.
    let renewed = renew::renew(&mut session, &old.certificate_der, &RenewOptions::default())
        .await
        .unwrap();
    assert!(!renewed.signed);
    let info = CertificateInfo::parse(renewed.certificate_pem.as_bytes()).unwrap();
    assert_eq!(info.identities[0].as_str(), "alice@localhost");
    assert_eq!(renewed.not_after, info.not_after);
    // Pending: the device is unchanged, the old certificate logs in.
    assert_eq!(f.fingerprint_of("laptop").await, sha256(&old_pem));
    let again = f.login(&old_pem, &old_key, "other").await.unwrap();
    again.close().await;
    // The new one logs in, and so becomes the device's.
    let new = f
        .login(&renewed.certificate_pem, &renewed.key_pem, "new")
        .await
        .unwrap();
    assert_eq!(new.mechanism(), "EXTERNAL");
    assert_eq!(
        f.fingerprint_of("laptop").await,
        sha256(&renewed.certificate_pem)
    );
    let entry = &f.store().certificates("alice@localhost").await.unwrap()[0];
    assert!(entry.no_cert_management, "the device keeps its flags");
    // The old one's session ended, and the old one no longer logs in.
    let ended = session.recv().await;
    assert!(ended.is_err(), "{ended:?}");
    match f.login(&old_pem, &old_key, "late").await {
        Err(Error::Stream(ClientError::Sasl(_))) => {}
        other => panic!("the replaced certificate logged in: {other:?}"),
    }
    new.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_leaves_no_window_where_the_device_cannot_log_in() {
    let f = Arc::new(start(false).await);
    // Made 250 days ago for a year: less than a third is left.
    let old = made(250, 365, None);
    f.register("laptop", &old, false).await;
    let held = Arc::new(Mutex::new((old.certificate_pem(), old.key_pem())));
    // Logins attempted throughout with what the device holds at the time.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attempts = {
        let (f, held, stop) = (f.clone(), held.clone(), stop.clone());
        tokio::spawn(async move {
            let mut results = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || results.len() < 3 {
                let (certificate, key) = held.lock().unwrap().clone();
                n += 1;
                let mut result = f.login(&certificate, &key, &format!("probe{n}")).await;
                if result.is_err() {
                    // An attempt with credentials the device replaced while
                    // it was under way may find them replaced on the
                    // server too; the ones the device holds then must
                    // work at once. Anything else is a window.
                    let now_held = held.lock().unwrap().clone();
                    if now_held.0 != certificate {
                        result = f
                            .login(&now_held.0, &now_held.1, &format!("retry{n}"))
                            .await;
                    }
                }
                results.push(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                if let Ok(client) = result {
                    client.close().await;
                }
            }
            results
        })
    };
    let (certificate, key) = held.lock().unwrap().clone();
    let keeper = held.clone();
    let (client, renewal) = renew::connect_renewing(
        || f.builder("laptop"),
        certificate.as_bytes(),
        key.as_bytes(),
        &RenewOptions::default(),
        move |renewed| {
            *keeper.lock().unwrap() = (renewed.certificate_pem.clone(), renewed.key_pem.clone());
            Ok(())
        },
    )
    .await
    .unwrap();
    let Renewal::Renewed(renewed) = renewal else {
        panic!("not renewed: {renewal:?}");
    };
    assert_eq!(
        f.fingerprint_of("laptop").await,
        sha256(&renewed.certificate_pem)
    );
    // Some more attempts after the switch, then the verdict.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let results = attempts.await.unwrap();
    assert!(results.len() >= 3, "{results:?}");
    assert!(
        results.iter().all(Result::is_ok),
        "a login failed during renewal: {results:?}"
    );
    client.close().await;

    // Not due: nothing happens.
    let (client, renewal) = renew::connect_renewing(
        || f.builder("laptop"),
        renewed.certificate_pem.as_bytes(),
        renewed.key_pem.as_bytes(),
        &RenewOptions::default(),
        |_| panic!("renewed a certificate that was not due"),
    )
    .await
    .unwrap();
    assert!(matches!(renewal, Renewal::NotDue), "{renewal:?}");
    client.close().await;
    assert!(
        f.store()
            .certificate_renewals("alice@localhost")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_may_not_renew_and_what_a_revocation_takes() {
    let f = start(false).await;
    let laptop = made(1, 365, None);
    f.register("laptop", &laptop, false).await;
    // A password login has no device.
    let mut by_password = f.builder("pw").password("pw").connect().await.unwrap();
    let refused = renew::renew(
        &mut by_password,
        &laptop.certificate_der,
        &RenewOptions::default(),
    )
    .await
    .unwrap_err();
    let Error::Iq(error) = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(error.condition, StanzaCondition::NotAllowed);
    by_password.close().await;

    // A next certificate for another account is refused.
    let mut session = f
        .login(&laptop.certificate_pem(), &laptop.key_pem(), "laptop")
        .await
        .unwrap();
    let mallory = generate::client_certificate(
        &[Jid::new("mallory@localhost").unwrap()],
        &Options::new(now()),
        None,
    )
    .unwrap();
    let answer = session
        .iq(sigil_client::Iq::set(
            None,
            sigil_proto::renew::Renew::Certificate(mallory.certificate_der.clone()).to_element(),
        ))
        .await;
    assert!(matches!(answer, Err(Error::Iq(_))), "{answer:?}");
    // A signing request where the server signs none.
    let answer = session
        .iq(sigil_client::Iq::set(
            None,
            sigil_proto::renew::Renew::SigningRequest(
                laptop
                    .signing_request(&Jid::new("alice@localhost").unwrap())
                    .unwrap(),
            )
            .to_element(),
        ))
        .await;
    match answer {
        Err(Error::Iq(error)) => assert_eq!(error.condition, StanzaCondition::ServiceUnavailable),
        other => panic!("{other:?}"),
    }

    // Revoking the device while a renewal waits revokes both.
    let renewed = renew::renew(
        &mut session,
        &laptop.certificate_der,
        &RenewOptions::default(),
    )
    .await
    .unwrap();
    session.close().await;
    sigil_server::saslcert::revoke(
        f.server.context(),
        &"alice@localhost".parse().unwrap(),
        "laptop",
    )
    .await
    .unwrap();
    for (certificate, key) in [
        (laptop.certificate_pem(), laptop.key_pem()),
        (renewed.certificate_pem.clone(), renewed.key_pem.clone()),
    ] {
        match f.login(&certificate, &key, "after").await {
            Err(Error::Stream(ClientError::Sasl(_))) => {}
            other => panic!("a revoked certificate logged in: {other:?}"),
        }
    }
    assert_eq!(
        f.store()
            .revoked_certificates("alice@localhost")
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_signed_device_gets_its_next_certificate_from_the_ca() {
    let f = start(true).await;
    // Enrolled by invitation with a signing request: a CA-signed device.
    let now = now().unix_timestamp();
    f.store()
        .create_invite(
            &sigil_store::Invite {
                token_hash: sigil_store::invite_token_hash("T"),
                kind: sigil_store::InviteKind::Device {
                    account: "alice@localhost".into(),
                },
                device: None,
                creator: None,
                created_at: now,
                expires_at: now + 3600,
            },
            10,
            now,
        )
        .await
        .unwrap();
    let joined = sigil_client::join(
        "xmpp:alice@localhost?register;preauth=T",
        sigil_client::JoinOptions::new("phone"),
        |builder| {
            builder
                .address(f.server.address(ListenerKind::DirectTls).unwrap())
                .transport(Transport::DirectTls)
                .trust_pem(&f.ca)
                .resource("phone")
        },
    )
    .await
    .unwrap();
    assert!(joined.signed);
    let mut client = joined.client;
    let current = sigil_x509::pem_certificates(joined.certificate_pem.as_bytes()).unwrap();
    let renewed = renew::renew(&mut client, &current[0], &RenewOptions::default())
        .await
        .unwrap();
    assert!(renewed.signed);
    let old = CertificateInfo::from_der(&current[0]).unwrap();
    let new = CertificateInfo::parse(renewed.certificate_pem.as_bytes()).unwrap();
    assert_eq!(new.issuer, old.issuer);
    assert_ne!(new.sha256, old.sha256);
    client.close().await;
    let logged_in = f
        .login(&renewed.certificate_pem, &renewed.key_pem, "phone")
        .await
        .unwrap();
    assert_eq!(f.fingerprint_of("phone").await, new.sha256);
    logged_in.close().await;
}
