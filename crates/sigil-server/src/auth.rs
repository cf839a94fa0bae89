//! The one place a certificate login is decided (XEP-0178, XEP-0257).
//!
//! Every transport hands [`decide`] the client's certificate chain from
//! the TLS handshake and the authzid the client sent. TLS only proved that
//! the client holds the certificate's key; here the certificate's dates,
//! its `id-on-xmppAddr` identities, the account's registered certificates
//! and the configured trust anchors decide, on every login (a resumed TLS
//! session would hand back an old chain without checking it again).
//!
//! # The order of the decision
//!
//! 1. **Identity**: no authzid (or an empty one) names the certificate's
//!    only `id-on-xmppAddr`; an authzid names the one identity equal to
//!    it, of its bare JID, or of the domain when one identity is on it.
//!    Several or no match: `invalid-authzid`; no identity, or none of an
//!    account here: `not-authorized`. The stream then closes (XEP-0178 §2).
//! 2. **Account**: unknown → `not-authorized`, after the CA check a known
//!    account's certificate would get, so neither the answer nor its time
//!    tells which accounts exist.
//! 3. **Revocation**: revoked by the account, or named by a CA's list →
//!    `not-authorized`, before any trust.
//! 4. **Trust**: registered for the account, enabled, and allowing
//!    clientAuth; or, if not registered, chaining to a trusted CA
//!    ([`TrustAnchors`]). A disabled entry is never rescued by a CA.
//! 5. **Dates**: expired → `credentials-expired` (the client may fall back
//!    to a password); not yet valid → `not-authorized`. Trust comes first,
//!    so a certificate that was never trusted learns nothing of its dates.
//! 6. **Account state**: disabled → `account-disabled`, said only now.
//!
//! From 2 on, a refusal leaves the stream open (its `identity` is
//! false). A store error is `temporary-auth-failure`.

use std::sync::Mutex;

use jid::{BareJid, Jid};
use rustls::pki_types::CertificateDer;
use sigil_sasl::Failure;
use sigil_sasl::server::Authzid;
use sigil_x509::{CertificateInfo, OffsetDateTime, Validity};

pub use crate::trust::{AnchorError, Reading, TrustAnchors};

/// How a certificate earned the login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Registered by the account's owner (XEP-0257) under this name.
    Registered {
        /// The device name.
        name: String,
        /// The certificate may not manage certificates.
        no_cert_management: bool,
    },
    /// Chains to a configured trust anchor.
    Anchor,
}

/// A successful certificate login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateLogin {
    /// The account.
    pub account: BareJid,
    /// The identity the login used: a full JID pins the resource.
    pub identity: Jid,
    /// SHA-256 of the certificate's DER.
    pub fingerprint: [u8; 32],
    /// Why it is trusted.
    pub trust: Trust,
    /// How revocation lists name the certificate, and, when it logged
    /// in by CA trust, the chain presented (end entity first): the
    /// session is checked again when the trusted CAs or their lists
    /// change.
    pub revocation_key: sigil_x509::RevocationKey,
    /// See `revocation_key` (empty for a registered certificate).
    pub chain: Box<[CertificateDer<'static>]>,
    /// The certificate is its device's next one, not yet used: this
    /// login makes it the device's certificate
    /// ([`crate::saslcert::promote_login`]).
    pub renewal: bool,
    /// When the device last logged in, as recorded (for a registered
    /// certificate): a login records itself when this is an hour old.
    pub last_login_at: Option<i64>,
}

impl CertificateLogin {
    /// The resource the certificate pins, if its identity is a full JID.
    pub fn pinned_resource(&self) -> Option<String> {
        self.identity.resource().map(|r| r.to_string())
    }

    /// Whether this session may change the account's certificates.
    pub fn may_manage_certificates(&self) -> bool {
        !matches!(
            self.trust,
            Trust::Registered {
                no_cert_management: true,
                ..
            }
        )
    }
}

