//! XEP-0191 blocking: users keep a list of JIDs whose stanzas they do not
//! want, and to whom they send nothing.
//!
//! Lists are stored per account (`BlockingStore`) and cached in memory
//! (`blocklists`), replaced when the user changes them, so routing reads
//! no store per stanza. A stanza to a blocked JID gets `not-acceptable`
//! with `<blocked/>`; one from a user to someone who blocks them,
//! `service-unavailable`; presence is dropped silently. At most
//! `limits.max_blocked_jids` per list (`not-allowed` beyond).

use std::sync::Arc;

use jid::{BareJid, Jid};
use sigil_proto::error::{StanzaCondition, StanzaError};
use sigil_proto::random_id;
use sigil_xml::{Element, ns};

pub use crate::blocklists::Blocklists;
use crate::context::Context;
use crate::state::SessionState;

/// The XEP-0191 namespace.
pub const NS: &str = "urn:xmpp:blocking";
/// Where the `<blocked/>` error condition lives.
pub const NS_ERRORS: &str = "urn:xmpp:blocking:errors";

/// The owner's blocklist.
async fn list(context: &Context, owner: &BareJid) -> Arc<Vec<Jid>> {
    if let Some(list) = context.blocklists.cached(owner) {
        return list;
    }
    let stored = context
        .store
        .blocklist(owner.as_str())
        .await
        .unwrap_or_default();
    let parsed = stored.iter().filter_map(|j| Jid::new(j).ok()).collect();
    context.blocklists.put(owner, parsed)
}

/// Whether `owner` blocks `other` (XEP-0191 §3.3 matching: a full JID
/// item matches that resource, a bare JID item every resource of it, a
/// domain item everything from the domain).
pub async fn blocks(context: &Context, owner: &BareJid, other: &Jid) -> bool {
    if owner.domain().as_str() != context.domain {
        return false;
    }
    let list = list(context, owner).await;
    list.iter().any(|item| matches(item, other))
}

fn matches(item: &Jid, other: &Jid) -> bool {
    match (item.node(), item.resource()) {
        (Some(_), Some(_)) => item == other,
        (Some(_), None) => item.to_bare() == other.to_bare(),
        (None, Some(resource)) => {
            item.domain() == other.domain() && other.resource() == Some(resource)
        }
        (None, None) => item.domain() == other.domain(),
    }
}

/// The error for a stanza to a JID the sender blocks.
pub fn blocked_error() -> StanzaError {
    StanzaError::new(StanzaCondition::NotAcceptable)
}

/// Handles an IQ in the blocking namespace for the user's own account.
pub async fn handle(
    context: &Context,
    session: &SessionState,
    request: &Element,
    payload: &Element,
) {
    let kind = request.attribute("type").unwrap_or_default();
    let result = match (kind, payload.name()) {
        ("get", "blocklist") => {
            let mut blocklist = Element::new("blocklist", NS);
            for jid in list(context, &session.bare).await.iter() {
                blocklist
                    .push_child(Element::new("item", NS).with_attribute("jid", jid.to_string()));
            }
            Ok(Some(blocklist))
        }
        ("set", "block" | "unblock") => change(context, session, payload).await.map(|()| None),
        _ => Err(StanzaError::new(StanzaCondition::BadRequest)),
    };
    match result {
        Ok(payload) => context.deliver(&session.id(), context.iq_result(request, payload)),
        Err(error) => context.deliver(&session.id(), error.reply_to(request)),
    }
}

async fn change(
    context: &Context,
    session: &SessionState,
    payload: &Element,
) -> Result<(), StanzaError> {
    let mut jids = Vec::new();
    for item in payload.children().filter(|c| c.is("item", NS)) {
        let jid = item
            .attribute("jid")
            .and_then(|j| Jid::new(j).ok())
            .ok_or_else(|| StanzaError::new(StanzaCondition::JidMalformed))?;
        jids.push(jid.to_string());
    }
    let block = payload.name() == "block";
    if block && jids.is_empty() {
        return Err(StanzaError::with_text(
            StanzaCondition::BadRequest,
            "block at least one JID",
        ));
    }
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
    context.blocklists.forget(&session.bare);
    if stored.is_err() {
        return Err(StanzaError::new(StanzaCondition::InternalServerError));
    }
    // Every resource of the user learns the change (XEP-0191 §3.2).
    let mut push = Element::new(payload.name(), NS);
    for jid in &jids {
        push.push_child(Element::new("item", NS).with_attribute("jid", jid.clone()));
    }
    for live in context.routes().sessions(&session.bare) {
        let iq = Element::new("iq", ns::CLIENT)
            .with_attribute("type", "set")
            .with_attribute("id", format!("push-{}", random_id()))
            .with_attribute("to", live.id.jid.to_string())
            .with_child(push.clone());
        context.deliver(&live.id, iq);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let j = |s: &str| Jid::new(s).unwrap();
        assert!(matches(&j("a@x/r"), &j("a@x/r")));
        assert!(!matches(&j("a@x/r"), &j("a@x/s")));
        assert!(matches(&j("a@x"), &j("a@x/s")));
        assert!(matches(&j("a@x"), &j("a@x")));
        assert!(!matches(&j("a@x"), &j("b@x")));
        assert!(matches(&j("x"), &j("b@x/r")));
        assert!(!matches(&j("x"), &j("b@y")));
        assert!(matches(&j("x/r"), &j("x/r")));
        assert!(!matches(&j("x/r"), &j("x/s")));
    }
}
