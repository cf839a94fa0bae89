//! Sans-IO XML streams for XMPP.
//!
//! [`Framer`] turns the bytes of an XMPP stream into stream-level events:
//! the stream header, each complete top-level element (a stanza or a
//! negotiation element) as an [`Element`], and the stream's end. It sits on
//! [`rxml`], which refuses DTDs, entity declarations, processing
//! instructions and comments, and adds the limits an XMPP server needs
//! ([`Limits`]): stanza size, nesting depth, attributes per element, text
//! per element, and bytes before authentication.
//!
//! [`Element`] is a small owned tree with a serializer that writes
//! namespace declarations only where they change, so `jabber:client`
//! stanzas come out as clients expect them.
//!
//! The crate does no I/O and reads no clock.
//!
//! ```
//! use sigil_xml::{Framer, Limits, StreamEvent, ns};
//!
//! let mut framer = Framer::new(Limits::default());
//! let mut input: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
//!     xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>\
//!     <message to='juliet@example.org'><body>Hi</body></message>";
//! let Some(StreamEvent::Open(header)) = framer.next_event(&mut input)? else { panic!() };
//! assert_eq!(header.attribute("to"), Some("example.org"));
//! let Some(StreamEvent::Element(message)) = framer.next_event(&mut input)? else { panic!() };
//! assert!(message.is("message", ns::CLIENT));
//! assert_eq!(message.child("body", ns::CLIENT).map(|b| b.text()), Some("Hi".into()));
//! # Ok::<(), sigil_xml::FramerError>(())
//! ```

mod element;
mod framer;
pub mod ns;

pub use element::{Attribute, Element, Node, escape_attribute, escape_text};
pub use framer::{Framer, FramerError, Limits, MAX_TOKEN_BYTES, StreamEvent, StreamHeader};
