//! XEP-0388 Extensible SASL Profile (`urn:xmpp:sasl:2`) and XEP-0386
//! Bind 2 (`urn:xmpp:bind:0`): the vocabulary server and client share.
//!
//! SASL2 authenticates with the same mechanisms as SASL 1 (RFC 6120 §6),
//! in other elements: `<authenticate mechanism>` with an
//! `<initial-response>`, the client's `<user-agent>` and inline requests
//! (a Bind 2 `<bind>`, a XEP-0198 `<resume>`), answered by `<success>`
//! carrying the authorized JID and the results of the inline requests,
//! with no stream restart. [`Authenticate`] reads and writes the request;
//! the servers and clients of [`crate::server`] and [`crate::client`] run
//! the exchange.

use sigil_xml::Element;

use crate::csi;
use crate::error::ParseError;

/// The XEP-0388 namespace.
pub const NS: &str = "urn:xmpp:sasl:2";

/// The XEP-0386 namespace.
pub const NS_BIND: &str = "urn:xmpp:bind:0";

/// The XEP-0280 namespace, as Bind 2 names it among its inline features.
pub const NS_CARBONS: &str = crate::carbons::NS;

/// The XEP-0484 (FAST) namespace.
pub const NS_FAST: &str = "urn:xmpp:fast:0";

/// Longest `<tag/>` accepted (it becomes the start of a resource).
pub const MAX_TAG: usize = 64;

/// Longest `<software/>` or `<device/>` text kept (longer is cut).
pub const MAX_USER_AGENT_TEXT: usize = 128;

/// The Unicode bidirectional controls (marks, embeddings, overrides,
/// isolates), which can make a text read as another.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The client software and device (`<user-agent/>`, XEP-0388 §2.3): the
/// id is a UUID the client keeps for the life of its installation, the
/// texts are for the user's own list of devices, never shown to others.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserAgent {
    /// The stable id (a UUID, lower-case as kept here).
    pub id: Option<String>,
    /// The client software's name.
    pub software: Option<String>,
    /// The device's name, as its user calls it.
    pub device: Option<String>,
}

impl UserAgent {
    /// Reads `<user-agent/>`. An id that is not a UUID is an error: it
    /// names the client's tokens and resource, so it must be one.
    pub fn from_element(element: &Element) -> Result<Self, ParseError> {
        let id = match element.attribute("id") {
            None => None,
            Some(id) if is_uuid(id) => Some(id.to_ascii_lowercase()),
            Some(_) => return Err(ParseError::Invalid("a user-agent id that is not a UUID")),
        };
        let text = |name: &str| {
            element.child(name, NS).map(|child| {
                // Shown to the user as plain text: no control characters
                // or direction overrides that would disguise it.
                let text: String = child
                    .text()
                    .chars()
                    .filter(|c| !c.is_control() && !is_bidi_control(*c))
                    .collect();
                let text = text.trim();
                let mut end = text.len().min(MAX_USER_AGENT_TEXT);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text[..end].to_owned()
            })
        };
        Ok(Self {
            id,
            software: text("software").filter(|t| !t.is_empty()),
            device: text("device").filter(|t| !t.is_empty()),
        })
    }

    /// Writes `<user-agent/>`.
    pub fn to_element(&self) -> Element {
        let mut element = Element::new("user-agent", NS);
        if let Some(id) = &self.id {
            element.set_attribute("id", id.clone());
        }
        if let Some(software) = &self.software {
            element.push_child(Element::new("software", NS).with_text(software.clone()));
        }
        if let Some(device) = &self.device {
            element.push_child(Element::new("device", NS).with_text(device.clone()));
        }
        element
    }
}

/// Whether `text` is a UUID in its usual form (8-4-4-4-12 hex digits).
pub fn is_uuid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// A new random UUID (version 4), for a client's [`UserAgent::id`];
/// `None` if the operating system's generator fails.
pub fn new_uuid() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = crate::hex(&bytes);
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// A Bind 2 request (`<bind xmlns='urn:xmpp:bind:0'/>` inside
/// `<authenticate/>`, XEP-0386 §2.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BindRequest {
    /// The client's tag, the start of its resource.
    pub tag: Option<String>,
    /// Enable XEP-0280 carbons at once.
    pub carbons: bool,
    /// Enable XEP-0198 stream management at once: `Some(resume)`.
    pub stream_management: Option<bool>,
    /// The XEP-0352 state the session begins in.
    pub client_state: Option<csi::State>,
}

