//! `sigil device join` against `sigil serve`: a device joins by
//! invitation, writes its credentials, and logs in with them; a spent
//! invitation is refused, and files in the way stop it before anything is
//! spent.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod process;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use process::serve_starttls;
use sigil_store::{Invite, InviteKind, SqliteStore, invite_token_hash};

const CONFIG: &str =
    "domain = 'localhost'\n[[listener]]\nkind = 'starttls'\naddress = '127.0.0.1:0'\n";

fn sigil(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sigil"))
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Invitations to create an account with a free name, straight into the
/// database (the command that makes them belongs elsewhere).
fn invite(database: &std::path::Path, tokens: &[&str]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(database).await.unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        for token in tokens {
            let invite = Invite {
                token_hash: invite_token_hash(token),
                kind: InviteKind::Account { jid: None },
                device: None,
                creator: None,
                created_at: now,
                expires_at: now + 3600,
            };
            sigil_store::InviteStore::create_invite(&store, &invite, 10, now)
                .await
                .unwrap();
        }
    });
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_device_joins_by_invitation_and_logs_in_with_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("data")).unwrap();
    std::fs::write(d.join("data/sigil.toml"), CONFIG).unwrap();
    std::fs::write(d.join("pw"), "open sesame\n").unwrap();
    // Creates the database (and an account the test does not use).
    let added = sigil(
        d,
        &[
            "user",
            "add",
            "bob",
            "--no-password",
            "--config",
            "data/sigil.toml",
        ],
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    invite(&d.join("data/sigil.db"), &["cli-token", "spare-token"]);

    let (_server, starttls) = serve_starttls(d, "data/sigil.toml");

    let join = |token: &str, out: &str| {
        sigil(
            d,
            &[
                "device",
                "join",
                &format!("xmpp:localhost?register;preauth={token}"),
                "--name",
                "phone",
                "--user",
                "carol",
                "--out",
                out,
                "--p12-password-file",
                "pw",
                "--address",
                &starttls,
                "--ca",
                "data/server.crt",
            ],
        )
    };
    let out = join("cli-token", "creds");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Joined carol@localhost as device \"phone\""),
        "{text}"
    );
    assert!(text.contains("logged in as carol@localhost/"), "{text}");
    assert!(text.contains("with EXTERNAL"), "{text}");
    let next = format!(
        "sigil login carol@localhost --cert creds/carol.crt --key creds/carol.key --address {starttls} --ca data/server.crt"
    );
    assert!(text.contains(&next), "{text}");
    assert_eq!(mode(&d.join("creds/carol.key")), 0o600);
    assert_eq!(mode(&d.join("creds/carol.p12")), 0o600);
    assert!(d.join("creds/carol.crt").exists());

    // What it wrote logs in, with the certificate alone.
    let login = sigil(
        d,
        &[
            "login",
            "carol@localhost",
            "--cert",
            "creds/carol.crt",
            "--key",
            "creds/carol.key",
            "--address",
            &starttls,
            "--ca",
            "data/server.crt",
        ],
    );
    let text = String::from_utf8_lossy(&login.stdout);
    assert!(
        login.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&login.stderr)
    );
    assert!(text.contains("mechanism: EXTERNAL"), "{text}");
    assert!(text.contains("bound: carol@localhost/"), "{text}");

    // The invitation is spent: refused, and nothing is written.
    let again = join("cli-token", "creds2");
    assert!(!again.status.success());
    let error = String::from_utf8_lossy(&again.stderr);
    assert!(error.contains("item-not-found"), "{error}");
    assert!(!d.join("creds2/carol.key").exists());

    // Files in the way stop it before it connects.
    let blocked = join("spare-token", "creds");
    assert!(!blocked.status.success());
    let error = String::from_utf8_lossy(&blocked.stderr);
    assert!(error.contains("use --force"), "{error}");
    // The spare invitation is still good: it creates another account.
    let other = sigil(
        d,
        &[
            "device",
            "join",
            "xmpp:localhost?register;preauth=spare-token",
            "--name",
            "laptop",
            "--user",
            "dave",
            "--out",
            "creds",
            "--p12-password-file",
            "pw",
            "--address",
            &starttls,
            "--ca",
            "data/server.crt",
        ],
    );
    assert!(
        other.status.success(),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
    assert!(d.join("creds/dave.key").exists());

    // Help names the command and its options.
    let help = sigil(d, &["device", "join", "--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    for option in ["--name", "--user", "--out", "--ca", "--pin", "--address"] {
        assert!(text.contains(option), "{option}: {text}");
    }
}

#[test]
fn a_logged_in_device_adds_another_with_device_add() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("data")).unwrap();
    std::fs::write(d.join("data/sigil.toml"), CONFIG).unwrap();
    std::fs::write(d.join("pw"), "open sesame\n").unwrap();
    // Alice's laptop: made and registered by the operator.
    let made = sigil(
        d,
        &[
            "cert",
            "new",
            "alice@localhost",
            "--register",
            "--name",
            "laptop",
            "--p12-password-file",
            "pw",
            "--config",
            "data/sigil.toml",
        ],
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let (_server, starttls) = serve_starttls(d, "data/sigil.toml");

    let added = sigil(
        d,
        &[
            "device",
            "add",
            "--name",
            "tablet",
            "--as",
            "alice@localhost",
            "--cert",
            "laptop.crt",
            "--key",
            "laptop.key",
            "--address",
            &starttls,
            "--ca",
            "data/server.crt",
        ],
    );
    let text = String::from_utf8_lossy(&added.stdout).into_owned();
    assert!(
        added.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert!(
        text.starts_with("invitation for a new device of alice@localhost (once, until "),
        "{text}"
    );
    let uri = text
        .lines()
        .find_map(|line| line.strip_prefix("uri: "))
        .unwrap_or_else(|| panic!("no uri: {text}"));
    assert!(
        uri.starts_with("xmpp:alice@localhost?register;preauth="),
        "{uri}"
    );
    assert!(text.contains("--name tablet"), "{text}");
    // The QR code, in half blocks.
    assert!(text.contains('█') || text.contains('▀'), "{text}");

    // The tablet joins with it and logs in.
    let joined = sigil(
        d,
        &[
            "device",
            "join",
            uri,
            "--name",
            "tablet",
            "--out",
            "tablet",
            "--p12-password-file",
            "pw",
            "--address",
            &starttls,
            "--ca",
            "data/server.crt",
        ],
    );
    let text = String::from_utf8_lossy(&joined.stdout);
    assert!(
        joined.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&joined.stderr)
    );
    assert!(
        text.contains("Joined alice@localhost as device \"tablet\""),
        "{text}"
    );

    // Both devices are the account's now.
    let listed = sigil(
        d,
        &[
            "cert",
            "list",
            "alice@localhost",
            "--config",
            "data/sigil.toml",
        ],
    );
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("laptop") && listed.contains("tablet"),
        "{listed}"
    );
}

