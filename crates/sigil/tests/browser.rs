//! The web chat in a real browser: Debian's Chromium itself presents a TLS
//! client certificate (made by `sigil cert new --register`, imported into
//! its NSS database and picked by a managed `AutoSelectCertificateForUrls`
//! policy, so without a dialog) to the HTTPS listener, and Converse.js logs
//! in with SASL EXTERNAL, with no password field on the page. Bob (slixmpp,
//! `tests/interop/slixmpp_client.py`, with a password) writes to alice, and
//! alice answers from the browser: over WebSocket (`/`) and over BOSH
//! (`/?transport=bosh`). And alice on three devices, each a Chromium with
//! a certificate of its own (`tests/browser/devices.mjs`): what one sends
//! is shown on another at once (carbons, XEP-0280), and the whole
//! conversation on the second after a reload with its cache emptied, and
//! on a third logging in later (the archive, XEP-0313). Screenshots of the
//! chat are saved as `target/browser-artifacts/TEST.png` (TEST-DEVICE.png),
//! and what the browser script printed (the page's console, the XMPP
//! traffic) as `target/browser-artifacts/TEST.log`.
//!
//! Needs Chromium, the NSS tools, playwright-core (`scripts/ensure-browser`),
//! Converse.js (vendored in `web/converse/`) and slixmpp
//! (`scripts/ensure-python-peers`), and writes a policy file (removed
//! afterwards) to `/etc/chromium/policies/managed`, so runs as root.
//! `SIGIL_SKIP_BROWSER=1` skips these tests.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod process;

use process::{Guard, drain, free_port, line_reader, wait_bounded};

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

const CLIENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/interop/slixmpp_client.py"
);
const CHAT_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/browser/chat.mjs");
const DEVICES_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/browser/devices.mjs"
);
const COMMANDS_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/browser/commands.mjs"
);
const PLAYWRIGHT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/browser/node_modules/playwright-core/package.json"
);
/// The vendored Converse.js the server finds by itself (the test's
/// configuration names no `web_assets`, as a first run's has none).
const WEB_ASSETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/converse");
const CHROMIUM: &str = "/usr/bin/chromium";
/// Read by Chromium at start; machine-wide.
const POLICY_DIR: &str = "/etc/chromium/policies/managed";

const DOMAIN: &str = "localhost";
const ALICE: &str = "alice@localhost";
const BOB: &str = "bob@localhost";
const BOB_PASSWORD: &str = "bob's own pässword";
const P12_PASSWORD: &str = "p12 password";
const DEVICE: &str = "laptop";

/// How long the server may take to print its listening lines.
const STARTUP: Duration = Duration::from_secs(20);
/// How long the server may take to exit after SIGTERM.
const SHUTDOWN: Duration = Duration::from_secs(15);
/// How long one slixmpp run may take (it stops itself after 30 s).
const CLIENT_RUN: Duration = Duration::from_secs(40);
/// The browser script's own limits: per step, and for the whole run.
const STEP_SECONDS: u64 = 40;
const CHAT_LIMIT_SECONDS: u64 = 150;
/// From starting the browser script to the chat with bob being open.
const CHAT_OPEN: Duration = Duration::from_secs(100);
/// From bob's message to alice's reply being shown in the browser.
const CHAT_REPLY: Duration = Duration::from_secs(90);
/// How long the browser script may take to close the browser and exit.
const CHAT_EXIT: Duration = Duration::from_secs(30);

/// How Converse reaches the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    WebSocket,
    Bosh,
}

impl Transport {
    fn path(self) -> &'static str {
        match self {
            Self::WebSocket => "/",
            Self::Bosh => "/?transport=bosh",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::WebSocket => "websocket",
            Self::Bosh => "bosh",
        }
    }
}

/// Whether `name` is an executable file in a `PATH` directory.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

