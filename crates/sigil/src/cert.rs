//! `sigil cert new|show` and `sigil ca new`: what takes several openssl
//! steps, in one command each.
//!
//! `sigil cert new JID…` writes `NAME.key` (PKCS#8, mode 0600), `NAME.crt`
//! and `NAME.p12` (mode 0600), NAME being the first JID's local part (plus
//! `-resource` for a full JID) unless `--name` says otherwise. Files are
//! written through a temporary file and a rename, and never over existing
//! ones without `--force`. Without `--p12-password-file` a random
//! 16-character password is made and printed. `sigil ca new DIR` writes
//! `DIR/ca.crt` and `DIR/ca.key`; `--ca DIR` signs with that CA and puts
//! its certificate in the `.p12` chain.

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sigil_x509::generate::{self, Ca, KeyType, Options};
use sigil_x509::{CertificateInfo, ClientAuth, Jid, Validity, pkcs12};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What `sigil cert new` was asked for.
pub(crate) struct NewCertificate<'a> {
    pub(crate) jids: &'a [String],
    pub(crate) days: u32,
    pub(crate) key: KeyType,
    pub(crate) ca: Option<&'a Path>,
    pub(crate) out: &'a Path,
    pub(crate) name: Option<&'a str>,
    pub(crate) p12_password_file: Option<&'a Path>,
    pub(crate) force: bool,
}

