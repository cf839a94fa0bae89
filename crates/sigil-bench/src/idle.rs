//! `idle`: many authenticated sessions held open; the server's memory per
//! session, and after they leave.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sigil_client::Client;

use crate::measure::{memory, settled};
use crate::ready::Ready;
use crate::report::say;
use crate::stats::Failures;

#[allow(clippy::cast_precision_loss)]
fn per(numerator: u64, base: u64, count: usize) -> f64 {
    numerator.saturating_sub(base) as f64 / count.max(1) as f64
}

/// What `idle` does.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Sessions to hold.
    pub(crate) sessions: usize,
    /// The first session's number (accounts and resources follow it).
    pub(crate) first: usize,
    /// Logins in flight at once.
    pub(crate) concurrency: usize,
    /// Source addresses 127.0.0.1 … 127.0.0.N.
    pub(crate) sources: u8,
    /// The server's process.
    pub(crate) pid: u32,
    /// The wait before each memory reading.
    pub(crate) settle: Duration,
    /// The most time spent opening sessions.
    pub(crate) max: Duration,
    /// Sessions opened and closed before the baseline.
    pub(crate) warmup: usize,
    /// Where the generators meet, and how many they are.
    pub(crate) barrier: Option<(PathBuf, usize)>,
}

/// Waits (at most `max`) until `count` generators have reached `point`
/// in `dir`, this one included.
async fn meet(dir: &Path, point: &str, count: usize, max: Duration) -> Result<(), String> {
    let mark = dir.join(format!("{point}.{}", std::process::id()));
    std::fs::write(&mark, b"").map_err(|e| format!("{}: {e}", mark.display()))?;
    let deadline = Instant::now() + max;
    loop {
        let arrived = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(Result::ok)
            .filter(|entry| {
                entry
                    .file_name()
                    .to_str()
                    .is_some_and(|name| name.starts_with(&format!("{point}.")))
            })
            .count();
        if arrived >= count {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("{arrived} of {count} generators reached {point}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Opens up to `sessions` sessions numbered from `first`, `concurrency`
/// logins at a time.
async fn open_sessions(
    ready: &Arc<Ready>,
    (first, sessions): (usize, usize),
    concurrency: usize,
    sources: u8,
    deadline: Instant,
    failures: &Arc<Failures>,
) -> Vec<Client> {
    let next = Arc::new(AtomicUsize::new(0));
    let (opened_tx, mut opened) = tokio::sync::mpsc::unbounded_channel::<Client>();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (ready, next, failures, opened_tx) = (
            ready.clone(),
            next.clone(),
            failures.clone(),
            opened_tx.clone(),
        );
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= sessions || Instant::now() >= deadline {
                    return;
                }
                let source = (sources > 1).then(|| {
                    let last = u8::try_from(i % usize::from(sources)).unwrap_or(0) + 1;
                    IpAddr::from([127, 0, 0, last])
                });
                match ready.builder(first + i, source).connect().await {
                    Ok(client) => {
                        let _ = opened_tx.send(client);
                    }
                    Err(error) => failures.record(&error),
                }
            }
        });
    }
    drop(opened_tx);
    let mut clients = Vec::with_capacity(sessions);
    while let Some(client) = opened.recv().await {
        clients.push(client);
    }
    while workers.join_next().await.is_some() {}
    clients
}

/// Every session closes its stream, 256 at a time.
async fn close_all(clients: Vec<Client>) {
    let mut closing = tokio::task::JoinSet::new();
    for client in clients {
        closing.spawn(client.close());
        if closing.len() >= 256 {
            closing.join_next().await;
        }
    }
    while closing.join_next().await.is_some() {}
}

pub(crate) async fn idle(ready: Arc<Ready>, plan: Plan) -> Result<(), String> {
    let Plan {
        sessions,
        first,
        concurrency,
        sources,
        pid,
        settle,
        max,
        warmup,
        barrier,
    } = plan;
    let failures = Arc::new(Failures::default());
    if warmup > 0 {
        // Caches that fill once (the database's pages, the runtime's
        // tables) are part of an idle server, not of its sessions.
        let deadline = Instant::now() + max;
        // Numbered apart from every generator's sessions.
        let range = ((1 << 40) + first, warmup);
        let warm = open_sessions(&ready, range, concurrency, sources, deadline, &failures).await;
        close_all(warm).await;
    }
    if let Some((dir, count)) = &barrier {
        meet(dir, "warm", *count, max).await?;
    }
    let (base_rss, base_anon) = settled(pid, settle).await?;
    let start = Instant::now();
    let deadline = start + max;
    let range = (first, sessions);
    let clients = open_sessions(&ready, range, concurrency, sources, deadline, &failures).await;
    let opened_in = start.elapsed();
    if let Some((dir, count)) = &barrier {
        meet(dir, "opened", *count, max).await?;
    }
    tokio::time::sleep(settle).await;
    let (rss, anon) = memory(pid)?;
    let held = clients.len();
    if let Some((dir, count)) = &barrier {
        meet(dir, "measured", *count, max).await?;
    }
    close_all(clients).await;
    let (after_rss, after_anon) = settled(pid, settle).await?;
    let (failed, why) = failures.report();
    let rss_per = per(rss, base_rss, held);
    let anon_per = per(anon, base_anon, held);
    #[allow(clippy::cast_precision_loss)]
    let returned = (after_rss as f64 / base_rss.max(1) as f64 - 1.0) * 100.0;
    if ready.json {
        say(&serde_json::json!({
            "scenario": "idle",
            "transport": ready.transport.as_str(),
            "mechanism": ready.mechanism,
            "sessions": held, "failed": failed, "first_error": why,
            "open_seconds": opened_in.as_secs_f64(),
            "baseline_rss_kib": base_rss, "baseline_anon_kib": base_anon,
            "rss_kib": rss, "anon_kib": anon,
            "rss_kib_per_session": rss_per, "anon_kib_per_session": anon_per,
            "after_rss_kib": after_rss, "after_anon_kib": after_anon,
            "after_vs_baseline_percent": returned,
        })
        .to_string());
    } else {
        say(&format!(
            "idle ({}, {}): {held} sessions held ({failed} failed) after {:.1} s; server RSS \
             {base_rss} → {rss} KiB ({rss_per:.1} KiB/session), anonymous {base_anon} → {anon} \
             KiB ({anon_per:.1} KiB/session); after they left: RSS {after_rss} KiB \
             ({returned:+.1}% of the baseline), anonymous {after_anon} KiB{}",
            ready.transport.as_str(),
            ready.mechanism,
            opened_in.as_secs_f64(),
            if why.is_empty() {
                String::new()
            } else {
                format!("; first failure: {why}")
            }
        ));
    }
    if held == 0 {
        return Err("no session could be opened".into());
    }
    Ok(())
}