/// The certificate chain a connection presented, with what is costly to
/// work out from it kept for the connection's next decision: the parsed
/// end-entity certificate, and whether it chains to a trust anchor. A
/// connection decides at most twice (to offer EXTERNAL alone, then at
/// SASL) within its login time; the account and its registered
/// certificates are read from the store every time.
#[derive(Debug)]
pub struct PresentedChain {
    chain: Vec<CertificateDer<'static>>,
    info: std::sync::OnceLock<Option<CertificateInfo>>,
    /// The CA verdict, with the number of the reading that gave it.
    anchored: Mutex<Option<(u64, Result<(), AnchorError>)>>,
}

impl PresentedChain {
    /// The chain as the TLS handshake gave it (end entity first).
    pub fn new(chain: Vec<CertificateDer<'static>>) -> Self {
        Self {
            chain,
            info: std::sync::OnceLock::new(),
            anchored: Mutex::new(None),
        }
    }

    /// The chain.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    fn info(&self) -> Option<&CertificateInfo> {
        self.info
            .get_or_init(|| {
                self.chain
                    .first()
                    .and_then(|der| CertificateInfo::from_der(der).ok())
            })
            .as_ref()
    }

    /// Whether the chain leads to a trusted CA, by this reading (kept
    /// until the reading changes).
    fn anchored(&self, reading: &Reading, now: OffsetDateTime) -> Result<(), AnchorError> {
        let mut anchored = self
            .anchored
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match *anchored {
            Some((generation, verdict)) if generation == reading.generation => verdict,
            _ => {
                let verdict = reading.verify(&self.chain, now);
                *anchored = Some((reading.generation, verdict));
                verdict
            }
        }
    }
}

/// Why a certificate may not log in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// What the client is told.
    pub failure: Failure,
    /// The certificate names no usable identity, or not the one asked
    /// for: XEP-0178 closes the stream. Otherwise it names the account
    /// but may not log in to it, and the client may try another
    /// mechanism on the same stream.
    pub identity: bool,
    /// Why, for the server's log (never sent).
    pub reason: &'static str,
}

impl Refusal {
    fn identity(failure: Failure, reason: &'static str) -> Self {
        Self {
            failure,
            identity: true,
            reason,
        }
    }

    pub(crate) fn account(failure: Failure, reason: &'static str) -> Self {
        Self {
            failure,
            identity: false,
            reason,
        }
    }
}

/// What certificate logins are decided against: the accounts and their
/// certificates, the trusted CAs and their lists, the domain served.
#[derive(Clone, Copy)]
pub struct Grounds<'a> {
    /// The store.
    pub store: &'a dyn sigil_store::Store,
    /// The trusted CAs.
    pub anchors: &'a TrustAnchors,
    /// The domain served.
    pub domain: &'a str,
    /// The subject of the CA that signs joining devices' certificates
    /// (`[auth] issuing_ca`): its certificates log in only while
    /// registered, never by CA trust, even should it be among the
    /// trusted CAs (a replaced or revoked one must not come back).
    pub issuing_ca: Option<&'a str>,
}

/// Decides whether the presented chain may log in with this authzid.
pub async fn decide(
    context: Grounds<'_>,
    presented: &PresentedChain,
    authzid: &Authzid,
    now: OffsetDateTime,
) -> Result<CertificateLogin, Refusal> {
    let reading = context.anchors.reading();
    decide_by(context, &reading, presented, authzid, now).await
}

