//! XEP-0054 vcard-temp and XEP-0292 vCard4 (over IQ), from one card per
//! account, and the XEP-0153 avatar hash in presence.
//!
//! The card is stored once, as vcard-temp (the store's `vcard`
//! collection, one document), at most `limits.max_vcard_bytes` long
//! (`not-acceptable` beyond; the default, 128 KiB, holds a photo of about
//! 90 KiB and the whole IQ stays under the default stanza limit). A
//! vCard4 get is converted from it, and a vCard4 set converted into it,
//! keeping the stored fields vCard4 does not carry here
//! (`sigil_proto::vcard`). The account sets its own card; any user of
//! the server gets any account's card. An account without a card and a
//! name with no account both answer `item-not-found`, as Prosody does
//! (so the answer does not tell which names have accounts); setting an
//! empty card deletes it.
//!
//! When the card has a photo, the server adds its hash
//! (`<x xmlns='vcard-temp:x:update'><photo>SHA-1</photo></x>`) to the
//! user's broadcast presence that carries none, from a hash kept per
//! account while it has a session (`crate::profiles`).

use base64::Engine as _;
use jid::BareJid;
use sha1::{Digest, Sha1};
use sigil_proto::error::{StanzaCondition, StanzaError};
use sigil_proto::vcard::{NS, NS_UPDATE, NS_VCARD4, from_vcard4, photo_binval, to_vcard4};
use sigil_store::{DocumentQuota, StoreError};
use sigil_xml::Element;

use super::{Addressed, Feature, Handling, IqRequest, Target};
use crate::context::Context;
use crate::profiles::AvatarHash;
use crate::state::SessionState;

pub(crate) struct VCard;

/// The store collection, and the key of the one card in it.
const COLLECTION: &str = "vcard";
const KEY: &str = "";

impl Feature for VCard {
    fn namespaces(&self) -> &'static [&'static str] {
        &[NS, NS_VCARD4]
    }

    fn target(&self) -> Target {
        Target::Accounts
    }

    /// The server has no card.
    fn elsewhere(&self) -> StanzaCondition {
        StanzaCondition::ItemNotFound
    }

    fn server_features(&self) -> &'static [&'static str] {
        &[NS, NS_VCARD4]
    }

    fn iq<'a>(&'a self, request: IqRequest<'a>) -> Handling<'a> {
        Box::pin(async move {
            let outcome = handle(&request).await;
            request.answer(outcome);
        })
    }

    fn outgoing_presence<'a>(
        &'a self,
        context: &'a Context,
        session: &'a SessionState,
        stanza: &'a mut Element,
    ) -> Option<Handling<'a>> {
        // XEP-0153 §4.2: the client's own element (even one without a
        // hash: "not ready") stands.
        if stanza.has_child("x", NS_UPDATE) {
            return None;
        }
        Some(Box::pin(async move {
            if let Some(hash) = avatar(context, &session.bare).await {
                stanza.push_child(
                    Element::new("x", NS_UPDATE)
                        .with_child(Element::new("photo", NS_UPDATE).with_text(hex(&hash))),
                );
            }
        }))
    }

    /// The account's last session ended: its avatar hash leaves the
    /// memory.
    fn ended(&self, context: &Context, session: &SessionState) {
        if context.routes().sessions(&session.bare).is_empty() {
            context.profiles.forget_avatar(&session.bare);
        }
    }
}

async fn handle(request: &IqRequest<'_>) -> Result<Option<Element>, StanzaError> {
    let (context, payload) = (request.context, request.payload);
    let four = payload.namespace() == NS_VCARD4;
    let expected = if four { "vcard" } else { "vCard" };
    if payload.name() != expected {
        return Err(StanzaError::new(StanzaCondition::BadRequest));
    }
    let owner = match &request.to {
        Addressed::OtherAccount(other) => other.clone(),
        _ => request.session.bare.clone(),
    };
    match request.kind {
        "get" => {
            let Some(card) = stored(context, &owner).await? else {
                return Err(StanzaError::new(StanzaCondition::ItemNotFound));
            };
            Ok(Some(if four { to_vcard4(&card) } else { card }))
        }
        "set" if matches!(request.to, Addressed::OtherAccount(_)) => {
            Err(StanzaError::new(StanzaCondition::Forbidden))
        }
        "set" => {
            let card = if four {
                let old = stored(context, &owner).await?;
                from_vcard4(payload, old.as_ref())
            } else {
                payload.clone()
            };
            write(context, &owner, &card).await?;
            Ok(None)
        }
        _ => Err(StanzaError::new(StanzaCondition::BadRequest)),
    }
}

/// The stored card of `owner`.
async fn stored(context: &Context, owner: &BareJid) -> Result<Option<Element>, StanzaError> {
    let text = context
        .store
        .document(owner.as_str(), COLLECTION, KEY)
        .await
        .map_err(internal)?;
    match text.map(|text| Element::parse(&text)) {
        None => Ok(None),
        Some(Ok(card)) => Ok(Some(card)),
        Some(Err(error)) => {
            tracing::error!(%error, "a stored vCard does not parse");
            Err(StanzaError::new(StanzaCondition::InternalServerError))
        }
    }
}

/// Replaces the card of `owner` (deletes it when empty), and its avatar
/// hash.
async fn write(context: &Context, owner: &BareJid, card: &Element) -> Result<(), StanzaError> {
    let limit = context.limits.max_vcard_bytes;
    let text = card.children().next().map(|_| card.to_xml());
    if text.as_ref().is_some_and(|t| t.len() > limit) {
        return Err(StanzaError::with_text(
            StanzaCondition::NotAcceptable,
            format!("a vCard holds at most {limit} bytes"),
        ));
    }
    let quota = DocumentQuota {
        documents: 1,
        bytes: limit,
    };
    let changes = [(KEY.to_owned(), text)];
    context
        .store
        .put_documents(owner.as_str(), COLLECTION, &changes, quota)
        .await
        .map_err(internal)?;
    context.profiles.set_avatar(owner, avatar_hash(card));
    context.changed_elsewhere(crate::cluster::Cache::Avatar, owner);
    Ok(())
}

/// The avatar hash of `owner`: kept in memory, else read from its card.
async fn avatar(context: &Context, owner: &BareJid) -> Option<AvatarHash> {
    if let Some(known) = context.profiles.avatar(owner) {
        return known;
    }
    let generation = context.profiles.generation();
    match stored(context, owner).await {
        Ok(card) => {
            let hash = card.as_ref().and_then(avatar_hash);
            context.profiles.put_avatar(owner, hash, generation);
            hash
        }
        // Not kept: read again at the next presence.
        Err(_) => None,
    }
}

/// XEP-0153 §4.1: the SHA-1 of the decoded image; none for a card
/// without a photo or with one that is not base64.
fn avatar_hash(card: &Element) -> Option<AvatarHash> {
    let text: String = photo_binval(card)?
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let image = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    Some(Sha1::digest(&image).into())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn internal(error: StoreError) -> StanzaError {
    tracing::error!(%error, "vCard storage failed");
    StanzaError::new(StanzaCondition::InternalServerError)
}
