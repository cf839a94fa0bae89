//! Interoperability with slixmpp, a Python XMPP client library: the `sigil`
//! binary serves, and `tests/interop/slixmpp_client.py` logs in, sends,
//! receives, edits its roster and asks for disco#info, and logs in with
//! SASL EXTERNAL and a client certificate made by `sigil cert new --register`;
//! slixmpp's own plugins drive private XML storage (xep_0049), vCards
//! (xep_0054, with the server's XEP-0153 hash and a vCard4 read) and last
//! activity (xep_0012), message carbons (xep_0280: two sessions of one
//! account), the message archive (xep_0313 paging by RSM, with and without
//! a `with` filter, its query form; xep_0441 preferences) and client state
//! indication (xep_0352, between two accounts subscribed to each other);
//! and `tests/interop/slixmpp_component.py`, an echo component on slixmpp's
//! `ComponentXMPP` (XEP-0114), answers a client's message through the
//! server.
//!
//! Needs `python3` with slixmpp (`scripts/ensure-python-peers` installs it).
//! `SIGIL_SKIP_INTEROP=1` skips these tests; `SIGIL_INTEROP_DEBUG=1` passes
//! `--debug` to the client, whose log (the XML exchanged) then shows in the
//! failure messages.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod process;

use process::{Guard, drain, line_reader, wait_bounded};

use std::fs::File;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::thread;
use std::time::{Duration, Instant};

const CLIENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/interop/slixmpp_client.py"
);
const COMPONENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/interop/slixmpp_component.py"
);
const DOMAIN: &str = "localhost";
const ALICE: &str = "alice@localhost";
const BOB: &str = "bob@localhost";
const ALICE_PASSWORD: &str = "correct horse battery staple";
const BOB_PASSWORD: &str = "bob's own pässword";

/// How long the server may take to print its listening lines.
const STARTUP: Duration = Duration::from_secs(20);
/// How long the server may take to exit after SIGTERM.
const SHUTDOWN: Duration = Duration::from_secs(15);
/// How long one client run may take (it stops itself after 30 s).
const CLIENT_RUN: Duration = Duration::from_secs(40);

const CONFIG: &str = r#"domain = "localhost"
[[listener]]
kind = "starttls"
address = "127.0.0.1:0"
[[listener]]
kind = "direct-tls"
address = "127.0.0.1:0"
[storage]
url = "sqlite://sigil.db"
"#;

/// Whether the interop tests run: false (with a note) only when
/// `SIGIL_SKIP_INTEROP=1`; a missing slixmpp is a failure.
fn interop_enabled(test: &str) -> bool {
    if std::env::var("SIGIL_SKIP_INTEROP").as_deref() == Ok("1") {
        eprintln!("{test}: skipped: SIGIL_SKIP_INTEROP=1");
        return false;
    }
    let probe = Command::new("python3")
        .args(["-c", "import slixmpp"])
        .output();
    match probe {
        Ok(output) if output.status.success() => true,
        Ok(output) => panic!(
            "slixmpp is not importable by python3 ({}): run scripts/ensure-python-peers \
             (or set SIGIL_SKIP_INTEROP=1 to skip the interop tests)",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .trim()
        ),
        Err(e) => panic!(
            "cannot run python3 ({e}): install it and run scripts/ensure-python-peers \
             (or set SIGIL_SKIP_INTEROP=1 to skip the interop tests)"
        ),
    }
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

/// A data directory with a configuration and the accounts alice and bob.
struct Fixture {
    dir: tempfile::TempDir,
    starts: usize,
}

impl Fixture {
    /// A configuration and no accounts.
    fn empty() -> Self {
        Self::with_config(CONFIG)
    }

    /// This configuration and no accounts.
    fn with_config(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sigil.toml"), config).unwrap();
        Self { dir, starts: 0 }
    }

    fn new() -> Self {
        let fixture = Self::empty();
        fixture.add_user("alice", ALICE_PASSWORD);
        fixture.add_user("bob", BOB_PASSWORD);
        let list = sigil(&["user", "list", "--config", &fixture.config()]);
        let list = String::from_utf8_lossy(&list.stdout);
        assert!(
            list.contains("alice") && list.contains("bob"),
            "sigil user list: {list}"
        );
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

    /// Runs `sigil cert new JID --register --name DEVICE` (which creates the
    /// account, without a password, if it does not exist) and returns the
    /// certificate and key files with what the command printed.
    fn new_certificate(&self, jid: &str, device: &str) -> (Certificate, String) {
        let p12_password = self.dir.path().join(format!("{device}.p12-password"));
        std::fs::write(&p12_password, "p12 password\n").unwrap();
        let out = self.dir.path().join("certificates");
        let output = sigil(&[
            "cert",
            "new",
            jid,
            "--register",
            "--name",
            device,
            "--out",
            &out.display().to_string(),
            "--p12-password-file",
            &p12_password.display().to_string(),
            "--config",
            &self.config(),
        ]);
        let certificate = Certificate {
            cert: out.join(format!("{device}.crt")),
            key: out.join(format!("{device}.key")),
        };
        for file in [&certificate.cert, &certificate.key] {
            assert!(file.is_file(), "sigil cert new wrote no {}", file.display());
        }
        (
            certificate,
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    }

    /// Starts `sigil serve` and waits for the listening lines (both TLS
    /// ones, and the component one when the configuration has one).
    fn serve(&mut self) -> Server {
        let config = std::fs::read_to_string(self.config()).unwrap();
        let components = config.contains("kind = \"component\"");
        self.starts += 1;
        let log = self.dir.path().join(format!("server-{}.log", self.starts));
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
            starttls: 0,
            direct_tls: 0,
            component: 0,
        };
        let lines = line_reader(server.child.0.stdout.take().unwrap());
        let deadline = Instant::now() + STARTUP;
        let mut seen = Vec::new();
        while server.starttls == 0
            || server.direct_tls == 0
            || (components && server.component == 0)
        {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let line = match lines.recv_timeout(remaining) {
                Ok(line) => line,
                Err(e) => panic!(
                    "sigil serve printed no listening lines ({e:?}); stdout: {seen:?}\n{}",
                    server.log_text()
                ),
            };
            if let Some(port) = listening_port(&line, "(STARTTLS)") {
                server.starttls = port;
            } else if let Some(port) = listening_port(&line, "(direct TLS)") {
                server.direct_tls = port;
            } else if let Some(port) = listening_port(&line, "(XEP-0114 components)") {
                server.component = port;
            }
            seen.push(line);
        }
        // Keep reading standard output so the server never blocks on it.
        thread::spawn(move || while lines.recv().is_ok() {});
        assert!(server.ca.is_file(), "no server.crt after the first start");
        server
    }
}

/// The port of a `listening on 127.0.0.1:PORT (WHAT) for DOMAIN` line.
fn listening_port(line: &str, what: &str) -> Option<u16> {
    let rest = line.strip_prefix("listening on ")?;
    let (address, rest) = rest.split_once(' ')?;
    if !rest.starts_with(what) || !rest.ends_with(&format!("for {DOMAIN}")) {
        return None;
    }
    address.rsplit_once(':')?.1.parse().ok()
}

/// A client certificate and its private key (PEM files).
struct Certificate {
    cert: PathBuf,
    key: PathBuf,
}

/// A running `sigil serve`.
struct Server {
    child: Guard,
    log: PathBuf,
    ca: PathBuf,
    starttls: u16,
    direct_tls: u16,
    /// The component listener's port (0: none).
    component: u16,
}

/// How the client reaches the server.
#[derive(Clone, Copy)]
enum Mode {
    Starttls,
    DirectTls,
}

impl Server {
    fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(80).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("--- server log (tail) ---\n{}", tail.join("\n"))
    }

    /// The client's command line, up to the action.
    fn client(&self, jid: &str, password: &str, mode: Mode, mechanism: &str) -> Command {
        let mut command = self.client_without_password(jid, mode, mechanism);
        command.args(["--password", password]);
        command
    }

    /// The client's command line for SASL EXTERNAL with `certificate`, up
    /// to the action: no password.
    fn client_with_certificate(&self, jid: &str, mode: Mode, certificate: &Certificate) -> Command {
        let mut command = self.client_without_password(jid, mode, "EXTERNAL");
        command
            .arg("--cert")
            .arg(&certificate.cert)
            .arg("--key")
            .arg(&certificate.key);
        command
    }

    fn client_without_password(&self, jid: &str, mode: Mode, mechanism: &str) -> Command {
        self.client_on("python3", jid, mode, mechanism)
    }

    /// The client's command line run by the Python interpreter `python`.
    fn client_on(&self, python: &str, jid: &str, mode: Mode, mechanism: &str) -> Command {
        let (mode, port) = match mode {
            Mode::Starttls => ("starttls", self.starttls),
            Mode::DirectTls => ("direct-tls", self.direct_tls),
        };
        let mut command = Command::new(python);
        command
            .arg(CLIENT)
            .args(["--jid", jid])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--mode", mode, "--mechanism", mechanism])
            .arg("--ca")
            .arg(&self.ca)
            .args(["--time-limit", "30"]);
        if std::env::var("SIGIL_INTEROP_DEBUG").as_deref() == Ok("1") {
            command.arg("--debug");
        }
        command
    }

    /// Runs the client to completion (bounded).
    fn run(&self, mut command: Command) -> Run {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run python3");
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

    /// The first JSON line whose `event` is `event`.
    fn event(&self, event: &str) -> &str {
        self.events(event)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no {event:?} line from the client: {}", self.describe()))
    }

    fn events(&self, event: &str) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|line| string_field(line, "event").as_deref() == Some(event))
            .collect()
    }
}

