//! The roster and presence subscriptions (RFC 6121 §2–3).

use jid::{BareJid, Jid};
use sigil_proto::error::{StanzaCondition, StanzaError};
use sigil_proto::random_id;
use sigil_store::{RosterItem, Subscription};
use sigil_xml::{Element, ns};

use crate::context::Context;
use crate::state::SessionState;

/// Whether an item shows in the roster. An item that exists only because
/// the contact asked to subscribe (no subscription, no request of ours,
/// no name, no group) is kept as the pending request and shown to the user
/// as a `subscribe` presence instead (RFC 6121 §3.1.3).
pub fn visible(item: &RosterItem) -> bool {
    !(item.subscription == Subscription::None
        && !item.ask
        && item.pending_in
        && item.name.is_none()
        && item.groups.is_empty())
}

fn item_element(item: &RosterItem) -> Element {
    let mut element = Element::new("item", ns::ROSTER)
        .with_attribute("jid", item.jid.clone())
        .with_attribute("subscription", item.subscription.as_str());
    if let Some(name) = &item.name {
        element.set_attribute("name", name.clone());
    }
    if item.ask {
        element.set_attribute("ask", "subscribe");
    }
    for group in &item.groups {
        element.push_child(Element::new("group", ns::ROSTER).with_text(group.clone()));
    }
    element
}

/// Answers a roster get. With roster versioning (XEP-0237), a client that
/// names the version it has gets an empty result when it is current.
pub async fn get(context: &Context, session: &SessionState, request: &Element) {
    context.routes().set_roster_requested(&session.id());
    let roster = match context.store.roster(session.bare.as_str()).await {
        Ok(roster) => roster,
        Err(error) => {
            tracing::error!(%error, "roster read failed");
            return context.bounce(request, StanzaCondition::InternalServerError);
        }
    };
    let version = roster.version.to_string();
    let known = request
        .child("query", ns::ROSTER)
        .and_then(|query| query.attribute("ver"));
    if known == Some(version.as_str()) {
        // XEP-0237 §2.3: nothing changed; pushes bring what does.
        return context.deliver(&session.id(), context.iq_result(request, None));
    }
    let mut query = Element::new("query", ns::ROSTER).with_attribute("ver", version);
    for item in roster.items.iter().filter(|i| visible(i)) {
        query.push_child(item_element(item));
    }
    context.deliver(&session.id(), context.iq_result(request, Some(query)));
}

/// Handles a roster set: add or update one item, or remove it.
pub async fn set(context: &Context, session: &SessionState, request: &Element) {
    let Some(query) = request.child("query", ns::ROSTER) else {
        return context.bounce(request, StanzaCondition::BadRequest);
    };
    let items: Vec<&Element> = query
        .children()
        .filter(|c| c.is("item", ns::ROSTER))
        .collect();
    if items.len() != 1 {
        return context.bounce(request, StanzaCondition::BadRequest);
    }
    let element = items[0];
    let Some(contact) = element.attribute("jid").and_then(|j| BareJid::new(j).ok()) else {
        return context.bounce(request, StanzaCondition::JidMalformed);
    };
    if element.attribute("jid").is_some_and(|j| j.contains('/')) {
        return context.bounce(request, StanzaCondition::BadRequest);
    }
    let owner = session.bare.as_str();
    let existing = context
        .store
        .roster_item(owner, contact.as_str())
        .await
        .ok()
        .flatten();
    if element.attribute("subscription") == Some("remove") {
        let Some(existing) = existing else {
            return context.bounce(request, StanzaCondition::ItemNotFound);
        };
        return remove(context, session, request, existing, &contact).await;
    }
    let mut groups: Vec<String> = Vec::new();
    for group in element.children().filter(|c| c.is("group", ns::ROSTER)) {
        let name = group.text();
        if name.is_empty() {
            return context.bounce(request, StanzaCondition::NotAcceptable);
        }
        if groups.contains(&name) {
            return context.bounce(request, StanzaCondition::BadRequest);
        }
        groups.push(name);
    }
    let mut item = existing.unwrap_or_else(|| RosterItem::new(contact.as_str()));
    item.name = element
        .attribute("name")
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    item.groups = groups;
    match save(context, &session.bare, &item).await {
        Ok(()) => {}
        Err(Unsaved::Full) => {
            let error = StanzaError::with_text(
                StanzaCondition::NotAllowed,
                format!(
                    "a roster holds at most {} items",
                    context.limits.max_roster_items
                ),
            );
            return context.deliver(&session.id(), error.reply_to(request));
        }
        Err(Unsaved::Failed) => {
            return context.bounce(request, StanzaCondition::InternalServerError);
        }
    }
    context.deliver(&session.id(), context.iq_result(request, None));
}

