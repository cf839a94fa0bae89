//! XEP-0484 FAST tokens over real TLS: issued after a certificate or
//! password login by SASL2, logging the same client in again in one round
//! trip, and refused with the right condition once their certificate is
//! disabled or revoked, their password changed, for another client, when
//! expired, replayed after invalidation, or over another channel.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{Identity, Login, TestClient, TestServer};
use sigil_proto::client::{ClientError, LoginPath};
use sigil_sasl::Failure;
use sigil_server::config::ListenerKind;
use sigil_store::CertificateEntry;
use sigil_x509::generate::{Issued, Options, client_certificate};
use sigil_x509::{CertificateInfo, Jid, OffsetDateTime};
use sigil_xml::{Element, ns};

const PHONE: &str = "d4565fa7-4d72-4749-b3d3-740edbf87770";
const OTHER: &str = "6b1e2a3c-0d4e-4f5a-8b6c-7d8e9fa0b1c2";
const SASLCERT: &str = "urn:xmpp:saslcert:1";

fn cert(jid: &str) -> Issued {
    client_certificate(
        &[Jid::new(jid).unwrap()],
        &Options::new(OffsetDateTime::now_utc()),
        None,
    )
    .unwrap()
}

async fn register(server: &TestServer, owner: &str, name: &str, issued: &Issued) {
    let info = CertificateInfo::from_der(&issued.certificate_der).unwrap();
    server
        .store()
        .add_certificate(&CertificateEntry {
            owner: owner.into(),
            name: name.into(),
            fingerprint: info.sha256,
            der: issued.certificate_der.clone(),
            no_cert_management: false,
            disabled: false,
            added_at: 0,
        })
        .await
        .unwrap();
}

/// A SASL2 login of alice's phone client over direct TLS.
fn phone() -> Login {
    let mut login = Login::new("alice", ListenerKind::DirectTls)
        .sasl2(true)
        .resource(None);
    login.agent = Some(PHONE.into());
    login
}

