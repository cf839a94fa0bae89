//! XEP-0054 vcard-temp, XEP-0153 vCard-based avatars and XEP-0292 vCard4
//! over XMPP: the namespaces, and the conversion between a vcard-temp
//! `<vCard/>` and a vCard4 `<vcard/>` (RFC 6351) of the fields both
//! commonly carry: FN, N, NICKNAME, PHOTO, EMAIL, TEL, URL, BDAY, NOTE
//! (and DESC, read as a note), ORG and TITLE.
//!
//! A server that keeps one card (vcard-temp) serves vCard4 from it with
//! [`to_vcard4`], and stores a vCard4 with [`from_vcard4`], which keeps
//! the fields of the old card that vCard4 does not carry here.

use sigil_xml::Element;

/// The vcard-temp namespace (XEP-0054).
pub const NS: &str = "vcard-temp";

/// Where a presence carries the hash of the user's avatar (XEP-0153).
pub const NS_UPDATE: &str = "vcard-temp:x:update";

/// The vCard4 namespace (RFC 6351), as XEP-0292 uses it.
pub const NS_VCARD4: &str = "urn:ietf:params:xml:ns:vcard-4.0";

/// The vcard-temp fields [`to_vcard4`] and [`from_vcard4`] convert.
const COMMON: &[&str] = &[
    "FN", "N", "NICKNAME", "PHOTO", "EMAIL", "TEL", "URL", "BDAY", "NOTE", "DESC", "ORG", "TITLE",
];

/// The parts of N, in vcard-temp and in vCard4.
const NAME_PARTS: &[(&str, &str)] = &[
    ("FAMILY", "surname"),
    ("GIVEN", "given"),
    ("MIDDLE", "additional"),
    ("PREFIX", "prefix"),
    ("SUFFIX", "suffix"),
];

/// The flags of EMAIL and TEL that are vCard4 `type` parameters.
const TYPES: &[&str] = &[
    "HOME", "WORK", "VOICE", "FAX", "PAGER", "MSG", "CELL", "VIDEO", "TEXT",
];

/// The base64 text of the photo of a vcard-temp `<vCard/>`
/// (`PHOTO/BINVAL`), whitespace included, if it has one.
pub fn photo_binval(vcard: &Element) -> Option<String> {
    let text = vcard.child("PHOTO", NS)?.child("BINVAL", NS)?.text();
    (!text.trim().is_empty()).then_some(text)
}

/// A vCard4 `<vcard/>` of the common fields of a vcard-temp `<vCard/>`.
pub fn to_vcard4(vcard: &Element) -> Element {
    let mut out = Element::new("vcard", NS_VCARD4);
    for field in vcard.children().filter(|c| c.namespace() == NS) {
        let converted = match field.name() {
            "FN" => Some(text_property("fn", &field.text())),
            "NICKNAME" => Some(text_property("nickname", &field.text())),
            "NOTE" | "DESC" => Some(text_property("note", &field.text())),
            "TITLE" => Some(text_property("title", &field.text())),
            "URL" => Some(v4("url").with_child(v4("uri").with_text(field.text().trim()))),
            "BDAY" => Some(v4("bday").with_child(v4("date").with_text(basic_date(&field.text())))),
            "N" => {
                let mut n = v4("n");
                for (temp, four) in NAME_PARTS {
                    let part = field.child(temp, NS).map(Element::text).unwrap_or_default();
                    n.push_child(v4(four).with_text(part));
                }
                Some(n)
            }
            "ORG" => {
                let mut org = v4("org");
                for part in field
                    .children()
                    .filter(|p| p.namespace() == NS && matches!(p.name(), "ORGNAME" | "ORGUNIT"))
                {
                    org.push_child(v4("text").with_text(part.text()));
                }
                Some(org)
            }
            "PHOTO" => photo_to_vcard4(field),
            "EMAIL" => field.child("USERID", NS).map(|user| {
                with_types(v4("email"), field).with_child(v4("text").with_text(user.text().trim()))
            }),
            "TEL" => field.child("NUMBER", NS).map(|number| {
                let number = number.text();
                with_types(v4("tel"), field)
                    .with_child(v4("uri").with_text(format!("tel:{}", number.trim())))
            }),
            _ => None,
        };
        if let Some(converted) = converted {
            out.push_child(converted);
        }
    }
    out
}