/// Whether the browser tests run: false (with a note) only when
/// `SIGIL_SKIP_BROWSER=1`; anything missing is a failure.
fn browser_enabled(test: &str) -> bool {
    if std::env::var("SIGIL_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!("{test}: skipped: SIGIL_SKIP_BROWSER=1");
        return false;
    }
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).is_file() {
        missing.push(format!("{CHROMIUM} (run scripts/ensure-browser)"));
    }
    for tool in ["certutil", "pk12util"] {
        if !on_path(tool) {
            missing.push(format!("{tool} (run scripts/ensure-browser)"));
        }
    }
    if !on_path("node") {
        missing.push("node (install Node.js 20 or newer)".to_owned());
    }
    if !Path::new(PLAYWRIGHT).is_file() {
        missing
            .push("tests/browser/node_modules/playwright-core (run scripts/ensure-browser)".into());
    }
    if !Path::new(WEB_ASSETS).join("converse.min.js").is_file() {
        missing.push("web/converse (vendored Converse.js: run scripts/vendor-web)".to_owned());
    }
    let slixmpp = Command::new("python3")
        .args(["-c", "import slixmpp"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !slixmpp.is_ok_and(|status| status.success()) {
        missing.push("python3 with slixmpp (run scripts/ensure-python-peers)".to_owned());
    }
    assert!(
        missing.is_empty(),
        "{test}: missing {} (or set SIGIL_SKIP_BROWSER=1 to skip the browser tests)",
        missing.join(", ")
    );
    true
}

/// Where the screenshots and logs go: `target/browser-artifacts`.
fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("browser-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `program ARGS` to completion and insists it succeeds.
fn run_ok(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn sigil(args: &[&str]) -> String {
    run_ok(env!("CARGO_BIN_EXE_sigil"), args)
}

/// Sends `signal` to the process (or, with a leading `-`, process group) `target`.
fn send_signal(signal: &str, target: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", target])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The event name of a JSON line, if it is one.
fn event_of(line: &str) -> Option<(String, Value)> {
    let value: Value = serde_json::from_str(line).ok()?;
    let event = value.get("event")?.as_str()?.to_owned();
    Some((event, value))
}

fn str_field<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

fn config_text(https_port: u16) -> String {
    format!(
        r#"domain = "{DOMAIN}"
[[listener]]
kind = "https"
address = "127.0.0.1:{https_port}"
[[listener]]
kind = "starttls"
address = "127.0.0.1:0"
[[listener]]
kind = "direct-tls"
address = "127.0.0.1:0"
[storage]
url = "sqlite://sigil.db"
"#
    )
}

/// The port of a `listening on 127.0.0.1:PORT (WHAT...) for DOMAIN` line.
fn listening_port(line: &str, what: &str) -> Option<u16> {
    let rest = line.strip_prefix("listening on ")?;
    let (address, rest) = rest.split_once(' ')?;
    if !rest.starts_with(what) || !rest.ends_with(&format!("for {DOMAIN}")) {
        return None;
    }
    address.rsplit_once(':')?.1.parse().ok()
}

/// A running `sigil serve`.
struct Server {
    child: Guard,
    log: PathBuf,
    ca: PathBuf,
    https: u16,
    starttls: u16,
}

impl Server {
    /// Starts `sigil serve --config CONFIG` and waits for its listening
    /// lines; `Err` (with the log) when it exits or prints none in time.
    fn start(config: &Path, log: PathBuf) -> Result<Self, String> {
        let child = Command::new(env!("CARGO_BIN_EXE_sigil"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut server = Self {
            child: Guard(child),
            log,
            ca: config.parent().unwrap().join("server.crt"),
            https: 0,
            starttls: 0,
        };
        let lines = line_reader(server.child.0.stdout.take().unwrap());
        let deadline = Instant::now() + STARTUP;
        let mut seen = Vec::new();
        let mut direct_tls = 0;
        while server.https == 0 || server.starttls == 0 || direct_tls == 0 {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let line = match lines.recv_timeout(remaining) {
                Ok(line) => line,
                Err(e) => {
                    return Err(format!(
                        "sigil serve printed no listening lines ({e:?}); stdout: {seen:?}\n{}",
                        server.log_text()
                    ));
                }
            };
            if let Some(port) = listening_port(&line, "(HTTPS") {
                server.https = port;
            } else if let Some(port) = listening_port(&line, "(STARTTLS)") {
                server.starttls = port;
            } else if let Some(port) = listening_port(&line, "(direct TLS)") {
                direct_tls = port;
            }
            seen.push(line);
        }
        // Keep reading standard output so the server never blocks on it.
        thread::spawn(move || while lines.recv().is_ok() {});
        assert!(server.ca.is_file(), "no server.crt after the first start");
        Ok(server)
    }

    fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("--- server log (tail) ---\n{}", tail.join("\n"))
    }

    /// slixmpp_client.py over STARTTLS, up to the action.
    fn client(&self, jid: &str) -> Command {
        let mut command = Command::new("python3");
        command
            .arg(CLIENT)
            .args(["--jid", jid])
            .args(["--host", "127.0.0.1", "--port", &self.starttls.to_string()])
            .args(["--mode", "starttls"])
            .arg("--ca")
            .arg(&self.ca)
            .args(["--time-limit", "30"])
            .stdin(Stdio::null());
        command
    }

    /// Runs a slixmpp client to completion (bounded) and insists it succeeds.
    fn run_client(&self, mut command: Command, what: &str) -> String {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run python3");
        let stdout = drain(child.stdout.take().unwrap());
        let stderr = drain(child.stderr.take().unwrap());
        let status = wait_bounded(&mut child, CLIENT_RUN);
        let stdout = String::from_utf8_lossy(&stdout.join().unwrap()).into_owned();
        let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
        assert!(
            status.is_some_and(|status| status.success()),
            "{what}: {status:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n{}",
            self.log_text()
        );
        stdout
    }

    /// Sends SIGTERM and insists the server exits with status 0.
    fn stop(mut self) {
        send_signal("-TERM", &self.child.0.id().to_string());
        match wait_bounded(&mut self.child.0, SHUTDOWN) {
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

/// A managed Chromium policy file, removed when dropped.
struct Policy(PathBuf);

impl Policy {
    /// Lets Chromium present a client certificate to `https://localhost`
    /// and `https://127.0.0.1`, on any port, without asking.
    ///
    /// Any port, so that every test writes the same policy: Chromium reads
    /// all the files of the folder, but does not merge a policy set in
    /// several of them (the file last in name order wins), so tests running
    /// at the same time, each with a pattern for its own port, would hide
    /// each other's.
    fn auto_select_certificate(port: u16) -> Self {
        let patterns: Vec<String> = [DOMAIN, "127.0.0.1"]
            .iter()
            .map(|host| {
                serde_json::json!({"pattern": format!("https://{host}:*"), "filter": {}})
                    .to_string()
            })
            .collect();
        let policy = serde_json::json!({ "AutoSelectCertificateForUrls": patterns });
        std::fs::create_dir_all(POLICY_DIR).unwrap_or_else(|e| {
            panic!("cannot create {POLICY_DIR} ({e}): the browser tests need root")
        });
        let path = Path::new(POLICY_DIR).join(format!(
            "sigil-browser-test-{}-{port}.json",
            std::process::id()
        ));
        std::fs::write(&path, policy.to_string()).unwrap_or_else(|e| {
            panic!(
                "cannot write {} ({e}): the browser tests need root",
                path.display()
            )
        });
        Self(path)
    }

    /// The policy files Chromium saw, for failure messages.
    fn listing() -> String {
        let mut out = format!("--- {POLICY_DIR} ---\n");
        if let Ok(entries) = std::fs::read_dir(POLICY_DIR) {
            let mut paths: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for path in paths {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                out.push_str(&format!("{}: {}\n", path.display(), text.trim()));
            }
        }
        out
    }
}

impl Drop for Policy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A NSS database (under `HOME/.pki/nssdb`, where Chromium looks) holding
/// alice's key and certificate, and trusting the server's certificate.
fn nss_home(home: &Path, p12: &Path, server_certificate: &Path) {
    let db_dir = home.join(".pki/nssdb");
    std::fs::create_dir_all(&db_dir).unwrap();
    let db = format!("sql:{}", db_dir.display());
    run_ok("certutil", &["-N", "-d", &db, "--empty-password"]);
    run_ok(
        "pk12util",
        &[
            "-i",
            &p12.display().to_string(),
            "-d",
            &db,
            "-W",
            P12_PASSWORD,
        ],
    );
    // A self-signed server certificate: trusted as a peer for TLS.
    run_ok(
        "certutil",
        &[
            "-A",
            "-d",
            &db,
            "-n",
            "sigil",
            "-t",
            "P,,",
            "-i",
            &server_certificate.display().to_string(),
        ],
    );
    let listed = run_ok("certutil", &["-L", "-d", &db]);
    assert!(
        listed.contains(&format!("CN={ALICE}")) && listed.contains("sigil"),
        "the NSS database lacks a certificate: {listed}"
    );
}

/// `node tests/browser/chat.mjs` (or `devices.mjs`): Chromium driven
/// through the chat.
struct Chat {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: PathBuf,
    user_data_dirs: Vec<PathBuf>,
    log: PathBuf,
}

impl Chat {
    fn start(
        script: &str,
        args: &[String],
        dir: &Path,
        user_data_dirs: Vec<PathBuf>,
        log: PathBuf,
    ) -> Self {
        let stderr = dir.join("chat.stderr");
        let mut child = Command::new("node")
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .expect("cannot run node");
        let lines = line_reader(child.stdout.take().unwrap());
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            lines,
            seen: Vec::new(),
            stderr,
            user_data_dirs,
            log,
        }
    }

    /// Reads lines until the event `wanted`, for at most `limit`.
    fn wait_for(&mut self, wanted: &str, limit: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + limit;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(remaining) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!("no {wanted:?} from the browser within {limit:?}"));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(format!("the browser script ended before {wanted:?}"));
                }
            };
            self.seen.push(line.clone());
            match event_of(&line) {
                Some((event, value)) if event == wanted => return Ok(value),
                Some((event, value)) if event == "error" => {
                    return Err(format!(
                        "the browser script failed at {:?}{}: {}",
                        str_field(&value, "step"),
                        match str_field(&value, "device") {
                            "" => String::new(),
                            device => format!(" on {device}"),
                        },
                        str_field(&value, "message")
                    ));
                }
                _ => {}
            }
        }
    }

    /// Tells the script to close the browser, and waits for it to exit.
    fn finish(&mut self) -> Option<ExitStatus> {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"quit\n");
        }
        let status = wait_bounded(&mut self.child, CHAT_EXIT);
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        self.save_log();
        status
    }

    fn events(&self, wanted: &str) -> Vec<Value> {
        self.seen
            .iter()
            .filter_map(|line| event_of(line))
            .filter(|(event, _)| event == wanted)
            .map(|(_, value)| value)
            .collect()
    }

    fn save_log(&self) {
        let mut text = self.seen.join("\n");
        text.push('\n');
        let _ = std::fs::write(&self.log, text);
    }

    /// What went wrong, for a failure message: the page's errors and
    /// console, the last lines, the script's standard error.
    fn evidence(&mut self) -> String {
        // After a failure the script still reports (a screenshot, the page's
        // text) before it exits: read on for a while.
        let deadline = Instant::now() + Duration::from_secs(15);
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(line);
        }
        self.save_log();
        let shorten = |line: &String| -> String {
            if line.len() > 700 {
                let mut end = 700;
                while !line.is_char_boundary(end) {
                    end -= 1;
                }
                format!("{}…", &line[..end])
            } else {
                line.clone()
            }
        };
        let important: Vec<String> = self
            .seen
            .iter()
            .filter(|line| {
                event_of(line).is_some_and(|(event, value)| match event.as_str() {
                    "console" => str_field(&value, "type") != "debug",
                    "frame" | "bosh" => false,
                    _ => true,
                })
            })
            .map(shorten)
            .collect();
        let traffic: Vec<String> = self
            .seen
            .iter()
            .filter(|line| {
                event_of(line).is_some_and(|(event, _)| event == "frame" || event == "bosh")
            })
            .map(shorten)
            .collect();
        let traffic = &traffic[traffic.len().saturating_sub(30)..];
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        format!(
            "--- browser script: events ---\n{}\n--- browser script: last XMPP traffic ---\n{}\n\
             --- browser script: stderr ---\n{stderr}\n(everything: {})",
            important.join("\n"),
            traffic.join("\n"),
            self.log.display()
        )
    }

    /// Chromium's process, from the lock it keeps in its profile
    /// `user_data_dir`, if it still runs with that profile.
    fn leftover_browser(user_data_dir: &Path) -> Option<u32> {
        let target = std::fs::read_link(user_data_dir.join("SingletonLock")).ok()?;
        let pid: u32 = target.to_str()?.rsplit_once('-')?.1.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline);
        cmdline
            .contains(&*user_data_dir.to_string_lossy())
            .then_some(pid)
    }
}

