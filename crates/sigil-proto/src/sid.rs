//! XEP-0359: Unique and Stable Stanza IDs (`urn:xmpp:sid:0`): the ids by
//! which a message is known again when it arrives twice.
//!
//! - [`OriginId`]: `<origin-id id='…'/>`, given by the sender;
//! - [`StanzaId`]: `<stanza-id id='…' by='…'/>`, given by the entity
//!   named in `by` (a server for the account it stores a message for).
//!
//! Both are children of the stanza. A stanza has at most one stanza id
//! per `by`; one that names someone else was not given by them and must
//! not be trusted as theirs.

use jid::Jid;
use sigil_xml::Element;

use crate::error::ParseError;
use crate::payload::{self, attribute, expect};

/// The XEP-0359 namespace.
pub const NS: &str = "urn:xmpp:sid:0";

/// `<origin-id/>`: the id the sender gave its stanza.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OriginId {
    /// The id.
    pub id: String,
}

impl OriginId {
    /// The element name.
    pub const NAME: &'static str = "origin-id";

    /// An origin id.
    pub fn new(id: impl Into<String>) -> Self {
        Self { id: id.into() }
    }

    /// Reads an `<origin-id/>`: `id` is required.
    pub fn from_element(element: &Element) -> Result<Self, ParseError> {
        expect(element, Self::NAME, NS)?;
        Ok(Self::new(attribute(element, "id")?))
    }

    /// The `<origin-id/>` element.
    pub fn to_element(&self) -> Element {
        Element::new(Self::NAME, NS).with_attribute("id", self.id.clone())
    }

    /// The first well-formed origin id among the children of `stanza`.
    pub fn of(stanza: &Element) -> Option<Self> {
        stanza
            .children()
            .find_map(|child| Self::from_element(child).ok())
    }
}

/// `<stanza-id/>`: the id an entity (`by`) gave a stanza it handled.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StanzaId {
    /// The id, unique and stable for `by`.
    pub id: String,
    /// Who gave it.
    pub by: Jid,
}

impl StanzaId {
    /// The element name.
    pub const NAME: &'static str = "stanza-id";

    /// A stanza id given by `by`.
    pub fn new(id: impl Into<String>, by: Jid) -> Self {
        Self { id: id.into(), by }
    }

    /// Reads a `<stanza-id/>`: `id` and `by` are required.
    pub fn from_element(element: &Element) -> Result<Self, ParseError> {
        expect(element, Self::NAME, NS)?;
        let id = attribute(element, "id")?;
        let by = payload::jid(attribute(element, "by")?)?;
        Ok(Self::new(id, by))
    }

    /// The `<stanza-id/>` element.
    pub fn to_element(&self) -> Element {
        Element::new(Self::NAME, NS)
            .with_attribute("id", self.id.clone())
            .with_attribute("by", self.by.to_string())
    }

    /// The well-formed stanza ids among the children of `stanza`, in
    /// order (find the one by a given entity with `.find(|s| s.by == …)`).
    pub fn all_of(stanza: &Element) -> impl Iterator<Item = Self> + '_ {
        stanza
            .children()
            .filter_map(|child| Self::from_element(child).ok())
    }
}

payload::conversions!(OriginId, StanzaId);

#[cfg(test)]
mod tests {
    use sigil_xml::ns;

    use super::*;

    fn parse(xml: &str) -> Element {
        Element::parse(xml).unwrap()
    }

    #[test]
    fn the_xep_examples_parse() {
        let alone = parse(
            "<stanza-id xmlns='urn:xmpp:sid:0' id='de305d54-75b4-431b-adb2-eb6b9e546013' \
                        by='room@muc.xmpp.org'/>",
        );
        let id = StanzaId::from_element(&alone).unwrap();
        assert_eq!(id.id, "de305d54-75b4-431b-adb2-eb6b9e546013");
        assert_eq!(id.by, Jid::new("room@muc.xmpp.org").unwrap());

        let message = parse(
            "<message xmlns='jabber:client' to='room@muc.example.org' type='groupchat'>
               <body>Typical body text</body>
               <stanza-id xmlns='urn:xmpp:sid:0'
                          id='5f3dbc5e-e1d3-4077-a492-693f3769c7ad'
                          by='room@muc.example.org'/>
               <origin-id xmlns='urn:xmpp:sid:0' id='de305d54-75b4-431b-adb2-eb6b9e546013'/>
             </message>",
        );
        assert_eq!(
            OriginId::of(&message),
            Some(OriginId::new("de305d54-75b4-431b-adb2-eb6b9e546013"))
        );
        let room = Jid::new("room@muc.example.org").unwrap();
        assert_eq!(
            StanzaId::all_of(&message).collect::<Vec<_>>(),
            [StanzaId::new("5f3dbc5e-e1d3-4077-a492-693f3769c7ad", room)]
        );
    }

    #[test]
    fn what_is_written_reads_back() {
        let origin = OriginId::new("a<b>&'c\"");
        let xml = origin.to_element().to_xml();
        assert_eq!(OriginId::from_element(&parse(&xml)).unwrap(), origin);
        let stanza_id = StanzaId::new("offline-7", Jid::new("bob@example.org").unwrap());
        assert_eq!(
            stanza_id.to_element().to_xml(),
            "<stanza-id xmlns=\"urn:xmpp:sid:0\" id=\"offline-7\" by=\"bob@example.org\"/>"
        );
        let element = Element::from(stanza_id.clone());
        assert_eq!(StanzaId::try_from(&element).unwrap(), stanza_id);
    }

    #[test]
    fn malformed_ids_are_not_read() {
        let message = Element::new("message", ns::CLIENT)
            .with_child(Element::new("origin-id", NS))
            .with_child(Element::new("stanza-id", NS).with_attribute("id", "1"))
            .with_child(
                Element::new("stanza-id", NS)
                    .with_attribute("id", "2")
                    .with_attribute("by", "a@@b"),
            )
            .with_child(Element::new("origin-id", "urn:xmpp:other").with_attribute("id", "3"));
        assert_eq!(OriginId::of(&message), None);
        assert_eq!(StanzaId::all_of(&message).count(), 0);
        assert_eq!(
            OriginId::from_element(&Element::new("origin-id", NS)),
            Err(ParseError::MissingAttribute("id"))
        );
        assert_eq!(
            StanzaId::from_element(&Element::new("stanza-id", NS).with_attribute("id", "1")),
            Err(ParseError::MissingAttribute("by"))
        );
    }
}