/// A vcard-temp `<vCard/>` from a vCard4 `<vcard/>`: its common fields,
/// and the fields of `old` (the card stored so far) outside them.
pub fn from_vcard4(vcard: &Element, old: Option<&Element>) -> Element {
    let mut out = Element::new("vCard", NS);
    for property in vcard.children().filter(|c| c.namespace() == NS_VCARD4) {
        let converted = match property.name() {
            "fn" => Some(temp("FN").with_text(value(property, "text"))),
            "nickname" => Some(temp("NICKNAME").with_text(value(property, "text"))),
            "note" => Some(temp("NOTE").with_text(value(property, "text"))),
            "title" => Some(temp("TITLE").with_text(value(property, "text"))),
            "url" => Some(temp("URL").with_text(value(property, "uri"))),
            "bday" => Some(temp("BDAY").with_text(extended_date(&value(property, "date")))),
            "n" => {
                let mut n = temp("N");
                for (temp_name, four) in NAME_PARTS {
                    n.push_child(temp(temp_name).with_text(value(property, four)));
                }
                Some(n)
            }
            "org" => {
                let mut org = temp("ORG");
                let parts = property.children().filter(|p| p.is("text", NS_VCARD4));
                for (index, part) in parts.enumerate() {
                    let name = if index == 0 { "ORGNAME" } else { "ORGUNIT" };
                    org.push_child(temp(name).with_text(part.text()));
                }
                Some(org)
            }
            "photo" => Some(photo_from_vcard4(&value(property, "uri"))),
            "email" => Some(
                types_of(temp("EMAIL"), property)
                    .with_child(temp("INTERNET"))
                    .with_child(temp("USERID").with_text(value(property, "text"))),
            ),
            "tel" => {
                let uri = value(property, "uri");
                let number = match uri.strip_prefix("tel:") {
                    Some(number) => number.to_owned(),
                    None if uri.is_empty() => value(property, "text"),
                    None => uri,
                };
                Some(types_of(temp("TEL"), property).with_child(temp("NUMBER").with_text(number)))
            }
            _ => None,
        };
        if let Some(converted) = converted {
            out.push_child(converted);
        }
    }
    for field in old.into_iter().flat_map(Element::children) {
        if !(field.namespace() == NS && COMMON.contains(&field.name())) {
            out.push_child(field.clone());
        }
    }
    out
}

fn v4(name: &str) -> Element {
    Element::new(name, NS_VCARD4)
}

fn temp(name: &str) -> Element {
    Element::new(name, NS)
}

/// `<name><text>TEXT</text></name>`.
fn text_property(name: &str, text: &str) -> Element {
    v4(name).with_child(v4("text").with_text(text))
}

/// The text of a property's value element `kind` (`text`, `uri`, …).
fn value(property: &Element, kind: &str) -> String {
    property
        .child(kind, NS_VCARD4)
        .map(Element::text)
        .unwrap_or_default()
}

/// Adds the EMAIL or TEL flags of `field` as vCard4 parameters (`type`,
/// and `pref` for PREF).
fn with_types(mut property: Element, field: &Element) -> Element {
    let mut kinds = v4("type");
    for flag in TYPES {
        if field.has_child(flag, NS) {
            kinds.push_child(v4("text").with_text(flag.to_ascii_lowercase()));
        }
    }
    let mut parameters = v4("parameters");
    if kinds.children().next().is_some() {
        parameters.push_child(kinds);
    }
    if field.has_child("PREF", NS) {
        parameters.push_child(v4("pref").with_child(v4("integer").with_text("1")));
    }
    if parameters.children().next().is_some() {
        property.push_child(parameters);
    }
    property
}

