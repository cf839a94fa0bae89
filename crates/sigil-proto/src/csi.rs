//! XEP-0352: Client State Indication (`urn:xmpp:csi:0`). A bound client
//! tells the server whether its user is looking (`<active/>`) or not
//! (`<inactive/>`): while inactive, the server holds back what can wait
//! (presence updates, chat states) and sends it when the client is
//! active again. The server offers `<csi/>` among the stream features
//! after authentication; the two elements are nonzas, not stanzas (not
//! counted by XEP-0198).

use sigil_xml::Element;

/// The XEP-0352 namespace.
pub const NS: &str = "urn:xmpp:csi:0";

/// What a client says of its user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// The user is looking: everything at once.
    Active,
    /// The user is away: what can wait, waits.
    Inactive,
}

impl State {
    /// The element a client sends.
    pub fn to_element(self) -> Element {
        Element::new(
            match self {
                Self::Active => "active",
                Self::Inactive => "inactive",
            },
            NS,
        )
    }

    /// Reads `<active/>` or `<inactive/>`.
    pub fn from_element(element: &Element) -> Option<Self> {
        match (element.namespace(), element.name()) {
            (NS, "active") => Some(Self::Active),
            (NS, "inactive") => Some(Self::Inactive),
            _ => None,
        }
    }
}