/// The raw JSON value after `"key": ` in a line printed by Python's
/// `json.dumps` (default separators), up to where the value ends.
fn raw_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!("\"{key}\": "))? + key.len() + 4;
    let rest = &line[start..];
    if let Some(body) = rest.strip_prefix('"') {
        // A string: find the closing quote that is not escaped.
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => return Some(&rest[..i + 2]),
                _ => escaped = false,
            }
        }
        None
    } else {
        let end = rest.find([',', '}', ']']).unwrap_or(rest.len());
        Some(rest[..end].trim())
    }
}

/// A JSON string field, unescaped (the escapes `json.dumps` produces).
fn string_field(line: &str, key: &str) -> Option<String> {
    let raw = raw_field(line, key)?;
    let body = raw.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            other => out.push(other),
        }
    }
    Some(out)
}

fn bool_field(line: &str, key: &str) -> Option<bool> {
    match raw_field(line, key)? {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Logs alice in and checks the JSON line the client prints.
fn assert_login(mode: Mode, mechanism: &str) {
    let mut fixture = Fixture::new();
    let server = fixture.serve();
    let mut command = server.client(ALICE, ALICE_PASSWORD, mode, mechanism);
    command.arg("login");
    let run = server.run_ok(command);
    assert_bound(&run, mechanism);
    server.stop();
}

/// Checks the client's `bound` line: a full JID of alice, `mechanism`, TLS.
fn assert_bound(run: &Run, mechanism: &str) {
    let bound = run.event("bound");
    assert_eq!(
        string_field(bound, "mechanism").as_deref(),
        Some(mechanism),
        "{bound}"
    );
    let jid = string_field(bound, "jid").unwrap();
    let resource = jid.strip_prefix(&format!("{ALICE}/"));
    assert!(
        resource.is_some_and(|r| !r.is_empty()),
        "bound JID {jid:?} is not a full JID of {ALICE}"
    );
    let tls = string_field(bound, "tls");
    assert!(
        tls.as_deref().is_some_and(|v| v.starts_with("TLSv1")),
        "not over TLS: {bound}"
    );
}

/// Insists a client run failed to authenticate (exit status 3).
fn assert_auth_failed(run: &Run, what: &str) {
    assert_eq!(
        run.status.and_then(|status| status.code()),
        Some(3),
        "{what}: {}",
        run.describe()
    );
    assert!(
        run.stderr.contains("authentication failed"),
        "{what}: {}",
        run.describe()
    );
    assert!(run.events("bound").is_empty(), "{what}: {}", run.describe());
}

#[test]
fn starttls_plain_login() {
    if interop_enabled("starttls_plain_login") {
        assert_login(Mode::Starttls, "PLAIN");
    }
}

#[test]
fn starttls_scram_sha_256_login() {
    if interop_enabled("starttls_scram_sha_256_login") {
        assert_login(Mode::Starttls, "SCRAM-SHA-256");
    }
}

#[test]
fn direct_tls_scram_sha_1_login() {
    if interop_enabled("direct_tls_scram_sha_1_login") {
        assert_login(Mode::DirectTls, "SCRAM-SHA-1");
    }
}

#[test]
fn wrong_password_is_refused() {
    if !interop_enabled("wrong_password_is_refused") {
        return;
    }
    let mut fixture = Fixture::new();
    let server = fixture.serve();
    for mechanism in ["SCRAM-SHA-256", "PLAIN"] {
        let mut command = server.client(ALICE, "not alice's password", Mode::Starttls, mechanism);
        command.arg("login");
        let run = server.run(command);
        assert!(
            run.status.is_some_and(|status| !status.success()),
            "{mechanism} with a wrong password: {}",
            run.describe()
        );
        assert!(
            run.stderr.contains("authentication failed"),
            "{mechanism} with a wrong password: {}",
            run.describe()
        );
        assert!(run.events("bound").is_empty(), "{}", run.describe());
    }
    server.stop();
}

#[test]
fn offline_message_survives_a_restart() {
    if !interop_enabled("offline_message_survives_a_restart") {
        return;
    }
    let mut fixture = Fixture::new();
    let server = fixture.serve();
    let body = "sent while bob was away <&> ünïcode";
    let mut send = server.client(ALICE, ALICE_PASSWORD, Mode::Starttls, "SCRAM-SHA-256");
    send.args(["send", "--to", BOB, "--body", body]);
    server.run_ok(send);
    server.stop();

    let server = fixture.serve();
    let mut receive = server.client(BOB, BOB_PASSWORD, Mode::DirectTls, "SCRAM-SHA-256");
    receive.args(["receive", "--count", "1", "--timeout", "15"]);
    let run = server.run_ok(receive);
    let message = run.event("message");
    let from = string_field(message, "from").unwrap();
    assert!(
        from == ALICE || from.starts_with(&format!("{ALICE}/")),
        "from {from:?}"
    );
    assert_eq!(string_field(message, "body").as_deref(), Some(body));
    assert_eq!(bool_field(message, "delay"), Some(true), "{message}");
    server.stop();
}

#[test]
fn live_message_is_delivered_without_delay() {
    if !interop_enabled("live_message_is_delivered_without_delay") {
        return;
    }
    let mut fixture = Fixture::new();
    let server = fixture.serve();
    let mut receive = server.client(BOB, BOB_PASSWORD, Mode::Starttls, "SCRAM-SHA-512");
    receive.args(["receive", "--count", "1", "--timeout", "20"]);
    let mut child = receive
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run python3");
    let lines = line_reader(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let mut receiver = Guard(child);
    let mut seen = Vec::new();
    let deadline = Instant::now() + CLIENT_RUN;
    let next = |seen: &mut Vec<String>| -> Result<String, RecvTimeoutError> {
        let line = lines.recv_timeout(deadline.saturating_duration_since(Instant::now()))?;
        seen.push(line.clone());
        Ok(line)
    };

    // Bob is online (his initial presence handled) once he printed this.
    loop {
        match next(&mut seen) {
            Ok(line) if string_field(&line, "event").as_deref() == Some("bound") => break,
            Ok(_) => {}
            Err(e) => {
                let _ = receiver.0.kill();
                panic!(
                    "bob never logged in ({e:?}); stdout: {seen:?}\nstderr: {}\n{}",
                    String::from_utf8_lossy(&stderr.join().unwrap()),
                    server.log_text()
                );
            }
        }
    }

    let body = "hello bob, are you there?";
    let mut send = server.client(ALICE, ALICE_PASSWORD, Mode::DirectTls, "PLAIN");
    send.args(["send", "--to", BOB, "--body", body]);
    server.run_ok(send);

    let message = loop {
        match next(&mut seen) {
            Ok(line) if string_field(&line, "event").as_deref() == Some("message") => break line,
            Ok(_) => {}
            Err(e) => {
                let _ = receiver.0.kill();
                panic!(
                    "bob received nothing ({e:?}); stdout: {seen:?}\nstderr: {}\n{}",
                    String::from_utf8_lossy(&stderr.join().unwrap()),
                    server.log_text()
                );
            }
        }
    };
    let status = wait_bounded(&mut receiver.0, Duration::from_secs(15));
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
    assert!(
        status.is_some_and(|status| status.success()),
        "bob's client: {status:?}\n{stderr}"
    );
    let from = string_field(&message, "from").unwrap();
    assert!(from.starts_with(&format!("{ALICE}/")), "from {from:?}");
    assert_eq!(string_field(&message, "body").as_deref(), Some(body));
    assert_eq!(bool_field(&message, "delay"), Some(false), "{message}");
    server.stop();
}

#[test]
fn roster_add_is_pushed() {
    if !interop_enabled("roster_add_is_pushed") {
        return;
    }
    let mut fixture = Fixture::new();
    let server = fixture.serve();
    let mut command = server.client(ALICE, ALICE_PASSWORD, Mode::Starttls, "SCRAM-SHA-1");
    command.args(["roster-add", "--contact", BOB, "--name", "Bob"]);
    let run = server.run_ok(command);
    let push = run.event("roster-push");
    assert!(
        push.contains(r#"{"jid": "bob@localhost", "name": "Bob", "subscription": "none""#),
        "roster push without bob's item: {push}"
    );
    // A push comes from the account itself, if it names a sender at all.
    if let Some(from) = string_field(push, "from") {
        assert_eq!(from, ALICE, "{push}");
    }
    server.stop();
}

#[test]
fn disco_info_of_the_server() {
    if !interop_enabled("disco_info_of_the_server") {
        return;
    }
    let mut fixture = Fixture::new();
    let server = fixture.serve();
    let mut command = server.client(ALICE, ALICE_PASSWORD, Mode::Starttls, "SCRAM-SHA-256");
    command.arg("disco");
    let run = server.run_ok(command);
    let disco = run.event("disco");
    assert!(
        disco.contains(r#"{"category": "server", "type": "im""#),
        "no server/im identity: {disco}"
    );
    for feature in [
        "http://jabber.org/protocol/disco#info",
        "urn:xmpp:ping",
        "jabber:iq:version",
    ] {
        assert!(
            disco.contains(&format!("\"{feature}\"")),
            "no {feature}: {disco}"
        );
    }
    server.stop();
}

/// A fixture whose only account, alice, was created by
/// `sigil cert new --register` (so it has no password), with the
/// certificate registered as "laptop".
fn certificate_fixture() -> (Fixture, Certificate) {
    let fixture = Fixture::empty();
    let (certificate, printed) = fixture.new_certificate(ALICE, "laptop");
    assert!(
        printed.contains(&format!("created the account {ALICE} (no password)")),
        "sigil cert new --register did not create the account: {printed}"
    );
    assert!(
        printed.contains(&format!("registered \"laptop\" for {ALICE} (SHA-256 ")),
        "sigil cert new --register did not register the certificate: {printed}"
    );
    (fixture, certificate)
}

#[test]
fn external_login_with_a_registered_certificate_and_no_password() {
    if !interop_enabled("external_login_with_a_registered_certificate_and_no_password") {
        return;
    }
    let (mut fixture, certificate) = certificate_fixture();
    let server = fixture.serve();
    for mode in [Mode::Starttls, Mode::DirectTls] {
        let mut command = server.client_with_certificate(ALICE, mode, &certificate);
        command.arg("login");
        let run = server.run_ok(command);
        assert_bound(&run, "EXTERNAL");
    }
    server.stop();
}

#[test]
fn an_account_made_by_cert_new_has_no_password() {
    if !interop_enabled("an_account_made_by_cert_new_has_no_password") {
        return;
    }
    let (mut fixture, _certificate) = certificate_fixture();
    let server = fixture.serve();
    for (mechanism, password) in [("SCRAM-SHA-256", "x"), ("PLAIN", "x"), ("PLAIN", "")] {
        let mut command = server.client(ALICE, password, Mode::Starttls, mechanism);
        command.arg("login");
        let run = server.run(command);
        assert_auth_failed(&run, &format!("{mechanism} with password {password:?}"));
    }
    server.stop();
}

#[test]
fn revoking_ends_a_live_external_session() {
    if !interop_enabled("revoking_ends_a_live_external_session") {
        return;
    }
    let (mut fixture, certificate) = certificate_fixture();
    let server = fixture.serve();
    let mut receive = server.client_with_certificate(ALICE, Mode::Starttls, &certificate);
    receive.args(["receive", "--count", "1", "--timeout", "20"]);
    let mut child = receive
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run python3");
    let lines = line_reader(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let mut receiver = Guard(child);
    let mut seen = Vec::new();

    // Alice is online once she printed this.
    let deadline = Instant::now() + CLIENT_RUN;
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let bound = string_field(&line, "event").as_deref() == Some("bound");
                seen.push(line);
                if bound {
                    break;
                }
            }
            Err(e) => {
                let _ = receiver.0.kill();
                panic!(
                    "alice never logged in ({e:?}); stdout: {seen:?}\nstderr: {}\n{}",
                    String::from_utf8_lossy(&stderr.join().unwrap()),
                    server.log_text()
                );
            }
        }
    }
    assert_eq!(
        string_field(&seen[seen.len() - 1], "mechanism").as_deref(),
        Some("EXTERNAL"),
        "{seen:?}"
    );

    let revoke = sigil(&[
        "cert",
        "revoke",
        ALICE,
        "laptop",
        "--config",
        &fixture.config(),
    ]);
    let printed = String::from_utf8_lossy(&revoke.stdout);
    assert!(
        printed.contains("the running server ended 1 session(s) that used it"),
        "sigil cert revoke: {printed}"
    );

    // The session ends (a stream error), and with it the client.
    let status = wait_bounded(&mut receiver.0, Duration::from_secs(10));
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
        seen.push(line);
    }
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
    let context = format!("stdout: {seen:?}\nstderr: {stderr}\n{}", server.log_text());
    let Some(status) = status else {
        panic!("the client still ran 10 s after the revocation; {context}");
    };
    assert!(
        !status.success(),
        "the client succeeded ({status}); {context}"
    );
    let error = seen
        .iter()
        .find(|line| string_field(line, "event").as_deref() == Some("stream-error"))
        .unwrap_or_else(|| panic!("no stream error; {context}"));
    assert_eq!(
        string_field(error, "condition").as_deref(),
        Some("not-authorized"),
        "{context}"
    );
    assert_eq!(
        string_field(error, "text").as_deref(),
        Some("This client side certificate has been revoked."),
        "{context}"
    );
    assert!(
        seen.iter()
            .all(|line| string_field(line, "event").as_deref() != Some("message")),
        "{context}"
    );

    // The certificate logs in no more.
    for mode in [Mode::Starttls, Mode::DirectTls] {
        let mut command = server.client_with_certificate(ALICE, mode, &certificate);
        command.arg("login");
        let run = server.run(command);
        assert_auth_failed(&run, "EXTERNAL with the revoked certificate");
    }
    server.stop();
}

const ECHO: &str = "echo.localhost";
const ECHO_SECRET: &str = "the echo component's shared secret";

/// A slixmpp component (XEP-0114, its secret read from a file by the
/// server) echoes a message that a slixmpp client logged in over STARTTLS
/// sends to an address in its domain; the server's disco#items lists it.
#[test]
fn a_slixmpp_component_answers_a_slixmpp_client() {
    use std::os::unix::fs::PermissionsExt;
    if !interop_enabled("a_slixmpp_component_answers_a_slixmpp_client") {
        return;
    }
    let config = format!(
        "{CONFIG}[[listener]]\nkind = \"component\"\naddress = \"127.0.0.1:0\"\n\
         [[component]]\ndomain = \"{ECHO}\"\nsecret_file = \"echo.secret\"\n"
    );
    let mut fixture = Fixture::with_config(&config);
    fixture.add_user("alice", ALICE_PASSWORD);
    let secret = fixture.dir.path().join("echo.secret");
    std::fs::write(&secret, format!("{ECHO_SECRET}\n")).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let server = fixture.serve();
    assert_ne!(server.component, 0, "no component listener");

    let mut command = Command::new("python3");
    command
        .arg(COMPONENT)
        .args([
            "--jid",
            ECHO,
            "--secret",
            ECHO_SECRET,
            "--host",
            "127.0.0.1",
        ])
        .args(["--port", &server.component.to_string()])
        .args(["--count", "1", "--time-limit", "30"]);
    if std::env::var("SIGIL_INTEROP_DEBUG").as_deref() == Ok("1") {
        command.arg("--debug");
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run python3");
    let lines = line_reader(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let mut component = Guard(child);
    let mut seen = Vec::new();
    let deadline = Instant::now() + CLIENT_RUN;
    let next_event = |seen: &mut Vec<String>, event: &str| -> Result<String, RecvTimeoutError> {
        loop {
            let line = lines.recv_timeout(deadline.saturating_duration_since(Instant::now()))?;
            seen.push(line.clone());
            if string_field(&line, "event").as_deref() == Some(event) {
                return Ok(line);
            }
        }
    };
    if let Err(e) = next_event(&mut seen, "ready") {
        let _ = component.0.kill();
        panic!(
            "the component never connected ({e:?}); stdout: {seen:?}\nstderr: {}\n{}",
            String::from_utf8_lossy(&stderr.join().unwrap()),
            server.log_text()
        );
    }

    let body = "hello component <&> ünïcode";
    let mut converse = server.client(ALICE, ALICE_PASSWORD, Mode::Starttls, "SCRAM-SHA-256");
    converse.args(["converse", "--to", "bot@echo.localhost", "--body", body]);
    converse.args(["--timeout", "15"]);
    let run = server.run_ok(converse);
    let answer = run.event("message");
    assert_eq!(
        string_field(answer, "from").as_deref(),
        Some("bot@echo.localhost"),
        "{answer}"
    );
    assert_eq!(
        string_field(answer, "body").as_deref(),
        Some(format!("echo: {body}").as_str()),
        "{answer}"
    );
    assert_eq!(bool_field(answer, "delay"), Some(false), "{answer}");

    // The component saw the message from alice's full JID, and ends.
    let received = next_event(&mut seen, "message")
        .unwrap_or_else(|e| panic!("the component printed no message ({e:?}); stdout: {seen:?}"));
    let from = string_field(&received, "from").unwrap();
    assert!(from.starts_with(&format!("{ALICE}/")), "from {from:?}");
    assert_eq!(
        string_field(&received, "to").as_deref(),
        Some("bot@echo.localhost")
    );
    assert_eq!(string_field(&received, "body").as_deref(), Some(body));
    let status = wait_bounded(&mut component.0, Duration::from_secs(15));
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
    assert!(
        status.is_some_and(|status| status.success()),
        "the component: {status:?}\n{stderr}\n{}",
        server.log_text()
    );

    let mut items = server.client(ALICE, ALICE_PASSWORD, Mode::DirectTls, "SCRAM-SHA-256");
    items.arg("items");
    let run = server.run_ok(items);
    let listed = run.event("items");
    assert!(
        listed.contains(&format!("{{\"jid\": \"{ECHO}\"")),
        "the component is not listed: {listed}"
    );
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(!log.contains(ECHO_SECRET), "the secret is in the log");
    server.stop();
}

/// The helpers themselves, without a server.
#[test]
fn json_fields_and_listening_lines_parse() {
    let line = r#"{"event": "message", "from": "a@b/c", "body": "x \"y\" \u00fc\\", "delay": true, "stamp": null}"#;
    assert_eq!(string_field(line, "event").as_deref(), Some("message"));
    assert_eq!(string_field(line, "body").as_deref(), Some("x \"y\" ü\\"));
    assert_eq!(bool_field(line, "delay"), Some(true));
    assert_eq!(string_field(line, "stamp"), None);
    assert_eq!(
        listening_port(
            "listening on 127.0.0.1:40123 (STARTTLS) for localhost",
            "(STARTTLS)"
        ),
        Some(40123)
    );
    assert_eq!(
        listening_port(
            "listening on 127.0.0.1:40124 (direct TLS) for localhost",
            "(STARTTLS)"
        ),
        None
    );
    assert!(Path::new(CLIENT).is_file(), "{CLIENT} is missing");
    assert!(Path::new(COMPONENT).is_file(), "{COMPONENT} is missing");
}

/// Debian's slixmpp 1.8.3 (what poezio runs) offers SCRAM-*-PLUS with
/// `tls-unique`, which Sigil does not have: each is refused with the
/// types Sigil has and not counted, so slixmpp falls to plain SCRAM and
/// logs in on its first connection instead of being disconnected twice.
/// Runs Debian's own interpreter (`/usr/bin/python3`, package
/// `python3-slixmpp`, installed by the test command).
#[test]
fn debian_slixmpp_logs_in_on_its_first_connection() {
    if !interop_enabled("debian_slixmpp_logs_in_on_its_first_connection") {
        return;
    }
    let version = Command::new("/usr/bin/python3")
        .args(["-c", "import slixmpp; print(slixmpp.__version__)"])
        .output()
        .expect("no /usr/bin/python3: the test command installs python3-slixmpp");
    assert!(
        version.status.success(),
        "Debian's python3-slixmpp is missing (the test command installs it): {}",
        String::from_utf8_lossy(&version.stderr)
    );
    let mut fixture = Fixture::new();
    let server = fixture.serve();
    for mode in [Mode::Starttls, Mode::DirectTls] {
        let mut command = server.client_on("/usr/bin/python3", ALICE, mode, "ANY");
        command.args(["--password", ALICE_PASSWORD, "login"]);
        let run = server.run_ok(command);
        assert_eq!(run.events("connected").len(), 1, "{}", run.describe());
        assert!(run.events("stream-error").is_empty(), "{}", run.describe());
        let bound = run.event("bound");
        let mechanism = string_field(bound, "mechanism").unwrap();
        assert!(
            mechanism.starts_with("SCRAM-SHA-") || mechanism == "PLAIN",
            "{bound}"
        );
    }
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(
        log.contains("unsupported channel binding type"),
        "{}",
        server.log_text()
    );
    server.stop();
}

/// XEP-0049 through slixmpp's xep_0049: what alice stores comes back to
/// her, and bob's storage of the same namespace stays empty.
#[test]
fn private_xml_storage_with_slixmpp() {
    if !interop_enabled("private_xml_storage_with_slixmpp") {
        return;
    }
    let mut fixture = Fixture::new();
    let server = fixture.serve();
    let text = "bookmarks <&> ü";
    let mut command = server.client(ALICE, ALICE_PASSWORD, Mode::Starttls, "SCRAM-SHA-256");
    command.args(["private", "--store", text]);
    let run = server.run_ok(command);
    assert_eq!(
        string_field(run.event("private"), "text").as_deref(),
        Some(text)
    );
    let mut command = server.client(ALICE, ALICE_PASSWORD, Mode::DirectTls, "PLAIN");
    command.arg("private");
    let run = server.run_ok(command);
    assert_eq!(
        string_field(run.event("private"), "text").as_deref(),
        Some(text)
    );
    let mut command = server.client(BOB, BOB_PASSWORD, Mode::Starttls, "SCRAM-SHA-256");
    command.arg("private");
    let run = server.run_ok(command);
    assert_eq!(
        string_field(run.event("private"), "text").as_deref(),
        Some("")
    );
    server.stop();
}

/// XEP-0054 through slixmpp's xep_0054: the card alice publishes puts
/// the XEP-0153 hash of its photo into her presence, and bob reads it as
/// vcard-temp and as vCard4 (XEP-0292).
#[test]
fn vcard_avatar_hash_and_vcard4_with_slixmpp() {
    if !interop_enabled("vcard_avatar_hash_and_vcard4_with_slixmpp") {
        return;
    }
    let mut fixture = Fixture::new();
    let server = fixture.serve();
    let mut command = server.client(ALICE, ALICE_PASSWORD, Mode::Starttls, "SCRAM-SHA-256");
    // "a tiny image", base64.
    command.args([
        "vcard-set",
        "--fn",
        "Alice Liddell",
        "--photo",
        "YSB0aW55IGltYWdl",
    ]);
    let run = server.run_ok(command);
    let set = run.event("vcard-set");
    let expected = string_field(set, "expected").unwrap();
    assert_eq!(string_field(set, "photo"), Some(expected), "{set}");

    let mut command = server.client(BOB, BOB_PASSWORD, Mode::DirectTls, "SCRAM-SHA-256");
    command.args(["vcard-get", "--of", ALICE]);
    let run = server.run_ok(command);
    let card = run.event("vcard");
    assert_eq!(
        string_field(card, "fn").as_deref(),
        Some("Alice Liddell"),
        "{card}"
    );
    assert_eq!(
        string_field(card, "photo").as_deref(),
        Some("image/png"),
        "{card}"
    );

    let mut command = server.client(BOB, BOB_PASSWORD, Mode::Starttls, "SCRAM-SHA-256");
    command.args(["vcard-get", "--of", ALICE, "--vcard4"]);
    let run = server.run_ok(command);
    let card = run.event("vcard");
    assert_eq!(
        string_field(card, "fn").as_deref(),
        Some("Alice Liddell"),
        "{card}"
    );
    assert_eq!(
        string_field(card, "photo").as_deref(),
        Some("data:image/png;base64,YSB0aW55IGltYWdl"),
        "{card}"
    );

    // No card: item-not-found, which slixmpp reports as an error reply.
    let mut command = server.client(ALICE, ALICE_PASSWORD, Mode::Starttls, "SCRAM-SHA-256");
    command.args(["vcard-get", "--of", BOB]);
    let run = server.run(command);
    assert!(run.stderr.contains("item-not-found"), "{}", run.describe());
    server.stop();
}

/// XEP-0012 through slixmpp's xep_0012: the server's uptime; alice's own
/// last activity after she left with a status; bob, not subscribed to
/// alice, is refused.
#[test]
fn last_activity_with_slixmpp() {
    if !interop_enabled("last_activity_with_slixmpp") {
        return;
    }
    let mut fixture = Fixture::new();
    let server = fixture.serve();
    let mut command = server.client(ALICE, ALICE_PASSWORD, Mode::Starttls, "SCRAM-SHA-256");
    command.args(["last", "--of", DOMAIN]);
    let run = server.run_ok(command);
    let uptime = raw_field(run.event("last"), "seconds").unwrap();
    assert!(uptime.parse::<u64>().unwrap() < 600, "{uptime}");

    let mut command = server.client(ALICE, ALICE_PASSWORD, Mode::Starttls, "SCRAM-SHA-256");
    command.args(["leave", "--status", "Down the rabbit hole"]);
    server.run_ok(command);
    // The logout is recorded as the session ends: ask until it is.
    let deadline = Instant::now() + Duration::from_secs(10);
    let last = loop {
        let mut command = server.client(ALICE, ALICE_PASSWORD, Mode::DirectTls, "PLAIN");
        command.args(["last", "--of", ALICE]);
        let run = server.run(command);
        if run.status.is_some_and(|status| status.success()) {
            break run.event("last").to_owned();
        }
        assert!(
            Instant::now() < deadline && run.stderr.contains("item-not-found"),
            "{}\n{}",
            run.describe(),
            server.log_text()
        );
        thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        string_field(&last, "status").as_deref(),
        Some("Down the rabbit hole"),
        "{last}"
    );
    let seconds: u64 = raw_field(&last, "seconds").unwrap().parse().unwrap();
    assert!(seconds < 60, "{last}");

    let mut command = server.client(BOB, BOB_PASSWORD, Mode::Starttls, "SCRAM-SHA-256");
    command.args(["last", "--of", ALICE]);
    let run = server.run(command);
    assert!(run.stderr.contains("forbidden"), "{}", run.describe());
    server.stop();
}

// ---- Carbons, the archive and client state indication, through slixmpp's
// own plugins (xep_0280, xep_0313, xep_0441, xep_0352) ----

const CAROL: &str = "carol@localhost";
const CAROL_PASSWORD: &str = "carol's password";

impl Run {
    /// The lines whose `event` is `event`, parsed.
    fn json_events(&self, event: &str) -> Vec<serde_json::Value> {
        self.events(event)
            .into_iter()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{}", self.describe()))
            })
            .collect()
    }

    /// The one line whose `event` is `event`, parsed.
    fn json_event(&self, event: &str) -> serde_json::Value {
        let mut all = self.json_events(event);
        assert_eq!(all.len(), 1, "one {event:?} line: {}", self.describe());
        all.remove(0)
    }
}

/// A string field of a parsed line.
fn text<'a>(value: &'a serde_json::Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key:?} in {value}"))
}

