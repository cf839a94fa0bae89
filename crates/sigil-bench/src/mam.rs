//! `mam-query`: one conversation's message archive (XEP-0313) filled
//! through the protocol, then queries for its last page timed.
//!
//! The fill: SENDERS connections of account FIRST (resources
//! `mam-fill0`…) send chat messages to one connection of account FIRST+1
//! at saturation (WINDOW unanswered messages per sender), until MESSAGES
//! have been delivered or FILL_SECONDS have passed, with a progress line
//! on standard error every 5 s. Every message delivered is one of the
//! conversation; the archive size reported is their count.
//!
//! The queries: a fresh connection of account FIRST asks QUERIES times,
//! one after another, for "the last MAX messages with FIRST+1" (a `with`
//! field, `<max>MAX</max>` and an empty `<before/>`); each is timed from
//! sending the IQ to its answer, and checked to bring MAX results (or the
//! whole archive, if smaller) and a `<fin/>`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sigil_client::{Client, Message, Presence};
use sigil_xml::ns;

use crate::ready::Ready;
use crate::report::say;
use crate::stats::{Latencies, rate};

/// The scenario's options.
pub(crate) struct MamQuery {
    pub(crate) first: usize,
    pub(crate) messages: u64,
    pub(crate) fill_seconds: u64,
    pub(crate) senders: usize,
    pub(crate) window: u64,
    pub(crate) queries: usize,
    pub(crate) max: usize,
}

/// What the fill phase did.
struct Filled {
    sent: u64,
    delivered: u64,
    seconds: f64,
}

pub(crate) async fn run(ready: Arc<Ready>, options: MamQuery) -> Result<(), String> {
    if ready.accounts.len() < options.first + 2 {
        return Err(format!(
            "mam-query uses accounts {} and {}; {} are prepared",
            options.first,
            options.first + 1,
            ready.accounts.len()
        ));
    }
    let filled = fill(&ready, &options).await?;
    // The archive's writes may trail the deliveries a little.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let peer = ready.accounts[options.first + 1].jid.clone();
    let mut client = connect(&ready, options.first, "mam-query").await?;
    let expected = usize::try_from(filled.delivered)
        .unwrap_or(usize::MAX)
        .min(options.max);
    let mut latencies = Latencies::default();
    let mut failed = 0usize;
    let mut first_failure = String::new();
    for k in 0..options.queries {
        match query(&mut client, &peer, options.max, k).await {
            Ok(answer) if answer.results == expected => latencies.push(answer.elapsed),
            Ok(answer) => {
                failed += 1;
                if first_failure.is_empty() {
                    first_failure =
                        format!("{} results where {expected} were expected", answer.results);
                }
            }
            Err(error) => {
                failed += 1;
                if first_failure.is_empty() {
                    first_failure = error;
                }
            }
        }
    }
    client.close().await;
    let (p50, p99) = (latencies.quantile_ms(0.5), latencies.quantile_ms(0.99));
    let fill_rate = filled.delivered as f64 / filled.seconds.max(1e-9);
    if ready.json {
        say(&serde_json::json!({
            "scenario": "mam-query",
            "transport": ready.transport.as_str(),
            "target_messages": options.messages,
            "archive_messages": filled.delivered,
            "fill_sent": filled.sent,
            "fill_complete": filled.delivered >= options.messages,
            "fill_seconds": filled.seconds, "fill_limit_seconds": options.fill_seconds,
            "fill_per_second": fill_rate,
            "queries": options.queries, "max": options.max,
            "answered": latencies.len(), "failed": failed, "first_failure": first_failure,
            "p50_ms": p50, "p99_ms": p99,
        })
        .to_string());
    } else {
        let reached = if filled.delivered >= options.messages {
            String::new()
        } else {
            format!(
                " (the fill stopped at its time limit, short of {})",
                options.messages
            )
        };
        say(&format!(
            "mam-query ({}): archive of {} messages{reached}, filled in {:.1} s ({fill_rate:.0}/s); {} queries for the last {}: {} answered with {expected} results and a <fin/>, {failed} failed{}; latency p50 {p50:.2} ms, p99 {p99:.2} ms",
            ready.transport.as_str(),
            filled.delivered,
            filled.seconds,
            options.queries,
            options.max,
            latencies.len(),
            if first_failure.is_empty() {
                String::new()
            } else {
                format!(" (first: {first_failure})")
            },
        ));
    }
    if failed > 0 {
        return Err(format!("{failed} queries failed: {first_failure}"));
    }
    Ok(())
}

async fn connect(ready: &Ready, index: usize, resource: &str) -> Result<Client, String> {
    ready
        .builder(index, None)
        .resource(resource)
        .connect()
        .await
        .map_err(|e| format!("account {index}: {e}"))
}