#[test]
fn a_login_that_fails_after_joining_loses_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("data")).unwrap();
    // EXTERNAL is not offered: the device registers, then cannot log in.
    std::fs::write(
        d.join("data/sigil.toml"),
        format!("{CONFIG}[sasl]\nmechanisms = ['SCRAM-SHA-256']\n"),
    )
    .unwrap();
    std::fs::write(d.join("pw"), "open sesame\n").unwrap();
    let added = sigil(
        d,
        &[
            "user",
            "add",
            "bob",
            "--no-password",
            "--config",
            "data/sigil.toml",
        ],
    );
    assert!(added.status.success());
    invite(&d.join("data/sigil.db"), &["lost-token"]);
    let (_server, starttls) = serve_starttls(d, "data/sigil.toml");
    let joined = sigil(
        d,
        &[
            "device",
            "join",
            "xmpp:localhost?register;preauth=lost-token",
            "--name",
            "phone",
            "--user",
            "erin",
            "--out",
            "creds",
            "--p12-password-file",
            "pw",
            "--address",
            &starttls,
            "--ca",
            "data/server.crt",
        ],
    );
    assert!(!joined.status.success());
    let error = String::from_utf8_lossy(&joined.stderr);
    assert!(error.contains("may have joined"), "{error}");
    // The key and certificate it registered are kept, private.
    assert_eq!(mode(&d.join("creds/erin.key")), 0o600);
    let certificate = std::fs::read(d.join("creds/erin.crt")).unwrap();
    let listed = sigil(d, &["cert", "list", "erin", "--config", "data/sigil.toml"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    let fingerprint = sigil_x509::CertificateInfo::parse(&certificate)
        .unwrap()
        .sha256
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    assert!(
        listed.contains("phone")
            && listed
                .to_lowercase()
                .replace(':', "")
                .contains(&fingerprint),
        "{listed}"
    );
}
