//! XEP-0191: Blocking Command (`urn:xmpp:blocking`, and
//! `urn:xmpp:blocking:errors` for the error condition): the payloads by
//! which users read and change the list of JIDs they block.
//!
//! - [`Blocklist`]: `<blocklist/>`, empty in the `get` request, and in
//!   the answer one item per blocked JID;
//! - [`Block`] and [`Unblock`]: the changes a client asks for, and the
//!   pushes by which the server tells every resource of the user about
//!   them; an empty [`Unblock`] unblocks everyone;
//! - [`Blocked`]: the application condition added to the `not-acceptable`
//!   error a user gets for a stanza to a JID they block.
//!
//! Items are `<item jid='…'/>`; an item without a `jid`, or with one that
//! does not parse, is a malformed JID ([`ParseError::MalformedJid`], which
//! a server answers with `jid-malformed`).

use jid::Jid;
use sigil_xml::Element;

use crate::error::ParseError;
use crate::payload::{self, expect};

/// The XEP-0191 namespace.
pub const NS: &str = "urn:xmpp:blocking";

/// Where the [`Blocked`] error condition lives.
pub const NS_ERRORS: &str = "urn:xmpp:blocking:errors";

/// `<blocklist/>`: the JIDs the user blocks. Empty, it is the request for
/// them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blocklist {
    /// The blocked JIDs.
    pub items: Vec<Jid>,
}

impl Blocklist {
    /// Reads a `<blocklist/>`.
    pub fn from_element(element: &Element) -> Result<Self, ParseError> {
        expect(element, "blocklist", NS)?;
        Ok(Self {
            items: items(element)?,
        })
    }

    /// The `<blocklist/>` element.
    pub fn to_element(&self) -> Element {
        with_items("blocklist", &self.items)
    }
}

/// `<block/>`: blocks JIDs; at least one (XEP-0191 §3.3: `bad-request`
/// otherwise).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The JIDs to block.
    pub items: Vec<Jid>,
}

impl Block {
    /// Reads a `<block/>`; one without items is
    /// [`ParseError::Invalid`].
    pub fn from_element(element: &Element) -> Result<Self, ParseError> {
        expect(element, "block", NS)?;
        let items = items(element)?;
        if items.is_empty() {
            return Err(ParseError::Invalid("block at least one JID"));
        }
        Ok(Self { items })
    }

    /// The `<block/>` element.
    pub fn to_element(&self) -> Element {
        with_items("block", &self.items)
    }
}

/// `<unblock/>`: unblocks JIDs; without items, every JID (XEP-0191 §3.5).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unblock {
    /// The JIDs to unblock (empty: all).
    pub items: Vec<Jid>,
}

impl Unblock {
    /// Reads an `<unblock/>`.
    pub fn from_element(element: &Element) -> Result<Self, ParseError> {
        expect(element, "unblock", NS)?;
        Ok(Self {
            items: items(element)?,
        })
    }

    /// The `<unblock/>` element.
    pub fn to_element(&self) -> Element {
        with_items("unblock", &self.items)
    }
}

/// `<blocked xmlns='urn:xmpp:blocking:errors'/>`: the stanza was not sent
/// because its sender blocks its addressee. It goes in the `<error/>`,
/// after the `not-acceptable` condition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Blocked;

impl Blocked {
    /// Reads a `<blocked/>`.
    pub fn from_element(element: &Element) -> Result<Self, ParseError> {
        expect(element, "blocked", NS_ERRORS)?;
        Ok(Self)
    }

    /// The `<blocked/>` element.
    pub fn to_element(&self) -> Element {
        Element::new("blocked", NS_ERRORS)
    }

    /// Whether the `<error/>` of this error stanza carries the condition.
    pub fn is_in(stanza: &Element) -> bool {
        stanza
            .children()
            .filter(|c| c.name() == "error")
            .any(|error| error.has_child("blocked", NS_ERRORS))
    }
}

payload::conversions!(Blocklist, Block, Unblock, Blocked);

/// The JIDs of the `<item/>` children, in order.
fn items(element: &Element) -> Result<Vec<Jid>, ParseError> {
    element
        .children()
        .filter(|c| c.is("item", NS))
        .map(|item| payload::jid(item.attribute("jid").unwrap_or_default()))
        .collect()
}

