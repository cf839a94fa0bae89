//! XEP-0313: Message Archive Management (`urn:xmpp:mam:2`), with the
//! XEP-0059 result set management it pages by and the XEP-0004 form it
//! filters by.
//!
//! - [`Query`]: what a client asks for (`<query/>` in an IQ `set`);
//! - [`ArchivedResult`]: one archived message, sent as a `<message/>`
//!   carrying `<result/>` ahead of the IQ's answer;
//! - [`Fin`]: the answer, saying which page was sent and whether it was
//!   the last;
//! - [`Prefs`]: the archiving preferences (§6).
//!
//! Timestamps stay the XEP-0082 text they are on the wire; the server
//! reads them.

use sigil_xml::{Element, ns};

use crate::carbons::FORWARD;
use crate::error::ParseError;
use crate::payload::{attribute, expect};

/// The XEP-0313 namespace.
pub const NS: &str = "urn:xmpp:mam:2";

/// The extended form fields (`before-id`, `after-id`, `ids`) and
/// `flip-page` (XEP-0313 §7.1).
pub const NS_EXTENDED: &str = "urn:xmpp:mam:2#extended";

/// XEP-0059: Result Set Management.
pub const RSM: &str = "http://jabber.org/protocol/rsm";

/// XEP-0004: Data Forms.
pub const DATA: &str = "jabber:x:data";

/// The form fields a server takes, in the order it lists them.
pub const FIELDS: &[(&str, &str)] = &[
    ("with", "jid-single"),
    ("start", "text-single"),
    ("end", "text-single"),
    ("before-id", "text-single"),
    ("after-id", "text-single"),
    ("ids", "text-multi"),
];

/// Which page (XEP-0059 §2): `<max/>`, `<after/>`, `<before/>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// The most items; `None` leaves it to the server.
    pub max: Option<usize>,
    /// The page after this id.
    pub after: Option<String>,
    /// The page before this id (`Some(None)`: the last page).
    pub before: Option<Option<String>>,
}

impl Page {
    fn from_element(set: &Element) -> Result<Self, ParseError> {
        let max = match set.child("max", RSM) {
            Some(max) => Some(
                max.text()
                    .trim()
                    .parse()
                    .map_err(|_| ParseError::Invalid("<max/> is not a number"))?,
            ),
            None => None,
        };
        let text = |element: &Element| {
            let text = element.text();
            (!text.is_empty()).then_some(text)
        };
        Ok(Self {
            max,
            after: set.child("after", RSM).and_then(text),
            before: set.child("before", RSM).map(text),
        })
    }

    fn to_element(&self) -> Element {
        let mut set = Element::new("set", RSM);
        if let Some(max) = self.max {
            set.push_child(Element::new("max", RSM).with_text(max.to_string()));
        }
        if let Some(after) = &self.after {
            set.push_child(Element::new("after", RSM).with_text(after.clone()));
        }
        if let Some(before) = &self.before {
            let mut element = Element::new("before", RSM);
            if let Some(id) = before {
                element.push_text(id.clone());
            }
            set.push_child(element);
        }
        set
    }
}

/// A query (XEP-0313 §4): the filters of its form and its page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// Tags the results, so that a client tells concurrent queries apart.
    pub queryid: Option<String>,
    /// Only messages with this JID (bare: any resource of it).
    pub with: Option<String>,
    /// Only messages at or after this time (XEP-0082).
    pub start: Option<String>,
    /// Only messages at or before this time (XEP-0082).
    pub end: Option<String>,
    /// Only messages after this archive id.
    pub after_id: Option<String>,
    /// Only messages before this archive id.
    pub before_id: Option<String>,
    /// Only messages with these archive ids.
    pub ids: Vec<String>,
    /// Which page.
    pub page: Page,
    /// The page's messages newest first (`<flip-page/>`).
    pub flip: bool,
}

impl Query {
    /// The element name.
    pub const NAME: &'static str = "query";