async fn remove(
    context: &Context,
    session: &SessionState,
    request: &Element,
    item: RosterItem,
    contact: &BareJid,
) {
    let owner = session.bare.as_str();
    let Ok(version) = context
        .store
        .remove_roster_item(owner, contact.as_str())
        .await
    else {
        return context.bounce(request, StanzaCondition::InternalServerError);
    };
    let removed = Element::new("item", ns::ROSTER)
        .with_attribute("jid", contact.to_string())
        .with_attribute("subscription", "remove");
    if let Some(version) = version {
        push(context, &session.bare, removed, version);
    }
    context.deliver(&session.id(), context.iq_result(request, None));
    // RFC 6121 §2.5.2: removing an item cancels both subscriptions.
    if matches!(item.subscription, Subscription::To | Subscription::Both) || item.ask {
        contact_side(context, &session.bare, contact, "unsubscribe").await;
    }
    if matches!(item.subscription, Subscription::From | Subscription::Both) || item.pending_in {
        contact_side(context, &session.bare, contact, "unsubscribed").await;
    }
}

/// Why an item was not saved.
enum Unsaved {
    /// A new item, and the roster has `limits.max_roster_items` already
    /// (so subscription requests cannot fill someone's roster without
    /// end).
    Full,
    /// The store failed.
    Failed,
}

/// Saves an item and pushes it to the owner's interested resources.
async fn save(context: &Context, owner: &BareJid, item: &RosterItem) -> Result<(), Unsaved> {
    let store = &context.store;
    let known = match store.roster_item(owner.as_str(), &item.jid).await {
        Ok(known) => known.is_some(),
        Err(error) => {
            tracing::error!(%error, "roster read failed");
            return Err(Unsaved::Failed);
        }
    };
    if !known {
        match store.roster(owner.as_str()).await {
            Ok(roster) if roster.items.len() >= context.limits.max_roster_items => {
                tracing::info!(%owner, "roster full: item not added");
                return Err(Unsaved::Full);
            }
            Ok(_) => {}
            Err(error) => {
                tracing::error!(%error, "roster read failed");
                return Err(Unsaved::Failed);
            }
        }
    }
    match store.put_roster_item(owner.as_str(), item).await {
        Ok(version) => {
            if visible(item) {
                push(context, owner, item_element(item), version);
            }
            Ok(())
        }
        Err(error) => {
            tracing::error!(%error, "roster write failed");
            Err(Unsaved::Failed)
        }
    }
}

/// Pushes a changed item, with the roster's new version (XEP-0237), to
/// the owner's resources that asked for the roster.
fn push(context: &Context, owner: &BareJid, item: Element, version: u64) {
    for session in context.routes().sessions(owner) {
        if session.roster_requested {
            let query = Element::new("query", ns::ROSTER)
                .with_attribute("ver", version.to_string())
                .with_child(item.clone());
            let iq = Element::new("iq", ns::CLIENT)
                .with_attribute("type", "set")
                .with_attribute("id", format!("push-{}", random_id()))
                .with_attribute("to", session.id.jid.to_string())
                .with_child(query);
            context.deliver(&session.id, iq);
        }
    }
}

/// A subscription presence (`subscribe`, `subscribed`, `unsubscribe`,
/// `unsubscribed`) sent by the user to `to`.
pub async fn outbound(context: &Context, session: &SessionState, kind: &str, to: &Jid) {
    let contact = to.to_bare();
    let owner = &session.bare;
    let mut item = context
        .store
        .roster_item(owner.as_str(), contact.as_str())
        .await
        .ok()
        .flatten();
    let before = item.clone();
    let forward = match kind {
        "subscribe" => {
            let item = item.get_or_insert_with(|| RosterItem::new(contact.as_str()));
            if !matches!(item.subscription, Subscription::To | Subscription::Both) {
                item.ask = true;
            }
            true
        }
        "subscribed" => match item.as_mut() {
            Some(item) if item.pending_in => {
                item.pending_in = false;
                item.subscription = match item.subscription {
                    Subscription::None | Subscription::From => Subscription::From,
                    Subscription::To | Subscription::Both => Subscription::Both,
                };
                true
            }
            _ => false,
        },
        "unsubscribe" => match item.as_mut() {
            Some(item)
                if item.ask
                    || matches!(item.subscription, Subscription::To | Subscription::Both) =>
            {
                item.ask = false;
                item.subscription = without_to(item.subscription);
                true
            }
            _ => false,
        },
        "unsubscribed" => match item.as_mut() {
            Some(item)
                if item.pending_in
                    || matches!(item.subscription, Subscription::From | Subscription::Both) =>
            {
                item.pending_in = false;
                item.subscription = without_from(item.subscription);
                true
            }
            _ => false,
        },
        _ => false,
    };
    if let Some(item) = &item
        && before.as_ref() != Some(item)
        && save(context, owner, item).await.is_err()
    {
        return;
    }
    if forward {
        contact_side(context, owner, &contact, kind).await;
        if kind == "subscribed" {
            // The new subscriber gets the user's current presence.
            send_presences(context, owner, &contact, false);
        } else if kind == "unsubscribed" {
            send_presences(context, owner, &contact, true);
        }
    }
}

