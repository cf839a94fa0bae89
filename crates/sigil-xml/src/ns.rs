//! Namespace names used by XMPP streams.

/// The client stream namespace (RFC 6120).
pub const CLIENT: &str = "jabber:client";
/// The server-to-server stream namespace (RFC 6120).
pub const SERVER: &str = "jabber:server";
/// The stream namespace, prefix `stream`.
pub const STREAM: &str = "http://etherx.jabber.org/streams";
/// Stream error conditions.
pub const STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// Stanza error conditions.
pub const STANZA_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// STARTTLS.
pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// SASL.
pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// Resource binding.
pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// The legacy session establishment (RFC 3921).
pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
/// The roster (RFC 6121).
pub const ROSTER: &str = "jabber:iq:roster";
/// Service discovery, info (XEP-0030).
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// Service discovery, items (XEP-0030).
pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// XMPP Ping (XEP-0199).
pub const PING: &str = "urn:xmpp:ping";
/// Software version (XEP-0092).
pub const VERSION: &str = "jabber:iq:version";
/// Delayed delivery (XEP-0203).
pub const DELAY: &str = "urn:xmpp:delay";
/// Roster versioning stream feature (RFC 6121).
pub const ROSTER_VERSIONING: &str = "urn:xmpp:features:rosterver";
/// The `xml` namespace, bound to the `xml` prefix.
pub const XML: &str = "http://www.w3.org/XML/1998/namespace";
/// WebSocket framing (RFC 7395).
pub const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
