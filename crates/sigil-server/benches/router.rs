//! The router: registering and removing sessions, and routing a message to
//! a full JID among many bound sessions (lookup, queue, the receiving
//! session taking it off its queue), on one thread and on two at once.
//!
//! `cargo bench -p sigil-server --bench router`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jid::FullJid;
use sigil_server::router::{Router, SessionHandle, SessionMessage};
use sigil_xml::Element;

const SESSIONS: usize = 20_000;
const MESSAGES: usize = 200_000;
const RUNS: usize = 5;

fn jid(index: usize) -> FullJid {
    FullJid::new(&format!("user{index}@example.org/phone")).unwrap()
}

fn message(to: &FullJid) -> Element {
    Element::new("message", "jabber:client")
        .with_attribute("to", to.to_string())
        .with_attribute("from", "romeo@example.net/orchard")
        .with_attribute("type", "chat")
        .with_child(Element::new("body", "jabber:client").with_text("Wherefore art thou?"))
}

fn register_all(router: &Router, jids: &[FullJid]) -> Vec<Arc<SessionHandle>> {
    jids.iter()
        .map(|jid| {
            let (handle, replaced) = router
                .register(jid.clone(), 64, None, || false)
                .expect("never refused");
            assert!(replaced.is_none());
            handle
        })
        .collect()
}

/// Routes `count` messages round-robin over `targets`; each receiver takes
/// its message at once, as a session task would.
fn route(
    router: &Router,
    jids: &[FullJid],
    receivers: &[Arc<SessionHandle>],
    stanza: &Element,
    count: usize,
    offset: usize,
) {
    for n in 0..count {
        let index = (n * 7919 + offset) % jids.len();
        let session = router.session(&jids[index]).unwrap();
        session
            .send(SessionMessage::Stanza(Box::new(stanza.clone())))
            .unwrap();
        black_box(receivers[index].try_recv().unwrap());
    }
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn main() {
    let jids: Vec<FullJid> = (0..SESSIONS).map(jid).collect();
    let stanza = message(&jids[0]);

    let register = median(
        (0..RUNS)
            .map(|_| {
                let router = Router::new();
                let started = Instant::now();
                let handles = register_all(&router, &jids);
                for handle in &handles {
                    router.unregister(handle);
                }
                let elapsed = started.elapsed();
                assert!(router.is_empty());
                elapsed
            })
            .collect(),
    );
    println!(
        "register and unregister, {SESSIONS} sessions: {:.0} ns per session",
        register.as_secs_f64() * 1e9 / SESSIONS as f64
    );

    let router = Router::new();
    let receivers = register_all(&router, &jids);
    let one = median(
        (0..RUNS)
            .map(|_| {
                let started = Instant::now();
                route(&router, &jids, &receivers, &stanza, MESSAGES, 0);
                started.elapsed()
            })
            .collect(),
    );
    println!(
        "route a message among {SESSIONS} sessions, one thread: {:.0} ns per message ({:.2} M/s)",
        one.as_secs_f64() * 1e9 / MESSAGES as f64,
        MESSAGES as f64 / one.as_secs_f64() / 1e6
    );

    let clone = median(
        (0..RUNS)
            .map(|_| {
                let started = Instant::now();
                for _ in 0..MESSAGES {
                    black_box(Box::new(black_box(&stanza).clone()));
                }
                started.elapsed()
            })
            .collect(),
    );
    println!(
        "  of which copying the stanza (the server moves it instead): {:.0} ns",
        clone.as_secs_f64() * 1e9 / MESSAGES as f64
    );

    // Two threads, each routing to its own half of the sessions: the
    // shards' locks are shared, the queues are not.
    let (first, second) = receivers.split_at(SESSIONS / 2);
    let (first_jids, second_jids) = jids.split_at(SESSIONS / 2);
    let two = median(
        (0..RUNS)
            .map(|_| {
                let started = Instant::now();
                std::thread::scope(|scope| {
                    scope.spawn(|| route(&router, first_jids, first, &stanza, MESSAGES / 2, 0));
                    scope.spawn(|| route(&router, second_jids, second, &stanza, MESSAGES / 2, 1));
                });
                started.elapsed()
            })
            .collect(),
    );
    println!(
        "route a message among {SESSIONS} sessions, two threads: {:.2} M messages/s in all",
        MESSAGES as f64 / two.as_secs_f64() / 1e6
    );
}
