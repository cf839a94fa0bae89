//! `sigil ca new`, `sigil cert new` and `sigil cert show` as a user runs
//! them, checked with the OpenSSL command-line tool.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use sigil_x509::generate::{self, Options};
use sigil_x509::{CertificateInfo, Jid};
use time::{Duration, OffsetDateTime};

fn scratch(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "sigil-cli-{}-{}-{name}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sigil(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    assert!(!output.status.success(), "should have failed");
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn one_command_makes_key_certificate_and_browser_bundle() {
    let dir = scratch("new");
    let out = ok(&sigil(&dir, &["cert", "new", "user01@localhost"]));
    assert!(out.contains("identity: user01@localhost"), "{out}");
    let password = out
        .lines()
        .find_map(|line| line.strip_prefix("PKCS#12 password: "))
        .unwrap()
        .to_owned();
    assert!(password.len() >= 16);
    for file in ["user01.key", "user01.crt", "user01.p12"] {
        assert!(dir.join(file).exists(), "{file}");
    }
    assert_eq!(mode(&dir.join("user01.key")), 0o600);
    assert_eq!(mode(&dir.join("user01.p12")), 0o600);

    let info = CertificateInfo::parse(&std::fs::read(dir.join("user01.crt")).unwrap()).unwrap();
    assert_eq!(info.identities, [Jid::new("user01@localhost").unwrap()]);
    assert!(out.contains(&info.sha256_fingerprint()));

    let (good, text) = openssl(
        &dir,
        &[
            "pkcs12",
            "-info",
            "-in",
            "user01.p12",
            "-passin",
            &format!("pass:{password}"),
            "-noenc",
        ],
    );
    assert!(good, "{text}");
    assert!(text.contains("AES-256-CBC"), "{text}");
    // The key and certificate match: openssl signs with the key and checks
    // with the certificate's public key.
    std::fs::write(dir.join("msg"), b"hello").unwrap();
    let (good, text) = openssl(
        &dir,
        &[
            "dgst",
            "-sha256",
            "-sign",
            "user01.key",
            "-out",
            "sig",
            "msg",
        ],
    );
    assert!(good, "{text}");
    let (good, text) = openssl(
        &dir,
        &[
            "x509",
            "-in",
            "user01.crt",
            "-pubkey",
            "-noout",
            "-out",
            "pub.pem",
        ],
    );
    assert!(good, "{text}");
    let (good, text) = openssl(
        &dir,
        &[
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "sig",
            "msg",
        ],
    );
    assert!(good && text.contains("Verified OK"), "{text}");
}

#[test]
fn a_ca_signs_and_openssl_verifies_for_client_auth() {
    let dir = scratch("ca");
    let out = ok(&sigil(&dir, &["ca", "new", "ca", "--name", "Example CA"]));
    assert!(out.contains("Example CA"));
    assert_eq!(mode(&dir.join("ca/ca.key")), 0o600);
    std::fs::write(dir.join("pw"), "correct horse\n").unwrap();
    ok(&sigil(
        &dir,
        &[
            "cert",
            "new",
            "romeo@montague.lit/orchard",
            "romeo@montague.lit",
            "--ca",
            "ca",
            "--out",
            "devices",
            "--name",
            "phone",
            "--p12-password-file",
            "pw",
            "--days",
            "30",
            "--key",
            "rsa2048",
        ],
    ));
    let (good, text) = openssl(
        &dir,
        &[
            "verify",
            "-CAfile",
            "ca/ca.crt",
            "-purpose",
            "sslclient",
            "devices/phone.crt",
        ],
    );
    assert!(good && text.contains("devices/phone.crt: OK"), "{text}");
    let (good, text) = openssl(
        &dir,
        &[
            "pkcs12",
            "-info",
            "-in",
            "devices/phone.p12",
            "-passin",
            "pass:correct horse",
            "-noenc",
        ],
    );
    assert!(good, "{text}");
    assert_eq!(
        text.matches("BEGIN CERTIFICATE").count(),
        2,
        "the CA is in the bundle: {text}"
    );

    let json = ok(&sigil(
        &dir,
        &["cert", "show", "--json", "devices/phone.crt"],
    ));
    let document: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        document["identities"],
        serde_json::json!(["romeo@montague.lit/orchard", "romeo@montague.lit"])
    );
    assert_eq!(document["key"], "RSA 2048");
    assert_eq!(document["client_auth"], "allowed");
    assert_eq!(document["validity"], "valid");
    assert_eq!(document["issuer"], "CN=Example CA");
    assert_eq!(document["self_issued"], false);
}

