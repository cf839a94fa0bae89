//! BOSH bodies (XEP-0124 v1.11, XEP-0206), sans I/O: reading a request's
//! `<body/>` into what the XMPP session gets, and wrapping the session's
//! frames into a response `<body/>`. The HTTP side (sessions, rids, held
//! requests) is the server's.

use sigil_xml::{Element, FramerError, ns};

use crate::Framing;
use crate::frame::Frame;

/// The BOSH namespace.
pub const NS_HTTPBIND: &str = "http://jabber.org/protocol/httpbind";
/// XEP-0206's namespace for `xmpp:version`, `xmpp:restart`…
pub const NS_XBOSH: &str = "urn:xmpp:xbosh";

/// Why a request body is refused (HTTP 400, `bad-request`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Not UTF-8.
    NotUtf8,
    /// Not one well-formed element.
    NotXml(FramerError),
    /// Not `<body xmlns='http://jabber.org/protocol/httpbind'/>`.
    NotABody,
    /// No `rid`, or not a number.
    NoRid,
    /// A `rid` above 2^53 - 1 (XEP-0124 §14: clients choose it so that
    /// it never reaches that, the largest integer JavaScript holds).
    RidTooLarge,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotUtf8 => f.write_str("the body is not UTF-8"),
            Self::NotXml(error) => write!(f, "the body is not XML: {error}"),
            Self::NotABody => f.write_str("not a BOSH <body/>"),
            Self::NoRid => f.write_str("no numeric rid"),
            Self::RidTooLarge => f.write_str("a rid above 2^53 - 1"),
        }
    }
}

impl std::error::Error for BodyError {}

/// The largest `rid` (XEP-0124 §14: 2^53 - 1).
pub const MAX_RID: u64 = (1 << 53) - 1;

/// One request's `<body/>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The request id.
    pub rid: u64,
    /// The session, absent on the request that creates one.
    pub sid: Option<String>,
    /// `to`: the domain asked for.
    pub to: Option<String>,
    /// `from`: the account the client names (XEP-0206 §4), as a stream
    /// header's `from`.
    pub from: Option<String>,
    /// `wait`: the longest the client lets a request be held, seconds.
    pub wait: Option<u64>,
    /// `xmpp:version`.
    pub version: Option<String>,
    /// `xmpp:restart='true'`: the stream restarts (after SASL).
    pub restart: bool,
    /// `type='terminate'`: the client ends the session.
    pub terminate: bool,
    /// The stanzas and nonzas inside, as stream elements (those that did
    /// not declare `jabber:client` inherit it, XEP-0206 §7).
    pub payload: Vec<Element>,
}

impl Request {
    /// Reads a request body.
    pub fn parse(bytes: &[u8]) -> Result<Self, BodyError> {
        let text = std::str::from_utf8(bytes).map_err(|_| BodyError::NotUtf8)?;
        let body = Element::parse(text).map_err(BodyError::NotXml)?;
        if !body.is("body", NS_HTTPBIND) {
            return Err(BodyError::NotABody);
        }
        let rid = body
            .attribute("rid")
            .and_then(|r| r.parse::<u64>().ok())
            .ok_or(BodyError::NoRid)?;
        if rid > MAX_RID {
            return Err(BodyError::RidTooLarge);
        }
        Ok(Self {
            rid,
            sid: body.attribute("sid").map(str::to_owned),
            to: body.attribute("to").map(str::to_owned),
            from: body.attribute("from").map(str::to_owned),
            wait: body.attribute("wait").and_then(|w| w.parse().ok()),
            version: body.attribute_ns("version", NS_XBOSH).map(str::to_owned),
            restart: body.attribute_ns("restart", NS_XBOSH) == Some("true"),
            terminate: body.attribute("type") == Some("terminate"),
            payload: payload(&body),
        })
    }

    /// The `<open/>` that starts (or restarts) the session's stream.
    pub fn open_element(&self, domain: &str) -> Element {
        let open = Element::new("open", ns::FRAMING)
            .with_attribute("to", self.to.as_deref().unwrap_or(domain))
            .with_attribute("version", self.version.as_deref().unwrap_or("1.0"));
        match &self.from {
            Some(from) => open.with_attribute("from", from.clone()),
            None => open,
        }
    }

