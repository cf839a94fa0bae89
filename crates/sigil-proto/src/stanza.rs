//! Stanzas as typed values (RFC 6120 §8, RFC 6121 §4 and §5): the common
//! fields of `<message/>`, `<presence/>` and `<iq/>` in `jabber:client`,
//! with the element kept for everything else (extensions, errors).
//!
//! Shared by the server and the client; the client re-exports them at its
//! root.

use jid::Jid;
use sigil_xml::{Element, ns};

/// A stanza: a message, a presence or an IQ.
#[derive(Clone, Debug, PartialEq)]
pub enum Stanza {
    /// `<message/>`.
    Message(Message),
    /// `<presence/>`.
    Presence(Presence),
    /// `<iq/>`.
    Iq(Iq),
}

impl Stanza {
    /// Reads a stanza; `None` for anything that is not one (or has a
    /// malformed address or type).
    pub fn from_element(element: Element) -> Option<Self> {
        if element.namespace() != ns::CLIENT {
            return None;
        }
        match element.name() {
            "message" => Message::from_element(&element).map(Self::Message),
            "presence" => Presence::from_element(&element).map(Self::Presence),
            "iq" => Iq::from_element(&element).map(Self::Iq),
            _ => None,
        }
    }
}

fn address(element: &Element, name: &str) -> Option<Option<Jid>> {
    match element.attribute(name) {
        None => Some(None),
        Some(value) => Jid::new(value).ok().map(Some),
    }
}

fn set_common(element: &mut Element, from: Option<&Jid>, to: Option<&Jid>, id: &str) {
    if let Some(to) = to {
        element.set_attribute("to", to.to_string());
    }
    if let Some(from) = from {
        element.set_attribute("from", from.to_string());
    }
    if !id.is_empty() {
        element.set_attribute("id", id.to_owned());
    }
}

/// The `type` of a message (RFC 6121 §5.2.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MessageType {
    /// One-to-one chat.
    Chat,
    /// An error bounced back.
    Error,
    /// Multi-user chat.
    Groupchat,
    /// An alert or notice.
    Headline,
    /// The default.
    #[default]
    Normal,
}

impl MessageType {
    fn parse(value: Option<&str>) -> Option<Self> {
        Some(match value {
            None | Some("normal") => Self::Normal,
            Some("chat") => Self::Chat,
            Some("error") => Self::Error,
            Some("groupchat") => Self::Groupchat,
            Some("headline") => Self::Headline,
            Some(_) => return None,
        })
    }

    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Error => "error",
            Self::Groupchat => "groupchat",
            Self::Headline => "headline",
            Self::Normal => "normal",
        }
    }
}

/// A `<message/>`.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// The sender (set by the server on what it delivers).
    pub from: Option<Jid>,
    /// The addressee.
    pub to: Option<Jid>,
    /// The stanza id (empty: none).
    pub id: String,
    /// The type.
    pub kind: MessageType,
    /// The body text.
    pub body: Option<String>,
    /// The whole element as received (`None` for messages built here).
    pub element: Option<Element>,
}

impl Message {
    /// A chat message with a body and a fresh id.
    pub fn chat(to: Jid, body: impl Into<String>) -> Self {
        Self {
            from: None,
            to: Some(to),
            id: crate::random_id(),
            kind: MessageType::Chat,
            body: Some(body.into()),
            element: None,
        }
    }

    /// Reads a `<message/>`.
    pub fn from_element(element: &Element) -> Option<Self> {
        if !element.is("message", ns::CLIENT) {
            return None;
        }
        Some(Self {
            from: address(element, "from")?,
            to: address(element, "to")?,
            id: element.attribute("id").unwrap_or_default().to_owned(),
            kind: MessageType::parse(element.attribute("type"))?,
            body: element.child("body", ns::CLIENT).map(Element::text),
            element: Some(element.clone()),
        })
    }