/// The alice, bob and carol fixture.
fn three_accounts() -> Fixture {
    let fixture = Fixture::new();
    fixture.add_user("carol", CAROL_PASSWORD);
    fixture
}

/// Runs the client's `args` as `jid` (with its password) over STARTTLS,
/// and insists it succeeds.
fn run_as(server: &Server, (jid, password): (&str, &str), args: &[&str]) -> Run {
    let mut command = server.client(jid, password, Mode::Starttls, "SCRAM-SHA-256");
    command.args(args);
    server.run_ok(command)
}

/// `count` messages between `a` and `b` (from `a` first, then alternating),
/// bodies `prefix0`…; what each recipient got, in order.
fn exchange(
    server: &Server,
    a: (&str, &str),
    b: (&str, &str),
    count: usize,
    prefix: &str,
) -> Vec<serde_json::Value> {
    let run = run_as(
        server,
        a,
        &[
            "exchange",
            "--peer",
            b.0,
            "--peer-password",
            b.1,
            "--count",
            &count.to_string(),
            "--prefix",
            prefix,
        ],
    );
    let delivered = run.json_events("delivered");
    let bodies: Vec<&str> = delivered.iter().map(|d| text(d, "body")).collect();
    assert_eq!(bodies, strings(0..count, prefix), "{}", run.describe());
    delivered
}