    /// What the session gets from this request of an existing session, in
    /// order: `<open/>` on a restart, the payload, `<close/>` on terminate.
    pub fn stream_elements(&self, domain: &str) -> Vec<Element> {
        let mut elements = Vec::with_capacity(self.payload.len() + 2);
        if self.restart {
            elements.push(self.open_element(domain));
        }
        elements.extend(self.payload.iter().cloned());
        if self.terminate {
            elements.push(Element::new("close", ns::FRAMING));
        }
        elements
    }
}

/// The children of a request body as stream elements: stanzas that did
/// not declare `jabber:client` inherit it (XEP-0206 §7).
pub fn payload(body: &Element) -> Vec<Element> {
    body.children()
        .map(|child| {
            if child.namespace() == NS_HTTPBIND {
                renamespace(child, NS_HTTPBIND, ns::CLIENT)
            } else {
                child.clone()
            }
        })
        .collect()
}

/// `element` with every element of it in namespace `from` moved to `to`.
pub(crate) fn renamespace(element: &Element, from: &str, to: &str) -> Element {
    let namespace = if element.namespace() == from {
        to
    } else {
        element.namespace()
    };
    let mut out = Element::new(element.name(), namespace);
    for attribute in element.attributes() {
        out.set_attribute_ns(
            &attribute.name,
            &attribute.namespace,
            attribute.value.clone(),
        );
    }
    for node in element.nodes() {
        match node {
            sigil_xml::Node::Element(child) => out.push_child(renamespace(child, from, to)),
            sigil_xml::Node::Text(text) => out.push_text(text.clone()),
        }
    }
    out
}

/// The rid window of one session (XEP-0124 §14.1): which request comes
/// next, and the last response, for a client that repeats a request whose
/// response it lost. Sans-IO: the caller decides how long a request that
/// is ahead of its turn may wait.
#[derive(Debug)]
pub struct RidWindow {
    /// The highest rid taken.
    last: u64,
    /// Requests a client may have open at once.
    requests: u64,
    /// The last response and its rid.
    last_response: Option<(u64, String)>,
}

/// Where a request's rid stands in its session's window.
#[derive(Debug, PartialEq, Eq)]
pub enum RidVerdict<'a> {
    /// Its turn: take it ([`RidWindow::take`]).
    Next,
    /// Within the window, after one not yet arrived: it waits its turn.
    Ahead,
    /// The rid of the last answered request: its response again.
    Repeat(&'a str),
    /// Outside the window (old, or too far ahead): refused.
    Invalid,
}

impl RidWindow {
    /// The window after the creating request `rid`, for a client with
    /// `requests` requests open at most.
    pub fn new(rid: u64, requests: u64) -> Self {
        Self {
            last: rid,
            requests,
            last_response: None,
        }
    }

    /// Where `rid` stands.
    pub fn check(&self, rid: u64) -> RidVerdict<'_> {
        if let Some((answered, response)) = &self.last_response
            && *answered == rid
        {
            return RidVerdict::Repeat(response);
        }
        // A rid is at most 2^53 - 1 when parsed: no overflow, checked all
        // the same.
        if rid <= self.last || Some(rid) > self.last.checked_add(self.requests) {
            RidVerdict::Invalid
        } else if Some(rid) == self.last.checked_add(1) {
            RidVerdict::Next
        } else {
            RidVerdict::Ahead
        }
    }

    /// Takes `rid`, whose verdict was [`RidVerdict::Next`].
    pub fn take(&mut self, rid: u64) {
        self.last = self.last.max(rid);
    }

    /// The highest rid taken.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Keeps the response to `rid`, for a repeat of it.
    pub fn answered(&mut self, rid: u64, response: String) {
        self.last_response = Some((rid, response));
    }
}

