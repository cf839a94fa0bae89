//! Interoperability with the OpenSSL command-line tool (Debian's `openssl`,
//! which `scripts/test` installs when missing): the seeds' recipes read back
//! to the right JIDs, and OpenSSL reads what Sigil makes.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use sigil_x509::generate::{self, Ca, KeyType, Options};
use sigil_x509::{CertificateInfo, ClientAuth, Jid, KeyKind, pkcs12};
use time::OffsetDateTime;

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "sigil-x509-{}-{}-{name}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs openssl in `dir`; returns stdout+stderr, panicking on failure.
fn openssl(dir: &Path, args: &[&str]) -> String {
    let (ok, output) = try_openssl(dir, args);
    assert!(ok, "openssl {args:?} failed:\n{output}");
    output
}

fn try_openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command is needed (scripts/test installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn jid(s: &str) -> Jid {
    Jid::new(s).unwrap()
}

/// The first seed's recipe (Openfire blog): `UTF8:` shorthand.
const SEED_OPENFIRE: &str = "\
[req]
prompt = no
x509_extensions = v3_extensions
req_extensions = v3_extensions
distinguished_name = distinguished_name

[v3_extensions]
extendedKeyUsage = clientAuth
keyUsage = digitalSignature,keyEncipherment
basicConstraints = CA:FALSE
subjectAltName = @subject_alternative_name

[subject_alternative_name]
otherName.0 = 1.3.6.1.5.5.7.8.5;UTF8:user01@localhost

[distinguished_name]
commonName = user01@localhost
";

/// The second seed's recipe (Prosody's mod_client_certs): `FORMAT:UTF8,UTF8:`.
const SEED_PROSODY: &str = "\
[req]
prompt = no
x509_extensions = v3_extensions
req_extensions = v3_extensions
distinguished_name = distinguished_name

[v3_extensions]
extendedKeyUsage = clientAuth
keyUsage = digitalSignature,keyEncipherment
basicConstraints = CA:FALSE
subjectAltName = @subject_alternative_name

[subject_alternative_name]
otherName.0 = 1.3.6.1.5.5.7.8.5;FORMAT:UTF8,UTF8:hamlet@shakespeare.lit

[distinguished_name]
commonName = Your Name
emailAddress = hamlet@shakespeare.lit
";

/// Follows a seed's steps: key, request, self-signed certificate.
fn seed_certificate(dir: &Path, config: &str) -> CertificateInfo {
    std::fs::write(dir.join("client.cnf"), config).unwrap();
    // The seeds use 4096-bit keys; 2048 exercises the same code, faster.
    openssl(dir, &["genrsa", "-out", "client.key", "2048"]);
    openssl(
        dir,
        &[
            "req",
            "-key",
            "client.key",
            "-new",
            "-out",
            "client.req",
            "-config",
            "client.cnf",
            "-extensions",
            "v3_extensions",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "365",
            "-in",
            "client.req",
            "-signkey",
            "client.key",
            "-out",
            "client.crt",
            "-extfile",
            "client.cnf",
            "-extensions",
            "v3_extensions",
        ],
    );
    let pem = std::fs::read(dir.join("client.crt")).unwrap();
    CertificateInfo::parse(&pem).unwrap()
}

#[test]
fn the_openfire_seed_recipe_reads_back() {
    let info = seed_certificate(&scratch("openfire"), SEED_OPENFIRE);
    assert_eq!(info.identities, [jid("user01@localhost")]);
    assert!(info.invalid_identities.is_empty());
    assert_eq!(info.client_auth, ClientAuth::Allowed);
    assert_eq!(info.key, KeyKind::Rsa(2048));
    assert_eq!(info.common_names, ["user01@localhost"]);
    assert!(info.self_issued && !info.is_ca);
}

#[test]
fn the_prosody_seed_recipe_reads_back() {
    let info = seed_certificate(&scratch("prosody"), SEED_PROSODY);
    assert_eq!(info.identities, [jid("hamlet@shakespeare.lit")]);
    // Shown, never used to log in.
    assert_eq!(info.common_names, ["Your Name"]);
    assert_eq!(info.email_addresses, ["hamlet@shakespeare.lit"]);
}

#[test]
fn openssl_reads_our_identities_and_fingerprint() {
    let dir = scratch("text");
    let issued = generate::client_certificate(
        &[jid("user01@localhost"), jid("juliet@capulet.lit/balcony")],
        &Options::new(OffsetDateTime::now_utc()),
        None,
    )
    .unwrap();
    std::fs::write(dir.join("ours.crt"), issued.certificate_pem()).unwrap();
    let text = openssl(&dir, &["x509", "-in", "ours.crt", "-noout", "-text"]);
    assert!(
        text.contains("othername: XmppAddr::user01@localhost"),
        "{text}"
    );
    assert!(
        text.contains("othername: XmppAddr::juliet@capulet.lit/balcony"),
        "{text}"
    );
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(text.contains("Digital Signature"), "{text}");

    let fingerprint = openssl(
        &dir,
        &[
            "x509",
            "-in",
            "ours.crt",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    let info = CertificateInfo::from_der(&issued.certificate_der).unwrap();
    assert!(
        fingerprint.contains(&info.sha256_fingerprint()),
        "{fingerprint}"
    );
    let purpose = openssl(&dir, &["x509", "-in", "ours.crt", "-noout", "-purpose"]);
    assert!(purpose.contains("SSL client : Yes"), "{purpose}");
    assert!(purpose.contains("SSL server : No"), "{purpose}");
}

#[test]
fn openssl_3_reads_our_pkcs12_without_legacy() {
    let dir = scratch("p12");
    for key in [KeyType::P256, KeyType::Rsa2048, KeyType::Ed25519] {
        let options = Options {
            key,
            ..Options::new(OffsetDateTime::now_utc())
        };
        let ca = Ca::new("Sigil test CA", &options).unwrap();
        let issued =
            generate::client_certificate(&[jid("user01@localhost")], &options, Some(&ca)).unwrap();
        let bundle = pkcs12::bundle(
            &issued,
            &[ca.issued().certificate_der.clone()],
            "user01",
            "s3cret pass",
        )
        .unwrap();
        std::fs::write(dir.join("user01.p12"), &bundle).unwrap();
        let info = openssl(
            &dir,
            &[
                "pkcs12",
                "-info",
                "-in",
                "user01.p12",
                "-passin",
                "pass:s3cret pass",
                "-noenc",
            ],
        );
        assert!(info.contains("PBES2"), "{key}: {info}");
        assert!(info.contains("AES-256-CBC"), "{key}: {info}");
        assert!(info.contains("MAC: sha256"), "{key}: {info}");
        assert!(info.contains("friendlyName: user01"), "{key}: {info}");
        assert!(
            info.contains("-----BEGIN PRIVATE KEY-----"),
            "{key}: {info}"
        );
        assert_eq!(
            info.matches("-----BEGIN CERTIFICATE-----").count(),
            2,
            "{key}: {info}"
        );
        // The key in the bundle is ours.
        let key_from_bundle = info
            .split("-----BEGIN PRIVATE KEY-----")
            .nth(1)
            .and_then(|rest| rest.split("-----END PRIVATE KEY-----").next())
            .unwrap()
            .split_whitespace()
            .collect::<String>();
        let our_key = issued
            .key_pem()
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect::<String>();
        assert_eq!(key_from_bundle, our_key, "{key}");

        let (ok, output) = try_openssl(
            &dir,
            &[
                "pkcs12",
                "-info",
                "-in",
                "user01.p12",
                "-passin",
                "pass:wrong",
                "-noenc",
            ],
        );
        assert!(!ok, "a wrong password must fail: {output}");
    }
}

#[test]
fn openssl_verifies_a_ca_signed_client_certificate_for_client_auth() {
    let dir = scratch("verify");
    let options = Options::new(OffsetDateTime::now_utc());
    let ca = Ca::new("Sigil test CA", &options).unwrap();
    let client =
        generate::client_certificate(&[jid("romeo@montague.lit")], &options, Some(&ca)).unwrap();
    let server = generate::server_certificate("localhost", &options, Some(&ca)).unwrap();
    std::fs::write(dir.join("ca.crt"), ca.issued().certificate_pem()).unwrap();
    std::fs::write(dir.join("client.crt"), client.certificate_pem()).unwrap();
    std::fs::write(dir.join("server.crt"), server.certificate_pem()).unwrap();

    let output = openssl(
        &dir,
        &[
            "verify",
            "-CAfile",
            "ca.crt",
            "-purpose",
            "sslclient",
            "client.crt",
        ],
    );
    assert!(output.contains("client.crt: OK"), "{output}");
    let purpose = openssl(&dir, &["x509", "-in", "client.crt", "-noout", "-purpose"]);
    assert!(purpose.contains("SSL client : Yes"), "{purpose}");

    let output = openssl(
        &dir,
        &[
            "verify",
            "-CAfile",
            "ca.crt",
            "-purpose",
            "sslserver",
            "server.crt",
        ],
    );
    assert!(output.contains("server.crt: OK"), "{output}");
    // The server certificate is not for clients, nor the client's for servers.
    let (ok, output) = try_openssl(
        &dir,
        &[
            "verify",
            "-CAfile",
            "ca.crt",
            "-purpose",
            "sslclient",
            "server.crt",
        ],
    );
    assert!(!ok, "{output}");
    let (ok, output) = try_openssl(
        &dir,
        &[
            "verify",
            "-CAfile",
            "ca.crt",
            "-purpose",
            "sslserver",
            "client.crt",
        ],
    );
    assert!(!ok, "{output}");
    // Another CA does not vouch for it.
    let other = Ca::new("Another CA", &options).unwrap();
    std::fs::write(dir.join("other.crt"), other.issued().certificate_pem()).unwrap();
    let (ok, output) = try_openssl(&dir, &["verify", "-CAfile", "other.crt", "client.crt"]);
    assert!(!ok, "{output}");
}

#[test]
fn openssl_requests_are_signed_and_weak_rsa_refused() {
    let dir = scratch("csr");
    let ca = Ca::new("Sigil issuing CA", &Options::new(OffsetDateTime::now_utc())).unwrap();
    let sign = |der: &[u8]| {
        ca.sign_client_request(
            der,
            &[jid("alice@example.com")],
            &Options::new(OffsetDateTime::now_utc()),
        )
    };
    for (name, algorithm, bits) in [("ec", "EC", None), ("rsa", "RSA", Some("2048"))] {
        let mut args = vec!["req", "-new", "-newkey"];
        let spec;
        match bits {
            Some(bits) => {
                spec = format!("rsa:{bits}");
                args.push(&spec);
            }
            None => {
                args.extend(["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
            }
        }
        let out = format!("{name}.csr");
        let key = format!("{name}.key");
        args.extend([
            "-noenc",
            "-keyout",
            &key,
            "-subj",
            "/CN=alice",
            "-outform",
            "DER",
            "-out",
            &out,
        ]);
        openssl(&dir, &args);
        let der = std::fs::read(dir.join(&out)).unwrap();
        let signed = sign(&der).unwrap_or_else(|e| panic!("{algorithm}: {e}"));
        let info = CertificateInfo::from_der(&signed).unwrap();
        assert_eq!(info.identities, vec![jid("alice@example.com")]);
    }
    openssl(
        &dir,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:1024",
            "-noenc",
            "-keyout",
            "weak.key",
            "-subj",
            "/CN=alice",
            "-outform",
            "DER",
            "-out",
            "weak.csr",
        ],
    );
    let der = std::fs::read(dir.join("weak.csr")).unwrap();
    let error = sign(&der).unwrap_err().to_string();
    assert!(error.contains("1024 bits"), "{error}");
}