/// Sends until `options.messages` are delivered or the time is up.
async fn fill(ready: &Arc<Ready>, options: &MamQuery) -> Result<Filled, String> {
    let mut receiver = connect(ready, options.first + 1, "mam-receiver").await?;
    receiver
        .send_presence(&Presence::available())
        .await
        .map_err(|e| e.to_string())?;
    let to: jid::Jid = receiver.jid().parse().map_err(|e| format!("{e}"))?;
    let mut senders = Vec::new();
    for i in 0..options.senders.max(1) {
        senders.push(connect(ready, options.first, &format!("mam-fill{i}")).await?);
    }
    let target = options.messages;
    let in_flight = options.window.max(1) * senders.len() as u64;
    let next = Arc::new(AtomicU64::new(0));
    let delivered = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(tokio::sync::Notify::new());
    let stop = Arc::new(AtomicBool::new(false));
    let receiving = {
        let (delivered, progress, stop) = (delivered.clone(), progress.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                match tokio::time::timeout(Duration::from_millis(200), receiver.readable()).await {
                    Ok(Ok(())) => {
                        while let Ok(Some(element)) = receiver.try_recv().await {
                            if element.name() == "message" && element.has_child("body", ns::CLIENT)
                            {
                                delivered.fetch_add(1, Ordering::Relaxed);
                                progress.notify_waiters();
                            }
                        }
                    }
                    Ok(Err(_)) => break,
                    Err(_) if stop.load(Ordering::Relaxed) => break,
                    Err(_) => {}
                }
            }
            receiver.close().await;
        })
    };
    let start = Instant::now();
    let limit = Duration::from_secs(options.fill_seconds.max(1));
    let mut sending = tokio::task::JoinSet::new();
    for mut sender in senders {
        let (next, delivered, progress, to) = (
            next.clone(),
            delivered.clone(),
            progress.clone(),
            to.clone(),
        );
        sending.spawn(async move {
            let mut sent = 0u64;
            'send: while start.elapsed() < limit {
                while next.load(Ordering::Relaxed) >= delivered.load(Ordering::Relaxed) + in_flight
                {
                    let notified = progress.notified();
                    let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
                    if start.elapsed() >= limit {
                        break 'send;
                    }
                }
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= target {
                    break;
                }
                let message = Message {
                    from: None,
                    to: Some(to.clone()),
                    id: String::new(),
                    kind: sigil_client::MessageType::Chat,
                    body: Some(format!("archived message {n}")),
                    element: None,
                };
                if sender.send_message(&message).await.is_err() {
                    break;
                }
                sent += 1;
            }
            sender.close().await;
            sent
        });
    }
    let ticker = {
        let delivered = delivered.clone();
        tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let now = (Instant::now(), delivered.load(Ordering::Relaxed));
                let per_second = rate(usize::try_from(now.1 - last.1).unwrap_or(0), now.0 - last.0);
                eprintln!(
                    "mam-query fill: {} of {target} messages after {:.0} s ({per_second:.0}/s)",
                    now.1,
                    start.elapsed().as_secs_f64()
                );
                last = now;
            }
        })
    };
    let mut sent = 0u64;
    while let Some(done) = sending.join_next().await {
        sent += done.map_err(|e| e.to_string())?;
    }
    // Let the last ones arrive.
    let drain = Instant::now() + Duration::from_secs(10);
    while delivered.load(Ordering::Relaxed) < sent && Instant::now() < drain {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    ticker.abort();
    stop.store(true, Ordering::Relaxed);
    receiving.await.map_err(|e| e.to_string())?;
    Ok(Filled {
        sent,
        delivered: delivered.load(Ordering::Relaxed),
        seconds,
    })
}

/// One query's answer.
struct Answer {
    results: usize,
    elapsed: Duration,
}

async fn query(client: &mut Client, with: &str, max: usize, k: usize) -> Result<Answer, String> {
    // The client's own archive pages: it sends the query (`with`, `<max/>`,
    // an empty `<before/>`: the newest page), gathers the results that
    // carry its query id and checks the `<fin/>`.
    let with = jid::Jid::new(with).map_err(|e| format!("query {k}: {e}"))?;
    let wanted = sigil_client::ArchiveQuery::new(max)
        .with(with)
        .order(sigil_client::Order::NewestFirst);
    let mut archive = client.archive(wanted);
    let start = Instant::now();
    let page = tokio::time::timeout(Duration::from_secs(60), archive.next_page(client))
        .await
        .map_err(|_| format!("query {k}: no answer within 60 s"))?
        .map_err(|e| format!("query {k}: {e}"))?
        .ok_or_else(|| format!("query {k}: no page"))?;
    Ok(Answer {
        results: page.messages.len(),
        elapsed: start.elapsed(),
    })
}