/// A response `<body/>` around the session's frames, each written as a
/// standalone element (the RFC 7395 framing). Openings and ends are left
/// out; a closed session's body is `type='terminate'`, with
/// `condition='remote-stream-error'` when a stream error is among the
/// frames. `attributes` (each with a leading space) go on the body: those
/// of a session's creation (XEP-0124 §7.1).
pub fn response_body(frames: &[Frame], closed: bool, attributes: &str) -> String {
    let mut out = String::from(
        "<body xmlns='http://jabber.org/protocol/httpbind' xmlns:stream='http://etherx.jabber.org/streams'",
    );
    out.push_str(attributes);
    if closed {
        out.push_str(" type='terminate'");
        if frames.iter().any(Frame::is_stream_error) {
            out.push_str(" condition='remote-stream-error'");
        }
    }
    let mut content = frames
        .iter()
        .filter(|f| matches!(f, Frame::Element(_)))
        .peekable();
    if content.peek().is_none() {
        out.push_str("/>");
        return out;
    }
    out.push('>');
    for frame in content {
        frame.write_to(&mut out, Framing::Standalone);
    }
    out.push_str("</body>");
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_request_and_what_the_session_gets_from_it() {
        let request = Request::parse(
            b"<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' \
              rid='42' sid='s1' xmpp:restart='true' to='example.org' type='terminate'>\
              <message to='a@example.org'><body>hi</body></message>\
              <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'/></body>",
        )
        .unwrap();
        assert_eq!(request.rid, 42);
        assert_eq!(request.sid.as_deref(), Some("s1"));
        assert!(request.restart && request.terminate);
        let elements = request.stream_elements("fallback.org");
        let names: Vec<(&str, &str)> = elements.iter().map(|e| (e.name(), e.namespace())).collect();
        assert_eq!(
            names,
            [
                ("open", ns::FRAMING),
                ("message", ns::CLIENT),
                ("auth", "urn:ietf:params:xml:ns:xmpp-sasl"),
                ("close", ns::FRAMING),
            ]
        );
        assert_eq!(elements[0].attribute("to"), Some("example.org"));
        // The message's children moved to jabber:client as well.
        assert!(elements[1].has_child("body", ns::CLIENT));
    }

    #[test]
    fn bad_bodies() {
        assert_eq!(Request::parse(b"\xff"), Err(BodyError::NotUtf8));
        assert!(matches!(
            Request::parse(b"<body"),
            Err(BodyError::NotXml(_))
        ));
        assert_eq!(Request::parse(b"<body rid='1'/>"), Err(BodyError::NotABody));
        assert_eq!(
            Request::parse(b"<body xmlns='http://jabber.org/protocol/httpbind' rid='x'/>"),
            Err(BodyError::NoRid)
        );
        assert_eq!(
            Request::parse(
                b"<body xmlns='http://jabber.org/protocol/httpbind' rid='9007199254740992'/>"
            ),
            Err(BodyError::RidTooLarge)
        );
        assert_eq!(
            Request::parse(
                b"<body xmlns='http://jabber.org/protocol/httpbind' rid='9007199254740991'/>"
            )
            .unwrap()
            .rid,
            MAX_RID
        );
        assert_eq!(
            Request::parse(
                b"<body xmlns='http://jabber.org/protocol/httpbind' rid='18446744073709551615'/>"
            ),
            Err(BodyError::RidTooLarge)
        );
    }

    #[test]
    fn the_rid_window() {
        let mut window = RidWindow::new(10, 2);
        assert_eq!(window.check(10), RidVerdict::Invalid);
        assert_eq!(window.check(11), RidVerdict::Next);
        assert_eq!(window.check(12), RidVerdict::Ahead);
        assert_eq!(window.check(13), RidVerdict::Invalid);
        window.take(11);
        window.answered(11, "<body/>".into());
        assert_eq!(window.last(), 11);
        assert_eq!(window.check(11), RidVerdict::Repeat("<body/>"));
        assert_eq!(window.check(10), RidVerdict::Invalid);
        assert_eq!(window.check(12), RidVerdict::Next);
        assert_eq!(window.check(13), RidVerdict::Ahead);
        let top = RidWindow::new(MAX_RID, 2);
        assert_eq!(top.check(u64::MAX), RidVerdict::Invalid);
        assert_eq!(top.check(MAX_RID + 1), RidVerdict::Next);
    }

    #[test]
    fn response_bodies() {
        assert_eq!(
            response_body(&[], false, ""),
            "<body xmlns='http://jabber.org/protocol/httpbind' xmlns:stream='http://etherx.jabber.org/streams'/>"
        );
        let error = crate::error::StreamError::new(crate::error::StreamCondition::Conflict);
        let closed = response_body(
            &[
                Frame::Open(crate::frame::Opening::default()),
                Frame::Element(error.to_element()),
                Frame::Close,
            ],
            true,
            " sid='s'",
        );
        assert!(
            closed.contains(" sid='s' type='terminate' condition='remote-stream-error'>"),
            "{closed}"
        );
        assert!(
            !closed.contains("<close") && !closed.contains("<open"),
            "{closed}"
        );
        assert!(closed.contains("<stream:error xmlns:stream="), "{closed}");
    }
}
