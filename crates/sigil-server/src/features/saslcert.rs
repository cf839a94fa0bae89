//! XEP-0257 (`urn:xmpp:saslcert:1`): users manage the certificates of
//! their devices: list them (with the resources logged in with each),
//! append, disable, revoke. The payloads are `sigil_proto::saslcert`'s;
//! the rules a certificate must meet, and what a revocation ends, are in
//! [`crate::saslcert`] (shared with the command line).

use sigil_proto::error::{StanzaCondition, StanzaError};
use sigil_proto::saslcert::{Append, Disable, Item, Items, NS, Revoke};
use sigil_x509::OffsetDateTime;
use sigil_xml::Element;

use super::{Feature, Handling, IqRequest, Target};
use crate::context::Context;
use crate::saslcert::{Device, add, devices, disable, entry_for, may_manage, revoke};
use crate::state::SessionState;

pub(crate) struct SaslCert;

impl Feature for SaslCert {
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
        Box::pin(handle(request))
    }
}

async fn handle(request: IqRequest<'_>) {
    let (context, session, payload) = (request.context, request.session, request.payload);
    let outcome = match (request.kind, payload.name()) {
        ("get", "items") => items(context, session).await.map(Some),
        ("set", "append" | "disable" | "revoke") => match may_manage(session) {
            Ok(()) => change(context, session, payload).await.map(|()| None),
            Err(refused) => Err(refused),
        },
        _ => Err(StanzaError::new(StanzaCondition::BadRequest)),
    };
    request.answer(outcome);
}

/// Append, disable or revoke, for a session that may.
async fn change(
    context: &Context,
    session: &SessionState,
    payload: &Element,
) -> Result<(), StanzaError> {
    match payload.name() {
        "append" => append(context, session, payload).await,
        "disable" => {
            let Disable { name } = Disable::from_element(payload)?;
            disable(context, &session.bare, &name).await
        }
        _ => {
            let Revoke { name } = Revoke::from_element(payload)?;
            revoke(context, &session.bare, &name).await.map(drop)
        }
    }
}

async fn items(context: &Context, session: &SessionState) -> Result<Element, StanzaError> {
    let items = devices(context, &session.bare)
        .await?
        .into_iter()
        .map(|Device { entry, resources, .. }| Item {
            resources,
            name: entry.name,
            der: entry.der,
            disabled: entry.disabled,
            no_cert_management: entry.no_cert_management,
        })
        .collect();
    Ok(Items { items }.to_element())
}

async fn append(
    context: &Context,
    session: &SessionState,
    payload: &Element,
) -> Result<(), StanzaError> {
    let append = Append::from_element(payload)?;
    let entry = entry_for(
        session.bare.as_str(),
        &append.name,
        append.der,
        append.no_cert_management,
        OffsetDateTime::now_utc(),
    )?;
    add(context.store.as_ref(), &context.limits, &entry).await
}
