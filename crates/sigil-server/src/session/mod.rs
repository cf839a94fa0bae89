//! A bound session's stanzas: messages (RFC 6121 §8), presence (§4),
//! IQs to the server (roster, disco, ping, version), offline delivery.
//!
//! By job: `message` (to a full JID, a bare JID, offline), `offline`
//! (storing and delivering messages for later, and what a session leaves
//! unacknowledged), `presence` (broadcast, probes, directed presence);
//! IQs to the server go to the features (`features`).
//!
//! Initial presence is broadcast to contacts with a `from` or `both`
//! subscription and to the user's own resources, answered with the
//! presence of the contacts the user is subscribed to, and followed by
//! pending subscription requests and offline messages. Subscriptions
//! follow RFC 6121 §3 for local contacts, both rosters updated and pushed
//! to the resources that fetched the roster. Stanzas to an external
//! component's domain go to the component (`component`, XEP-0114), and
//! the component's stanzas are routed here like a user's; stanzas to
//! other domains get `remote-server-not-found` (no server-to-server yet).

use std::sync::Arc;

use jid::Jid;
use sigil_proto::error::StanzaCondition;
use sigil_xml::{Element, ns};

use sigil_proto::sid::StanzaId;

use crate::context::Context;

mod component;
mod message;
mod offline;
mod presence;

pub(crate) use presence::gone;

pub use component::{from_component, undeliverable};

pub(crate) use message::offer_stored;
use message::{message, to_bare};
use presence::{broadcast, directed, presence};

pub use offline::{keep_unacknowledged, recover_saved};

pub use crate::resumption::{Parked, Resumable};

use crate::router::Receipt;

pub use crate::state::SessionState;

/// XEP-0359: unique and stable stanza ids.
pub use sigil_proto::sid::NS as NS_SID;

/// What resolves once a stanza handed to [`handle`] is safe: its
/// recipient's client acknowledged it or it was stored (see [`Receipt`]),
/// and the archives committed it. Nothing to wait for when it was done
/// with before `handle` returned.
#[derive(Debug, Default)]
pub struct Handling {
    waits: Vec<tokio::sync::oneshot::Receiver<bool>>,
}

impl Handling {
    fn of(waits: impl IntoIterator<Item = Option<tokio::sync::oneshot::Receiver<bool>>>) -> Self {
        Self {
            waits: waits.into_iter().flatten().collect(),
        }
    }

    /// Whether the stanza is safe now (what has resolved is forgotten).
    pub fn is_settled(&mut self) -> bool {
        self.waits.retain_mut(|wait| {
            matches!(
                wait.try_recv(),
                Err(tokio::sync::oneshot::error::TryRecvError::Empty)
            )
        });
        self.waits.is_empty()
    }

    /// Resolves once the stanza is safe. Cancel-safe: a wait that
    /// resolved is dropped at once, never polled again.
    pub async fn settled(&mut self) {
        while let Some(wait) = self.waits.last_mut() {
            let _ = wait.await;
            self.waits.pop();
        }
    }
}

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
                return Handling::default();
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
                    error.push_child(sigil_proto::blocking::Blocked.to_element());
                }
                context.deliver(&session.id(), reply);
            }
            return Handling::default();
        }
        // ... and nothing from the user to someone who blocks them.
        if crate::blocking::blocks(context, &target.to_bare(), &Jid::from(session.jid.clone()))
            .await
        {
            if answerable {
                context.bounce(&stanza, StanzaCondition::ServiceUnavailable);
            }
            return Handling::default();
        }
    }
    match stanza.name() {
        "message" => {
            context.metrics.message();
            // XEP-0359 §5: stanza ids are the server's to give; a client's
            // could pass for ours.
            stanza.remove_children(StanzaId::NAME, NS_SID);
            // XEP-0280 §11: carbons are the server's to make.
            sigil_proto::carbons::strip(&mut stanza);
            // Archived before anything else sees it.
            let archived = crate::archive::archive(
                &context.archive,
                context.store.as_ref(),
                &context.domain,
                &stanza,
                to.as_ref(),
            )
            .await;
            let (receipt, settled) = match track {
                true => {
                    let (receipt, settled) = context.routes().receipt();
                    (Some(receipt), Some(settled))
                }
                false => (None, None),
            };
            // The sender's own sessions see the sender's archive id (in
            // carbons), the recipient the recipient's.
            if let Some(id) = &archived.sender_id {
                stanza.push_child(id.to_element());
            }
            crate::features::message_out(context, session, &stanza);
            if archived.sender_id.is_some() {
                stanza.remove_children(StanzaId::NAME, NS_SID);
            }
            if let Some(id) = &archived.recipient_id {
                stanza.push_child(id.to_element());
            }
            message(context, stanza, to, receipt).await;
            let archived = archived.committed;
            return match track {
                true => Handling::of([archived, settled]),
                false => Handling::default(),
            };
        }
        "presence" => {
            let copy = stanza.clone();
            presence(context, session, stanza, to).await;
            crate::features::presence(context, session, &copy);
        }
        "iq" => iq(context, session, stanza, to).await,
        _ => {}
    }
    Handling::default()
}

