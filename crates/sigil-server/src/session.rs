//! A bound session's stanzas: messages (RFC 6121 §8), presence (§4),
//! IQs to the server (roster, disco, ping, version), offline delivery.

use std::sync::Arc;

use jid::{BareJid, FullJid, Jid};
use sigil_proto::error::StanzaCondition;
use sigil_store::{Roster, StoreError, Subscription};
use sigil_xml::{Element, ns};

use crate::context::Context;
pub use crate::resumption::{Parked, Resumable};
use crate::roster;
use crate::router::{Presence, Receipt, SessionHandle};
pub use crate::state::SessionState;

/// XEP-0359: unique and stable stanza ids.
pub const NS_SID: &str = "urn:xmpp:sid:0";

/// What resolves once a stanza handed to [`handle`] is safe (see
/// [`Receipt`]); `None` when it was done with before `handle` returned.
pub type Handling = Option<tokio::sync::oneshot::Receiver<bool>>;

/// Offline messages delivered per initial presence.
const OFFLINE_BATCH: usize = 1000;

/// Handles a stanza from the client (`from` is already its full JID).
///
/// With `track`, a message delivered to a session is followed until that
/// session's client acknowledges it (or it is stored offline): the
/// returned receiver resolves then. Without, it is done with when queued.
pub async fn handle(
    context: &Arc<Context>,
    session: &mut SessionState,
    mut stanza: Element,
    track: bool,
) -> Handling {
    let to = match stanza.attribute("to") {
        None => None,
        Some(to) => match Jid::new(to) {
            Ok(jid) => Some(jid),
            Err(_) => {
                context.bounce(&stanza, StanzaCondition::JidMalformed);
                return None;
            }
        },
    };
    if let Some(target) = &to
        && target.node().is_some()
        && target.to_bare() != session.bare
    {
        let name = stanza.name().to_owned();
        let kind = stanza.attribute("type").unwrap_or_default().to_owned();
        let answerable = name != "presence" && kind != "error" && kind != "result";
        // XEP-0191 §3.3: nothing to a JID the user blocks ...
        if crate::blocking::blocks(context, &session.bare, target).await {
            if answerable {
                let mut reply = crate::blocking::blocked_error().reply_to(&stanza);
                if let Some(error) = reply.child_mut("error", ns::CLIENT) {
                    error.push_child(Element::new("blocked", crate::blocking::NS_ERRORS));
                }
                context.deliver(&session.handle, reply);
            }
            return None;
        }
        // ... and nothing from the user to someone who blocks them.
        if crate::blocking::blocks(context, &target.to_bare(), &Jid::from(session.jid.clone()))
            .await
        {
            if answerable {
                context.bounce(&stanza, StanzaCondition::ServiceUnavailable);
            }
            return None;
        }
    }
    match stanza.name() {
        "message" => {
            // XEP-0359 §5: stanza ids are the server's to give; a client's
            // could pass for ours.
            stanza.remove_children("stanza-id", NS_SID);
            let (receipt, handling) = match track {
                true => {
                    let (receipt, handling) = Receipt::new();
                    (Some(receipt), Some(handling))
                }
                false => (None, None),
            };
            message(context, stanza, to, receipt).await;
            return handling;
        }
        "presence" => presence(context, session, stanza, to).await,
        "iq" => iq(context, session, stanza, to).await,
        _ => {}
    }
    None
}

/// Ends a session: unavailable presence to whoever saw it.
pub async fn end(context: &Context, session: &mut SessionState) {
    // A newer session bound the same resource (a conflict, or a client
    // that bound again instead of resuming): the resource is online there,
    // so no one is told it left.
    let replaced = context
        .router
        .session(&session.jid)
        .is_some_and(|current| !Arc::ptr_eq(&current, &session.handle));
    if !replaced && (session.available || !session.directed.is_empty()) {
        let unavailable = Element::new("presence", ns::CLIENT)
            .with_attribute("type", "unavailable")
            .with_attribute("from", session.jid.to_string());
        if session.available {
            session.handle.set_presence(None);
            let roster = context.store.roster(session.bare.as_str()).await.ok();
            broadcast(context, session, &unavailable, roster.as_ref());
        }
        for target in std::mem::take(&mut session.directed) {
            directed(context, &target, &unavailable);
        }
    }
    session.available = false;
}

