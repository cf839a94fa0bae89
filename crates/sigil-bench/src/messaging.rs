//! `messaging`: pairs exchanging messages at a fixed rate or at
//! saturation; delivered messages/s and end-to-end latency.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sigil_client::{Message, Presence};

use crate::measure::CpuMeter;
use crate::ready::{Ready, connect};
use crate::report::{cpu_text, say};
use crate::stats::{Latencies, rate};

/// Shared between a pair's sender and receiver.
#[derive(Default)]
struct Pair {
    received: AtomicU64,
    progress: tokio::sync::Notify,
}

pub(crate) async fn messaging(
    ready: Arc<Ready>,
    pairs: usize,
    offered: u64,
    window: u64,
    seconds: u64,
    receivers_at: Option<SocketAddr>,
) -> Result<(), String> {
    let pairs = pairs.max(1);
    if ready.accounts.len() < 2 * pairs {
        return Err(format!(
            "{pairs} pairs need {} accounts; {} are prepared",
            2 * pairs,
            ready.accounts.len()
        ));
    }
    let mut senders = Vec::with_capacity(pairs);
    let mut receivers = Vec::with_capacity(pairs);
    for p in 0..pairs {
        let sender = connect(&ready, 2 * p).await?;
        let mut receiver = match receivers_at {
            // Another node of a cluster.
            Some(address) => ready
                .builder(2 * p + 1, None)
                .address(address)
                .connect()
                .await
                .map_err(|e| format!("account {}: {e}", 2 * p + 1))?,
            None => connect(&ready, 2 * p + 1).await?,
        };
        receiver
            .send_presence(&Presence::available())
            .await
            .map_err(|e| e.to_string())?;
        senders.push(sender);
        receivers.push(receiver);
    }
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let state: Vec<Arc<Pair>> = (0..pairs).map(|_| Arc::new(Pair::default())).collect();
    let mut receiving = tokio::task::JoinSet::new();
    for (mut receiver, pair) in receivers.into_iter().zip(state.iter().cloned()) {
        let stop = stop.clone();
        receiving.spawn(async move {
            let mut latencies = Latencies::default();
            loop {
                // Elements, not typed stanzas: reading the body is all
                // that is needed, and the generator shares the machine.
                let next = tokio::time::timeout(Duration::from_millis(500), receiver.recv());
                match next.await {
                    Ok(Ok(element)) if element.name() == "message" => {
                        let body = element.child("body", sigil_xml::ns::CLIENT);
                        if let Some(sent) = body.and_then(|b| b.text().parse::<u64>().ok()) {
                            let now =
                                u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
                            latencies.push(Duration::from_micros(now.saturating_sub(sent)));
                            pair.received.fetch_add(1, Ordering::Relaxed);
                            pair.progress.notify_one();
                        }
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => break,
                    Err(_) if stop.load(Ordering::Relaxed) => break,
                    Err(_) => {}
                }
            }
            receiver.close().await;
            latencies
        });
    }
    let targets: Vec<jid::Jid> = state
        .iter()
        .enumerate()
        .map(|(p, _)| {
            let account = &ready.accounts[(2 * p + 1) % ready.accounts.len()];
            format!("{}/b{}", account.jid, 2 * p + 1)
                .parse()
                .map_err(|e| format!("{e}"))
        })
        .collect::<Result<_, String>>()?;
    let duration = Duration::from_secs(seconds.max(1));
    let cpu = CpuMeter::start(ready.cpu_of);
    let start = Instant::now();
    let mut sending = tokio::task::JoinSet::new();
    for ((mut sender, pair), to) in senders.into_iter().zip(state.iter().cloned()).zip(targets) {
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        let interval =
            (offered > 0).then(|| Duration::from_secs_f64(pairs as f64 / offered as f64));
        sending.spawn(async move {
            let mut sent = 0u64;
            let mut ticker = interval.map(|i| {
                let mut t = tokio::time::interval(i);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                t
            });
            while start.elapsed() < duration {
                match ticker.as_mut() {
                    Some(ticker) => {
                        ticker.tick().await;
                    }
                    None => {
                        while sent.saturating_sub(pair.received.load(Ordering::Relaxed)) >= window {
                            let wait = tokio::time::timeout(
                                Duration::from_millis(100),
                                pair.progress.notified(),
                            );
                            let _ = wait.await;
                            if start.elapsed() >= duration {
                                break;
                            }
                        }
                    }
                }
                let now = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
                // No id: `Message::chat` would draw a random one per
                // message from the kernel.
                let message = Message {
                    from: None,
                    to: Some(to.clone()),
                    id: String::new(),
                    kind: sigil_client::MessageType::Chat,
                    body: Some(now.to_string()),
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
    let mut sent = 0u64;
    while let Some(done) = sending.join_next().await {
        sent += done.map_err(|e| e.to_string())?;
    }
    let send_window = start.elapsed();
    // Let the last messages arrive.
    let drain = Instant::now() + Duration::from_secs(5);
    while state
        .iter()
        .map(|p| p.received.load(Ordering::Relaxed))
        .sum::<u64>()
        < sent
        && Instant::now() < drain
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Latencies::default();
    while let Some(done) = receiving.join_next().await {
        latencies.extend(done.map_err(|e| e.to_string())?);
    }
    let delivered = latencies.len();
    let per_second = rate(delivered, send_window);
    let (p50, p99) = (latencies.quantile_ms(0.5), latencies.quantile_ms(0.99));
    let lost = sent.saturating_sub(delivered as u64);
    let cpu = cpu.per_event(delivered);
    if ready.json {
        say(&serde_json::json!({
            "server_cpu_ms_per_message": cpu.0, "generator_cpu_ms_per_message": cpu.1,
            "scenario": "messaging",
            "transport": ready.transport.as_str(),
            "pairs": pairs, "offered_per_second": offered, "window": window,
            "receivers_elsewhere": receivers_at.is_some(),
            "sent": sent, "delivered": delivered, "undelivered": lost,
            "seconds": send_window.as_secs_f64(),
            "delivered_per_second": per_second,
            "p50_ms": p50, "p99_ms": p99,
        })
        .to_string());
    } else {
        let offered = if offered == 0 {
            format!("saturation (window {window})")
        } else {
            format!("{offered}/s offered")
        };
        say(&format!(
            "messaging ({}, {pairs} pairs, {offered}): {delivered} of {sent} delivered in {:.1} s: {per_second:.0} msgs/s; latency p50 {p50:.2} ms, p99 {p99:.2} ms{}",
            ready.transport.as_str(),
            send_window.as_secs_f64(),
            cpu_text(cpu, "message")
        ));
    }
    if delivered == 0 {
        return Err("no message was delivered".into());
    }
    Ok(())
}
