//! XEP-0313 message archive management (`urn:xmpp:mam:2`): a client
//! pages through its account's archive (filters by `with`, time and
//! archive ids; XEP-0059 paging both ways; `flip-page`) and sets what is
//! archived. Which messages are archived, and when, is
//! [`crate::archive`]'s.
//!
//! Each message of a page goes to the client as a `<message/>` carrying
//! `<result/>`, queued ahead of the IQ's `<fin/>`, from the account's
//! bare JID: a client believes results only from there.

use std::sync::Arc;

use jid::{BareJid, Jid};
use sigil_proto::error::{StanzaCondition, StanzaError};
use sigil_proto::mam::{ArchivedResult, DATA, FIELDS, Fin, NS, NS_EXTENDED, Prefs, Query};
use sigil_store::{ArchiveDefault, ArchivePage, ArchivePrefs, ArchiveQuery, StoreError};
use sigil_xml::{Element, ns};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Feature, Handling, IqRequest, Target};
use crate::context::Context;

/// Messages in a page when the client does not say.
const DEFAULT_PAGE: usize = 50;
/// The most messages in a page (and ids in an `ids` filter): a page is
/// queued for the client at once, well within its queue.
const MAX_PAGE: usize = 250;
/// The most JIDs in each preference list.
const MAX_PREFS: usize = 1000;

pub(crate) struct Mam;

impl Feature for Mam {
    fn namespaces(&self) -> &'static [&'static str] {
        &[NS]
    }

    fn target(&self) -> Target {
        Target::Account
    }

    fn elsewhere(&self) -> StanzaCondition {
        StanzaCondition::ServiceUnavailable
    }

    fn account_features(&self) -> &'static [&'static str] {
        &[NS, NS_EXTENDED]
    }

    fn enabled(&self, context: &Context) -> bool {
        context.archive.enabled()
    }

    fn iq<'a>(&'a self, request: IqRequest<'a>) -> Handling<'a> {
        Box::pin(async move {
            match (request.kind, request.payload.name()) {
                ("get", "query") => request.result(Some(form())),
                ("set", "query") => query(&request).await,
                ("get", "prefs") => {
                    let prefs = request
                        .context
                        .archive
                        .prefs(request.context.store.as_ref(), &request.session.bare)
                        .await;
                    request.result(Some(to_wire(&prefs).to_element()));
                }
                ("set", "prefs") => {
                    let outcome = set_prefs(request.context, &request.session.bare, request.payload);
                    request.answer(outcome.await.map(Some));
                }
                _ => request.error(StanzaCondition::FeatureNotImplemented),
            }
        })
    }
}

/// The query form (§4.1.1): the fields this archive filters by.
fn form() -> Element {
    let mut form = Element::new("x", DATA)
        .with_attribute("type", "form")
        .with_child(
            Element::new("field", DATA)
                .with_attribute("var", "FORM_TYPE")
                .with_attribute("type", "hidden")
                .with_child(Element::new("value", DATA).with_text(NS)),
        );
    for (var, kind) in FIELDS {
        form.push_child(
            Element::new("field", DATA)
                .with_attribute("var", *var)
                .with_attribute("type", *kind),
        );
    }
    Element::new("query", NS).with_child(form)
}

/// Reads an XEP-0082 time as Unix microseconds.
fn micros(text: &str) -> Result<i64, StanzaError> {
    let time = OffsetDateTime::parse(text.trim(), &Rfc3339)
        .map_err(|_| StanzaError::with_text(StanzaCondition::BadRequest, "not an XEP-0082 time"))?;
    Ok(i64::try_from(time.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX))
}

