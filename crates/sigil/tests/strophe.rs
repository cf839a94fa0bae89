//! Interoperability with Strophe.js 5, the JavaScript XMPP library, run by
//! Node: the `sigil` binary serves HTTPS, and
//! `tests/interop/strophe/client.mjs` logs in over WebSocket (RFC 7395) and
//! over BOSH (XEP-0124/0206), with SASL EXTERNAL and a client certificate
//! made by `sigil cert new --register`, with SCRAM and a password, and with a
//! SASL mechanism class of its own; and exchanges messages between a
//! WebSocket and a BOSH client.
//!
//! Needs `node` and the packages of `tests/interop/strophe/package.json`
//! (`scripts/ensure-node-peers` installs them). `SIGIL_SKIP_INTEROP=1` skips
//! these tests; `SIGIL_INTEROP_DEBUG=1` passes `--debug` to the client, whose
//! standard error (always the XML exchanged; with `--debug` Strophe's log
//! too) shows in the failure messages.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod process;

use process::{Guard, drain, line_reader, wait_bounded};

use std::fs::File;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

const CLIENT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/interop/strophe");
const DOMAIN: &str = "localhost";
const ALICE: &str = "alice@localhost";
const BOB: &str = "bob@localhost";
const BOB_PASSWORD: &str = "bob's own pässword";

/// The packages `client.mjs` imports, installed by `scripts/ensure-node-peers`.
const PACKAGES: [&str; 5] = ["strophe.js", "@xmldom/xmldom", "saxes", "ws", "xhr2"];

/// How long the server may take to print its listening line.
const STARTUP: Duration = Duration::from_secs(20);
/// How long the server may take to exit after SIGTERM.
const SHUTDOWN: Duration = Duration::from_secs(15);
/// How long one client run may take (it stops itself after 30 s).
const CLIENT_RUN: Duration = Duration::from_secs(40);

const CONFIG: &str = r#"domain = "localhost"
[[listener]]
kind = "https"
address = "127.0.0.1:0"
[storage]
url = "sqlite://sigil.db"
"#;

fn client_script() -> PathBuf {
    Path::new(CLIENT_DIR).join("client.mjs")
}

/// Whether the interop tests run: false (with a note) only when
/// `SIGIL_SKIP_INTEROP=1`; a missing `node` or `node_modules` is a failure.
fn interop_enabled(test: &str) -> bool {
    if std::env::var("SIGIL_SKIP_INTEROP").as_deref() == Ok("1") {
        eprintln!("{test}: skipped: SIGIL_SKIP_INTEROP=1");
        return false;
    }
    match Command::new("node").arg("--version").output() {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "node --version failed ({}): install Node.js and run scripts/ensure-node-peers \
             (or set SIGIL_SKIP_INTEROP=1 to skip the interop tests)",
            output.status
        ),
        Err(e) => panic!(
            "cannot run node ({e}): install Node.js and run scripts/ensure-node-peers \
             (or set SIGIL_SKIP_INTEROP=1 to skip the interop tests)"
        ),
    }
    let modules = Path::new(CLIENT_DIR).join("node_modules");
    for package in PACKAGES {
        let manifest = modules.join(package).join("package.json");
        assert!(
            manifest.is_file(),
            "{} is missing: run scripts/ensure-node-peers \
             (or set SIGIL_SKIP_INTEROP=1 to skip the interop tests)",
            manifest.display()
        );
    }
    true
}

