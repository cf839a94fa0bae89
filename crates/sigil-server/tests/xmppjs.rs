//! Interoperability with xmpp.js (`@xmpp/client` 0.14, run by Node), a
//! client of SASL2 (XEP-0388), Bind 2 (XEP-0386) and FAST (XEP-0484)
//! nobody here wrote: `tests/interop/xmppjs/fast.mjs` logs in over
//! STARTTLS with SCRAM-SHA-1 asking for a token, logs in again with the
//! token alone (HT-SHA-256-NONE, a wrong password beside it), and falls
//! back to its password when the token is one the server does not know.
//!
//! Needs `node` and `tests/interop/xmppjs/node_modules`
//! (`scripts/ensure-node-peers` installs them); `SIGIL_SKIP_INTEROP=1`
//! skips it.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::process::Command;

use common::TestServer;
use sigil_server::config::ListenerKind;

const CLIENT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/interop/xmppjs");
const AGENT: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xmppjs_logs_in_by_sasl2_bind2_and_fast() {
    if std::env::var("SIGIL_SKIP_INTEROP").as_deref() == Ok("1") {
        eprintln!("skipped: SIGIL_SKIP_INTEROP=1");
        return;
    }
    let module = Path::new(CLIENT_DIR).join("node_modules/@xmpp/client/package.json");
    assert!(
        module.is_file(),
        "{} is missing: run scripts/ensure-node-peers (or set SIGIL_SKIP_INTEROP=1)",
        module.display()
    );
    let server = TestServer::start().await;
    let address = server.address(ListenerKind::Starttls);
    let certificate = server.certificate();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("fast.mjs")
            .arg(format!("xmpp://127.0.0.1:{}", address.port()))
            .args(["localhost", "alice", "alice-secret", AGENT])
            .current_dir(CLIENT_DIR)
            .env("NODE_EXTRA_CA_CERTS", certificate)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let find = |event: &str, run: &str| {
        events
            .iter()
            .find(|e| e["event"] == event && e["run"] == run)
            .unwrap_or_else(|| panic!("no {event} in the {run} run: {stdout}\n{stderr}"))
    };
    // With the password, asking for a token: Bind 2 binds the resource.
    let first = find("online", "password");
    assert_eq!(first["mechanisms"][0], "SCRAM-SHA-1", "{stdout}");
    assert!(
        first["jid"]
            .as_str()
            .unwrap()
            .starts_with("alice@localhost/"),
        "{stdout}"
    );
    let token = find("token", "password");
    assert_eq!(token["mechanism"], "HT-SHA-256-NONE", "{stdout}");
    // With the token alone (its password is wrong): the same resource.
    let second = find("online", "token");
    assert_eq!(
        second["mechanisms"],
        serde_json::json!(["HT-SHA-256-NONE"]),
        "{stdout}"
    );
    assert_eq!(
        second["jid"], first["jid"],
        "one client, one resource: {stdout}"
    );
    // A token the server does not know: dropped, the password used.
    find("token-deleted", "unknown token");
    let third = find("online", "unknown token");
    assert_eq!(
        third["mechanisms"],
        serde_json::json!(["HT-SHA-256-NONE", "SCRAM-SHA-1"]),
        "{stdout}"
    );
    // The server knows the client by its user agent.
    let agents = server.store().user_agents("alice@localhost").await.unwrap();
    assert_eq!(agents.len(), 1, "{agents:?}");
    assert_eq!(agents[0].agent, AGENT);
    assert_eq!(agents[0].software.as_deref(), Some("xmpp.js"));
    assert_eq!(agents[0].device.as_deref(), Some("interop test"));
}
