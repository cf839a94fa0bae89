//! Messages kept for later: stored for an account with no available
//! session, delivered at its next initial presence, and what a session
//! leaves unacknowledged when it ends.

use std::sync::Arc;

use jid::{BareJid, Jid};
use sigil_proto::error::StanzaCondition;
use sigil_store::StoreError;
use sigil_xml::{Element, ns};

use super::{NS_SID, reroute};
use sigil_proto::sid::StanzaId;

use crate::context::Context;
use crate::router::{Receipt, SessionId};

/// Offline messages delivered per initial presence.
const OFFLINE_BATCH: usize = 1000;

/// Stores a message for later: its id once it is on disk.
pub(super) async fn store_offline(
    context: &Context,
    mut stanza: Element,
    bare: &BareJid,
) -> Option<i64> {
    let now = time::OffsetDateTime::now_utc();
    // Whole seconds: XEP-0082 allows fractions, but not every client
    // parses nine digits of them.
    let stamp = now
        .replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    // Stored again after a failed delivery: when it was first stored
    // stays its time, and its offline id goes (it gets a new one); the
    // archives' ids stay, so that the archive and offline delivery name
    // it alike.
    drop_offline_ids(&mut stanza, bare);
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
pub(super) fn deliver_offline<'a>(
    context: &'a Arc<Context>,
    session: &'a SessionId,
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
            let stanza = Element::parse(&message.stanza);
            // The account's archive id when it has one (it follows the
            // message by it), else one made of its offline id.
            let tag = stanza
                .as_ref()
                .ok()
                .and_then(|stanza| archive_id(stanza, bare));
            if !context.offline.claim(message.id, tag.as_deref()) {
                // On its way to another session of the account already.
                continue;
            }
            match stanza {
                Ok(mut stanza) => {
                    if tag.is_none() {
                        let id =
                            StanzaId::new(format!("offline-{}", message.id), bare.clone().into());
                        stanza.push_child(id.to_element());
                    }
                    let (receipt, settled) = context.routes().receipt();
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
        let session = session.clone();
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
            } else if more
                && context
                    .routes()
                    .sessions(&bare)
                    .iter()
                    .any(|s| s.id == session && s.presence.is_some())
            {
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
pub(super) fn is_stored(context: &Context, stanza: &Element, bare: &BareJid) -> bool {
    stored_id(context, stanza, bare).is_some()
}

/// The id of the offline message `stanza` was read from, if it was (and
/// is still being delivered): by its stanza id by `bare`, `offline-N` or
/// the archive's.
pub(super) fn stored_id(context: &Context, stanza: &Element, bare: &BareJid) -> Option<i64> {
    StanzaId::all_of(stanza)
        .filter(|id| id.by == *bare)
        .find_map(|id| match id.id.strip_prefix("offline-") {
            Some(number) => number.parse().ok(),
            None => context.offline.claimed(&id.id),
        })
}

/// The id `bare`'s archive gave a message, if it has one.
fn archive_id(stanza: &Element, bare: &BareJid) -> Option<String> {
    StanzaId::all_of(stanza)
        .find(|id| id.by == *bare && !id.id.starts_with("offline-"))
        .map(|id| id.id)
}

/// Takes out the ids offline delivery gave a message (`offline-N` by
/// `bare`).
fn drop_offline_ids(stanza: &mut Element, bare: &BareJid) {
    let all: Vec<StanzaId> = StanzaId::all_of(stanza).collect();
    let offline = |id: &StanzaId| id.by == *bare && id.id.starts_with("offline-");
    if !all.iter().any(offline) {
        return;
    }
    stanza.remove_children(StanzaId::NAME, NS_SID);
    for id in all.iter().filter(|id| !offline(id)) {
        stanza.push_child(id.to_element());
    }
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
        .take_saved_session(account.as_str(), &crate::resumption::stored_id(previd))
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
    if !for_own || super::is_own_copy(&stanza, own) {
        reroute(context, stanza, receipt).await;
        return None;
    }
    if let Some(id) = stored_id(context, &stanza, own) {
        // Dropping the receipt keeps it stored.
        return Some(id);
    }
    let id = store_offline(context, stanza, own).await?;
    if let Some(receipt) = receipt {
        receipt.done();
    }
    Some(id)
}

pub(super) async fn forget_offline(context: &Context, bare: &BareJid, ids: Vec<i64>) {
    if ids.is_empty() {
        return;
    }
    if let Err(error) = context.store.delete_offline(bare.as_str(), &ids).await {
        context.offline.insert(bare);
        tracing::error!(%error, "offline delete failed");
    }
}