/// Adds the vCard4 `type` and `pref` parameters of `property` as EMAIL or
/// TEL flags.
fn types_of(mut field: Element, property: &Element) -> Element {
    let Some(parameters) = property.child("parameters", NS_VCARD4) else {
        return field;
    };
    if let Some(kinds) = parameters.child("type", NS_VCARD4) {
        for kind in kinds.children().filter(|k| k.is("text", NS_VCARD4)) {
            let flag = kind.text().trim().to_ascii_uppercase();
            if let Some(flag) = TYPES.iter().find(|known| **known == flag) {
                field.push_child(temp(flag));
            }
        }
    }
    if parameters.has_child("pref", NS_VCARD4) {
        field.push_child(temp("PREF"));
    }
    field
}

/// PHOTO as a vCard4 `photo`: inline data as a `data:` URI, else its
/// EXTVAL.
fn photo_to_vcard4(photo: &Element) -> Option<Element> {
    let uri = match photo.child("BINVAL", NS) {
        Some(binval) => {
            let kind = photo
                .child("TYPE", NS)
                .map(|t| t.text().trim().to_owned())
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "application/octet-stream".to_owned());
            let data: String = binval
                .text()
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            format!("data:{kind};base64,{data}")
        }
        None => photo.child("EXTVAL", NS)?.text().trim().to_owned(),
    };
    Some(v4("photo").with_child(v4("uri").with_text(uri)))
}

/// A vCard4 photo URI as PHOTO: a base64 `data:` URI inline, any other
/// URI as EXTVAL.
fn photo_from_vcard4(uri: &str) -> Element {
    let inline = uri
        .trim()
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(','))
        .and_then(|(meta, data)| Some((meta.strip_suffix(";base64")?, data)));
    match inline {
        Some((kind, data)) => {
            let mut photo = temp("PHOTO");
            if !kind.is_empty() {
                photo.push_child(temp("TYPE").with_text(kind));
            }
            photo.with_child(temp("BINVAL").with_text(data))
        }
        None => temp("PHOTO").with_child(temp("EXTVAL").with_text(uri.trim())),
    }
}

/// `1970-01-31` as vCard4's basic form `19700131`; other forms as given.
fn basic_date(date: &str) -> String {
    let date = date.trim();
    let bytes = date.as_bytes();
    if bytes.len() == 10 && bytes[4] == b'-' && bytes[7] == b'-' {
        date.replace('-', "")
    } else {
        date.to_owned()
    }
}

