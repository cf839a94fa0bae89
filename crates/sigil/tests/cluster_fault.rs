//! Faults under load in a three-node cluster (`sigil serve` processes
//! sharing one PostgreSQL database and one NATS server): six users, two
//! on each node, send each other 10,002 messages with stream management
//! (XEP-0198), and one of three faults strikes mid-flow:
//!
//! - a node is killed with SIGKILL: its clients log in again on another
//!   node (their client's list of addresses) and send again what it had
//!   not acknowledged;
//! - PostgreSQL crashes and restarts (a server of the test's own);
//! - NATS is killed and restarts (likewise).
//!
//! Every message the cluster acknowledged reaches its recipient, and
//! none reaches an application twice: a copy that comes again (an
//! acknowledgement died with a node) has the same XEP-0359 ids, by which
//! the client drops it. A message the cluster refused with an error goes
//! again, as a client's retry would.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../../sigil-server/tests/common/nats.rs"]
mod nats;
mod process;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use process::{Guard, free_port, log_tail, serve_logged};
use sigil_client::{Backoff, Client, Transport};
use sigil_store::AccountStore;
use sigil_store::postgres::testing::{PrivateServer, Schema, admin_url};
use sigil_xml::{Element, ns};

/// Users, two on each node.
const USERS: usize = 6;
/// Messages each user sends (10,002 in all).
const EACH: usize = 1_667;
/// The fault strikes once this many messages were received.
const FAULT_AT: usize = USERS * EACH * 3 / 10;
/// Messages a client sends before it waits for the server's
/// acknowledgements.
const WINDOW: usize = 50;
/// The most a wait lasts.
const PATIENCE: Duration = Duration::from_secs(90);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    KillNode,
    RestartPostgres,
    RestartNats,
}

/// Where a node runs.
struct Node {
    dir: PathBuf,
    port: u16,
}

/// The services the nodes share, those of the test's own among them.
struct Services {
    storage: String,
    nats: String,
    _schema: Option<Schema>,
    postgres: Option<PrivateServer>,
    private_nats: Option<nats::PrivateNats>,
}

impl Services {
    fn for_fault(fault: Fault, runtime: &tokio::runtime::Runtime) -> Self {
        let (storage, schema, postgres) = if fault == Fault::RestartPostgres {
            let server = PrivateServer::start();
            (server.url.clone(), None, Some(server))
        } else {
            let schema = runtime.block_on(Schema::new(admin_url()));
            (schema.url.clone(), Some(schema), None)
        };
        let (nats, private_nats) = if fault == Fault::RestartNats {
            let server = nats::private_nats(&[]);
            (format!("nats://127.0.0.1:{}", server.port), Some(server))
        } else {
            (nats::nats_url(), None)
        };
        Self {
            storage,
            nats,
            _schema: schema,
            postgres,
            private_nats,
        }
    }
}

/// The node user `n` logs in to first.
fn home(n: usize) -> usize {
    n % 3
}

/// The recipient of user `from`'s message `k`: every other user in turn.
fn recipient(from: usize, k: usize) -> usize {
    (from + 1 + k % (USERS - 1)) % USERS
}

fn message(from: usize, k: usize) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attribute("to", format!("u{}@localhost", recipient(from, k)))
        .with_attribute("type", "chat")
        .with_attribute("id", format!("m{from}-{k}"))
        .with_child(Element::new("body", ns::CLIENT).with_text(format!("{from}:{k}")))
}

/// What one user's client saw.
#[derive(Debug, Default)]
struct Report {
    /// Messages received, by sender and number: how many times each.
    got: HashMap<(usize, usize), usize>,
    /// Its own messages refused with an error (and sent again).
    refused: usize,
    /// Times its stream ended and it connected again.
    reconnections: usize,
}

/// Shared by the users' tasks.
struct Flow {
    /// Messages received, by every user.
    received: AtomicUsize,
    /// Users who sent everything, had it acknowledged and received all
    /// theirs.
    complete: AtomicUsize,
}

const BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(100),
    max: Duration::from_secs(1),
    attempts: 120,
};