fn with_items(name: &str, items: &[Jid]) -> Element {
    let mut element = Element::new(name, NS);
    for jid in items {
        element.push_child(Element::new("item", NS).with_attribute("jid", jid.to_string()));
    }
    element
}

#[cfg(test)]
mod tests {
    use sigil_xml::ns;

    use super::*;
    use crate::error::{StanzaCondition, StanzaError};

    fn parse(xml: &str) -> Element {
        Element::parse(xml).unwrap()
    }

    fn jid(s: &str) -> Jid {
        Jid::new(s).unwrap()
    }

    #[test]
    fn the_xep_examples_parse() {
        let request = parse("<blocklist xmlns='urn:xmpp:blocking'/>");
        assert_eq!(
            Blocklist::from_element(&request).unwrap(),
            Blocklist::default()
        );
        let list = parse(
            "<blocklist xmlns='urn:xmpp:blocking'>
               <item jid='romeo@montague.net'/>
               <item jid='iago@shakespeare.lit'/>
             </blocklist>",
        );
        assert_eq!(
            Blocklist::from_element(&list).unwrap().items,
            [jid("romeo@montague.net"), jid("iago@shakespeare.lit")]
        );
        let block =
            parse("<block xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/></block>");
        assert_eq!(
            Block::from_element(&block).unwrap().items,
            [jid("romeo@montague.net")]
        );
        let unblock =
            parse("<unblock xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/></unblock>");
        assert_eq!(
            Unblock::from_element(&unblock).unwrap().items,
            [jid("romeo@montague.net")]
        );
        let everyone = parse("<unblock xmlns='urn:xmpp:blocking'/>");
        assert!(Unblock::from_element(&everyone).unwrap().items.is_empty());

        let error = parse(
            "<message xmlns='jabber:client' type='error' from='romeo@montague.net' \
                      to='juliet@capulet.com'>
               <body>Can you hear me now?</body>
               <error type='cancel'>
                 <not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
                 <blocked xmlns='urn:xmpp:blocking:errors'/>
               </error>
             </message>",
        );
        assert!(Blocked::is_in(&error));
        assert_eq!(
            StanzaError::from_stanza(&error).unwrap().condition,
            StanzaCondition::NotAcceptable
        );
        let inner = error.child("error", ns::CLIENT).unwrap();
        assert!(inner.children().any(|c| Blocked::from_element(c).is_ok()));
    }

    #[test]
    fn what_is_written_reads_back() {
        let items = vec![
            jid("romeo@montague.net/orchard"),
            jid("montague.net"),
            jid("iago@x"),
        ];
        let list = Blocklist {
            items: items.clone(),
        };
        let xml = list.to_element().to_xml();
        assert_eq!(Blocklist::from_element(&parse(&xml)).unwrap(), list);
        let block = Block {
            items: items.clone(),
        };
        assert_eq!(
            Block::try_from(&Element::from(block.clone())).unwrap(),
            block
        );
        let unblock = Unblock { items };
        assert_eq!(
            Unblock::from_element(&unblock.to_element()).unwrap(),
            unblock
        );
        assert_eq!(
            Unblock::default().to_element().to_xml(),
            "<unblock xmlns=\"urn:xmpp:blocking\"/>"
        );
        assert_eq!(Blocked::from_element(&Blocked.to_element()), Ok(Blocked));
        assert_eq!(
            with_items("block", &[jid("a@b")]).to_xml(),
            "<block xmlns=\"urn:xmpp:blocking\"><item jid=\"a@b\"/></block>"
        );
    }

    #[test]
    fn malformed_changes_are_refused_as_the_xep_says() {
        let empty = parse("<block xmlns='urn:xmpp:blocking'/>");
        let error = StanzaError::from(Block::from_element(&empty).unwrap_err());
        assert_eq!(error.condition, StanzaCondition::BadRequest);
        for bad in ["<item jid='a@@b'/>", "<item/>"] {
            let xml = format!("<block xmlns='urn:xmpp:blocking'>{bad}</block>");
            let error = StanzaError::from(Block::from_element(&parse(&xml)).unwrap_err());
            assert_eq!(error.condition, StanzaCondition::JidMalformed, "{bad}");
        }
        assert!(matches!(
            Unblock::from_element(&empty),
            Err(ParseError::Mismatch {
                name: "unblock",
                ..
            })
        ));
    }
}
