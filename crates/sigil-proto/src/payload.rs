//! What the typed payloads of the XEP modules share: checking that an
//! element is the one a type reads, reading required children and
//! attributes, and the standard conversions to and from [`Element`].

use jid::Jid;
use sigil_xml::Element;

use crate::error::ParseError;

/// `Ok` when `element` is `<name xmlns='namespace'/>`, else
/// [`ParseError::Mismatch`].
pub(crate) fn expect(
    element: &Element,
    name: &'static str,
    namespace: &'static str,
) -> Result<(), ParseError> {
    match element.is(name, namespace) {
        true => Ok(()),
        false => Err(ParseError::Mismatch { name, namespace }),
    }
}

/// The text of the required child `<name/>` in `namespace`.
pub(crate) fn child_text(
    element: &Element,
    name: &'static str,
    namespace: &str,
) -> Result<String, ParseError> {
    element
        .child(name, namespace)
        .map(Element::text)
        .ok_or(ParseError::MissingChild(name))
}

/// The value of the required attribute `name`.
pub(crate) fn attribute<'a>(
    element: &'a Element,
    name: &'static str,
) -> Result<&'a str, ParseError> {
    element
        .attribute(name)
        .ok_or(ParseError::MissingAttribute(name))
}

/// The JID `value` holds.
pub(crate) fn jid(value: &str) -> Result<Jid, ParseError> {
    Jid::new(value).map_err(|_| ParseError::MalformedJid(value.to_owned()))
}

/// `TryFrom<&Element>` and `From<T> for Element` for payload types with
/// inherent `from_element` and `to_element`.
macro_rules! conversions {
    ($($type:ty),* $(,)?) => {
        $(
            impl TryFrom<&sigil_xml::Element> for $type {
                type Error = $crate::error::ParseError;

                fn try_from(element: &sigil_xml::Element) -> Result<Self, Self::Error> {
                    Self::from_element(element)
                }
            }

            impl From<$type> for sigil_xml::Element {
                fn from(payload: $type) -> Self {
                    payload.to_element()
                }
            }
        )*
    };
}

pub(crate) use conversions;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{StanzaCondition, StanzaError};

    #[test]
    fn parse_errors_become_the_stanza_errors_a_server_answers() {
        let error = StanzaError::from(ParseError::MissingChild("name"));
        assert_eq!(error.condition, StanzaCondition::BadRequest);
        assert_eq!(error.text.as_deref(), Some("<name/> is missing"));
        let error = StanzaError::from(jid("a@@b").unwrap_err());
        assert_eq!(error.condition, StanzaCondition::JidMalformed);
        let mismatch = expect(&Element::new("items", "other"), "items", "urn:x").unwrap_err();
        assert_eq!(mismatch.to_string(), "not a <items xmlns='urn:x'/>");
        assert_eq!(
            StanzaError::from(mismatch).condition,
            StanzaCondition::BadRequest
        );
    }
}