async fn connect(n: usize, nodes: &[(u16, PathBuf)]) -> Client {
    let pem = std::fs::read(nodes[0].1.join("server.crt")).unwrap();
    // Its node first, then the others.
    let addresses = (0..3).map(|i| ([127, 0, 0, 1], nodes[(home(n) + i) % 3].0).into());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let connected = Client::builder(format!("u{n}@localhost"))
            .addresses(addresses.clone())
            .transport(Transport::DirectTls)
            .trust_pem(&pem)
            .password("open sesame")
            .resource(format!("r{n}"))
            .stream_management(true)
            .connect()
            .await;
        match connected {
            Ok(client) => return client,
            Err(error) => {
                assert!(Instant::now() < deadline, "u{n} cannot connect: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// After the stream ended: connected again, resumed or with a new
/// session that is made available.
async fn recover(n: usize, client: &mut Client, report: &mut Report, error: &sigil_client::Error) {
    report.reconnections += 1;
    if let Err(again) = client.reconnect(BACKOFF).await {
        panic!("u{n}: the stream ended ({error}) and cannot come back: {again}");
    }
    if !client.resumed() {
        let presence = Element::new("presence", ns::CLIENT);
        if let Err(error) = client.send(&presence).await {
            Box::pin(recover(n, client, report, &error)).await;
        }
    }
}

/// Counts what arrived; sends again what was refused.
async fn take(n: usize, stanza: Element, client: &mut Client, report: &mut Report, flow: &Flow) {
    if stanza.name() != "message" {
        return;
    }
    if stanza.attribute("type") == Some("error") {
        let refused = stanza
            .attribute("id")
            .and_then(|id| id.strip_prefix(&format!("m{n}-")))
            .and_then(|k| k.parse::<usize>().ok());
        if let Some(k) = refused {
            report.refused += 1;
            if let Err(error) = client.send(&message(n, k)).await {
                recover(n, client, report, &error).await;
            }
        }
        return;
    }
    let Some(body) = stanza.child("body", ns::CLIENT) else {
        return;
    };
    let text = body.text();
    let Some((from, k)) = text.split_once(':') else {
        panic!("u{n}: an unexpected body {text:?}");
    };
    let key = (from.parse().unwrap(), k.parse().unwrap());
    assert_eq!(recipient(key.0, key.1), n, "u{n} got {key:?}");
    *report.got.entry(key).or_default() += 1;
    flow.received.fetch_add(1, Ordering::Relaxed);
}

/// One user: sends its messages (waiting for acknowledgements every
/// [`WINDOW`]) and reads, until every user has all of theirs.
async fn user(n: usize, nodes: Arc<Vec<(u16, PathBuf)>>, flow: Arc<Flow>) -> Report {
    let mut report = Report::default();
    let expected = (0..USERS)
        .filter(|&from| from != n)
        .map(|from| (0..EACH).filter(|&k| recipient(from, k) == n).count())
        .sum::<usize>();
    let mut client = connect(n, &nodes).await;
    client
        .send(&Element::new("presence", ns::CLIENT))
        .await
        .unwrap();
    let (mut sent, mut done) = (0, false);
    let deadline = Instant::now() + PATIENCE * 2;
    while flow.complete.load(Ordering::Relaxed) < USERS {
        if Instant::now() > deadline {
            let mut missing: HashMap<usize, Vec<usize>> = HashMap::new();
            for from in (0..USERS).filter(|&from| from != n) {
                for k in (0..EACH).filter(|&k| recipient(from, k) == n) {
                    if !report.got.contains_key(&(from, k)) {
                        missing.entry(from).or_default().push(k);
                    }
                }
            }
            panic!(
                "u{n}: sent {sent}, {} unacknowledged, received {} of {expected}; \
                 missing, by sender: {missing:?}",
                client.unacknowledged(),
                report.got.len()
            );
        }
        let step = if sent < EACH {
            sent += 1;
            match client.send(&message(n, sent - 1)).await {
                Ok(()) if client.unacknowledged() >= WINDOW => {
                    client.wait_acknowledged(PATIENCE).await
                }
                result => result,
            }
        } else if client.unacknowledged() > 0 {
            client.wait_acknowledged(PATIENCE).await
        } else {
            tokio::select! {
                readable = client.readable() => readable,
                () = tokio::time::sleep(Duration::from_millis(50)) => Ok(()),
            }
        };
        if let Err(error) = step {
            recover(n, &mut client, &mut report, &error).await;
        }
        loop {
            match client.try_recv().await {
                Ok(Some(stanza)) => take(n, stanza, &mut client, &mut report, &flow).await,
                Ok(None) => break,
                Err(error) => recover(n, &mut client, &mut report, &error).await,
            }
        }
        if !done && sent == EACH && client.unacknowledged() == 0 && report.got.len() == expected {
            done = true;
            flow.complete.fetch_add(1, Ordering::Relaxed);
        }
    }
    client.close().await;
    report
}

fn run(fault: Fault) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let services = Arc::new(Mutex::new(Services::for_fault(fault, &runtime)));
    let (storage, nats) = {
        let services = services.lock().unwrap();
        (services.storage.clone(), services.nats.clone())
    };
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
                     [storage]\nurl = '{storage}'\nmax_connections = 4\n\
                     [cluster]\nnats = '{nats}'\nnode = 'n{n}'\nname = 'fault_{name}'\n\
                     [limits]\nmax_offline_messages = {}\n",
                    USERS * EACH
                ),
            )
            .unwrap();
            Node { dir, port }
        })
        .collect();
    runtime.block_on(async {
        // The first node makes the tables; the accounts go in after.
        let store = sigil_store::PostgresStore::connect(&storage).await.unwrap();
        for n in 0..USERS {
            let credentials: Vec<_> = [
                sigil_sasl::Algorithm::Sha512,
                sigil_sasl::Algorithm::Sha256,
                sigil_sasl::Algorithm::Sha1,
            ]
            .into_iter()
            .map(|a| sigil_sasl::StoredCredentials::generate(a, "open sesame").unwrap())
            .collect();
            store
                .create_account(&format!("u{n}@localhost"), &credentials)
                .await
                .unwrap();
        }
        store.close().await;
    });
    let servers: Arc<Mutex<Vec<Option<Guard>>>> = Arc::new(Mutex::new(
        nodes
            .iter()
            .map(|node| Some(serve_logged(&node.dir, "sigil.toml")))
            .collect(),
    ));
    // `sigil cluster status` on any node's configuration lists them all.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = Command::new(env!("CARGO_BIN_EXE_sigil"))
            .current_dir(&nodes[2].dir)
            .args(["cluster", "status", "--config", "sigil.toml"])
            .output()
            .unwrap();
        let text = process::ok(&status);
        if text.contains("3 node(s), 0 session(s)") && !text.contains("dead") {
            break;
        }
        assert!(Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(200));
    }

    let flow = Arc::new(Flow {
        received: AtomicUsize::new(0),
        complete: AtomicUsize::new(0),
    });
    let addresses: Arc<Vec<(u16, PathBuf)>> =
        Arc::new(nodes.iter().map(|n| (n.port, n.dir.clone())).collect());
    let started = Instant::now();
    let (reports, struck) = runtime.block_on(async {
        let users: Vec<_> = (0..USERS)
            .map(|n| tokio::spawn(user(n, addresses.clone(), flow.clone())))
            .collect();
        // The fault, once enough went through.
        let striking = {
            let (flow, servers, services) = (flow.clone(), servers.clone(), services.clone());
            tokio::spawn(async move {
                while flow.received.load(Ordering::Relaxed) < FAULT_AT {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let at = flow.received.load(Ordering::Relaxed);
                tokio::task::spawn_blocking(move || strike(fault, &servers, &services))
                    .await
                    .unwrap();
                at
            })
        };
        let mut reports = Vec::new();
        for (n, user) in users.into_iter().enumerate() {
            match user.await {
                Ok(report) => reports.push(report),
                Err(error) => {
                    for node in &nodes {
                        eprintln!(
                            "{}'s log ends:\n{}",
                            node.dir.display(),
                            log_tail(&node.dir)
                        );
                    }
                    if let Some(postgres) = &services.lock().unwrap().postgres {
                        eprintln!("PostgreSQL's log ends:\n{}", postgres.log_tail());
                    }
                    panic!("u{n}: {error}");
                }
            }
        }
        (reports, striking.await.unwrap())
    });
    let elapsed = started.elapsed();
    let mut duplicates = 0;
    for (n, report) in reports.iter().enumerate() {
        for from in (0..USERS).filter(|&from| from != n) {
            for k in (0..EACH).filter(|&k| recipient(from, k) == n) {
                match report.got.get(&(from, k)) {
                    None => panic!("u{n} never got message {k} of u{from}"),
                    Some(&times) => duplicates += times - 1,
                }
            }
        }
    }
    let refused: usize = reports.iter().map(|r| r.refused).sum();
    let reconnections: Vec<usize> = reports.iter().map(|r| r.reconnections).collect();
    eprintln!(
        "{fault:?}: {} messages in {elapsed:?}, the fault after {struck}; \
         refused and sent again: {refused}; reconnections by user: {reconnections:?}; \
         duplicates: {duplicates}",
        USERS * EACH
    );
    assert_eq!(duplicates, 0, "a message reached an application twice");
    // Each user's archive has every message it sent and received (a
    // message sent again may be there twice: clients tell copies by
    // their origin id).
    let archived = runtime.block_on(async {
        let store = sigil_store::PostgresStore::connect(&storage).await.unwrap();
        let mut rows = 0;
        for n in 0..USERS {
            let bodies = archive(&store, n).await;
            rows += bodies.len();
            let kept: std::collections::HashSet<(usize, usize)> = bodies.into_iter().collect();
            for from in 0..USERS {
                for k in (0..EACH).filter(|&k| from == n || recipient(from, k) == n) {
                    assert!(
                        kept.contains(&(from, k)),
                        "message {k} of u{from} is not in u{n}'s archive"
                    );
                }
            }
        }
        store.close().await;
        rows
    });
    eprintln!(
        "archive rows: {archived} (two for each message: {})",
        2 * USERS * EACH
    );
    if fault == Fault::KillNode {
        // The killed node's users logged in again elsewhere.
        for n in (0..USERS).filter(|&n| home(n) == 1) {
            assert!(reports[n].reconnections > 0, "u{n}: {reconnections:?}");
        }
    }
    drop(servers);
}

