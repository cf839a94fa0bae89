//! Stanzas to and from external components (XEP-0114).
//!
//! A stanza for any address in a configured component's domain (or a
//! subdomain of it) goes to that component's connection, through the
//! router ([`crate::router::Routes::deliver_to_component`]); while none is
//! connected, or when it reads too slowly, requests and messages get
//! `service-unavailable`.
//!
//! A stanza from a component (its `from` already checked to be in the
//! component's domain by [`sigil_proto::component::ComponentStream`]) is
//! routed as a local user's would be: a message by RFC 6121 §8.5 (a full
//! JID's session, else the account's resources by priority, else offline
//! storage), presence to the addressed session or available resources, an
//! IQ to the full JID it names. A user who blocks the component's address
//! (XEP-0191) gets nothing from it. IQ requests to the server or to an
//! account's bare JID are answered `service-unavailable` (the server's
//! features answer only its own sessions), except a ping to the server,
//! which components use to keep their connection alive.

use std::sync::Arc;

use jid::Jid;
use sigil_proto::component::in_domain;
use sigil_proto::error::StanzaCondition;
use sigil_proto::sid::StanzaId;
use sigil_xml::{Element, ns};

use super::NS_SID;
use super::message::message;
use super::presence::directed;
use crate::context::Context;
use crate::router::{Receipt, SessionMessage, Undelivered};

/// Queues a stanza for the component serving `domain`, followed by
/// `receipt` (settled once written to the component); one that cannot be
/// queued is answered ([`undeliverable`]).
pub(crate) fn to_component(
    context: &Context,
    domain: &str,
    stanza: Element,
    receipt: Option<Receipt>,
) {
    let message = match receipt {
        Some(receipt) => SessionMessage::Tracked(Box::new(stanza), receipt),
        None => SessionMessage::Stanza(Box::new(stanza)),
    };
    if let Err(Undelivered { message, .. }) = context.routes().deliver_to_component(domain, message)
    {
        // The receipt goes with it: not safe.
        let (SessionMessage::Stanza(stanza) | SessionMessage::Tracked(stanza, _)) = message;
        undeliverable(context, &stanza);
    }
}

/// Answers a stanza that no component took (none connected, its queue
/// full, or its connection ended before writing it): requests, messages
/// and available presence get `service-unavailable`; errors, results and
/// other presence are dropped.
pub fn undeliverable(context: &Context, stanza: &Element) {
    let kind = stanza.attribute("type");
    let answer = match stanza.name() {
        "iq" => matches!(kind, Some("get" | "set")),
        "message" => !matches!(kind, Some("error" | "headline")),
        "presence" => kind.is_none(),
        _ => false,
    };
    if answer {
        context.bounce(stanza, StanzaCondition::ServiceUnavailable);
    }
}

/// Routes a stanza from the component serving `domain`.
pub async fn from_component(context: &Arc<Context>, domain: &str, mut stanza: Element) {
    let (Some(to), Some(from)) = (
        stanza.attribute("to").and_then(|to| Jid::new(to).ok()),
        stanza
            .attribute("from")
            .and_then(|from| Jid::new(from).ok()),
    ) else {
        return context.bounce(&stanza, StanzaCondition::JidMalformed);
    };
    if let Some(target) = context.component_of(&to) {
        return to_component(context, target, stanza, None);
    }
    if !context.is_local(&to) {
        return context.bounce(&stanza, StanzaCondition::RemoteServerNotFound);
    }
    let kind = stanza.attribute("type").map(str::to_owned);
    if to.node().is_some() && crate::blocking::blocks(context, &to.to_bare(), &from).await {
        if stanza.name() != "presence" && !matches!(kind.as_deref(), Some("error" | "result")) {
            context.bounce(&stanza, StanzaCondition::ServiceUnavailable);
        }
        return;
    }
    match stanza.name() {
        "message" => {
            keep_own_stanza_ids(&mut stanza, domain);
            // Carbons are the user's server's to make (XEP-0280 §11).
            sigil_proto::carbons::strip(&mut stanza);
            // Into the recipient's archive (stamped with its id) before it
            // is routed; components acknowledge nothing, so nothing waits.
            let archived = crate::archive::archive(
                &context.archive,
                context.store.as_ref(),
                &context.domain,
                &stanza,
                Some(&to),
            )
            .await;
            if let Some(id) = &archived.recipient_id {
                stanza.push_child(id.to_element());
            }
            message(context, stanza, Some(to), None).await;
        }
        // Probes are the server's business (RFC 6121 §4.3), not the
        // clients'.
        "presence" if kind.as_deref() != Some("probe") => directed(context, &to, &stanza),
        "iq" => iq(context, stanza, &to, kind.as_deref()),
        _ => {}
    }
}

fn iq(context: &Context, stanza: Element, to: &Jid, kind: Option<&str>) {
    let request = matches!(kind, Some("get" | "set"));
    if !(request || matches!(kind, Some("result" | "error"))) || stanza.attribute("id").is_none() {
        return context.bounce(&stanza, StanzaCondition::BadRequest);
    }
    if let Ok(full) = to.clone().try_into_full() {
        if !context.deliver_to_full(&full, stanza.clone()) && request {
            context.bounce(&stanza, StanzaCondition::ServiceUnavailable);
        }
        return;
    }
    if !request {
        return;
    }
    let ping = kind == Some("get")
        && context.is_server(to)
        && stanza.children().count() == 1
        && stanza.has_child("ping", ns::PING);
    if ping {
        context.deliver_to_jid(context.iq_result(&stanza, None));
    } else {
        context.bounce(&stanza, StanzaCondition::ServiceUnavailable);
    }
}

/// XEP-0359 §5: a component gives stanza ids only in its own name; one
/// naming another entity (an account's `offline-N`) could pass for that
/// entity's, so it goes.
fn keep_own_stanza_ids(stanza: &mut Element, domain: &str) {
    let ids: Vec<StanzaId> = StanzaId::all_of(stanza).collect();
    let own = |id: &StanzaId| in_domain(id.by.domain().as_str(), domain);
    if ids.iter().all(own)
        && stanza
            .children()
            .filter(|c| c.is(StanzaId::NAME, NS_SID))
            .count()
            == ids.len()
    {
        return;
    }
    stanza.remove_children(StanzaId::NAME, NS_SID);
    for id in ids.iter().filter(|id| own(id)) {
        stanza.push_child(id.to_element());
    }
}
