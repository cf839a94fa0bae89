//! Renewing the device's certificate before it expires, with no user
//! action and no window where the device cannot log in.
//!
//! [`renew`] makes a new key and certificate for the account and
//! registers it as the device's next certificate, over a session that
//! logged in with the current one (`urn:sigil:renew:0`); when the current
//! certificate was signed by a CA rather than by the device, it sends a
//! signing request for the server's CA instead (and makes its own
//! certificate if the server signs none). The server keeps both until the
//! new one logs in: that login makes it the device's, and the old one
//! stops logging in. [`connect_renewing`] does all of it when it is
//! [`due`]: connects, renews, hands the new credentials to the caller to
//! keep, and logs in with them.
//!
//! ```no_run
//! # async fn run(cert: Vec<u8>, key: Vec<u8>) -> Result<(), sigil_client::Error> {
//! use sigil_client::{Client, renew};
//! let (client, renewal) = renew::connect_renewing(
//!     || Client::builder("alice@example.org"),
//!     &cert,
//!     &key,
//!     &renew::RenewOptions::default(),
//!     |renewed| {
//!         std::fs::write("alice.key", &renewed.key_pem).map_err(|e| e.to_string())?;
//!         std::fs::write("alice.crt", &renewed.certificate_pem).map_err(|e| e.to_string())
//!     },
//! )
//! .await?;
//! # Ok(()) }
//! ```

use std::fmt;

use jid::Jid;
use sigil_proto::error::StanzaCondition;
use sigil_proto::renew::{NS, Renew, Renewed as RenewedPayload};
use sigil_x509::generate::{self, DEFAULT_DAYS, KeyType};
use sigil_x509::{CertificateInfo, OffsetDateTime};
use sigil_xml::Element;

use crate::{Client, ClientBuilder, Error, Iq};

/// How the new certificate is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenewOptions {
    /// The new key's type.
    pub key: KeyType,
    /// The validity of a certificate the device makes itself, in days (a
    /// server that signs decides its own).
    pub days: u32,
    /// [`connect_renewing`] renews even when not [`due`].
    pub always: bool,
}

impl Default for RenewOptions {
    /// A P-256 key, [`DEFAULT_DAYS`], only when due.
    fn default() -> Self {
        Self {
            key: KeyType::default(),
            days: DEFAULT_DAYS,
            always: false,
        }
    }
}

/// A device's new credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Renewed {
    /// The new certificate, PEM.
    pub certificate_pem: String,
    /// Its private key, PKCS#8 PEM: keep it where only the user can read
    /// it.
    pub key_pem: String,
    /// Whether the server's CA signed the certificate.
    pub signed: bool,
    /// When it expires.
    pub not_after: OffsetDateTime,
}

impl fmt::Debug for Renewed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renewed")
            .field("signed", &self.signed)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// What [`connect_renewing`] did about renewal.
#[derive(Debug)]
pub enum Renewal {
    /// More than a third of the certificate's validity is left.
    NotDue,
    /// Renewed: the client logged in with these credentials, which are
    /// the device's from now on.
    Renewed(Renewed),
    /// Renewal was due but failed; the client is logged in with the
    /// current certificate, which still works.
    Failed(Error),
}

/// Whether the certificate (DER) has less than a third of its validity
/// left at `now` (or cannot be read).
pub fn due(certificate_der: &[u8], now: OffsetDateTime) -> bool {
    let Ok(info) = CertificateInfo::from_der(certificate_der) else {
        return true;
    };
    let whole = info.not_after - info.not_before;
    info.not_after - now < whole / 3
}