/// vCard4's `19700131` as `1970-01-31` (XEP-0054's ISO 8601 form); other
/// forms as given.
fn extended_date(date: &str) -> String {
    let date = date.trim();
    if date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()) {
        format!("{}-{}-{}", &date[..4], &date[4..6], &date[6..])
    } else {
        date.to_owned()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// XEP-0054 Example 2, trimmed, and more fields.
    const TEMP: &str = "<vCard xmlns='vcard-temp'>\
        <FN>Peter Saint-Andre</FN>\
        <N><FAMILY>Saint-Andre</FAMILY><GIVEN>Peter</GIVEN><MIDDLE/></N>\
        <NICKNAME>stpeter</NICKNAME>\
        <URL>http://www.xmpp.org/xsf/people/stpeter.shtml</URL>\
        <BDAY>1966-08-06</BDAY>\
        <ORG><ORGNAME>XMPP Standards Foundation</ORGNAME><ORGUNIT>Council</ORGUNIT></ORG>\
        <TITLE>Executive Director</TITLE>\
        <TEL><WORK/><VOICE/><NUMBER>303-308-3282</NUMBER></TEL>\
        <EMAIL><INTERNET/><PREF/><USERID>stpeter@jabber.org</USERID></EMAIL>\
        <JABBERID>stpeter@jabber.org</JABBERID>\
        <DESC>More information about me is located on my personal website.</DESC>\
        <PHOTO><TYPE>image/png</TYPE><BINVAL>iVBO\nRw0K</BINVAL></PHOTO>\
        </vCard>";

    #[test]
    fn vcard_temp_to_vcard4_and_back_keeps_the_common_fields() {
        let temp = Element::parse(TEMP).unwrap();
        let four = to_vcard4(&temp);
        assert_eq!(four.name(), "vcard");
        let fn_ = four.child("fn", NS_VCARD4).unwrap();
        assert_eq!(value(fn_, "text"), "Peter Saint-Andre");
        assert_eq!(
            value(four.child("n", NS_VCARD4).unwrap(), "surname"),
            "Saint-Andre"
        );
        assert_eq!(
            value(four.child("bday", NS_VCARD4).unwrap(), "date"),
            "19660806"
        );
        assert_eq!(
            value(four.child("photo", NS_VCARD4).unwrap(), "uri"),
            "data:image/png;base64,iVBORw0K"
        );
        let tel = four.child("tel", NS_VCARD4).unwrap();
        assert_eq!(value(tel, "uri"), "tel:303-308-3282");
        let kinds: Vec<String> = tel
            .child("parameters", NS_VCARD4)
            .unwrap()
            .child("type", NS_VCARD4)
            .unwrap()
            .children()
            .map(Element::text)
            .collect();
        assert_eq!(kinds, ["work", "voice"]);
        assert!(four.child("note", NS_VCARD4).is_some());
        assert!(four.children().all(|c| c.name() != "JABBERID"));

        // Back, with the old card: JABBERID (not converted) is kept.
        let back = from_vcard4(&four, Some(&temp));
        assert_eq!(back.child("FN", NS).unwrap().text(), "Peter Saint-Andre");
        assert_eq!(back.child("BDAY", NS).unwrap().text(), "1966-08-06");
        assert_eq!(
            back.child("N", NS)
                .unwrap()
                .child("GIVEN", NS)
                .unwrap()
                .text(),
            "Peter"
        );
        let org = back.child("ORG", NS).unwrap();
        assert_eq!(
            org.child("ORGNAME", NS).unwrap().text(),
            "XMPP Standards Foundation"
        );
        assert_eq!(org.child("ORGUNIT", NS).unwrap().text(), "Council");
        let email = back.child("EMAIL", NS).unwrap();
        assert!(email.has_child("PREF", NS));
        assert_eq!(
            email.child("USERID", NS).unwrap().text(),
            "stpeter@jabber.org"
        );
        let tel = back.child("TEL", NS).unwrap();
        assert!(tel.has_child("WORK", NS) && tel.has_child("VOICE", NS));
        assert_eq!(tel.child("NUMBER", NS).unwrap().text(), "303-308-3282");
        assert_eq!(
            back.child("NOTE", NS).unwrap().text(),
            "More information about me is located on my personal website."
        );
        assert_eq!(photo_binval(&back).as_deref(), Some("iVBORw0K"));
        assert_eq!(
            back.child("PHOTO", NS)
                .unwrap()
                .child("TYPE", NS)
                .unwrap()
                .text(),
            "image/png"
        );
        assert_eq!(
            back.child("JABBERID", NS).unwrap().text(),
            "stpeter@jabber.org"
        );
        // A field vCard4 dropped is gone (it was common), not kept from old.
        let mut without_title = four.clone();
        without_title.remove_children("title", NS_VCARD4);
        assert!(
            from_vcard4(&without_title, Some(&temp))
                .child("TITLE", NS)
                .is_none()
        );
    }

    #[test]
    fn photos_by_reference_and_odd_dates_pass_as_given() {
        let four = Element::parse(
            "<vcard xmlns='urn:ietf:params:xml:ns:vcard-4.0'>\
             <photo><uri>https://example.org/me.png</uri></photo>\
             <bday><date>--0203</date></bday></vcard>",
        )
        .unwrap();
        let temp = from_vcard4(&four, None);
        let photo = temp.child("PHOTO", NS).unwrap();
        assert_eq!(
            photo.child("EXTVAL", NS).unwrap().text(),
            "https://example.org/me.png"
        );
        assert_eq!(photo_binval(&temp), None);
        assert_eq!(temp.child("BDAY", NS).unwrap().text(), "--0203");
        let again = to_vcard4(&temp);
        assert_eq!(
            value(again.child("photo", NS_VCARD4).unwrap(), "uri"),
            "https://example.org/me.png"
        );
        assert_eq!(
            value(again.child("bday", NS_VCARD4).unwrap(), "date"),
            "--0203"
        );
    }
}
