//! XEP-0012 last activity (`jabber:iq:last`). The server answers how
//! long it has been running; for an account, 0 seconds while it has an
//! available session (XEP-0012 §4), else the seconds since its last
//! session ended, with the status of its last unavailable presence
//! (`item-not-found` if it never ended one). Only the account itself and
//! the users subscribed to its presence (`to` or `both` in their roster)
//! may ask; others get `forbidden` (XEP-0012 §4 and §7), known account
//! or not. A query to a full JID is routed to that client.
//!
//! The end of an account's last session is recorded in the store
//! (`DocumentStore::set_last_activity`), with the status of the
//! unavailable presence it sent before, if any (at most
//! `MAX_STATUS_BYTES`; noted in `crate::profiles` meanwhile).

use jid::BareJid;
use sigil_proto::error::{StanzaCondition, StanzaError};
use sigil_proto::last::{LastActivity, NS};
use sigil_store::{StoreError, Subscription};
use sigil_xml::{Element, ns};

use super::{Addressed, Feature, Handling, IqRequest, Target};
use crate::context::Context;
use crate::state::SessionState;

pub(crate) struct Last;

/// The longest status kept (longer ones are cut at a character boundary).
const MAX_STATUS_BYTES: usize = 1024;

impl Feature for Last {
    fn namespaces(&self) -> &'static [&'static str] {
        &[NS]
    }

    fn target(&self) -> Target {
        Target::All
    }

    fn server_features(&self) -> &'static [&'static str] {
        &[NS]
    }

    fn iq<'a>(&'a self, request: IqRequest<'a>) -> Handling<'a> {
        Box::pin(async move {
            let outcome = handle(&request).await;
            request.answer(outcome);
        })
    }

    /// Notes the status of a broadcast unavailable presence that leaves
    /// the account with no available session; an available one clears it.
    fn presence(&self, context: &Context, session: &SessionState, stanza: &Element) {
        if stanza.attribute("to").is_some() {
            return;
        }
        let status = match stanza.attribute("type") {
            None => None,
            Some("unavailable") => {
                let available = context
                    .routes()
                    .sessions(&session.bare)
                    .iter()
                    .any(|entry| entry.presence.is_some());
                stanza
                    .child("status", ns::CLIENT)
                    .map(|status| cut(status.text()))
                    .filter(|status| !available && !status.is_empty())
            }
            Some(_) => return,
        };
        context.profiles.set_status(&session.bare, status);
    }

    /// The account's last session ended: that is its last activity.
    fn ended(&self, context: &Context, session: &SessionState) {
        if !context.routes().sessions(&session.bare).is_empty() {
            return;
        }
        let activity = sigil_store::LastActivity {
            at: now(),
            status: context.profiles.take_status(&session.bare),
        };
        let (store, owner) = (context.store.clone(), session.bare.to_string());
        tokio::spawn(async move {
            match store.set_last_activity(&owner, &activity).await {
                // The account was deleted.
                Ok(()) | Err(StoreError::NotFound) => {}
                Err(error) => tracing::warn!(%error, "last activity not recorded"),
            }
        });
    }
}

async fn handle(request: &IqRequest<'_>) -> Result<Option<Element>, StanzaError> {
    if (request.kind, request.payload.name()) != ("get", "query") {
        return Err(StanzaError::new(StanzaCondition::BadRequest));
    }
    let context = request.context;
    let answer = match &request.to {
        Addressed::Server => LastActivity {
            seconds: since(context.started_at),
            status: None,
        },
        Addressed::Account => of(context, &request.session.bare).await?,
        Addressed::OtherAccount(contact) => {
            let item = context
                .store
                .roster_item(request.session.bare.as_str(), contact.as_str())
                .await
                .map_err(internal)?;
            let subscribed = item
                .is_some_and(|i| matches!(i.subscription, Subscription::To | Subscription::Both));
            if !subscribed {
                return Err(StanzaError::new(StanzaCondition::Forbidden));
            }
            of(context, contact).await?
        }
    };
    Ok(Some(answer.to_element()))
}

/// The last activity of `account`, for someone allowed to know it.
async fn of(context: &Context, account: &BareJid) -> Result<LastActivity, StanzaError> {
    let available = context
        .routes()
        .sessions(account)
        .iter()
        .any(|entry| entry.presence.is_some());
    if available {
        return Ok(LastActivity {
            seconds: 0,
            status: None,
        });
    }
    match context.store.last_activity(account.as_str()).await {
        Ok(Some(last)) => Ok(LastActivity {
            seconds: since(last.at),
            status: last.status,
        }),
        Ok(None) => Err(StanzaError::new(StanzaCondition::ItemNotFound)),
        Err(error) => Err(internal(error)),
    }
}

/// `status`, cut to `MAX_STATUS_BYTES` at a character boundary.
fn cut(mut status: String) -> String {
    if status.len() > MAX_STATUS_BYTES {
        let mut end = MAX_STATUS_BYTES;
        while !status.is_char_boundary(end) {
            end -= 1;
        }
        status.truncate(end);
    }
    status
}

/// Seconds from `then` (Unix seconds) to now; 0 for a time ahead.
fn since(then: i64) -> u64 {
    u64::try_from(now().saturating_sub(then)).unwrap_or(0)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

fn internal(error: StoreError) -> StanzaError {
    tracing::error!(%error, "last activity failed");
    StanzaError::new(StanzaCondition::InternalServerError)
}
