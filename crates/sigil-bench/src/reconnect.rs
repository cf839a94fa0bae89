//! `reconnect`: how fast clients that logged in before log in again, by a
//! full login with the configured mechanism (EXTERNAL, or a password), by
//! a password mechanism (SCRAM-SHA-256 unless told) with no certificate,
//! and by the FAST
//! token (XEP-0484) their first login got, alone: reconnects/s,
//! latency and the round trips each took (the times the client waited
//! for the server after sending, TLS handshakes apart).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sigil_client::{ClientBuilder, FastToken};
use sigil_sasl::client::{AllowList, ClientConfig};

use crate::measure::CpuMeter;
use crate::ready::Ready;
use crate::report::{cpu_text, say};
use crate::stats::{Failures, Latencies, rate};

/// One client: its user-agent id and the token its first login got.
struct Known {
    agent: String,
    token: Option<FastToken>,
}

pub(crate) async fn reconnect(
    ready: Arc<Ready>,
    password_mechanism: &str,
    count: usize,
    concurrency: usize,
    max: Duration,
) -> Result<(), String> {
    // One client per account: its first login, by password (a login by
    // CA trust gets no token: nothing the account holds could end it),
    // asks for a token.
    let mut known = Vec::new();
    for index in 0..ready.accounts.len().min(count.max(1)) {
        let agent = sigil_client::new_uuid().ok_or("no randomness for a user-agent id")?;
        let password = ClientConfig::new().allow(
            AllowList::new()
                .name(password_mechanism)
                .name("SCRAM-SHA-256")
                .name("SCRAM-SHA-1"),
        );
        // (Without the certificate: a server offering EXTERNAL alone to a
        // certificate that logs in would offer no password mechanism.)
        let client = ready
            .builder(index, None)
            .tls(ready.without_certificate.clone())
            .password(ready.password.clone())
            .sasl(password)
            .user_agent(&agent, None)
            .fast(true)
            .connect()
            .await
            .map_err(|e| format!("first login of {index}: {e}"))?;
        known.push(Known {
            agent,
            token: client.fast_token(),
        });
        client.close().await;
    }
    if known.iter().all(|k| k.token.is_none()) {
        return Err("the server issued no FAST token (it has no SASL2 or FAST)".into());
    }
    let known = Arc::new(known);
    let password = (ready.mechanism != password_mechanism).then_some(By::Password);
    for by in [Some(By::Full), password, Some(By::Token)]
        .into_iter()
        .flatten()
    {
        run(
            &ready,
            &known,
            by,
            password_mechanism,
            count,
            concurrency,
            max,
        )
        .await?;
    }
    Ok(())
}

/// How a reconnection logs in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum By {
    /// A full login with the configured mechanism (and certificate).
    Full,
    /// A full login by the password mechanism, no certificate.
    Password,
    /// The FAST token alone, no certificate.
    Token,
}

async fn run(
    ready: &Arc<Ready>,
    known: &Arc<Vec<Known>>,
    by: By,
    password_mechanism: &str,
    count: usize,
    concurrency: usize,
    max: Duration,
) -> Result<(), String> {
    let password_config =
        ClientConfig::new().allow(AllowList::new().name(password_mechanism.to_owned()));
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Failures::default());
    let round_trips = Arc::new(AtomicUsize::new(0));
    let cpu = CpuMeter::start(ready.cpu_of);
    let start = Instant::now();
    let deadline = start + max;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (ready, known, password_config) =
            (ready.clone(), known.clone(), password_config.clone());
        let (next, failures, round_trips) = (next.clone(), failures.clone(), round_trips.clone());
        workers.spawn(async move {
            let mut latencies = Latencies::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count || Instant::now() >= deadline {
                    return latencies;
                }
                let index = i % known.len();
                let client: &Known = &known[index];
                // A resource of its own: a slow login of the same account
                // still in flight is not replaced (`conflict`).
                let mut builder: ClientBuilder = ready
                    .builder(index, None)
                    .resource(format!("r{i}"))
                    .user_agent(&client.agent, None);
                match (by, &client.token) {
                    (By::Full, _) => {}
                    (By::Password, _) => {
                        builder = builder
                            .tls(ready.without_certificate.clone())
                            .password(ready.password.clone())
                            .sasl(password_config.clone());
                    }
                    (By::Token, Some(token)) => {
                        // Any mechanism the token can use (the configured
                        // one may be a password's); a login that used
                        // another counts as failed below.
                        builder = builder
                            .tls(ready.without_certificate.clone())
                            .sasl(ClientConfig::new())
                            .fast_token(token.clone());
                    }
                    (By::Token, None) => {}
                }
                let began = Instant::now();
                match builder.connect().await {
                    Ok(connected)
                        if by == By::Token && !connected.mechanism().starts_with("HT-") =>
                    {
                        failures.record_text(&format!(
                            "the token was not used: logged in by {}",
                            connected.mechanism()
                        ));
                        connected.close().await;
                    }
                    Ok(connected) => {
                        latencies.push(began.elapsed());
                        round_trips
                            .fetch_add(connected.login_round_trips() as usize, Ordering::Relaxed);
                        connected.close().await;
                    }
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
    let trips = round_trips.load(Ordering::Relaxed) as f64 / ok.max(1) as f64;
    let cpu = cpu.per_event(ok);
    let how = match by {
        By::Full => ready.mechanism.as_str(),
        By::Password => password_mechanism,
        By::Token => "FAST",
    };
    if ready.json {
        say(&serde_json::json!({
            "scenario": "reconnect",
            "transport": ready.transport.as_str(),
            "by": how,
            "ok": ok, "failed": failed, "first_error": why,
            "seconds": elapsed.as_secs_f64(),
            "reconnects_per_second": per_second,
            "round_trips": trips,
            "p50_ms": p50, "p99_ms": p99,
            "server_cpu_ms_per_login": cpu.0, "generator_cpu_ms_per_login": cpu.1,
            "concurrency": concurrency,
        })
        .to_string());
    } else {
        say(&format!(
            "reconnect ({}, {how}): {ok} ok, {failed} failed in {:.2} s: {per_second:.0} \
             reconnects/s, {trips:.1} round trips each; latency p50 {p50:.1} ms, p99 {p99:.1} ms{}{}",
            ready.transport.as_str(),
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
        return Err(format!("no reconnect by {how} succeeded"));
    }
    Ok(())
}