/// [`decide`] by one reading of the trusted CAs and lists.
async fn decide_by(
    context: Grounds<'_>,
    reading: &Reading,
    presented: &PresentedChain,
    authzid: &Authzid,
    now: OffsetDateTime,
) -> Result<CertificateLogin, Refusal> {
    let info = presented.info().ok_or(Refusal::identity(
        Failure::NotAuthorized,
        "no readable client certificate",
    ))?;
    let identity = select_identity(&info.identities, authzid, context.domain).map_err(|f| {
        Refusal::identity(
            f,
            match f {
                Failure::InvalidAuthzid => "the certificate does not name the account asked for",
                _ => "the certificate names no XMPP address",
            },
        )
    })?;
    if identity.domain().as_str() != context.domain || identity.node().is_none() {
        return Err(Refusal::identity(
            Failure::NotAuthorized,
            "the certificate names no account of this domain",
        ));
    }
    let account = identity.to_bare();
    // The account and the certificate's entry in one read. An unknown
    // account is refused like an untrusted certificate, on a stream that
    // stays open: how a refusal ends tells nothing of which accounts exist.
    let lookup = match context
        .store
        .certificate_lookup(account.as_str(), &info.sha256)
        .await
    {
        Ok(Some(lookup)) => lookup,
        Ok(None) => {
            // The CA check a known account's unregistered certificate gets,
            // so that the time a refusal takes tells nothing either.
            let _ = presented.anchored(reading, now);
            return Err(Refusal::account(Failure::NotAuthorized, "unknown account"));
        }
        Err(error) => {
            tracing::error!(%error, "account lookup failed");
            return Err(Refusal::account(
                Failure::TemporaryAuthFailure,
                "the store failed",
            ));
        }
    };
    if lookup.revoked {
        // Before CA trust: a revocation is final.
        return Err(Refusal::account(
            Failure::NotAuthorized,
            "revoked certificate",
        ));
    }
    // Named by a CA's list: never, registered or not, whatever chain it
    // came with (the CA knows something its owner may not: a stolen key).
    if reading.lists(info) {
        return Err(Refusal::account(
            Failure::NotAuthorized,
            AnchorError::Revoked.reason(),
        ));
    }
    let trust = match lookup.certificate {
        // Registered, but made for something else (say serverAuth only):
        // its owner's word does not widen what its issuer allowed.
        Some(_) if !info.client_auth.permits_client_auth() => {
            return Err(Refusal::account(
                Failure::NotAuthorized,
                "certificate not for client authentication (extendedKeyUsage)",
            ));
        }
        Some(entry) if !entry.disabled => Trust::Registered {
            name: entry.name,
            no_cert_management: entry.no_cert_management,
        },
        // A disabled certificate is not trusted, and not by a CA either.
        Some(_) => {
            return Err(Refusal::account(
                Failure::NotAuthorized,
                "disabled certificate",
            ));
        }
        None if context.issuing_ca == Some(info.issuer.as_str()) => {
            return Err(Refusal::account(
                Failure::NotAuthorized,
                "signed by the issuing CA, but not registered",
            ));
        }
        None => {
            presented
                .anchored(reading, now)
                .map_err(|error| Refusal::account(error.failure(), error.reason()))?;
            Trust::Anchor
        }
    };
    match info.validity_at(now) {
        Validity::Valid => {}
        Validity::Expired => {
            return Err(Refusal::account(
                Failure::CredentialsExpired,
                "expired certificate",
            ));
        }
        Validity::NotYetValid => {
            return Err(Refusal::account(
                Failure::NotAuthorized,
                "certificate not yet valid",
            ));
        }
    }
    if lookup.account_disabled {
        return Err(Refusal::account(
            Failure::AccountDisabled,
            "disabled account",
        ));
    }
    Ok(CertificateLogin {
        account,
        identity,
        fingerprint: info.sha256,
        chain: if trust == Trust::Anchor {
            presented.chain.clone().into()
        } else {
            Box::default()
        },
        trust,
        revocation_key: info.revocation_key.clone(),
        renewal: lookup.renewal,
        last_login_at: lookup.last_login_at,
    })
}

/// The accounts a chain would log in to right now (to offer EXTERNAL
/// alone to such a connection, unless it asks for another account).
pub async fn accounts_logged_in(
    context: Grounds<'_>,
    presented: &PresentedChain,
    now: OffsetDateTime,
) -> Vec<BareJid> {
    let Some(info) = presented.info() else {
        return Vec::new();
    };
    let mut accounts = Vec::new();
    // One reading of the CAs and lists for every identity looked up.
    let reading = context.anchors.reading();
    // A certificate may name many identities; looking up a few is enough
    // to decide what to offer, and bounds the work a stranger can cause.
    for identity in info.identities.iter().take(MAX_OFFER_LOOKUPS) {
        let authzid = Authzid::Value(identity.to_string());
        if let Ok(login) = decide_by(context, &reading, presented, &authzid, now).await
            && !accounts.contains(&login.account)
        {
            accounts.push(login.account);
        }
    }
    accounts
}

