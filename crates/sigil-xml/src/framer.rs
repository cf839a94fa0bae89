//! The push framer: bytes in, stream-level events out.
//!
//! It runs rxml's raw parser and resolves namespaces itself (a scope per
//! open element), so that every limit is checked as bytes arrive; the
//! parser gets at most 16 KiB at a time, so a limit is noticed within
//! 16 KiB of being crossed: a 10 MB stanza or a million attributes cost
//! no more than that.

use std::fmt;

use rxml::error::EndOrError;
use rxml::{Options, Parse, RawEvent, RawParser, WithOptions};

use crate::element::{Attribute, Element};
use crate::ns;

/// What one framer accepts. Every limit is checked as bytes arrive, so no
/// input makes the framer hold more than about one limit's worth of data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest top-level element (stanza) in bytes of input, counted
    /// from the end of the previous one. Default 256 KiB, as Prosody settled
    /// on after CVE-2021-32918.
    pub max_stanza_bytes: usize,
    /// The deepest nesting of elements, the stream header counting as 1.
    /// Default 32: real stanzas rarely exceed 8, and the cost of namespace
    /// resolution grows with depth.
    pub max_depth: usize,
    /// Attributes (namespace declarations included) on one element.
    /// Default 64.
    pub max_attributes: usize,
    /// Bytes accepted before [`Framer::set_authenticated`] is called.
    /// Default 64 KiB: a full negotiation takes a few KiB.
    pub max_unauthenticated_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_stanza_bytes: 256 * 1024,
            max_depth: 32,
            max_attributes: 64,
            max_unauthenticated_bytes: 64 * 1024,
        }
    }
}

/// One stream-level event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    /// The stream header (`<stream:stream …>`), or in the RFC 7395 framing
    /// `<open/>`.
    Open(StreamHeader),
    /// A complete top-level element: a stanza or a negotiation element.
    Element(Element),
    /// The end of the stream (`</stream:stream>`).
    Close,
}

/// The opening element of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamHeader {
    /// The header's local name (`stream`).
    pub name: String,
    /// The header's namespace (must be [`ns::STREAM`]).
    pub namespace: String,
    /// The default namespace declared on the header (`jabber:client`), or
    /// empty when none was declared.
    pub default_namespace: String,
    /// The header's attributes (`to`, `from`, `version`, `xml:lang`, `id`).
    pub attributes: Vec<Attribute>,
}

impl StreamHeader {
    /// The value of an attribute without namespace.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.namespace.is_empty() && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// `xml:lang`, if given.
    pub fn language(&self) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.namespace == ns::XML && a.name == "lang")
            .map(|a| a.value.as_str())
    }
}

/// Why the framer stopped. Every error is final for the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FramerError {
    /// The input is not well-formed XML or not namespace-well-formed (stream
    /// error `not-well-formed`).
    NotWellFormed(String),
    /// The input uses XML that XMPP forbids: a DTD, an entity declaration,
    /// a processing instruction, a comment (stream error `restricted-xml`).
    RestrictedXml(String),
    /// A limit of [`Limits`] was exceeded (stream error `policy-violation`).
    LimitExceeded(&'static str),
    /// Character data outside any top-level element that is not
    /// whitespace (stream error `bad-format`).
    TextAtStreamLevel,
    /// Data after the end of the stream.
    DataAfterClose,
    /// A `<stream:stream>` start tag inside the stream, where a stanza
    /// belongs (a client restarting a stream it may not restart): caught
    /// at its start tag, before anything that follows is buffered as its
    /// content (stream error `unsupported-stanza-type`).
    NestedStreamHeader,
}

impl fmt::Display for FramerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotWellFormed(detail) => write!(f, "not well-formed XML: {detail}"),
            Self::RestrictedXml(detail) => write!(f, "restricted XML: {detail}"),
            Self::LimitExceeded(which) => write!(f, "limit exceeded: {which}"),
            Self::TextAtStreamLevel => f.write_str("character data between stanzas"),
            Self::DataAfterClose => f.write_str("data after the end of the stream"),
            Self::NestedStreamHeader => f.write_str("a stream header inside the stream"),
        }
    }
}

impl std::error::Error for FramerError {}

