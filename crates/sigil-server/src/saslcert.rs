//! The rules of the certificates users register for their devices
//! (XEP-0257, whose requests the `saslcert` feature answers; the command
//! line applies the same rules).
//!
//! Append: a parsable certificate with an xmppAddr of the account, not
//! expired, allowing clientAuth (else `not-acceptable`); a name or
//! fingerprint the account has → `conflict`; past
//! `limits.max_certificates_per_account` → `resource-constraint`; a
//! certificate the account revoked → `not-allowed`. Items list, with each
//! certificate, the resources logged in with it. Revoke moves the entry
//! to the account's revocation list for good and ends every session that
//! logged in with it, parked ones included, with `not-authorized` and
//! "This client side certificate has been revoked." Once an account keeps
//! `limits.max_revoked_certificates_per_account` revocations it registers
//! no more certificates (`resource-constraint`), so the list stays bounded
//! while revoking always works. A session that logged in with a
//! `no-cert-management` certificate gets `forbidden` for changes.

use sigil_proto::error::{StanzaCondition, StanzaError, StreamCondition, StreamError};
use sigil_store::{CertificateEntry, Store, StoreError};
use sigil_x509::{CertificateInfo, OffsetDateTime, Validity};

use crate::config::LimitsConfig;
use crate::context::Context;

/// The XEP-0257 namespace.
pub use sigil_proto::saslcert::NS;

/// The longest device name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 128;

/// The text sent with the stream error that ends a session whose
/// certificate was revoked.
pub const REVOKED_TEXT: &str = "This client side certificate has been revoked.";

/// Checks a certificate for an account and makes its store entry.
pub fn entry_for(
    owner: &str,
    name: &str,
    der: Vec<u8>,
    no_cert_management: bool,
    now: OffsetDateTime,
) -> Result<CertificateEntry, StanzaError> {
    let name = checked_name(name)?;
    let info = CertificateInfo::from_der(&der).map_err(|e| {
        StanzaError::with_text(
            StanzaCondition::BadRequest,
            format!("not a certificate: {e}"),
        )
    })?;
    if !info
        .identities
        .iter()
        .any(|id| id.to_bare().as_str() == owner)
    {
        return Err(StanzaError::with_text(
            StanzaCondition::NotAcceptable,
            format!("the certificate has no id-on-xmppAddr for {owner}"),
        ));
    }
    if !info.client_auth.permits_client_auth() {
        return Err(StanzaError::with_text(
            StanzaCondition::NotAcceptable,
            "the certificate's extendedKeyUsage does not allow client authentication",
        ));
    }
    match info.validity_at(now) {
        Validity::Valid | Validity::NotYetValid => {}
        Validity::Expired => {
            return Err(StanzaError::with_text(
                StanzaCondition::NotAcceptable,
                "the certificate has expired",
            ));
        }
    }
    Ok(CertificateEntry {
        owner: owner.to_owned(),
        name,
        fingerprint: info.sha256,
        der,
        no_cert_management,
        disabled: false,
        added_at: now.unix_timestamp(),
    })
}

/// Adds an entry, keeping the per-account caps; a certificate the account
/// revoked is refused (`not-allowed`): a revocation is final.
pub async fn add(
    store: &dyn Store,
    limits: &LimitsConfig,
    entry: &CertificateEntry,
) -> Result<(), StanzaError> {
    within_caps(store, limits, entry).await?;
    match store.add_certificate(entry).await {
        Ok(()) => Ok(()),
        Err(error) => Err(add_error(error, &entry.owner)),
    }
}

/// Whether `entry` may be added to its owner's certificates: the caps of
/// certificates and of revocations per account, and the owner's
/// revocations (a certificate it revoked is `not-allowed`).
pub async fn within_caps(
    store: &dyn Store,
    limits: &LimitsConfig,
    entry: &CertificateEntry,
) -> Result<(), StanzaError> {
    let existing = store.certificates(&entry.owner).await.map_err(internal)?;
    if existing.len() >= limits.max_certificates_per_account {
        return Err(StanzaError::with_text(
            StanzaCondition::ResourceConstraint,
            format!(
                "at most {} certificates per account",
                limits.max_certificates_per_account
            ),
        ));
    }
    let revoked = store
        .revoked_certificates(&entry.owner)
        .await
        .map_err(internal)?;
    if revoked.iter().any(|r| r.fingerprint == entry.fingerprint) {
        return Err(revoked_error());
    }
    if revoked.len() >= limits.max_revoked_certificates_per_account {
        return Err(StanzaError::with_text(
            StanzaCondition::ResourceConstraint,
            format!(
                "this account has revoked {} certificates, the most kept; it registers no more",
                revoked.len()
            ),
        ));
    }
    Ok(())
}

/// What the client is told when adding a certificate of `owner` failed
/// in the store.
pub fn add_error(error: StoreError, owner: &str) -> StanzaError {
    match error {
        StoreError::Revoked => revoked_error(),
        StoreError::Conflict(what) => StanzaError::with_text(
            StanzaCondition::Conflict,
            format!("a certificate with this {what} is already registered"),
        ),
        StoreError::NotFound => StanzaError::with_text(
            StanzaCondition::ItemNotFound,
            format!("{owner} has no account"),
        ),
        error => internal(error),
    }
}

