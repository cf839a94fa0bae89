//! XEP-0257: users manage the certificates of their devices
//! (`urn:xmpp:saslcert:1`): append, list, disable, revoke.
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

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sigil_proto::error::{StanzaCondition, StanzaError, StreamCondition, StreamError};
use sigil_store::{CertificateEntry, Store, StoreError};
use sigil_x509::{CertificateInfo, OffsetDateTime, Validity};
use sigil_xml::Element;

use crate::config::LimitsConfig;
use crate::context::Context;
use crate::state::SessionState;

/// The XEP-0257 namespace.
pub const NS: &str = "urn:xmpp:saslcert:1";

/// The longest device name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 128;

/// The text sent with the stream error that ends a session whose
/// certificate was revoked.
pub const REVOKED_TEXT: &str = "This client side certificate has been revoked.";

/// Handles an IQ in the XEP-0257 namespace addressed to the user's own
/// account.
pub async fn handle(
    context: &Context,
    session: &SessionState,
    request: &Element,
    payload: &Element,
) {
    let kind = request.attribute("type").unwrap_or_default();
    let result = match (kind, payload.name()) {
        ("get", "items") => items(context, session).await.map(Some),
        ("set", "append" | "disable" | "revoke") if !session.may_manage_certificates() => {
            Err(StanzaError::with_text(
                StanzaCondition::Forbidden,
                "this session logged in with a certificate that may not manage certificates",
            ))
        }
        ("set", "append") => append(context, session, payload).await.map(|()| None),
        ("set", "disable") => disable(context, session, payload).await.map(|()| None),
        ("set", "revoke") => revoke(context, session, payload).await.map(|()| None),
        _ => Err(StanzaError::new(StanzaCondition::BadRequest)),
    };
    match result {
        Ok(payload) => context.deliver(&session.id(), context.iq_result(request, payload)),
        Err(error) => context.deliver(&session.id(), error.reply_to(request)),
    }
}

async fn items(context: &Context, session: &SessionState) -> Result<Element, StanzaError> {
    let entries = context
        .store
        .certificates(session.bare.as_str())
        .await
        .map_err(internal)?;
    let sessions = context.routes().sessions(&session.bare);
    let mut items = Element::new("items", NS);
    for entry in entries {
        let mut users = Element::new("users", NS);
        for live in sessions
            .iter()
            .filter(|s| s.fingerprint == Some(entry.fingerprint))
        {
            users.push_child(
                Element::new("resource", NS).with_text(live.id.jid.resource().to_string()),
            );
        }
        let mut item = Element::new("item", NS)
            .with_child(Element::new("name", NS).with_text(entry.name.clone()))
            .with_child(Element::new("x509cert", NS).with_text(STANDARD.encode(&entry.der)));
        if entry.disabled {
            item.push_child(Element::new("disabled", NS));
        }
        if entry.no_cert_management {
            item.push_child(Element::new("no-cert-management", NS));
        }
        item.push_child(users);
        items.push_child(item);
    }
    Ok(items)
}

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
    match store.add_certificate(entry).await {
        Ok(()) => Ok(()),
        Err(StoreError::Revoked) => Err(revoked_error()),
        Err(StoreError::Conflict(what)) => Err(StanzaError::with_text(
            StanzaCondition::Conflict,
            format!("a certificate with this {what} is already registered"),
        )),
        Err(StoreError::NotFound) => Err(StanzaError::with_text(
            StanzaCondition::ItemNotFound,
            format!("{} has no account", entry.owner),
        )),
        Err(error) => Err(internal(error)),
    }
}

fn revoked_error() -> StanzaError {
    StanzaError::with_text(
        StanzaCondition::NotAllowed,
        "this certificate was revoked for this account; a revocation is final",
    )
}

async fn append(
    context: &Context,
    session: &SessionState,
    payload: &Element,
) -> Result<(), StanzaError> {
    let name = child_text(payload, "name")?;
    let encoded: String = child_text(payload, "x509cert")?
        .split_whitespace()
        .collect();
    let der = STANDARD.decode(encoded.as_bytes()).map_err(|_| {
        StanzaError::with_text(StanzaCondition::BadRequest, "x509cert is not base64")
    })?;
    let no_cert_management = payload.has_child("no-cert-management", NS);
    let entry = entry_for(
        session.bare.as_str(),
        &name,
        der,
        no_cert_management,
        OffsetDateTime::now_utc(),
    )?;
    add(context.store.as_ref(), &context.limits, &entry).await
}

async fn disable(
    context: &Context,
    session: &SessionState,
    payload: &Element,
) -> Result<(), StanzaError> {
    let name = child_text(payload, "name")?;
    match context
        .store
        .disable_certificate(session.bare.as_str(), &name)
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => Err(StanzaError::new(StanzaCondition::ItemNotFound)),
        Err(error) => Err(internal(error)),
    }
}

async fn revoke(
    context: &Context,
    session: &SessionState,
    payload: &Element,
) -> Result<(), StanzaError> {
    let name = child_text(payload, "name")?;
    match context
        .store
        .revoke_certificate(
            session.bare.as_str(),
            &name,
            OffsetDateTime::now_utc().unix_timestamp(),
        )
        .await
    {
        Ok(Some(entry)) => {
            close_sessions(context, &session.bare, &entry.fingerprint);
            Ok(())
        }
        Ok(None) => Err(StanzaError::new(StanzaCondition::ItemNotFound)),
        Err(error) => Err(internal(error)),
    }
}

/// Ends every session of `owner` that logged in with this certificate,
/// parked ones included; returns how many.
pub fn close_sessions(context: &Context, owner: &jid::BareJid, fingerprint: &[u8; 32]) -> usize {
    let error = StreamError::with_text(StreamCondition::NotAuthorized, REVOKED_TEXT);
    context.close_sessions(
        owner,
        crate::context::Ended::Certificate,
        |live| live.fingerprint.as_ref() == Some(fingerprint),
        &error,
    )
}

fn checked_name(name: &str) -> Result<String, StanzaError> {
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

fn child_text(payload: &Element, name: &str) -> Result<String, StanzaError> {
    payload.child(name, NS).map(Element::text).ok_or_else(|| {
        StanzaError::with_text(StanzaCondition::BadRequest, format!("<{name}/> is missing"))
    })
}

fn internal(error: StoreError) -> StanzaError {
    tracing::error!(%error, "certificate store failed");
    StanzaError::new(StanzaCondition::InternalServerError)
}