/// Registers a new certificate as the next one of the device whose
/// current certificate (DER) `client` logged in with; returns the new
/// credentials. The current certificate keeps working until the new one
/// logs in.
pub async fn renew(
    client: &mut Client,
    current_der: &[u8],
    options: &RenewOptions,
) -> Result<Renewed, Error> {
    let account = Jid::from(client.full_jid().to_bare());
    let made = generate::client_certificate(
        std::slice::from_ref(&account),
        &generate::Options {
            days: options.days,
            key: options.key,
            now: OffsetDateTime::now_utc(),
        },
        None,
    )
    .map_err(|e| Error::Config(format!("the new certificate: {e}")))?;
    let ca_signed = CertificateInfo::from_der(current_der).is_ok_and(|info| !info.self_issued);
    if ca_signed {
        let request = made
            .signing_request(&account)
            .map_err(|e| Error::Config(format!("the signing request: {e}")))?;
        match send(client, Renew::SigningRequest(request)).await {
            Ok(Some(payload)) => {
                let signed = RenewedPayload::from_element(&payload)
                    .map_err(|e| Error::Protocol(format!("the signed certificate: {e}")))?;
                let issued = made.with_certificate(signed.certificate).map_err(|e| {
                    Error::Protocol(format!("the certificate the server signed: {e}"))
                })?;
                return renewed(issued.certificate_pem(), issued.key_pem(), true);
            }
            Ok(None) => {
                return Err(Error::Protocol(
                    "the server signed no certificate for the request".into(),
                ));
            }
            // A server that signs none: the device's own will do.
            Err(Error::Iq(error)) if error.condition == StanzaCondition::ServiceUnavailable => {}
            Err(error) => return Err(error),
        }
    }
    send(client, Renew::Certificate(made.certificate_der.clone())).await?;
    renewed(made.certificate_pem(), made.key_pem(), false)
}

/// Connects with the device's certificate and key (PEM) through
/// `builder` (a fresh one each time it is called: how to reach and trust
/// the server, without the certificate), and when the certificate is
/// [`due`] (or [`RenewOptions::always`]), renews it: `keep` gets the new credentials and must store them
/// (an error keeps the current ones), then the client logs in again with
/// them, which makes them the device's. At no point is the device without
/// credentials that log in.
pub async fn connect_renewing(
    builder: impl Fn() -> ClientBuilder,
    certificate_pem: &[u8],
    key_pem: &[u8],
    options: &RenewOptions,
    keep: impl FnOnce(&Renewed) -> Result<(), String>,
) -> Result<(Client, Renewal), Error> {
    let mut client = builder()
        .client_certificate_pem(certificate_pem, key_pem)
        .connect()
        .await?;
    let current = sigil_x509::pem_certificates(certificate_pem)
        .ok()
        .and_then(|certificates| certificates.into_iter().next())
        .unwrap_or_default();
    if !options.always && !due(&current, OffsetDateTime::now_utc()) {
        return Ok((client, Renewal::NotDue));
    }
    let renewed = match renew(&mut client, &current, options).await {
        Ok(renewed) => renewed,
        Err(error) => return Ok((client, Renewal::Failed(error))),
    };
    if let Err(error) = keep(&renewed) {
        return Ok((
            client,
            Renewal::Failed(Error::Config(format!(
                "the new certificate could not be kept: {error}"
            ))),
        ));
    }
    client.close().await;
    let client = builder()
        .client_certificate_pem(
            renewed.certificate_pem.as_bytes(),
            renewed.key_pem.as_bytes(),
        )
        .connect()
        .await?;
    Ok((client, Renewal::Renewed(renewed)))
}

async fn send(client: &mut Client, renew: Renew) -> Result<Option<Element>, Error> {
    let answer = client.iq(Iq::set(None, renew.to_element())).await?;
    Ok(answer.payload.filter(|payload| payload.is("renewed", NS)))
}

fn renewed(certificate_pem: String, key_pem: String, signed: bool) -> Result<Renewed, Error> {
    let not_after = CertificateInfo::parse(certificate_pem.as_bytes())
        .map_err(|e| Error::Protocol(format!("the new certificate: {e}")))?
        .not_after;
    Ok(Renewed {
        certificate_pem,
        key_pem,
        signed,
        not_after,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn days(n: u64) -> std::time::Duration {
        std::time::Duration::from_secs(n * 86_400)
    }

    #[test]
    fn due_once_a_third_of_the_validity_is_left() {
        let now = OffsetDateTime::now_utc();
        let jid = Jid::new("alice@example.org").unwrap();
        let made = |days| {
            generate::client_certificate(
                std::slice::from_ref(&jid),
                &generate::Options {
                    days,
                    ..generate::Options::new(now)
                },
                None,
            )
            .unwrap()
            .certificate_der
        };
        let year = made(365);
        assert!(!due(&year, now));
        assert!(!due(&year, now + days(240)));
        assert!(due(&year, now + days(245)));
        assert!(due(&year, now + days(400)));
        assert!(due(b"not a certificate", now));
    }
}
