//! A small owned XML element tree and its serializer.

use std::fmt::Write as _;

use crate::ns;

/// An XML element: a namespaced name, attributes and children.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    name: String,
    namespace: String,
    attributes: Vec<Attribute>,
    children: Vec<Node>,
}

/// One attribute. Attributes without a prefix have no namespace (empty
/// `namespace`); `xml:lang` has [`ns::XML`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    /// The attribute's namespace, empty for none.
    pub namespace: String,
    /// The local name.
    pub name: String,
    /// The value, unescaped.
    pub value: String,
}

/// A child of an element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data, unescaped.
    Text(String),
}

impl Element {
    /// An element with no attributes and no children.
    pub fn new(name: impl Into<String>, namespace: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            attributes: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Builder form of [`Self::set_attribute`].
    #[must_use]
    pub fn with_attribute(mut self, name: &str, value: impl Into<String>) -> Self {
        self.set_attribute(name, value);
        self
    }

    /// Builder form of [`Self::set_attribute_ns`].
    #[must_use]
    pub fn with_attribute_ns(
        mut self,
        name: &str,
        namespace: &str,
        value: impl Into<String>,
    ) -> Self {
        self.set_attribute_ns(name, namespace, value);
        self
    }

    /// Builder form of [`Self::push_child`].
    #[must_use]
    pub fn with_child(mut self, child: Self) -> Self {
        self.push_child(child);
        self
    }

    /// Builder form of [`Self::push_text`].
    #[must_use]
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.push_text(text);
        self
    }

    /// The local name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace name.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Whether this element has this local name and namespace.
    pub fn is(&self, name: &str, namespace: &str) -> bool {
        self.name == name && self.namespace == namespace
    }

    /// The value of an attribute without namespace.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.namespace.is_empty() && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// The value of a namespaced attribute (such as `xml:lang`).
    pub fn attribute_ns(&self, name: &str, namespace: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.namespace == namespace && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// All attributes, in document order.
    pub fn attributes(&self) -> &[Attribute] {
        &self.attributes
    }

    /// Sets an attribute without namespace, replacing an earlier value.
    pub fn set_attribute(&mut self, name: &str, value: impl Into<String>) {
        self.set_attribute_ns(name, "", value);
    }

    /// Sets a namespaced attribute, replacing an earlier value.
    pub fn set_attribute_ns(&mut self, name: &str, namespace: &str, value: impl Into<String>) {
        let value = value.into();
        match self
            .attributes
            .iter_mut()
            .find(|a| a.name == name && same(&a.namespace, namespace))
        {
            Some(existing) => existing.value = value,
            None => self.attributes.push(Attribute {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                value,
            }),
        }
    }

    /// Removes an attribute without namespace and returns its value.
    pub fn remove_attribute(&mut self, name: &str) -> Option<String> {
        let index = self
            .attributes
            .iter()
            .position(|a| a.namespace.is_empty() && a.name == name)?;
        Some(self.attributes.remove(index).value)
    }

    /// Appends a child element.
    pub fn push_child(&mut self, child: Self) {
        self.children.push(Node::Element(child));
    }

    /// Appends character data (adjacent text is merged).
    pub fn push_text(&mut self, text: impl Into<String>) {
        let text = text.into();
        if text.is_empty() {
            return;
        }
        if let Some(Node::Text(last)) = self.children.last_mut() {
            last.push_str(&text);
        } else {
            self.children.push(Node::Text(text));
        }
    }

    /// All children, elements and text.
    pub fn nodes(&self) -> &[Node] {
        &self.children
    }

    /// Child elements, in document order.
    pub fn children(&self) -> impl Iterator<Item = &Self> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// Child elements, mutable.
    pub fn children_mut(&mut self) -> impl Iterator<Item = &mut Self> {
        self.children.iter_mut().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element with this name and namespace.
    pub fn child(&self, name: &str, namespace: &str) -> Option<&Self> {
        self.children().find(|c| c.is(name, namespace))
    }

    /// The first child element with this name and namespace, mutable.
    pub fn child_mut(&mut self, name: &str, namespace: &str) -> Option<&mut Self> {
        self.children_mut().find(|c| c.is(name, namespace))
    }

    /// Whether a child element with this name and namespace exists.
    pub fn has_child(&self, name: &str, namespace: &str) -> bool {
        self.child(name, namespace).is_some()
    }

    /// Removes every child element with this name and namespace.
    pub fn remove_children(&mut self, name: &str, namespace: &str) {
        self.children
            .retain(|n| !matches!(n, Node::Element(e) if e.is(name, namespace)));
    }

    /// The concatenated direct character data of this element.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for node in &self.children {
            if let Node::Text(t) = node {
                out.push_str(t);
            }
        }
        out
    }

