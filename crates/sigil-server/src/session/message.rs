//! Messages (RFC 6121 §8): to a full JID, to a bare JID (the account's
//! sessions by priority, or offline), to an external component.

use std::sync::Arc;

use jid::{BareJid, FullJid, Jid};
use sigil_proto::error::StanzaCondition;
use sigil_xml::Element;

use super::offline::{deliver_offline, is_stored, store_offline};
use crate::context::Context;
use crate::router::{Receipt, Routes as _, SessionId, SessionMessage, Undelivered};

pub(super) async fn message(
    context: &Arc<Context>,
    stanza: Element,
    to: Option<Jid>,
    receipt: Option<Receipt>,
) {
    let kind = stanza.attribute("type").unwrap_or("normal").to_owned();
    let to = match to {
        Some(to) => to,
        // No `to`: the sender's own bare JID (RFC 6120 §8.1.1.1).
        None => match stanza.attribute("from").and_then(|f| FullJid::new(f).ok()) {
            Some(from) => Jid::from(from.to_bare()),
            None => return,
        },
    };
    if let Some(domain) = context.component_of(&to) {
        return super::component::to_component(context, domain, stanza, receipt);
    }
    if !context.is_local(&to) {
        return context.bounce(&stanza, StanzaCondition::RemoteServerNotFound);
    }
    if to.node().is_none() {
        // Messages to the server itself: nothing handles them.
        if kind != "error" && kind != "headline" {
            context.bounce(&stanza, StanzaCondition::ServiceUnavailable);
        }
        return;
    }
    let account = to.to_bare();
    crate::features::message_in(context, &account, &stanza);
    let to_full = to.resource().is_some();
    let followed = crate::features::follows(&stanza, to_full).then(|| stanza.clone());
    let direct = route(context, stanza, to, &kind, receipt).await;
    if let Some(stanza) = followed {
        crate::features::delivered(context, &account, &stanza, to_full, &direct);
    }
}

/// Routes a message for a local account: the sessions it was queued for.
async fn route(
    context: &Arc<Context>,
    stanza: Element,
    to: Jid,
    kind: &str,
    receipt: Option<Receipt>,
) -> Vec<FullJid> {
    let (stanza, receipt) = match to.clone().try_into_full() {
        Ok(full) => {
            // A session told to end takes nothing more: as if gone.
            let message = match receipt {
                Some(receipt) => SessionMessage::Tracked(Box::new(stanza), receipt),
                None => SessionMessage::Stanza(Box::new(stanza)),
            };
            // Not queued (gone, ending, or a queue so full that its
            // session ends as too slow): the message is the account's.
            let (stanza, receipt) = match context.routes().deliver(&full, message) {
                Ok(()) => return vec![full],
                Err(Undelivered { message, .. }) => match message {
                    SessionMessage::Stanza(stanza) => (*stanza, None),
                    SessionMessage::Tracked(stanza, receipt) => (*stanza, Some(receipt)),
                },
            };
            // RFC 6121 §8.5.3.2: no such resource.
            match kind {
                "groupchat" => {
                    context.bounce(&stanza, StanzaCondition::ServiceUnavailable);
                    return Vec::new();
                }
                "headline" | "error" => return Vec::new(),
                _ => {}
            }
            (stanza, receipt)
        }
        Err(_) => (stanza, receipt),
    };
    to_bare(context, stanza, &to.to_bare(), kind, receipt).await
}

pub(super) async fn to_bare(
    context: &Arc<Context>,
    stanza: Element,
    bare: &BareJid,
    kind: &str,
    receipt: Option<Receipt>,
) -> Vec<FullJid> {
    let sessions: Vec<(SessionId, i8)> = context
        .routes()
        .sessions(bare)
        .into_iter()
        .filter_map(|s| s.presence.map(|p| (s.id, p.priority)))
        .filter(|(_, priority)| *priority >= 0)
        .collect();
    let mut direct = Vec::new();
    match kind {
        "groupchat" => {
            context.bounce(&stanza, StanzaCondition::ServiceUnavailable);
            return direct;
        }
        "headline" => {
            for (session, _) in &sessions {
                if context.send_to(session, stanza.clone(), receipt.clone()) {
                    direct.push(session.jid.clone());
                }
            }
            return direct;
        }
        _ => {}
    }
    if let Some(best) = sessions.iter().map(|(_, p)| *p).max() {
        // chat and normal: every resource with the highest priority.
        for (session, priority) in &sessions {
            if *priority == best && context.send_to(session, stanza.clone(), receipt.clone()) {
                direct.push(session.jid.clone());
            }
        }
        if !direct.is_empty() {
            return direct;
        }
        // Every chosen session ended in the meantime: keep the message.
    }
    if kind == "error" {
        return direct;
    }
    if !context.account_exists(bare).await {
        context.bounce(&stanza, StanzaCondition::ServiceUnavailable);
        return direct;
    }
    if receipt.is_some() && is_stored(context, &stanza, bare) {
        // Still on disk where it came from: dropping the receipt keeps it
        // there, under the same stanza id, for the next login.
        return direct;
    }
    if store_offline(context, stanza, bare).await.is_none() {
        return direct;
    }
    if let Some(receipt) = receipt {
        receipt.done();
    }
    // A resource that became available while this was being stored found
    // nothing then: it gets it now. Each node of a cluster looks among
    // its own sessions (this one may not know of all of them, and two
    // nodes must not both deliver one stored message to one session).
    context.changed_elsewhere(crate::cluster::Cache::Offline, bare);
    offer_stored(context, bare).await;
    direct
}

/// Delivers what is stored for `account` to its available session of the
/// highest priority (not negative) on this node, if it has one there.
pub(crate) async fn offer_stored(context: &Arc<Context>, account: &BareJid) {
    let available = context
        .router
        .sessions(account)
        .into_iter()
        .filter_map(|s| s.presence.map(|p| (s.id, p.priority)))
        .filter(|(_, priority)| *priority >= 0)
        .max_by_key(|(_, priority)| *priority);
    if let Some((session, _)) = available {
        deliver_offline(context, &session, account).await;
    }
}