/// A stanza that was queued for a session that ended before writing it
/// (or written and not acknowledged): messages go to the account's other
/// resources or to offline storage, so ending a session (or the server)
/// loses none; requests (`iq` get/set) get `service-unavailable`.
///
/// `receipt` follows the stanza on (a stored message is done with).
pub async fn reroute(context: &Arc<Context>, stanza: Element, receipt: Option<Receipt>) {
    if stanza.name() == "iq" && matches!(stanza.attribute("type"), Some("get" | "set")) {
        // A request nobody will answer: its sender hears so (RFC 6120
        // §10.5.3.1; XEP-0198 §5 for unacknowledged ones).
        return context.bounce(&stanza, StanzaCondition::ServiceUnavailable);
    }
    if stanza.name() != "message" {
        return;
    }
    let kind = stanza.attribute("type").unwrap_or("normal").to_owned();
    if !matches!(kind.as_str(), "chat" | "normal") {
        return;
    }
    let Some(to) = stanza.attribute("to").and_then(|t| Jid::new(t).ok()) else {
        return;
    };
    to_bare(context, stanza, &to.to_bare(), &kind, receipt).await;
}

async fn message(
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
    if let Ok(full) = to.clone().try_into_full() {
        // A session told to end takes nothing more: as if gone.
        if let Some(session) = context.router.session(&full)
            && session.end_error().is_none()
        {
            context.send_to(&session, stanza, receipt);
            return;
        }
        // RFC 6121 §8.5.3.2: no such resource.
        match kind.as_str() {
            "groupchat" => return context.bounce(&stanza, StanzaCondition::ServiceUnavailable),
            "headline" | "error" => return,
            _ => {}
        }
    }
    to_bare(context, stanza, &to.to_bare(), &kind, receipt).await;
}

async fn to_bare(
    context: &Arc<Context>,
    stanza: Element,
    bare: &BareJid,
    kind: &str,
    receipt: Option<Receipt>,
) {
    let sessions: Vec<(Arc<SessionHandle>, i8)> = context
        .router
        .sessions(bare)
        .into_iter()
        .filter_map(|s| s.presence().map(|p| (s, p.priority)))
        .filter(|(_, priority)| *priority >= 0)
        .collect();
    match kind {
        "groupchat" => return context.bounce(&stanza, StanzaCondition::ServiceUnavailable),
        "headline" => {
            for (session, _) in &sessions {
                context.send_to(session, stanza.clone(), receipt.clone());
            }
            return;
        }
        _ => {}
    }
    if let Some(best) = sessions.iter().map(|(_, p)| *p).max() {
        // chat and normal: every resource with the highest priority.
        let mut delivered = false;
        for (session, priority) in &sessions {
            if *priority == best {
                delivered |= context.send_to(session, stanza.clone(), receipt.clone());
            }
        }
        if delivered {
            return;
        }
        // Every chosen session ended in the meantime: keep the message.
    }
    if kind == "error" {
        return;
    }
    if !context.account_exists(bare).await {
        return context.bounce(&stanza, StanzaCondition::ServiceUnavailable);
    }
    if receipt.is_some() && is_stored(&stanza, bare) {
        // Still on disk where it came from: dropping the receipt keeps it
        // there, under the same stanza id, for the next login.
        return;
    }
    if store_offline(context, stanza, bare).await.is_none() {
        return;
    }
    if let Some(receipt) = receipt {
        receipt.done();
    }
    // A resource that became available while this was being stored found
    // nothing then: it gets it now.
    let available = context
        .router
        .sessions(bare)
        .into_iter()
        .filter_map(|s| s.presence().map(|p| (s, p.priority)))
        .filter(|(_, priority)| *priority >= 0)
        .max_by_key(|(_, priority)| *priority);
    if let Some((session, _)) = available {
        deliver_offline(context, &session, bare).await;
    }
}