impl Drop for Chat {
    fn drop(&mut self) {
        // Ask nicely (end of input, then SIGTERM, which Playwright handles
        // by closing the browser), then kill.
        self.stdin.take();
        if matches!(self.child.try_wait(), Ok(None)) {
            thread::sleep(Duration::from_millis(500));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            send_signal("-TERM", &self.child.id().to_string());
            let _ = wait_bounded(&mut self.child, Duration::from_secs(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A browser the script could not close: its process group is its
        // own (Playwright starts it detached).
        for pid in self
            .user_data_dirs
            .iter()
            .filter_map(|dir| Self::leftover_browser(dir))
        {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let group = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(2))
                .and_then(|group| group.parse::<u32>().ok());
            if group == Some(pid) {
                send_signal("-KILL", &format!("-{pid}"));
            } else {
                send_signal("-KILL", &pid.to_string());
            }
        }
    }
}

/// Bob's slixmpp client waiting for one message.
struct Receiving {
    child: Guard,
    lines: Receiver<String>,
    stderr: thread::JoinHandle<Vec<u8>>,
    seen: Vec<String>,
}

impl Receiving {
    fn start(server: &Server) -> Self {
        let mut command = server.client(BOB);
        command
            .args(["--password", BOB_PASSWORD, "--mechanism", "SCRAM-SHA-256"])
            .args([
                "--time-limit",
                &(CHAT_OPEN + CHAT_REPLY).as_secs().to_string(),
            ])
            .args(["receive", "--count", "1", "--timeout"])
            .arg((CHAT_OPEN + CHAT_REPLY).as_secs().to_string());
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run python3");
        let lines = line_reader(child.stdout.take().unwrap());
        let stderr = drain(child.stderr.take().unwrap());
        Self {
            child: Guard(child),
            lines,
            stderr,
            seen: Vec::new(),
        }
    }

    /// Waits for the event `wanted` (bounded); `Err` with what was seen.
    fn wait_for(&mut self, wanted: &str, limit: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + limit;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(remaining) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Some((event, value)) = event_of(&line)
                        && event == wanted
                    {
                        return Ok(value);
                    }
                }
                Err(e) => {
                    let _ = self.child.0.kill();
                    let _ = self.child.0.wait();
                    let stderr = std::mem::replace(&mut self.stderr, thread::spawn(Vec::new));
                    return Err(format!(
                        "bob's client printed no {wanted:?} ({e:?}); stdout: {:?}\nstderr: {}",
                        self.seen,
                        String::from_utf8_lossy(&stderr.join().unwrap_or_default())
                    ));
                }
            }
        }
    }
}