/// Unix microseconds as an XEP-0082 time, in whole seconds.
fn stamp(micros: i64) -> String {
    OffsetDateTime::from_unix_timestamp(micros.div_euclid(1_000_000))
        .ok()
        .and_then(|time| time.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn bad(text: &str) -> StanzaError {
    StanzaError::with_text(StanzaCondition::BadRequest, text)
}

/// What the client asked for, as the store reads it.
fn archive_query(query: &Query) -> Result<ArchiveQuery, StanzaError> {
    let with = match &query.with {
        Some(with) => Some(
            Jid::new(with)
                .map_err(|_| StanzaError::new(StanzaCondition::JidMalformed))?
                .to_string(),
        ),
        None => None,
    };
    let page = match (&query.page.after, &query.page.before) {
        (Some(_), Some(_)) => return Err(bad("<after/> and <before/> together")),
        (Some(after), None) => ArchivePage::After(after.clone()),
        (None, Some(Some(before))) => ArchivePage::Before(before.clone()),
        (None, Some(None)) => ArchivePage::Last,
        (None, None) => ArchivePage::First,
    };
    if query.ids.len() > MAX_PAGE {
        return Err(StanzaError::with_text(
            StanzaCondition::PolicyViolation,
            "too many ids",
        ));
    }
    Ok(ArchiveQuery {
        with,
        start: query.start.as_deref().map(micros).transpose()?,
        end: query.end.as_deref().map(micros).transpose()?,
        after_id: query.after_id.clone(),
        before_id: query.before_id.clone(),
        ids: query.ids.clone(),
        page,
        max: query.page.max.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE),
    })
}

/// Runs a query: its page as messages, then the `<fin/>`.
async fn query(request: &IqRequest<'_>) {
    let (context, session) = (request.context, request.session);
    let wanted = match Query::from_element(request.payload) {
        Ok(query) => query,
        Err(error) => return request.answer(Err(bad(&error.to_string()))),
    };
    let store_query = match archive_query(&wanted) {
        Ok(query) => query,
        Err(error) => return request.answer(Err(error)),
    };
    let page = match context
        .store
        .archive_query(session.bare.as_str(), &store_query)
        .await
    {
        Ok(page) => page,
        Err(StoreError::NotFound) => {
            return request.answer(Err(StanzaError::with_text(
                StanzaCondition::ItemNotFound,
                "no such archive id",
            )));
        }
        Err(error) => {
            tracing::error!(%error, "archive query failed");
            return request.error(StanzaCondition::InternalServerError);
        }
    };
    // The page goes into the session's queue at once: it must fit beside
    // what waits there already (queries sent one after another without
    // reading the answers would otherwise end the session as too slow).
    let room = context
        .limits
        .session_queue
        .saturating_sub(session.handle.queued());
    if page.messages.len() + 1 > room {
        return request.answer(Err(StanzaError::with_text(
            StanzaCondition::ResourceConstraint,
            "too much is waiting to be read: ask again once it is",
        )));
    }
    let fin = Fin {
        complete: page.complete,
        first: page.messages.first().map(|m| m.id.clone()),
        last: page.messages.last().map(|m| m.id.clone()),
    };
    let own = session.bare.to_string();
    let to = session.jid.to_string();
    let mut messages = page.messages;
    if wanted.flip {
        messages.reverse();
    }
    for archived in messages {
        let message = match Element::parse(&archived.stanza) {
            Ok(message) => message,
            Err(error) => {
                tracing::error!(id = %archived.id, %error, "unreadable archived message skipped");
                continue;
            }
        };
        let result = ArchivedResult {
            queryid: wanted.queryid.clone(),
            id: archived.id,
            stamp: stamp(archived.at),
            message,
        };
        let carrier = Element::new("message", ns::CLIENT)
            .with_attribute("from", own.as_str())
            .with_attribute("to", to.as_str())
            .with_child(result.to_element());
        context.deliver(&session.id(), carrier);
    }
    let mut fin = fin.to_element();
    if let Some(queryid) = &wanted.queryid {
        fin.set_attribute("queryid", queryid.clone());
    }
    request.result(Some(fin));
}

/// The preferences as the protocol has them.
fn to_wire(prefs: &ArchivePrefs) -> Prefs {
    Prefs {
        default: prefs.default.name().to_owned(),
        always: prefs.always.clone(),
        never: prefs.never.clone(),
    }
}

/// Stores new preferences (JIDs as bare JIDs) and answers with them.
async fn set_prefs(
    context: &Context,
    owner: &BareJid,
    payload: &Element,
) -> Result<Element, StanzaError> {
    let wanted = Prefs::from_element(payload).map_err(|error| bad(&error.to_string()))?;
    let default = ArchiveDefault::from_name(&wanted.default)
        .ok_or_else(|| bad("default is always, never or roster"))?;
    let bare = |jids: &[String]| -> Result<Vec<String>, StanzaError> {
        if jids.len() > MAX_PREFS {
            return Err(StanzaError::with_text(
                StanzaCondition::NotAcceptable,
                "too many JIDs",
            ));
        }
        let mut list = jids
            .iter()
            .map(|jid| {
                Jid::new(jid.trim())
                    .map(|jid| jid.to_bare().to_string())
                    .map_err(|_| StanzaError::new(StanzaCondition::JidMalformed))
            })
            .collect::<Result<Vec<_>, _>>()?;
        list.sort_unstable();
        list.dedup();
        Ok(list)
    };
    let prefs = ArchivePrefs {
        default,
        always: bare(&wanted.always)?,
        never: bare(&wanted.never)?,
    };
    if let Err(error) = context.store.set_archive_prefs(owner.as_str(), &prefs).await {
        tracing::error!(%error, "storing archive preferences failed");
        return Err(StanzaError::new(StanzaCondition::InternalServerError));
    }
    let answer = to_wire(&prefs).to_element();
    context.archive.remember(owner, Arc::new(prefs));
    context.changed_elsewhere(crate::cluster::Cache::ArchivePrefs, owner);
    Ok(answer)
}