#[test]
fn existing_files_are_never_overwritten_without_force() {
    let dir = scratch("force");
    ok(&sigil(&dir, &["cert", "new", "a@example.org"]));
    let before = std::fs::read(dir.join("a.key")).unwrap();
    let error = stderr(&sigil(&dir, &["cert", "new", "a@example.org"]));
    assert!(error.contains("exists; use --force"), "{error}");
    assert_eq!(std::fs::read(dir.join("a.key")).unwrap(), before);
    ok(&sigil(&dir, &["cert", "new", "a@example.org", "--force"]));
    assert_ne!(std::fs::read(dir.join("a.key")).unwrap(), before);
    assert_eq!(mode(&dir.join("a.key")), 0o600);
    ok(&sigil(&dir, &["ca", "new", "ca"]));
    assert!(stderr(&sigil(&dir, &["ca", "new", "ca"])).contains("ca.crt exists"));
    // Nothing but the six files: no temporary leftovers.
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a.crt", "a.key", "a.p12", "ca"]);
}

#[test]
fn bad_input_gets_a_clear_error() {
    let dir = scratch("bad");
    let error = stderr(&sigil(&dir, &["cert", "new", "@example.org"]));
    assert!(error.contains("invalid JID \"@example.org\""), "{error}");
    let error = stderr(&sigil(&dir, &["cert", "new", "a@b", "--days", "0"]));
    assert!(error.contains("validity of 0 days"), "{error}");
    let error = stderr(&sigil(&dir, &["cert", "new", "a@b", "--ca", "nowhere"]));
    assert!(
        error.contains("cannot read the CA's nowhere/ca.crt"),
        "{error}"
    );
    let error = stderr(&sigil(&dir, &["cert", "new", "a@b", "--name", "../x"]));
    assert!(error.contains("--name"), "{error}");
    std::fs::write(dir.join("empty"), "").unwrap();
    let error = stderr(&sigil(
        &dir,
        &["cert", "new", "a@b", "--p12-password-file", "empty"],
    ));
    assert!(error.contains("is empty"), "{error}");
    let error = stderr(&sigil(&dir, &["cert", "new"]));
    assert!(error.contains("JID"), "{error}");
    let error = stderr(&sigil(&dir, &["cert", "new", "a@b", "--key", "dsa"]));
    assert!(error.contains("p256"), "{error}");
    // Nothing was written by the failures.
    assert!(!dir.join("a.key").exists());

    std::fs::write(dir.join("notes.txt"), "hello").unwrap();
    let error = stderr(&sigil(&dir, &["cert", "show", "notes.txt"]));
    assert!(error.contains("neither PEM"), "{error}");
    let error = stderr(&sigil(&dir, &["cert", "show", "missing.crt"]));
    assert!(error.contains("cannot read missing.crt"), "{error}");
}

#[test]
fn show_reports_expired_certificates_and_missing_identities() {
    let dir = scratch("show");
    let old = Options {
        days: 1,
        ..Options::new(OffsetDateTime::now_utc() - Duration::days(10))
    };
    let expired =
        generate::client_certificate(&[Jid::new("old@example.org").unwrap()], &old, None).unwrap();
    std::fs::write(dir.join("old.crt"), expired.certificate_pem()).unwrap();
    let text = ok(&sigil(&dir, &["cert", "show", "old.crt"]));
    assert!(text.contains("(EXPIRED)"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&sigil(&dir, &["cert", "show", "--json", "old.crt"]))).unwrap();
    assert_eq!(json["validity"], "expired");

    let server = generate::server_certificate(
        "example.org",
        &Options::new(OffsetDateTime::now_utc()),
        None,
    )
    .unwrap();
    std::fs::write(dir.join("server.der"), &server.certificate_der).unwrap();
    let text = ok(&sigil(&dir, &["cert", "show", "server.der"]));
    assert!(
        text.contains("none: this certificate cannot log in"),
        "{text}"
    );
    assert!(text.contains("DNS names: example.org"), "{text}");
    assert!(text.contains("NOT allowed"), "{text}");
}