/// What one run of the browser showed.
fn check_chat(chat: &Chat, transport: Transport, bob_message: &str, alice_reply: &str) {
    let logged_in = chat.events("logged-in");
    assert_eq!(logged_in.len(), 1, "logged-in events: {logged_in:?}");
    assert_eq!(str_field(&logged_in[0], "jid"), ALICE);

    let password_fields = chat.events("password-fields");
    assert!(
        password_fields.len() >= 2,
        "password fields checked {} times",
        password_fields.len()
    );
    for checked in &password_fields {
        assert_eq!(
            checked.get("count").and_then(Value::as_u64),
            Some(0),
            "a password field on the certificate login page: {checked}"
        );
    }

    // Nothing was asked of another host.
    let foreign = chat.events("foreign-request");
    assert!(foreign.is_empty(), "requests to other hosts: {foreign:?}");

    let received = chat.events("received");
    assert_eq!(received.len(), 1, "received events: {received:?}");
    assert_eq!(str_field(&received[0], "from"), BOB);
    assert_eq!(str_field(&received[0], "body"), bob_message);
    let sent = chat.events("sent");
    assert_eq!(sent.len(), 1, "sent events: {sent:?}");
    assert_eq!(str_field(&sent[0], "body"), alice_reply);

    // SASL EXTERNAL over the transport asked for, and only that one.
    let websockets = chat.events("websocket");
    let out_traffic: Vec<String> = match transport {
        Transport::WebSocket => {
            assert!(
                websockets
                    .iter()
                    .all(|w| str_field(w, "url").ends_with("/xmpp-websocket")),
                "{websockets:?}"
            );
            assert!(chat.events("bosh").is_empty(), "BOSH used as well");
            chat.events("frame")
                .iter()
                .filter(|f| str_field(f, "dir") == "out")
                .map(|f| str_field(f, "data").to_owned())
                .collect()
        }
        Transport::Bosh => {
            assert!(websockets.is_empty(), "a WebSocket as well: {websockets:?}");
            chat.events("bosh")
                .iter()
                .filter(|f| str_field(f, "dir") == "out")
                .map(|f| str_field(f, "data").to_owned())
                .collect()
        }
    };
    let auths: Vec<&String> = out_traffic
        .iter()
        .filter(|d| d.contains("<auth "))
        .collect();
    assert!(
        !auths.is_empty() && auths.iter().all(|a| a.contains(r#"mechanism="EXTERNAL""#)),
        "not SASL EXTERNAL over {transport:?}: {auths:?}"
    );
}

/// Insists `path` is a PNG image of some size.
fn assert_png(path: &Path) {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1000,
        "{} is not a PNG image ({} bytes)",
        path.display(),
        bytes.len()
    );
}

/// `sigil serve` for alice, with a certificate per name of `devices`
/// (each made by `sigil cert new --register` into `dir/certificates`,
/// `NAME.crt`, `NAME.key` and `NAME.p12`; the first creates the account,
/// without a password), and bob, with a password. Bob is in alice's
/// roster (see tests/browser/lib.mjs for why), added by a client logging
/// in with the first device's certificate.
fn start_server(dir: &Path, devices: &[&str]) -> Server {
    let config = dir.join("sigil.toml");
    let p12_password = dir.join("p12-password");
    std::fs::write(&p12_password, format!("{P12_PASSWORD}\n")).unwrap();
    let bob_password = dir.join("bob.password");
    std::fs::write(&bob_password, format!("{BOB_PASSWORD}\n")).unwrap();
    let certificates = dir.join("certificates");

    // The HTTPS port is chosen here (the policy names it); try another one
    // should something else take it first.
    let mut server = None;
    let mut failures = Vec::new();
    for attempt in 1..=3 {
        std::fs::write(&config, config_text(free_port())).unwrap();
        if attempt == 1 {
            for (index, device) in devices.iter().enumerate() {
                let printed = sigil(&[
                    "cert",
                    "new",
                    ALICE,
                    "--register",
                    "--name",
                    device,
                    "--out",
                    &certificates.display().to_string(),
                    "--p12-password-file",
                    &p12_password.display().to_string(),
                    "--config",
                    &config.display().to_string(),
                ]);
                assert_eq!(
                    printed.contains(&format!("created the account {ALICE} (no password)")),
                    index == 0,
                    "sigil cert new --register: {printed}"
                );
                assert!(
                    printed.contains(&format!("registered \"{device}\" for {ALICE}")),
                    "sigil cert new --register: {printed}"
                );
            }
            sigil(&[
                "user",
                "add",
                "bob",
                "--password-file",
                &bob_password.display().to_string(),
                "--config",
                &config.display().to_string(),
            ]);
        }
        let log = dir.join(format!("server-{attempt}.log"));
        match Server::start(&config, log) {
            Ok(started) => {
                server = Some(started);
                break;
            }
            Err(failure) => failures.push(failure),
        }
    }
    let Some(server) = server else {
        panic!("sigil serve did not start: {}", failures.join("\n\n"));
    };

    let mut roster_add = server.client(ALICE);
    roster_add
        .args(["--mechanism", "EXTERNAL", "--cert"])
        .arg(certificates.join(format!("{}.crt", devices[0])))
        .arg("--key")
        .arg(certificates.join(format!("{}.key", devices[0])))
        .args(["roster-add", "--contact", BOB, "--name", "Bob"]);
    server.run_client(roster_add, "alice's roster-add (EXTERNAL)");
    server
}

/// Alice logs in with her certificate in Chromium over `transport`, bob
/// writes to her, she answers.
fn chat_in_the_browser(test: &str, transport: Transport) {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &[DEVICE]);
    let certificates = dir.path().join("certificates");

    let home = dir.path().join("home");
    nss_home(
        &home,
        &certificates.join(format!("{DEVICE}.p12")),
        &server.ca,
    );
    let _policy = Policy::auto_select_certificate(server.https);

    let mut bob = Receiving::start(&server);
    if let Err(e) = bob.wait_for("bound", CLIENT_RUN) {
        panic!("bob never logged in: {e}\n{}", server.log_text());
    }

    let artifacts = artifacts_dir();
    let screenshot = artifacts.join(format!("{test}.png"));
    let _ = std::fs::remove_file(&screenshot);
    let _ = std::fs::remove_file(artifacts.join(format!("{test}-failure.png")));
    let bob_message = format!("hello alice, bob here ({}) — grüße", transport.name());
    let alice_reply = format!("hi bob, alice from the browser ({}) ✓", transport.name());
    let user_data_dir = dir.path().join("chromium-profile");
    let url = format!("https://{DOMAIN}:{}{}", server.https, transport.path());
    let args: Vec<String> = [
        ("--url", url.clone()),
        ("--home", home.display().to_string()),
        ("--user-data-dir", user_data_dir.display().to_string()),
        ("--screenshot", screenshot.display().to_string()),
        ("--jid", ALICE.to_owned()),
        ("--peer", BOB.to_owned()),
        ("--expect", bob_message.clone()),
        ("--reply", alice_reply.clone()),
        ("--step-timeout", STEP_SECONDS.to_string()),
        ("--time-limit", CHAT_LIMIT_SECONDS.to_string()),
        ("--chromium", CHROMIUM.to_owned()),
    ]
    .into_iter()
    .flat_map(|(name, value)| [name.to_owned(), value])
    .collect();
    let mut chat = Chat::start(
        CHAT_SCRIPT,
        &args,
        dir.path(),
        vec![user_data_dir],
        artifacts.join(format!("{test}.log")),
    );

    if let Err(e) = chat.wait_for("chat-opened", CHAT_OPEN) {
        panic!(
            "{test}: alice did not get to a chat with bob at {url}: {e}\n{}\n{}\n{}",
            chat.evidence(),
            Policy::listing(),
            server.log_text()
        );
    }
    let logged_in_after = started.elapsed();

    let mut send = server.client(BOB);
    send.args(["--password", BOB_PASSWORD, "--mechanism", "SCRAM-SHA-256"])
        .args(["send", "--to", ALICE, "--body", &bob_message]);
    server.run_client(send, "bob's send");

    if let Err(e) = chat.wait_for("waiting", CHAT_REPLY) {
        panic!(
            "{test}: alice did not receive bob's message and answer: {e}\n{}\n{}",
            chat.evidence(),
            server.log_text()
        );
    }
    let message = match bob.wait_for("message", CHAT_REPLY) {
        Ok(message) => message,
        Err(e) => panic!(
            "{test}: bob did not receive alice's reply: {e}\n{}\n{}",
            chat.evidence(),
            server.log_text()
        ),
    };
    let status = chat.finish();
    assert!(
        status.is_some_and(|status| status.success()) && !chat.events("done").is_empty(),
        "{test}: the browser script ended with {status:?}\n{}",
        chat.evidence()
    );

    let from = str_field(&message, "from");
    assert!(
        from.starts_with(&format!("{ALICE}/")),
        "bob's message is from {from:?}: {message}"
    );
    assert_eq!(str_field(&message, "body"), alice_reply, "{message}");
    assert_eq!(message.get("delay"), Some(&Value::Bool(false)), "{message}");
    let bob_status = wait_bounded(&mut bob.child.0, CLIENT_RUN);
    assert!(
        bob_status.is_some_and(|status| status.success()),
        "bob's client: {bob_status:?}"
    );

    check_chat(&chat, transport, &bob_message, &alice_reply);
    assert_png(&screenshot);
    drop(chat);
    server.stop();
    eprintln!(
        "{test}: passed in {:.1} s (chat open after {:.1} s); screenshot {}",
        started.elapsed().as_secs_f64(),
        logged_in_after.as_secs_f64(),
        screenshot.display()
    );
}

