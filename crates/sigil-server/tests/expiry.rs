//! Warnings before a device's certificate expires, over real TLS: once
//! per certificate, to the account's sessions or offline.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{DOMAIN, Login, TestClient, TestServer};
use sigil_server::config::ListenerKind;
use sigil_x509::generate::{Options, client_certificate};
use sigil_x509::{Jid, OffsetDateTime};
use sigil_xml::ns;

/// Registers to `user` a certificate named `name` valid for `days`.
async fn register(server: &TestServer, user: &str, name: &str, days: u32) -> [u8; 32] {
    let jid = Jid::new(&format!("{user}@{DOMAIN}")).unwrap();
    let now = OffsetDateTime::now_utc();
    let issued = client_certificate(
        &[jid],
        &Options {
            days,
            ..Options::new(now)
        },
        None,
    )
    .unwrap();
    let entry = sigil_server::saslcert::entry_for(
        &format!("{user}@{DOMAIN}"),
        name,
        issued.certificate_der.clone(),
        false,
        now,
    )
    .unwrap();
    server.store().add_certificate(&entry).await.unwrap();
    entry.fingerprint
}

/// Sends initial presence and waits for it to come back: available.
async fn available(client: &mut TestClient) {
    client
        .send(sigil_xml::Element::new("presence", ns::CLIENT))
        .await;
    let own = client.jid();
    client
        .recv_matching(|s| s.name() == "presence" && s.attribute("from") == Some(own.as_str()))
        .await;
}

fn is_warning(stanza: &sigil_xml::Element) -> bool {
    stanza.name() == "message" && stanza.attribute("from") == Some(DOMAIN)
}

#[tokio::test]
async fn an_expiring_certificate_is_warned_about_once_and_others_not() {
    let server = TestServer::start().await;
    register(&server, "alice", "phone", 5).await;
    register(&server, "alice", "laptop", 30).await;
    register(&server, "alice", "old tablet", 3).await;
    server
        .store()
        .disable_certificate(&format!("alice@{DOMAIN}"), "old tablet")
        .await
        .unwrap();
    register(&server, "bob", "desk", 1).await;
    let mut alice =
        TestClient::connect(&server, Login::new("alice", ListenerKind::DirectTls)).await;
    available(&mut alice).await;
    let now = OffsetDateTime::now_utc();
    let sent = sigil_server::expiry::warn_once(server.context(), 14, now)
        .await
        .unwrap();
    // Alice's phone and bob's desk: not the laptop (30 days), not the
    // disabled tablet.
    assert_eq!(sent, 2);
    let warning = alice.recv_matching(is_warning).await;
    let body = warning.child("body", ns::CLIENT).unwrap().text();
    assert!(body.contains("\"phone\""), "{body}");
    assert!(
        body.contains("in 4 days") || body.contains("in 5 days"),
        "{body}"
    );
    assert_eq!(warning.attribute("type"), Some("normal"));
    assert!(alice.try_recv(Duration::from_millis(300)).await.is_none());
    // Once: a second walk, and one after a restart, send nothing.
    assert_eq!(
        sigil_server::expiry::warn_once(server.context(), 14, now)
            .await
            .unwrap(),
        0
    );
    assert!(alice.try_recv(Duration::from_millis(300)).await.is_none());
    // Bob was offline: his waits for his next login.
    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::Starttls)).await;
    bob.send(sigil_xml::Element::new("presence", ns::CLIENT))
        .await;
    let offline = bob.recv_matching(is_warning).await;
    assert!(
        offline
            .child("body", ns::CLIENT)
            .unwrap()
            .text()
            .contains("\"desk\" expires tomorrow")
            || offline
                .child("body", ns::CLIENT)
                .unwrap()
                .text()
                .contains("\"desk\" expires today"),
        "{}",
        offline.to_xml()
    );
    // The laptop, later, when its time comes.
    let later = now + time::Duration::days(20);
    assert_eq!(
        sigil_server::expiry::warn_once(server.context(), 14, later)
            .await
            .unwrap(),
        1
    );
    let laptop = alice.recv_matching(is_warning).await;
    assert!(
        laptop
            .child("body", ns::CLIENT)
            .unwrap()
            .text()
            .contains("\"laptop\""),
    );
}