/// Runs `sigil ARGS` to completion and insists it succeeds.
fn sigil(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "sigil {args:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A data directory with a configuration (one HTTPS listener).
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// A configuration and no accounts.
    fn empty() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sigil.toml"), CONFIG).unwrap();
        Self { dir }
    }

    /// A configuration and bob, who has a password.
    fn with_bob() -> Self {
        let fixture = Self::empty();
        fixture.add_user("bob", BOB_PASSWORD);
        fixture
    }

    fn config(&self) -> String {
        self.dir.path().join("sigil.toml").display().to_string()
    }

    fn add_user(&self, name: &str, password: &str) {
        let file = self.dir.path().join(format!("{name}.password"));
        std::fs::write(&file, format!("{password}\n")).unwrap();
        sigil(&[
            "user",
            "add",
            name,
            "--config",
            &self.config(),
            "--password-file",
            &file.display().to_string(),
        ]);
    }

    /// Runs `sigil cert new alice@localhost --register --name laptop` (which
    /// creates the account, without a password) and returns the certificate
    /// and key files.
    fn alice_certificate(&self) -> Certificate {
        let p12_password = self.dir.path().join("laptop.p12-password");
        std::fs::write(&p12_password, "p12 password\n").unwrap();
        let out = self.dir.path().join("certificates");
        let output = sigil(&[
            "cert",
            "new",
            ALICE,
            "--register",
            "--name",
            "laptop",
            "--out",
            &out.display().to_string(),
            "--p12-password-file",
            &p12_password.display().to_string(),
            "--config",
            &self.config(),
        ]);
        let printed = String::from_utf8_lossy(&output.stdout);
        assert!(
            printed.contains(&format!("created the account {ALICE} (no password)")),
            "sigil cert new --register did not create the account: {printed}"
        );
        assert!(
            printed.contains(&format!("registered \"laptop\" for {ALICE} (SHA-256 ")),
            "sigil cert new --register did not register the certificate: {printed}"
        );
        let certificate = Certificate {
            cert: out.join("laptop.crt"),
            key: out.join("laptop.key"),
        };
        for file in [&certificate.cert, &certificate.key] {
            assert!(file.is_file(), "sigil cert new wrote no {}", file.display());
        }
        certificate
    }

    /// Starts `sigil serve` and waits for the HTTPS listening line.
    fn serve(&self) -> Server {
        let log = self.dir.path().join("server.log");
        let child = Command::new(env!("CARGO_BIN_EXE_sigil"))
            .args(["serve", "--config", &self.config()])
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut server = Server {
            child: Guard(child),
            log,
            ca: self.dir.path().join("server.crt"),
            port: 0,
        };
        let lines = line_reader(server.child.0.stdout.take().unwrap());
        let deadline = Instant::now() + STARTUP;
        let mut seen = Vec::new();
        while server.port == 0 {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let line = match lines.recv_timeout(remaining) {
                Ok(line) => line,
                Err(e) => panic!(
                    "sigil serve printed no HTTPS listening line ({e:?}); stdout: {seen:?}\n{}",
                    server.log_text()
                ),
            };
            if let Some(port) = https_port(&line) {
                server.port = port;
            }
            seen.push(line);
        }
        // Keep reading standard output so the server never blocks on it.
        thread::spawn(move || while lines.recv().is_ok() {});
        assert!(server.ca.is_file(), "no server.crt after the first start");
        server
    }
}

/// The port of a `listening on 127.0.0.1:PORT (HTTPS…) for DOMAIN` line.
fn https_port(line: &str) -> Option<u16> {
    let rest = line.strip_prefix("listening on ")?;
    let (address, rest) = rest.split_once(' ')?;
    if !rest.starts_with("(HTTPS") || !rest.ends_with(&format!(") for {DOMAIN}")) {
        return None;
    }
    address.rsplit_once(':')?.1.parse().ok()
}

/// A client certificate and its private key (PEM files).
struct Certificate {
    cert: PathBuf,
    key: PathBuf,
}

/// How the client reaches the server.
#[derive(Clone, Copy, Debug)]
enum Transport {
    WebSocket,
    Bosh,
}

impl Transport {
    const ALL: [Self; 2] = [Self::WebSocket, Self::Bosh];

    /// The name `client.mjs` reports in its `connected` line.
    fn name(self) -> &'static str {
        match self {
            Self::WebSocket => "websocket",
            Self::Bosh => "bosh",
        }
    }
}

/// A running `sigil serve`.
struct Server {
    child: Guard,
    log: PathBuf,
    ca: PathBuf,
    port: u16,
}

