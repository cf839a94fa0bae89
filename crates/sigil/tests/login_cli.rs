//! `sigil login` against `sigil serve`: a password login and a certificate
//! login, over STARTTLS and direct TLS.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod process;

use std::process::{Command, Stdio};

use process::{Guard, line_reader, listening};

const CONFIG: &str = "domain = 'localhost'\n[[listener]]\nkind = 'starttls'\naddress = '127.0.0.1:0'\n[[listener]]\nkind = 'direct-tls'\naddress = '127.0.0.1:0'\n";

fn sigil(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sigil"))
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn login_reports_transport_tls_mechanism_and_jid() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("data")).unwrap();
    std::fs::write(d.join("data/sigil.toml"), CONFIG).unwrap();
    std::fs::write(d.join("pw"), "open sesame\n").unwrap();
    assert!(
        sigil(
            d,
            &[
                "user",
                "add",
                "bob",
                "--password-file",
                "pw",
                "--config",
                "data/sigil.toml"
            ]
        )
        .status
        .success()
    );
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

    let mut child = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .current_dir(d)
        .args(["serve", "--config", "data/sigil.toml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = line_reader(child.stdout.take().unwrap());
    let _server = Guard(child);
    let [starttls, direct]: [String; 2] = listening(&lines, &["STARTTLS", "direct TLS"])
        .try_into()
        .unwrap();

    let out = sigil(
        d,
        &[
            "login",
            "bob@localhost",
            "--address",
            &starttls,
            "--password-file",
            "pw",
            "--ca",
            "data/server.crt",
            "--mechanism",
            "SCRAM-SHA-256",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("transport: TCP with STARTTLS"), "{text}");
    assert!(text.contains("TLS: TLSv1_3"), "{text}");
    assert!(text.contains("mechanism: SCRAM-SHA-256"), "{text}");
    assert!(text.contains("path: SASL2 + Bind 2"), "{text}");
    assert!(text.contains("bound: bob@localhost/Sigil~"), "{text}");

    let out = sigil(
        d,
        &[
            "login",
            "alice@localhost",
            "--address",
            &direct,
            "--direct-tls",
            "--cert",
            "laptop.crt",
            "--key",
            "laptop.key",
            "--ca",
            "data/server.crt",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("transport: direct TLS"), "{text}");
    assert!(text.contains("mechanism: EXTERNAL"), "{text}");
    assert!(text.contains("path: SASL2 + Bind 2"), "{text}");
    assert!(text.contains("bound: alice@localhost/"), "{text}");

    // SASL 1 on demand, and an exact resource.
    let out = sigil(
        d,
        &[
            "login",
            "alice@localhost",
            "--address",
            &direct,
            "--direct-tls",
            "--cert",
            "laptop.crt",
            "--key",
            "laptop.key",
            "--ca",
            "data/server.crt",
            "--sasl1",
            "--resource",
            "desk",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("path: SASL\n"), "{text}");
    assert!(text.contains("bound: alice@localhost/desk"), "{text}");

    // Errors say what is wrong.
    let wrong = sigil(
        d,
        &[
            "login",
            "bob@localhost",
            "--address",
            &starttls,
            "--ca",
            "data/server.crt",
        ],
    );
    assert!(!wrong.status.success());
    let no_trust = sigil(
        d,
        &[
            "login",
            "bob@localhost",
            "--address",
            &starttls,
            "--password-file",
            "pw",
        ],
    );
    assert!(
        String::from_utf8_lossy(&no_trust.stderr).contains("--ca FILE or --pin"),
        "{}",
        String::from_utf8_lossy(&no_trust.stderr)
    );
    let bad_pin = sigil(
        d,
        &[
            "login",
            "bob@localhost",
            "--address",
            &starttls,
            "--pin",
            "abc",
        ],
    );
    assert!(String::from_utf8_lossy(&bad_pin.stderr).contains("64 hex digits"));
}