/// Registers `next` as the next certificate of its device, while
/// `replaces` (the renewing session's certificate) is the device's
/// current one ([`sigil_store::CertificateStore::renew_certificate`]).
pub async fn renew(
    context: &Context,
    next: &CertificateEntry,
    replaces: &[u8; 32],
) -> Result<(), StanzaError> {
    match context.store.renew_certificate(next, Some(replaces)).await {
        Ok(()) => Ok(()),
        Err(StoreError::NotFound) => Err(StanzaError::with_text(
            StanzaCondition::ItemNotFound,
            format!(
                "this session's certificate is no longer that of the device {:?}",
                next.name
            ),
        )),
        Err(error) => Err(add_error(error, &next.owner)),
    }
}

fn revoked_error() -> StanzaError {
    StanzaError::with_text(
        StanzaCondition::NotAllowed,
        "this certificate was revoked for this account; a revocation is final",
    )
}

/// Ends every session of `owner` that logged in with this certificate,
/// parked ones included; returns how many.
pub fn close_sessions(context: &Context, owner: &jid::BareJid, fingerprint: &[u8; 32]) -> usize {
    let error = StreamError::with_text(StreamCondition::NotAuthorized, REVOKED_TEXT);
    context.close_sessions(
        owner,
        &crate::router::Closing::Certificate(*fingerprint),
        &error,
    )
}

/// What the sessions of a certificate its device replaced are told.
pub const RENEWED_TEXT: &str = "This device's certificate was renewed: log in with the new one.";

/// Makes the next certificate `fingerprint` of `owner` its device's
/// certificate (its first login), and ends the sessions of the one it
/// replaces: `Ok(false)` if it is no renewal any more (revoked, disabled
/// or replaced by another), `Ok(true)` also when a login under way beside
/// this one made it the device's first.
pub async fn promote(
    context: &Context,
    owner: &jid::BareJid,
    fingerprint: &[u8; 32],
) -> Result<bool, StoreError> {
    // Marked under way until the fence rises after the store change: a
    // certificate login that read the store in between decides again
    // (`decide_login`) instead of being fenced off at its bind for a
    // change it saw. A promotion another login made first raises nothing.
    let _promotion = context.fences.promotion();
    match context
        .store
        .promote_certificate(owner.as_str(), fingerprint)
        .await
    {
        Ok(Some(old)) => {
            // The replaced certificate's sessions end, and its logins
            // under way are fenced off (the login that promoted decides
            // again, after the fence: `connection` does).
            let error = StreamError::with_text(StreamCondition::NotAuthorized, RENEWED_TEXT);
            let ended =
                context.close_sessions(owner, &crate::router::Closing::Certificate(old), &error);
            tracing::info!(%owner, ended, "a renewed certificate logged in: it is the device's now");
            Ok(true)
        }
        // Another login with it may have made it the device's already.
        Ok(None) => match context
            .store
            .certificate_by_fingerprint(owner.as_str(), fingerprint)
            .await
        {
            Ok(Some(entry)) => Ok(!entry.disabled),
            Ok(None) => Ok(false),
            Err(error) => Err(error),
        },
        Err(error) => Err(error),
    }
}

