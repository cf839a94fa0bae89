//! Devices that join by invitation (XEP-0401), without a password: the
//! server's answers to what the stream asks before login
//! ([`Registration`]).
//!
//! A token is checked once, when the client presents it (XEP-0445): it
//! must be one the store holds and not expired then. The registration
//! that follows names the device and, for an invitation that fixes no
//! account, the user name; the device's certificate is the one it
//! presented in TLS, checked as an XEP-0257 append is (an xmppAddr of
//! the account, clientAuth, not expired, the per-account caps, not
//! revoked). The store then creates the account (passwordless) or finds
//! it, registers the certificate and deletes the invitation in one
//! transaction, after which the client logs in with EXTERNAL.
//!
//! With `[auth] issuing_ca`, the device may send a certificate signing
//! request instead ([`crate::issuing::IssuingCa`]): the CA signs a certificate for the
//! account with the request's key, that certificate is registered as the
//! device's, and the answer carries it; the device then logs in on a new
//! connection presenting it.
//!
//! Every refusal of a token says the same (`item-not-found`), whether the
//! token never existed, was used, revoked or expired.

use jid::BareJid;
use sigil_proto::error::{StanzaCondition, StanzaError};
use sigil_proto::server::{
    DeviceRegistration, Registration, ServerStream, invalid_token, signed_certificate,
};
use sigil_store::{InviteKind, Redeemed, Redemption, StoreError, invite_token_hash};
use sigil_x509::OffsetDateTime;

use crate::context::Context;
use crate::tls::TlsInfo;

/// Answers a registration request of `stream`, whose connection's TLS
/// gave `tls`.
pub(crate) async fn answer(
    context: &Context,
    stream: &mut ServerStream,
    tls: Option<&TlsInfo>,
    request: Registration,
) {
    match request {
        Registration::Preauth { token } => {
            let now = OffsetDateTime::now_utc().unix_timestamp();
            match context.store.invite(&invite_token_hash(&token)).await {
                Ok(Some(invite)) if invite.expires_at > now => stream.preauth_accepted(now),
                Ok(_) => stream.registration_refused(invalid_token()),
                Err(error) => {
                    tracing::error!(%error, "reading an invitation failed");
                    stream.registration_refused(StanzaError::new(
                        StanzaCondition::InternalServerError,
                    ));
                }
            }
        }
        Registration::Device(device) => match register(context, tls, &device).await {
            Ok((account, redeemed, signed)) => {
                tracing::info!(%account, device = %device.device, ?redeemed, signed = signed.is_some(), "device joined by invitation");
                stream.registered(signed.as_deref().map(signed_certificate));
            }
            Err(error) => stream.registration_refused(error),
        },
    }
}

/// Registers the device: the account it joins, what was done, and the
/// certificate signed for it, if it sent a request.
async fn register(
    context: &Context,
    tls: Option<&TlsInfo>,
    device: &DeviceRegistration,
) -> Result<(BareJid, Redeemed, Option<Vec<u8>>), StanzaError> {
    let token_hash = invite_token_hash(&device.token);
    let invite = match context.store.invite(&token_hash).await {
        Ok(Some(invite)) => invite,
        Ok(None) => return Err(invalid_token()),
        Err(error) => return Err(crate::saslcert::internal(error)),
    };
    let account = account_of(&invite.kind, device.username.as_deref(), &context.domain)?;
    // A name the operator made an administrator is not for an invitation
    // that lets its holder pick any name: whoever took it would run the
    // server's admin commands.
    if matches!(invite.kind, InviteKind::Account { jid: None }) && context.admins.contains(&account)
    {
        return Err(StanzaError::with_text(
            StanzaCondition::NotAllowed,
            format!("{account} is reserved: choose another name"),
        ));
    }
    let signed = match (&device.csr, &context.issuing_ca) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(StanzaError::with_text(
                StanzaCondition::ServiceUnavailable,
                "this server signs no certificates: present the device's own certificate in TLS",
            ));
        }
        (Some(request), Some(ca)) => Some(ca.sign(request, &account).await?),
    };
    let der = match (&signed, tls.and_then(|tls| tls.peer_certificates.first())) {
        (Some(signed), _) => signed.clone(),
        (None, Some(presented)) => presented.to_vec(),
        (None, None) => {
            return Err(StanzaError::with_text(
                StanzaCondition::NotAcceptable,
                "present the device's certificate (naming the account) in TLS",
            ));
        }
    };
    let entry = crate::saslcert::entry_for(
        account.as_str(),
        &device.device,
        der,
        device.no_cert_management,
        OffsetDateTime::now_utc(),
    )?;
    if matches!(invite.kind, InviteKind::Device { .. }) {
        crate::saslcert::within_caps(context.store.as_ref(), &context.limits, &entry).await?;
    }
    let redemption = Redemption {
        account: account.to_string(),
        certificate: entry,
        checked_at: device.checked_at,
    };
    match context.store.redeem_invite(&token_hash, &redemption).await {
        Ok(redeemed) => Ok((account, redeemed, signed)),
        Err(StoreError::NotFound | StoreError::Expired) => Err(invalid_token()),
        Err(StoreError::AlreadyExists) => Err(StanzaError::with_text(
            StanzaCondition::Conflict,
            format!("{account} exists already: choose another name"),
        )),
        Err(error) => Err(crate::saslcert::add_error(error, account.as_str())),
    }
}

