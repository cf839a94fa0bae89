//! XEP-0012: Last Activity (`jabber:iq:last`): how long ago an account's
//! last session ended (with the status it left with), or how long a
//! server has been running.

use sigil_xml::Element;

use crate::error::ParseError;
use crate::payload::expect;

/// The XEP-0012 namespace.
pub const NS: &str = "jabber:iq:last";

/// `<query seconds='…'>status</query>`: the answer (the request is an
/// empty `<query/>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastActivity {
    /// Seconds since the account was last seen (0: it is online), or since
    /// the server started.
    pub seconds: u64,
    /// The status of the account's last unavailable presence.
    pub status: Option<String>,
}

impl LastActivity {
    /// Reads a `<query/>` answer.
    pub fn from_element(element: &Element) -> Result<Self, ParseError> {
        expect(element, "query", NS)?;
        let seconds = element
            .attribute("seconds")
            .ok_or(ParseError::MissingAttribute("seconds"))?
            .parse()
            .map_err(|_| ParseError::Invalid("seconds is not a number"))?;
        let text = element.text();
        Ok(Self {
            seconds,
            status: (!text.is_empty()).then_some(text),
        })
    }

    /// The `<query/>` answer.
    pub fn to_element(&self) -> Element {
        let query = Element::new("query", NS).with_attribute("seconds", self.seconds.to_string());
        match &self.status {
            Some(status) => query.with_text(status.clone()),
            None => query,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// XEP-0012 Example 4.
    #[test]
    fn the_specifications_example_reads() {
        let element =
            Element::parse("<query xmlns='jabber:iq:last' seconds='903'>Heading Home</query>")
                .unwrap();
        let last = LastActivity::from_element(&element).unwrap();
        assert_eq!(
            last,
            LastActivity {
                seconds: 903,
                status: Some("Heading Home".into())
            }
        );
        assert_eq!(
            LastActivity::from_element(&last.to_element()).unwrap(),
            last
        );
        let bare = Element::parse("<query xmlns='jabber:iq:last'/>").unwrap();
        assert!(LastActivity::from_element(&bare).is_err());
    }
}
