//! `sigil cert import|list|disable|enable|revoke|forget-expired|trust|untrust`
//! and the registration of `sigil cert new --register`: the server's
//! XEP-0257 certificates and trusted CAs, from the command line.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sigil_server::Config;

use sigil_x509::{CertificateInfo, OffsetDateTime};

use crate::serve::ConfigLocation;

/// What to do with the server's certificates.
pub(crate) enum DeviceAction<'a> {
    /// Register a certificate (DER) for an account under a device name.
    Register {
        jid: &'a str,
        name: &'a str,
        der: Vec<u8>,
        no_cert_management: bool,
    },
    List {
        jid: &'a str,
    },
    Disable {
        jid: &'a str,
        name: &'a str,
    },
    Enable {
        jid: &'a str,
        name: &'a str,
    },
    Revoke {
        jid: &'a str,
        name: &'a str,
    },
    ForgetExpired {
        jid: &'a str,
    },
    /// Register the next certificate of a device, which `make` makes
    /// (writing its files) for the account once the device is known.
    Renew {
        jid: &'a str,
        name: &'a str,
        make: &'a dyn Fn(&str) -> Result<Vec<u8>, String>,
    },
    Trust {
        file: &'a Path,
        name: Option<&'a str>,
    },
    Untrust {
        name: &'a str,
    },
}

/// How long past its end date a revoked certificate's revocation may be
/// forgotten.
const FORGET_MARGIN: time::Duration = time::Duration::days(30);

/// Reads a certificate file (PEM or DER) into DER.
pub(crate) fn read_certificate(file: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    if bytes.starts_with(b"-----") {
        let blocks =
            sigil_x509::pem_certificates(&bytes).map_err(|e| format!("{}: {e}", file.display()))?;
        blocks
            .into_iter()
            .next()
            .ok_or_else(|| format!("{}: no CERTIFICATE block", file.display()))
    } else {
        Ok(bytes)
    }
}

pub(crate) fn run(location: &ConfigLocation, action: DeviceAction<'_>) -> Result<(), String> {
    let config = crate::serve::load_config(location)?;
    let base = location.base();
    let mut out = io::stdout().lock();
    if let DeviceAction::Trust { file, name } = &action {
        return trust(&config, &base, file, *name, &mut out);
    }
    if let DeviceAction::Untrust { name } = &action {
        return untrust(&config, &base, name, &mut out);
    }
    crate::serve::runtime()?.block_on(async {
        let store = sigil_server::open_store(&config.storage, &base)
            .await
            .map_err(|e| e.to_string())?;
        let result = run_store(&*store, &config, &base, action, &mut out).await;
        store.close().await;
        result
    })
}

