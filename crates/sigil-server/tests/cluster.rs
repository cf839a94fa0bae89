//! Three nodes of one cluster in this process, sharing a PostgreSQL
//! schema and a NATS server (each test under a cluster name of its own):
//! users on different nodes chat, presence and roster pushes cross nodes,
//! a full JID lives on one node, and a revocation on one node ends a
//! session on another within a second.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
#[path = "common/nats.rs"]
mod nats;
#[path = "common/cluster.rs"]
mod nodes;

use std::time::{Duration, Instant};

use common::{Identity, Login, TestClient, TestServer};
use nats::{nats_url, private_nats, private_nats_with};
use nodes::{cluster, cluster_name};
use sigil_server::config::{ClientCertificatePolicy, ListenerKind};
use sigil_store::postgres::testing::{Schema, admin_url};
use sigil_store::{RosterItem, Subscription};
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

fn login(user: &str, resource: &str) -> Login {
    Login::new(user, ListenerKind::Starttls).resource(Some(resource))
}

/// Waits until `node` knows of `count` sessions of `account` (its own and
/// the other nodes').
async fn sessions_known(node: &TestServer, account: &str, count: usize) {
    let account = jid::BareJid::new(account).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let known = node.context().routes().sessions(&account).len();
        if known == count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{known} sessions of {account} known, not {count}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `node` knows of `count` available sessions of `account`.
async fn available_known(node: &TestServer, account: &str, count: usize) {
    let account = jid::BareJid::new(account).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sessions = node.context().routes().sessions(&account);
        let known = sessions.iter().filter(|s| s.presence.is_some()).count();
        if known == count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{known} available sessions of {account} known, not {count}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn befriend(store: &dyn sigil_store::Store, a: &str, b: &str) {
    for (owner, contact) in [(a, b), (b, a)] {
        let item = RosterItem {
            subscription: Subscription::Both,
            ..RosterItem::new(contact)
        };
        store.put_roster_item(owner, &item).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_on_different_nodes_chat_and_see_each_others_presence() {
    let cluster = cluster(3).await;
    let [n1, n2, n3] = &cluster.nodes[..] else {
        unreachable!()
    };
    befriend(&*n1.store(), "alice@localhost", "bob@localhost").await;
    let mut alice = TestClient::connect(n1, login("alice", "laptop")).await;
    let mut bob = TestClient::connect(n2, login("bob", "phone")).await;
    let mut carol = TestClient::connect(n3, login("carol", "desk")).await;
    // Alice's other device, on the third node, asks for the roster.
    let mut alice_desk = TestClient::connect(n3, login("alice", "desk")).await;
    alice_desk
        .send(
            Element::new("iq", ns::CLIENT)
                .with_attribute("type", "get")
                .with_attribute("id", "r1")
                .with_child(Element::new("query", "jabber:iq:roster")),
        )
        .await;
    alice_desk
        .recv_matching(|s| s.attribute("id") == Some("r1"))
        .await;
    sessions_known(n2, "alice@localhost", 2).await;
    sessions_known(n1, "bob@localhost", 1).await;

    // Presence crosses nodes: alice's two devices come online, then bob
    // does and hears of both (from the other nodes' directories), and
    // both hear of him.
    for client in [&mut alice, &mut alice_desk] {
        client.send(Element::new("presence", ns::CLIENT)).await;
    }
    available_known(n2, "alice@localhost", 2).await;
    bob.send(Element::new("presence", ns::CLIENT)).await;
    let mut heard = Vec::new();
    while heard.len() < 2 {
        let presence = bob
            .recv_matching(|s| {
                s.name() == "presence"
                    && s.attribute("from").is_some_and(|f| f.starts_with("alice@"))
            })
            .await;
        heard.push(presence.attribute("from").unwrap().to_owned());
    }
    heard.sort();
    assert_eq!(heard, ["alice@localhost/desk", "alice@localhost/laptop"]);
    for client in [&mut alice, &mut alice_desk] {
        let seen = client
            .recv_matching(|s| {
                s.name() == "presence" && s.attribute("from") == Some("bob@localhost/phone")
            })
            .await;
        assert_eq!(seen.attribute("type"), None);
    }

    // Messages cross nodes, to a full JID and to a bare one.
    alice
        .send(message("bob@localhost/phone", "hello bob"))
        .await;
    let got = bob.recv_matching(|s| s.name() == "message").await;
    assert_eq!(body(&got).as_deref(), Some("hello bob"));
    assert_eq!(got.attribute("from"), Some("alice@localhost/laptop"));
    bob.send(message("alice@localhost", "hello alice")).await;
    let got = alice.recv_matching(|s| s.name() == "message").await;
    assert_eq!(body(&got).as_deref(), Some("hello alice"));
    carol
        .send(message("bob@localhost", "from the third node"))
        .await;
    let got = bob.recv_matching(|s| s.name() == "message").await;
    assert_eq!(body(&got).as_deref(), Some("from the third node"));

    // A roster change on one node is pushed to the account's session on
    // another.
    alice
        .send(
            Element::new("iq", ns::CLIENT)
                .with_attribute("type", "set")
                .with_attribute("id", "add")
                .with_child(
                    Element::new("query", "jabber:iq:roster").with_child(
                        Element::new("item", "jabber:iq:roster")
                            .with_attribute("jid", "carol@localhost"),
                    ),
                ),
        )
        .await;
    let push = alice_desk
        .recv_matching(|s| s.name() == "iq" && s.attribute("type") == Some("set"))
        .await;
    let item = push
        .child("query", "jabber:iq:roster")
        .and_then(|q| q.child("item", "jabber:iq:roster"))
        .unwrap();
    assert_eq!(item.attribute("jid"), Some("carol@localhost"));

    // A session that ends is gone from the other nodes' directories, and
    // its contacts hear it left.
    bob.close().await;
    sessions_known(n1, "bob@localhost", 0).await;
    let gone = alice
        .recv_matching(|s| {
            s.name() == "presence" && s.attribute("from") == Some("bob@localhost/phone")
        })
        .await;
    assert_eq!(gone.attribute("type"), Some("unavailable"));
    // Now offline: a message for bob waits in the shared database.
    alice.send(message("bob@localhost", "while away")).await;
    let mut bob = TestClient::connect(n3, login("bob", "tablet")).await;
    bob.send(Element::new("presence", ns::CLIENT)).await;
    let got = bob.recv_matching(|s| s.name() == "message").await;
    assert_eq!(body(&got).as_deref(), Some("while away"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_jid_lives_on_one_node_the_newest_session_wins() {
    let cluster = cluster(2).await;
    let [n1, n2] = &cluster.nodes[..] else {
        unreachable!()
    };
    let mut first = TestClient::connect(n1, login("alice", "phone")).await;
    sessions_known(n2, "alice@localhost", 1).await;
    let mut second = TestClient::connect(n2, login("alice", "phone")).await;
    // The older session ends with conflict.
    let ended = tokio::time::timeout(Duration::from_secs(5), first.closed())
        .await
        .expect("the older session ended");
    assert!(format!("{ended:?}").contains("Conflict"), "{ended:?}");
    sessions_known(n1, "alice@localhost", 1).await;
    // The newer one gets what is sent to the full JID, from either node.
    let mut bob = TestClient::connect(n1, login("bob", "desk")).await;
    bob.send(message("alice@localhost/phone", "which one"))
        .await;
    let got = second.recv_matching(|s| s.name() == "message").await;
    assert_eq!(body(&got).as_deref(), Some("which one"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_node_ends_a_session_on_another_within_a_second() {
    let cluster = cluster(3).await;
    let [n1, n2, _n3] = &cluster.nodes[..] else {
        unreachable!()
    };
    let store = n1.store();
    let (laptop, fingerprint) = common::registered_certificate(&*store, "alice", "laptop").await;
    let mut alice = TestClient::connect(
        n2,
        Login::certificate(
            "alice",
            ListenerKind::DirectTls,
            Identity::from_issued(&laptop),
        ),
    )
    .await;
    assert_eq!(alice.mechanism.as_deref(), Some("EXTERNAL"));
    // Her password session on the first node stays.
    let mut other = TestClient::connect(n1, login("alice", "desk")).await;
    sessions_known(n1, "alice@localhost", 2).await;
    // `sigil cert revoke` talks to the first node's control socket.
    store
        .revoke_certificate("alice@localhost", "laptop", 0)
        .await
        .unwrap();
    let socket = n1.dir.path().join(&n1.config.auth.control_socket);
    let began = Instant::now();
    let ended = sigil_server::control::request_revoke(&socket, "alice@localhost", &fingerprint)
        .await
        .unwrap();
    assert_eq!(ended, 1, "one session ended");
    let closed = tokio::time::timeout(Duration::from_secs(1), alice.closed())
        .await
        .expect("the revoked session on the other node ended within a second");
    assert!(
        format!("{closed:?}").contains("not-authorized") || closed.is_err(),
        "{closed:?}"
    );
    let took = began.elapsed();
    assert!(took < Duration::from_secs(1), "{took:?}");
    sessions_known(n1, "alice@localhost", 1).await;
    assert!(common::answers_a_ping(&mut other, "still").await);
    // And the certificate logs in on no node.
    for node in [n1, n2] {
        let refused = TestClient::connect(
            node,
            Login::certificate(
                "alice",
                ListenerKind::DirectTls,
                Identity::from_issued(&laptop),
            ),
        )
        .await;
        assert!(refused.jid.is_none(), "a revoked certificate logged in");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocklist_changed_on_one_node_holds_on_the_others() {
    let cluster = cluster(2).await;
    let [n1, n2] = &cluster.nodes[..] else {
        unreachable!()
    };
    let mut alice = TestClient::connect(n1, login("alice", "laptop")).await;
    alice.send(Element::new("presence", ns::CLIENT)).await;
    let mut bob = TestClient::connect(n2, login("bob", "phone")).await;
    available_known(n2, "alice@localhost", 1).await;
    // Bob's node reads (and keeps) alice's empty blocklist.
    bob.send(message("alice@localhost", "before")).await;
    let got = alice.recv_matching(|s| s.name() == "message").await;
    assert_eq!(body(&got).as_deref(), Some("before"));
    let block = |kind: &str| {
        Element::new("iq", ns::CLIENT)
            .with_attribute("type", "set")
            .with_attribute("id", kind)
            .with_child(Element::new(kind, "urn:xmpp:blocking").with_child(
                Element::new("item", "urn:xmpp:blocking").with_attribute("jid", "bob@localhost"),
            ))
    };
    alice.send(block("block")).await;
    alice
        .recv_matching(|s| {
            s.attribute("id") == Some("block") && s.attribute("type") == Some("result")
        })
        .await;
    // The other node forgets what it kept: bob's next message is refused.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        bob.send(message("alice@localhost", "blocked?")).await;
        let answer = bob.recv_matching(|s| s.name() == "message").await;
        if answer.attribute("type") == Some("error") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bob's node still delivers to alice"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        alice
            .try_recv(Duration::from_millis(300))
            .await
            .is_none_or(|s| s.name() != "message"),
        "a blocked message arrived"
    );
    alice.send(block("unblock")).await;
    alice
        .recv_matching(|s| {
            s.attribute("id") == Some("unblock") && s.attribute("type") == Some("result")
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    bob.send(message("alice@localhost", "after")).await;
    let got = alice.recv_matching(|s| s.name() == "message").await;
    assert_eq!(body(&got).as_deref(), Some("after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_log_in_to_nats_with_the_credentials_of_its_url() {
    let nats = private_nats(&["--user", "sigil", "--pass", "s3cret/+@"]);
    let schema = Schema::new(admin_url()).await;
    let config = |url: String, node: &str| {
        let mut config = common::config(ClientCertificatePolicy::Wanted);
        config.storage.url = schema.url.clone();
        config.storage.max_connections = 2;
        config.cluster.nats = url;
        config.cluster.node = node.into();
        config
    };
    // Percent-encoded, as URLs carry them.
    let good = format!("nats://sigil:s3cret%2F%2B%40@127.0.0.1:{}", nats.port);
    let n1 = TestServer::start_with(config(good.clone(), "n1")).await;
    let n2 = TestServer::start_with(config(good, "n2")).await;
    let mut alice = TestClient::connect(&n1, login("alice", "one")).await;
    let mut bob = TestClient::connect(&n2, login("bob", "two")).await;
    sessions_known(&n1, "bob@localhost", 1).await;
    alice
        .send(message("bob@localhost/two", "over a guarded bus"))
        .await;
    let got = bob.recv_matching(|s| s.name() == "message").await;
    assert_eq!(body(&got).as_deref(), Some("over a guarded bus"));
    // A wrong password: the node does not start, and says why without
    // showing what it was given.
    let dir = tempfile::tempdir().unwrap();
    let bad = format!("nats://sigil:wrong-secret@127.0.0.1:{}", nats.port);
    let mut bad_config = config(bad, "n3");
    bad_config.tls = n1.config.tls.clone();
    let (certificate, key) = sigil_server::certificate_paths(&bad_config, dir.path());
    sigil_server::tls::ensure_server_certificate("localhost", &certificate, &key).unwrap();
    let refused = match sigil_server::Server::start(&bad_config, dir.path()).await {
        Ok(_) => panic!("a node started with a wrong NATS password"),
        Err(error) => error.to_string(),
    };
    assert!(refused.contains("cannot reach NATS"), "{refused}");
    assert!(!refused.contains("wrong-secret"), "{refused}");
    let shown = format!("{:?}", bad_config.cluster);
    assert!(
        !shown.contains("wrong-secret") && !shown.contains("sigil:"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_change_on_one_node_ends_the_sessions_it_names_on_every_node() {
    let cluster = cluster(3).await;
    let [n1, n2, n3] = &cluster.nodes[..] else {
        unreachable!()
    };
    let mut on_two = TestClient::connect(n2, login("alice", "two")).await;
    let mut on_three = TestClient::connect(n3, login("alice", "three")).await;
    let mut bob = TestClient::connect(n3, login("bob", "desk")).await;
    sessions_known(n1, "alice@localhost", 2).await;
    // A password change made through the first node's control socket
    // (`sigil user passwd`): her password sessions on the others end.
    let socket = n1.dir.path().join(&n1.config.auth.control_socket);
    let ended = sigil_server::control::request_end(
        &socket,
        "alice@localhost",
        sigil_server::control::End::Password,
    )
    .await
    .unwrap();
    assert_eq!(ended, 2);
    for client in [&mut on_two, &mut on_three] {
        let closed = tokio::time::timeout(Duration::from_secs(1), client.closed())
            .await
            .expect("the session ended within a second");
        assert!(
            format!("{closed:?}").contains("NotAuthorized"),
            "{closed:?}"
        );
    }
    sessions_known(n1, "alice@localhost", 0).await;
    // Another account's sessions stay.
    assert!(common::answers_a_ping(&mut bob, "still").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_to_start_when_nats_cannot_carry_its_largest_stanza() {
    let nats = private_nats_with("max_payload: 65536\n", &[]);
    let schema = Schema::new(admin_url()).await;
    let mut config = common::config(ClientCertificatePolicy::Wanted);
    config.storage.url = schema.url.clone();
    config.storage.max_connections = 2;
    config.cluster.nats = format!("nats://127.0.0.1:{}", nats.port);
    config.cluster.node = "n1".into();
    let dir = tempfile::tempdir().unwrap();
    let (certificate, key) = sigil_server::certificate_paths(&config, dir.path());
    sigil_server::tls::ensure_server_certificate("localhost", &certificate, &key).unwrap();
    let refused = match sigil_server::Server::start(&config, dir.path()).await {
        Ok(_) => panic!("a node started whose stanzas NATS cannot carry"),
        Err(error) => error.to_string(),
    };
    assert!(refused.contains("max_stanza_bytes"), "{refused}");
    // Within what NATS carries, it starts.
    config.limits.max_stanza_bytes = 32 * 1024;
    sigil_server::Server::start(&config, dir.path())
        .await
        .unwrap()
        .shutdown()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_recovers_when_nats_restarts() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut nats = private_nats(&[]);
    let schema = Schema::new(admin_url()).await;
    let mut nodes = Vec::new();
    for node in ["n1", "n2"] {
        let mut config = common::config(ClientCertificatePolicy::Wanted);
        config.storage.url = schema.url.clone();
        config.storage.max_connections = 2;
        config.cluster.nats = format!("nats://127.0.0.1:{}", nats.port);
        config.cluster.node = node.into();
        nodes.push(TestServer::start_with(config).await);
    }
    let [n1, n2] = &nodes[..] else { unreachable!() };
    let mut alice = TestClient::connect(n1, login("alice", "one")).await;
    let mut bob = TestClient::connect(n2, login("bob", "two")).await;
    bob.send(Element::new("presence", ns::CLIENT)).await;
    available_known(n1, "bob@localhost", 1).await;
    alice.send(message("bob@localhost", "before")).await;
    let got = bob.recv_matching(|s| s.name() == "message").await;
    assert_eq!(body(&got).as_deref(), Some("before"));

    // NATS goes, and comes back with nothing it held in memory.
    nats.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restarted = Instant::now();
    nats.start();
    // The nodes make the buckets again and claim their sessions: each
    // knows the other's again, and messages cross again.
    available_known(n1, "bob@localhost", 1).await;
    sessions_known(n2, "alice@localhost", 1).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    loop {
        n += 1;
        alice
            .send(message("bob@localhost/two", &format!("after {n}")))
            .await;
        if let Some(got) = bob.try_recv(Duration::from_millis(500)).await
            && got.name() == "message"
        {
            assert!(body(&got).unwrap().starts_with("after"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no message crossed after NATS came back"
        );
    }
    // The registry is whole again: a session that binds now is seen
    // from the other node, and a node that starts now learns of the
    // sessions bound before the restart.
    let _carol = TestClient::connect(n2, login("carol", "three")).await;
    sessions_known(n1, "carol@localhost", 1).await;
    eprintln!(
        "the registry was whole again {:?} after NATS restarted",
        restarted.elapsed()
    );
    let mut config = common::config(ClientCertificatePolicy::Wanted);
    config.storage.url = schema.url.clone();
    config.storage.max_connections = 2;
    config.cluster.nats = format!("nats://127.0.0.1:{}", nats.port);
    config.cluster.node = "n3".into();
    let n3 = TestServer::start_with(config).await;
    sessions_known(&n3, "alice@localhost", 1).await;
    available_known(&n3, "bob@localhost", 1).await;
    // The nodes are alive to each other: none was taken for dead.
    let deadline = Instant::now() + Duration::from_secs(10);
    for node in [n1, n2, &n3] {
        loop {
            let status = node.context().cluster.as_ref().unwrap().status();
            if status.len() == 3 {
                break;
            }
            assert!(Instant::now() < deadline, "{status:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `GET path` on a plain HTTP listener: the status line and the body.
async fn plain_get(address: std::net::SocketAddr, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).await.unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_its_metrics_on_the_admin_listener() {
    let schema = Schema::new(admin_url()).await;
    let nats = nats_url();
    let name = cluster_name();
    let mut nodes = Vec::new();
    for node in ["n1", "n2"] {
        let mut config = common::config(ClientCertificatePolicy::Wanted);
        config.storage.url = schema.url.clone();
        config.storage.max_connections = 2;
        config.cluster.nats = nats.clone();
        config.cluster.node = node.into();
        config.cluster.name = Some(name.clone());
        config.admin.metrics = Some("127.0.0.1:0".parse().unwrap());
        nodes.push(TestServer::start_with(config).await);
    }
    let [n1, n2] = &nodes[..] else { unreachable!() };
    let mut alice = TestClient::connect(n1, login("alice", "one")).await;
    let refused = TestClient::connect(n1, login("carol", "x").password("wrong")).await;
    assert!(refused.jid.is_none());
    let mut bob = TestClient::connect(n2, login("bob", "two")).await;
    sessions_known(n1, "bob@localhost", 1).await;
    bob.send(message("alice@localhost/one", "counted")).await;
    alice.recv_matching(|s| s.name() == "message").await;
    let address = n1.server.as_ref().unwrap().metrics_address().unwrap();
    let (status, body) = plain_get(address, "/metrics").await;
    assert!(status.contains("200"), "{status}");
    for expected in [
        "sigil_sessions{transport=\"tcp\"} 1",
        "sigil_sessions{transport=\"websocket\"} 0",
        "outcome=\"failed\"} 1",
        "sigil_cluster_remote_sessions 1",
        "sigil_store_up 1",
        "sigil_cluster_bus_up 1",
        "sigil_session_queued ",
    ] {
        assert!(body.contains(expected), "{expected} missing:\n{body}");
    }
    assert!(
        body.lines().any(
            |l| l.starts_with("sigil_logins_total{mechanism=\"SCRAM-SHA-")
                && l.contains("outcome=\"ok\"} 1")
        ),
        "{body}"
    );
    // The message bob's node counted, not alice's.
    let bobs = n2.server.as_ref().unwrap().metrics_address().unwrap();
    let (_, on_two) = plain_get(bobs, "/metrics").await;
    assert!(on_two.contains("sigil_messages_total 1"), "{on_two}");
    let (status, _) = plain_get(address, "/other").await;
    assert!(status.contains("404"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_a_node_that_shut_down_learns_on_another_what_was_handled() {
    use common::raw::{raw_login, resume_failure, until};
    use tokio::io::AsyncWriteExt;
    const ALICE: &str = "AGFsaWNlAGFsaWNlLXNlY3JldA==";
    let mut cluster = cluster(2).await;
    let mut bob = TestClient::connect(&cluster.nodes[1], login("bob", "desk")).await;
    // Alice's resumable session on the first node: two messages to bob,
    // three from him, the first of which she acknowledged.
    let (mut alice, mut seen) = raw_login(&cluster.nodes[0], ALICE).await;
    alice.write_all(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>sm</resource></bind></iq><enable xmlns='urn:xmpp:sm:3' resume='true'/>").await.unwrap();
    until(&mut alice, "<enabled", &mut seen).await;
    let enabled = &seen[seen.find("<enabled").unwrap()..];
    let enabled = Element::parse(&enabled[..enabled.find("/>").unwrap() + 2]).unwrap();
    let id = enabled.attribute("id").unwrap().to_owned();
    sessions_known(&cluster.nodes[1], "alice@localhost", 1).await;
    alice.write_all(b"<message to='bob@localhost/desk' type='chat'><body>a</body></message><message to='bob@localhost/desk' type='chat'><body>b</body></message>").await.unwrap();
    for body in ["one", "two", "three"] {
        bob.send(message("alice@localhost/sm", body)).await;
    }
    until(&mut alice, "three</body>", &mut seen).await;
    alice
        .write_all(b"<a xmlns='urn:xmpp:sm:3' h='1'/><r xmlns='urn:xmpp:sm:3'/>")
        .await
        .unwrap();
    until(
        &mut alice,
        "<a xmlns=\"urn:xmpp:sm:3\" h=\"2\"/>",
        &mut seen,
    )
    .await;
    for expected in ["a", "b"] {
        let got = bob.recv_matching(|s| s.name() == "message").await;
        assert_eq!(body(&got).as_deref(), Some(expected));
    }
    // Her node shuts down (a rolling restart): she is told so, and
    // resumes on the other node, which tells her what was handled.
    cluster.nodes[0].stop().await;
    let n2 = &cluster.nodes[1];
    let failed = resume_failure(n2, ALICE, &id, 2).await;
    assert!(
        failed.starts_with("<failed xmlns=\"urn:xmpp:sm:3\" h=\"2\"><item-not-found"),
        "{failed}"
    );
    // What she had not acknowledged waits for her there.
    let mut again = TestClient::connect(n2, login("alice", "again")).await;
    again.send(Element::new("presence", ns::CLIENT)).await;
    let got = again.recv_matching(|s| s.name() == "message").await;
    assert_eq!(body(&got).as_deref(), Some("three"));
    sessions_known(n2, "alice@localhost", 1).await;
}
