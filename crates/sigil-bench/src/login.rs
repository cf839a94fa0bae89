//! `login`: a login storm; logins/s and latency percentiles.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sigil_client::Presence;

use crate::measure::CpuMeter;
use crate::ready::Ready;
use crate::report::{cpu_text, say};
use crate::stats::{Failures, Latencies, rate};

pub(crate) async fn login(
    ready: Arc<Ready>,
    count: usize,
    concurrency: usize,
    max: Duration,
) -> Result<(), String> {
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Failures::default());
    let cpu = CpuMeter::start(ready.cpu_of);
    let start = Instant::now();
    let deadline = start + max;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (ready, next, failures) = (ready.clone(), next.clone(), failures.clone());
        workers.spawn(async move {
            let mut latencies = Latencies::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count || Instant::now() >= deadline {
                    return latencies;
                }
                let began = Instant::now();
                let result = async {
                    let mut client = ready.builder(i, None).connect().await?;
                    client.send_presence(&Presence::available()).await?;
                    client.close().await;
                    Ok::<_, sigil_client::Error>(())
                }
                .await;
                match result {
                    Ok(()) => latencies.push(began.elapsed()),
                    Err(error) => failures.record(&error),
                }
            }
        });
    }
    let mut latencies = Latencies::default();
    while let Some(done) = workers.join_next().await {
        latencies.extend(done.map_err(|e| e.to_string())?);
    }
    let elapsed = start.elapsed();
    let (failed, why) = failures.report();
    let ok = latencies.len();
    let (p50, p99) = (latencies.quantile_ms(0.5), latencies.quantile_ms(0.99));
    let per_second = rate(ok, elapsed);
    let cpu = cpu.per_event(ok);
    if ready.json {
        say(&serde_json::json!({
            "server_cpu_ms_per_login": cpu.0, "generator_cpu_ms_per_login": cpu.1,
            "scenario": "login",
            "transport": ready.transport.as_str(),
            "mechanism": ready.mechanism,
            "ok": ok, "failed": failed, "first_error": why,
            "seconds": elapsed.as_secs_f64(),
            "logins_per_second": per_second,
            "p50_ms": p50, "p99_ms": p99,
            "concurrency": concurrency,
        })
        .to_string());
    } else {
        say(&format!(
            "login ({}, {}): {ok} ok, {failed} failed in {:.2} s: {per_second:.0} logins/s; \
             latency p50 {p50:.1} ms, p99 {p99:.1} ms{}{}",
            ready.transport.as_str(),
            ready.mechanism,
            elapsed.as_secs_f64(),
            cpu_text(cpu, "login"),
            if why.is_empty() {
                String::new()
            } else {
                format!("; first failure: {why}")
            }
        ));
    }
    if ok == 0 {
        return Err("no login succeeded".into());
    }
    Ok(())
}
