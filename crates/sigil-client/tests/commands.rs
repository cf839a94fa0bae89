//! The ad-hoc commands API (XEP-0050) against a Sigil server on loopback
//! over real TLS: listing, running, submitting, going back, canceling.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use sigil_client::commands::{self, Action, DataForm, Field, FormType, NoteType, Status};
use sigil_client::{Client, Error, Transport};
use sigil_sasl::{Algorithm, StoredCredentials};
use sigil_server::config::{ClientCertificatePolicy, ListenerConfig, ListenerKind};
use sigil_server::{Config, Server};
use sigil_store::CertificateEntry;
use sigil_x509::generate::{Options, client_certificate};
use sigil_x509::{CertificateInfo, Jid, OffsetDateTime};

const WAIT: Duration = Duration::from_secs(10);

async fn start() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new("localhost");
    config.listeners = vec![ListenerConfig {
        kind: ListenerKind::DirectTls,
        address: "127.0.0.1:0".parse().unwrap(),
        client_certificates: ClientCertificatePolicy::default(),
    }];
    config.admin.jids = vec!["alice@localhost".into()];
    let (certificate, key) = sigil_server::certificate_paths(&config, dir.path());
    sigil_server::tls::ensure_server_certificate("localhost", &certificate, &key).unwrap();
    let server = Server::start(&config, dir.path()).await.unwrap();
    let store = server.context().store.clone();
    for user in ["alice", "bob"] {
        let credentials: Vec<_> = Algorithm::ALL
            .into_iter()
            .map(|a| StoredCredentials::generate(a, &format!("{user}-secret")).unwrap())
            .collect();
        store
            .create_account(&format!("{user}@localhost"), &credentials)
            .await
            .unwrap();
    }
    let issued = client_certificate(
        &[Jid::new("alice@localhost").unwrap()],
        &Options::new(OffsetDateTime::now_utc()),
        None,
    )
    .unwrap();
    let entry = CertificateEntry {
        owner: "alice@localhost".into(),
        name: "phone".into(),
        fingerprint: CertificateInfo::from_der(&issued.certificate_der)
            .unwrap()
            .sha256,
        der: issued.certificate_der,
        no_cert_management: false,
        disabled: false,
        added_at: OffsetDateTime::now_utc().unix_timestamp(),
    };
    store.add_certificate(&entry).await.unwrap();
    (dir, server)
}

async fn login(dir: &tempfile::TempDir, server: &Server, user: &str) -> Client {
    let ca = std::fs::read(dir.path().join("server.crt")).unwrap();
    Client::builder(format!("{user}@localhost"))
        .address(server.address(ListenerKind::DirectTls).unwrap())
        .transport(Transport::DirectTls)
        .trust_pem(&ca)
        .password(format!("{user}-secret"))
        .resource("desk")
        .timeout(WAIT)
        .connect()
        .await
        .unwrap()
}

fn choose(var: &str, value: &str, form_type: &str) -> DataForm {
    let mut form = DataForm::typed(FormType::Submit, form_type);
    let mut field = Field::new(var, commands::FieldType::ListMulti);
    field.values.push(value.into());
    form.fields.push(field);
    form
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_run_submit_go_back_and_cancel() {
    let (dir, server) = start().await;
    let domain = Jid::new("localhost").unwrap();
    let mut alice = login(&dir, &server, "alice").await;
    let mut bob = login(&dir, &server, "bob").await;

    let listed = commands::list(&mut alice, &domain).await.unwrap();
    assert_eq!(listed.len(), 9, "{listed:?}");
    assert_eq!(listed[0].node, "urn:sigil:devices#list");
    assert_eq!(listed[0].name, "List my devices");
    assert_eq!(commands::list(&mut bob, &domain).await.unwrap().len(), 4);

    let devices = commands::execute(&mut alice, &domain, "urn:sigil:devices#list")
        .await
        .unwrap();
    assert_eq!(devices.status, Status::Completed);
    assert_eq!(devices.form.unwrap().value("name-1"), Some("phone"));

    // Two stages: prev is refused on the first, complete finishes.
    let stage = commands::execute(&mut alice, &domain, "urn:sigil:devices#disable")
        .await
        .unwrap();
    assert_eq!(stage.status, Status::Executing);
    let Err(Error::Iq(refused)) = commands::prev(&mut alice, &domain, &stage).await else {
        panic!("prev on the first stage was not refused")
    };
    assert_eq!(commands::specific_condition(&refused), Some("bad-action"));
    let done = commands::submit(
        &mut alice,
        &domain,
        &stage,
        Action::Complete,
        choose("devices", "phone", "urn:sigil:devices"),
    )
    .await
    .unwrap();
    assert_eq!(done.status, Status::Completed);
    assert_eq!(done.notes[0].kind, NoteType::Info);
    assert_eq!(done.notes[0].text, "Disabled phone.");

    let stage = commands::execute(&mut alice, &domain, "urn:sigil:devices#revoke")
        .await
        .unwrap();
    let canceled = commands::cancel(&mut alice, &domain, &stage).await.unwrap();
    assert_eq!(canceled.status, Status::Canceled);
    let certificates = server
        .context()
        .store
        .certificates("alice@localhost")
        .await
        .unwrap();
    assert_eq!(certificates.len(), 1, "a canceled revocation revoked");

    let Err(Error::Iq(refused)) = commands::execute(
        &mut bob,
        &domain,
        "http://jabber.org/protocol/admin#delete-user",
    )
    .await
    else {
        panic!("bob ran an administrator's command")
    };
    assert_eq!(refused.condition, sigil_client::StanzaCondition::Forbidden);
}
