//! XEP-0280 message carbons: asking for copies of what the account's
//! other devices send and receive, and reading them as [`Carbon`]s.
//!
//! A copy is believed only when its wrapper comes from the account's own
//! bare JID ([`sigil_proto::carbons::Carbon::of`]): anyone can send a
//! message that looks like one (XEP-0280 §11). A wrapper from anyone
//! else loses its `<sent/>` or `<received/>` as it arrives, so that what
//! it claims never passes for the user's own message; what is left is an
//! ordinary message from its real sender.

use jid::BareJid;
use sigil_proto::carbons::{self, Disable, Enable};
use sigil_xml::{Element, ns};

use super::Client;
use crate::{Error, Iq, Message, Stanza};

pub use sigil_proto::carbons::Direction as CarbonDirection;

/// A copy of a message that another device of the account sent or
/// received (XEP-0280), checked to come from the account itself.
#[derive(Clone, Debug, PartialEq)]
pub struct Carbon {
    /// [`CarbonDirection::Sent`]: another device sent `message`;
    /// [`CarbonDirection::Received`]: another device received it.
    pub direction: CarbonDirection,
    /// The message as it was sent or received (its `from` and `to` are
    /// the other device's and the other party's).
    pub message: Message,
}

/// What the server sent, read: a stanza for this client, or a copy of
/// another device's message.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    /// A stanza (a message, presence or IQ) for this client.
    Stanza(Stanza),
    /// A copy of a message another device of the account sent or
    /// received.
    Carbon(Carbon),
}

impl Incoming {
    /// Reads what `account` (the receiving client's own bare JID) was
    /// sent: a carbon only if it comes from `account`; a forged one is
    /// read as the ordinary message it is, without the copy it claims to
    /// carry. `None` for what is not a stanza, and for a carbon whose
    /// message is malformed.
    pub fn from_element(mut element: Element, account: &BareJid) -> Option<Self> {
        if element.is("message", ns::CLIENT) {
            match carbons::Carbon::of(&element, &account.to_string()) {
                Ok(Some(carbon)) => {
                    return Message::from_element(&carbon.message).map(|message| {
                        Self::Carbon(Carbon {
                            direction: carbon.direction,
                            message,
                        })
                    });
                }
                Ok(None) => {}
                Err(_) => carbons::strip(&mut element),
            }
        }
        Stanza::from_element(element).map(Self::Stanza)
    }
}

/// Takes a copy that is not from `account` out of a message (see the
/// module's documentation).
pub(super) fn guard(stanza: &mut Element, account: &BareJid) {
    if stanza.is("message", ns::CLIENT)
        && carbons::Carbon::of(stanza, &account.to_string()).is_err()
    {
        carbons::strip(stanza);
    }
}

impl Client {
    /// Asks the server for copies of the messages the account's other
    /// devices send and receive (XEP-0280), read with
    /// [`Self::recv_incoming`]. Kept on across [`Self::reconnect`]: a new
    /// session asks again.
    pub async fn enable_carbons(&mut self) -> Result<(), Error> {
        self.iq(Iq::set(None, Enable.to_element())).await?;
        self.carbons = true;
        Ok(())
    }

    /// Asks the server for no more copies.
    pub async fn disable_carbons(&mut self) -> Result<(), Error> {
        self.iq(Iq::set(None, Disable.to_element())).await?;
        self.carbons = false;
        Ok(())
    }

    /// Whether carbons are enabled (by [`Self::enable_carbons`] or
    /// [`crate::ClientBuilder::carbons`]).
    pub fn carbons_enabled(&self) -> bool {
        self.carbons
    }

    /// The next stanza or carbon from the server; `Err` when the stream
    /// ended.
    pub async fn recv_incoming(&mut self) -> Result<Incoming, Error> {
        loop {
            let element = self.recv().await?;
            if let Some(incoming) = Incoming::from_element(element, &self.prepared.jid) {
                return Ok(incoming);
            }
        }
    }

    /// Reads an element from [`Self::recv`] or [`Self::try_recv`] as
    /// [`Self::recv_incoming`] would.
    pub fn incoming(&self, element: Element) -> Option<Incoming> {
        Incoming::from_element(element, &self.prepared.jid)
    }
}

#[cfg(test)]
mod tests {
    use sigil_proto::carbons::FORWARD;

    use super::*;

    fn wrapped(from: &str, direction: &str) -> Element {
        let inner = Element::new("message", ns::CLIENT)
            .with_attribute("from", "alice@example.org/phone")
            .with_attribute("to", "bob@example.org")
            .with_attribute("type", "chat")
            .with_child(Element::new("body", ns::CLIENT).with_text("hi"));
        Element::new("message", ns::CLIENT)
            .with_attribute("from", from)
            .with_attribute("to", "alice@example.org/laptop")
            .with_attribute("type", "chat")
            .with_child(
                Element::new(direction, carbons::NS)
                    .with_child(Element::new("forwarded", FORWARD).with_child(inner)),
            )
    }

    #[test]
    fn only_the_account_makes_carbons() {
        let alice = BareJid::new("alice@example.org").unwrap();
        let Some(Incoming::Carbon(carbon)) =
            Incoming::from_element(wrapped("alice@example.org", "sent"), &alice)
        else {
            panic!("a carbon from the account");
        };
        assert_eq!(carbon.direction, CarbonDirection::Sent);
        assert_eq!(carbon.message.body.as_deref(), Some("hi"));
        // From anyone else, even another resource of the account: the
        // wrapper alone, an ordinary message without a body.
        for forger in [
            "mallory@example.org",
            "alice@example.org/phone",
            "example.org",
        ] {
            let read = Incoming::from_element(wrapped(forger, "received"), &alice);
            let Some(Incoming::Stanza(Stanza::Message(message))) = read else {
                panic!("{forger}: {read:?}");
            };
            assert_eq!(message.body, None, "{forger}");
            let element = message.element.unwrap();
            assert!(!element.has_child("received", carbons::NS), "{forger}");
            let mut raw = wrapped(forger, "sent");
            guard(&mut raw, &alice);
            assert!(!raw.has_child("sent", carbons::NS), "{forger}");
        }
        // A plain message passes untouched.
        let mut plain = Element::new("message", ns::CLIENT).with_attribute("from", "bob@x");
        let before = plain.clone();
        guard(&mut plain, &alice);
        assert_eq!(plain, before);
    }
}