/// `sigil cert new`: returns the file name stem and the certificate's DER.
pub(crate) fn new(request: &NewCertificate<'_>) -> Result<(String, Vec<u8>), String> {
    let jids = request
        .jids
        .iter()
        .map(|text| Jid::new(text).map_err(|e| format!("invalid JID {text:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let first = jids.first().ok_or("give at least one JID")?;
    let name = match request.name {
        Some(name) => checked_name(name)?,
        None => default_name(first),
    };
    let ca = request.ca.map(load_ca).transpose()?;
    let password = match request.p12_password_file {
        Some(file) => read_password(file)?,
        None => fresh_password()?,
    };
    let key_path = request.out.join(format!("{name}.key"));
    let certificate_path = request.out.join(format!("{name}.crt"));
    let bundle_path = request.out.join(format!("{name}.p12"));
    refuse_to_overwrite(&[&key_path, &certificate_path, &bundle_path], request.force)?;

    let options = Options {
        days: request.days,
        key: request.key,
        now: OffsetDateTime::now_utc(),
    };
    let issued =
        generate::client_certificate(&jids, &options, ca.as_ref()).map_err(|e| e.to_string())?;
    let chain: Vec<Vec<u8>> = ca
        .iter()
        .map(|ca| ca.issued().certificate_der.clone())
        .collect();
    let bundle = pkcs12::bundle(&issued, &chain, &name, &password).map_err(|e| e.to_string())?;
    let info = CertificateInfo::from_der(&issued.certificate_der).map_err(|e| e.to_string())?;

    fs::create_dir_all(request.out)
        .map_err(|e| format!("cannot create {}: {e}", request.out.display()))?;
    write_file(&key_path, issued.key_pem().as_bytes(), true)?;
    write_file(
        &certificate_path,
        issued.certificate_pem().as_bytes(),
        false,
    )?;
    write_file(&bundle_path, &bundle, true)?;

    let mut text = String::new();
    let _ = writeln!(text, "Client certificate for {}", first.as_str());
    for jid in &info.identities {
        let _ = writeln!(text, "  identity: {}", jid.as_str());
    }
    let _ = writeln!(text, "  SHA-256 fingerprint: {}", info.sha256_fingerprint());
    let _ = writeln!(
        text,
        "  valid from {} to {}",
        rfc3339(info.not_before),
        rfc3339(info.not_after)
    );
    let _ = writeln!(
        text,
        "  key: {}; signed by {}",
        info.key,
        if info.self_issued {
            "itself"
        } else {
            info.issuer.as_str()
        }
    );
    written(
        &mut text,
        &key_path,
        &certificate_path,
        &bundle_path,
        request
            .p12_password_file
            .is_none()
            .then_some(password.as_str()),
    );
    print(&text)?;
    Ok((name, issued.certificate_der))
}

/// `sigil ca new`.
pub(crate) fn new_ca(
    dir: &Path,
    name: &str,
    days: u32,
    key: KeyType,
    force: bool,
) -> Result<(), String> {
    let certificate_path = dir.join("ca.crt");
    let key_path = dir.join("ca.key");
    refuse_to_overwrite(&[&certificate_path, &key_path], force)?;
    let options = Options {
        days,
        key,
        now: OffsetDateTime::now_utc(),
    };
    let ca = Ca::new(name, &options).map_err(|e| e.to_string())?;
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    write_file(&key_path, ca.issued().key_pem().as_bytes(), true)?;
    write_file(
        &certificate_path,
        ca.issued().certificate_pem().as_bytes(),
        false,
    )?;
    let info =
        CertificateInfo::from_der(&ca.issued().certificate_der).map_err(|e| e.to_string())?;
    print(&format!(
        "CA {name:?}\n  SHA-256 fingerprint: {}\n  valid until {}\nWrote:\n  {} (private key: keep it secret)\n  {}\n",
        info.sha256_fingerprint(),
        rfc3339(info.not_after),
        key_path.display(),
        certificate_path.display(),
    ))
}

/// `sigil cert show`.
pub(crate) fn show(file: &Path, json: bool) -> Result<(), String> {
    let bytes = read_limited(file)?;
    let info = CertificateInfo::parse(&bytes).map_err(|e| format!("{}: {e}", file.display()))?;
    let validity = match info.validity_at(OffsetDateTime::now_utc()) {
        Validity::NotYetValid => "not-yet-valid",
        Validity::Valid => "valid",
        Validity::Expired => "expired",
    };
    let client_auth = match info.client_auth {
        ClientAuth::Allowed => "allowed",
        ClientAuth::NotAllowed => "not-allowed",
        ClientAuth::Unrestricted => "unrestricted",
    };
    if json {
        let document = serde_json::json!({
            "file": file.display().to_string(),
            "identities": info.identities.iter().map(Jid::as_str).collect::<Vec<_>>(),
            "invalid_identities": info.invalid_identities.iter().map(|invalid| serde_json::json!({
                "value": invalid.value,
                "reason": invalid.reason.to_string(),
            })).collect::<Vec<_>>(),
            "dns_names": info.dns_names,
            "not_before": rfc3339(info.not_before),
            "not_after": rfc3339(info.not_after),
            "validity": validity,
            "sha256": info.sha256_fingerprint(),
            "sha1": info.sha1_fingerprint(),
            "key": info.key.to_string(),
            "client_auth": client_auth,
            "is_ca": info.is_ca,
            "self_issued": info.self_issued,
            "subject": info.subject,
            "issuer": info.issuer,
            "common_names": info.common_names,
            "email_addresses": info.email_addresses,
            "serial": info.serial,
        });
        let text = serde_json::to_string_pretty(&document).map_err(|e| e.to_string())?;
        return print(&format!("{text}\n"));
    }

    let mut text = String::new();
    let _ = writeln!(text, "{}", file.display());
    let _ = writeln!(text, "  XMPP identities (id-on-xmppAddr):");
    if info.identities.is_empty() && info.invalid_identities.is_empty() {
        let _ = writeln!(
            text,
            "    none: this certificate cannot log in with SASL EXTERNAL"
        );
    }
    for jid in &info.identities {
        let kind = if jid.is_full() {
            "full JID: pins the resource"
        } else {
            "bare JID"
        };
        let _ = writeln!(text, "    {} ({kind})", jid.as_str());
    }
    for invalid in &info.invalid_identities {
        let _ = writeln!(text, "    UNUSABLE {:?}: {}", invalid.value, invalid.reason);
    }
    if !info.dns_names.is_empty() {
        let _ = writeln!(text, "  DNS names: {}", info.dns_names.join(", "));
    }
    let state = match validity {
        "valid" => "valid now",
        "expired" => "EXPIRED",
        _ => "NOT YET VALID",
    };
    let _ = writeln!(
        text,
        "  validity: {} to {} ({state})",
        rfc3339(info.not_before),
        rfc3339(info.not_after)
    );
    let _ = writeln!(text, "  SHA-256 fingerprint: {}", info.sha256_fingerprint());
    let _ = writeln!(
        text,
        "  SHA-1 fingerprint: {} (display only)",
        info.sha1_fingerprint()
    );
    let _ = writeln!(text, "  key: {}", info.key);
    let purpose = match info.client_auth {
        ClientAuth::Allowed => "allowed (extendedKeyUsage clientAuth)",
        ClientAuth::NotAllowed => "NOT allowed (extendedKeyUsage lacks clientAuth)",
        ClientAuth::Unrestricted => "allowed (no extendedKeyUsage restriction)",
    };
    let _ = writeln!(text, "  client authentication: {purpose}");
    let _ = writeln!(text, "  CA: {}", if info.is_ca { "yes" } else { "no" });
    let _ = writeln!(text, "  subject: {}", info.subject);
    let issuer = if info.self_issued {
        " (self-issued)"
    } else {
        ""
    };
    let _ = writeln!(text, "  issuer: {}{issuer}", info.issuer);
    for cn in &info.common_names {
        let _ = writeln!(
            text,
            "  common name: {cn} (display only, never used to log in)"
        );
    }
    for email in &info.email_addresses {
        let _ = writeln!(
            text,
            "  e-mail: {email} (display only, never used to log in)"
        );
    }
    let _ = writeln!(text, "  serial: {}", info.serial);
    print(&text)
}

pub(crate) fn print(text: &str) -> Result<(), String> {
    io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|e| format!("cannot write: {e}"))
}

pub(crate) fn rfc3339(time: OffsetDateTime) -> String {
    time.format(&Rfc3339).unwrap_or_else(|_| time.to_string())
}

/// The default file stem: the local part (or the domain), plus the
/// resource of a full JID.
pub(crate) fn default_name(jid: &Jid) -> String {
    let mut name = jid.node().map_or_else(
        || jid.domain().as_str().to_owned(),
        |node| node.as_str().to_owned(),
    );
    if let Some(resource) = jid.resource() {
        name.push('-');
        name.push_str(resource.as_str());
    }
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn checked_name(name: &str) -> Result<String, String> {
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\0']) {
        return Err(format!(
            "--name {name:?}: use a plain file name without '/'"
        ));
    }
    Ok(name.to_owned())
}

fn load_ca(dir: &Path) -> Result<Ca, String> {
    let read = |file: &str| -> Result<String, String> {
        let path = dir.join(file);
        fs::read_to_string(&path)
            .map_err(|e| format!("cannot read the CA's {}: {e}", path.display()))
    };
    Ca::from_pem(&read("ca.crt")?, &read("ca.key")?).map_err(|e| format!("{}: {e}", dir.display()))
}

pub(crate) fn read_password(file: &Path) -> Result<String, String> {
    let text = fs::read_to_string(file)
        .map_err(|e| format!("cannot read the password file {}: {e}", file.display()))?;
    let password = text
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end_matches('\r');
    if password.is_empty() {
        return Err(format!("the password file {} is empty", file.display()));
    }
    Ok(password.to_owned())
}

pub(crate) fn fresh_password() -> Result<String, String> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a password: {e}"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

pub(crate) fn refuse_to_overwrite(paths: &[&PathBuf], force: bool) -> Result<(), String> {
    if force {
        return Ok(());
    }
    match paths.iter().find(|path| path.exists()) {
        Some(path) => Err(format!(
            "{} exists; use --force to overwrite it",
            path.display()
        )),
        None => Ok(()),
    }
}

/// Writes through a temporary file and a rename, so a crash never leaves a
/// half-written key; secrets are created with mode 0600.
pub(crate) fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<(), String> {
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temporary = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let error = |e: io::Error| format!("cannot write {}: {e}", path.display());
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if secret { 0o600 } else { 0o644 })
            .open(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result.map_err(error)
}

/// The largest certificate file `show` reads.
const MAX_FILE_LEN: u64 = sigil_x509::MAX_INPUT_LEN as u64;

fn read_limited(file: &Path) -> Result<Vec<u8>, String> {
    let metadata =
        fs::metadata(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    if metadata.len() > MAX_FILE_LEN {
        return Err(format!(
            "{} is {} bytes: too large for a certificate",
            file.display(),
            metadata.len()
        ));
    }
    fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
}

/// Appends what was written: the key, the certificate and the PKCS#12
/// bundle, and the bundle's password when it was made up (`Some`).
pub(crate) fn written(
    text: &mut String,
    key: &Path,
    certificate: &Path,
    bundle: &Path,
    password: Option<&str>,
) {
    use std::fmt::Write as _;
    let _ = writeln!(text, "Wrote:");
    let _ = writeln!(text, "  {} (private key: keep it secret)", key.display());
    let _ = writeln!(text, "  {}", certificate.display());
    let _ = writeln!(
        text,
        "  {} (key and certificate for a browser)",
        bundle.display()
    );
    if let Some(password) = password {
        let _ = writeln!(text, "PKCS#12 password: {password}");
    }
}
