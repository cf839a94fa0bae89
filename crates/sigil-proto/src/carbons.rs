//! XEP-0280: Message Carbons (`urn:xmpp:carbons:2`): copies of the
//! messages a user's other devices sent and received, wrapped in a
//! XEP-0297 `<forwarded/>`.
//!
//! - [`Enable`] / [`Disable`]: what a client sends (in an IQ `set`) to
//!   start and stop receiving copies;
//! - [`eligible`]: which messages are copied (XEP-0280 §6.1, with the
//!   XEP-0334 `no-copy` hint and the `<private/>` opt-out);
//! - [`Carbon`]: a copy, built by the server ([`Carbon::wrap`]) and read
//!   by a client ([`Carbon::of`]), which believes one only when it comes
//!   from the client's own bare JID (§11: anyone can send a message that
//!   looks like a carbon).

use sigil_xml::{Element, ns};

use crate::error::ParseError;
use crate::payload::expect;

/// The XEP-0280 namespace.
pub const NS: &str = "urn:xmpp:carbons:2";

/// XEP-0297: Stanza Forwarding.
pub const FORWARD: &str = "urn:xmpp:forward:0";

/// XEP-0334: Message Processing Hints.
pub const HINTS: &str = "urn:xmpp:hints";

/// XEP-0085: Chat State Notifications.
pub const CHAT_STATES: &str = "http://jabber.org/protocol/chatstates";

/// XEP-0184: Message Delivery Receipts.
pub const RECEIPTS: &str = "urn:xmpp:receipts";

/// XEP-0333: Chat Markers.
pub const MARKERS: &str = "urn:xmpp:chat-markers:0";

/// XEP-0045 `muc#user`, which marks a private message through a room.
const MUC_USER: &str = "http://jabber.org/protocol/muc#user";

/// `<enable/>`: the client wants copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enable;

impl Enable {
    /// The `<enable/>` element.
    pub fn to_element(self) -> Element {
        Element::new("enable", NS)
    }
}

/// `<disable/>`: the client wants no more copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disable;

impl Disable {
    /// The `<disable/>` element.
    pub fn to_element(self) -> Element {
        Element::new("disable", NS)
    }
}

/// Which way a copied message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Another device of the user sent it.
    Sent,
    /// Another device of the user received it.
    Received,
}

impl Direction {
    /// The wrapper element's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Received => "received",
        }
    }
}

/// Whether a message is copied to the user's other devices (XEP-0280
/// §6.1): a `chat` message; a `normal` one with a body or an
/// IM payload (chat states, receipts, markers); never `groupchat`,
/// `error`, `headline`, one marked `<private/>` or `<no-copy/>`, nor a
/// private message through a room received at a full JID (the user's
/// other devices are not in the room). `to_full` says whether it was
/// addressed to a full JID.
pub fn eligible(message: &Element, to_full: bool, received: bool) -> bool {
    if message.has_child("private", NS) || message.has_child("no-copy", HINTS) {
        return false;
    }
    // A carbon is not copied again.
    if message.has_child("sent", NS) || message.has_child("received", NS) {
        return false;
    }
    match message.attribute("type").unwrap_or("normal") {
        "chat" => !(received && to_full && message.has_child("x", MUC_USER)),
        "normal" => message.children().any(|child| {
            child.is("body", ns::CLIENT)
                || matches!(child.namespace(), CHAT_STATES | RECEIPTS | MARKERS)
        }),
        _ => false,
    }
}

/// Takes out of a message anything that would pass for a carbon (a
/// client's message never carries one: they are the server's to make).
pub fn strip(message: &mut Element) {
    message.remove_children("sent", NS);
    message.remove_children("received", NS);
}

/// A copy of a message, as the server sends it to one device.
#[derive(Clone, Debug, PartialEq)]
pub struct Carbon {
    /// Which way the message went.
    pub direction: Direction,
    /// The message as it was sent or received.
    pub message: Element,
}