impl Server {
    fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(80).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("--- server log (tail) ---\n{}", tail.join("\n"))
    }

    fn service(&self, transport: Transport) -> String {
        match transport {
            Transport::WebSocket => format!("wss://localhost:{}/xmpp-websocket", self.port),
            Transport::Bosh => format!("https://localhost:{}/http-bind", self.port),
        }
    }

    /// The client's command line, up to the credentials and the action.
    fn client(&self, transport: Transport, jid: &str) -> Command {
        let mut command = Command::new("node");
        command
            .arg(client_script())
            .args(["--service", &self.service(transport)])
            .args(["--jid", jid])
            .arg("--ca")
            .arg(&self.ca)
            .args(["--time-limit", "30"]);
        if std::env::var("SIGIL_INTEROP_DEBUG").as_deref() == Ok("1") {
            command.arg("--debug");
        }
        command
    }

    /// bob's command line, with his password and the mechanism whitelist
    /// `mechanisms` (Strophe's defaults when `None`).
    fn bob(&self, transport: Transport, mechanisms: Option<&str>) -> Command {
        let mut command = self.client(transport, BOB);
        command.args(["--password", BOB_PASSWORD]);
        if let Some(mechanisms) = mechanisms {
            command.args(["--mechanisms", mechanisms]);
        }
        command
    }

    /// alice's command line: SASL EXTERNAL (alone in the whitelist) with
    /// `certificate`, no password.
    fn alice(&self, transport: Transport, certificate: &Certificate) -> Command {
        let mut command = self.client(transport, ALICE);
        command
            .arg("--cert")
            .arg(&certificate.cert)
            .arg("--key")
            .arg(&certificate.key)
            .args(["--mechanisms", "EXTERNAL"]);
        command
    }

    /// Runs the client to completion (bounded).
    fn run(&self, mut command: Command) -> Run {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run node");
        let stdout = drain(child.stdout.take().unwrap());
        let stderr = drain(child.stderr.take().unwrap());
        let status = wait_bounded(&mut child, CLIENT_RUN);
        Run {
            status,
            stdout: String::from_utf8_lossy(&stdout.join().unwrap()).into_owned(),
            stderr: String::from_utf8_lossy(&stderr.join().unwrap()).into_owned(),
        }
    }

    /// Runs the client and insists it succeeds.
    fn run_ok(&self, command: Command) -> Run {
        let run = self.run(command);
        if run.status.is_none_or(|status| !status.success()) {
            panic!("client failed: {}\n{}", run.describe(), self.log_text());
        }
        run
    }

    /// Starts a `receive` client and waits until it is online (its presence
    /// handled by the server).
    fn start_receiver(&self, mut command: Command, who: &str) -> Receiving {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run node");
        let mut receiving = Receiving {
            lines: line_reader(child.stdout.take().unwrap()),
            stderr: Some(drain(child.stderr.take().unwrap())),
            child: Guard(child),
            seen: Vec::new(),
            deadline: Instant::now() + CLIENT_RUN,
        };
        if receiving.next_event("ready").is_none() {
            panic!("{who} never got online; {}", receiving.finish_context(self));
        }
        receiving
    }

    /// Sends SIGTERM and insists the server exits with status 0.
    fn stop(mut self) {
        let pid = self.child.0.id().to_string();
        let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(kill.success(), "kill -TERM {pid} failed");
        let status = wait_bounded(&mut self.child.0, SHUTDOWN);
        match status {
            Some(status) => assert!(
                status.success(),
                "sigil serve exited with {status} after SIGTERM\n{}",
                self.log_text()
            ),
            None => panic!(
                "sigil serve did not exit within {SHUTDOWN:?} of SIGTERM\n{}",
                self.log_text()
            ),
        }
    }
}

/// A `receive` client still running.
struct Receiving {
    child: Guard,
    lines: Receiver<String>,
    stderr: Option<thread::JoinHandle<Vec<u8>>>,
    seen: Vec<String>,
    deadline: Instant,
}

impl Receiving {
    /// The next line whose `event` is `event`, or `None` when the client
    /// ended or the time ran out first.
    fn next_event(&mut self, event: &str) -> Option<Value> {
        loop {
            let remaining = self.deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(remaining).ok()?;
            self.seen.push(line.clone());
            let value = parse(&line);
            if value["event"] == event {
                return Some(value);
            }
        }
    }

