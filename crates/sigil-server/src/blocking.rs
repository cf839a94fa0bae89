//! XEP-0191 blocking in routing: users keep a list of JIDs whose stanzas
//! they do not want, and to whom they send nothing (the `blocking`
//! feature answers the requests that change it).
//!
//! Lists are stored per account (`BlockingStore`) and cached in memory
//! (`blocklists`), replaced when the user changes them, so routing reads
//! no store per stanza. A stanza to a blocked JID gets `not-acceptable`
//! with `<blocked/>`; one from a user to someone who blocks them,
//! `service-unavailable`; presence is dropped silently. At most
//! `limits.max_blocked_jids` per list (`not-allowed` beyond).

use std::sync::Arc;

use jid::{BareJid, Jid};
use sigil_proto::error::{StanzaCondition, StanzaError};
use sigil_store::StoreError;

pub use crate::blocklists::Blocklists;
use crate::context::Context;

pub use sigil_proto::blocking::{NS, NS_ERRORS};

/// The owner's blocklist; `Err` when the store could not be read.
///
/// Kept in memory only for an account with a session (the lists of
/// accounts that are away are read when needed), and only if no change
/// or end came while it was read: a list read before a change is not
/// kept after it.
pub(crate) async fn list(context: &Context, owner: &BareJid) -> Result<Arc<Vec<Jid>>, StoreError> {
    if let Some(list) = context.blocklists.cached(owner) {
        return Ok(list);
    }
    let generation = context.blocklists.generation();
    let stored = context.store.blocklist(owner.as_str()).await?;
    let parsed: Vec<Jid> = stored.iter().filter_map(|j| Jid::new(j).ok()).collect();
    if context.routes().sessions(owner).is_empty() {
        return Ok(Arc::new(parsed));
    }
    Ok(context.blocklists.put(owner, parsed, generation))
}

/// Whether `owner` blocks `other` (XEP-0191 §3.3 matching: a full JID
/// item matches that resource, a bare JID item every resource of it, a
/// domain item everything from the domain). A list that cannot be read
/// counts as blocking (fail closed: the stanza is refused, not let
/// through).
pub async fn blocks(context: &Context, owner: &BareJid, other: &Jid) -> bool {
    if owner.domain().as_str() != context.domain {
        return false;
    }
    match list(context, owner).await {
        Ok(list) => list.iter().any(|item| matches(item, other)),
        Err(error) => {
            tracing::error!(%error, %owner, "blocklist read failed: the stanza is refused");
            true
        }
    }
}

fn matches(item: &Jid, other: &Jid) -> bool {
    match (item.node(), item.resource()) {
        (Some(_), Some(_)) => item == other,
        (Some(_), None) => item.to_bare() == other.to_bare(),
        (None, Some(resource)) => {
            item.domain() == other.domain() && other.resource() == Some(resource)
        }
        (None, None) => item.domain() == other.domain(),
    }
}

/// The error for a stanza to a JID the sender blocks.
pub fn blocked_error() -> StanzaError {
    StanzaError::new(StanzaCondition::NotAcceptable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let j = |s: &str| Jid::new(s).unwrap();
        assert!(matches(&j("a@x/r"), &j("a@x/r")));
        assert!(!matches(&j("a@x/r"), &j("a@x/s")));
        assert!(matches(&j("a@x"), &j("a@x/s")));
        assert!(matches(&j("a@x"), &j("a@x")));
        assert!(!matches(&j("a@x"), &j("b@x")));
        assert!(matches(&j("x"), &j("b@x/r")));
        assert!(!matches(&j("x"), &j("b@y")));
        assert!(matches(&j("x/r"), &j("x/r")));
        assert!(!matches(&j("x/r"), &j("x/s")));
    }
}