/// Logs in with the token; the SASL condition it failed with, if it did.
async fn with_token(
    server: &TestServer,
    token: &(String, String),
    change: impl FnOnce(&mut Login),
) -> Result<TestClient, Option<Failure>> {
    let mut login = phone().password("");
    login.fast_token = Some(token.clone());
    change(&mut login);
    let mut client = TestClient::connect(server, login).await;
    if client.jid.is_some() {
        return Ok(client);
    }
    match client.closed().await {
        Err(ClientError::FastTokenRefused(failure)) => Err(failure),
        other => panic!("not a refused token: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_a_certificate_dies_with_it() {
    let server = TestServer::start().await;
    let laptop = cert("alice@localhost");
    let phone_cert = cert("alice@localhost");
    register(&server, "alice@localhost", "laptop", &laptop).await;
    register(&server, "alice@localhost", "phone", &phone_cert).await;

    // The phone logs in with its certificate and asks for a token.
    let mut login = phone().mechanism("EXTERNAL").password("");
    login.client_identity = Some(Identity::from_issued(&phone_cert));
    login.request_token = true;
    let first = TestClient::connect(&server, login).await;
    assert_eq!(
        first.mechanism.as_deref(),
        Some("EXTERNAL"),
        "{:?}",
        first.closed
    );
    assert_eq!(first.stream.login_path(), LoginPath::Sasl2Bind2);
    let token = first.fast_token.clone().expect("a token");
    assert_eq!(token.0, "HT-SHA-256-EXPR", "bound to the TLS exporter");
    assert_eq!(token.1.len(), 96);
    first.close().await;

    // The token alone logs the phone in, in one round trip, with the
    // rights of its certificate (the same resource).
    let mut by_token = with_token(&server, &token, |_| {}).await.unwrap();
    assert_eq!(by_token.mechanism.as_deref(), Some("HT-SHA-256-EXPR"));
    assert_eq!(by_token.stream.login_path(), LoginPath::Sasl2Bind2);
    let resource = by_token.jid.clone().unwrap();

    // Another client id, another mechanism name, another channel: refused.
    assert_eq!(
        with_token(&server, &token, |login| login.agent = Some(OTHER.into()))
            .await
            .err(),
        Some(Some(Failure::NotAuthorized)),
        "another client"
    );
    assert_eq!(
        with_token(
            &server,
            &("HT-SHA-256-NONE".into(), token.1.clone()),
            |_| {}
        )
        .await
        .err(),
        Some(Some(Failure::NotAuthorized)),
        "the token under another mechanism"
    );
    assert_eq!(
        with_token(&server, &token, |login| login.wrong_channel_binding = true)
            .await
            .err(),
        Some(Some(Failure::NotAuthorized)),
        "over another channel"
    );

    // The laptop disables the phone: the token no longer logs in (the
    // session it opened goes on, as the certificate's own would, XEP-0257);
    // then revokes it: that session ends too.
    let mut login = Login::new("alice", ListenerKind::DirectTls)
        .mechanism("EXTERNAL")
        .password("");
    login.client_identity = Some(Identity::from_issued(&laptop));
    let mut manager = TestClient::connect(&server, login).await;
    for (id, operation) in [("disable", "disable"), ("revoke", "revoke")] {
        let request = Element::new("iq", ns::CLIENT)
            .with_attribute("type", "set")
            .with_attribute("id", id)
            .with_child(
                Element::new(operation, SASLCERT)
                    .with_child(Element::new("name", SASLCERT).with_text("phone")),
            );
        manager.send(request).await;
        let answer = manager
            .recv_matching(|s| s.attribute("id") == Some(id))
            .await;
        assert_eq!(answer.attribute("type"), Some("result"), "{answer:?}");
        assert_eq!(
            with_token(&server, &token, |_| {}).await.err(),
            Some(Some(Failure::NotAuthorized)),
            "after {operation}"
        );
        if operation == "disable" {
            assert!(by_token.closed.is_none());
            assert!(common::answers_a_ping(&mut by_token, "alive").await);
        }
    }
    let ended = tokio::time::timeout(Duration::from_secs(5), by_token.closed())
        .await
        .expect("the token's session ends");
    assert!(ended.is_err(), "{ended:?} ({resource})");
    manager.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expire_end_with_the_password_and_are_not_replayed() {
    let server = TestServer::start().await;
    let mut login = phone();
    login.request_token = true;
    let first = TestClient::connect(&server, login).await;
    assert!(first.mechanism.as_deref().unwrap().starts_with("SCRAM-"));
    let token = first.fast_token.clone().expect("a token");
    first.close().await;

    // Used, and asked to be invalidated: it works once.
    let client = with_token(&server, &token, |login| login.invalidate = true)
        .await
        .unwrap();
    client.close().await;
    assert_eq!(
        with_token(&server, &token, |_| {}).await.err(),
        Some(Some(Failure::NotAuthorized)),
        "replayed after invalidation"
    );

    // An expired token is credentials-expired.
    let mut login = phone();
    login.request_token = true;
    let second = TestClient::connect(&server, login).await;
    let token = second.fast_token.clone().expect("a token");
    second.close().await;
    let store = server.store();
    let kept = store.fast_tokens("alice@localhost", PHONE).await.unwrap();
    assert_eq!(kept.len(), 1);
    // (Kept again as the client's new token, in the place of the same
    // token unexpired.)
    let mut expired = kept[0].1.clone();
    expired.expires_at = OffsetDateTime::now_utc().unix_timestamp() - 1;
    let grounds = sigil_store::TokenGrounds::Token(expired.sealed.clone());
    store
        .issue_fast_token(&expired, &grounds, 64)
        .await
        .unwrap();
    assert_eq!(
        with_token(&server, &token, |_| {}).await.err(),
        Some(Some(Failure::CredentialsExpired)),
        "expired"
    );
    // Only the token's holder learns that: another token is just wrong.
    let guess = (token.0.clone(), "g".repeat(96));
    assert_eq!(
        with_token(&server, &guess, |_| {}).await.err(),
        Some(Some(Failure::NotAuthorized)),
        "a guess while an expired token is kept"
    );

    // A new password ends the tokens a password login got.
    let mut login = phone();
    login.request_token = true;
    let third = TestClient::connect(&server, login).await;
    let token = third.fast_token.clone().expect("a token");
    third.close().await;
    assert!(with_token(&server, &token, |_| {}).await.is_ok());
    let credentials: Vec<_> = sigil_sasl::Algorithm::ALL
        .into_iter()
        .map(|a| sigil_sasl::StoredCredentials::generate(a, "new-secret").unwrap())
        .collect();
    store
        .set_credentials("alice@localhost", &credentials)
        .await
        .unwrap();
    assert_eq!(
        with_token(&server, &token, |_| {}).await.err(),
        Some(Some(Failure::NotAuthorized)),
        "after the password changed"
    );
}