    /// Kills the client if it still runs, and describes what it printed.
    fn finish_context(&mut self, server: &Server) -> String {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
        let stderr = self
            .stderr
            .take()
            .map(|handle| String::from_utf8_lossy(&handle.join().unwrap()).into_owned())
            .unwrap_or_default();
        format!(
            "stdout: {:#?}\n--- client stderr ---\n{stderr}\n{}",
            self.seen,
            server.log_text()
        )
    }

    /// Waits for the next message, then for the client to exit with 0.
    fn message(mut self, server: &Server, who: &str) -> Value {
        let Some(message) = self.next_event("message") else {
            panic!("{who} received nothing; {}", self.finish_context(server));
        };
        let status = wait_bounded(&mut self.child.0, Duration::from_secs(15));
        if status.is_none_or(|status| !status.success()) {
            panic!(
                "{who}'s client ended with {status:?}; {}",
                self.finish_context(server)
            );
        }
        message
    }
}

/// One finished client run.
struct Run {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn describe(&self) -> String {
        let status = match self.status {
            Some(status) => status.to_string(),
            None => format!("killed after {CLIENT_RUN:?}"),
        };
        format!(
            "{status}\n--- client stdout ---\n{}\n--- client stderr ---\n{}",
            self.stdout, self.stderr
        )
    }

    fn events(&self, event: &str) -> Vec<Value> {
        self.stdout
            .lines()
            .map(parse)
            .filter(|value| value["event"] == event)
            .collect()
    }

    /// The first line whose `event` is `event`.
    fn event(&self, event: &str) -> Value {
        self.events(event)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no {event:?} line from the client: {}", self.describe()))
    }

    /// Whether the client sent an `<auth/>` naming `mechanism` (standard
    /// error has the XML it sent).
    fn sent_auth(&self, mechanism: &str) -> bool {
        self.stderr.lines().any(|line| {
            line.starts_with("SENT ") && line.contains(&format!("<auth mechanism=\"{mechanism}\""))
        })
    }
}

/// One JSON line of the client.
fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"))
}

/// Checks a `connected` line: a full JID of `account`, `mechanism`,
/// `transport`, and whether the client's own mechanism class ran.
fn assert_connected(run: &Run, account: &str, mechanism: &str, transport: Transport, custom: bool) {
    let connected = run.event("connected");
    let context = || format!("{connected}\n{}", run.describe());
    assert_eq!(connected["mechanism"], mechanism, "{}", context());
    assert_eq!(connected["transport"], transport.name(), "{}", context());
    assert_eq!(connected["custom"], custom, "{}", context());
    let jid = connected["jid"].as_str().unwrap_or_default();
    let resource = jid.strip_prefix(&format!("{account}/"));
    assert!(
        resource.is_some_and(|r| !r.is_empty()),
        "bound JID {jid:?} is not a full JID of {account}\n{}",
        context()
    );
    assert!(
        run.sent_auth(mechanism),
        "no <auth mechanism=\"{mechanism}\"> sent\n{}",
        context()
    );
    assert!(
        run.events("error").is_empty(),
        "errors reported\n{}",
        context()
    );
}

/// alice logs in with SASL EXTERNAL and her registered certificate, her
/// account having no password: as Strophe does by default (authorization
/// identity alice@localhost in the `<auth/>`), and with the authentication
/// identity set to her JID (no authorization identity sent).
fn assert_external_login(transport: Transport) {
    let fixture = Fixture::empty();
    let certificate = fixture.alice_certificate();
    let server = fixture.serve();

    let mut command = server.alice(transport, &certificate);
    command.arg("login");
    let run = server.run_ok(command);
    assert_connected(&run, ALICE, "EXTERNAL", transport, false);
    // Strophe sends the bare JID as the authorization identity...
    assert!(
        run.stderr.contains(">YWxpY2VAbG9jYWxob3N0</auth>"),
        "no authorization identity alice@localhost in the <auth/>\n{}",
        run.describe()
    );

    // ...unless the authentication identity is that JID.
    let mut command = server.alice(transport, &certificate);
    command.args(["--authcid", ALICE, "login"]);
    let run = server.run_ok(command);
    assert_connected(&run, ALICE, "EXTERNAL", transport, false);
    server.stop();
}

