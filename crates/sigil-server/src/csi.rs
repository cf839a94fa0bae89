//! XEP-0352 client state indication, on the server: while a client says
//! its user is not looking, what can wait is held back — presence
//! updates (only the latest per sender) and chat states (only the latest
//! per conversation) — and everything else goes at once. When the client
//! is active again (or what is held reaches [`MAX_HELD`]), the held
//! stanzas go, presence first. A mobile client so wakes its radio for
//! messages, not for every contact going away and back.
//!
//! A held stanza that a newer one replaces is done with (its receipt
//! settled as safe): it told nothing the newer one does not.

use std::collections::HashMap;

use sigil_proto::carbons::{self, CHAT_STATES};
use sigil_xml::{Element, ns};

use crate::router::SessionMessage;

/// The most stanzas held for one client: beyond, they all go.
pub const MAX_HELD: usize = 1024;

/// The most bytes held for one client (as serialised): a stanza that
/// would take it further goes at once.
pub const MAX_HELD_BYTES: usize = 1 << 20;

/// What a client that is inactive has not been sent yet.
#[derive(Debug, Default)]
pub struct Held {
    presence: Slots,
    chat_states: Slots,
    /// A stanza could not wait (the bytes held would pass the cap): all
    /// of it is to go, in order.
    overflowed: bool,
}

/// Held stanzas in arrival order, one per key, with their sizes.
#[derive(Debug, Default)]
struct Slots {
    order: Vec<Option<(SessionMessage, usize)>>,
    index: HashMap<String, usize>,
    /// Bytes of what is held (as serialised).
    bytes: usize,
}

impl Slots {
    fn len(&self) -> usize {
        self.index.len()
    }

    /// The size of what is held under `key`.
    fn size_of(&self, key: &str) -> usize {
        self.index
            .get(key)
            .and_then(|&at| self.order[at].as_ref())
            .map_or(0, |(_, size)| *size)
    }

    /// Holds `message` (of `size` bytes) under `key`, replacing what was
    /// held under it.
    fn put(&mut self, key: String, message: SessionMessage, size: usize) {
        self.bytes += size;
        let message = Some((message, size));
        match self.index.get(&key) {
            Some(&at) => {
                if let Some((old, old_size)) = self.order[at].take() {
                    self.bytes -= old_size;
                    settle(old);
                }
                // Moved to the end: it is the newest.
                self.order.push(message);
                self.index.insert(key, self.order.len() - 1);
                if self.order.len() > 2 * self.index.len() + 16 {
                    self.compact();
                }
            }
            None => {
                self.order.push(message);
                self.index.insert(key, self.order.len() - 1);
            }
        }
    }

    /// Drops the places of replaced stanzas (a sender that changes its
    /// presence again and again holds one place, not one per change).
    fn compact(&mut self) {
        let mut position: HashMap<usize, String> =
            self.index.drain().map(|(key, at)| (at, key)).collect();
        let old = std::mem::take(&mut self.order);
        for (at, message) in old.into_iter().enumerate() {
            if let (Some(message), Some(key)) = (message, position.remove(&at)) {
                self.order.push(Some(message));
                self.index.insert(key, self.order.len() - 1);
            }
        }
    }

    /// Drops what is held under `key`.
    fn drop_key(&mut self, key: &str) {
        if let Some(at) = self.index.remove(key)
            && let Some((old, size)) = self.order[at].take()
        {
            self.bytes -= size;
            settle(old);
        }
    }

    fn drain(&mut self) -> impl Iterator<Item = SessionMessage> + '_ {
        self.index.clear();
        self.bytes = 0;
        self.order.drain(..).flatten().map(|(message, _)| message)
    }
}

/// A held stanza that will not be sent is done with.
fn settle(message: SessionMessage) {
    if let SessionMessage::Tracked(_, receipt) = message {
        receipt.done();
    }
}

/// What a chat state may come with and still be only a chat state: a
/// thread, ids, hints, a delay. Anything else (a body, an encrypted
/// payload, a reaction, a call) makes the message one to deliver.
const DISPOSABLE: &[&str] = &[
    CHAT_STATES,
    ns::CLIENT, // <thread/>, never <body/> alongside a chat state here
    sigil_proto::sid::NS,
    carbons::HINTS,
    ns::DELAY,
];

/// What a stanza is, for holding.
enum Kind {
    /// An available or unavailable presence from this JID.
    Presence(String),
    /// A chat state alone, in the conversation with this JID.
    ChatState(String),
    /// Anything else; a message from this JID ends what is held of its
    /// conversation's chat states.
    Urgent(Option<String>),
}

