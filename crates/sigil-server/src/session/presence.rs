//! Presence (RFC 6121 §4): broadcast to the roster, probes, directed
//! presence and pending subscription requests.

use std::sync::Arc;

use jid::{BareJid, Jid};
use sigil_store::{Roster, Subscription};
use sigil_xml::{Element, ns};

use super::SessionState;
use super::offline::deliver_offline;
use crate::context::Context;
use crate::roster;
use crate::router::Presence;

pub(super) async fn presence(
    context: &Arc<Context>,
    session: &mut SessionState,
    mut stanza: Element,
    to: Option<Jid>,
) {
    let kind = stanza.attribute("type").map(str::to_owned);
    match (kind.as_deref(), to) {
        (None | Some("unavailable"), None) => {
            if kind.is_none() {
                let priority = stanza
                    .child("priority", ns::CLIENT)
                    .and_then(|p| p.text().trim().parse::<i8>().ok())
                    .unwrap_or(0);
                stanza.remove_attribute("to");
                crate::features::outgoing_presence(context, session, &mut stanza).await;
                let initial = !session.available;
                session.available = true;
                context.routes().set_presence(
                    &session.id(),
                    Some(Presence {
                        priority,
                        stanza: Arc::new(stanza.clone()),
                    }),
                );
                // One read of the roster for all that an initial presence
                // does.
                let roster = context.store.roster(session.bare.as_str()).await.ok();
                broadcast(context, session, &stanza, roster.as_ref());
                if initial {
                    probe(context, session, roster.as_ref());
                    pending_subscriptions(context, session, roster.as_ref());
                    deliver_offline(context, &session.id(), &session.bare).await;
                }
            } else {
                session.available = false;
                context.routes().set_presence(&session.id(), None);
                let roster = context.store.roster(session.bare.as_str()).await.ok();
                broadcast(context, session, &stanza, roster.as_ref());
                for target in std::mem::take(&mut session.directed) {
                    directed(context, &target, &stanza);
                }
            }
        }
        (None | Some("unavailable"), Some(to)) => {
            if kind.is_none() {
                session.directed.insert(to.clone());
            } else {
                session.directed.remove(&to);
            }
            directed(context, &to, &stanza);
        }
        (Some(kind @ ("subscribe" | "subscribed" | "unsubscribe" | "unsubscribed")), Some(to)) => {
            roster::outbound(context, session, kind, &to).await;
        }
        (Some("error"), Some(to)) => directed(context, &to, &stanza),
        // Probes from clients and malformed presence are ignored
        // (RFC 6121 §4.3: probes are server business).
        _ => {}
    }
}

/// Sends a presence to its `to` (full: that session; bare: every
/// available session; a component's address: that component).
pub(super) fn directed(context: &Context, to: &Jid, stanza: &Element) {
    let mut stanza = stanza.clone();
    stanza.set_attribute("to", to.to_string());
    if let Some(domain) = context.component_of(to) {
        return super::component::to_component(context, domain, stanza, None);
    }
    if !context.is_local(to) || to.node().is_none() {
        return;
    }
    match to.clone().try_into_full() {
        Ok(full) => {
            context.deliver_to_full(&full, stanza);
        }
        Err(bare) => {
            context.deliver_to_available(&bare, &stanza);
        }
    }
}

/// Broadcasts the user's presence to subscribed contacts and to the user's
/// own available resources (RFC 6121 §4.2.2, §4.4.2).
pub(super) fn broadcast(
    context: &Context,
    session: &SessionState,
    stanza: &Element,
    roster: Option<&Roster>,
) {
    let mut stanza = stanza.clone();
    stanza.set_attribute("from", session.jid.to_string());
    if let Some(roster) = roster {
        for item in &roster.items {
            if matches!(item.subscription, Subscription::From | Subscription::Both)
                && let Ok(contact) = BareJid::new(&item.jid)
                && contact.domain().as_str() == context.domain
            {
                context.deliver_to_available(&contact, &stanza);
            }
        }
    }
    let id = session.id();
    for own in context.routes().sessions(&session.bare) {
        if own.presence.is_some() || own.id == id {
            let mut copy = stanza.clone();
            copy.set_attribute("to", own.id.jid.to_string());
            context.deliver(&own.id, copy);
        }
    }
}

/// Answers for the contacts the user is subscribed to: their current
/// presence (the probe of RFC 6121 §4.3, done locally).
pub(super) fn probe(context: &Context, session: &SessionState, roster: Option<&Roster>) {
    let id = session.id();
    for item in roster.map(|r| r.items.as_slice()).unwrap_or_default() {
        if !matches!(item.subscription, Subscription::To | Subscription::Both) {
            continue;
        }
        let Ok(contact) = BareJid::new(&item.jid) else {
            continue;
        };
        for other in context.routes().sessions(&contact) {
            if let Some(presence) = other.presence {
                let mut stanza = (*presence.stanza).clone();
                stanza.set_attribute("from", other.id.jid.to_string());
                stanza.set_attribute("to", session.jid.to_string());
                context.deliver(&id, stanza);
            }
        }
    }
    for own in context.routes().sessions(&session.bare) {
        if own.id == id {
            continue;
        }
        if let Some(presence) = own.presence {
            let mut stanza = (*presence.stanza).clone();
            stanza.set_attribute("from", own.id.jid.to_string());
            stanza.set_attribute("to", session.jid.to_string());
            context.deliver(&id, stanza);
        }
    }
}

/// A session that ended without saying so (its node died): those who saw
/// it available hear it left, as if it had sent unavailable presence,
/// unless a newer session has its full JID already.
pub(crate) async fn gone(context: &Context, jid: &jid::FullJid) {
    let account = jid.to_bare();
    if context
        .routes()
        .sessions(&account)
        .iter()
        .any(|session| session.id.jid == *jid)
    {
        return;
    }
    let unavailable = Element::new("presence", ns::CLIENT)
        .with_attribute("type", "unavailable")
        .with_attribute("from", jid.to_string());
    if let Ok(roster) = context.store.roster(account.as_str()).await {
        for item in &roster.items {
            if matches!(item.subscription, Subscription::From | Subscription::Both)
                && let Ok(contact) = BareJid::new(&item.jid)
                && contact.domain().as_str() == context.domain
            {
                context.deliver_to_available(&contact, &unavailable);
            }
        }
    }
    context.deliver_to_available(&account, &unavailable);
}

/// Subscription requests that arrived while the user was away.
pub(super) fn pending_subscriptions(
    context: &Context,
    session: &SessionState,
    roster: Option<&Roster>,
) {
    let items = roster.map(|r| r.items.as_slice()).unwrap_or_default();
    for item in items.iter().filter(|i| i.pending_in) {
        let presence = Element::new("presence", ns::CLIENT)
            .with_attribute("type", "subscribe")
            .with_attribute("from", item.jid.clone())
            .with_attribute("to", session.jid.to_string());
        context.deliver(&session.id(), presence);
    }
}