/// The ids of the XEP-0359 stanza ids on a delivered message that `by`
/// gave it.
fn ids_by(delivered: &serde_json::Value, by: &str) -> Vec<String> {
    delivered["stanza_ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no stanza_ids in {delivered}"))
        .iter()
        .filter(|id| id["by"].as_str() == Some(by))
        .map(|id| text(id, "id").to_owned())
        .collect()
}

/// The bodies of archived results.
fn archived_bodies(results: &[serde_json::Value]) -> Vec<String> {
    results.iter().map(|r| text(r, "body").to_owned()).collect()
}

/// `prefix` and each number of `range`: the bodies `exchange` sends.
fn strings(range: std::ops::Range<usize>, prefix: &str) -> Vec<String> {
    range.map(|n| format!("{prefix}{n}")).collect()
}

/// XEP-0280 through slixmpp's xep_0280: two sessions of alice enable
/// carbons with the plugin's `enable()`; what bob writes to the first and
/// what the first writes to bob reach the second as the plugin's
/// `carbon_received` and `carbon_sent` events, except the messages marked
/// `<private/>`.
#[test]
fn carbons_with_slixmpp_xep_0280() {
    if !interop_enabled("carbons_with_slixmpp_xep_0280") {
        return;
    }
    let mut fixture = Fixture::new();
    let server = fixture.serve();
    let run = run_as(
        &server,
        (ALICE, ALICE_PASSWORD),
        &["carbons", "--peer", BOB, "--peer-password", BOB_PASSWORD],
    );
    let enabled = run.json_event("carbons-enabled");
    let first = text(&enabled, "first");
    let second = text(&enabled, "second");
    for jid in [first, second] {
        assert!(jid.starts_with(&format!("{ALICE}/")), "{enabled}");
    }
    assert_ne!(first, second);
    let delivered = run.json_events("delivered");
    let bodies: Vec<&str> = delivered.iter().map(|d| text(d, "body")).collect();
    assert_eq!(
        bodies,
        [
            "to first",
            "from first",
            "private to first",
            "private from first",
            "last to first",
            "last from first"
        ],
        "{}",
        run.describe()
    );
    let bob = text(&delivered[0], "from");
    assert!(bob.starts_with(&format!("{BOB}/")), "{}", delivered[0]);
    assert_eq!(text(&delivered[0], "to"), first);

    let carbons: Vec<String> = run
        .json_events("carbon")
        .iter()
        .map(|carbon| {
            // A carbon comes from the account's bare JID.
            assert_eq!(text(carbon, "wrapper_from"), ALICE, "{carbon}");
            format!(
                "{} {} -> {}: {}",
                text(carbon, "direction"),
                text(carbon, "from"),
                text(carbon, "to"),
                text(carbon, "body")
            )
        })
        .collect();
    assert_eq!(
        carbons,
        [
            format!("received {bob} -> {first}: to first"),
            format!("sent {first} -> {bob}: from first"),
            format!("received {bob} -> {first}: last to first"),
            format!("sent {first} -> {bob}: last from first"),
        ],
        "{}",
        run.describe()
    );
    // The second session got carbons only.
    let done = run.json_event("carbons-done");
    assert_eq!(done["second_messages"], 0, "{done}");
    server.stop();
}