/// Stores a message for later: its id once it is on disk.
async fn store_offline(context: &Context, mut stanza: Element, bare: &BareJid) -> Option<i64> {
    let now = time::OffsetDateTime::now_utc();
    // Whole seconds: XEP-0082 allows fractions, but not every client
    // parses nine digits of them.
    let stamp = now
        .replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    // Stored again after a failed delivery: when it was first stored
    // stays its time, and its old id goes (it gets a new one).
    stanza.remove_children("stanza-id", NS_SID);
    if !stanza.has_child("delay", ns::DELAY) {
        stanza.push_child(
            Element::new("delay", ns::DELAY)
                .with_attribute("from", context.domain.clone())
                .with_attribute("stamp", stamp),
        );
    }
    let from = stanza.attribute("from").unwrap_or_default().to_owned();
    let result = context
        .store
        .store_offline(
            bare.as_str(),
            &from,
            &stanza.to_xml(),
            now.unix_timestamp(),
            sigil_store::OfflineQuota {
                messages: context.limits.max_offline_messages,
                bytes: context.limits.max_offline_bytes,
            },
        )
        .await;
    match result {
        Ok(id) => {
            context.offline.insert(bare);
            return Some(id);
        }
        Err(StoreError::QuotaExceeded) => {
            context.bounce(&stanza, StanzaCondition::ServiceUnavailable)
        }
        Err(error) => {
            tracing::error!(%error, "offline storage failed");
            context.bounce(&stanza, StanzaCondition::InternalServerError);
        }
    }
    None
}

/// Delivers stored messages to a session that just became available.
/// Each is deleted once it is safe: acknowledged by the client (XEP-0198),
/// written to a client that does not acknowledge, or stored again after
/// its session ended first. Until then it stays on disk: a crash of the
/// server between delivery and acknowledgement loses nothing (the client
/// may see it twice, with the same XEP-0359 stanza id).
fn deliver_offline<'a>(
    context: &'a Arc<Context>,
    session: &'a Arc<SessionHandle>,
    bare: &'a BareJid,
) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
    // Boxed, with its type spelled out: it calls itself.
    Box::pin(async move {
        // Taken out before the read: a message stored meanwhile puts the
        // account back.
        if !context.offline.take(bare) {
            return;
        }
        let messages = match context
            .store
            .offline_messages(bare.as_str(), OFFLINE_BATCH)
            .await
        {
            Ok(messages) => messages,
            Err(error) => {
                context.offline.insert(bare);
                return tracing::error!(%error, "offline read failed");
            }
        };
        if messages.is_empty() {
            return;
        }
        // More may wait: they follow once this batch is safe.
        let more = messages.len() >= OFFLINE_BATCH;
        if more {
            context.offline.insert(bare);
        }
        let mut unreadable = Vec::new();
        let mut waiting = Vec::with_capacity(messages.len());
        for message in messages {
            if !context.offline.claim(message.id) {
                // On its way to another session of the account already.
                continue;
            }
            match Element::parse(&message.stanza) {
                Ok(mut stanza) => {
                    stanza.push_child(
                        Element::new("stanza-id", NS_SID)
                            .with_attribute("id", format!("offline-{}", message.id))
                            .with_attribute("by", bare.to_string()),
                    );
                    let (receipt, settled) = Receipt::new();
                    context.send_to(session, stanza, Some(receipt));
                    waiting.push((message.id, settled));
                }
                Err(error) => {
                    tracing::error!(id = message.id, %error, "unreadable offline message dropped");
                    unreadable.push(message.id);
                }
            }
        }
        forget_offline(context, bare, unreadable.clone()).await;
        context.offline.release(unreadable);
        let context = Arc::clone(context);
        let bare = bare.clone();
        let session = Arc::clone(session);
        tokio::spawn(async move {
            let mut safe = Vec::with_capacity(waiting.len());
            let mut kept = Vec::new();
            for (id, settled) in waiting {
                match settled.await {
                    Ok(true) => safe.push(id),
                    _ => kept.push(id),
                }
            }
            forget_offline(&context, &bare, safe.clone()).await;
            context.offline.release(safe);
            if !kept.is_empty() {
                // Not delivered after all: for the next login.
                context.offline.release(kept);
                context.offline.insert(&bare);
            } else if more && session.presence().is_some() {
                // Boxed: this future would otherwise contain itself.
                let next: std::pin::Pin<Box<dyn Future<Output = ()> + Send>> =
                    Box::pin(deliver_offline(&context, &session, &bare));
                next.await;
            }
        });
    })
}

