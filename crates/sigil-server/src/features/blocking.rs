//! XEP-0191 blocking (`urn:xmpp:blocking`): the user's blocklist, and
//! block and unblock, pushed to every resource of the user. The payloads
//! are `sigil_proto::blocking`'s; what a list blocks in routing is in
//! [`crate::blocking`]. The server announces the feature: Converse.js
//! looks for the announcement.

use jid::Jid;
use sigil_proto::blocking::{Block, Blocklist, NS, Unblock};
use sigil_proto::error::{StanzaCondition, StanzaError};
use sigil_proto::random_id;
use sigil_xml::{Element, ns};

use super::{Feature, Handling, IqRequest, Target};
use crate::context::Context;
use crate::state::SessionState;

pub(crate) struct Blocking;

impl Feature for Blocking {
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

    /// The account's last session ended: its list leaves the memory (it
    /// is read again from the store when next needed).
    fn ended(&self, context: &Context, session: &SessionState) {
        if context.routes().sessions(&session.bare).is_empty() {
            context.blocklists.forget(&session.bare);
        }
    }
}

async fn handle(request: IqRequest<'_>) {
    let (context, session, payload) = (request.context, request.session, request.payload);
    let outcome = match (request.kind, payload.name()) {
        ("get", "blocklist") => match crate::blocking::list(context, &session.bare).await {
            Ok(items) => {
                let blocklist = Blocklist {
                    items: items.to_vec(),
                };
                Ok(Some(blocklist.to_element()))
            }
            Err(error) => {
                tracing::error!(%error, "blocklist read failed");
                Err(StanzaError::new(StanzaCondition::InternalServerError))
            }
        },
        ("set", "block") => match Block::from_element(payload) {
            Ok(Block { items }) => change(context, session, items, true).await,
            Err(error) => Err(error.into()),
        },
        ("set", "unblock") => match Unblock::from_element(payload) {
            Ok(Unblock { items }) => change(context, session, items, false).await,
            Err(error) => Err(error.into()),
        },
        _ => Err(StanzaError::new(StanzaCondition::BadRequest)),
    };
    request.answer(outcome);
}

/// Blocks or unblocks `items` (unblocking none unblocks everyone), then
/// tells every resource of the user (XEP-0191 §3.2).
async fn change(
    context: &Context,
    session: &SessionState,
    items: Vec<Jid>,
    block: bool,
) -> Result<Option<Element>, StanzaError> {
    let jids: Vec<String> = items.iter().map(ToString::to_string).collect();
    if block {
        let current = context
            .store
            .blocklist(session.bare.as_str())
            .await
            .map_err(|_| StanzaError::new(StanzaCondition::InternalServerError))?;
        let new = jids.iter().filter(|j| !current.contains(j)).count();
        if current.len() + new > context.limits.max_blocked_jids {
            return Err(StanzaError::with_text(
                StanzaCondition::NotAllowed,
                format!(
                    "a blocklist holds at most {} JIDs",
                    context.limits.max_blocked_jids
                ),
            ));
        }
    }
    let stored = if block {
        context.store.block(session.bare.as_str(), &jids).await
    } else {
        context.store.unblock(session.bare.as_str(), &jids).await
    };
    context.changed(crate::cluster::Cache::Blocklist, &session.bare);
    if stored.is_err() {
        return Err(StanzaError::new(StanzaCondition::InternalServerError));
    }
    let push = if block {
        Block { items }.to_element()
    } else {
        Unblock { items }.to_element()
    };
    for live in context.routes().sessions(&session.bare) {
        let iq = Element::new("iq", ns::CLIENT)
            .with_attribute("type", "set")
            .with_attribute("id", format!("push-{}", random_id()))
            .with_attribute("to", live.id.jid.to_string())
            .with_child(push.clone());
        context.deliver(&live.id, iq);
    }
    Ok(None)
}