    /// Reads a `<query/>`. A form field it does not know is an error
    /// (§4.1.1: the server says so rather than answer another question).
    pub fn from_element(element: &Element) -> Result<Self, ParseError> {
        expect(element, Self::NAME, NS)?;
        let mut query = Self {
            queryid: element.attribute("queryid").map(str::to_owned),
            flip: element.has_child("flip-page", NS),
            ..Self::default()
        };
        if let Some(set) = element.child("set", RSM) {
            query.page = Page::from_element(set)?;
        }
        let Some(form) = element.child("x", DATA) else {
            return Ok(query);
        };
        for field in form.children().filter(|c| c.is("field", DATA)) {
            let var = field.attribute("var").unwrap_or_default();
            let mut values = field
                .children()
                .filter(|c| c.is("value", DATA))
                .map(Element::text);
            let mut one = || values.next().filter(|v| !v.is_empty());
            match var {
                "FORM_TYPE" => {
                    if one().as_deref() != Some(NS) {
                        return Err(ParseError::Invalid("the form is not urn:xmpp:mam:2"));
                    }
                }
                "with" => query.with = one(),
                "start" => query.start = one(),
                "end" => query.end = one(),
                "after-id" => query.after_id = one(),
                "before-id" => query.before_id = one(),
                "ids" => query.ids = values.filter(|v| !v.is_empty()).collect(),
                _ => return Err(ParseError::Invalid("an unknown form field")),
            }
        }
        Ok(query)
    }

    /// The `<query/>` element.
    pub fn to_element(&self) -> Element {
        let mut query = Element::new(Self::NAME, NS);
        if let Some(id) = &self.queryid {
            query.set_attribute("queryid", id.clone());
        }
        let mut form = Element::new("x", DATA).with_attribute("type", "submit");
        let mut field = |var: &str, values: &[&str]| {
            let mut field = Element::new("field", DATA).with_attribute("var", var);
            for value in values {
                field.push_child(Element::new("value", DATA).with_text(*value));
            }
            form.push_child(field);
        };
        field("FORM_TYPE", &[NS]);
        for (var, value) in [
            ("with", &self.with),
            ("start", &self.start),
            ("end", &self.end),
            ("after-id", &self.after_id),
            ("before-id", &self.before_id),
        ] {
            if let Some(value) = value {
                field(var, &[value]);
            }
        }
        if !self.ids.is_empty() {
            let ids: Vec<&str> = self.ids.iter().map(String::as_str).collect();
            field("ids", &ids);
        }
        query.push_child(form);
        if self.page != Page::default() {
            query.push_child(self.page.to_element());
        }
        if self.flip {
            query.push_child(Element::new("flip-page", NS));
        }
        query
    }
}

/// The answer to a query (§4.3): the page's first and last ids, and
/// whether nothing more matches in the direction it was asked in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fin {
    /// The page is the last one.
    pub complete: bool,
    /// The id of the page's first message.
    pub first: Option<String>,
    /// The id of its last.
    pub last: Option<String>,
}

impl Fin {
    /// The element name.
    pub const NAME: &'static str = "fin";

    /// Reads a `<fin/>`.
    pub fn from_element(element: &Element) -> Result<Self, ParseError> {
        expect(element, Self::NAME, NS)?;
        let set = element.child("set", RSM);
        let text = |name: &str| {
            set.and_then(|s| s.child(name, RSM))
                .map(Element::text)
                .filter(|t| !t.is_empty())
        };
        Ok(Self {
            complete: matches!(element.attribute("complete"), Some("true" | "1")),
            first: text("first"),
            last: text("last"),
        })
    }

    /// The `<fin/>` element.
    pub fn to_element(&self) -> Element {
        let mut fin = Element::new(Self::NAME, NS);
        if self.complete {
            fin.set_attribute("complete", "true");
        }
        let mut set = Element::new("set", RSM);
        if let Some(first) = &self.first {
            set.push_child(
                Element::new("first", RSM)
                    .with_attribute("index", "0")
                    .with_text(first.clone()),
            );
        }
        if let Some(last) = &self.last {
            set.push_child(Element::new("last", RSM).with_text(last.clone()));
        }
        fin.with_child(set)
    }
}

/// One archived message, as a query's result (§4.2).
#[derive(Clone, Debug, PartialEq)]
pub struct ArchivedResult {
    /// The query's `queryid`.
    pub queryid: Option<String>,
    /// The message's archive id.
    pub id: String,
    /// When it was archived (XEP-0082).
    pub stamp: String,
    /// The message.
    pub message: Element,
}

impl ArchivedResult {
    /// The element name.
    pub const NAME: &'static str = "result";

    /// The `<result/>` in a message, if it carries one.
    pub fn of(stanza: &Element) -> Result<Option<Self>, ParseError> {
        match stanza.child(Self::NAME, NS) {
            Some(result) => Self::from_element(result).map(Some),
            None => Ok(None),
        }
    }