/// The body of a PEM text: its base64, without the armour or white space.
fn pem_body(pem: &str) -> String {
    pem.lines()
        .filter(|line| !line.starts_with("-----"))
        .flat_map(str::split_whitespace)
        .collect()
}

/// Insists the NSS database of `home` holds one certificate with a key,
/// `certificate` (PEM): the one certificate that Chromium can present.
fn assert_only_certificate(home: &Path, certificate: &Path) {
    let db = format!("sql:{}", home.join(".pki/nssdb").display());
    let listed = run_ok("certutil", &["-L", "-d", &db]);
    // "NICKNAME   SSL,S/MIME,JAR/XPI" lines (trust flags); a certificate
    // with a key has "u" among its SSL flags.
    let own: Vec<&str> = listed
        .lines()
        .filter_map(|line| line.trim_end().rsplit_once(char::is_whitespace))
        .filter(|(_, trust)| {
            trust
                .split_once(',')
                .is_some_and(|(ssl, _)| ssl.contains('u'))
        })
        .map(|(nickname, _)| nickname.trim())
        .collect();
    assert_eq!(own.len(), 1, "certificates with a key: {listed}");
    let exported = run_ok("certutil", &["-L", "-d", &db, "-n", own[0], "-a"]);
    let expected = std::fs::read_to_string(certificate).unwrap();
    assert_eq!(
        pem_body(&exported),
        pem_body(&expected),
        "the NSS database of {} holds another certificate than {}",
        home.display(),
        certificate.display()
    );
}

/// alice's devices, in the order `tests/browser/devices.mjs` uses them.
const DEVICES: [&str; 3] = ["laptop", "phone", "tablet"];
/// From starting the devices script to the first device's message sent.
const DEVICES_SENT: Duration = Duration::from_secs(110);
/// The devices script's own limit for the whole run.
const DEVICES_LIMIT_SECONDS: u64 = 170;

/// The events of one device, in order.
fn device_events<'a>(all: &'a [(String, Value)], device: &str) -> Vec<&'a (String, Value)> {
    all.iter()
        .filter(|(_, value)| str_field(value, "device") == device)
        .collect()
}