/// A push framer for one XMPP stream.
///
/// Feed it input with [`Self::next_event`]; it consumes bytes up to and
/// including the next stream-level event and leaves the rest in the slice,
/// so a caller can restart the stream (after STARTTLS or SASL) exactly at
/// an element boundary: [`Self::reset`] starts a fresh parser for the new
/// stream header.
#[derive(Debug)]
pub struct Framer {
    limits: Limits,
    parser: RawParser,
    /// Namespace scopes, one per open element: (prefix or "" for the
    /// default namespace, namespace name).
    scopes: Vec<Vec<(String, String)>>,
    /// Elements under construction below the stream header.
    stack: Vec<Element>,
    /// The element whose head is being read.
    head: Option<Head>,
    depth: usize,
    /// The root is an XMPP `<stream:stream>` (not the synthetic root of
    /// [`Element::parse`](crate::Element::parse)).
    stream_root: bool,
    stanza_bytes: usize,
    total_bytes: u64,
    authenticated: bool,
    closed: bool,
    /// Nothing but whitespace read since the start or the last reset.
    fresh: bool,
}

#[derive(Debug)]
struct Head {
    prefix: Option<String>,
    name: String,
    attributes: Vec<(Option<String>, String, String)>,
}

/// The largest slice handed to the parser in one call, so a limit is
/// noticed within this many bytes of being crossed.
const CHUNK: usize = 16 * 1024;

impl Framer {
    /// A framer with these limits.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            parser: new_parser(&limits),
            scopes: Vec::new(),
            stack: Vec::new(),
            head: None,
            depth: 0,
            stream_root: false,
            stanza_bytes: 0,
            total_bytes: 0,
            authenticated: false,
            closed: false,
            fresh: true,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Lifts the unauthenticated byte limit (call once SASL succeeded).
    pub fn set_authenticated(&mut self) {
        self.authenticated = true;
    }

    /// Total bytes consumed so far, across resets.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Starts over for a new stream header (stream restart after STARTTLS
    /// or SASL success). The byte count and authentication state stay.
    pub fn reset(&mut self) {
        self.parser = new_parser(&self.limits);
        self.scopes.clear();
        self.stack.clear();
        self.head = None;
        self.depth = 0;
        self.stream_root = false;
        self.stanza_bytes = 0;
        self.closed = false;
        self.fresh = true;
    }

    /// Gives back the parser's token buffer, which rxml reserves at the
    /// token limit ([`MAX_TOKEN_BYTES`]) whenever it lexes and keeps
    /// otherwise, and the element stack's room: call it when all input so far is consumed and more may
    /// be long in coming (an idle session would hold 4 KiB for nothing).
    /// A partial token stays; the next input reserves the buffer again.
    pub fn release_buffers(&mut self) {
        self.parser.release_temporaries();
        // Between stanzas nothing is under construction.
        if self.stack.is_empty() {
            self.stack = Vec::new();
        }
        self.scopes.shrink_to_fit();
    }

    /// Consumes input up to the next stream-level event and returns it, or
    /// consumes all of `input` and returns `None` when no event is complete
    /// yet.
    pub fn next_event(&mut self, input: &mut &[u8]) -> Result<Option<StreamEvent>, FramerError> {
        if self.fresh {
            // Whitespace between top-level items is legal (XML's Misc):
            // clients send a newline before a restarted stream's header
            // (go-xmpp after `</auth>`), which an XML declaration may not
            // follow within one document. Each stream is its own document
            // here, so it starts at its first other byte.
            let blank = input
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
                .count();
            *input = &input[blank..];
            self.count(blank)?;
            if input.is_empty() {
                return Ok(None);
            }
            self.fresh = false;
        }
        loop {
            if self.closed {
                if input.is_empty() {
                    return Ok(None);
                }
                return Err(FramerError::DataAfterClose);
            }
            // The parser is called even with no input left: it may hold an
            // event that needs no more bytes (the end of `<x/>`).
            let take = input.len().min(CHUNK);
            let mut chunk = &input[..take];
            let result = self.parser.parse(&mut chunk, false);
            let consumed = take - chunk.len();
            *input = &input[consumed..];
            self.count(consumed)?;
            let event = match result {
                Ok(Some(event)) => event,
                Ok(None) | Err(EndOrError::NeedMoreData) => {
                    if input.is_empty() {
                        return Ok(None);
                    }
                    continue;
                }
                Err(EndOrError::Error(error)) => return Err(map_error(error)),
            };
            if let Some(out) = self.handle(event)? {
                return Ok(Some(out));
            }
        }
    }