/// The messages in user `n`'s archive, by sender and number.
async fn archive(store: &sigil_store::PostgresStore, n: usize) -> Vec<(usize, usize)> {
    use sigil_store::{ArchivePage, ArchiveQuery, ArchiveStore};
    let mut found = Vec::new();
    let mut page = ArchivePage::First;
    loop {
        let query = ArchiveQuery {
            page: page.clone(),
            max: 1000,
            ..ArchiveQuery::default()
        };
        let result = store
            .archive_query(&format!("u{n}@localhost"), &query)
            .await
            .unwrap();
        for message in &result.messages {
            let stanza = Element::parse(&message.stanza).unwrap();
            let text = stanza.child("body", ns::CLIENT).unwrap().text();
            let (from, k) = text.split_once(':').unwrap();
            found.push((from.parse().unwrap(), k.parse().unwrap()));
        }
        match result.messages.last() {
            Some(last) if !result.complete => page = ArchivePage::After(last.id.clone()),
            _ => return found,
        }
    }
}

fn strike(fault: Fault, servers: &Mutex<Vec<Option<Guard>>>, services: &Mutex<Services>) {
    match fault {
        Fault::KillNode => {
            let mut server = servers.lock().unwrap()[1].take().unwrap();
            server.0.kill().unwrap();
            server.0.wait().unwrap();
        }
        Fault::RestartPostgres => {
            let mut services = services.lock().unwrap();
            let postgres = services.postgres.as_mut().unwrap();
            postgres.crash();
            std::thread::sleep(Duration::from_secs(2));
            postgres.resume();
        }
        Fault::RestartNats => {
            let mut services = services.lock().unwrap();
            let nats = services.private_nats.as_mut().unwrap();
            nats.stop();
            std::thread::sleep(Duration::from_secs(2));
            nats.start();
        }
    }
}

#[test]
fn a_node_killed_under_load_loses_nothing_acknowledged() {
    run(Fault::KillNode);
}

#[test]
fn postgresql_restarted_under_load_loses_nothing_acknowledged() {
    run(Fault::RestartPostgres);
}

#[test]
fn nats_restarted_under_load_loses_nothing_acknowledged() {
    run(Fault::RestartNats);
}