async fn run_store(
    store: &dyn sigil_store::Store,
    config: &Config,
    base: &Path,
    action: DeviceAction<'_>,
    out: &mut impl Write,
) -> Result<(), String> {
    match action {
        DeviceAction::Register {
            jid,
            name,
            der,
            no_cert_management,
        } => {
            let account = crate::serve::account(jid, &config.domain)?;
            if store
                .account(account.as_str())
                .await
                .map_err(|e| e.to_string())?
                .is_none()
            {
                // A passwordless account: the certificate is its only key.
                store
                    .create_account(account.as_str(), &[])
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = writeln!(out, "created the account {account} (no password)");
            }
            let entry = sigil_server::saslcert::entry_for(
                account.as_str(),
                name,
                der,
                no_cert_management,
                OffsetDateTime::now_utc(),
            )
            .map_err(|e| e.text.unwrap_or_else(|| e.condition.to_string()))?;
            match sigil_server::saslcert::add(store, &config.limits, &entry).await {
                Ok(()) => {
                    let _ = writeln!(
                        out,
                        "registered {:?} for {account} (SHA-256 {})",
                        entry.name,
                        hex(&entry.fingerprint)
                    );
                    Ok(())
                }
                Err(error) => Err(format!(
                    "{account}: {}",
                    error.text.unwrap_or_else(|| error.condition.to_string())
                )),
            }
        }
        DeviceAction::List { jid } => {
            let account = crate::serve::account(jid, &config.domain)?;
            let entries = store
                .certificates(account.as_str())
                .await
                .map_err(|e| e.to_string())?;
            let revoked = store
                .revoked_certificates(account.as_str())
                .await
                .map_err(|e| e.to_string())?;
            if entries.is_empty() && revoked.is_empty() {
                let _ = writeln!(out, "{account} has no registered certificates");
            }
            for entry in entries {
                let expires = expiry(&entry.der);
                let mut flags = Vec::new();
                if entry.disabled {
                    flags.push("disabled");
                }
                if entry.no_cert_management {
                    flags.push("no-cert-management");
                }
                let _ = writeln!(
                    out,
                    "{}\t{}\texpires {}{}",
                    entry.name,
                    hex(&entry.fingerprint),
                    expires,
                    if flags.is_empty() {
                        String::new()
                    } else {
                        format!("\t{}", flags.join(","))
                    }
                );
            }
            for entry in revoked {
                let _ = writeln!(
                    out,
                    "{}\t{}\texpires {}\trevoked {}",
                    entry.name,
                    hex(&entry.fingerprint),
                    expiry(&entry.der),
                    rfc3339(entry.revoked_at)
                );
            }
            Ok(())
        }
        DeviceAction::Disable { jid, name } => {
            let account = crate::serve::account(jid, &config.domain)?;
            if store
                .disable_certificate(account.as_str(), name)
                .await
                .map_err(|e| e.to_string())?
            {
                let _ = writeln!(
                    out,
                    "disabled {name:?} of {account}: no new logins with it; live sessions stay"
                );
                Ok(())
            } else {
                Err(format!("{account} has no certificate named {name:?}"))
            }
        }
        DeviceAction::Enable { jid, name } => {
            let account = crate::serve::account(jid, &config.domain)?;
            if store
                .enable_certificate(account.as_str(), name)
                .await
                .map_err(|e| e.to_string())?
            {
                let _ = writeln!(out, "enabled {name:?} of {account}: it logs in again");
                Ok(())
            } else {
                Err(format!(
                    "{account} has no certificate named {name:?} (a revoked one stays revoked)"
                ))
            }
        }
        DeviceAction::Renew { jid, name, make } => {
            let account = crate::serve::account(jid, &config.domain)?;
            let Some(device) = store
                .certificates(account.as_str())
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .find(|entry| entry.name == name)
            else {
                return Err(format!("{account} has no certificate named {name:?}"));
            };
            let der = make(account.as_str())?;
            let entry = sigil_server::saslcert::entry_for(
                account.as_str(),
                name,
                der,
                device.no_cert_management,
                OffsetDateTime::now_utc(),
            )
            .map_err(|e| e.text.unwrap_or_else(|| e.condition.to_string()))?;
            store
                .renew_certificate(&entry, Some(&device.fingerprint))
                .await
                .map_err(|e| format!("the next certificate was not registered: {e}"))?;
            let _ = writeln!(
                out,
                "registered the next certificate of {name:?} for {account} (SHA-256 {}): \
                 it logs in beside the current one, and its first login makes it the device's",
                hex(&entry.fingerprint)
            );
            Ok(())
        }
        DeviceAction::Revoke { jid, name } => {
            let account = crate::serve::account(jid, &config.domain)?;
            let Some(entry) = store
                .revoke_certificate(
                    account.as_str(),
                    name,
                    OffsetDateTime::now_utc().unix_timestamp(),
                )
                .await
                .map_err(|e| e.to_string())?
            else {
                return Err(format!("{account} has no certificate named {name:?}"));
            };
            let _ = writeln!(
                out,
                "revoked {name:?} of {account}: it never logs in to {account} again"
            );
            let socket = base.join(&config.auth.control_socket);
            match sigil_server::control::request_revoke(
                &socket,
                account.as_str(),
                &entry.fingerprint,
            )
            .await
            {
                Some(closed) => {
                    let _ = writeln!(
                        out,
                        "the running server ended {closed} session(s) that used it"
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "no running server answered on {}; it will refuse the certificate at the next login",
                        socket.display()
                    );
                }
            }
            Ok(())
        }
        DeviceAction::ForgetExpired { jid } => {
            let account = crate::serve::account(jid, &config.domain)?;
            let now = OffsetDateTime::now_utc();
            let revoked = store
                .revoked_certificates(account.as_str())
                .await
                .map_err(|e| e.to_string())?;
            // Only what can never log in again: a certificate past its end
            // date by a margin (a server clock set back still refuses it;
            // one that cannot be read stays revoked).
            let expired: Vec<[u8; 32]> = revoked
                .iter()
                .filter(|r| {
                    CertificateInfo::from_der(&r.der)
                        .is_ok_and(|info| info.not_after + FORGET_MARGIN < now)
                })
                .map(|r| r.fingerprint)
                .collect();
            let forgotten = store
                .forget_revocations(account.as_str(), &expired)
                .await
                .map_err(|e| e.to_string())?;
            let _ = writeln!(
                out,
                "forgot {forgotten} revocation(s) of expired certificates of {account}; {} kept",
                (revoked.len() as u64).saturating_sub(forgotten)
            );
            Ok(())
        }
        DeviceAction::Trust { .. } | DeviceAction::Untrust { .. } => Ok(()),
    }
}

fn trusted_dir(config: &Config, base: &Path) -> PathBuf {
    base.join(&config.auth.trusted_cas)
}

fn trust(
    config: &Config,
    base: &Path,
    file: &Path,
    name: Option<&str>,
    out: &mut impl Write,
) -> Result<(), String> {
    let der = read_certificate(file)?;
    let info = CertificateInfo::from_der(&der).map_err(|e| format!("{}: {e}", file.display()))?;
    if !info.is_ca {
        return Err(format!(
            "{} is not a CA certificate (basicConstraints CA:FALSE or missing)",
            file.display()
        ));
    }
    let name = match name {
        Some(name) => name.to_owned(),
        None => file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "ca".into()),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || name.starts_with('.')
    {
        return Err(format!(
            "{name:?}: a trust name is letters, digits, '-', '_' and '.'"
        ));
    }
    let dir = trusted_dir(config, base);
    sigil_server::create_private_dir(&dir)?;
    let path = dir.join(format!("{name}.pem"));
    let pem = pem_encode(&der);
    sigil_server::write_new(&path, pem.as_bytes()).map_err(|e| {
        if path.exists() {
            format!("{name} is already trusted ({})", path.display())
        } else {
            e
        }
    })?;
    let _ = writeln!(
        out,
        "trusted {} as {name}: its client certificates with clientAuth and an xmppAddr may log in",
        info.subject
    );
    Ok(())
}

fn untrust(config: &Config, base: &Path, name: &str, out: &mut impl Write) -> Result<(), String> {
    let path = trusted_dir(config, base).join(format!("{name}.pem"));
    if name.contains('/') || !path.exists() {
        return Err(format!("no trusted CA named {name:?}"));
    }
    std::fs::remove_file(&path).map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
    let _ = writeln!(out, "no longer trusting {name}");
    Ok(())
}

fn pem_encode(der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// When a certificate expires (RFC 3339), or nothing if it cannot be read.
fn expiry(der: &[u8]) -> String {
    CertificateInfo::from_der(der)
        .ok()
        .and_then(|info| {
            info.not_after
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