    /// Accounts for an element that arrived already parsed (a WebSocket
    /// message, a child of a BOSH body) and took `bytes` on the wire: the
    /// same limits as for an element read from the stream, so a transport
    /// that frames elements itself hands them over without writing them
    /// out and reading them again. Depth counts the stream as 1; the
    /// attributes of each element count its namespace declaration where
    /// its namespace differs from its parent's.
    pub fn count_element(&mut self, element: &Element, bytes: usize) -> Result<(), FramerError> {
        self.total_bytes = self.total_bytes.saturating_add(bytes as u64);
        if !self.authenticated && self.total_bytes > self.limits.max_unauthenticated_bytes {
            return Err(FramerError::LimitExceeded("bytes before authentication"));
        }
        if bytes > self.limits.max_stanza_bytes {
            return Err(FramerError::LimitExceeded("stanza size"));
        }
        check_shape(element, "", 2, &self.limits)
    }

    fn count(&mut self, consumed: usize) -> Result<(), FramerError> {
        self.total_bytes += consumed as u64;
        if !self.authenticated && self.total_bytes > self.limits.max_unauthenticated_bytes {
            return Err(FramerError::LimitExceeded("bytes before authentication"));
        }
        self.stanza_bytes += consumed;
        if self.stanza_bytes > self.limits.max_stanza_bytes {
            return Err(FramerError::LimitExceeded("stanza size"));
        }
        Ok(())
    }

    fn handle(&mut self, event: RawEvent) -> Result<Option<StreamEvent>, FramerError> {
        match event {
            RawEvent::XmlDeclaration(..) => Ok(None),
            RawEvent::ElementHeadOpen(_, (prefix, name)) => {
                if self.depth + 1 > self.limits.max_depth {
                    return Err(FramerError::LimitExceeded("nesting depth"));
                }
                self.head = Some(Head {
                    prefix: prefix.map(|p| p.to_string()),
                    name: name.to_string(),
                    attributes: Vec::new(),
                });
                Ok(None)
            }
            RawEvent::Attribute(_, (prefix, name), value) => {
                let head = self
                    .head
                    .as_mut()
                    .ok_or_else(|| not_well_formed("attribute outside an element head"))?;
                if head.attributes.len() >= self.limits.max_attributes {
                    return Err(FramerError::LimitExceeded("attributes per element"));
                }
                head.attributes
                    .push((prefix.map(|p| p.to_string()), name.to_string(), value));
                Ok(None)
            }
            RawEvent::ElementHeadClose(_) => {
                let head = self
                    .head
                    .take()
                    .ok_or_else(|| not_well_formed("element head close without head"))?;
                self.open_element(head)
            }
            RawEvent::Text(_, text) => {
                match self.stack.last_mut() {
                    Some(parent) => parent.push_text(text),
                    None => {
                        if !text
                            .bytes()
                            .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
                        {
                            return Err(FramerError::TextAtStreamLevel);
                        }
                        // Whitespace keepalives between stanzas do not count
                        // toward the next stanza's size.
                        self.stanza_bytes = 0;
                    }
                }
                Ok(None)
            }
            RawEvent::ElementFoot(_) => self.close_element(),
        }
    }

    fn open_element(&mut self, head: Head) -> Result<Option<StreamEvent>, FramerError> {
        let mut scope = Vec::new();
        let mut plain = Vec::with_capacity(head.attributes.len());
        for (prefix, name, value) in head.attributes {
            match prefix.as_deref() {
                None if name == "xmlns" => scope.push((String::new(), value)),
                Some("xmlns") => {
                    if value == ns::XML || name == "xml" {
                        return Err(not_well_formed("the xml prefix cannot be rebound"));
                    }
                    scope.push((name, value));
                }
                _ => plain.push((prefix, name, value)),
            }
        }
        self.scopes.push(scope);
        let namespace = self.resolve(head.prefix.as_deref())?;
        let mut attributes: Vec<Attribute> = Vec::with_capacity(plain.len());
        for (prefix, name, value) in plain {
            let attribute_namespace = match prefix.as_deref() {
                None => String::new(),
                Some(p) => self.resolve(Some(p))?,
            };
            if attributes
                .iter()
                .any(|a| a.name == name && a.namespace == attribute_namespace)
            {
                return Err(not_well_formed("duplicate attribute"));
            }
            attributes.push(Attribute {
                namespace: attribute_namespace,
                name,
                value,
            });
        }
        self.depth += 1;
        if self.depth == 1 {
            self.stream_root = head.name == "stream" && namespace == ns::STREAM;
            let default_namespace = self.resolve(None)?;
            self.stanza_bytes = 0;
            return Ok(Some(StreamEvent::Open(StreamHeader {
                name: head.name,
                namespace,
                default_namespace,
                attributes,
            })));
        }
        if self.depth == 2 && self.stream_root && head.name == "stream" && namespace == ns::STREAM {
            return Err(FramerError::NestedStreamHeader);
        }
        let mut element = Element::new(head.name, namespace);
        for attribute in attributes {
            element.set_attribute_ns(&attribute.name, &attribute.namespace, attribute.value);
        }
        self.stack.push(element);
        Ok(None)
    }