/// Ends a session: unavailable presence to whoever saw it.
pub async fn end(context: &Context, session: &mut SessionState) {
    // A newer session bound the same resource (a conflict, or a client
    // that bound again instead of resuming): the resource is online there,
    // so no one is told it left.
    let id = session.id();
    let replaced = context
        .routes()
        .sessions(&session.bare)
        .iter()
        .any(|current| current.id.jid == id.jid && current.id != id);
    if !replaced && (session.available || !session.directed.is_empty()) {
        let unavailable = Element::new("presence", ns::CLIENT)
            .with_attribute("type", "unavailable")
            .with_attribute("from", session.jid.to_string());
        if session.available {
            context.routes().set_presence(&id, None);
            let roster = context.store.roster(session.bare.as_str()).await.ok();
            broadcast(context, session, &unavailable, roster.as_ref());
        }
        for target in std::mem::take(&mut session.directed) {
            directed(context, &target, &unavailable);
        }
    }
    session.available = false;
    crate::features::ended(context, session);
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
    if is_own_copy(&stanza, &to.to_bare()) {
        // A copy made for that one session: the archive and the other
        // sessions have the message itself.
        return;
    }
    to_bare(context, stanza, &to.to_bare(), &kind, receipt).await;
}

/// Whether a message is one the server made for one of `account`'s
/// sessions from what it already keeps elsewhere: an archive result
/// (XEP-0313) or a carbon (XEP-0280), from the account's bare JID.
/// Delivers a message the server itself sends (from its domain) to a
/// local account: to its sessions, or offline.
pub(crate) async fn from_server(context: &Arc<Context>, stanza: Element, to: &jid::BareJid) {
    message(context, stanza, Some(Jid::from(to.clone())), None).await;
}

pub(crate) fn is_own_copy(stanza: &Element, account: &jid::BareJid) -> bool {
    stanza.attribute("from") == Some(account.as_str())
        && (stanza.has_child("result", sigil_proto::mam::NS)
            || stanza.has_child("sent", sigil_proto::carbons::NS)
            || stanza.has_child("received", sigil_proto::carbons::NS))
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
        if let Some(domain) = context.component_of(to) {
            return component::to_component(context, domain, stanza, None);
        }
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
    let to = match (for_account, is_server, &to) {
        (true, _, _) => crate::features::Addressed::Account,
        (false, true, _) => crate::features::Addressed::Server,
        // Another account's bare JID (RFC 6121 §8.5.2.1.3: the server
        // answers for it, through the features that do).
        (false, false, Some(other)) if other.node().is_some() => {
            crate::features::Addressed::OtherAccount(other.to_bare())
        }
        _ => return context.bounce(&stanza, StanzaCondition::ServiceUnavailable),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::Handling;

    #[tokio::test]
    async fn waiting_for_a_stanza_to_be_safe_can_be_cancelled_and_resumed() {
        let (first, first_wait) = tokio::sync::oneshot::channel();
        let (second, second_wait) = tokio::sync::oneshot::channel();
        let mut handling = Handling::of([Some(first_wait), Some(second_wait)]);
        first.send(true).unwrap();
        second.send(true).unwrap();
        // One wait resolves, then the wait is given up (a select! that
        // took another branch) and resumed later: no resolved wait is
        // polled again.
        let (late, late_wait) = tokio::sync::oneshot::channel();
        handling.waits.insert(1, late_wait);
        let cancelled =
            tokio::time::timeout(std::time::Duration::from_millis(20), handling.settled());
        assert!(cancelled.await.is_err());
        late.send(true).unwrap();
        handling.settled().await;
        assert!(handling.is_settled());
    }
}