/// XEP-0313 through slixmpp's xep_0313: after twelve messages between
/// alice and bob and three with carol, `retrieve(iterator=True)` pages
/// alice's archive by five, forwards and backwards, every message once,
/// in order, with the stanza ids delivered live; `iterate()` with a `with`
/// filter gets only one conversation; `get_fields()` gets the query form.
#[test]
fn archive_paging_with_slixmpp_xep_0313() {
    if !interop_enabled("archive_paging_with_slixmpp_xep_0313") {
        return;
    }
    let mut fixture = three_accounts();
    let server = fixture.serve();
    let alice = (ALICE, ALICE_PASSWORD);
    let with_bob = exchange(&server, alice, (BOB, BOB_PASSWORD), 12, "m");
    let with_carol = exchange(&server, alice, (CAROL, CAROL_PASSWORD), 3, "c");
    // Each message reached its recipient with the id its archive gave it.
    let mut live_ids = Vec::new();
    for delivered in with_bob.iter().chain(&with_carol) {
        let to = text(delivered, "to");
        let recipient = to.split('/').next().unwrap();
        let ids = ids_by(delivered, recipient);
        assert_eq!(ids.len(), 1, "one stanza id by {recipient}: {delivered}");
        if recipient == ALICE {
            live_ids.push((text(delivered, "body").to_owned(), ids[0].clone()));
        }
    }
    assert_eq!(live_ids.len(), 7);

    let mut all = strings(0..12, "m");
    all.extend(strings(0..3, "c"));

    // Forwards by five: three full pages; the last says complete.
    let run = run_as(&server, alice, &["mam", "--page", "5"]);
    let pages = run.json_events("mam-page");
    let mut seen = Vec::new();
    for (n, page) in pages.iter().enumerate() {
        let results = page["results"].as_array().unwrap();
        assert_eq!(results.len(), 5, "page {n}: {page}");
        assert_eq!(page["first"], results[0]["id"], "{page}");
        assert_eq!(page["last"], results[4]["id"], "{page}");
        assert_eq!(page["complete"], n == 2, "page {n}: {page}");
        seen.extend(results.iter().cloned());
    }
    assert_eq!(pages.len(), 3, "{}", run.describe());
    assert_eq!(archived_bodies(&seen), all, "{}", run.describe());
    // Every result has a stamp, a distinct id, and the query's id.
    let mut ids: Vec<&str> = seen.iter().map(|r| text(r, "id")).collect();
    for result in &seen {
        assert!(!text(result, "stamp").is_empty(), "{result}");
        assert!(!text(result, "queryid").is_empty(), "{result}");
    }
    // The sides are right: m0 went from alice to bob, m1 the other way.
    assert!(text(&seen[0], "from").starts_with(&format!("{ALICE}/")));
    assert!(text(&seen[0], "to").starts_with(BOB));
    assert!(text(&seen[1], "from").starts_with(&format!("{BOB}/")));
    // The archive's ids are the ones delivered live.
    for (body, id) in &live_ids {
        let result = seen.iter().find(|r| text(r, "body") == body).unwrap();
        assert_eq!(text(result, "id"), id, "{body}: {result}");
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 15);

    // Backwards by five: the newest page first, each in time order.
    let run = run_as(&server, alice, &["mam", "--page", "5", "--reverse"]);
    let pages: Vec<Vec<String>> = run
        .json_events("mam-page")
        .iter()
        .map(|page| archived_bodies(page["results"].as_array().unwrap()))
        .collect();
    assert_eq!(
        pages,
        [&all[10..15], &all[5..10], &all[0..5]],
        "{}",
        run.describe()
    );

    // iterate(), one conversation: the twelve with bob, by fives.
    let run = run_as(
        &server,
        alice,
        &["mam-messages", "--page", "5", "--with", BOB],
    );
    let messages = run.json_events("mam-message");
    assert_eq!(
        archived_bodies(&messages),
        strings(0..12, "m"),
        "{}",
        run.describe()
    );
    let run = run_as(
        &server,
        alice,
        &["mam-messages", "--page", "5", "--with", CAROL],
    );
    assert_eq!(
        archived_bodies(&run.json_events("mam-message")),
        strings(0..3, "c")
    );
    let run = run_as(
        &server,
        alice,
        &["mam-messages", "--with", "dave@localhost"],
    );
    assert!(
        run.json_events("mam-message").is_empty(),
        "{}",
        run.describe()
    );
    // Bob's archive has his side of the conversation only.
    let run = run_as(
        &server,
        (BOB, BOB_PASSWORD),
        &["mam-messages", "--page", "5"],
    );
    assert_eq!(
        archived_bodies(&run.json_events("mam-message")),
        strings(0..12, "m")
    );

    // get_fields(): the form of the query.
    let run = run_as(&server, alice, &["mam-fields"]);
    let form = run.json_event("mam-fields");
    assert_eq!(
        form["form_type"],
        serde_json::json!(["urn:xmpp:mam:2"]),
        "{form}"
    );
    let fields: Vec<&str> = form["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| text(f, "var"))
        .collect();
    for field in ["FORM_TYPE", "with", "start", "end"] {
        assert!(fields.contains(&field), "{field} missing: {form}");
    }
    server.stop();
}

/// XEP-0441 through slixmpp's xep_0441: alice's preferences as set come
/// back (full JIDs kept as bare ones), and a conversation she will never
/// archive is in carol's archive but not in hers.
#[test]
fn archive_preferences_with_slixmpp_xep_0441() {
    if !interop_enabled("archive_preferences_with_slixmpp_xep_0441") {
        return;
    }
    let mut fixture = three_accounts();
    let server = fixture.serve();
    let alice = (ALICE, ALICE_PASSWORD);
    let run = run_as(&server, alice, &["mam-prefs"]);
    let initial = run.json_event("mam-prefs");
    assert!(
        ["always", "roster"].contains(&text(&initial, "default")),
        "{initial}"
    );
    let run = run_as(
        &server,
        alice,
        &[
            "mam-prefs",
            "--default",
            "always",
            "--never",
            CAROL,
            "--always",
            "bob@localhost/phone",
        ],
    );
    let prefs = run.json_event("mam-prefs");
    assert_eq!(text(&prefs, "default"), "always", "{prefs}");
    assert_eq!(prefs["always"], serde_json::json!([BOB]), "{prefs}");
    assert_eq!(prefs["never"], serde_json::json!([CAROL]), "{prefs}");

    let with_carol = exchange(&server, alice, (CAROL, CAROL_PASSWORD), 2, "c");
    // Alice's archive gave no id to what carol wrote her; carol's did.
    assert!(
        ids_by(&with_carol[1], ALICE).is_empty(),
        "{}",
        with_carol[1]
    );
    assert_eq!(ids_by(&with_carol[0], CAROL).len(), 1, "{}", with_carol[0]);
    exchange(&server, alice, (BOB, BOB_PASSWORD), 2, "b");
    let run = run_as(&server, alice, &["mam-messages"]);
    assert_eq!(
        archived_bodies(&run.json_events("mam-message")),
        ["b0", "b1"],
        "{}",
        run.describe()
    );
    let run = run_as(&server, (CAROL, CAROL_PASSWORD), &["mam-messages"]);
    assert_eq!(
        archived_bodies(&run.json_events("mam-message")),
        ["c0", "c1"]
    );
    server.stop();
}

/// XEP-0352 through slixmpp's xep_0352: alice and bob subscribe to each
/// other (slixmpp's own roster handling answers the requests); while
/// alice's client is inactive, bob's presence changes wait and his
/// message does not; once active, only his latest presence comes.
#[test]
fn client_state_indication_with_slixmpp_xep_0352() {
    if !interop_enabled("client_state_indication_with_slixmpp_xep_0352") {
        return;
    }
    let mut fixture = Fixture::new();
    let server = fixture.serve();
    let run = run_as(
        &server,
        (ALICE, ALICE_PASSWORD),
        &["csi", "--peer", BOB, "--peer-password", BOB_PASSWORD],
    );
    assert_eq!(run.json_event("csi-offered")["offered"], true);
    assert_eq!(text(&run.json_event("subscribed"), "contact"), BOB);
    let got = run.json_events("got");
    let in_state = |state: &str| -> Vec<String> {
        got.iter()
            .filter(|g| text(g, "state") == state)
            .map(|g| match text(g, "kind") {
                "message" => format!("message {}", text(g, "body")),
                _ => format!(
                    "presence {} {}",
                    g["show"].as_str().unwrap_or(""),
                    g["status"].as_str().unwrap_or("")
                ),
            })
            .collect()
    };
    // Bob's presence came with the subscription: available, no show.
    assert!(
        in_state("subscribed").contains(&"presence  ".to_owned()),
        "{}",
        run.describe()
    );
    assert_eq!(
        in_state("inactive"),
        ["message while inactive"],
        "{}",
        run.describe()
    );
    assert_eq!(
        in_state("active"),
        ["presence dnd now dnd"],
        "{}",
        run.describe()
    );
    server.stop();
}

// ---- Ad-hoc commands (XEP-0050), through slixmpp's xep_0050 ----

#[test]
fn every_command_with_slixmpp_xep_0050() {
    if !interop_enabled("every_command_with_slixmpp_xep_0050") {
        return;
    }
    let mut fixture = Fixture::with_config(&format!("{CONFIG}[admin]\njids = [\"{ALICE}\"]\n"));
    let (certificate, _) = fixture.new_certificate(ALICE, "laptop");
    fixture.new_certificate(ALICE, "phone");
    fixture.add_user("bob", BOB_PASSWORD);
    let server = fixture.serve();

    // As a user with a device, then as an administrator, in one session
    // (alice is both).
    let script = serde_json::json!([
        {"node": "urn:sigil:devices#add", "fields": {"name": ["tablet"]}},
        {"node": "urn:sigil:devices#disable", "fields": {"devices": ["phone"]}},
        {"node": "urn:sigil:devices#revoke", "fields": {"devices": ["phone"]}},
        {"node": "http://jabber.org/protocol/admin#add-user",
         "fields": {"accountjid": ["carol@localhost"]}},
        {"node": "http://jabber.org/protocol/admin#disable-user",
         "fields": {"accountjids": ["carol@localhost"]}},
        {"node": "http://jabber.org/protocol/admin#reenable-user",
         "fields": {"accountjids": ["carol@localhost"]}},
        {"node": "http://jabber.org/protocol/admin#end-user-session",
         "fields": {"accountjids": ["bob@localhost"]}},
        {"node": "http://jabber.org/protocol/admin#delete-user",
         "fields": {"accountjids": ["carol@localhost"]}},
    ]);
    let mut command = server.client_with_certificate(ALICE, Mode::DirectTls, &certificate);
    command.args([
        "commands",
        "--node",
        "urn:sigil:devices#list",
        "--script",
        &script.to_string(),
    ]);
    let run = server.run_ok(command);
    let listed = run.json_event("commands");
    assert_eq!(text(&listed, "node"), "http://jabber.org/protocol/commands");
    let mut nodes: Vec<&str> = listed["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(text(c, "jid"), DOMAIN, "{listed}");
            text(c, "node")
        })
        .collect();
    // slixmpp gives the items as a set: their order is lost.
    nodes.sort_unstable();
    assert_eq!(
        nodes,
        [
            "http://jabber.org/protocol/admin#add-user",
            "http://jabber.org/protocol/admin#delete-user",
            "http://jabber.org/protocol/admin#disable-user",
            "http://jabber.org/protocol/admin#end-user-session",
            "http://jabber.org/protocol/admin#reenable-user",
            "urn:sigil:devices#add",
            "urn:sigil:devices#disable",
            "urn:sigil:devices#list",
            "urn:sigil:devices#revoke",
        ],
        "{listed}"
    );
    let ran = run.json_events("command");
    assert_eq!(ran.len(), 9, "{}", run.describe());
    let list = &ran[0];
    assert_eq!(text(list, "status"), "completed", "{list}");
    assert_eq!(text(list, "form_type"), "result", "{list}");
    let fields = list["fields"].as_array().unwrap();
    let field = |var: &str| {
        fields
            .iter()
            .find(|f| f["var"] == var)
            .unwrap_or_else(|| panic!("no field {var} in {list}"))
    };
    assert_eq!(
        field("FORM_TYPE")["values"][0],
        "urn:sigil:devices",
        "{list}"
    );
    let names = [&field("name-1")["values"], &field("name-2")["values"]];
    assert!(names.contains(&&serde_json::json!("laptop")), "{list}");
    assert!(names.contains(&&serde_json::json!("phone")), "{list}");
    assert_eq!(
        text(field("fingerprint-1"), "label"),
        "Fingerprint (SHA-256)"
    );
    // Every other command first asks with a form.
    for stage in &ran[1..] {
        assert_eq!(text(stage, "status"), "executing", "{stage}");
        assert_eq!(text(stage, "form_type"), "form", "{stage}");
    }
    let completed = run.json_events("completed");
    assert_eq!(completed.len(), 8, "{}", run.describe());
    for done in &completed {
        assert_eq!(text(done, "status"), "completed", "{done}");
    }
    let notes = |n: usize| -> Vec<String> {
        completed[n]["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|note| format!("{}: {}", text(note, "type"), text(note, "text")))
            .collect()
    };
    // Add a device: an invitation for alice, made for "tablet".
    let added = completed[0]["fields"].as_array().unwrap();
    let uri = added
        .iter()
        .find(|f| f["var"] == "uri")
        .and_then(|f| f["values"].as_str())
        .unwrap_or_else(|| panic!("no uri in {}", completed[0]));
    assert!(
        uri.starts_with("xmpp:alice@localhost?register;preauth="),
        "{uri}"
    );
    assert_eq!(notes(1), ["info: Disabled phone."]);
    assert_eq!(notes(2), ["info: Revoked phone; 0 session(s) ended."]);
    assert_eq!(
        notes(3),
        ["info: Added carol@localhost, without a password: it logs in with certificates."]
    );
    assert_eq!(
        notes(4),
        ["info: Disabled carol@localhost; 0 session(s) ended."]
    );
    assert_eq!(notes(5), ["info: Re-enabled carol@localhost."]);
    assert_eq!(notes(6), ["info: Ended 0 session(s) of bob@localhost."]);
    assert_eq!(
        notes(7),
        ["info: Deleted carol@localhost; 0 session(s) ended."]
    );
    server.stop();
    // What the commands did is in the store.
    let list = sigil(&["user", "list", "--config", &fixture.config()]);
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(!list.contains("carol"), "{list}");
    let certificates = sigil(&["cert", "list", ALICE, "--config", &fixture.config()]);
    let certificates = String::from_utf8_lossy(&certificates.stdout);
    assert!(certificates.contains("laptop"), "{certificates}");
    assert!(
        certificates
            .lines()
            .any(|line| line.starts_with("phone") && line.contains("revoked")),
        "{certificates}"
    );
    let invites = sigil(&["invite", "list", "--config", &fixture.config()]);
    let invites = String::from_utf8_lossy(&invites.stdout);
    assert!(invites.contains("alice@localhost"), "{invites}");
}
