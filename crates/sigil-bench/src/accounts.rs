//! Accounts: `prepare` writes them (a CA, one client certificate each,
//! `accounts.txt`); `register-certs` registers their certificates with a
//! server over XEP-0257.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sigil_client::Client;

use crate::ready::Ready;
use crate::report::say;

pub(crate) fn prepare(
    out: &Path,
    users: usize,
    domain: &str,
    prefix: &str,
    password: &str,
) -> Result<(), String> {
    use sigil_x509::generate::{Ca, Options, client_certificate};
    if password.contains(char::is_whitespace) || password.is_empty() {
        return Err("the password must be one word".into());
    }
    let certs = out.join("certs");
    std::fs::create_dir_all(&certs).map_err(|e| format!("{}: {e}", certs.display()))?;
    let options = Options::new(sigil_x509::OffsetDateTime::now_utc());
    let ca = Ca::new("sigil-bench CA", &options).map_err(|e| e.to_string())?;
    let write = |path: PathBuf, data: &[u8]| {
        std::fs::write(&path, data).map_err(|e| format!("{}: {e}", path.display()))
    };
    write(out.join("ca.crt"), ca.issued().certificate_pem().as_bytes())?;
    write(out.join("domain"), domain.as_bytes())?;
    let mut listing = String::new();
    for i in 0..users {
        let name = format!("{prefix}{i}");
        let jid = sigil_x509::Jid::new(&format!("{name}@{domain}")).map_err(|e| e.to_string())?;
        let issued = client_certificate(&[jid], &options, Some(&ca)).map_err(|e| e.to_string())?;
        write(
            certs.join(format!("{name}.crt")),
            issued.certificate_pem().as_bytes(),
        )?;
        write(
            certs.join(format!("{name}.key")),
            issued.key_pem().as_bytes(),
        )?;
        listing.push_str(&format!("{name} {password}\n"));
    }
    write(out.join("accounts.txt"), listing.as_bytes())?;
    say(&format!(
        "wrote {users} accounts for {domain} to {}",
        out.display()
    ));
    Ok(())
}

pub(crate) async fn register_certs(ready: Arc<Ready>) -> Result<(), String> {
    let mut registered = 0usize;
    for (index, account) in ready.accounts.iter().enumerate() {
        let der = sigil_x509::pem_certificates(&account.certificate)
            .map_err(|e| format!("{}: {e}", account.jid))?
            .into_iter()
            .next()
            .ok_or_else(|| format!("{}: no certificate", account.jid))?;
        let mut client = Client::builder(account.jid.clone())
            .address(ready.address)
            .transport(ready.transport)
            .tls(ready.without_certificate.clone())
            .password(ready.password.clone())
            .resource(format!("register{index}"))
            .connect()
            .await
            .map_err(|e| format!("{}: {e}", account.jid))?;
        match sigil_client::saslcert::append(&mut client, "bench", &der, false).await {
            Ok(()) => registered += 1,
            // Registered already by an earlier run.
            Err(sigil_client::Error::Iq(error))
                if error.condition == sigil_client::StanzaCondition::Conflict => {}
            Err(error) => return Err(format!("{}: {error}", account.jid)),
        }
        client.close().await;
    }
    say(&format!(
        "registered {registered} certificates ({} accounts)",
        ready.accounts.len()
    ));
    Ok(())
}
