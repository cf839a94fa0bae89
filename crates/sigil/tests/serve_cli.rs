//! `sigil serve`, `sigil check` and `sigil user` as a user runs them, from
//! an empty directory.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn sigil_in(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn user_commands_create_the_data_directory_and_manage_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let added = sigil_in(dir.path(), &["user", "add", "alice"], "correct horse\n");
    let (out, err) = text(&added);
    assert!(added.status.success(), "{out}{err}");
    assert!(out.contains("created sigil-data/sigil.toml"), "{out}");
    assert!(out.contains("added alice@localhost"), "{out}");
    assert!(dir.path().join("sigil-data/sigil.toml").exists());
    assert!(dir.path().join("sigil-data/sigil.db").exists());

    let again = sigil_in(dir.path(), &["user", "add", "alice@localhost"], "x\n");
    assert!(!again.status.success());
    assert!(text(&again).1.contains("exists"), "{:?}", text(&again));

    std::fs::write(dir.path().join("pw"), "second password\n").unwrap();
    let bob = sigil_in(
        dir.path(),
        &["user", "add", "bob", "--password-file", "pw"],
        "",
    );
    assert!(bob.status.success(), "{:?}", text(&bob));
    let list = sigil_in(dir.path(), &["user", "list"], "");
    assert_eq!(text(&list).0, "alice@localhost\nbob@localhost\n");

    for (args, message) in [
        (
            &["user", "add", "a b@localhost"][..],
            "not a valid account name",
        ),
        (
            &["user", "add", "carol@elsewhere.example"][..],
            "not on this server's domain",
        ),
        (&["user", "del", "nobody"][..], "does not exist"),
        (&["user", "passwd", "nobody"][..], "does not exist"),
    ] {
        let output = sigil_in(dir.path(), args, "pw\n");
        assert!(!output.status.success(), "{args:?}");
        assert!(
            text(&output).1.contains(message),
            "{args:?}: {:?}",
            text(&output)
        );
    }
    let empty = sigil_in(dir.path(), &["user", "add", "dave"], "\n");
    assert!(text(&empty).1.contains("empty"), "{:?}", text(&empty));

    let passwd = sigil_in(dir.path(), &["user", "passwd", "bob"], "third\n");
    assert!(passwd.status.success(), "{:?}", text(&passwd));
    let del = sigil_in(dir.path(), &["user", "del", "bob"], "");
    assert!(del.status.success());
    assert_eq!(
        text(&sigil_in(dir.path(), &["user", "list"], "")).0,
        "alice@localhost\n"
    );
}

#[test]
fn check_reports_bad_configurations_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let missing = sigil_in(dir.path(), &["check", "--config", "nope.toml"], "");
    assert!(!missing.status.success());
    assert!(
        text(&missing).1.contains("nope.toml"),
        "{:?}",
        text(&missing)
    );

    std::fs::write(
        dir.path().join("bad.toml"),
        "domain = 'localhost'\n[limits]\nmax_depth = 1000\n",
    )
    .unwrap();
    let bad = sigil_in(dir.path(), &["check", "--config", "bad.toml"], "");
    assert!(!bad.status.success());
    assert!(
        text(&bad).1.contains("limits.max_depth"),
        "{:?}",
        text(&bad)
    );

    std::fs::write(dir.path().join("typo.toml"), "domian = 'localhost'\n").unwrap();
    let typo = sigil_in(dir.path(), &["check", "--config", "typo.toml"], "");
    assert!(!typo.status.success());
    assert!(text(&typo).1.contains("domian"), "{:?}", text(&typo));

    // A configuration whose certificate does not exist yet is reported.
    std::fs::write(dir.path().join("ok.toml"), "domain = 'localhost'\n").unwrap();
    let no_cert = sigil_in(dir.path(), &["check", "--config", "ok.toml"], "");
    assert!(!no_cert.status.success());
    assert!(
        text(&no_cert).1.contains("server.crt"),
        "{:?}",
        text(&no_cert)
    );
}

