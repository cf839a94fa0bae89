//! XEP-0049 private XML storage (`jabber:iq:private`): the user keeps
//! elements on the server, one per namespace, in the store's `private`
//! collection (the serialised element, keyed by its namespace). Only the
//! account itself reads and writes them: another account's gets
//! `forbidden`. `limits.max_private_documents` namespaces per account,
//! `limits.max_private_bytes` per element (`not-acceptable` beyond).
//! Storing an empty element deletes the namespace's (as Prosody does).

use sigil_proto::error::{StanzaCondition, StanzaError};
use sigil_proto::private::{NS, RESERVED};
use sigil_store::{DocumentQuota, StoreError};
use sigil_xml::Element;

use super::{Addressed, Feature, Handling, IqRequest, Target};

pub(crate) struct Private;

/// The store collection.
const COLLECTION: &str = "private";

impl Feature for Private {
    fn namespaces(&self) -> &'static [&'static str] {
        &[NS]
    }

    fn target(&self) -> Target {
        Target::Accounts
    }

    fn elsewhere(&self) -> StanzaCondition {
        StanzaCondition::ServiceUnavailable
    }

    fn iq<'a>(&'a self, request: IqRequest<'a>) -> Handling<'a> {
        Box::pin(async move {
            let outcome = handle(&request).await;
            request.answer(outcome);
        })
    }
}

async fn handle(request: &IqRequest<'_>) -> Result<Option<Element>, StanzaError> {
    if matches!(request.to, Addressed::OtherAccount(_)) {
        return Err(StanzaError::new(StanzaCondition::Forbidden));
    }
    let payload = request.payload;
    if payload.name() != "query" {
        return Err(StanzaError::new(StanzaCondition::BadRequest));
    }
    let children: Vec<&Element> = payload.children().collect();
    if children.is_empty() {
        return Err(StanzaError::with_text(
            StanzaCondition::BadRequest,
            "name the namespace with a child element",
        ));
    }
    if children.iter().any(|c| RESERVED.contains(&c.namespace())) {
        return Err(StanzaError::with_text(
            StanzaCondition::NotAcceptable,
            "nothing is stored in this namespace",
        ));
    }
    let (context, owner) = (request.context, request.session.bare.as_str());
    match request.kind {
        "get" => {
            let [child] = children.as_slice() else {
                return Err(StanzaError::with_text(
                    StanzaCondition::BadRequest,
                    "get one namespace at a time",
                ));
            };
            let stored = context
                .store
                .document(owner, COLLECTION, child.namespace())
                .await
                .map_err(internal)?;
            let element = match stored.map(|text| Element::parse(&text)) {
                Some(Ok(element)) => element,
                Some(Err(error)) => {
                    tracing::error!(%error, "a stored private XML element does not parse");
                    return Err(StanzaError::new(StanzaCondition::InternalServerError));
                }
                None => Element::new(child.name(), child.namespace()),
            };
            Ok(Some(Element::new("query", NS).with_child(element)))
        }
        "set" => {
            let limit = context.limits.max_private_bytes;
            let mut changes = Vec::with_capacity(children.len());
            for child in children {
                // XEP-0049 has no delete: storing an empty element is one.
                let empty = child.attributes().is_empty()
                    && child.children().next().is_none()
                    && child.text().trim().is_empty();
                let text = (!empty).then(|| child.to_xml());
                if text.as_ref().is_some_and(|t| t.len() > limit) {
                    return Err(StanzaError::with_text(
                        StanzaCondition::NotAcceptable,
                        format!("a private XML element holds at most {limit} bytes"),
                    ));
                }
                changes.push((child.namespace().to_owned(), text));
            }
            let quota = DocumentQuota {
                documents: context.limits.max_private_documents,
                bytes: limit,
            };
            match context
                .store
                .put_documents(owner, COLLECTION, &changes, quota)
                .await
            {
                Ok(()) => Ok(None),
                Err(StoreError::QuotaExceeded) => Err(StanzaError::with_text(
                    StanzaCondition::NotAcceptable,
                    format!(
                        "private XML storage holds at most {} namespaces",
                        quota.documents
                    ),
                )),
                Err(error) => Err(internal(error)),
            }
        }
        _ => Err(StanzaError::new(StanzaCondition::BadRequest)),
    }
}

fn internal(error: StoreError) -> StanzaError {
    tracing::error!(%error, "private XML storage failed");
    StanzaError::new(StanzaCondition::InternalServerError)
}