    /// The element to send: the received element with the fields applied,
    /// or a new one.
    pub fn to_element(&self) -> Element {
        let mut element = self
            .element
            .clone()
            .unwrap_or_else(|| Element::new("message", ns::CLIENT));
        set_common(&mut element, self.from.as_ref(), self.to.as_ref(), &self.id);
        if self.kind != MessageType::Normal {
            element.set_attribute("type", self.kind.as_str());
        }
        if let Some(body) = &self.body
            && self.element.is_none()
        {
            element.push_child(Element::new("body", ns::CLIENT).with_text(body.clone()));
        }
        element
    }
}

/// The `type` of a presence (RFC 6121 §4.7.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PresenceType {
    /// Available (no `type` attribute).
    #[default]
    Available,
    /// Gone offline.
    Unavailable,
    /// Asks to see the addressee's presence.
    Subscribe,
    /// Grants a subscription.
    Subscribed,
    /// Ends our subscription.
    Unsubscribe,
    /// Cancels the addressee's subscription.
    Unsubscribed,
    /// Asks for the current presence.
    Probe,
    /// An error bounced back.
    Error,
}

impl PresenceType {
    fn parse(value: Option<&str>) -> Option<Self> {
        Some(match value {
            None => Self::Available,
            Some("unavailable") => Self::Unavailable,
            Some("subscribe") => Self::Subscribe,
            Some("subscribed") => Self::Subscribed,
            Some("unsubscribe") => Self::Unsubscribe,
            Some("unsubscribed") => Self::Unsubscribed,
            Some("probe") => Self::Probe,
            Some("error") => Self::Error,
            Some(_) => return None,
        })
    }

    fn as_attribute(self) -> Option<&'static str> {
        match self {
            Self::Available => None,
            Self::Unavailable => Some("unavailable"),
            Self::Subscribe => Some("subscribe"),
            Self::Subscribed => Some("subscribed"),
            Self::Unsubscribe => Some("unsubscribe"),
            Self::Unsubscribed => Some("unsubscribed"),
            Self::Probe => Some("probe"),
            Self::Error => Some("error"),
        }
    }
}

/// A `<presence/>`.
#[derive(Clone, Debug, PartialEq)]
pub struct Presence {
    /// The sender.
    pub from: Option<Jid>,
    /// The addressee (`None`: broadcast to the roster).
    pub to: Option<Jid>,
    /// The stanza id (empty: none).
    pub id: String,
    /// The type.
    pub kind: PresenceType,
    /// `away`, `chat`, `dnd` or `xa`.
    pub show: Option<String>,
    /// Free text.
    pub status: Option<String>,
    /// The whole element as received.
    pub element: Option<Element>,
}

impl Presence {
    /// Initial or updated availability, broadcast.
    pub fn available() -> Self {
        Self::of_type(PresenceType::Available, None)
    }

    /// A presence of this type to this addressee (subscriptions…).
    pub fn of_type(kind: PresenceType, to: Option<Jid>) -> Self {
        Self {
            from: None,
            to,
            id: String::new(),
            kind,
            show: None,
            status: None,
            element: None,
        }
    }

    /// Reads a `<presence/>`.
    pub fn from_element(element: &Element) -> Option<Self> {
        if !element.is("presence", ns::CLIENT) {
            return None;
        }
        Some(Self {
            from: address(element, "from")?,
            to: address(element, "to")?,
            id: element.attribute("id").unwrap_or_default().to_owned(),
            kind: PresenceType::parse(element.attribute("type"))?,
            show: element.child("show", ns::CLIENT).map(Element::text),
            status: element.child("status", ns::CLIENT).map(Element::text),
            element: Some(element.clone()),
        })
    }

    /// The element to send.
    pub fn to_element(&self) -> Element {
        if let Some(element) = &self.element {
            return element.clone();
        }
        let mut element = Element::new("presence", ns::CLIENT);
        set_common(&mut element, self.from.as_ref(), self.to.as_ref(), &self.id);
        if let Some(kind) = self.kind.as_attribute() {
            element.set_attribute("type", kind);
        }
        if let Some(show) = &self.show {
            element.push_child(Element::new("show", ns::CLIENT).with_text(show.clone()));
        }
        if let Some(status) = &self.status {
            element.push_child(Element::new("status", ns::CLIENT).with_text(status.clone()));
        }
        element
    }
}

