//! The client commands against `sigil serve`: `sigil login` over WebSocket
//! and BOSH with a .p12, `sigil cert upload|remote-list|remote-revoke`
//! registering a new device from an old one, `sigil send`, and
//! `sigil chat` between two accounts driven through tmux.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod process;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use process::{Guard, free_port, line_reader, listening, ok};

const CONFIG: &str = "domain = 'localhost'\n\
    [[listener]]\nkind = 'starttls'\naddress = '127.0.0.1:0'\n\
    [[listener]]\nkind = 'direct-tls'\naddress = '127.0.0.1:0'\n\
    [[listener]]\nkind = 'https'\naddress = '127.0.0.1:0'\n";

fn sigil(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sigil"))
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

struct Running {
    server: Guard,
    starttls: String,
    direct: String,
    https: String,
}

fn serve(d: &Path) -> Running {
    serve_with(d, CONFIG)
}

/// `sigil serve` with this configuration, accounts alice and bob
/// (password in `pw`) made first.
fn serve_with(d: &Path, config: &str) -> Running {
    std::fs::create_dir(d.join("data")).unwrap();
    std::fs::write(d.join("data/sigil.toml"), config).unwrap();
    std::fs::write(d.join("pw"), "open sesame\n").unwrap();
    for user in ["alice", "bob"] {
        ok(&sigil(
            d,
            &[
                "user",
                "add",
                user,
                "--password-file",
                "pw",
                "--config",
                "data/sigil.toml",
            ],
        ));
    }
    start(d)
}

/// `sigil serve` on the configuration and data already in `d`.
fn start(d: &Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .current_dir(d)
        .args(["serve", "--config", "data/sigil.toml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = line_reader(child.stdout.take().unwrap());
    let server = Guard(child);
    let [starttls, direct, https]: [String; 3] =
        listening(&lines, &["STARTTLS", "direct TLS", "HTTPS"])
            .try_into()
            .unwrap();
    // The rest of its output is read and dropped, so it never blocks.
    std::thread::spawn(move || while lines.recv().is_ok() {});
    Running {
        server,
        starttls,
        direct,
        https,
    }
}

fn port(address: &str) -> &str {
    address.rsplit(':').next().unwrap()
}

#[test]
fn a_new_device_registered_from_an_old_one_over_every_transport() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = serve(d);
    let https = &server.https;
    let ws_url = format!("wss://localhost:{}/xmpp-websocket", port(https));
    let bosh_url = format!("https://localhost:{}/http-bind", port(https));

    // A certificate for the new device, not registered yet.
    ok(&sigil(
        d,
        &[
            "cert",
            "new",
            "bob@localhost",
            "--name",
            "phone",
            "--p12-password-file",
            "pw",
        ],
    ));
    let refused = sigil(
        d,
        &[
            "login",
            "bob@localhost",
            "--address",
            &server.direct,
            "--direct-tls",
            "--p12",
            "phone.p12",
            "--p12-password-file",
            "pw",
            "--ca",
            "data/server.crt",
        ],
    );
    assert!(!refused.status.success());

    // The old device (a password session over WebSocket) uploads it.
    let text = ok(&sigil(
        d,
        &[
            "cert",
            "upload",
            "phone.crt",
            "--name",
            "phone",
            "--as",
            "bob@localhost",
            "--websocket",
            &ws_url,
            "--address",
            https,
            "--password-file",
            "pw",
            "--ca",
            "data/server.crt",
        ],
    ));
    assert!(text.contains("registered phone"), "{text}");

    // The new device logs in with its .p12 over each transport.
    for transport in [
        vec!["--address", server.starttls.as_str()],
        vec!["--address", server.direct.as_str(), "--direct-tls"],
        vec!["--address", https.as_str(), "--websocket", ws_url.as_str()],
        vec!["--address", https.as_str(), "--bosh", bosh_url.as_str()],
    ] {
        let mut args = vec![
            "login",
            "bob@localhost",
            "--p12",
            "phone.p12",
            "--p12-password-file",
            "pw",
            "--ca",
            "data/server.crt",
        ];
        args.extend(transport.iter().copied());
        let text = ok(&sigil(d, &args));
        assert!(text.contains("mechanism: EXTERNAL"), "{text}");
        assert!(text.contains("bound: bob@localhost/"), "{text}");
        assert!(text.contains("TLS: TLSv1_3"), "{text}");
    }

    // Listed from a BOSH session; then revoked, and it no longer logs in.
    let remote = |verb: &[&str]| {
        let mut args = verb.to_vec();
        args.extend([
            "--as",
            "bob@localhost",
            "--address",
            https.as_str(),
            "--bosh",
            bosh_url.as_str(),
            "--password-file",
            "pw",
            "--ca",
            "data/server.crt",
        ]);
        sigil(d, &args)
    };
    let listed = ok(&remote(&["cert", "remote-list"]));
    assert!(listed.starts_with("phone  sha256:"), "{listed}");
    let missing = remote(&["cert", "remote-revoke", "tablet"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("item-not-found"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    assert!(ok(&remote(&["cert", "remote-revoke", "phone"])).contains("revoked phone"));
    assert_eq!(
        ok(&remote(&["cert", "remote-list"])).trim(),
        "no certificates"
    );
    let revoked = sigil(
        d,
        &[
            "login",
            "bob@localhost",
            "--address",
            &server.starttls,
            "--p12",
            "phone.p12",
            "--p12-password-file",
            "pw",
            "--ca",
            "data/server.crt",
        ],
    );
    assert!(!revoked.status.success());
}

/// A private tmux server, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Self {
        Self {
            socket: format!("sigil-test-{}", std::process::id()),
        }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux (the test script installs it)")
    }

    fn capture(&self, pane: &str) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-J", "-t", pane]).stdout)
            .into_owned()
    }

    #[track_caller]
    fn wait_for(&self, pane: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.capture(pane);
            if screen.contains(needle) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} never showed in {pane}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A detached 200×50 session `name` running the shell `command`.
    fn open(&self, name: &str, command: &str) {
        let out = self.run(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "200",
            "-y",
            "50",
            command,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn type_line(&self, pane: &str, text: &str) {
        assert!(
            self.run(&["send-keys", "-t", pane, "-l", text])
                .status
                .success()
        );
        assert!(
            self.run(&["send-keys", "-t", pane, "Enter"])
                .status
                .success()
        );
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[test]
fn send_and_chat_through_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = serve(d);
    let sigil_bin = env!("CARGO_BIN_EXE_sigil");
    let common = [
        "--password-file",
        "pw",
        "--ca",
        "data/server.crt",
        "--address",
    ];

    // Bob sends while alice is offline: the message waits for her.
    let sent = ok(&sigil(
        d,
        &[
            &[
                "send",
                "alice@localhost",
                "while you were out",
                "--as",
                "bob@localhost",
            ][..],
            &common,
            &[server.starttls.as_str()],
        ]
        .concat(),
    ));
    assert!(sent.contains("sent to alice@localhost"), "{sent}");
    let empty = sigil(
        d,
        &[
            &["send", "alice@localhost", "", "--as", "bob@localhost"][..],
            &common,
            &[server.starttls.as_str()],
        ]
        .concat(),
    );
    assert!(!empty.status.success());

    let tmux = Tmux::new();
    let chat = |account: &str, peer: &str, transport: &[&str]| {
        let mut words = vec![
            shell_quote(sigil_bin),
            "chat".into(),
            peer.into(),
            "--as".into(),
            account.into(),
        ];
        words.extend(common.iter().map(|w| (*w).to_owned()));
        words.extend(transport.iter().map(|w| shell_quote(w)));
        format!(
            "cd {} && {}; echo \"chat ended: $?\"; sleep 60",
            shell_quote(&d.display().to_string()),
            words.join(" ")
        )
    };
    let ws_url = format!("wss://localhost:{}/xmpp-websocket", port(&server.https));
    let alice = chat(
        "alice@localhost",
        "bob@localhost",
        &[&server.direct, "--direct-tls"],
    );
    let bob = chat(
        "bob@localhost",
        "alice@localhost",
        &[&server.https, "--websocket", &ws_url],
    );
    for (name, command) in [("alice", alice), ("bob", bob)] {
        tmux.open(name, &command);
    }
    let screen = tmux.wait_for("alice", "logged in as alice@localhost/");
    assert!(screen.contains("direct TLS"), "{screen}");
    tmux.wait_for("bob", "logged in as bob@localhost/");
    // The offline message reaches alice when she comes online.
    tmux.wait_for("alice", "<bob@localhost> while you were out");

    tmux.type_line("alice", "hello bob, ünïcode too");
    tmux.wait_for("bob", "<alice@localhost> hello bob, ünïcode too");
    tmux.type_line("bob", "hi alice");
    tmux.wait_for("alice", "<bob@localhost> hi alice");

    tmux.type_line("alice", "/quit");
    tmux.wait_for("alice", "chat ended: 0");
    tmux.type_line("bob", "/quit");
    tmux.wait_for("bob", "chat ended: 0");
}

/// `sigil chat` opens with the end of the conversation from the archive,
/// and shows what the account's other devices send to and receive from
/// the peer.
#[test]
fn chat_shows_the_history_and_the_other_devices() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = serve(d);
    let send = |from: &str, to: &str, text: &str| {
        let said = ok(&sigil(
            d,
            &[
                "send",
                to,
                text,
                "--as",
                from,
                "--password-file",
                "pw",
                "--ca",
                "data/server.crt",
                "--address",
                &server.starttls,
            ],
        ));
        assert!(said.contains("sent to"), "{said}");
    };
    send("alice@localhost", "bob@localhost", "first from alice");
    // Alice is offline: this one is also kept for her.
    send("bob@localhost", "alice@localhost", "then bob");

    let tmux = Tmux::new();
    let chat = |resource: &str| {
        format!(
            "cd {} && {} chat bob@localhost --as alice@localhost --password-file pw \
             --ca data/server.crt --direct-tls --address {} --resource {resource}; \
             echo \"chat ended: $?\"; sleep 60",
            shell_quote(&d.display().to_string()),
            shell_quote(env!("CARGO_BIN_EXE_sigil")),
            server.direct,
        )
    };
    tmux.open("laptop", &chat("laptop"));
    let screen = tmux.wait_for("laptop", "] <bob@localhost> then bob");
    let line = |screen: &str, text: &str| {
        screen
            .lines()
            .position(|l| l.contains(text))
            .unwrap_or_else(|| panic!("{text:?} is not shown:\n{screen}"))
    };
    let lines: Vec<&str> = screen.lines().collect();
    let first = line(&screen, "first from alice");
    let then = line(&screen, "then bob");
    assert!(first < then, "oldest first:\n{screen}");
    for (n, who) in [(first, "alice"), (then, "bob")] {
        assert!(
            lines[n].starts_with("[history ")
                && lines[n].contains(&format!("UTC] <{who}@localhost> ")),
            "{}",
            lines[n]
        );
    }

    // Another device of alice's sends to bob.
    send("alice@localhost", "bob@localhost", "from my phone");
    tmux.wait_for("laptop", "<alice@localhost> (other device) from my phone");
    // Another receives from bob.
    tmux.open("phone", &chat("phone"));
    tmux.wait_for("laptop", "* alice@localhost/phone is online");
    send(
        "bob@localhost",
        "alice@localhost/phone",
        "just for the phone",
    );
    tmux.wait_for("phone", "\n<bob@localhost> just for the phone");
    tmux.wait_for(
        "laptop",
        "<bob@localhost> (to other device) just for the phone",
    );
    // The history has all of it, in order, on the device that came later.
    let phone = tmux.capture("phone");
    let order: Vec<usize> = ["first from alice", "then bob", "from my phone"]
        .iter()
        .map(|text| line(&phone, text))
        .collect();
    assert!(order.is_sorted(), "{phone}");
    // What was kept for alice while she was away is in the history: it
    // is not shown twice.
    let laptop = tmux.capture("laptop");
    assert_eq!(laptop.matches("then bob").count(), 1, "{laptop}");

    for pane in ["laptop", "phone"] {
        tmux.type_line(pane, "/quit");
        tmux.wait_for(pane, "chat ended: 0");
    }
}

#[test]
fn chat_carries_on_after_the_server_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = format!(
        "domain = 'localhost'\n\
         [[listener]]\nkind = 'starttls'\naddress = '127.0.0.1:0'\n\
         [[listener]]\nkind = 'direct-tls'\naddress = '127.0.0.1:{}'\n\
         [[listener]]\nkind = 'https'\naddress = '127.0.0.1:0'\n",
        free_port()
    );
    let mut server = serve_with(d, &config);
    let direct = server.direct.clone();
    let tmux = Tmux::new();
    let command = format!(
        "cd {} && {} chat bob@localhost --as alice@localhost --password-file pw \
         --ca data/server.crt --address {direct} --direct-tls; echo \"chat ended: $?\"; sleep 60",
        shell_quote(&d.display().to_string()),
        shell_quote(env!("CARGO_BIN_EXE_sigil")),
    );
    tmux.open("alice", &command);
    tmux.wait_for("alice", "logged in as alice@localhost/");

    // A clean stop (SIGTERM), then the server comes back on the same port.
    let pid = server.server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let stopped = process::wait_bounded(&mut server.server.0, Duration::from_secs(30));
    assert!(
        stopped.is_some_and(|status| status.success()),
        "{stopped:?}"
    );
    tmux.wait_for("alice", "connection lost");
    let server = start(d);
    assert_eq!(server.direct, direct);
    tmux.wait_for("alice", "reconnected as alice@localhost/");

    // Available again: a message reaches the chat, and lines typed go out.
    let sent = ok(&sigil(
        d,
        &[
            "send",
            "alice@localhost",
            "after the restart",
            "--as",
            "bob@localhost",
            "--password-file",
            "pw",
            "--ca",
            "data/server.crt",
            "--address",
            &server.starttls,
        ],
    ));
    assert!(sent.contains("sent to alice@localhost"), "{sent}");
    tmux.wait_for("alice", "<bob@localhost> after the restart");
    tmux.type_line("alice", "still here");
    tmux.type_line("alice", "/quit");
    tmux.wait_for("alice", "chat ended: 0");
    // Bob was offline: the line waits for him.
    let command = format!(
        "cd {} && {} chat alice@localhost --as bob@localhost --password-file pw \
         --ca data/server.crt --address {direct} --direct-tls; sleep 60",
        shell_quote(&d.display().to_string()),
        shell_quote(env!("CARGO_BIN_EXE_sigil")),
    );
    tmux.open("bob", &command);
    tmux.wait_for("bob", "<alice@localhost> still here");
    drop(server);
}

/// `sigil user disable`, `passwd` and `del` reach the running server: the
/// sessions that lost their right end at once, and a disabled account
/// logs in again only once enabled.
#[test]
fn user_commands_end_the_sessions_of_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = serve(d);
    let login = |user: &str, password_file: &str| {
        sigil(
            d,
            &[
                "login",
                &format!("{user}@localhost"),
                "--password-file",
                password_file,
                "--ca",
                "data/server.crt",
                "--address",
                &server.starttls,
            ],
        )
    };
    let tmux = Tmux::new();
    let chat = |name: &str, user: &str| {
        let command = format!(
            "cd {} && {} chat bob@localhost --as {user}@localhost --password-file pw \
             --ca data/server.crt --address {}; echo \"chat ended: $?\"; sleep 60",
            shell_quote(&d.display().to_string()),
            shell_quote(env!("CARGO_BIN_EXE_sigil")),
            server.starttls,
        );
        tmux.open(name, &command);
        tmux.wait_for(name, &format!("logged in as {user}@localhost/"));
    };
    let user = |args: &[&str]| {
        let mut all = vec!["user"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--config", "data/sigil.toml"]);
        ok(&sigil(d, &all))
    };

    chat("disabled", "alice");
    let said = user(&["disable", "alice"]);
    assert!(
        said.contains("the running server ended 1 session(s) of alice@localhost"),
        "{said}"
    );
    tmux.wait_for("disabled", "This account has been disabled.");
    tmux.wait_for("disabled", "chat ended: 1");
    let refused = login("alice", "pw");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("account-disabled"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    user(&["enable", "alice"]);
    ok(&login("alice", "pw"));

    chat("password", "alice");
    std::fs::write(d.join("pw2"), "new sesame\n").unwrap();
    let said = user(&["passwd", "alice", "--password-file", "pw2"]);
    assert!(said.contains("ended 1 session(s)"), "{said}");
    tmux.wait_for("password", "The password of this account has been changed.");
    assert!(!login("alice", "pw").status.success());
    ok(&login("alice", "pw2"));

    chat("deleted", "bob");
    let said = user(&["del", "bob"]);
    assert!(
        said.contains("ended 1 session(s) of bob@localhost"),
        "{said}"
    );
    tmux.wait_for("deleted", "This account has been deleted.");
    drop(server);
}

/// SIGHUP makes `sigil serve` use a renewed server certificate from the
/// next handshake on, with no restart.
#[test]
fn sighup_puts_a_renewed_server_certificate_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = serve(d);
    let login = || {
        sigil(
            d,
            &[
                "login",
                "alice@localhost",
                "--password-file",
                "pw",
                "--ca",
                "data/server.crt",
                "--address",
                &server.direct,
                "--direct-tls",
            ],
        )
    };
    ok(&login());
    let renewed = sigil_x509::generate::server_certificate(
        "localhost",
        &sigil_x509::generate::Options::new(sigil_x509::OffsetDateTime::now_utc()),
        None,
    )
    .unwrap();
    std::fs::write(d.join("data/server.crt"), renewed.certificate_pem()).unwrap();
    std::fs::write(d.join("data/server.key"), renewed.key_pem()).unwrap();
    // The old certificate is still in use: the new one does not verify it.
    assert!(!login().status.success());
    let pid = server.server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if login().status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not taken up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(server);
}

/// What an operator meets: the README's `[tls]` example works as written
/// on a first run; the server's log, written to a file, has no colour
/// codes and names why a login failed; `sigil check` speaks the
/// configuration's own spellings; `serve` suggests adding an account only
/// when there is none.
#[test]
fn operator_output_is_plain_and_precise() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("data")).unwrap();
    std::fs::write(
        d.join("data/sigil.toml"),
        format!(
            "{CONFIG}[tls]\ncertificate = \"server.crt\"\nkey = \"server.key\"\n\
             [log]\nlevel = \"info\"\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(d.join("server.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .current_dir(d)
        .args(["serve", "--config", "data/sigil.toml"])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let lines = line_reader(child.stdout.take().unwrap());
    let server = Guard(child);
    let said = listening(&lines, &["STARTTLS", "direct TLS", "HTTPS"]);
    let starttls = said[0].clone();
    let mut rest = Vec::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
        let done = line.starts_with("no accounts yet");
        rest.push(line);
        if done {
            break;
        }
    }
    assert!(
        rest.iter().any(|l| l.starts_with(
            "no accounts yet: add one with `sigil user add NAME --config data/sigil.toml`"
        )),
        "{rest:?}"
    );
    std::fs::write(d.join("pw"), "open sesame\n").unwrap();
    std::fs::write(d.join("wrong"), "not it\n").unwrap();
    ok(&sigil(
        d,
        &[
            "user",
            "add",
            "alice",
            "--password-file",
            "pw",
            "--config",
            "data/sigil.toml",
        ],
    ));
    let refused = sigil(
        d,
        &[
            "login",
            "alice@localhost",
            "--password-file",
            "wrong",
            "--ca",
            "data/server.crt",
            "--address",
            &starttls,
        ],
    );
    assert!(!refused.status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let logged = loop {
        let logged = std::fs::read_to_string(d.join("server.log")).unwrap();
        if logged.contains("login failed") || Instant::now() > deadline {
            break logged;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(logged.contains("login failed"), "{logged}");
    assert!(logged.contains("account=alice@localhost"), "{logged}");
    assert!(
        !logged.contains('\u{1b}'),
        "colour codes in a log file: {logged:?}"
    );
    drop(server);

    let checked = ok(&sigil(d, &["check", "--config", "data/sigil.toml"]));
    assert!(
        checked.contains("kind = \"starttls\"")
            && checked.contains("client_certificates = \"wanted\""),
        "{checked}"
    );
}

/// Whether the Debian-packaged peers run: not when `SIGIL_SKIP_INTEROP=1`.
fn interop_enabled(test: &str) -> bool {
    if std::env::var("SIGIL_SKIP_INTEROP").as_deref() == Ok("1") {
        eprintln!("{test}: skipped: SIGIL_SKIP_INTEROP=1");
        return false;
    }
    true
}

/// go-sendxmpp (every client on the go-xmpp library) sends a newline
/// before its restarted stream's header: it logs in and sends over
/// STARTTLS and direct TLS (Debian package `go-sendxmpp`).
#[test]
fn go_sendxmpp_sends_over_starttls_and_direct_tls() {
    if !interop_enabled("go_sendxmpp_sends_over_starttls_and_direct_tls") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = serve(d);
    for (mode, address, body) in [
        (None, &server.starttls, "sent by go-sendxmpp over STARTTLS"),
        (
            Some("-t"),
            &server.direct,
            "sent by go-sendxmpp over direct TLS",
        ),
    ] {
        let mut command = Command::new("go-sendxmpp");
        command
            .current_dir(d)
            .args([
                "-u",
                "alice@localhost",
                "-p",
                "open sesame",
                "-n",
                "-j",
                address,
            ])
            .args(["--timeout", "10"]);
        if let Some(flag) = mode {
            command.arg(flag);
        }
        let mut child = command
            .arg("bob@localhost")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("go-sendxmpp is not installed: the test command installs it");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{body}\n").as_bytes())
            .unwrap();
        let stdout = process::drain(child.stdout.take().unwrap());
        let stderr = process::drain(child.stderr.take().unwrap());
        let status = process::wait_bounded(&mut child, Duration::from_secs(30));
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&stdout.join().unwrap()),
            String::from_utf8_lossy(&stderr.join().unwrap())
        );
        assert!(status.is_some_and(|s| s.success()), "{status:?}: {said}");
    }
    // Bob finds both waiting.
    let tmux = Tmux::new();
    let command = format!(
        "cd {} && {} chat alice@localhost --as bob@localhost --password-file pw \
         --ca data/server.crt --address {}; sleep 60",
        shell_quote(&d.display().to_string()),
        shell_quote(env!("CARGO_BIN_EXE_sigil")),
        server.starttls,
    );
    tmux.open("bob", &command);
    tmux.wait_for("bob", "<alice@localhost> sent by go-sendxmpp over STARTTLS");
    tmux.wait_for(
        "bob",
        "<alice@localhost> sent by go-sendxmpp over direct TLS",
    );
    drop(server);
}

/// libstrophe (Debian's 0.12, the library of profanity and others) logs
/// in with a certificate `sigil cert new --register` made, finding the
/// JID in it itself; and, with a certificate the server does not accept
/// and a password, falls back to the password on the same stream.
#[test]
fn libstrophe_logs_in_with_a_certificate_and_falls_back_to_a_password() {
    if !interop_enabled("libstrophe_logs_in_with_a_certificate_and_falls_back_to_a_password") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = serve(d);
    let program = d.join("strophe_login");
    let source = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/interop/strophe_login.c"
    );
    let built = Command::new("cc")
        .arg(source)
        .arg("-o")
        .arg(&program)
        .arg("-lstrophe")
        .output()
        .expect("no C compiler");
    assert!(
        built.status.success(),
        "cannot build the libstrophe client (the test command installs libstrophe-dev): {}",
        String::from_utf8_lossy(&built.stderr)
    );
    for (device, register) in [("laptop", true), ("stranger", false)] {
        let mut args = vec![
            "cert",
            "new",
            "alice@localhost",
            "--name",
            device,
            "--p12-password-file",
            "pw",
        ];
        if register {
            args.extend(["--register", "--config", "data/sigil.toml"]);
        }
        ok(&sigil(d, &args));
    }
    let run = |mode: &str, address: &str, extra: &[&str]| {
        let port = port(address).to_owned();
        let output = Command::new(&program)
            .current_dir(d)
            .args(["127.0.0.1", &port, mode, "data/server.crt"])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    for (mode, address) in [("starttls", &server.starttls), ("direct", &server.direct)] {
        // The JID from the certificate, EXTERNAL.
        let said = run(mode, address, &["-c", "laptop.crt", "-k", "laptop.key"]);
        assert!(
            said.contains("certificate names alice@localhost"),
            "{mode}: {said}"
        );
        assert!(said.contains("bound alice@localhost/"), "{mode}: {said}");
        // A certificate the server refuses, then the password.
        let said = run(
            mode,
            address,
            &[
                "-c",
                "stranger.crt",
                "-k",
                "stranger.key",
                "-p",
                "open sesame",
            ],
        );
        assert!(said.contains("bound alice@localhost/"), "{mode}: {said}");
    }
    drop(server);
}