impl Carbon {
    /// The copy for `to` (a full JID of `account`), from `account`'s bare
    /// JID, of the same type as the message.
    pub fn wrap(self, account: &str, to: &str) -> Element {
        let kind = self
            .message
            .attribute("type")
            .unwrap_or("normal")
            .to_owned();
        Element::new("message", ns::CLIENT)
            .with_attribute("from", account)
            .with_attribute("to", to)
            .with_attribute("type", kind)
            .with_child(
                Element::new(self.direction.name(), NS)
                    .with_child(Element::new("forwarded", FORWARD).with_child(self.message)),
            )
    }

    /// The carbon in `stanza`, if it is one and comes from `account` (the
    /// receiving client's own bare JID); `None` for an ordinary message.
    /// A carbon from anyone else is an error: a forgery.
    pub fn of(stanza: &Element, account: &str) -> Result<Option<Self>, ParseError> {
        let Some((direction, wrapper)) = [Direction::Sent, Direction::Received]
            .into_iter()
            .find_map(|d| stanza.child(d.name(), NS).map(|w| (d, w)))
        else {
            return Ok(None);
        };
        if stanza.attribute("from") != Some(account) {
            return Err(ParseError::Invalid("a carbon not from the account"));
        }
        let forwarded = wrapper
            .child("forwarded", FORWARD)
            .ok_or(ParseError::MissingChild("forwarded"))?;
        let message = forwarded
            .child("message", ns::CLIENT)
            .ok_or(ParseError::MissingChild("message"))?;
        expect(message, "message", ns::CLIENT)?;
        Ok(Some(Self {
            direction,
            message: message.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn message(kind: &str) -> Element {
        Element::new("message", ns::CLIENT)
            .with_attribute("type", kind)
            .with_attribute("from", "juliet@capulet.example/balcony")
            .with_child(Element::new("body", ns::CLIENT).with_text("hi"))
    }

    #[test]
    fn chat_and_normal_with_body_are_copied_others_not() {
        assert!(eligible(&message("chat"), false, true));
        assert!(eligible(&message("normal"), false, false));
        for kind in ["groupchat", "error", "headline"] {
            assert!(!eligible(&message(kind), false, true), "{kind}");
        }
        let bare = Element::new("message", ns::CLIENT);
        assert!(!eligible(&bare, false, true), "normal without a body");
        let state =
            Element::new("message", ns::CLIENT).with_child(Element::new("composing", CHAT_STATES));
        assert!(eligible(&state, false, true), "a chat state");
    }

    #[test]
    fn private_no_copy_and_room_pms_are_not_copied() {
        let private = message("chat").with_child(Element::new("private", NS));
        assert!(!eligible(&private, false, false));
        let hint = message("chat").with_child(Element::new("no-copy", HINTS));
        assert!(!eligible(&hint, false, false));
        let pm = message("chat").with_child(Element::new("x", MUC_USER));
        assert!(!eligible(&pm, true, true), "received at a full JID");
        assert!(eligible(&pm, true, false), "sent");
    }

    #[test]
    fn wrap_and_read_back() {
        let original = message("chat");
        let wrapped = Carbon {
            direction: Direction::Received,
            message: original.clone(),
        }
        .wrap("romeo@montague.example", "romeo@montague.example/home");
        assert_eq!(wrapped.attribute("type"), Some("chat"));
        assert!(!eligible(&wrapped, true, true), "a carbon is not copied");
        let read = Carbon::of(&wrapped, "romeo@montague.example")
            .unwrap()
            .unwrap();
        assert_eq!(read.direction, Direction::Received);
        assert_eq!(read.message, original);
        assert!(
            Carbon::of(&original, "romeo@montague.example")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_carbon_from_anyone_else_is_refused_and_stripped() {
        let forged = Carbon {
            direction: Direction::Sent,
            message: message("chat"),
        }
        .wrap("mallory@evil.example", "romeo@montague.example/home");
        assert!(Carbon::of(&forged, "romeo@montague.example").is_err());
        let mut sent = forged;
        strip(&mut sent);
        assert!(
            Carbon::of(&sent, "romeo@montague.example")
                .unwrap()
                .is_none()
        );
    }
}
