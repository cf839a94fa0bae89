//! The server on PostgreSQL (`[storage] url = "postgres://…"`), against a
//! real server in a schema of its own: password and certificate logins,
//! a message between two users, an offline message kept in the database
//! over a restart, and a revocation that holds after it.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{Identity, Login, TestClient, TestServer};
use sigil_server::config::{ClientCertificatePolicy, ListenerKind};
use sigil_store::postgres::testing::{Schema, admin_url};
use sigil_xml::{Element, ns};

fn message(to: &str, body: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attribute("to", to)
        .with_attribute("type", "chat")
        .with_attribute("id", format!("m-{body}"))
        .with_child(Element::new("body", ns::CLIENT).with_text(body))
}

fn body(stanza: &Element) -> Option<String> {
    stanza.child("body", ns::CLIENT).map(|b| b.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_runs_on_postgresql() {
    let schema = Schema::new(admin_url()).await;
    let mut config = common::config(ClientCertificatePolicy::Wanted);
    config.storage.url = schema.url.clone();
    config.validate().unwrap();
    let mut server = TestServer::start_with(config).await;
    let store = server.store();
    assert_eq!(
        store.accounts().await.unwrap(),
        ["alice@localhost", "bob@localhost", "carol@localhost"]
    );

    // A certificate registered in the database logs alice in.
    let (laptop, _) = common::registered_certificate(&*store, "alice", "laptop").await;
    let mut alice = TestClient::connect(
        &server,
        Login::certificate(
            "alice",
            ListenerKind::DirectTls,
            Identity::from_issued(&laptop),
        ),
    )
    .await;
    assert_eq!(alice.mechanism.as_deref(), Some("EXTERNAL"));
    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::Starttls)).await;
    assert!(bob.mechanism.as_deref().unwrap().starts_with("SCRAM-"));
    for client in [&mut alice, &mut bob] {
        client.send(Element::new("presence", ns::CLIENT)).await;
    }
    alice.send(message("bob@localhost", "over postgres")).await;
    let got = bob.recv_matching(|s| s.name() == "message").await;
    assert_eq!(body(&got).as_deref(), Some("over postgres"));

    // Carol is offline: the message waits in the database, over a restart.
    alice.send(message("carol@localhost", "later")).await;
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    while store.offline_count("carol@localhost").await.unwrap() == 0 {
        assert!(std::time::Instant::now() < deadline, "not stored");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    alice.close().await;
    bob.close().await;
    server.restart().await;
    let mut carol = TestClient::connect(&server, Login::new("carol", ListenerKind::Starttls)).await;
    carol.send(Element::new("presence", ns::CLIENT)).await;
    let got = carol.recv_matching(|s| s.name() == "message").await;
    assert_eq!(body(&got).as_deref(), Some("later"));
    carol.close().await;

    // A revocation is final, in the database too.
    let store = server.store();
    assert!(
        store
            .revoke_certificate("alice@localhost", "laptop", 0)
            .await
            .unwrap()
            .is_some()
    );
    let refused = TestClient::connect(
        &server,
        Login::certificate(
            "alice",
            ListenerKind::DirectTls,
            Identity::from_issued(&laptop),
        ),
    )
    .await;
    assert!(refused.jid.is_none(), "a revoked certificate logged in");
    drop(schema);
}
