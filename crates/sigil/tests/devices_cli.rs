//! `sigil cert new --register`, `import`, `list`, `disable`, `revoke`,
//! `trust`, `untrust` and `sigil user add --no-password`, as a user runs
//! them against a server's data directory.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod process;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use process::ok;

fn sigil(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sigil"))
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn fails(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/sigil.toml"), "domain = 'localhost'\n").unwrap();
    std::fs::write(dir.path().join("pw"), "p12-password\n").unwrap();
    dir
}

const CONFIG: &str = "data/sigil.toml";

#[test]
fn register_list_disable_revoke() {
    let dir = setup();
    let d = dir.path();
    let made = ok(&sigil(
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
            CONFIG,
        ],
    ));
    assert!(
        made.contains("created the account alice@localhost (no password)"),
        "{made}"
    );
    assert!(
        made.contains("registered \"laptop\" for alice@localhost"),
        "{made}"
    );
    assert!(d.join("laptop.crt").exists() && d.join("laptop.p12").exists());

    // The account exists, without a password.
    assert_eq!(
        ok(&sigil(d, &["user", "list", "--config", CONFIG])),
        "alice@localhost\n"
    );

    // A second device by import, a duplicate name refused.
    ok(&sigil(
        d,
        &[
            "cert",
            "new",
            "alice@localhost/phone",
            "--name",
            "phone",
            "--p12-password-file",
            "pw",
        ],
    ));
    let imported = ok(&sigil(
        d,
        &[
            "cert",
            "import",
            "alice",
            "phone.crt",
            "--name",
            "phone",
            "--no-cert-management",
            "--config",
            CONFIG,
        ],
    ));
    assert!(imported.contains("registered \"phone\""), "{imported}");
    let again = fails(&sigil(
        d,
        &[
            "cert",
            "import",
            "alice",
            "phone.crt",
            "--name",
            "phone2",
            "--config",
            CONFIG,
        ],
    ));
    assert!(again.contains("fingerprint"), "{again}");
    ok(&sigil(
        d,
        &[
            "cert",
            "new",
            "alice@localhost",
            "--name",
            "tablet",
            "--p12-password-file",
            "pw",
        ],
    ));
    let same_name = fails(&sigil(
        d,
        &[
            "cert",
            "import",
            "alice",
            "tablet.crt",
            "--name",
            "laptop",
            "--config",
            CONFIG,
        ],
    ));
    assert!(same_name.contains("name"), "{same_name}");
    // Someone else's certificate is refused for this account.
    ok(&sigil(
        d,
        &[
            "cert",
            "new",
            "bob@localhost",
            "--name",
            "bob",
            "--p12-password-file",
            "pw",
        ],
    ));
    let foreign = fails(&sigil(
        d,
        &[
            "cert", "import", "alice", "bob.crt", "--name", "bob", "--config", CONFIG,
        ],
    ));
    assert!(
        foreign.contains("id-on-xmppAddr for alice@localhost"),
        "{foreign}"
    );
    let missing = fails(&sigil(
        d,
        &[
            "cert", "import", "alice", "nope.crt", "--name", "x", "--config", CONFIG,
        ],
    ));
    assert!(missing.contains("nope.crt"), "{missing}");

    let list = ok(&sigil(d, &["cert", "list", "alice", "--config", CONFIG]));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(
        lines[0].starts_with("laptop\t") && lines[1].starts_with("phone\t"),
        "{list}"
    );
    assert!(lines[1].ends_with("no-cert-management"), "{list}");

    ok(&sigil(
        d,
        &["cert", "disable", "alice", "laptop", "--config", CONFIG],
    ));
    assert!(
        ok(&sigil(d, &["cert", "list", "alice", "--config", CONFIG]))
            .lines()
            .next()
            .unwrap()
            .contains("disabled")
    );
    let enabled = ok(&sigil(
        d,
        &["cert", "enable", "alice", "laptop", "--config", CONFIG],
    ));
    assert!(enabled.contains("enabled \"laptop\""), "{enabled}");
    assert!(
        !ok(&sigil(d, &["cert", "list", "alice", "--config", CONFIG]))
            .lines()
            .next()
            .unwrap()
            .contains("disabled")
    );
    ok(&sigil(
        d,
        &["cert", "disable", "alice", "laptop", "--config", CONFIG],
    ));
    let revoked = ok(&sigil(
        d,
        &["cert", "revoke", "alice", "phone", "--config", CONFIG],
    ));
    assert!(revoked.contains("revoked \"phone\""), "{revoked}");
    assert!(revoked.contains("no running server answered"), "{revoked}");
    // The revoked certificate is listed as revoked, after the others.
    let list = ok(&sigil(d, &["cert", "list", "alice", "--config", CONFIG]));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(lines[0].starts_with("laptop\t"), "{list}");
    assert!(
        lines[1].starts_with("phone\t") && lines[1].contains("\trevoked 20"),
        "{list}"
    );
    // A revocation is final: the same certificate cannot come back.
    let again = fails(&sigil(
        d,
        &[
            "cert",
            "import",
            "alice",
            "phone.crt",
            "--name",
            "phone2",
            "--config",
            CONFIG,
        ],
    ));
    assert!(again.contains("revoked"), "{again}");
    let unknown = fails(&sigil(
        d,
        &["cert", "revoke", "alice", "phone", "--config", CONFIG],
    ));
    assert!(unknown.contains("no certificate named"), "{unknown}");

    // An expired certificate's revocation may be forgotten (it can never
    // log in again); a valid one's stays.
    let expired = sigil_x509::generate::client_certificate(
        &[sigil_x509::Jid::new("alice@localhost").unwrap()],
        &{
            let mut options = sigil_x509::generate::Options::new(
                sigil_x509::OffsetDateTime::now_utc() - time::Duration::days(400),
            );
            options.days = 30;
            options
        },
        None,
    )
    .unwrap();
    let info = sigil_x509::CertificateInfo::from_der(&expired.certificate_der).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async {
            use sigil_store::CertificateStore as _;
            let store = sigil_store::SqliteStore::open(&d.join("data/sigil.db"))
                .await
                .unwrap();
            store
                .add_certificate(&sigil_store::CertificateEntry {
                    owner: "alice@localhost".into(),
                    name: "old".into(),
                    fingerprint: info.sha256,
                    der: expired.certificate_der.clone(),
                    no_cert_management: false,
                    disabled: false,
                    added_at: 0,
                })
                .await
                .unwrap();
            store
                .revoke_certificate("alice@localhost", "old", 1)
                .await
                .unwrap()
                .unwrap();
            store.close().await;
        });
    let listed = ok(&sigil(d, &["cert", "list", "alice", "--config", CONFIG]));
    assert_eq!(listed.matches("\trevoked ").count(), 2, "{listed}");
    let forgot = ok(&sigil(
        d,
        &["cert", "forget-expired", "alice", "--config", CONFIG],
    ));
    assert!(
        forgot
            .contains("forgot 1 revocation(s) of expired certificates of alice@localhost; 1 kept"),
        "{forgot}"
    );
    let listed = ok(&sigil(d, &["cert", "list", "alice", "--config", CONFIG]));
    assert!(!listed.contains("old\t"), "{listed}");
    assert!(listed.contains("phone\t"), "{listed}");
}