    fn close_element(&mut self) -> Result<Option<StreamEvent>, FramerError> {
        self.scopes.pop();
        self.depth = self.depth.saturating_sub(1);
        if self.depth == 0 {
            self.closed = true;
            return Ok(Some(StreamEvent::Close));
        }
        let element = self
            .stack
            .pop()
            .ok_or_else(|| not_well_formed("unbalanced end tag"))?;
        match self.stack.last_mut() {
            Some(parent) => {
                parent.push_child(element);
                Ok(None)
            }
            None => {
                self.stanza_bytes = 0;
                Ok(Some(StreamEvent::Element(element)))
            }
        }
    }

    /// The namespace bound to `prefix` (`None`: the default namespace) in
    /// the innermost scope that binds it.
    fn resolve(&self, prefix: Option<&str>) -> Result<String, FramerError> {
        let key = match prefix {
            Some("xml") => return Ok(ns::XML.to_owned()),
            Some(p) => p,
            None => "",
        };
        for scope in self.scopes.iter().rev() {
            if let Some((_, uri)) = scope
                .iter()
                .rev()
                .find(|(p, _)| crate::element::same(p, key))
            {
                return Ok(uri.clone());
            }
        }
        match prefix {
            None => Ok(String::new()),
            Some(p) => Err(FramerError::NotWellFormed(format!(
                "undeclared namespace prefix {p:?}"
            ))),
        }
    }
}

/// The longest name or attribute value (rxml's token length). rxml keeps a
/// scratch buffer of this size for every parser, that is for every
/// connection, so it stays small: longer text is split into several events
/// anyway, and the longest JID (RFC 7622: three parts of 1023 bytes) fits.
pub const MAX_TOKEN_BYTES: usize = 4096;

fn new_parser(limits: &Limits) -> RawParser {
    RawParser::with_options(Options {
        max_token_length: limits.max_stanza_bytes.clamp(1024, MAX_TOKEN_BYTES),
        ..Options::default()
    })
}

fn not_well_formed(detail: &str) -> FramerError {
    FramerError::NotWellFormed(detail.to_owned())
}

fn map_error(error: rxml::Error) -> FramerError {
    match error {
        rxml::Error::RestrictedXml(detail) => FramerError::RestrictedXml(detail.to_owned()),
        // `<!` that starts neither a comment nor a CDATA section: a
        // DOCTYPE or another markup declaration, which XMPP forbids
        // (RFC 6120 §11.1) rather than XML.
        rxml::Error::InvalidSyntax("malformed cdata or comment section start") => {
            FramerError::RestrictedXml("document type and markup declarations".into())
        }
        other => FramerError::NotWellFormed(other.to_string()),
    }
}

/// The depth and attribute limits for an element at `depth` (the stream
/// being 1) whose parent's namespace is `parent`.
fn check_shape(
    element: &Element,
    parent: &str,
    depth: usize,
    limits: &Limits,
) -> Result<(), FramerError> {
    if depth > limits.max_depth {
        return Err(FramerError::LimitExceeded("nesting depth"));
    }
    let declaration = usize::from(element.namespace() != parent);
    if element.attributes().len() + declaration > limits.max_attributes {
        return Err(FramerError::LimitExceeded("attributes per element"));
    }
    element
        .children()
        .try_for_each(|child| check_shape(child, element.namespace(), depth + 1, limits))
}
