//! Crash safety: `sigil serve` is killed with SIGKILL while 10,000
//! messages flow, half to a recipient online with stream management and
//! half to one offline, then started again. Every message the server
//! acknowledged (XEP-0198) reaches its recipient, and the sender sends
//! again what it did not acknowledge; each recipient ends with every
//! message exactly once (a copy that comes twice, because an
//! acknowledgement died with the server, is told by its XEP-0359 ids).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod process;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use process::{Guard, free_port, log_tail, ok, serve_logged};
use sigil_client::{Backoff, Client, Transport};
use sigil_xml::{Element, ns};

/// Messages sent in all.
const MESSAGES: usize = 10_000;
/// Bob stops reading once he has this many; the server is killed while
/// he does not read, so messages to him are on their way.
const PAUSE_AT: usize = 1_000;
/// The most a wait for anything lasts.
const PATIENCE: Duration = Duration::from_secs(60);

fn start(d: &Path) -> Guard {
    serve_logged(d, "data/sigil.toml")
}

fn backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(500),
        attempts: 200,
    }
}

async fn client(d: &Path, port: u16, user: &str) -> Client {
    let pem = std::fs::read(d.join("data/server.crt")).unwrap();
    let mut attempts = 0;
    loop {
        let connected = Client::builder(format!("{user}@localhost"))
            .address(([127, 0, 0, 1], port).into())
            .transport(Transport::DirectTls)
            .trust_pem(&pem)
            .password("open sesame")
            .resource("crash")
            .stream_management(true)
            .connect()
            .await;
        match connected {
            Ok(client) => {
                assert!(client.stream_management(), "stream management is on");
                return client;
            }
            Err(error) => {
                attempts += 1;
                assert!(attempts < 200, "{user} cannot connect: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn available(client: &mut Client) -> bool {
    client
        .send(&Element::new("presence", ns::CLIENT))
        .await
        .is_ok()
}

fn message(n: usize) -> Element {
    let to = if n.is_multiple_of(2) { "bob" } else { "carol" };
    Element::new("message", ns::CLIENT)
        .with_attribute("to", format!("{to}@localhost"))
        .with_attribute("type", "chat")
        .with_attribute("id", format!("m{n}"))
        .with_child(Element::new("body", ns::CLIENT).with_text(format!("{n}")))
}

/// Receives until `expected` distinct messages came (reconnecting when the
/// server goes away), counting how often each came.
async fn receive(
    mut client: Client,
    expected: usize,
    d: &Path,
    mut pause: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::sync::oneshot::Receiver<()>,
    )>,
) -> (Client, HashMap<usize, usize>) {
    let mut got: HashMap<usize, usize> = HashMap::new();
    assert!(available(&mut client).await);
    while got.len() < expected {
        if got.len() == PAUSE_AT
            && let Some((paused, resume)) = pause.take()
        {
            paused.send(()).unwrap();
            resume.await.unwrap();
        }
        match tokio::time::timeout(PATIENCE, client.recv()).await {
            Err(_) => panic!(
                "{} of {expected} messages came; the server's log ends:\n{}",
                got.len(),
                log_tail(d)
            ),
            Ok(Ok(stanza)) => {
                if let Some(body) = stanza.child("body", ns::CLIENT) {
                    *got.entry(body.text().parse().unwrap()).or_default() += 1;
                }
            }
            Ok(Err(_)) => {
                client.reconnect(backoff()).await.unwrap();
                assert!(available(&mut client).await);
            }
        }
    }
    (client, got)
}

#[test]
fn nothing_acknowledged_is_lost_or_doubled_when_the_server_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    std::fs::create_dir(d.join("data")).unwrap();
    std::fs::write(
        d.join("data/sigil.toml"),
        format!(
            "domain = 'localhost'\n[limits]\nmax_offline_messages = {MESSAGES}\n\
             [[listener]]\nkind = 'direct-tls'\naddress = '127.0.0.1:{port}'\n"
        ),
    )
    .unwrap();
    std::fs::write(d.join("pw"), "open sesame\n").unwrap();
    for user in ["alice", "bob", "carol"] {
        ok(&Command::new(env!("CARGO_BIN_EXE_sigil"))
            .current_dir(d)
            .args(["user", "add", user, "--password-file", "pw"])
            .args(["--config", "data/sigil.toml"])
            .output()
            .unwrap());
    }
    let server = start(d);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let acknowledged = Arc::new(AtomicUsize::new(0));

    let (server, acknowledged_before) = runtime.block_on(async {
        let d = d.to_owned();
        let (paused_tx, paused_rx) = tokio::sync::oneshot::channel();
        let (resume_tx, resume_rx) = tokio::sync::oneshot::channel();
        let bob = tokio::spawn({
            let d = d.clone();
            async move {
                let bob = client(&d, port, "bob").await;
                receive(bob, MESSAGES / 2, &d, Some((paused_tx, resume_rx))).await
            }
        });
        let mut alice = client(&d, port, "alice").await;
        // Bob is online before the first message.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let alice_task = tokio::spawn({
            let sent = sent.clone();
            let acknowledged = acknowledged.clone();
            async move {
                for n in 0..MESSAGES {
                    if alice.send(&message(n)).await.is_err() {
                        // Sent again from what was not acknowledged.
                        alice.reconnect(backoff()).await.unwrap();
                    }
                    sent.store(n + 1, Ordering::Relaxed);
                    acknowledged.store(n + 1 - alice.unacknowledged(), Ordering::Relaxed);
                    if alice.unacknowledged() >= 500
                        && alice.wait_acknowledged(PATIENCE).await.is_err()
                    {
                        alice.reconnect(backoff()).await.unwrap();
                    }
                    acknowledged.store(n + 1 - alice.unacknowledged(), Ordering::Relaxed);
                }
                loop {
                    match alice.wait_acknowledged(PATIENCE).await {
                        Ok(()) => break,
                        Err(_) => alice.reconnect(backoff()).await.unwrap(),
                    }
                }
                alice
            }
        });
        // Bob stops reading; Alice goes on for a while; then SIGKILL.
        paused_rx.await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut server = server;
        server.0.kill().unwrap();
        server.0.wait().unwrap();
        let acknowledged_before = acknowledged.load(Ordering::Relaxed);
        let sent_before = sent.load(Ordering::Relaxed);
        let server = start(&d);
        resume_tx.send(()).unwrap();

        let alice = alice_task.await.unwrap();
        let (bob, to_bob) = bob.await.unwrap();
        // Carol comes online only now: hers were stored.
        let carol = client(&d, port, "carol").await;
        let (carol, to_carol) = receive(carol, MESSAGES / 2, &d, None).await;
        // Nothing more comes to either.
        let mut late = Vec::new();
        for (mut client, name) in [(bob, "bob"), (carol, "carol")] {
            while let Ok(Ok(stanza)) =
                tokio::time::timeout(Duration::from_millis(500), client.recv()).await
            {
                if stanza.name() == "message" {
                    late.push(format!("{name}: {stanza:?}"));
                }
            }
            client.close().await;
        }
        assert!(late.is_empty(), "{late:?}");
        alice.close().await;
        for (to, got, parity) in [("bob", &to_bob, 0), ("carol", &to_carol, 1)] {
            for n in (0..MESSAGES).filter(|n| n % 2 == parity) {
                assert_eq!(
                    got.get(&n),
                    Some(&1),
                    "message {n} to {to} (acknowledged before the crash: {})",
                    n < acknowledged_before
                );
            }
            assert_eq!(got.len(), MESSAGES / 2, "only what was sent to {to}");
        }
        (server, (acknowledged_before, sent_before))
    });
    let (acknowledged_before, sent_before) = acknowledged_before;
    assert!(
        acknowledged_before > 0 && acknowledged_before < sent_before,
        "the crash came with messages acknowledged and messages in flight: \
         {acknowledged_before} of {sent_before}"
    );
    assert_eq!(sent.load(Ordering::Relaxed), MESSAGES);
    drop(server);
}
