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
use crate::saslcert::{add, close_sessions, entry_for, internal};
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
    request.answer(outcome);
}

async fn items(context: &Context, session: &SessionState) -> Result<Element, StanzaError> {
    let entries = context
        .store
        .certificates(session.bare.as_str())
        .await
        .map_err(internal)?;
    let sessions = context.routes().sessions(&session.bare);
    let items = entries
        .into_iter()
        .map(|entry| Item {
            resources: sessions
                .iter()
                .filter(|live| live.fingerprint == Some(entry.fingerprint))
                .map(|live| live.id.jid.resource().to_string())
                .collect(),
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

async fn disable(
    context: &Context,
    session: &SessionState,
    payload: &Element,
) -> Result<(), StanzaError> {
    let Disable { name } = Disable::from_element(payload)?;
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
    let Revoke { name } = Revoke::from_element(payload)?;
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