impl BindRequest {
    /// Reads the request. A tag longer than [`MAX_TAG`], or one with a
    /// character a resource may not hold, is an error.
    pub fn from_element(element: &Element) -> Result<Self, ParseError> {
        let mut request = Self::default();
        for child in element.children() {
            match (child.namespace(), child.name()) {
                (NS_BIND, "tag") => {
                    let tag = child.text();
                    if tag.is_empty()
                        || tag.len() > MAX_TAG
                        || jid::ResourcePart::new(&tag).is_err()
                        || tag.contains('/')
                    {
                        return Err(ParseError::Invalid("a Bind 2 tag that is not usable"));
                    }
                    request.tag = Some(tag);
                }
                (NS_CARBONS, "enable") => request.carbons = true,
                (crate::sm::NS, "enable") => {
                    request.stream_management =
                        Some(matches!(child.attribute("resume"), Some("true" | "1")));
                }
                (csi::NS, _) => request.client_state = csi::State::from_element(child),
                // Features this server does not enable inline are ignored,
                // as XEP-0386 lets it.
                _ => {}
            }
        }
        Ok(request)
    }

    /// Writes the request.
    pub fn to_element(&self) -> Element {
        let mut bind = Element::new("bind", NS_BIND);
        if let Some(tag) = &self.tag {
            bind.push_child(Element::new("tag", NS_BIND).with_text(tag.clone()));
        }
        if self.carbons {
            bind.push_child(Element::new("enable", NS_CARBONS));
        }
        if let Some(resume) = self.stream_management {
            let mut enable = Element::new("enable", crate::sm::NS);
            if resume {
                enable.set_attribute("resume", "true");
            }
            bind.push_child(enable);
        }
        if let Some(state) = self.client_state {
            bind.push_child(state.to_element());
        }
        bind
    }
}

/// An `<authenticate/>` (XEP-0388 §2.3) with the inline requests this
/// project knows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Authenticate {
    /// The mechanism.
    pub mechanism: String,
    /// The initial response: `None` when the element is absent, empty
    /// when it is empty.
    pub initial_response: Option<Vec<u8>>,
    /// The client's `<user-agent/>`.
    pub user_agent: Option<UserAgent>,
    /// A Bind 2 request.
    pub bind: Option<BindRequest>,
    /// A XEP-0198 resumption: the earlier stream's id and the client's `h`.
    pub resume: Option<(String, u32)>,
    /// XEP-0484: a token asked for, for this HT mechanism.
    pub request_token: Option<String>,
    /// XEP-0484: this login uses a token (`<fast/>`); `true`: the token
    /// is to be invalidated once used.
    pub fast: Option<bool>,
}

/// A token the server issued (`<token/>` in `<success/>`, XEP-0484).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedToken {
    /// The token.
    pub token: String,
    /// When it expires (XEP-0082).
    pub expiry: String,
}

impl IssuedToken {
    /// Reads `<token/>`.
    pub fn from_element(element: &Element) -> Option<Self> {
        if !element.is("token", NS_FAST) {
            return None;
        }
        Some(Self {
            token: element.attribute("token")?.to_owned(),
            expiry: element.attribute("expiry")?.to_owned(),
        })
    }

    /// Writes `<token/>`.
    pub fn to_element(&self) -> Element {
        Element::new("token", NS_FAST)
            .with_attribute("token", self.token.clone())
            .with_attribute("expiry", self.expiry.clone())
    }
}