/// The contact's side of a subscription presence from `user`: update the
/// contact's roster and deliver the presence to its available resources.
async fn contact_side(context: &Context, user: &BareJid, contact: &BareJid, kind: &str) {
    if contact.domain().as_str() != context.domain || !context.account_exists(contact).await {
        // No server-to-server connections: remote contacts are not reached.
        return;
    }
    let mut item = context
        .store
        .roster_item(contact.as_str(), user.as_str())
        .await
        .ok()
        .flatten();
    let before = item.clone();
    let mut deliver = true;
    match kind {
        "subscribe" => {
            let entry = item.get_or_insert_with(|| RosterItem::new(user.as_str()));
            if matches!(entry.subscription, Subscription::From | Subscription::Both) {
                // Already subscribed: answer for the contact (RFC 6121 §3.1.3).
                Box::pin(auto_subscribed(context, contact, user)).await;
                deliver = false;
            } else {
                entry.pending_in = true;
            }
        }
        "subscribed" => match item.as_mut() {
            Some(entry) if entry.ask => {
                entry.ask = false;
                entry.subscription = match entry.subscription {
                    Subscription::None | Subscription::To => Subscription::To,
                    Subscription::From | Subscription::Both => Subscription::Both,
                };
            }
            _ => deliver = false,
        },
        "unsubscribe" => match item.as_mut() {
            Some(entry) => {
                entry.pending_in = false;
                entry.subscription = without_from(entry.subscription);
            }
            None => deliver = false,
        },
        "unsubscribed" => match item.as_mut() {
            Some(entry) => {
                entry.ask = false;
                entry.subscription = without_to(entry.subscription);
            }
            None => deliver = false,
        },
        _ => return,
    }
    if let Some(entry) = &item
        && before.as_ref() != Some(entry)
        && save(context, contact, entry).await.is_err()
    {
        return;
    }
    if deliver {
        let presence = Element::new("presence", ns::CLIENT)
            .with_attribute("type", kind)
            .with_attribute("from", user.to_string());
        context.deliver_to_available(contact, &presence);
    }
    if kind == "unsubscribe" {
        // The user no longer sees the contact's presence.
        send_presences(context, contact, user, true);
    }
}

async fn auto_subscribed(context: &Context, contact: &BareJid, user: &BareJid) {
    contact_side(context, contact, user, "subscribed").await;
    send_presences(context, contact, user, false);
}

/// Sends the available presences of `from`'s sessions (or `unavailable`
/// from each) to `to`'s available sessions.
pub fn send_presences(context: &Context, from: &BareJid, to: &BareJid, unavailable: bool) {
    if to.domain().as_str() != context.domain {
        return;
    }
    for session in context.routes().sessions(from) {
        let Some(presence) = session.presence else {
            continue;
        };
        let mut stanza = if unavailable {
            Element::new("presence", ns::CLIENT).with_attribute("type", "unavailable")
        } else {
            (*presence.stanza).clone()
        };
        stanza.set_attribute("from", session.id.jid.to_string());
        context.deliver_to_available(to, &stanza);
    }
}

fn without_to(subscription: Subscription) -> Subscription {
    match subscription {
        Subscription::Both | Subscription::From => Subscription::From,
        Subscription::To | Subscription::None => Subscription::None,
    }
}

fn without_from(subscription: Subscription) -> Subscription {
    match subscription {
        Subscription::Both | Subscription::To => Subscription::To,
        Subscription::From | Subscription::None => Subscription::None,
    }
}