fn kind(stanza: &Element) -> Kind {
    let from = stanza.attribute("from").unwrap_or_default();
    match stanza.name() {
        "presence" if matches!(stanza.attribute("type"), None | Some("unavailable")) => {
            Kind::Presence(from.to_owned())
        }
        "message" => {
            // A carbon is about the conversation of the message it carries.
            let (message, key) = match carbon(stanza) {
                Some((inner, sent)) => {
                    let partner = if sent {
                        inner.attribute("to")
                    } else {
                        inner.attribute("from")
                    };
                    (inner, format!("carbon {}", partner.unwrap_or_default()))
                }
                None => (stanza, from.to_owned()),
            };
            let chat_state_alone = message.attribute("type") != Some("error")
                && message.children().any(|c| c.namespace() == CHAT_STATES)
                && message.children().all(|c| {
                    DISPOSABLE.contains(&c.namespace())
                        && !c.is("body", ns::CLIENT)
                        && !c.is("subject", ns::CLIENT)
                });
            match chat_state_alone {
                true => Kind::ChatState(key),
                false => Kind::Urgent(Some(key)),
            }
        }
        _ => Kind::Urgent(None),
    }
}

/// The message a carbon carries, and whether it was sent (not received).
fn carbon(stanza: &Element) -> Option<(&Element, bool)> {
    let (wrapper, sent) = match stanza.child("sent", carbons::NS) {
        Some(wrapper) => (wrapper, true),
        None => (stanza.child("received", carbons::NS)?, false),
    };
    let message = wrapper
        .child("forwarded", carbons::FORWARD)?
        .child("message", ns::CLIENT)?;
    Some((message, sent))
}

impl Held {
    /// Holds `message` if it can wait; else gives it back, to be sent now.
    pub fn hold(&mut self, message: SessionMessage) -> Option<SessionMessage> {
        let stanza = match &message {
            SessionMessage::Stanza(stanza) | SessionMessage::Tracked(stanza, _) => stanza,
        };
        let kind = kind(stanza);
        let mut size = 0;
        if let Kind::Presence(key) | Kind::ChatState(key) = &kind {
            // What may wait is bounded in bytes too: a stanza that would
            // take it further goes now.
            size = stanza.to_xml().len();
            let replaced = match &kind {
                Kind::Presence(_) => self.presence.size_of(key),
                _ => self.chat_states.size_of(key),
            };
            let held = self.presence.bytes + self.chat_states.bytes - replaced;
            if held.saturating_add(size) > MAX_HELD_BYTES {
                self.overflowed = true;
                return Some(message);
            }
        }
        // A held stanza is not what the sender waits for: it is as good as
        // delivered (a newer one may replace it), so the sender's
        // acknowledgements go on.
        let message = match message {
            SessionMessage::Tracked(stanza, receipt) if !matches!(kind, Kind::Urgent(_)) => {
                receipt.done();
                SessionMessage::Stanza(stanza)
            }
            other => other,
        };
        match kind {
            Kind::Presence(from) => self.presence.put(from, message, size),
            Kind::ChatState(key) => self.chat_states.put(key, message, size),
            Kind::Urgent(key) => {
                // The message says more than the chat states before it.
                if let Some(key) = key {
                    self.chat_states.drop_key(&key);
                }
                return Some(message);
            }
        }
        None
    }

    /// Whether as much is held as may be.
    pub fn is_full(&self) -> bool {
        self.overflowed || self.presence.len() + self.chat_states.len() >= MAX_HELD
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.presence.len() + self.chat_states.len() == 0
    }

