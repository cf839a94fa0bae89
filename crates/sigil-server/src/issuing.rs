//! The CA of `[auth] issuing_ca`, which signs the certificate signing
//! requests of devices joining by invitation ([`crate::enroll`]).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use jid::{BareJid, Jid};
use sigil_proto::error::{StanzaCondition, StanzaError};
use sigil_x509::OffsetDateTime;

/// The CA of `[auth] issuing_ca`, which signs the certificate requests
/// of joining devices.
pub struct IssuingCa {
    ca: Arc<sigil_x509::generate::Ca>,
    days: u32,
    subject: String,
}

impl IssuingCa {
    /// Loads `dir/ca.crt` and `dir/ca.key` (which only the server's user
    /// may read), to sign certificates valid for `days`.
    pub fn load(dir: &Path, days: u32) -> Result<Self, String> {
        let key_path = dir.join("ca.key");
        let unreadable = |path: &Path, e: std::io::Error| {
            format!(
                "[auth] issuing_ca: cannot read {}: {e} (make a CA with `sigil ca new {}`)",
                path.display(),
                dir.display()
            )
        };
        let read = |path: &Path| std::fs::read_to_string(path).map_err(|e| unreadable(path, e));
        let mode = std::fs::metadata(&key_path)
            .map_err(|e| unreadable(&key_path, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "[auth] issuing_ca: {} can be read by others (mode {:o}): chmod 600 it",
                key_path.display(),
                mode & 0o777
            ));
        }
        let ca = sigil_x509::generate::Ca::from_pem(&read(&dir.join("ca.crt"))?, &read(&key_path)?)
            .map_err(|e| format!("[auth] issuing_ca {}: {e}", dir.display()))?;
        let subject = sigil_x509::CertificateInfo::from_der(&ca.issued().certificate_der)
            .map_err(|e| format!("[auth] issuing_ca {}: {e}", dir.display()))?
            .subject;
        Ok(Self {
            ca: Arc::new(ca),
            days,
            subject,
        })
    }

    /// The CA's subject, as certificates it signs name their issuer.
    pub(crate) fn subject(&self) -> &str {
        &self.subject
    }

    /// A client certificate for `account` with the key of `request`
    /// (PKCS#10, DER), signed off the async threads.
    pub(crate) async fn sign(
        &self,
        request: &[u8],
        account: &BareJid,
    ) -> Result<Vec<u8>, StanzaError> {
        let ca = self.ca.clone();
        let request = request.to_vec();
        let jid = Jid::from(account.clone());
        let options = sigil_x509::generate::Options {
            days: self.days,
            ..sigil_x509::generate::Options::new(OffsetDateTime::now_utc())
        };
        tokio::task::spawn_blocking(move || ca.sign_client_request(&request, &[jid], &options))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "signing a certificate failed");
                StanzaError::new(StanzaCondition::InternalServerError)
            })?
            .map_err(|e| StanzaError::with_text(StanzaCondition::BadRequest, e.to_string()))
    }
}

impl std::fmt::Debug for IssuingCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuingCa")
            .field("days", &self.days)
            .finish_non_exhaustive()
    }
}
