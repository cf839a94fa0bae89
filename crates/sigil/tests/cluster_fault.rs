//! A node of a three-node cluster (`sigil serve` processes sharing one
//! PostgreSQL schema and one NATS server) is killed with SIGKILL while
//! alice, on another node, sends bob, on the killed one, a stream of
//! messages with stream management (XEP-0198). Every message alice's
//! node acknowledged reaches bob, who logs in again on the third node
//! (as another device);
//! a message that comes twice (an acknowledgement from bob died with his
//! node) comes under the same XEP-0359 stanza id, so that his client
//! tells it. Alice hears that bob's session left, and the other nodes
//! forget it.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod process;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use process::{Guard, free_port, log_tail, serve_logged};
use sigil_client::{Client, Transport};
use sigil_store::{AccountStore, RosterItem, RosterStore, Subscription};
use sigil_xml::{Element, ns};

/// Messages alice sends.
const MESSAGES: usize = 2_000;
/// Bob's node is killed once he has this many.
const KILL_AT: usize = 500;
/// The most a wait lasts.
const PATIENCE: Duration = Duration::from_secs(60);

struct Node {
    dir: PathBuf,
    port: u16,
}

fn nats_url() -> String {
    if let Ok(url) = std::env::var("SIGIL_TEST_NATS_URL") {
        return url;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ensure-nats");
    let out = Command::new(script).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn start(node: &Node) -> Guard {
    serve_logged(&node.dir, "sigil.toml")
}

async fn client(node: &Node, user: &str, resource: &str) -> Client {
    let pem = std::fs::read(node.dir.join("server.crt")).unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let connected = Client::builder(format!("{user}@localhost"))
            .address(([127, 0, 0, 1], node.port).into())
            .transport(Transport::DirectTls)
            .trust_pem(&pem)
            .password("open sesame")
            .resource(resource)
            .stream_management(true)
            .connect()
            .await;
        match connected {
            Ok(client) => return client,
            Err(error) => {
                assert!(Instant::now() < deadline, "{user} cannot connect: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn message(n: usize) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attribute("to", "bob@localhost")
        .with_attribute("type", "chat")
        .with_attribute("id", format!("m{n}"))
        .with_child(Element::new("body", ns::CLIENT).with_text(format!("{n}")))
}

/// The XEP-0359 stanza id a message came with.
fn stanza_id(stanza: &Element) -> Option<String> {
    stanza
        .child("stanza-id", "urn:xmpp:sid:0")
        .and_then(|id| id.attribute("id"))
        .map(str::to_owned)
}

#[test]
fn a_killed_node_loses_nothing_acknowledged() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let schema = runtime.block_on(sigil_store::postgres::testing::Schema::new(
        sigil_store::postgres::testing::admin_url(),
    ));
    let nats = nats_url();
    let mut random = [0u8; 6];
    getrandom::fill(&mut random).unwrap();
    let name: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let temporary = tempfile::tempdir().unwrap();
    let root = temporary.path();
    // One server certificate for every node: clients trust the cluster.
    let (certificate, key) = (root.join("server.crt"), root.join("server.key"));
    sigil_server::tls::ensure_server_certificate("localhost", &certificate, &key).unwrap();
    let nodes: Vec<Node> = (1..=3)
        .map(|n| {
            let dir = root.join(format!("n{n}"));
            std::fs::create_dir(&dir).unwrap();
            std::fs::copy(&certificate, dir.join("server.crt")).unwrap();
            std::fs::copy(&key, dir.join("server.key")).unwrap();
            let port = free_port();
            std::fs::write(
                dir.join("sigil.toml"),
                format!(
                    "domain = 'localhost'\n\
                     [[listener]]\nkind = 'direct-tls'\naddress = '127.0.0.1:{port}'\n\
                     [storage]\nurl = '{}'\nmax_connections = 4\n\
                     [cluster]\nnats = '{nats}'\nnode = 'n{n}'\nname = 'fault_{name}'\n\
                     [limits]\nmax_offline_messages = {MESSAGES}\n",
                    schema.url
                ),
            )
            .unwrap();
            Node { dir, port }
        })
        .collect();
    runtime.block_on(async {
        let store = sigil_store::PostgresStore::connect(&schema.url)
            .await
            .unwrap();
        for user in ["alice", "bob"] {
            let credentials: Vec<_> = [
                sigil_sasl::Algorithm::Sha512,
                sigil_sasl::Algorithm::Sha256,
                sigil_sasl::Algorithm::Sha1,
            ]
            .into_iter()
            .map(|a| sigil_sasl::StoredCredentials::generate(a, "open sesame").unwrap())
            .collect();
            store
                .create_account(&format!("{user}@localhost"), &credentials)
                .await
                .unwrap();
        }
        for (owner, contact) in [("alice", "bob"), ("bob", "alice")] {
            let item = RosterItem {
                subscription: Subscription::Both,
                ..RosterItem::new(format!("{contact}@localhost"))
            };
            store
                .put_roster_item(&format!("{owner}@localhost"), &item)
                .await
                .unwrap();
        }
        store.close().await;
    });
    let mut servers: Vec<Option<Guard>> = nodes.iter().map(|node| Some(start(node))).collect();
    // `sigil cluster status` on any node's configuration lists them all.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = Command::new(env!("CARGO_BIN_EXE_sigil"))
            .current_dir(&nodes[2].dir)
            .args(["cluster", "status", "--config", "sigil.toml"])
            .output()
            .unwrap();
        let text = process::ok(&status);
        if text.contains("3 node(s), 0 session(s)") {
            for node in ["n1", "n2", "n3"] {
                assert!(text.lines().any(|l| l.starts_with(node)), "{text}");
            }
            assert!(!text.contains("dead"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(200));
    }

    let acknowledged = Arc::new(AtomicUsize::new(0));
    let (received, duplicates, heard_gone) = runtime.block_on(async {
        let mut bob = client(&nodes[1], "bob", "phone").await;
        bob.send(&Element::new("presence", ns::CLIENT))
            .await
            .unwrap();
        let mut alice = client(&nodes[0], "alice", "laptop").await;
        alice
            .send(&Element::new("presence", ns::CLIENT))
            .await
            .unwrap();
        // Alice hears bob is online: the nodes know of each other's sessions.
        let deadline = Instant::now() + PATIENCE;
        loop {
            let stanza = tokio::time::timeout(PATIENCE, alice.recv())
                .await
                .unwrap()
                .unwrap();
            if stanza.name() == "presence"
                && stanza.attribute("from") == Some("bob@localhost/phone")
            {
                break;
            }
            assert!(Instant::now() < deadline);
        }
        let killed_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
        let alice_dir = nodes[0].dir.clone();
        let alice_task = tokio::spawn({
            let acknowledged = acknowledged.clone();
            let killed_at = killed_at.clone();
            async move {
                // When alice heard bob's session on the killed node left.
                let mut gone = None;
                let listen = |stanza: &Element, gone: &mut Option<Duration>| {
                    if gone.is_none()
                        && stanza.name() == "presence"
                        && stanza.attribute("from") == Some("bob@localhost/phone")
                        && stanza.attribute("type") == Some("unavailable")
                    {
                        *gone = killed_at.lock().unwrap().map(|at| at.elapsed());
                    }
                };
                for n in 0..MESSAGES {
                    if let Err(error) = alice.send(&message(n)).await {
                        panic!(
                            "alice: {error}; her node's log ends:\n{}",
                            log_tail(&alice_dir)
                        );
                    }
                    if alice.unacknowledged() >= 200
                        && let Err(error) = alice.wait_acknowledged(PATIENCE).await
                    {
                        panic!(
                            "alice: {error}; her node's log ends:\n{}",
                            log_tail(&alice_dir)
                        );
                    }
                    acknowledged.store(
                        (n + 1).saturating_sub(alice.unacknowledged()),
                        Ordering::Relaxed,
                    );
                    // Not faster than bob's node is killed and found dead.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                alice.wait_acknowledged(PATIENCE).await.unwrap();
                acknowledged.store(MESSAGES, Ordering::Relaxed);
                let deadline = Instant::now() + Duration::from_secs(15);
                while gone.is_none() && Instant::now() < deadline {
                    if let Ok(Ok(stanza)) =
                        tokio::time::timeout(Duration::from_millis(200), alice.recv()).await
                    {
                        listen(&stanza, &mut gone);
                    }
                }
                alice.close().await;
                gone
            }
        });
        // Bob reads until his node is killed, then logs in on the third.
        let mut got: HashMap<usize, Vec<Option<String>>> = HashMap::new();
        let mut killed = false;
        while got.len() < MESSAGES {
            let next = tokio::time::timeout(PATIENCE, bob.recv()).await;
            match next {
                Err(_) => panic!("bob has {} of {MESSAGES} messages", got.len()),
                Ok(Ok(stanza)) => {
                    if let Some(body) = stanza.child("body", ns::CLIENT) {
                        got.entry(body.text().parse().unwrap())
                            .or_default()
                            .push(stanza_id(&stanza));
                    }
                    if !killed && got.len() >= KILL_AT {
                        killed = true;
                        *killed_at.lock().unwrap() = Some(Instant::now());
                        let mut server = servers[1].take().unwrap();
                        server.0.kill().unwrap();
                        server.0.wait().unwrap();
                    }
                }
                Ok(Err(_)) => {
                    assert!(killed, "bob's stream ended before his node was killed");
                    // Another resource: the old one is heard leaving.
                    bob = client(&nodes[2], "bob", "tablet").await;
                    bob.send(&Element::new("presence", ns::CLIENT))
                        .await
                        .unwrap();
                }
            }
        }
        let heard_gone = alice_task.await.unwrap();
        bob.close().await;
        let duplicates: usize = got.values().map(|ids| ids.len() - 1).sum();
        for (n, ids) in &got {
            assert!(
                ids.iter().all(|id| id.is_some() && *id == ids[0]),
                "message {n} came twice under different stanza ids: {ids:?}"
            );
        }
        (got.len(), duplicates, heard_gone)
    });
    assert_eq!(acknowledged.load(Ordering::Relaxed), MESSAGES);
    assert_eq!(received, MESSAGES, "every message reached bob");
    println!("duplicates (same stanza id): {duplicates}; unavailable heard after {heard_gone:?}");
    let heard_gone = heard_gone.expect("alice heard bob's session on the dead node leave");
    assert!(heard_gone < Duration::from_secs(10), "{heard_gone:?}");
    drop(servers);
}