    /// Everything held, presence first, each in the order it came.
    pub fn drain(&mut self) -> Vec<SessionMessage> {
        self.overflowed = false;
        let mut all: Vec<SessionMessage> = self.presence.drain().collect();
        all.extend(self.chat_states.drain());
        all
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn presence(from: &str, show: Option<&str>) -> SessionMessage {
        let mut presence = Element::new("presence", ns::CLIENT).with_attribute("from", from);
        if let Some(show) = show {
            presence.push_child(Element::new("show", ns::CLIENT).with_text(show));
        }
        SessionMessage::Stanza(Box::new(presence))
    }

    fn message(from: &str, body: Option<&str>, state: Option<&str>) -> SessionMessage {
        let mut message = Element::new("message", ns::CLIENT)
            .with_attribute("from", from)
            .with_attribute("type", "chat");
        if let Some(body) = body {
            message.push_child(Element::new("body", ns::CLIENT).with_text(body));
        }
        if let Some(state) = state {
            message.push_child(Element::new(state, CHAT_STATES));
        }
        SessionMessage::Stanza(Box::new(message))
    }

    fn describe(message: &SessionMessage) -> String {
        let SessionMessage::Stanza(stanza) = message else {
            unreachable!()
        };
        let detail = stanza
            .children()
            .map(|c| match c.name() {
                "show" | "body" => c.text(),
                name => name.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("+");
        format!(
            "{} {} {detail}",
            stanza.name(),
            stanza.attribute("from").unwrap()
        )
    }

    #[test]
    fn presence_and_chat_states_wait_messages_do_not() {
        let mut held = Held::default();
        assert!(held.hold(presence("a@x/1", Some("away"))).is_none());
        assert!(held.hold(presence("b@x/1", None)).is_none());
        assert!(held.hold(presence("a@x/1", Some("xa"))).is_none());
        assert!(
            held.hold(message("c@x/1", None, Some("composing")))
                .is_none()
        );
        assert!(
            held.hold(message("d@x/1", None, Some("composing")))
                .is_none()
        );
        // A message with a body goes now, and ends c's held chat state.
        let now = held.hold(message("c@x/1", Some("hi"), Some("active")));
        assert_eq!(describe(&now.unwrap()), "message c@x/1 hi+active");
        // An IQ goes now.
        let iq = SessionMessage::Stanza(Box::new(
            Element::new("iq", ns::CLIENT).with_attribute("from", "x"),
        ));
        assert!(held.hold(iq).is_some());
        // A subscription request goes now.
        let subscribe = SessionMessage::Stanza(Box::new(
            Element::new("presence", ns::CLIENT)
                .with_attribute("from", "e@x")
                .with_attribute("type", "subscribe"),
        ));
        assert!(held.hold(subscribe).is_some());
        let flushed: Vec<String> = held.drain().iter().map(describe).collect();
        assert_eq!(
            flushed,
            [
                "presence b@x/1 ",
                "presence a@x/1 xa",
                "message d@x/1 composing"
            ]
        );
        assert!(held.drain().is_empty());
    }

    #[test]
    fn a_flapping_sender_holds_one_place() {
        let mut held = Held::default();
        for n in 0..10_000 {
            let show = if n % 2 == 0 { "away" } else { "xa" };
            assert!(held.hold(presence("a@x/1", Some(show))).is_none());
        }
        assert!(
            held.presence.order.len() < 40,
            "{}",
            held.presence.order.len()
        );
        let flushed: Vec<String> = held.drain().iter().map(describe).collect();
        assert_eq!(flushed, ["presence a@x/1 xa"]);
    }

    #[test]
    fn a_held_chat_state_lets_its_sender_be_acknowledged() {
        let receipts = std::sync::Arc::new(crate::router::Receipts::default());
        let (receipt, mut settled) = receipts.issue();
        let SessionMessage::Stanza(stanza) = message("c@x/1", None, Some("paused")) else {
            unreachable!()
        };
        let mut held = Held::default();
        assert!(
            held.hold(SessionMessage::Tracked(stanza, receipt))
                .is_none()
        );
        assert_eq!(settled.try_recv(), Ok(true), "settled as safe when held");
        assert!(matches!(held.drain()[..], [SessionMessage::Stanza(_)]));
    }

    #[test]
    fn a_chat_state_with_a_payload_is_delivered() {
        let mut held = Held::default();
        for payload in [
            Element::new("encrypted", "urn:xmpp:omemo:2"),
            Element::new("reactions", "urn:xmpp:reactions:0"),
            Element::new("body", ns::CLIENT).with_text("hi"),
        ] {
            let SessionMessage::Stanza(mut stanza) = message("c@x/1", None, Some("active")) else {
                unreachable!()
            };
            stanza.push_child(payload);
            assert!(held.hold(SessionMessage::Stanza(stanza)).is_some());
        }
        // With a thread and an id it is still only a chat state.
        let SessionMessage::Stanza(mut stanza) = message("c@x/1", None, Some("composing")) else {
            unreachable!()
        };
        stanza.push_child(Element::new("thread", ns::CLIENT).with_text("t"));
        stanza
            .push_child(Element::new("origin-id", sigil_proto::sid::NS).with_attribute("id", "1"));
        assert!(held.hold(SessionMessage::Stanza(stanza)).is_none());
    }

    #[test]
    fn held_bytes_are_capped_and_an_overflow_releases_all_in_order() {
        let mut held = Held::default();
        let big = "x".repeat(100 * 1024);
        let mut n = 0;
        loop {
            let presence = SessionMessage::Stanza(Box::new(
                Element::new("presence", ns::CLIENT)
                    .with_attribute("from", format!("u{n}@x/r"))
                    .with_child(Element::new("status", ns::CLIENT).with_text(big.clone())),
            ));
            n += 1;
            if held.hold(presence).is_some() {
                break;
            }
            assert!(n < 20, "never capped");
        }
        assert!(held.is_full());
        assert_eq!(held.drain().len(), n - 1);
        assert!(!held.is_full());
        // Replacing a held stanza does not count twice.
        for _ in 0..100 {
            let presence = SessionMessage::Stanza(Box::new(
                Element::new("presence", ns::CLIENT)
                    .with_attribute("from", "same@x/r")
                    .with_child(Element::new("status", ns::CLIENT).with_text(big.clone())),
            ));
            assert!(held.hold(presence).is_none());
        }
        assert!(!held.is_full());
    }

    #[test]
    fn held_is_capped() {
        let mut held = Held::default();
        for n in 0..MAX_HELD {
            assert!(!held.is_full());
            assert!(held.hold(presence(&format!("u{n}@x/r"), None)).is_none());
        }
        assert!(held.is_full());
        assert_eq!(held.drain().len(), MAX_HELD);
    }
}
