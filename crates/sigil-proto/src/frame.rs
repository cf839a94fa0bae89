//! What a stream writes, typed: its opening, its elements and its end.
//!
//! The stream machines ([`crate::server::ServerStream`],
//! [`crate::client::ClientStream`]) hand out [`Frame`]s; the transport
//! writes each in its own framing ([`Framing`]): one XML document over
//! TCP, one standalone element per WebSocket message or BOSH child.
//! Nothing below the machines matches on serialised text to learn what
//! was sent.

use sigil_xml::{Element, escape_attribute, ns};

use crate::Framing;

/// One unit of a stream's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// The opening of a stream (or of a restarted one): the stream header
    /// of RFC 6120, or the `<open/>` of RFC 7395.
    Open(Opening),
    /// One top-level element: a stanza, a negotiation element, a stream
    /// error.
    Element(Element),
    /// The end of the stream: `</stream:stream>`, or `<close/>`.
    Close,
}

/// The attributes of a stream's opening (`version='1.0'` and
/// `xml:lang='en'` are always written).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Opening {
    /// The stream id (set by the server).
    pub id: Option<String>,
    /// The sender's domain (set by the server).
    pub from: Option<String>,
    /// The domain asked for (set by the client).
    pub to: Option<String>,
}

impl Frame {
    /// Appends this frame to `out` as `framing` writes it.
    pub fn write_to(&self, out: &mut String, framing: Framing) {
        match (self, framing) {
            (Self::Open(opening), Framing::Stream) => {
                out.push_str(
                    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
                     xmlns:stream='http://etherx.jabber.org/streams'",
                );
                opening.write_attributes(out, '\'');
                out.push('>');
            }
            (Self::Open(opening), Framing::Standalone) => {
                out.push_str("<open xmlns=\"");
                out.push_str(ns::FRAMING);
                out.push('"');
                opening.write_attributes(out, '"');
                out.push_str("/>");
            }
            (Self::Element(element), Framing::Stream) => element.write_to(out, ns::CLIENT, true),
            (Self::Element(element), Framing::Standalone) => element.write_to(out, "", false),
            (Self::Close, Framing::Stream) => out.push_str("</stream:stream>"),
            (Self::Close, Framing::Standalone) => out.push_str(crate::CLOSE_FRAME),
        }
    }

    /// This frame as `framing` writes it.
    pub fn to_text(&self, framing: Framing) -> String {
        let mut out = String::new();
        self.write_to(&mut out, framing);
        out
    }

    /// Whether this is a stream error (`<stream:error/>`).
    pub fn is_stream_error(&self) -> bool {
        matches!(self, Self::Element(element) if element.is("error", ns::STREAM))
    }
}

impl Opening {
    fn write_attributes(&self, out: &mut String, quote: char) {
        for (name, value) in [("id", &self.id), ("from", &self.from), ("to", &self.to)] {
            if let Some(value) = value {
                out.push(' ');
                out.push_str(name);
                out.push('=');
                out.push(quote);
                escape_attribute(out, value);
                out.push(quote);
            }
        }
        out.push_str(" version=");
        out.push(quote);
        out.push_str("1.0");
        out.push(quote);
        out.push_str(" xml:lang=");
        out.push(quote);
        out.push_str("en");
        out.push(quote);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn each_frame_in_each_framing() {
        let opening = Frame::Open(Opening {
            id: Some("a<b".into()),
            from: Some("example.org".into()),
            to: None,
        });
        assert_eq!(
            opening.to_text(Framing::Stream),
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' id='a&lt;b' from='example.org' \
             version='1.0' xml:lang='en'>"
        );
        assert_eq!(
            opening.to_text(Framing::Standalone),
            "<open xmlns=\"urn:ietf:params:xml:ns:xmpp-framing\" id=\"a&lt;b\" \
             from=\"example.org\" version=\"1.0\" xml:lang=\"en\"/>"
        );
        let message = Frame::Element(Element::new("message", ns::CLIENT));
        assert_eq!(message.to_text(Framing::Stream), "<message/>");
        assert_eq!(
            message.to_text(Framing::Standalone),
            "<message xmlns=\"jabber:client\"/>"
        );
        assert_eq!(Frame::Close.to_text(Framing::Stream), "</stream:stream>");
        assert_eq!(
            Frame::Close.to_text(Framing::Standalone),
            crate::CLOSE_FRAME
        );
        // What the standalone framing writes parses back as the element.
        let parsed = Element::parse(&opening.to_text(Framing::Standalone)).unwrap();
        assert!(parsed.is("open", ns::FRAMING));
        assert_eq!(parsed.attribute("id"), Some("a<b"));
        assert!(!message.is_stream_error());
        let error = crate::error::StreamError::new(crate::error::StreamCondition::Conflict);
        assert!(Frame::Element(error.to_element()).is_stream_error());
    }
}
