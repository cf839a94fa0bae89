//! The server's side of SCRAM: a full exchange (client-first, the stored
//! credentials, client-final, the server signature) with our client on the
//! other side, in memory. Only the server's calls are timed: the client's
//! PBKDF2 dominates an exchange but runs on the client's machine.
//!
//! `cargo bench -p sigil-sasl --bench scram`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::panic,
    missing_docs
)]

use std::time::{Duration, Instant};

use sigil_sasl::client::{AllowList, ClientConfig, ClientContext};
use sigil_sasl::server::{ConnectionInfo, ServerConfig, ServerStep};
use sigil_sasl::{Algorithm, ChannelBinding, ChannelBindingType, StoredCredentials};

const EXCHANGES: usize = 2000;
const RUNS: usize = 5;
const ITERATIONS: u32 = 4096;

/// One exchange; returns the time spent in the server's calls.
fn exchange(
    name: &str,
    server: &ServerConfig,
    connection: &ConnectionInfo,
    stored: &StoredCredentials,
) -> Duration {
    let mut context = ClientContext::new()
        .with_authcid("juliet")
        .with_password("r0m30")
        .with_encrypted(true)
        .with_server_channel_binding_types(connection.channel_binding_types());
    for binding in &connection.channel_bindings {
        context = context.with_channel_binding(binding.clone());
    }
    let offered = server.offered(connection);
    let mut client = ClientConfig::new()
        .allow(AllowList::new().name(name))
        .select(context, &offered)
        .unwrap();
    let initial = client.start().unwrap();
    let mut server_time = Duration::ZERO;
    let started = Instant::now();
    let mut session = server.start(name, connection).unwrap();
    let mut step = session.start(initial.as_deref()).unwrap();
    server_time += started.elapsed();
    loop {
        match step {
            ServerStep::NeedCredentials(request) => {
                assert_eq!(request.authcid, "juliet");
                let started = Instant::now();
                step = session.credentials(Some(stored.clone())).unwrap();
                server_time += started.elapsed();
            }
            ServerStep::Challenge(challenge) => {
                let response = client.challenge(&challenge).unwrap();
                let started = Instant::now();
                step = session.response(&response).unwrap();
                server_time += started.elapsed();
            }
            ServerStep::Success(outcome) => {
                client.success(outcome.additional_data.as_deref()).unwrap();
                return server_time;
            }
            other => panic!("unexpected step {other:?}"),
        }
    }
}

fn main() {
    let plain = ConnectionInfo {
        encrypted: true,
        ..ConnectionInfo::default()
    };
    let bound = ConnectionInfo {
        encrypted: true,
        channel_bindings: vec![ChannelBinding::new(
            ChannelBindingType::TlsExporter,
            [7; 32],
        )],
        ..ConnectionInfo::default()
    };
    let server = ServerConfig::new();
    println!("SCRAM server side, {EXCHANGES} exchanges per run, median of {RUNS} runs:");
    for (algorithm, name, connection) in [
        (Algorithm::Sha1, "SCRAM-SHA-1", &plain),
        (Algorithm::Sha256, "SCRAM-SHA-256", &plain),
        (Algorithm::Sha256, "SCRAM-SHA-256-PLUS", &bound),
        (Algorithm::Sha512, "SCRAM-SHA-512", &plain),
    ] {
        let stored =
            StoredCredentials::derive(algorithm, "r0m30", b"a pinch of salt", ITERATIONS).unwrap();
        // Warm the caches before measuring.
        for _ in 0..EXCHANGES / 10 {
            exchange(name, &server, connection, &stored);
        }
        let mut runs: Vec<Duration> = (0..RUNS)
            .map(|_| {
                (0..EXCHANGES)
                    .map(|_| exchange(name, &server, connection, &stored))
                    .sum()
            })
            .collect();
        runs.sort();
        let per = runs[RUNS / 2] / u32::try_from(EXCHANGES).unwrap();
        println!(
            "  {name:<20} {:>6.1} µs per exchange ({:.0} per second per core)",
            per.as_secs_f64() * 1e6,
            1.0 / per.as_secs_f64()
        );
    }
}