    /// Reads a `<result/>`.
    pub fn from_element(element: &Element) -> Result<Self, ParseError> {
        expect(element, Self::NAME, NS)?;
        let forwarded = element
            .child("forwarded", FORWARD)
            .ok_or(ParseError::MissingChild("forwarded"))?;
        let stamp = forwarded
            .child("delay", ns::DELAY)
            .map(|delay| attribute(delay, "stamp").map(str::to_owned))
            .transpose()?
            .unwrap_or_default();
        let message = forwarded
            .child("message", ns::CLIENT)
            .ok_or(ParseError::MissingChild("message"))?;
        Ok(Self {
            queryid: element.attribute("queryid").map(str::to_owned),
            id: attribute(element, "id")?.to_owned(),
            stamp,
            message: message.clone(),
        })
    }

    /// The `<result/>` element.
    pub fn to_element(&self) -> Element {
        let mut result = Element::new(Self::NAME, NS).with_attribute("id", self.id.clone());
        if let Some(queryid) = &self.queryid {
            result.set_attribute("queryid", queryid.clone());
        }
        result.with_child(
            Element::new("forwarded", FORWARD)
                .with_child(
                    Element::new("delay", ns::DELAY).with_attribute("stamp", self.stamp.clone()),
                )
                .with_child(self.message.clone()),
        )
    }
}

/// The archiving preferences (§6).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prefs {
    /// `always`, `never` or `roster`.
    pub default: String,
    /// JIDs always archived.
    pub always: Vec<String>,
    /// JIDs never archived.
    pub never: Vec<String>,
}

impl Prefs {
    /// The element name.
    pub const NAME: &'static str = "prefs";

    /// Reads a `<prefs/>`.
    pub fn from_element(element: &Element) -> Result<Self, ParseError> {
        expect(element, Self::NAME, NS)?;
        let list = |name: &str| -> Vec<String> {
            element
                .child(name, NS)
                .map(|list| {
                    list.children()
                        .filter(|c| c.is("jid", NS))
                        .map(Element::text)
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(Self {
            default: attribute(element, "default")?.to_owned(),
            always: list("always"),
            never: list("never"),
        })
    }

    /// The `<prefs/>` element.
    pub fn to_element(&self) -> Element {
        let list = |name: &str, jids: &[String]| {
            let mut list = Element::new(name, NS);
            for jid in jids {
                list.push_child(Element::new("jid", NS).with_text(jid.clone()));
            }
            list
        };
        Element::new(Self::NAME, NS)
            .with_attribute("default", self.default.clone())
            .with_child(list("always", &self.always))
            .with_child(list("never", &self.never))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_query_round_trips() {
        let query = Query {
            queryid: Some("q1".into()),
            with: Some("juliet@capulet.lit".into()),
            start: Some("2010-06-07T00:00:00Z".into()),
            end: None,
            after_id: Some("a".into()),
            before_id: None,
            ids: vec!["x".into(), "y".into()],
            page: Page {
                max: Some(10),
                after: None,
                before: Some(None),
            },
            flip: true,
        };
        assert_eq!(Query::from_element(&query.to_element()).unwrap(), query);
    }

    #[test]
    fn unknown_fields_and_forms_are_refused() {
        let form = |var: &str, value: &str| {
            Element::new("query", NS).with_child(
                Element::new("x", DATA).with_child(
                    Element::new("field", DATA)
                        .with_attribute("var", var)
                        .with_child(Element::new("value", DATA).with_text(value)),
                ),
            )
        };
        assert!(Query::from_element(&form("FORM_TYPE", "urn:xmpp:mam:1")).is_err());
        assert!(Query::from_element(&form("color", "red")).is_err());
        assert!(Query::from_element(&form("with", "romeo@montague.lit")).is_ok());
        let bad_max = Element::new("query", NS).with_child(
            Element::new("set", RSM).with_child(Element::new("max", RSM).with_text("many")),
        );
        assert!(Query::from_element(&bad_max).is_err());
    }

    #[test]
    fn fin_result_and_prefs_round_trip() {
        let fin = Fin {
            complete: true,
            first: Some("a".into()),
            last: Some("b".into()),
        };
        assert_eq!(Fin::from_element(&fin.to_element()).unwrap(), fin);
        let result = ArchivedResult {
            queryid: Some("q".into()),
            id: "id1".into(),
            stamp: "2010-07-10T23:08:25Z".into(),
            message: Element::new("message", ns::CLIENT).with_attribute("to", "a@b"),
        };
        let stanza = Element::new("message", ns::CLIENT).with_child(result.to_element());
        assert_eq!(ArchivedResult::of(&stanza).unwrap(), Some(result));
        let prefs = Prefs {
            default: "roster".into(),
            always: vec!["a@b".into()],
            never: vec![],
        };
        assert_eq!(Prefs::from_element(&prefs.to_element()).unwrap(), prefs);
    }
}