/// The data of a device's WebSocket frames in direction `dir`.
fn frames<'a>(events: &[&'a (String, Value)], dir: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter(|(event, value)| event == "frame" && str_field(value, "dir") == dir)
        .map(|(_, value)| str_field(value, "data"))
        .collect()
}

/// Whether an XMPP frame is an archive result (XEP-0313) carrying `body`.
fn archived(frame: &str, body: &str) -> bool {
    frame.contains("<result") && frame.contains("urn:xmpp:mam:2") && frame.contains(body)
}

/// What a device shows once it logged in with nothing cached: `message`
/// and `reply` from the archive, and from nowhere else. `events` are
/// those from the device's login on.
fn check_history(device: &str, events: &[&(String, Value)], message: &str, reply: &str) {
    let history: Vec<&Value> = events
        .iter()
        .filter(|(event, _)| event == "history")
        .map(|(_, value)| value)
        .collect();
    assert_eq!(history.len(), 1, "{device}: history events: {history:?}");
    assert_eq!(
        history[0].get("bodies"),
        Some(&serde_json::json!([message, reply])),
        "{device}: {}",
        history[0]
    );
    // Converse asked the archive for the whole conversation with bob: a
    // query with no start (with a cached message, it asks only for what
    // came after it).
    let queries: Vec<&str> = frames(events, "out")
        .into_iter()
        .filter(|f| f.contains("<query") && f.contains("urn:xmpp:mam:2") && f.contains(BOB))
        .collect();
    assert!(
        !queries.is_empty(),
        "{device}: no archive query for the chat with bob"
    );
    for query in &queries {
        assert!(
            !query.contains("\"start\"") && !query.contains("'start'"),
            "{device}: an archive query from a start (from a cache): {query}"
        );
    }
    // Both messages came as archive results, and in no other frame.
    let incoming = frames(events, "in");
    for body in [message, reply] {
        assert!(
            incoming.iter().any(|f| archived(f, body)),
            "{device}: {body:?} in no archive result"
        );
        let elsewhere: Vec<&&str> = incoming
            .iter()
            .filter(|f| f.contains(body) && !archived(f, body))
            .collect();
        assert!(
            elsewhere.is_empty(),
            "{device}: {body:?} came other than from the archive: {elsewhere:?}"
        );
    }
}

