//! Renewal from the command line against `sigil serve`: a device whose
//! certificate is due renews it by itself on its next login (`--cert`
//! and `--key` rewritten), `sigil device renew` does it on demand, and
//! `sigil cert renew` makes a device's next certificate for the operator.
//! Each time the new certificate logs in and the old one then does not.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod process;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use process::{ok, serve_starttls};
use sigil_x509::generate::{self, Options};
use sigil_x509::{CertificateInfo, Jid};

const CONFIG: &str =
    "domain = 'localhost'\n[[listener]]\nkind = 'starttls'\naddress = '127.0.0.1:0'\n";

fn sigil(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sigil"))
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn fingerprint(file: &Path) -> String {
    CertificateInfo::parse(&std::fs::read(file).unwrap())
        .unwrap()
        .sha256_fingerprint()
}

#[test]
fn devices_renew_by_themselves_on_demand_and_by_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("data")).unwrap();
    std::fs::write(d.join("data/sigil.toml"), CONFIG).unwrap();
    std::fs::write(d.join("pw"), "p12 password\n").unwrap();
    // A laptop certificate made 300 days ago for a year: due.
    let old = generate::client_certificate(
        &[Jid::new("alice@localhost").unwrap()],
        &Options::new(time::OffsetDateTime::now_utc() - time::Duration::days(300)),
        None,
    )
    .unwrap();
    std::fs::write(d.join("laptop.crt"), old.certificate_pem()).unwrap();
    std::fs::write(d.join("laptop.key"), old.key_pem()).unwrap();
    std::fs::copy(d.join("laptop.crt"), d.join("old.crt")).unwrap();
    std::fs::copy(d.join("laptop.key"), d.join("old.key")).unwrap();
    ok(&sigil(
        d,
        &[
            "user",
            "add",
            "alice",
            "--no-password",
            "--config",
            "data/sigil.toml",
        ],
    ));
    ok(&sigil(
        d,
        &[
            "cert",
            "import",
            "alice",
            "laptop.crt",
            "--name",
            "laptop",
            "--config",
            "data/sigil.toml",
        ],
    ));

    let (_server, starttls) = serve_starttls(d, "data/sigil.toml");
    let login = |cert: &str, key: &str, extra: &[&str]| {
        let mut args = vec![
            "login",
            "alice@localhost",
            "--cert",
            cert,
            "--key",
            key,
            "--address",
            &starttls,
            "--ca",
            "data/server.crt",
        ];
        args.extend_from_slice(extra);
        sigil(d, &args)
    };
    let registered = || {
        String::from_utf8_lossy(
            &sigil(d, &["cert", "list", "alice", "--config", "data/sigil.toml"]).stdout,
        )
        .into_owned()
    };

    // --no-renew leaves a due certificate alone.
    let kept = login("laptop.crt", "laptop.key", &["--no-renew"]);
    ok(&kept);
    assert_eq!(
        fingerprint(&d.join("laptop.crt")),
        fingerprint(&d.join("old.crt"))
    );

    // The next login renews it by itself and logs in with the new one.
    let renewed = login("laptop.crt", "laptop.key", &[]);
    let out = ok(&renewed);
    assert!(out.contains("mechanism: EXTERNAL"), "{out}");
    let said = String::from_utf8_lossy(&renewed.stderr);
    assert!(said.contains("renewed this device's certificate"), "{said}");
    let new = fingerprint(&d.join("laptop.crt"));
    assert_ne!(new, fingerprint(&d.join("old.crt")));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(d.join("laptop.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let list = registered();
    assert!(
        list.contains(&new.replace(':', "").to_lowercase()) || list.contains(&new),
        "{list}"
    );
    // Nothing left beside the files but the private lock file.
    for leftover in ["laptop.key.new", "laptop.crt.new", "laptop.key.old"] {
        assert!(!d.join(leftover).exists(), "{leftover}");
    }
    let lock_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(d.join(".laptop.key.lock"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(lock_mode & 0o777, 0o600);
    // One file for both is refused before anything is sent.
    let both = format!(
        "{}{}",
        std::fs::read_to_string(d.join("laptop.crt")).unwrap(),
        std::fs::read_to_string(d.join("laptop.key")).unwrap()
    );
    std::fs::write(d.join("both.pem"), both).unwrap();
    let refused = login("both.pem", "both.pem", &[]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("one file"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // The old one no longer logs in; the new one does, and is not due.
    assert!(!login("old.crt", "old.key", &[]).status.success());
    let again = login("laptop.crt", "laptop.key", &[]);
    ok(&again);
    assert!(!String::from_utf8_lossy(&again.stderr).contains("renewed"));

    // On demand.
    std::fs::copy(d.join("laptop.crt"), d.join("before.crt")).unwrap();
    std::fs::copy(d.join("laptop.key"), d.join("before.key")).unwrap();
    let on_demand = sigil(
        d,
        &[
            "device",
            "renew",
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
    let out = ok(&on_demand);
    assert!(out.contains("renewed: laptop.crt and laptop.key"), "{out}");
    assert_ne!(
        fingerprint(&d.join("laptop.crt")),
        fingerprint(&d.join("before.crt"))
    );
    assert!(!login("before.crt", "before.key", &[]).status.success());
    ok(&login("laptop.crt", "laptop.key", &[]));

    // By the operator: files for the device, registered as its next one.
    let by_operator = sigil(
        d,
        &[
            "cert",
            "renew",
            "alice",
            "laptop",
            "--out",
            "next",
            "--p12-password-file",
            "pw",
            "--config",
            "data/sigil.toml",
        ],
    );
    let out = ok(&by_operator);
    assert!(
        out.contains("registered the next certificate of \"laptop\""),
        "{out}"
    );
    assert!(d.join("next/laptop.p12").exists());
    // Both log in until the new one has.
    ok(&login("laptop.crt", "laptop.key", &["--no-renew"]));
    ok(&login("next/laptop.crt", "next/laptop.key", &[]));
    assert!(!login("laptop.crt", "laptop.key", &[]).status.success());
    // An unknown device gets no files.
    let unknown = sigil(
        d,
        &[
            "cert",
            "renew",
            "alice",
            "tablet",
            "--out",
            "none",
            "--config",
            "data/sigil.toml",
        ],
    );
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no certificate named \"tablet\""));
    assert!(!d.join("none").exists());
}
