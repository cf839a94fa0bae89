//! `soak`: connection churn for a long while. `sessions` sessions are held;
//! every second `churn` of them leave and as many new ones log in, while
//! each held session that is a sender sends its partner a message now and
//! then. The server's RSS is read every `sample` seconds; the figure is the
//! growth from the first minute's average to the last minute's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::measure::memory;
use crate::ready::Ready;
use crate::report::say;

/// What a soak run does.
pub(crate) struct Soak {
    pub(crate) sessions: usize,
    pub(crate) churn: usize,
    pub(crate) seconds: u64,
    pub(crate) server_pid: u32,
    pub(crate) sample: u64,
}

/// Counts of what happened.
#[derive(Default)]
struct Counts {
    logins: AtomicU64,
    failed_logins: AtomicU64,
    messages: AtomicU64,
}

pub(crate) async fn run(ready: Arc<Ready>, soak: Soak) -> Result<(), String> {
    let counts = Arc::new(Counts::default());
    let deadline = Instant::now() + Duration::from_secs(soak.seconds);
    // Slot i holds a session of account i (modulo the accounts); each slot
    // is a task that logs in, stays for its turn, and leaves.
    let slots = soak.sessions.max(1);
    // Each slot lives about `slots / churn` seconds, so `churn` leave and
    // arrive every second on average.
    let lifetime = Duration::from_secs_f64(
        #[allow(clippy::cast_precision_loss)]
        {
            slots as f64 / soak.churn.max(1) as f64
        },
    );
    let mut tasks = tokio::task::JoinSet::new();
    for slot in 0..slots {
        let (ready, counts) = (ready.clone(), counts.clone());
        tasks.spawn(async move {
            // Spread the first departures over one lifetime.
            #[allow(clippy::cast_precision_loss)]
            let mut stay = lifetime.mul_f64((slot as f64 + 1.0) / slots as f64);
            let mut generation = 0usize;
            // The first logins are spread too (200 a second), not a herd.
            #[allow(clippy::cast_possible_truncation)]
            tokio::time::sleep(Duration::from_millis(5 * slot as u64)).await;
            while Instant::now() < deadline {
                let index = slot + generation * slots;
                generation += 1;
                let Ok(mut client) = ready.builder(index, None).connect().await else {
                    counts.failed_logins.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                counts.logins.fetch_add(1, Ordering::Relaxed);
                let leave = Instant::now() + stay;
                stay = lifetime;
                // A message to itself every few seconds, read back.
                let own: Option<jid::Jid> = client.jid().parse().ok();
                while Instant::now() < leave.min(deadline) {
                    if let Some(to) = &own {
                        let message = sigil_client::Message::chat(to.clone(), "soak");
                        if client.send_message(&message).await.is_err() {
                            break;
                        }
                        let read = tokio::time::timeout(Duration::from_secs(5), client.recv());
                        if matches!(read.await, Ok(Ok(_))) {
                            counts.messages.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    tokio::time::sleep(
                        Duration::from_secs(5).min(leave.saturating_duration_since(Instant::now())),
                    )
                    .await;
                }
                client.close().await;
            }
        });
    }
    let start = Instant::now();
    let mut samples: Vec<(f64, u64)> = Vec::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(soak.sample.max(1))).await;
        let (rss, _) = memory(soak.server_pid)?;
        samples.push((start.elapsed().as_secs_f64(), rss));
        say(&format!(
            "soak: {:>5.0} s, server RSS {rss} KiB, {} logins ({} failed), {} messages",
            start.elapsed().as_secs_f64(),
            counts.logins.load(Ordering::Relaxed),
            counts.failed_logins.load(Ordering::Relaxed),
            counts.messages.load(Ordering::Relaxed)
        ));
    }
    while tasks.join_next().await.is_some() {}
    let window = 60.0_f64.min(start.elapsed().as_secs_f64() / 3.0);
    let average = |from: f64, to: f64| {
        let chosen: Vec<u64> = samples
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .map(|(_, rss)| *rss)
            .collect();
        #[allow(clippy::cast_precision_loss)]
        let average = chosen.iter().sum::<u64>() as f64 / chosen.len().max(1) as f64;
        average
    };
    let end = samples.last().map_or(0.0, |(t, _)| *t);
    let first = average(0.0, window);
    let last = average(end - window, end);
    let growth = (last / first.max(1.0) - 1.0) * 100.0;
    let logins = counts.logins.load(Ordering::Relaxed);
    let failed = counts.failed_logins.load(Ordering::Relaxed);
    let summary = serde_json::json!({
        "scenario": "soak",
        "seconds": start.elapsed().as_secs_f64(),
        "sessions": slots, "churn_per_second": soak.churn,
        "logins": logins, "failed_logins": failed,
        "messages": counts.messages.load(Ordering::Relaxed),
        "rss_first_minute_kib": first, "rss_last_minute_kib": last,
        "rss_max_kib": samples.iter().map(|(_, r)| *r).max(),
        "growth_percent": growth,
    });
    if ready.json {
        say(&summary.to_string());
    } else {
        say(&format!(
            "soak: {:.0} s with {slots} sessions, {} leaving and arriving a second: {logins} logins \
             ({failed} failed), {} messages; server RSS {first:.0} KiB in the first minute, \
             {last:.0} KiB in the last ({growth:+.1}%)",
            start.elapsed().as_secs_f64(),
            soak.churn,
            counts.messages.load(Ordering::Relaxed)
        ));
    }
    if logins == 0 {
        return Err("no login succeeded".into());
    }
    Ok(())
}