#[test]
fn websocket_external_login_with_a_registered_certificate() {
    if interop_enabled("websocket_external_login_with_a_registered_certificate") {
        assert_external_login(Transport::WebSocket);
    }
}

#[test]
fn bosh_external_login_with_a_registered_certificate() {
    if interop_enabled("bosh_external_login_with_a_registered_certificate") {
        assert_external_login(Transport::Bosh);
    }
}

fn assert_scram_sha_256_login(transport: Transport) {
    let fixture = Fixture::with_bob();
    let server = fixture.serve();
    let mut command = server.bob(transport, Some("SCRAM-SHA-256"));
    command.arg("login");
    let run = server.run_ok(command);
    assert_connected(&run, BOB, "SCRAM-SHA-256", transport, false);
    server.stop();
}

#[test]
fn websocket_scram_sha_256_login() {
    if interop_enabled("websocket_scram_sha_256_login") {
        assert_scram_sha_256_login(Transport::WebSocket);
    }
}

#[test]
fn bosh_scram_sha_256_login() {
    if interop_enabled("bosh_scram_sha_256_login") {
        assert_scram_sha_256_login(Transport::Bosh);
    }
}

/// A `Strophe.SASLMechanism` subclass of `client.mjs` named PLAIN, with a
/// priority above SCRAM's, registered through the `mechanisms` option with
/// SCRAM-SHA-256 and alone: Strophe chooses it (it prints a marker from its
/// `clientChallenge`), and the server accepts what it sends (bob's password
/// is not ASCII).
#[test]
fn a_custom_mechanism_class_outranks_scram() {
    if !interop_enabled("a_custom_mechanism_class_outranks_scram") {
        return;
    }
    let fixture = Fixture::with_bob();
    let server = fixture.serve();
    for transport in Transport::ALL {
        for mechanisms in [
            "custom-plain,SCRAM-SHA-256",
            "SCRAM-SHA-256,custom-plain",
            "custom-plain",
        ] {
            let mut command = server.bob(transport, Some(mechanisms));
            command.arg("login");
            let run = server.run_ok(command);
            let marker = run.event("custom-mechanism");
            assert_eq!(marker["mechanism"], "PLAIN", "{}", run.describe());
            assert_connected(&run, BOB, "PLAIN", transport, true);
            assert!(
                !run.sent_auth("SCRAM-SHA-256"),
                "{mechanisms}: SCRAM tried too\n{}",
                run.describe()
            );
        }
    }
    server.stop();
}

/// The `mechanisms` option is a whitelist: with Strophe's defaults it picks
/// the strongest SCRAM the server offers, SCRAM-SHA-512; with
/// `[Strophe.SASLSHA256]` alone, SCRAM-SHA-256.
#[test]
fn a_whitelist_of_scram_sha_256_alone_chooses_it() {
    if !interop_enabled("a_whitelist_of_scram_sha_256_alone_chooses_it") {
        return;
    }
    let fixture = Fixture::with_bob();
    let server = fixture.serve();
    for transport in Transport::ALL {
        let mut command = server.bob(transport, None);
        command.arg("login");
        let run = server.run_ok(command);
        assert_connected(&run, BOB, "SCRAM-SHA-512", transport, false);

        let mut command = server.bob(transport, Some("SCRAM-SHA-256"));
        command.arg("login");
        let run = server.run_ok(command);
        assert_connected(&run, BOB, "SCRAM-SHA-256", transport, false);
        assert!(
            !run.sent_auth("SCRAM-SHA-512"),
            "SCRAM-SHA-512 tried\n{}",
            run.describe()
        );
    }
    server.stop();
}