impl Authenticate {
    /// Reads `<authenticate/>`.
    pub fn from_element(element: &Element) -> Result<Self, ParseError> {
        if !element.is("authenticate", NS) {
            return Err(ParseError::Mismatch {
                name: "authenticate",
                namespace: NS,
            });
        }
        let mechanism = element
            .attribute("mechanism")
            .filter(|m| !m.is_empty())
            .ok_or(ParseError::MissingAttribute("mechanism"))?
            .to_owned();
        let initial_response = match element.child("initial-response", NS) {
            None => None,
            Some(child) => Some(
                sigil_sasl::xmpp::decode_sasl2(&child.text())
                    .map_err(|_| ParseError::Invalid("an initial response that is not base64"))?,
            ),
        };
        let user_agent = element
            .child("user-agent", NS)
            .map(UserAgent::from_element)
            .transpose()?;
        let bind = element
            .child("bind", NS_BIND)
            .map(BindRequest::from_element)
            .transpose()?;
        let resume = match element.child("resume", crate::sm::NS) {
            None => None,
            Some(resume) => {
                let previd = resume
                    .attribute("previd")
                    .ok_or(ParseError::MissingAttribute("previd"))?;
                let h = resume
                    .attribute("h")
                    .and_then(|h| h.parse::<u32>().ok())
                    .ok_or(ParseError::MissingAttribute("h"))?;
                Some((previd.to_owned(), h))
            }
        };
        let request_token = element
            .child("request-token", NS_FAST)
            .map(|request| {
                request
                    .attribute("mechanism")
                    .map(str::to_owned)
                    .ok_or(ParseError::MissingAttribute("mechanism"))
            })
            .transpose()?;
        let fast = element
            .child("fast", NS_FAST)
            .map(|fast| matches!(fast.attribute("invalidate"), Some("true" | "1")));
        Ok(Self {
            mechanism,
            initial_response,
            user_agent,
            bind,
            resume,
            request_token,
            fast,
        })
    }

    /// Writes `<authenticate/>`.
    pub fn to_element(&self) -> Element {
        let mut element =
            Element::new("authenticate", NS).with_attribute("mechanism", self.mechanism.clone());
        if let Some(data) = &self.initial_response {
            element.push_child(
                Element::new("initial-response", NS)
                    .with_text(sigil_sasl::xmpp::encode_sasl2(data)),
            );
        }
        if let Some(user_agent) = &self.user_agent {
            element.push_child(user_agent.to_element());
        }
        if let Some((previd, h)) = &self.resume {
            element.push_child(
                Element::new("resume", crate::sm::NS)
                    .with_attribute("previd", previd.clone())
                    .with_attribute("h", h.to_string()),
            );
        }
        if let Some(bind) = &self.bind {
            element.push_child(bind.to_element());
        }
        if let Some(mechanism) = &self.request_token {
            element.push_child(
                Element::new("request-token", NS_FAST)
                    .with_attribute("mechanism", mechanism.clone()),
            );
        }
        if let Some(invalidate) = self.fast {
            let mut fast = Element::new("fast", NS_FAST);
            if invalidate {
                fast.set_attribute("invalidate", "true");
            }
            element.push_child(fast);
        }
        element
    }
}

/// The `<authentication/>` stream feature a server offers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Offer {
    /// The mechanisms, in the server's order.
    pub mechanisms: Vec<String>,
    /// Bind 2 offered inline, with the features it can enable
    /// (namespaces).
    pub bind: Option<Vec<String>>,
    /// XEP-0198 resumption offered inline.
    pub resume: bool,
    /// XEP-0484 token mechanisms offered inline (`<fast/>`).
    pub fast: Vec<String>,
}