/// The `type` of an IQ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IqType {
    /// A request for data.
    Get,
    /// A request to change something.
    Set,
    /// A successful answer.
    Result,
    /// A failed answer.
    Error,
}

impl IqType {
    fn parse(value: Option<&str>) -> Option<Self> {
        Some(match value? {
            "get" => Self::Get,
            "set" => Self::Set,
            "result" => Self::Result,
            "error" => Self::Error,
            _ => return None,
        })
    }

    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Set => "set",
            Self::Result => "result",
            Self::Error => "error",
        }
    }
}

/// An `<iq/>`: a request or its answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Iq {
    /// The sender.
    pub from: Option<Jid>,
    /// The addressee (`None`: the user's own account, answered by the
    /// server).
    pub to: Option<Jid>,
    /// The id that pairs a request with its answer (empty: pick one when
    /// sending).
    pub id: String,
    /// The type.
    pub kind: IqType,
    /// The one child element (the query), if any.
    pub payload: Option<Element>,
}

impl Iq {
    /// A `get` request.
    pub fn get(to: Option<Jid>, payload: Element) -> Self {
        Self::request(IqType::Get, to, payload)
    }

    /// A `set` request.
    pub fn set(to: Option<Jid>, payload: Element) -> Self {
        Self::request(IqType::Set, to, payload)
    }

    fn request(kind: IqType, to: Option<Jid>, payload: Element) -> Self {
        Self {
            from: None,
            to,
            id: String::new(),
            kind,
            payload: Some(payload),
        }
    }

    /// A `result` answer to `request`.
    pub fn result_for(request: &Self, payload: Option<Element>) -> Self {
        Self {
            from: None,
            to: request.from.clone(),
            id: request.id.clone(),
            kind: IqType::Result,
            payload,
        }
    }

    /// Reads an `<iq/>`.
    pub fn from_element(element: &Element) -> Option<Self> {
        if !element.is("iq", ns::CLIENT) {
            return None;
        }
        Some(Self {
            from: address(element, "from")?,
            to: address(element, "to")?,
            id: element.attribute("id")?.to_owned(),
            kind: IqType::parse(element.attribute("type"))?,
            payload: element
                .children()
                .find(|c| c.name() != "error" || c.namespace() != ns::CLIENT)
                .cloned(),
        })
    }

    /// The element to send.
    pub fn to_element(&self) -> Element {
        let mut element = Element::new("iq", ns::CLIENT).with_attribute("type", self.kind.as_str());
        set_common(&mut element, self.from.as_ref(), self.to.as_ref(), &self.id);
        if let Some(payload) = &self.payload {
            element.push_child(payload.clone());
        }
        element
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanzas_round_trip_through_elements() {
        let message = Message::chat(Jid::new("bob@example.org").unwrap(), "hi <there>");
        let element = message.to_element();
        let read = Message::from_element(&Element::parse(&element.to_xml()).unwrap()).unwrap();
        assert_eq!(read.body.as_deref(), Some("hi <there>"));
        assert_eq!(read.kind, MessageType::Chat);
        assert_eq!(read.to, message.to);
        assert_eq!(read.id, message.id);

        let mut presence = Presence::available();
        presence.show = Some("away".into());
        let read = Presence::from_element(&presence.to_element()).unwrap();
        assert_eq!(read.kind, PresenceType::Available);
        assert_eq!(read.show.as_deref(), Some("away"));

        let iq = Iq::get(None, Element::new("query", "jabber:iq:roster"));
        let element = iq.to_element();
        assert_eq!(element.attribute("type"), Some("get"));
        assert!(Iq::from_element(&element).is_none(), "no id yet");
    }

    #[test]
    fn malformed_stanzas_are_not_typed() {
        let bad_type = Element::parse("<message xmlns='jabber:client' type='shout'/>").unwrap();
        assert!(Stanza::from_element(bad_type).is_none());
        let bad_jid = Element::parse("<presence xmlns='jabber:client' from='a@@b'/>").unwrap();
        assert!(Stanza::from_element(bad_jid).is_none());
        let other = Element::parse("<message xmlns='jabber:server'/>").unwrap();
        assert!(Stanza::from_element(other).is_none());
    }
}
