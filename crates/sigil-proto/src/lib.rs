//! Sans-IO XMPP stream negotiation, client and server side.
//!
//! [`server::ServerStream`] runs the server side of a client-to-server
//! stream: the stream header, features, STARTTLS, SASL through
//! [`sigil_sasl`], resource binding and the legacy session, and then hands
//! out stanzas. [`client::ClientStream`] is its mirror for clients. Both
//! take bytes and answers in and give [`server::Action`]s or
//! [`client::Action`]s out; they do no I/O and read no clock.
//! [`component::ComponentStream`] runs the server side of an external
//! component's stream (XEP-0114) the same way.
//!
//! [`error`] has the typed stream and stanza errors of RFC 6120.
//!
//! The protocol vocabulary server and client share, one module per
//! specification, each with its namespace(s) (`NS…`) and typed payloads
//! that read from and write to [`sigil_xml::Element`] (`from_element`,
//! `to_element`, and `TryFrom<&Element>` / `From<_> for Element`; what
//! does not read is an [`error::ParseError`]):
//!
//! - [`stanza`]: messages, presence and IQs (RFC 6120, RFC 6121);
//! - [`sasl2`]: XEP-0388 SASL2 and XEP-0386 Bind 2;
//! - [`saslcert`]: XEP-0257 client certificate management;
//! - [`blocking`]: XEP-0191 blocking;
//! - [`carbons`]: XEP-0280 message carbons;
//! - [`csi`]: XEP-0352 client state indication;
//! - [`mam`]: XEP-0313 message archive management;
//! - [`private`]: XEP-0049 private XML storage;
//! - [`vcard`]: XEP-0054 vcard-temp, XEP-0153 avatar hashes, XEP-0292
//!   vCard4 and the conversion between them;
//! - [`last`]: XEP-0012 last activity;
//! - [`invite`]: XEP-0401/0445/0379 invitation URIs;
//! - [`sm`]: XEP-0198 stream management (run by the streams themselves);
//! - [`sid`]: XEP-0359 origin and stanza ids;
//! - [`forms`]: XEP-0004 data forms;
//! - [`commands`]: XEP-0050 ad-hoc commands.

pub mod blocking;
pub mod bosh;
pub mod carbons;
pub mod client;
pub mod commands;
pub mod component;
pub mod csi;
pub mod error;
pub mod forms;
pub mod frame;
pub mod invite;
pub mod last;
pub mod mam;
mod payload;
pub mod private;
pub mod renew;
pub mod sasl2;
pub mod saslcert;
pub mod server;
pub mod sid;
pub mod sm;
pub mod stanza;
pub mod vcard;

/// How the stream is framed on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Framing {
    /// One XML document for the whole stream (RFC 6120: TCP, TLS).
    #[default]
    Stream,
    /// Standalone elements (RFC 7395 WebSocket, and BOSH bodies): the
    /// stream opens with `<open/>` and ends with `<close/>`, every element
    /// declares its namespaces, and every `Send` action is exactly one
    /// element (one WebSocket frame).
    Standalone,
}

/// The exact closing frame Strophe.js recognises (RFC 7395).
pub const CLOSE_FRAME: &str = "<close xmlns=\"urn:ietf:params:xml:ns:xmpp-framing\" />";

/// The XEP-0440 namespace for advertising channel-binding types.
pub const NS_SASL_CB: &str = "urn:xmpp:sasl-cb:0";

/// A secret identifier (128 bits from the operating system's generator,
/// hex), for what holds a right, such as an XEP-0198 resumption id; `None`
/// when the generator fails: the caller goes without rather than use an
/// id someone could guess.
pub fn secret_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
    }
    out
}

/// A random identifier (128 bits, hex), for stream ids and generated
/// resources. These need to be unique, not secret: should the operating
/// system's generator fail, a process-wide counter keeps them unique.
pub fn random_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static FALLBACK: AtomicU64 = AtomicU64::new(1);
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        let n = FALLBACK.fetch_add(1, Ordering::Relaxed);
        bytes[..8].copy_from_slice(&n.to_be_bytes());
    }
    hex(&bytes)
}