#[test]
fn a_wrong_password_is_refused() {
    if !interop_enabled("a_wrong_password_is_refused") {
        return;
    }
    let fixture = Fixture::with_bob();
    let server = fixture.serve();
    for transport in Transport::ALL {
        for mechanisms in ["SCRAM-SHA-256", "PLAIN", "custom-plain"] {
            let mut command = server.client(transport, BOB);
            command.args([
                "--password",
                "not bob's password",
                "--mechanisms",
                mechanisms,
            ]);
            command.arg("login");
            let run = server.run(command);
            let what = format!("{transport:?} {mechanisms}");
            assert_eq!(
                run.status.and_then(|status| status.code()),
                Some(3),
                "{what}: {}",
                run.describe()
            );
            assert_eq!(
                run.event("error")["condition"],
                "authentication-failed",
                "{what}: {}",
                run.describe()
            );
            assert!(
                run.events("connected").is_empty(),
                "{what}: {}",
                run.describe()
            );
        }
    }
    server.stop();
}

/// Checks a received message: from a full JID of `from`, `body`, no delay.
fn assert_live_message(message: &Value, from: &str, body: &str) {
    let sender = message["from"].as_str().unwrap_or_default();
    assert!(
        sender.starts_with(&format!("{from}/")),
        "from {sender:?}: {message}"
    );
    assert_eq!(message["body"], body, "{message}");
    assert_eq!(message["type"], "chat", "{message}");
    assert_eq!(message["delay"], false, "{message}");
}

/// bob (BOSH, SCRAM-SHA-256) receives what alice (WebSocket, EXTERNAL with
/// her certificate) sends, and the other way round.
#[test]
fn messages_both_ways_between_websocket_and_bosh() {
    if !interop_enabled("messages_both_ways_between_websocket_and_bosh") {
        return;
    }
    let fixture = Fixture::with_bob();
    let certificate = fixture.alice_certificate();
    let server = fixture.serve();

    // alice (WebSocket) to bob (BOSH).
    let mut receive = server.bob(Transport::Bosh, Some("SCRAM-SHA-256"));
    receive.args(["receive", "--count", "1", "--timeout", "20"]);
    let bob = server.start_receiver(receive, "bob");
    let body = "hello bob <&> ünïcode \"quoted\"";
    let mut send = server.alice(Transport::WebSocket, &certificate);
    send.args(["send", "--to", BOB, "--body", body]);
    let run = server.run_ok(send);
    assert_connected(&run, ALICE, "EXTERNAL", Transport::WebSocket, false);
    assert_eq!(run.event("sent")["body"], body, "{}", run.describe());
    let message = bob.message(&server, "bob");
    assert_live_message(&message, ALICE, body);

    // bob (BOSH) to alice (WebSocket).
    let mut receive = server.alice(Transport::WebSocket, &certificate);
    receive.args(["receive", "--count", "1", "--timeout", "20"]);
    let alice = server.start_receiver(receive, "alice");
    let body = "hello alice, from BOSH ✓";
    let mut send = server.bob(Transport::Bosh, Some("SCRAM-SHA-256"));
    send.args(["send", "--to", ALICE, "--body", body]);
    let run = server.run_ok(send);
    assert_connected(&run, BOB, "SCRAM-SHA-256", Transport::Bosh, false);
    let message = alice.message(&server, "alice");
    assert_live_message(&message, BOB, body);
    server.stop();
}

/// The helpers themselves, without a server.
#[test]
fn listening_lines_parse() {
    assert_eq!(
        https_port(
            "listening on 127.0.0.1:40125 (HTTPS: WebSocket at /xmpp-websocket) for localhost"
        ),
        Some(40125)
    );
    assert_eq!(
        https_port(
            "listening on 127.0.0.1:40126 (HTTPS: WebSocket at /xmpp-websocket, BOSH at /http-bind) for localhost"
        ),
        Some(40126)
    );
    assert_eq!(
        https_port("listening on 127.0.0.1:40123 (STARTTLS) for localhost"),
        None
    );
    assert!(
        client_script().is_file(),
        "{} is missing",
        client_script().display()
    );
    assert!(
        Path::new(CLIENT_DIR).join("package-lock.json").is_file(),
        "package-lock.json is missing"
    );
}