/// The README's run command on an empty directory: creates everything,
/// listens on the default loopback ports, stops cleanly on SIGTERM.
#[test]
fn first_run_of_serve_creates_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .current_dir(dir.path())
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    while lines
        .iter()
        .filter(|l: &&String| l.starts_with("listening on"))
        .count()
        < 3
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("no listening lines (are 5222/5223/5281 taken?): {lines:?}");
            }
        }
    }
    assert!(
        lines.contains(&"created sigil-data/sigil.toml".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("created a self-signed server certificate for localhost")),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"listening on 127.0.0.1:5222 (STARTTLS) for localhost".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"listening on 127.0.0.1:5223 (direct TLS) for localhost".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines.contains(
            &"listening on 127.0.0.1:5281 (HTTPS: WebSocket at /xmpp-websocket, BOSH at /http-bind) for localhost"
                .to_owned()
        ),
        "{lines:?}"
    );
    let key = dir.path().join("sigil-data/server.key");
    #[cfg(unix)]
    {
        // Nothing the server keeps is readable by anyone else: the data
        // directory, the configuration, the keys, the database with its
        // password verifiers, messages and rosters, the control socket.
        use std::os::unix::fs::PermissionsExt;
        let mode = |name: &str| {
            std::fs::metadata(dir.path().join(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("sigil-data"), 0o700);
        for name in [
            "sigil-data/server.key",
            "sigil-data/server.crt",
            "sigil-data/sigil.toml",
            "sigil-data/sigil.db",
            "sigil-data/sigil.db-wal",
            "sigil-data/sigil.sock",
        ] {
            assert_eq!(mode(name), 0o600, "{name}");
        }
        assert!(key.exists());
    }
    // The server answers a stream header with its features.
    let mut tcp = std::net::TcpStream::connect("127.0.0.1:5222").unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>").unwrap();
    let mut seen = String::new();
    let mut buffer = [0u8; 4096];
    while !seen.contains("</stream:features>") {
        let n = std::io::Read::read(&mut tcp, &mut buffer).unwrap();
        assert!(n > 0, "{seen}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    assert!(
        seen.contains("<starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"><required/></starttls>"),
        "{seen}"
    );

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The open stream was told why.
    let mut rest = String::new();
    while let Ok(n) = std::io::Read::read(&mut tcp, &mut buffer) {
        if n == 0 {
            break;
        }
        rest.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    assert!(rest.contains("system-shutdown"), "{rest}");

    // A second run reuses what the first made.
    let check = sigil_in(dir.path(), &["check"], "");
    assert!(check.status.success(), "{:?}", text(&check));
    assert!(text(&check).0.contains("accounts: 0"), "{:?}", text(&check));
}

/// A file at the control socket's path that is not a socket is never
/// deleted: the server refuses to start and says why.
#[test]
fn serve_leaves_a_file_at_the_control_socket_path_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("data")).unwrap();
    std::fs::write(
        d.join("data/sigil.toml"),
        "domain = 'localhost'\n\
         [[listener]]\nkind = 'starttls'\naddress = '127.0.0.1:0'\n",
    )
    .unwrap();
    std::fs::write(d.join("data/sigil.sock"), "precious\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .current_dir(d)
        .args(["serve", "--config", "data/sigil.toml"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut said = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut said).unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(said.contains("is not a socket"), "{said}");
    assert_eq!(
        std::fs::read_to_string(d.join("data/sigil.sock")).unwrap(),
        "precious\n"
    );
}

/// `sigil check` names what others may read or change: a data directory
/// others may enter, a server key others may read (restricted on the
/// way), trusted CAs others may change; such a CA is not used.
#[test]
fn check_warns_of_loose_permissions_and_restricts_the_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let added = sigil_in(dir.path(), &["user", "add", "alice"], "correct horse\n");
    assert!(added.status.success(), "{:?}", text(&added));
    let data = dir.path().join("sigil-data");
    // The server certificate a first `serve` makes.
    let key = data.join("server.key");
    let issued = sigil_x509::generate::server_certificate(
        "localhost",
        &sigil_x509::generate::Options::new(sigil_x509::OffsetDateTime::now_utc()),
        None,
    )
    .unwrap();
    sigil_server::write_new(&key, issued.key_pem().as_bytes()).unwrap();
    sigil_server::write_new(
        &data.join("server.crt"),
        issued.certificate_pem().as_bytes(),
    )
    .unwrap();
    let clean = sigil_in(dir.path(), &["check"], "");
    let (out, err) = text(&clean);
    assert!(clean.status.success(), "{out}{err}");
    assert!(!out.contains("warning"), "{out}");

    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let trusted = data.join("trusted-cas");
    std::fs::create_dir_all(&trusted).unwrap();
    std::fs::set_permissions(&trusted, std::fs::Permissions::from_mode(0o777)).unwrap();
    let loose = sigil_in(dir.path(), &["check"], "");
    let (out, err) = text(&loose);
    assert!(loose.status.success(), "{out}{err}");
    assert!(
        out.contains("may be entered by other users (mode 755)"),
        "{out}"
    );
    assert!(
        out.contains("server.key was readable by every user: no longer (mode 640)"),
        "{out}"
    );
    assert!(
        out.contains("trusted-cas may be changed by other users"),
        "{out}"
    );
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o640
    );
    // Readable by its group only: said, not changed (it may be shared on
    // purpose).
    let again = sigil_in(dir.path(), &["check"], "");
    let (out, _) = text(&again);
    assert!(
        out.contains("server.key may be read by other users (mode 640)"),
        "{out}"
    );
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o640
    );
}

/// Root is refused on a data directory that belongs to another user:
/// what it would write there would be unreadable to the server.
#[test]
fn root_is_refused_on_another_users_data_directory() {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let added = sigil_in(dir.path(), &["user", "add", "alice"], "correct horse\n");
    assert!(added.status.success(), "{:?}", text(&added));
    let data = dir.path().join("sigil-data");
    let chown = Command::new("chown")
        .args(["-R", "nobody"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(chown.success());
    for args in [
        &["user", "add", "bob"][..],
        &["cert", "trust", "ca.crt", "--name", "corp"],
        &["check"],
    ] {
        let refused = sigil_in(dir.path(), args, "pw\n");
        let (out, err) = text(&refused);
        assert!(!refused.status.success(), "{args:?}: {out}{err}");
        assert!(
            err.contains(
                "belongs to nobody: run this as that user (for example `sudo -u nobody sigil"
            ),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn migrate_copies_a_deployment_into_postgresql_and_the_server_runs_on_it() {
    use sigil_store::postgres::testing::{Schema, admin_url};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let schema = runtime.block_on(Schema::new(admin_url()));
    let dir = tempfile::tempdir().unwrap();
    let config = "sigil-data/sigil.toml";
    for name in ["alice", "bob"] {
        let added = sigil_in(dir.path(), &["user", "add", name], "correct horse\n");
        assert!(added.status.success(), "{added:?}");
    }
    let bad = sigil_in(
        dir.path(),
        &["migrate", "--to", "mysql://x", "--config", config],
        "",
    );
    assert!(!bad.status.success());
    assert!(text(&bad).1.contains("PostgreSQL URL"), "{bad:?}");
    let copied = sigil_in(
        dir.path(),
        &["migrate", "--to", &schema.url, "--config", config],
        "",
    );
    let (out, err) = text(&copied);
    assert!(copied.status.success(), "{out}{err}");
    assert!(out.contains("accounts: 2 row(s)"), "{out}");
    assert!(out.contains("credentials: "), "{out}");
    // The database password is never printed.
    let credentials = schema.url.split_once("://").unwrap().1;
    if let Some((user, _)) = credentials.rsplit_once('@')
        && let Some((_, password)) = user.split_once(':')
    {
        assert!(
            !out.contains(password) && !err.contains(password),
            "{out}{err}"
        );
    }
    // A second copy finds data there and changes nothing.
    let again = sigil_in(
        dir.path(),
        &["migrate", "--to", &schema.url, "--config", config],
        "",
    );
    assert!(!again.status.success());
    assert!(text(&again).1.contains("already holds data"), "{again:?}");
    // Pointed at PostgreSQL, the deployment has its accounts.
    let path = dir.path().join(config);
    let toml = std::fs::read_to_string(&path).unwrap();
    let storage = format!("[storage]\nurl = {:?}\n", schema.url);
    let toml = match toml.contains("[storage]") {
        true => {
            toml.replace("[storage]\n", &storage)
                .replacen("url = \"sqlite://sigil.db\"\n", "", 1)
        }
        false => format!("{toml}\n{storage}"),
    };
    std::fs::write(&path, toml).unwrap();
    let listed = sigil_in(dir.path(), &["user", "list", "--config", config], "");
    let (out, err) = text(&listed);
    assert!(listed.status.success(), "{out}{err}");
    assert!(
        out.contains("alice@localhost") && out.contains("bob@localhost"),
        "{out}"
    );
    // A deployment on PostgreSQL has nothing to copy.
    let none = sigil_in(
        dir.path(),
        &["migrate", "--to", &schema.url, "--config", config],
        "",
    );
    assert!(text(&none).1.contains("does not use SQLite"), "{none:?}");
}