/// What the three devices showed.
fn check_devices(chat: &Chat, message: &str, reply: &str) {
    let all: Vec<(String, Value)> = chat.seen.iter().filter_map(|l| event_of(l)).collect();
    let foreign = chat.events("foreign-request");
    assert!(foreign.is_empty(), "requests to other hosts: {foreign:?}");
    let [laptop, phone, tablet] = DEVICES.map(|device| device_events(&all, device));
    let only = |events: &[&(String, Value)], wanted: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|(event, _)| event == wanted)
            .map(|(_, value)| value.clone())
            .collect()
    };

    // Each device logged in as alice (the phone twice), with SASL
    // EXTERNAL over WebSocket, with no password field on the page.
    for (device, events, logins) in [
        ("laptop", &laptop, 1),
        ("phone", &phone, 2),
        ("tablet", &tablet, 1),
    ] {
        let logged_in = only(events, "logged-in");
        assert_eq!(logged_in.len(), logins, "{device}: {logged_in:?}");
        assert!(
            logged_in.iter().all(|l| str_field(l, "jid") == ALICE),
            "{device}: {logged_in:?}"
        );
        let password_fields = only(events, "password-fields");
        assert_eq!(password_fields.len(), logins, "{device}");
        assert!(
            password_fields
                .iter()
                .all(|p| p.get("count").and_then(Value::as_u64) == Some(0)),
            "{device}: a password field on the certificate login page: {password_fields:?}"
        );
        let websockets = only(events, "websocket");
        assert!(
            websockets.len() >= logins
                && websockets
                    .iter()
                    .all(|w| str_field(w, "url").ends_with("/xmpp-websocket")),
            "{device}: {websockets:?}"
        );
        let out = frames(events, "out");
        let auths: Vec<&&str> = out.iter().filter(|d| d.contains("<auth ")).collect();
        assert!(
            auths.len() == logins && auths.iter().all(|a| a.contains(r#"mechanism="EXTERNAL""#)),
            "{device}: not SASL EXTERNAL: {auths:?}"
        );
    }

    // 1. The laptop sent the message; the phone showed it, from a carbon
    // of what the laptop sent (it had asked for carbons).
    let sent = only(&laptop, "sent");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(str_field(&sent[0], "body"), message);
    assert_eq!(str_field(&sent[0], "to"), BOB);
    let shown_at = phone
        .iter()
        .position(|(event, _)| event == "shown")
        .expect("the phone never showed the laptop's message");
    assert_eq!(str_field(&phone[shown_at].1, "body"), message);
    let before_shown = &phone[..shown_at];
    assert!(
        frames(before_shown, "out")
            .iter()
            .any(|f| f.contains("<enable") && f.contains("urn:xmpp:carbons:2")),
        "the phone did not enable carbons"
    );
    assert!(
        frames(before_shown, "in")
            .iter()
            .any(|f| f.contains("<sent")
                && f.contains("urn:xmpp:carbons:2")
                && f.contains(message)),
        "the phone got no carbon of the laptop's message before showing it"
    );
    // Both showed bob's answer.
    for (device, events) in [("laptop", &laptop), ("phone", &phone)] {
        let received = only(events, "received");
        assert_eq!(received.len(), 1, "{device}: {received:?}");
        assert_eq!(str_field(&received[0], "from"), BOB, "{device}");
        assert_eq!(str_field(&received[0], "body"), reply, "{device}");
    }

    // 2. The phone, its site storage emptied, loaded the chat again and
    // showed both messages, from the archive.
    let reloading = phone
        .iter()
        .position(|(event, _)| event == "reloading")
        .expect("the phone never reloaded");
    let after_reload = &phone[reloading..];
    let cleared = only(after_reload, "storage-cleared");
    assert_eq!(cleared.len(), 1, "{cleared:?}");
    let stored = |key: &str| -> (usize, u64, u64) {
        let state = &cleared[0][key];
        (
            state["indexedDB"].as_array().map_or(usize::MAX, Vec::len),
            state["localStorage"].as_u64().unwrap_or(u64::MAX),
            state["sessionStorage"].as_u64().unwrap_or(u64::MAX),
        )
    };
    let before = stored("before");
    assert!(
        before.0 + usize::try_from(before.1 + before.2).unwrap() > 0,
        "Converse had stored nothing to clear: {}",
        cleared[0]
    );
    assert_eq!(stored("after"), (0, 0, 0), "storage left: {}", cleared[0]);
    check_history("phone", after_reload, message, reply);

    // 3. The tablet, never online before, showed both, from the archive.
    check_history("tablet", &tablet, message, reply);
}

/// One account on three devices, each a Chromium with its own client
/// certificate (see tests/browser/devices.mjs): a message sent on one is
/// shown on the other (carbons), and the history is shown after a reload
/// without cache and on a device logging in later (the archive).
fn every_device_sees_the_conversation(test: &str) {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &DEVICES);
    let certificates = dir.path().join("certificates");

    // Each device's own NSS database, holding its certificate only.
    let home_base = dir.path().join("devices");
    for device in DEVICES {
        let home = home_base.join(device).join("home");
        nss_home(
            &home,
            &certificates.join(format!("{device}.p12")),
            &server.ca,
        );
        assert_only_certificate(&home, &certificates.join(format!("{device}.crt")));
    }
    let _policy = Policy::auto_select_certificate(server.https);

    let mut bob = Receiving::start(&server);
    if let Err(e) = bob.wait_for("bound", CLIENT_RUN) {
        panic!("bob never logged in: {e}\n{}", server.log_text());
    }

    let artifacts = artifacts_dir();
    let prefix = artifacts.join(test);
    let screenshots: Vec<PathBuf> = [
        format!("{test}-laptop.png"),
        format!("{test}-phone.png"),
        format!("{test}-phone-reloaded.png"),
        format!("{test}-tablet.png"),
    ]
    .iter()
    .map(|name| artifacts.join(name))
    .collect();
    for path in &screenshots {
        let _ = std::fs::remove_file(path);
    }
    for device in DEVICES {
        let _ = std::fs::remove_file(artifacts.join(format!("{test}-{device}-failure.png")));
    }
    let message = "hi bob, alice from her laptop: every device sees this";
    let reply = "hello alice, bob here: and this answer too";
    let url = format!("https://{DOMAIN}:{}/", server.https);
    let args: Vec<String> = [
        ("--url", url.clone()),
        ("--jid", ALICE.to_owned()),
        ("--peer", BOB.to_owned()),
        ("--devices", DEVICES.join(",")),
        ("--home-base", home_base.display().to_string()),
        ("--screenshot-prefix", prefix.display().to_string()),
        ("--message", message.to_owned()),
        ("--reply", reply.to_owned()),
        ("--step-timeout", STEP_SECONDS.to_string()),
        ("--time-limit", DEVICES_LIMIT_SECONDS.to_string()),
        ("--chromium", CHROMIUM.to_owned()),
    ]
    .into_iter()
    .flat_map(|(name, value)| [name.to_owned(), value])
    .collect();
    let script_started = Instant::now();
    let mut chat = Chat::start(
        DEVICES_SCRIPT,
        &args,
        dir.path(),
        DEVICES
            .iter()
            .map(|device| home_base.join(device).join("profile"))
            .collect(),
        artifacts.join(format!("{test}.log")),
    );

    if let Err(e) = chat.wait_for("sent", DEVICES_SENT) {
        panic!(
            "{test}: the laptop did not send to bob at {url}: {e}\n{}\n{}\n{}",
            chat.evidence(),
            Policy::listing(),
            server.log_text()
        );
    }
    let sent_after = started.elapsed();
    // Bob got it, then answers.
    let received = match bob.wait_for("message", CHAT_REPLY) {
        Ok(received) => received,
        Err(e) => panic!(
            "{test}: bob did not receive the laptop's message: {e}\n{}\n{}",
            chat.evidence(),
            server.log_text()
        ),
    };
    assert!(
        str_field(&received, "from").starts_with(&format!("{ALICE}/")),
        "{received}"
    );
    assert_eq!(str_field(&received, "body"), message, "{received}");
    let mut answer = server.client(BOB);
    answer
        .args(["--password", BOB_PASSWORD, "--mechanism", "SCRAM-SHA-256"])
        .args(["send", "--to", ALICE, "--body", reply]);
    server.run_client(answer, "bob's answer");

    let rest =
        Duration::from_secs(DEVICES_LIMIT_SECONDS + 5).saturating_sub(script_started.elapsed());
    if let Err(e) = chat.wait_for("done", rest) {
        panic!(
            "{test}: the devices did not all show the conversation: {e}\n{}\n{}",
            chat.evidence(),
            server.log_text()
        );
    }
    let status = chat.finish();
    assert!(
        status.is_some_and(|status| status.success()),
        "{test}: the browser script ended with {status:?}\n{}",
        chat.evidence()
    );
    check_devices(&chat, message, reply);
    for path in &screenshots {
        assert_png(path);
    }
    let bob_status = wait_bounded(&mut bob.child.0, CLIENT_RUN);
    assert!(
        bob_status.is_some_and(|status| status.success()),
        "bob's client: {bob_status:?}"
    );
    drop(chat);
    server.stop();
    eprintln!(
        "{test}: passed in {:.1} s (the laptop's message sent after {:.1} s); screenshots \
         {}-*.png",
        started.elapsed().as_secs_f64(),
        sent_after.as_secs_f64(),
        prefix.display()
    );
}