/// Whether `stanza` was read from `bare`'s offline messages (it carries
/// the stanza id given then; a client's own stanza ids are removed).
fn is_stored(stanza: &Element, bare: &BareJid) -> bool {
    stored_id(stanza, bare).is_some()
}

/// The id of the offline message `stanza` was read from, if it was: its
/// stanza id by `bare`, `offline-N`.
fn stored_id(stanza: &Element, bare: &BareJid) -> Option<i64> {
    stanza.children().find_map(|child| {
        if !child.is("stanza-id", NS_SID) || child.attribute("by") != Some(bare.as_str()) {
            return None;
        }
        child
            .attribute("id")?
            .strip_prefix("offline-")?
            .parse()
            .ok()
    })
}

/// A client resumes a session that is not here: if it ended at the last
/// shutdown, which saved its state, and the resumption timeout since the
/// restart has not passed, the stored copies of the stanzas the client
/// acknowledged with `h` are deleted (it has them), and the answer is how
/// many of the client's stanzas the server handled, for its
/// `<failed h='…'/>`.
pub async fn recover_saved(
    context: &Context,
    previd: &str,
    account: &BareJid,
    h: u32,
) -> Option<u32> {
    let saved = match context
        .store
        .take_saved_session(account.as_str(), previd)
        .await
    {
        Ok(saved) => saved?,
        Err(error) => {
            tracing::error!(%error, "reading the saved stream management state failed");
            return None;
        }
    };
    let timeout = i64::try_from(context.limits.resume_timeout_seconds).unwrap_or(i64::MAX);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if now
        > saved
            .saved_at
            .max(context.started_at)
            .saturating_add(timeout)
    {
        return None;
    }
    // Numbers acked+1 ..= h (modulo 2^32) reached the client. An `h`
    // below what it had acknowledged is its mistake: nothing is deleted.
    let reached = h.wrapping_sub(saved.acked);
    let reached = if reached > u32::MAX / 2 { 0 } else { reached };
    let delivered: Vec<i64> = saved
        .unacknowledged
        .iter()
        .filter(|(seq, _)| seq.wrapping_sub(saved.acked).wrapping_sub(1) < reached)
        .map(|(_, id)| *id)
        .collect();
    tracing::info!(jid = %account, delivered = delivered.len(), "a session saved at shutdown was asked for");
    forget_offline(context, account, delivered).await;
    Some(saved.inbound)
}

/// At a server shutdown, keeps a stanza that was sent to `own`'s session
/// and not acknowledged: a message is stored offline (or stays stored,
/// when it came from there), and its offline id is the answer, for the
/// session's saved state ([`sigil_store::SavedSession`]). Anything else is
/// rerouted as usual.
pub async fn keep_unacknowledged(
    context: &Arc<Context>,
    stanza: Element,
    receipt: Option<Receipt>,
    own: &BareJid,
) -> Option<i64> {
    let for_own = stanza.name() == "message"
        && matches!(
            stanza.attribute("type").unwrap_or("normal"),
            "chat" | "normal"
        )
        && stanza
            .attribute("to")
            .and_then(|to| Jid::new(to).ok())
            .is_some_and(|to| to.to_bare() == *own);
    if !for_own {
        reroute(context, stanza, receipt).await;
        return None;
    }
    if let Some(id) = stored_id(&stanza, own) {
        // Dropping the receipt keeps it stored.
        return Some(id);
    }
    let id = store_offline(context, stanza, own).await?;
    if let Some(receipt) = receipt {
        receipt.done();
    }
    Some(id)
}

async fn forget_offline(context: &Context, bare: &BareJid, ids: Vec<i64>) {
    if ids.is_empty() {
        return;
    }
    if let Err(error) = context.store.delete_offline(bare.as_str(), &ids).await {
        context.offline.insert(bare);
        tracing::error!(%error, "offline delete failed");
    }
}

