//! Renewal of a device's certificate (`urn:sigil:renew:0`,
//! [`sigil_proto::renew`]): a session that logged in with its device's
//! registered certificate registers the device's next one, made by the
//! device or, from a signing request, by the server's CA (`[auth]
//! issuing_ca`). The next certificate logs in beside the current one
//! until its first login makes it the device's (and ends the sessions of
//! the one it replaces), so a renewing device can always log in.
//!
//! A renewal is of the session's own device only, whatever its
//! `no-cert-management` flag (which keeps it, like its name): a device
//! that may not manage certificates still outlives its first one. A
//! password login or one by CA trust has no device to renew.

use sigil_proto::error::{StanzaCondition, StanzaError};
use sigil_proto::renew::{NS, Renew, Renewed};
use sigil_x509::OffsetDateTime;
use sigil_xml::Element;

use super::{Feature, Handling, IqRequest, Target};
use crate::auth::Trust;
use crate::context::Context;
use crate::state::SessionState;

pub(crate) struct RenewFeature;

impl Feature for RenewFeature {
    fn namespaces(&self) -> &'static [&'static str] {
        &[NS]
    }

    fn target(&self) -> Target {
        Target::Account
    }

    fn elsewhere(&self) -> StanzaCondition {
        StanzaCondition::ServiceUnavailable
    }

    fn server_features(&self) -> &'static [&'static str] {
        &[NS]
    }

    fn iq<'a>(&'a self, request: IqRequest<'a>) -> Handling<'a> {
        Box::pin(async move {
            let outcome = match (request.kind, request.payload.name()) {
                ("set", "renew") => renew(request.context, request.session, request.payload).await,
                _ => Err(StanzaError::new(StanzaCondition::BadRequest)),
            };
            request.answer(outcome);
        })
    }
}

async fn renew(
    context: &Context,
    session: &SessionState,
    payload: &Element,
) -> Result<Option<Element>, StanzaError> {
    let Some((name, no_cert_management, current)) =
        session.login.as_ref().and_then(|login| match &login.trust {
            Trust::Registered {
                name,
                no_cert_management,
            } => Some((name.clone(), *no_cert_management, login.fingerprint)),
            Trust::Anchor => None,
        })
    else {
        return Err(StanzaError::with_text(
            StanzaCondition::NotAllowed,
            "only a session that logged in with its device's registered certificate renews it",
        ));
    };
    let request = Renew::from_element(payload)?;
    let owner = &session.bare;
    let (der, signed) = match request {
        Renew::Certificate(der) => (der, false),
        Renew::SigningRequest(request) => {
            let Some(ca) = &context.issuing_ca else {
                return Err(StanzaError::with_text(
                    StanzaCondition::ServiceUnavailable,
                    "this server signs no certificates: send the new certificate",
                ));
            };
            (ca.sign(&request, owner).await?, true)
        }
    };
    let entry = crate::saslcert::entry_for(
        owner.as_str(),
        &name,
        der,
        no_cert_management,
        OffsetDateTime::now_utc(),
    )?;
    let certificate = signed.then(|| entry.der.clone());
    crate::saslcert::renew(context, &entry, &current).await?;
    tracing::info!(%owner, device = %name, signed, "a device registered its next certificate");
    Ok(certificate.map(|certificate| Renewed { certificate }.to_element()))
}
