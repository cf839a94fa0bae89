//! `sigil-bench` against an in-process Sigil on loopback, briefly: every
//! scenario runs and reports, so the load generator does not rot between
//! benchmark runs.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

use sigil_sasl::{Algorithm, StoredCredentials};
use sigil_server::config::{ListenerConfig, ListenerKind};
use sigil_server::{Config, Server};

fn bench(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sigil-bench"))
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "sigil-bench {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_against_sigil() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let accounts = d.join("accounts");
    let accounts_arg = accounts.to_str().unwrap().to_owned();
    bench(&["prepare", "--out", &accounts_arg, "--users", "8"]);

    let mut config = Config::new("localhost");
    config.listeners = [
        ListenerKind::Starttls,
        ListenerKind::DirectTls,
        ListenerKind::Https,
    ]
    .into_iter()
    .map(|kind| ListenerConfig {
        kind,
        address: "127.0.0.1:0".parse().unwrap(),
        client_certificates: Default::default(),
    })
    .collect();
    let (certificate, key) = sigil_server::certificate_paths(&config, d);
    sigil_server::tls::ensure_server_certificate("localhost", &certificate, &key).unwrap();
    std::fs::create_dir(d.join("trusted-cas")).unwrap();
    std::fs::copy(accounts.join("ca.crt"), d.join("trusted-cas/bench.pem")).unwrap();
    let server = Server::start(&config, d).await.unwrap();
    let store = server.context().store.clone();
    for line in std::fs::read_to_string(accounts.join("accounts.txt"))
        .unwrap()
        .lines()
    {
        let (name, password) = line.split_once(' ').unwrap();
        let credentials: Vec<_> = Algorithm::ALL
            .into_iter()
            .map(|a| StoredCredentials::generate(a, password).unwrap())
            .collect();
        store
            .create_account(&format!("{name}@localhost"), &credentials)
            .await
            .unwrap();
    }

    let cert = certificate.to_str().unwrap().to_owned();
    let pid = std::process::id().to_string();
    let address = |kind| server.address(kind).unwrap().to_string();
    let runs: Vec<Vec<String>> = [
        ("login", ListenerKind::Starttls, "starttls", "EXTERNAL"),
        (
            "login",
            ListenerKind::DirectTls,
            "direct-tls",
            "SCRAM-SHA-256",
        ),
        ("login", ListenerKind::Https, "websocket", "EXTERNAL"),
        ("login", ListenerKind::Https, "bosh", "EXTERNAL"),
        ("idle", ListenerKind::DirectTls, "direct-tls", "EXTERNAL"),
        ("messaging", ListenerKind::Starttls, "starttls", "EXTERNAL"),
        (
            "messaging",
            ListenerKind::Https,
            "websocket",
            "SCRAM-SHA-256",
        ),
        ("mam-query", ListenerKind::Starttls, "starttls", "EXTERNAL"),
        ("csi", ListenerKind::DirectTls, "direct-tls", "EXTERNAL"),
    ]
    .into_iter()
    .map(|(scenario, kind, transport, mechanism)| {
        let mut args: Vec<String> = [
            scenario,
            "--address",
            &address(kind),
            "--transport",
            transport,
            "--mechanism",
            mechanism,
            "--server-cert",
            &cert,
            "--accounts",
            &accounts_arg,
            "--json",
        ]
        .map(str::to_owned)
        .to_vec();
        let extra: &[&str] = match scenario {
            "login" => &["--count", "16", "--concurrency", "4", "--cpu-of", &pid],
            "idle" => &[
                "--sessions",
                "16",
                "--warmup",
                "4",
                "--settle-seconds",
                "0",
                "--server-pid",
                &pid,
            ],
            // The archived conversation: accounts 4 and 5, 300 messages.
            "mam-query" => &[
                "--first-account",
                "4",
                "--messages",
                "300",
                "--senders",
                "2",
                "--queries",
                "5",
                "--fill-seconds",
                "30",
            ],
            // Account 0 and three contacts.
            "csi" => &[
                "--contacts",
                "3",
                "--rate",
                "4",
                "--seconds",
                "2",
                "--messages",
                "2",
                "--settle-seconds",
                "1",
            ],
            _ => &["--pairs", "2", "--seconds", "1", "--cpu-of", &pid],
        };
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    })
    .collect();
    // The child processes run on a blocking thread beside the server.
    let results = tokio::task::spawn_blocking(move || {
        runs.iter()
            .map(|args| {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                (args.join(" "), json(&bench(&args)))
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for (args, result) in &results {
        match result["scenario"].as_str() {
            Some("login") => {
                assert_eq!(result["ok"], 16, "{args}: {result}");
                assert_eq!(result["failed"], 0, "{args}: {result}");
                assert!(result["logins_per_second"].as_f64().unwrap() > 0.0);
                assert!(result["server_cpu_ms_per_login"].as_f64().unwrap() > 0.0);
            }
            Some("idle") => {
                assert_eq!(result["sessions"], 16, "{args}: {result}");
                assert!(result["rss_kib"].as_u64().unwrap() > 0);
            }
            Some("messaging") => {
                let delivered = result["delivered"].as_u64().unwrap();
                assert!(delivered > 0, "{args}: {result}");
                assert_eq!(result["undelivered"], 0, "{args}: {result}");
            }
            Some("mam-query") => {
                assert_eq!(result["archive_messages"], 300, "{args}: {result}");
                assert_eq!(result["answered"], 5, "{args}: {result}");
                assert_eq!(result["failed"], 0, "{args}: {result}");
            }
            Some("csi") => {
                assert_eq!(result["undelivered"], 0, "{args}: {result}");
                // Active: every presence change and chat state came (3
                // contacts, 4 a second, 2 s); inactive: what was held
                // came once, the latest of each.
                let without = &result["without"];
                let with = &result["with"];
                assert!(without["presences"].as_u64().unwrap() >= 18, "{result}");
                assert!(without["chat_states"].as_u64().unwrap() >= 18, "{result}");
                assert!(with["presences"].as_u64().unwrap() <= 6, "{result}");
                assert!(with["chat_states"].as_u64().unwrap() <= 6, "{result}");
                assert!(result["saved_percent"].as_f64().unwrap() > 0.0, "{result}");
            }
            other => panic!("{args}: {other:?}"),
        }
    }
    server.shutdown().await;
}