async fn presence(
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
                let initial = !session.available;
                session.available = true;
                session.handle.set_presence(Some(Presence {
                    priority,
                    stanza: stanza.clone(),
                }));
                // One read of the roster for all that an initial presence
                // does.
                let roster = context.store.roster(session.bare.as_str()).await.ok();
                broadcast(context, session, &stanza, roster.as_ref());
                if initial {
                    probe(context, session, roster.as_ref());
                    pending_subscriptions(context, session, roster.as_ref());
                    deliver_offline(context, &session.handle, &session.bare).await;
                }
            } else {
                session.available = false;
                session.handle.set_presence(None);
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
/// available session).
fn directed(context: &Context, to: &Jid, stanza: &Element) {
    if !context.is_local(to) || to.node().is_none() {
        return;
    }
    let mut stanza = stanza.clone();
    stanza.set_attribute("to", to.to_string());
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
fn broadcast(context: &Context, session: &SessionState, stanza: &Element, roster: Option<&Roster>) {
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
    for own in context.router.sessions(&session.bare) {
        if own.presence().is_some() || own.serial == session.handle.serial {
            let mut copy = stanza.clone();
            copy.set_attribute("to", own.jid.to_string());
            context.deliver(&own, copy);
        }
    }
}

/// Answers for the contacts the user is subscribed to: their current
/// presence (the probe of RFC 6121 §4.3, done locally).
fn probe(context: &Context, session: &SessionState, roster: Option<&Roster>) {
    for item in roster.map(|r| r.items.as_slice()).unwrap_or_default() {
        if !matches!(item.subscription, Subscription::To | Subscription::Both) {
            continue;
        }
        let Ok(contact) = BareJid::new(&item.jid) else {
            continue;
        };
        for other in context.router.sessions(&contact) {
            if let Some(presence) = other.presence() {
                let mut stanza = presence.stanza;
                stanza.set_attribute("from", other.jid.to_string());
                stanza.set_attribute("to", session.jid.to_string());
                context.deliver(&session.handle, stanza);
            }
        }
    }
    for own in context.router.sessions(&session.bare) {
        if own.serial == session.handle.serial {
            continue;
        }
        if let Some(presence) = own.presence() {
            let mut stanza = presence.stanza;
            stanza.set_attribute("from", own.jid.to_string());
            stanza.set_attribute("to", session.jid.to_string());
            context.deliver(&session.handle, stanza);
        }
    }
}

/// Subscription requests that arrived while the user was away.
fn pending_subscriptions(context: &Context, session: &SessionState, roster: Option<&Roster>) {
    let items = roster.map(|r| r.items.as_slice()).unwrap_or_default();
    for item in items.iter().filter(|i| i.pending_in) {
        let presence = Element::new("presence", ns::CLIENT)
            .with_attribute("type", "subscribe")
            .with_attribute("from", item.jid.clone())
            .with_attribute("to", session.jid.to_string());
        context.deliver(&session.handle, presence);
    }
}

async fn iq(context: &Context, session: &mut SessionState, stanza: Element, to: Option<Jid>) {
    let kind = stanza.attribute("type").unwrap_or_default().to_owned();
    if !matches!(kind.as_str(), "get" | "set" | "result" | "error")
        || stanza.attribute("id").is_none()
    {
        return context.bounce(&stanza, StanzaCondition::BadRequest);
    }
    let for_account = match &to {
        None => true,
        Some(to) => to.node().is_some() && to.resource().is_none() && to.to_bare() == session.bare,
    };
    if let Some(to) = &to {
        if !context.is_local(to) {
            return context.bounce(&stanza, StanzaCondition::RemoteServerNotFound);
        }
        if let Ok(full) = to.clone().try_into_full() {
            if !context.deliver_to_full(&full, stanza.clone()) {
                context.bounce(&stanza, StanzaCondition::ServiceUnavailable);
            }
            return;
        }
    }
    if kind == "result" || kind == "error" {
        return;
    }
    let children: Vec<&Element> = stanza.children().collect();
    if children.len() != 1 {
        return context.bounce(&stanza, StanzaCondition::BadRequest);
    }
    let payload = children[0];
    let is_server = to.as_ref().is_some_and(|to| context.is_server(to));
    let to = match (for_account, is_server) {
        (true, _) => crate::features::Addressed::Account,
        (false, true) => crate::features::Addressed::Server,
        // Another account's bare JID (RFC 6121 §8.5.2.1.3: the server
        // answers for it).
        (false, false) => return context.bounce(&stanza, StanzaCondition::ServiceUnavailable),
    };
    crate::features::dispatch(crate::features::IqRequest {
        context,
        session,
        stanza: &stanza,
        payload,
        kind: &kind,
        to,
    })
    .await;
}