/// The account an invitation of `kind` is redeemed for, with the user
/// name the client chose, if any.
fn account_of(
    kind: &InviteKind,
    username: Option<&str>,
    domain: &str,
) -> Result<BareJid, StanzaError> {
    let fixed = match kind {
        InviteKind::Account { jid: Some(jid) } | InviteKind::Device { account: jid } => {
            Some(jid.as_str())
        }
        InviteKind::Account { jid: None } => None,
    };
    match (fixed, username) {
        (Some(fixed), username) => {
            let jid = BareJid::new(fixed)
                .ok()
                .filter(|jid| jid.node().is_some() && jid.domain().as_str() == domain)
                .ok_or_else(|| {
                    tracing::error!(
                        jid = fixed,
                        "an invitation names an account not of this server"
                    );
                    StanzaError::new(StanzaCondition::InternalServerError)
                })?;
            match username {
                Some(name) if jid.node().is_none_or(|node| node.as_str() != name) => {
                    Err(StanzaError::with_text(
                        StanzaCondition::NotAcceptable,
                        format!("this invitation is for {jid}"),
                    ))
                }
                _ => Ok(jid),
            }
        }
        (None, None) => Err(StanzaError::with_text(
            StanzaCondition::NotAcceptable,
            "choose a user name (<username/>)",
        )),
        (None, Some(name)) => {
            let jid = BareJid::new(&format!("{name}@{domain}")).map_err(|_| {
                StanzaError::with_text(StanzaCondition::JidMalformed, "not a valid user name")
            })?;
            // Exactly as given: no prepared form that differs from it, no
            // other domain smuggled in.
            match jid.node() {
                Some(node) if node.as_str() == name && jid.domain().as_str() == domain => Ok(jid),
                _ => Err(StanzaError::with_text(
                    StanzaCondition::JidMalformed,
                    "not a valid user name (lower case, no '@' or '/')",
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_is_the_invitations_or_a_valid_free_name() {
        let domain = "example.com";
        let free = InviteKind::Account { jid: None };
        let fixed = InviteKind::Account {
            jid: Some("bob@example.com".into()),
        };
        let device = InviteKind::Device {
            account: "alice@example.com".into(),
        };
        let ok = |kind, name| account_of(kind, name, domain).map(|jid| jid.to_string());
        assert_eq!(ok(&free, Some("carol")), Ok("carol@example.com".into()));
        assert_eq!(ok(&fixed, None), Ok("bob@example.com".into()));
        assert_eq!(ok(&fixed, Some("bob")), Ok("bob@example.com".into()));
        assert_eq!(ok(&device, None), Ok("alice@example.com".into()));
        let condition = |kind, name| account_of(kind, name, domain).map_err(|e| e.condition);
        assert_eq!(condition(&free, None), Err(StanzaCondition::NotAcceptable));
        assert_eq!(
            condition(&fixed, Some("carol")),
            Err(StanzaCondition::NotAcceptable)
        );
        assert_eq!(
            condition(&device, Some("mallory")),
            Err(StanzaCondition::NotAcceptable)
        );
        let elsewhere = InviteKind::Account {
            jid: Some("bob@elsewhere.example".into()),
        };
        assert_eq!(
            condition(&elsewhere, None),
            Err(StanzaCondition::InternalServerError)
        );
        for bad in ["Carol", "a@b", "x/y", "", "carol@evil.example"] {
            assert_eq!(
                condition(&free, Some(bad)),
                Err(StanzaCondition::JidMalformed),
                "{bad}"
            );
        }
    }
}