    /// Parses one standalone element (the form [`Self::to_xml`] writes),
    /// with the default limits.
    pub fn parse(text: &str) -> Result<Self, crate::FramerError> {
        let mut framer = crate::Framer::new(crate::Limits {
            max_unauthenticated_bytes: u64::MAX,
            max_stanza_bytes: text
                .len()
                .saturating_add(64)
                .max(crate::Limits::default().max_stanza_bytes),
            ..crate::Limits::default()
        });
        // A synthetic root makes the element a top-level one.
        let mut input: &[u8] = b"<r>";
        let _ = framer.next_event(&mut input)?;
        let mut input = text.as_bytes();
        match framer.next_event(&mut input)? {
            Some(crate::StreamEvent::Element(element))
                if input.iter().all(u8::is_ascii_whitespace) =>
            {
                Ok(element)
            }
            _ => Err(crate::FramerError::NotWellFormed(
                "not one complete element".into(),
            )),
        }
    }

    /// Serializes this element as a standalone document fragment: its own
    /// namespace is declared, `stream:` elements declare their prefix.
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        self.write_to(&mut out, "", false);
        out
    }

    /// Serializes this element inside a stream whose default namespace is
    /// `default_namespace` and where the `stream` prefix is declared when
    /// `stream_prefix_declared` (the stream header of RFC 6120 declares it;
    /// the RFC 7395 framing does not).
    pub fn write_to(
        &self,
        out: &mut String,
        default_namespace: &str,
        stream_prefix_declared: bool,
    ) {
        let mut prefixes = Vec::new();
        self.write_inner(
            out,
            default_namespace,
            stream_prefix_declared,
            &mut prefixes,
        );
    }

    fn write_inner<'a>(
        &'a self,
        out: &mut String,
        default_namespace: &str,
        stream_prefix_declared: bool,
        prefixes: &mut Vec<&'a str>,
    ) {
        out.push('<');
        let mut declare_stream = false;
        let mut child_default = default_namespace;
        if self.namespace == ns::STREAM {
            out.push_str("stream:");
            declare_stream = !stream_prefix_declared;
        }
        out.push_str(&self.name);
        if declare_stream {
            out.push_str(" xmlns:stream=\"");
            out.push_str(ns::STREAM);
            out.push('"');
        }
        if self.namespace != ns::STREAM && self.namespace != default_namespace {
            out.push_str(" xmlns=\"");
            escape_attribute(out, &self.namespace);
            out.push('"');
            child_default = &self.namespace;
        }
        let mark = prefixes.len();
        for attribute in &self.attributes {
            out.push(' ');
            if attribute.namespace == ns::XML {
                out.push_str("xml:");
            } else if !attribute.namespace.is_empty() {
                // Namespaced attributes other than xml:* are rare in XMPP;
                // each gets a prefix declared on this element.
                let index = prefixes.len();
                prefixes.push(&attribute.namespace);
                let _ = write!(out, "xmlns:a{index}=\"");
                escape_attribute(out, &attribute.namespace);
                let _ = write!(out, "\" a{index}:");
            }
            out.push_str(&attribute.name);
            out.push_str("=\"");
            escape_attribute(out, &attribute.value);
            out.push('"');
        }
        prefixes.truncate(mark);
        if self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        let children_stream_declared = stream_prefix_declared || declare_stream;
        for node in &self.children {
            match node {
                Node::Element(e) => {
                    e.write_inner(out, child_default, children_stream_declared, prefixes)
                }
                Node::Text(t) => escape_text(out, t),
            }
        }
        out.push_str("</");
        if self.namespace == ns::STREAM {
            out.push_str("stream:");
        }
        out.push_str(&self.name);
        out.push('>');
    }
}

/// Appends `text` escaped for character data.
pub fn escape_text(out: &mut String, text: &str) {
    escape(out, text, |byte| match byte {
        b'&' => Some("&amp;"),
        b'<' => Some("&lt;"),
        b'>' => Some("&gt;"),
        // A literal CR would be turned into LF by the reader.
        b'\r' => Some("&#xD;"),
        _ => None,
    });
}