/// Identities of one certificate looked up to decide whether to offer
/// EXTERNAL alone.
const MAX_OFFER_LOOKUPS: usize = 4;

/// XEP-0178 with the authzids real clients send: none (or empty) means the
/// only identity; an identity, its bare JID, or the bare domain (when one
/// identity is on it) names that identity.
fn select_identity(identities: &[Jid], authzid: &Authzid, domain: &str) -> Result<Jid, Failure> {
    if identities.is_empty() {
        return Err(Failure::NotAuthorized);
    }
    let Some(value) = authzid.value().filter(|v| !v.is_empty()) else {
        return match identities {
            [only] => Ok(only.clone()),
            _ => Err(Failure::InvalidAuthzid),
        };
    };
    let Ok(requested) = Jid::new(value) else {
        return Err(Failure::InvalidAuthzid);
    };
    let exact: Vec<&Jid> = identities.iter().filter(|id| **id == requested).collect();
    if let [only] = exact.as_slice() {
        return Ok((*only).clone());
    }
    let matching: Vec<&Jid> = if requested.node().is_some() && requested.resource().is_none() {
        identities
            .iter()
            .filter(|id| id.to_bare() == requested.to_bare())
            .collect()
    } else if requested.node().is_none()
        && requested.resource().is_none()
        && requested.domain().as_str() == domain
    {
        identities
            .iter()
            .filter(|id| id.domain() == requested.domain())
            .collect()
    } else {
        Vec::new()
    };
    match matching.as_slice() {
        [only] => Ok((*only).clone()),
        _ => Err(Failure::InvalidAuthzid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jids(list: &[&str]) -> Vec<Jid> {
        list.iter().map(|j| Jid::new(j).unwrap()).collect()
    }

    fn value(v: &str) -> Authzid {
        Authzid::Value(v.into())
    }

    #[test]
    fn authzid_rules() {
        let one = jids(&["juliet@example.org"]);
        let pinned = jids(&["juliet@example.org/balcony"]);
        let two = jids(&["juliet@example.org", "romeo@example.org"]);
        let ok = |ids: &[Jid], a: Authzid| {
            select_identity(ids, &a, "example.org").map(|j| j.to_string())
        };
        assert_eq!(ok(&one, Authzid::Absent).unwrap(), "juliet@example.org");
        assert_eq!(ok(&one, Authzid::Empty).unwrap(), "juliet@example.org");
        assert_eq!(
            ok(&one, value("juliet@example.org")).unwrap(),
            "juliet@example.org"
        );
        assert_eq!(
            ok(&one, value("example.org")).unwrap(),
            "juliet@example.org"
        );
        assert_eq!(
            ok(&one, value("juliet@example.org/phone")),
            Err(Failure::InvalidAuthzid)
        );
        assert_eq!(
            ok(&pinned, value("juliet@example.org")).unwrap(),
            "juliet@example.org/balcony"
        );
        assert_eq!(
            ok(&pinned, value("juliet@example.org/balcony")).unwrap(),
            "juliet@example.org/balcony"
        );
        assert_eq!(ok(&two, Authzid::Absent), Err(Failure::InvalidAuthzid));
        assert_eq!(
            ok(&two, value("romeo@example.org")).unwrap(),
            "romeo@example.org"
        );
        assert_eq!(ok(&two, value("example.org")), Err(Failure::InvalidAuthzid));
        assert_eq!(
            ok(&two, value("nurse@example.org")),
            Err(Failure::InvalidAuthzid)
        );
        assert_eq!(ok(&[], Authzid::Absent), Err(Failure::NotAuthorized));
        assert_eq!(ok(&one, value("not a jid@@")), Err(Failure::InvalidAuthzid));
    }
}