#[test]
fn trust_and_untrust_a_ca() {
    let dir = setup();
    let d = dir.path();
    ok(&sigil(d, &["ca", "new", "ca", "--name", "Example CA"]));
    let trusted = ok(&sigil(
        d,
        &[
            "cert",
            "trust",
            "ca/ca.crt",
            "--name",
            "example",
            "--config",
            CONFIG,
        ],
    ));
    assert!(trusted.contains("trusted"), "{trusted}");
    assert!(d.join("data/trusted-cas/example.pem").exists());
    let twice = fails(&sigil(
        d,
        &[
            "cert",
            "trust",
            "ca/ca.crt",
            "--name",
            "example",
            "--config",
            CONFIG,
        ],
    ));
    assert!(twice.contains("already trusted"), "{twice}");
    // A client certificate is not a CA.
    ok(&sigil(
        d,
        &[
            "cert",
            "new",
            "alice@localhost",
            "--name",
            "alice",
            "--p12-password-file",
            "pw",
        ],
    ));
    let not_ca = fails(&sigil(
        d,
        &["cert", "trust", "alice.crt", "--config", CONFIG],
    ));
    assert!(not_ca.contains("not a CA"), "{not_ca}");
    let bad_name = fails(&sigil(
        d,
        &[
            "cert",
            "trust",
            "ca/ca.crt",
            "--name",
            "../evil",
            "--config",
            CONFIG,
        ],
    ));
    assert!(bad_name.contains("trust name"), "{bad_name}");
    ok(&sigil(
        d,
        &["cert", "untrust", "example", "--config", CONFIG],
    ));
    assert!(!d.join("data/trusted-cas/example.pem").exists());
    let gone = fails(&sigil(
        d,
        &["cert", "untrust", "example", "--config", CONFIG],
    ));
    assert!(gone.contains("no trusted CA"), "{gone}");
}

#[test]
fn a_passwordless_account() {
    let dir = setup();
    let d = dir.path();
    let added = ok(&sigil(
        d,
        &["user", "add", "carol", "--no-password", "--config", CONFIG],
    ));
    assert!(added.contains("added carol@localhost"), "{added}");
    let clash = fails(&sigil(
        d,
        &[
            "user",
            "add",
            "dave",
            "--no-password",
            "--password-file",
            "pw",
            "--config",
            CONFIG,
        ],
    ));
    assert!(clash.contains("cannot be used with"), "{clash}");
}

#[test]
fn many_accounts_imported_at_once() {
    let dir = setup();
    let d = dir.path();
    std::fs::write(
        d.join("accounts.txt"),
        "# name [password]\nuser1 secret one\n\nuser2@localhost two\nnopass\n",
    )
    .unwrap();
    let out = ok(&sigil(
        d,
        &["user", "import", "accounts.txt", "--config", CONFIG],
    ));
    assert!(
        out.contains("added 3 accounts (0 existed already)"),
        "{out}"
    );
    let list = ok(&sigil(d, &["user", "list", "--config", CONFIG]));
    for jid in ["user1@localhost", "user2@localhost", "nopass@localhost"] {
        assert!(list.lines().any(|l| l == jid), "{list}");
    }
    // Again: nothing changes.
    let out = ok(&sigil(
        d,
        &["user", "import", "accounts.txt", "--config", CONFIG],
    ));
    assert!(
        out.contains("added 0 accounts (3 existed already)"),
        "{out}"
    );
    // A bad line says where.
    std::fs::write(d.join("bad.txt"), "ok1 pw\nsomeone@other.example pw\n").unwrap();
    let bad = fails(&sigil(
        d,
        &["user", "import", "bad.txt", "--config", CONFIG],
    ));
    assert!(bad.contains("line 2"), "{bad}");
}