impl Offer {
    /// Reads the feature.
    pub fn from_element(element: &Element) -> Self {
        let mechanisms = element
            .children()
            .filter(|c| c.is("mechanism", NS))
            .map(Element::text)
            .collect();
        let inline = element.child("inline", NS);
        let bind = inline.and_then(|i| i.child("bind", NS_BIND)).map(|bind| {
            bind.child("inline", NS_BIND)
                .map(|features| {
                    features
                        .children()
                        .filter(|c| c.is("feature", NS_BIND))
                        .filter_map(|c| c.attribute("var").map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        });
        let resume = inline.is_some_and(|i| i.has_child("sm", crate::sm::NS));
        let fast = inline
            .and_then(|i| i.child("fast", NS_FAST))
            .map(|fast| {
                fast.children()
                    .filter(|c| c.is("mechanism", NS_FAST))
                    .map(Element::text)
                    .collect()
            })
            .unwrap_or_default();
        Self {
            mechanisms,
            bind,
            resume,
            fast,
        }
    }

    /// Writes the feature.
    pub fn to_element(&self) -> Element {
        let mut element = Element::new("authentication", NS);
        for mechanism in &self.mechanisms {
            element.push_child(Element::new("mechanism", NS).with_text(mechanism.clone()));
        }
        let mut inline = Element::new("inline", NS);
        if self.resume {
            inline.push_child(Element::new("sm", crate::sm::NS));
        }
        if let Some(features) = &self.bind {
            let mut list = Element::new("inline", NS_BIND);
            for var in features {
                list.push_child(
                    Element::new("feature", NS_BIND).with_attribute("var", var.clone()),
                );
            }
            inline.push_child(Element::new("bind", NS_BIND).with_child(list));
        }
        if !self.fast.is_empty() {
            let mut fast = Element::new("fast", NS_FAST);
            for mechanism in &self.fast {
                fast.push_child(Element::new("mechanism", NS_FAST).with_text(mechanism.clone()));
            }
            inline.push_child(fast);
        }
        if inline.children().next().is_some() {
            element.push_child(inline);
        }
        element
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_authenticate_reads_back_as_written() {
        let request = Authenticate {
            mechanism: "SCRAM-SHA-256".into(),
            initial_response: Some(b"n,,n=user,r=abc".to_vec()),
            user_agent: Some(UserAgent {
                id: Some("d4565fa7-4d72-4749-b3d3-740edbf87770".into()),
                software: Some("Sigil".into()),
                device: Some("Kiva's Phone".into()),
            }),
            bind: Some(BindRequest {
                tag: Some("sigil".into()),
                carbons: true,
                stream_management: Some(true),
                client_state: Some(csi::State::Inactive),
            }),
            resume: Some(("abc".into(), 7)),
            request_token: Some("HT-SHA-256-EXPR".into()),
            fast: Some(true),
        };
        let element = request.to_element();
        assert_eq!(Authenticate::from_element(&element).unwrap(), request);
    }

    #[test]
    fn an_empty_initial_response_differs_from_none() {
        let with_empty = Element::new("authenticate", NS)
            .with_attribute("mechanism", "EXTERNAL")
            .with_child(Element::new("initial-response", NS));
        let read = Authenticate::from_element(&with_empty).unwrap();
        assert_eq!(read.initial_response, Some(Vec::new()));
        let without = Element::new("authenticate", NS).with_attribute("mechanism", "EXTERNAL");
        assert_eq!(
            Authenticate::from_element(&without)
                .unwrap()
                .initial_response,
            None
        );
    }

    #[test]
    fn user_agent_texts_lose_control_and_direction_characters() {
        let agent = Element::new("user-agent", NS)
            .with_child(Element::new("software", NS).with_text("Conv\u{202E}ersations\n"))
            .with_child(Element::new("device", NS).with_text("\u{2066}Pixel\u{0007} 8\u{2069}"));
        let read = UserAgent::from_element(&agent).unwrap();
        assert_eq!(read.software.as_deref(), Some("Conversations"));
        assert_eq!(read.device.as_deref(), Some("Pixel 8"));
        let only_controls = Element::new("user-agent", NS)
            .with_child(Element::new("device", NS).with_text("\u{202E}\t"));
        assert_eq!(
            UserAgent::from_element(&only_controls).unwrap().device,
            None
        );
    }

    #[test]
    fn bad_requests_are_refused() {
        let agent = Element::new("user-agent", NS).with_attribute("id", "not-a-uuid");
        assert!(UserAgent::from_element(&agent).is_err());
        let bind =
            Element::new("bind", NS_BIND).with_child(Element::new("tag", NS_BIND).with_text("a/b"));
        assert!(BindRequest::from_element(&bind).is_err());
        let long = Element::new("bind", NS_BIND)
            .with_child(Element::new("tag", NS_BIND).with_text("x".repeat(MAX_TAG + 1)));
        assert!(BindRequest::from_element(&long).is_err());
        let no_mechanism = Element::new("authenticate", NS);
        assert!(Authenticate::from_element(&no_mechanism).is_err());
    }

    #[test]
    fn new_uuids_are_version_4() {
        let id = new_uuid().unwrap();
        assert!(is_uuid(&id), "{id}");
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(new_uuid(), Some(id));
    }

    #[test]
    fn the_offer_reads_back() {
        let offer = Offer {
            mechanisms: vec!["EXTERNAL".into(), "SCRAM-SHA-256".into()],
            bind: Some(vec![NS_CARBONS.into(), csi::NS.into()]),
            resume: true,
            fast: vec!["HT-SHA-256-NONE".into()],
        };
        assert_eq!(Offer::from_element(&offer.to_element()), offer);
    }
}