/// Decides a certificate login (and [`promote_login`]s a renewal), as of
/// the fence reading taken just before, which it returns: a change to
/// the account during the decision (a promotion, a revocation) makes it
/// decide again, up to three times, so that the bind is refused only for
/// a change after a decision that could not have seen it.
pub async fn decide_login(
    context: &Context,
    presented: &crate::auth::PresentedChain,
    authzid: &sigil_sasl::server::Authzid,
) -> (
    Result<crate::auth::CertificateLogin, crate::auth::Refusal>,
    u64,
) {
    let mut attempts = 0;
    let mut waits = 0;
    loop {
        attempts += 1;
        let began = context.fences.now();
        let grounds = crate::auth::Grounds {
            store: &*context.store,
            anchors: &context.anchors,
            domain: &context.domain,
            issuing_ca: context.issuing_ca.as_ref().map(|ca| ca.subject()),
        };
        let decision =
            match crate::auth::decide(grounds, presented, authzid, OffsetDateTime::now_utc()).await
            {
                Ok(login) if login.renewal => promote_login(context, login).await,
                decision => decision,
            };
        match &decision {
            // A promotion between its store change and its fence: wait for
            // the fence (at most about 200 ms), then decide again.
            Ok(_) if context.fences.promoting() && waits < 200 => {
                waits += 1;
                attempts -= 1;
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            Ok(login) if attempts < 3 && context.fences.overtaken(&login.account, true, began) => {}
            _ => return (decision, began),
        }
    }
}

/// A login with a device's next certificate: [`promote`]d, it is an
/// ordinary login with the device's certificate; else refused.
pub async fn promote_login(
    context: &Context,
    login: crate::auth::CertificateLogin,
) -> Result<crate::auth::CertificateLogin, crate::auth::Refusal> {
    use sigil_sasl::Failure;
    match promote(context, &login.account, &login.fingerprint).await {
        Ok(true) => Ok(crate::auth::CertificateLogin {
            renewal: false,
            ..login
        }),
        // Revoked, disabled or replaced since it was looked up.
        Ok(false) => Err(crate::auth::Refusal::account(
            Failure::NotAuthorized,
            "the renewal is gone",
        )),
        Err(error) => {
            tracing::error!(%error, "promoting a renewed certificate failed");
            Err(crate::auth::Refusal::account(
                Failure::TemporaryAuthFailure,
                "the store failed",
            ))
        }
    }
}

/// Records, off the login's path, that the device of a registered
/// certificate logged in, when the recorded time is an hour old or none.
pub fn note_login(context: &std::sync::Arc<Context>, login: &crate::auth::CertificateLogin) {
    let crate::auth::Trust::Registered { name, .. } = &login.trust else {
        return;
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    if login.last_login_at.is_some_and(|at| now - at < 3600) {
        return;
    }
    let (store, owner, name) = (
        context.store.clone(),
        login.account.to_string(),
        name.clone(),
    );
    tokio::spawn(async move {
        if let Err(error) = store.record_certificate_login(&owner, &name, now).await {
            tracing::warn!(%error, "recording a device's login failed");
        }
    });
}

/// A registered certificate and the resources logged in with it now.
#[derive(Clone, Debug)]
pub struct Device {
    /// The store's entry.
    pub entry: CertificateEntry,
    /// The resources of the live sessions that logged in with it.
    pub resources: Vec<String>,
    /// When it last logged in (to within an hour), if it has.
    pub last_login: Option<i64>,
    /// A next certificate is registered for it, not used yet (it logs in
    /// too).
    pub renewal_pending: bool,
}

/// The certificates of `owner`, each with the resources logged in with it.
pub async fn devices(context: &Context, owner: &jid::BareJid) -> Result<Vec<Device>, StanzaError> {
    let entries = context
        .store
        .certificates(owner.as_str())
        .await
        .map_err(internal)?;
    let logins = context
        .store
        .certificate_logins(owner.as_str())
        .await
        .map_err(internal)?;
    let renewals = context
        .store
        .certificate_renewals(owner.as_str())
        .await
        .map_err(internal)?;
    let sessions = context.routes().sessions(owner);
    Ok(entries
        .into_iter()
        .map(|entry| Device {
            resources: sessions
                .iter()
                .filter(|live| live.fingerprint == Some(entry.fingerprint))
                .map(|live| live.id.jid.resource().to_string())
                .collect(),
            last_login: logins
                .iter()
                .find(|(name, _)| *name == entry.name)
                .map(|(_, at)| *at),
            renewal_pending: renewals.iter().any(|next| next.name == entry.name),
            entry,
        })
        .collect())
}

/// `forbidden` unless `session` may append, disable and revoke
/// certificates (it did not log in with a `no-cert-management` one).
pub fn may_manage(session: &crate::state::SessionState) -> Result<(), StanzaError> {
    match session.may_manage_certificates() {
        true => Ok(()),
        false => Err(StanzaError::with_text(
            StanzaCondition::Forbidden,
            "this session logged in with a certificate that may not manage certificates",
        )),
    }
}

/// Disables the certificate `name` of `owner`: no new logins with it,
/// live sessions stay. `item-not-found` when there is none.
pub async fn disable(
    context: &Context,
    owner: &jid::BareJid,
    name: &str,
) -> Result<(), StanzaError> {
    match context
        .store
        .disable_certificate(owner.as_str(), name)
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => Err(StanzaError::new(StanzaCondition::ItemNotFound)),
        Err(error) => Err(internal(error)),
    }
}

/// Revokes the certificate `name` of `owner` for good and ends the
/// sessions that logged in with it; returns how many ended.
/// `item-not-found` when there is none.
pub async fn revoke(
    context: &Context,
    owner: &jid::BareJid,
    name: &str,
) -> Result<usize, StanzaError> {
    match context
        .store
        .revoke_certificate(
            owner.as_str(),
            name,
            OffsetDateTime::now_utc().unix_timestamp(),
        )
        .await
    {
        Ok(Some(entry)) => Ok(close_sessions(context, owner, &entry.fingerprint)),
        Ok(None) => Err(StanzaError::new(StanzaCondition::ItemNotFound)),
        Err(error) => Err(internal(error)),
    }
}

/// A device name, trimmed: 1 to [`MAX_NAME_CHARS`] characters, none a
/// control character (else `bad-request`).
pub(crate) fn checked_name(name: &str) -> Result<String, StanzaError> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(StanzaError::with_text(
            StanzaCondition::BadRequest,
            format!("a device name is 1 to {MAX_NAME_CHARS} printable characters"),
        ));
    }
    Ok(name.to_owned())
}

/// A store failure, logged; the client is told `internal-server-error`.
pub(crate) fn internal(error: StoreError) -> StanzaError {
    tracing::error!(%error, "certificate store failed");
    StanzaError::new(StanzaCondition::InternalServerError)
}