/// Appends `value` escaped for a double-quoted attribute value.
pub fn escape_attribute(out: &mut String, value: &str) {
    escape(out, value, |byte| match byte {
        b'&' => Some("&amp;"),
        b'<' => Some("&lt;"),
        b'>' => Some("&gt;"),
        b'"' => Some("&quot;"),
        // Attribute value normalisation would turn these into spaces.
        b'\t' => Some("&#x9;"),
        b'\n' => Some("&#xA;"),
        b'\r' => Some("&#xD;"),
        _ => None,
    });
}

/// Appends `text` with each byte `entity` names replaced: runs between
/// them are copied whole. Every byte replaced is ASCII, so the runs
/// split `text` only at character boundaries.
#[inline]
fn escape(out: &mut String, text: &str, entity: impl Fn(u8) -> Option<&'static str>) {
    let mut plain = 0;
    for (at, byte) in text.bytes().enumerate() {
        if let Some(replacement) = entity(byte) {
            out.push_str(&text[plain..at]);
            out.push_str(replacement);
            plain = at + 1;
        }
    }
    out.push_str(&text[plain..]);
}

/// String equality that settles the empty case (most namespaces and
/// prefixes here) without a call to `memcmp`, which profiles showed.
#[inline]
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_replaces_only_markup_and_keeps_every_other_character() {
        let mut text = String::new();
        escape_text(&mut text, "é<b>&\r\"x\"\t✓");
        assert_eq!(text, "é&lt;b&gt;&amp;&#xD;\"x\"\t✓");
        let mut attribute = String::new();
        escape_attribute(&mut attribute, "ü\"a\"\n\t<&>\r😀");
        assert_eq!(attribute, "ü&quot;a&quot;&#xA;&#x9;&lt;&amp;&gt;&#xD;😀");
        let mut plain = String::from("kept ");
        escape_attribute(&mut plain, "");
        escape_text(&mut plain, "nothing to do");
        assert_eq!(plain, "kept nothing to do");
    }

    #[test]
    fn stanza_in_client_stream_has_no_namespace_declaration() {
        let message = Element::new("message", ns::CLIENT)
            .with_attribute("to", "juliet@example.com")
            .with_child(Element::new("body", ns::CLIENT).with_text("a < b & \"c\""));
        let mut out = String::new();
        message.write_to(&mut out, ns::CLIENT, true);
        assert_eq!(
            out,
            "<message to=\"juliet@example.com\"><body>a &lt; b &amp; \"c\"</body></message>"
        );
    }

    #[test]
    fn standalone_declares_namespaces() {
        let features = Element::new("features", ns::STREAM).with_child(
            Element::new("starttls", ns::TLS).with_child(Element::new("required", ns::TLS)),
        );
        assert_eq!(
            features.to_xml(),
            "<stream:features xmlns:stream=\"http://etherx.jabber.org/streams\">\
             <starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"><required/></starttls>\
             </stream:features>"
        );
    }

    #[test]
    fn attribute_escaping_and_xml_lang() {
        let mut e = Element::new("x", "urn:x");
        e.set_attribute("a", "1\"2\n3<&>");
        e.set_attribute_ns("lang", ns::XML, "en");
        assert_eq!(
            e.to_xml(),
            "<x xmlns=\"urn:x\" a=\"1&quot;2&#xA;3&lt;&amp;&gt;\" xml:lang=\"en\"/>"
        );
    }

    #[test]
    fn parse_reads_what_to_xml_writes() {
        let e = Element::new("message", ns::CLIENT)
            .with_attribute("to", "a@b")
            .with_child(Element::new("body", ns::CLIENT).with_text("x & y"));
        assert_eq!(Element::parse(&e.to_xml()).unwrap(), e);
        assert!(Element::parse("<a/><b/>").is_err());
        assert!(Element::parse("<a>").is_err());
        assert!(Element::parse("text").is_err());
    }

    #[test]
    fn text_merges_and_attributes_replace() {
        let mut e = Element::new("x", "urn:x");
        e.push_text("a");
        e.push_text("b");
        e.set_attribute("k", "1");
        e.set_attribute("k", "2");
        assert_eq!(e.text(), "ab");
        assert_eq!(e.nodes().len(), 1);
        assert_eq!(e.attribute("k"), Some("2"));
        assert_eq!(e.remove_attribute("k"), Some("2".into()));
        assert_eq!(e.attribute("k"), None);
    }
}
