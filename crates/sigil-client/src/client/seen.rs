//! Dropping messages received twice (XEP-0198 delivers at least once),
//! known by their XEP-0359 ids.

use std::collections::VecDeque;

use jid::{BareJid, Jid};
use sigil_proto::sid::{OriginId, StanzaId};
use sigil_xml::Element;

/// The keys of the messages received lately (XEP-0359): a server's stanza
/// id for this account, a sender's origin id. A message can come twice
/// when a connection or the server died before an acknowledgement
/// arrived (XEP-0198 delivers at least once); the second is dropped.
#[derive(Debug, Default)]
pub(super) struct Seen {
    keys: std::collections::HashSet<String>,
    order: VecDeque<String>,
}

/// Message keys remembered.
const SEEN_KEYS: usize = 20_000;

impl Seen {
    /// Whether `stanza` was received before; remembers it.
    pub(super) fn repeated(&mut self, stanza: &Element, own: &BareJid) -> bool {
        if stanza.name() != "message" {
            return false;
        }
        let mut keys: Vec<String> = StanzaId::all_of(stanza)
            .filter(|id| id.by == *own)
            .map(|id| format!("s {}", id.id))
            .collect();
        let origins = stanza
            .children()
            .filter_map(|child| OriginId::from_element(child).ok());
        for origin in origins {
            let from = stanza
                .attribute("from")
                .and_then(|f| Jid::new(f).ok())
                .map(|f| f.to_bare().to_string())
                .unwrap_or_default();
            keys.push(format!("o {from} {}", origin.id));
        }
        if keys.iter().any(|key| self.keys.contains(key)) {
            return true;
        }
        for key in keys {
            if self.keys.insert(key.clone()) {
                self.order.push_back(key);
            }
        }
        while self.order.len() > SEEN_KEYS {
            if let Some(old) = self.order.pop_front() {
                self.keys.remove(&old);
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use sigil_xml::ns;

    use super::*;

    #[test]
    fn a_message_seen_before_by_either_id_is_repeated() {
        let own = BareJid::new("bob@example.org").unwrap();
        let message = |from: &str, origin: Option<&str>, stanza_id: Option<(&str, &str)>| {
            let mut m = Element::new("message", ns::CLIENT).with_attribute("from", from);
            if let Some(id) = origin {
                m.push_child(OriginId::new(id).to_element());
            }
            if let Some((by, id)) = stanza_id {
                m.push_child(StanzaId::new(id, Jid::new(by).unwrap()).to_element());
            }
            m
        };
        let mut seen = Seen::default();
        let first = message("alice@example.org/a", Some("1"), None);
        assert!(!seen.repeated(&first, &own));
        // Sent again from another resource of the same sender.
        assert!(seen.repeated(&message("alice@example.org/b", Some("1"), None), &own));
        // The same origin id from someone else is another message.
        assert!(!seen.repeated(&message("carol@example.org/a", Some("1"), None), &own));
        // A stored copy: known by the server's stanza id, ours only.
        let stored = message(
            "dave@example.org/a",
            None,
            Some(("bob@example.org", "offline-7")),
        );
        assert!(!seen.repeated(&stored, &own));
        assert!(seen.repeated(&stored, &own));
        let foreign = message("dave@example.org/a", None, Some(("muc@example.org", "x")));
        assert!(!seen.repeated(&foreign, &own));
        assert!(!seen.repeated(&foreign, &own));
        // Messages without ids, and other stanzas, are never repeats.
        let plain = message("alice@example.org/a", None, None);
        assert!(!seen.repeated(&plain, &own));
        assert!(!seen.repeated(&plain, &own));
    }
}