/// Alice, in Chromium with her laptop's certificate, lists her devices
/// and revokes her phone from Converse.js's own ad-hoc commands UI
/// (XEP-0050; see tests/browser/commands.mjs), then sees the result on
/// the server's devices page; screenshots of the list, the revocation and
/// the page are kept.
fn devices_managed_from_converse(test: &str) {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &["laptop", "phone"]);
    let certificates = dir.path().join("certificates");
    let home = dir.path().join("home");
    nss_home(&home, &certificates.join("laptop.p12"), &server.ca);
    let _policy = Policy::auto_select_certificate(server.https);

    let artifacts = artifacts_dir();
    let prefix = artifacts.join(test);
    let shots: Vec<PathBuf> = ["list", "revoked", "page"]
        .iter()
        .map(|what| artifacts.join(format!("{test}-{what}.png")))
        .collect();
    for path in &shots {
        let _ = std::fs::remove_file(path);
    }
    let _ = std::fs::remove_file(artifacts.join(format!("{test}-failure.png")));
    let user_data_dir = dir.path().join("chromium-profile");
    let url = format!("https://{DOMAIN}:{}/", server.https);
    let args: Vec<String> = [
        ("--url", url.clone()),
        ("--home", home.display().to_string()),
        ("--user-data-dir", user_data_dir.display().to_string()),
        ("--screenshot-prefix", prefix.display().to_string()),
        ("--jid", ALICE.to_owned()),
        ("--server", DOMAIN.to_owned()),
        ("--revoke", "phone".to_owned()),
        ("--step-timeout", STEP_SECONDS.to_string()),
        ("--time-limit", CHAT_LIMIT_SECONDS.to_string()),
        ("--chromium", CHROMIUM.to_owned()),
    ]
    .into_iter()
    .flat_map(|(name, value)| [name.to_owned(), value])
    .collect();
    let mut chat = Chat::start(
        COMMANDS_SCRIPT,
        &args,
        dir.path(),
        vec![user_data_dir],
        artifacts.join(format!("{test}.log")),
    );
    if let Err(e) = chat.wait_for("done", Duration::from_secs(CHAT_LIMIT_SECONDS + 5)) {
        panic!(
            "{test}: the devices were not managed from Converse at {url}: {e}\n{}\n{}\n{}",
            chat.evidence(),
            Policy::listing(),
            server.log_text()
        );
    }
    let status = chat.finish();
    assert!(
        status.is_some_and(|status| status.success()),
        "{test}: the browser script ended with {status:?}\n{}",
        chat.evidence()
    );
    let commands = chat.events("commands");
    let names: Vec<&str> = commands[0]["names"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for name in [
        "List my devices",
        "Add a device",
        "Disable a device",
        "Revoke a device",
    ] {
        assert!(names.contains(&name), "{name} not listed: {names:?}");
    }
    // Not an administrator: no XEP-0133 commands.
    assert!(!names.iter().any(|n| n.contains("user")), "{names:?}");
    let devices = str_field(&chat.events("devices")[0], "text").to_owned();
    assert!(
        devices.contains("laptop") && devices.contains("phone"),
        "{devices}"
    );
    let offered = &chat.events("revoke-offered")[0]["options"];
    assert!(
        offered
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o.as_str().is_some_and(|o| o.starts_with("phone"))),
        "{offered}"
    );
    let revoked = str_field(&chat.events("revoked")[0], "text").to_owned();
    assert!(revoked.contains("Revoked phone"), "{revoked}");
    // The devices page, reached with the laptop's certificate: the laptop
    // alone, marked as this browser.
    let page = &chat.events("devices-page")[0];
    assert_eq!(page["status"], 200, "{page}");
    let rows: Vec<&str> = page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(rows.len(), 1, "{page}");
    assert!(rows[0].starts_with("laptop (this browser)"), "{page}");
    for path in &shots {
        assert_png(path);
    }
    drop(chat);
    // The server says so too.
    let listed = sigil(&[
        "cert",
        "list",
        ALICE,
        "--config",
        &dir.path().join("sigil.toml").display().to_string(),
    ]);
    assert!(
        listed
            .lines()
            .any(|line| line.starts_with("phone") && line.contains("revoked")),
        "{listed}"
    );
    assert!(
        listed
            .lines()
            .any(|line| line.starts_with("laptop") && !line.contains("revoked")),
        "{listed}"
    );
    server.stop();
    eprintln!(
        "{test}: passed in {:.1} s; screenshots {}-*.png",
        started.elapsed().as_secs_f64(),
        prefix.display()
    );
}

#[test]
fn converse_lists_and_revokes_a_device_with_ad_hoc_commands() {
    let test = "converse_lists_and_revokes_a_device_with_ad_hoc_commands";
    if browser_enabled(test) {
        devices_managed_from_converse(test);
    }
}

#[test]
fn every_device_sees_the_whole_conversation() {
    let test = "every_device_sees_the_whole_conversation";
    if browser_enabled(test) {
        every_device_sees_the_conversation(test);
    }
}

#[test]
fn certificate_login_and_chat_over_websocket() {
    let test = "certificate_login_and_chat_over_websocket";
    if browser_enabled(test) {
        chat_in_the_browser(test, Transport::WebSocket);
    }
}

#[test]
fn certificate_login_and_chat_over_bosh() {
    let test = "certificate_login_and_chat_over_bosh";
    if browser_enabled(test) {
        chat_in_the_browser(test, Transport::Bosh);
    }
}

/// The helpers themselves, without a browser.
#[test]
fn listening_lines_and_events_parse() {
    assert_eq!(
        listening_port(
            "listening on 127.0.0.1:5281 (HTTPS: WebSocket at /xmpp-websocket, BOSH at \
             /http-bind) for localhost",
            "(HTTPS"
        ),
        Some(5281)
    );
    assert_eq!(
        listening_port(
            "listening on 127.0.0.1:40124 (direct TLS) for localhost",
            "(STARTTLS)"
        ),
        None
    );
    let (event, value) = event_of(r#"{"event":"sent","to":"bob@localhost","body":"ü"}"#).unwrap();
    assert_eq!(event, "sent");
    assert_eq!(str_field(&value, "body"), "ü");
    assert!(event_of("not json").is_none());
    assert!(Path::new(CHAT_SCRIPT).is_file(), "{CHAT_SCRIPT} is missing");
    assert!(
        Path::new(DEVICES_SCRIPT).is_file(),
        "{DEVICES_SCRIPT} is missing"
    );
    assert!(
        Path::new(COMMANDS_SCRIPT).is_file(),
        "{COMMANDS_SCRIPT} is missing"
    );
    assert_eq!(
        pem_body("-----BEGIN CERTIFICATE-----\nMIIB\nAbC=\n-----END CERTIFICATE-----\n"),
        "MIIBAbC="
    );
    assert!(Path::new(CLIENT).is_file(), "{CLIENT} is missing");
}
