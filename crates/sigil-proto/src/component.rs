//! The server side of an external component's stream (XEP-0114,
//! `jabber:component:accept`).
//!
//! [`ComponentStream`] is driven like [`crate::server::ServerStream`]:
//! bytes in ([`ComponentStream::receive`]), answers to what it asked for,
//! [`Action`]s out ([`ComponentStream::poll_action`]). It does no I/O and
//! reads no clock.
//!
//! The exchange:
//! 1. the component opens a stream in `jabber:component:accept` whose `to`
//!    names the domain it wants to serve; the server answers with its own
//!    header, carrying a fresh stream id from the operating system's
//!    generator, and asks for that domain's secret
//!    ([`Action::NeedSecret`]; no secret: `host-unknown`);
//! 2. the component sends `<handshake/>` with the lowercase hex SHA-1 of
//!    the stream id followed by the secret; it is compared in constant
//!    time (a mismatch: `not-authorized`) and the caller is asked to take
//!    the domain ([`Action::Authenticated`]), answering
//!    [`ComponentStream::accepted`] (which sends the empty `<handshake/>`)
//!    or closing the stream (`conflict`, when the domain is served already);
//! 3. stanzas flow. Each must carry a `to` and a `from` (else
//!    `improper-addressing`), and its `from` must be the component's
//!    domain or a subdomain of it (else `invalid-from`): a component
//!    cannot speak for the server's users. Stanzas come out in
//!    `jabber:client`, as a client's do; those sent to the component are
//!    written in the component's namespace ([`write_frame`]).
//!
//! The framer's limits apply as on client streams, the unauthenticated
//! byte limit until the handshake succeeds.

use std::collections::VecDeque;
use std::sync::Arc;

use sha1::{Digest, Sha1};
use sigil_xml::{Element, Framer, Limits, StreamEvent, StreamHeader, escape_attribute, ns};
use subtle::ConstantTimeEq;

use crate::error::{StreamCondition, StreamError};
use crate::frame::Frame;

/// The namespace of a component's stream (XEP-0114 §3).
pub const NS: &str = "jabber:component:accept";

/// The settings shared by every component stream of a listener.
#[derive(Clone, Debug)]
pub struct ComponentStreamConfig {
    /// The server's own domain: no component may send from it.
    pub server_domain: String,
    /// Framer limits.
    pub limits: Limits,
    /// Bytes of input held while waiting for an answer (the secret, the
    /// registration) before the stream is closed.
    pub max_pending_input: usize,
}

impl ComponentStreamConfig {
    /// Default limits for a server of `server_domain`.
    pub fn new(server_domain: impl Into<String>) -> Self {
        Self {
            server_domain: server_domain.into(),
            limits: Limits::default(),
            max_pending_input: 64 * 1024,
        }
    }
}

/// What the caller must do next.
#[derive(Debug)]
pub enum Action {
    /// Write this to the component ([`write_frame`]).
    Send(Frame),
    /// The component asks to serve `domain`: answer with
    /// [`ComponentStream::secret`] (its shared secret, or `None` when no
    /// component of that domain is configured).
    NeedSecret {
        /// The domain of the stream header's `to`, normalised.
        domain: String,
    },
    /// The handshake proved the secret of `domain`: take the domain (route
    /// its stanzas here) and answer [`ComponentStream::accepted`], or
    /// refuse with [`ComponentStream::close`].
    Authenticated {
        /// The component's domain.
        domain: String,
    },
    /// A stanza from the component, in `jabber:client`, with a `to` and a
    /// `from` in the component's domain.
    Stanza(Element),
    /// Close the connection after writing what was sent.
    Close {
        /// The stream error that ended the stream, `None` for a clean end.
        error: Option<StreamError>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Waiting for the component's stream header.
    Header,
    /// Waiting for the caller's [`ComponentStream::secret`].
    Secret,
    /// Waiting for `<handshake/>`.
    Handshake,
    /// Waiting for the caller's [`ComponentStream::accepted`].
    Registering,
    /// Stanzas flow.
    Established,
    /// The stream ended.
    Closed,
}

/// One component's stream, server side.
pub struct ComponentStream {
    config: Arc<ComponentStreamConfig>,
    framer: Framer,
    stage: Stage,
    /// `None` when the operating system's generator failed: no stream id
    /// is then good enough to be hashed with a secret.
    stream_id: Option<String>,
    domain: Option<String>,
    /// SHA-1 of the stream id and the secret, once the secret is known.
    expected: Option<[u8; 20]>,
    header_sent: bool,
    pending: Vec<u8>,
    actions: VecDeque<Action>,
}

impl ComponentStream {
    /// A new stream, with its stream id drawn now.
    pub fn new(config: impl Into<Arc<ComponentStreamConfig>>) -> Self {
        let config = config.into();
        Self {
            framer: Framer::new(config.limits),
            config,
            stage: Stage::Header,
            stream_id: crate::secret_id(),
            domain: None,
            expected: None,
            header_sent: false,
            pending: Vec::new(),
            actions: VecDeque::new(),
        }
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        let action = self.actions.pop_front();
        if action.is_none() && self.actions.capacity() > 0 {
            self.actions = VecDeque::new();
        }
        action
    }

    /// The domain the component asked for (once its header arrived).
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// The stream id sent to the component, once the header was answered.
    pub fn stream_id(&self) -> Option<&str> {
        self.stream_id.as_deref().filter(|_| self.header_sent)
    }

    /// Whether the handshake succeeded and the caller took the domain.
    pub fn is_established(&self) -> bool {
        self.stage == Stage::Established
    }

    /// Whether the stream has ended.
    pub fn is_closed(&self) -> bool {
        self.stage == Stage::Closed
    }

    /// Bytes from the component.
    pub fn receive(&mut self, data: &[u8]) {
        match self.stage {
            Stage::Closed => {}
            Stage::Secret | Stage::Registering => self.hold(data),
            _ => {
                let mut input = data;
                self.process(&mut input);
                if input.is_empty() {
                    self.framer.release_buffers();
                } else if matches!(self.stage, Stage::Secret | Stage::Registering) {
                    self.hold(input);
                }
            }
        }
    }

    /// The answer to [`Action::NeedSecret`]: the domain's shared secret,
    /// or `None` when no component of that domain is configured.
    pub fn secret(&mut self, secret: Option<&[u8]>) {
        if self.stage != Stage::Secret {
            return;
        }
        let (Some(secret), Some(id)) = (secret, self.stream_id.as_deref()) else {
            return self.close(Some(StreamError::new(StreamCondition::HostUnknown)));
        };
        self.expected = Some(digest(id, secret));
        self.stage = Stage::Handshake;
        self.resume();
    }

    /// The answer to [`Action::Authenticated`]: the domain is this
    /// stream's; the component is told so and stanzas flow.
    pub fn accepted(&mut self) {
        if self.stage != Stage::Registering {
            return;
        }
        self.stage = Stage::Established;
        self.framer.set_authenticated();
        self.send(Frame::Element(Element::new("handshake", NS)));
        self.resume();
    }

    /// Sends a stanza (in `jabber:client`, as the server routes it) to the
    /// component; given back when the stream is not established.
    pub fn send_stanza(&mut self, stanza: Element) -> Result<(), Box<Element>> {
        if self.stage != Stage::Established {
            return Err(Box::new(stanza));
        }
        self.send(Frame::Element(stanza));
        Ok(())
    }

    /// Ends the stream: sends the error if any, then the stream's end.
    pub fn close(&mut self, error: Option<StreamError>) {
        if self.stage == Stage::Closed {
            return;
        }
        self.ensure_header();
        if let Some(error) = &error {
            self.send(Frame::Element(error.to_element()));
        }
        self.send(Frame::Close);
        self.stage = Stage::Closed;
        self.pending = Vec::new();
        self.actions.push_back(Action::Close { error });
    }

    fn hold(&mut self, data: &[u8]) {
        if self.pending.len() + data.len() > self.config.max_pending_input {
            return self.close(Some(StreamError::with_text(
                StreamCondition::PolicyViolation,
                "too much input while waiting",
            )));
        }
        self.pending.extend_from_slice(data);
    }

    fn resume(&mut self) {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.receive(&pending);
        }
    }

    fn process(&mut self, input: &mut &[u8]) {
        while !input.is_empty() {
            if !matches!(
                self.stage,
                Stage::Header | Stage::Handshake | Stage::Established
            ) {
                return;
            }
            let event = match self.framer.next_event(input) {
                Ok(Some(event)) => event,
                Ok(None) => return,
                Err(error) => return self.close(Some(crate::server::framer_error(&error))),
            };
            match event {
                StreamEvent::Open(header) => self.on_header(&header),
                StreamEvent::Element(element) => self.on_element(element),
                StreamEvent::Close => return self.close(None),
            }
        }
    }

    fn on_header(&mut self, header: &StreamHeader) {
        if self.stage != Stage::Header {
            return self.close(Some(StreamError::new(
                StreamCondition::UnsupportedStanzaType,
            )));
        }
        if header.namespace != ns::STREAM
            || header.name != "stream"
            || header.default_namespace != NS
        {
            return self.close(Some(StreamError::new(StreamCondition::InvalidNamespace)));
        }
        let domain = header
            .attribute("to")
            .and_then(|to| jid::BareJid::new(to).ok())
            .filter(|jid| jid.node().is_none())
            .map(|jid| jid.domain().to_string());
        let Some(domain) = domain else {
            return self.close(Some(StreamError::with_text(
                StreamCondition::HostUnknown,
                "name the component's domain in 'to'",
            )));
        };
        self.domain = Some(domain.clone());
        self.ensure_header();
        if self.stream_id.is_none() {
            return self.close(Some(StreamError::new(StreamCondition::InternalServerError)));
        }
        self.stage = Stage::Secret;
        self.actions.push_back(Action::NeedSecret { domain });
    }

    fn on_element(&mut self, element: Element) {
        match self.stage {
            Stage::Handshake => self.on_handshake(&element),
            Stage::Established => self.on_stanza(element),
            _ => self.close(Some(StreamError::new(StreamCondition::NotWellFormed))),
        }
    }

    fn on_handshake(&mut self, element: &Element) {
        if !element.is("handshake", NS) {
            return self.close(Some(StreamError::with_text(
                StreamCondition::NotAuthorized,
                "send the handshake first",
            )));
        }
        let proved = match (decode_hex(element.text().trim()), self.expected) {
            (Some(given), Some(expected)) => bool::from(given.ct_eq(&expected)),
            _ => false,
        };
        if !proved {
            return self.close(Some(StreamError::new(StreamCondition::NotAuthorized)));
        }
        self.expected = None;
        self.stage = Stage::Registering;
        let domain = self.domain.clone().unwrap_or_default();
        self.actions.push_back(Action::Authenticated { domain });
    }

    fn on_stanza(&mut self, element: Element) {
        // slixmpp's `use_jc_ns` sends its stanzas in `jabber:client`.
        let is_stanza = matches!(element.name(), "message" | "presence" | "iq")
            && matches!(element.namespace(), NS | ns::CLIENT);
        if !is_stanza {
            return self.close(Some(StreamError::new(
                StreamCondition::UnsupportedStanzaType,
            )));
        }
        let (Some(from), Some(_)) = (element.attribute("from"), element.attribute("to")) else {
            return self.close(Some(StreamError::with_text(
                StreamCondition::ImproperAddressing,
                "a stanza from a component needs 'to' and 'from'",
            )));
        };
        if !self.may_send_from(from) {
            return self.close(Some(StreamError::with_text(
                StreamCondition::InvalidFrom,
                "'from' must be in the component's domain",
            )));
        }
        let stanza = crate::bosh::renamespace(&element, NS, ns::CLIENT);
        self.actions.push_back(Action::Stanza(stanza));
    }

    /// Whether `from` is an address of the component: its domain or a
    /// subdomain of it, never the server's domain.
    fn may_send_from(&self, from: &str) -> bool {
        let (Ok(jid), Some(domain)) = (jid::Jid::new(from), self.domain.as_deref()) else {
            return false;
        };
        let host = jid.domain().as_str();
        host != self.config.server_domain && in_domain(host, domain)
    }

    fn ensure_header(&mut self) {
        if self.header_sent {
            return;
        }
        self.header_sent = true;
        // `from` is the component's domain (XEP-0114 §3), or the server's
        // before the component named one.
        let from = self
            .domain
            .clone()
            .unwrap_or_else(|| self.config.server_domain.clone());
        self.send(Frame::Open(crate::frame::Opening {
            id: self.stream_id.clone(),
            from: Some(from),
            to: None,
        }));
    }

    fn send(&mut self, frame: Frame) {
        self.actions.push_back(Action::Send(frame));
    }
}

/// Whether `host` is `domain` or a subdomain of it.
pub fn in_domain(host: &str, domain: &str) -> bool {
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// The handshake a component sends: lowercase hex SHA-1 of the stream id
/// followed by the secret (XEP-0114 §3).
pub fn handshake(stream_id: &str, secret: &[u8]) -> String {
    crate::hex(&digest(stream_id, secret))
}

fn digest(stream_id: &str, secret: &[u8]) -> [u8; 20] {
    let mut hasher = Sha1::new();
    hasher.update(stream_id.as_bytes());
    hasher.update(secret);
    hasher.finalize().into()
}

/// 40 hex digits (either case) as 20 bytes.
fn decode_hex(text: &str) -> Option<[u8; 20]> {
    let digits = text.as_bytes();
    if digits.len() != 40 {
        return None;
    }
    let mut out = [0u8; 20];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let high = char::from(pair[0]).to_digit(16)?;
        let low = char::from(pair[1]).to_digit(16)?;
        *byte = u8::try_from(high * 16 + low).ok()?;
    }
    Some(out)
}

/// Appends `frame` to `out` as a component's stream writes it: the header
/// in `jabber:component:accept` (without `version`, which XEP-0114 does
/// not have), and stanzas routed in `jabber:client` in the stream's
/// default namespace, so that the component reads them in its own.
pub fn write_frame(frame: &Frame, out: &mut String) {
    match frame {
        Frame::Open(opening) => {
            out.push_str("<?xml version='1.0'?><stream:stream xmlns='");
            out.push_str(NS);
            out.push_str("' xmlns:stream='");
            out.push_str(ns::STREAM);
            out.push('\'');
            for (name, value) in [("id", &opening.id), ("from", &opening.from)] {
                if let Some(value) = value {
                    out.push(' ');
                    out.push_str(name);
                    out.push_str("='");
                    escape_attribute(out, value);
                    out.push('\'');
                }
            }
            out.push('>');
        }
        Frame::Element(element) => {
            let default = if element.namespace() == NS {
                NS
            } else {
                ns::CLIENT
            };
            element.write_to(out, default, true);
        }
        Frame::Close => out.push_str("</stream:stream>"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const SERVER: &str = "example.org";
    const COMPONENT: &str = "muc.example.org";
    const SECRET: &[u8] = b"a secret of the component";

    fn header(to: &str) -> String {
        format!(
            "<stream:stream xmlns='jabber:component:accept' \
             xmlns:stream='http://etherx.jabber.org/streams' to='{to}'>"
        )
    }

    /// Everything written, and the other actions.
    fn drain(stream: &mut ComponentStream) -> (String, Vec<Action>) {
        let mut out = String::new();
        let mut others = Vec::new();
        while let Some(action) = stream.poll_action() {
            match action {
                Action::Send(frame) => write_frame(&frame, &mut out),
                other => others.push(other),
            }
        }
        (out, others)
    }

    fn new_stream() -> ComponentStream {
        ComponentStream::new(ComponentStreamConfig::new(SERVER))
    }

    /// A stream up to the handshake, with the stream id sent.
    fn opened() -> (ComponentStream, String) {
        let mut stream = new_stream();
        stream.receive(header(COMPONENT).as_bytes());
        let (out, actions) = drain(&mut stream);
        assert!(matches!(&actions[..], [Action::NeedSecret { domain }] if domain == COMPONENT));
        let id = stream.stream_id().unwrap().to_owned();
        assert!(
            out.contains("xmlns='jabber:component:accept'")
                && out.contains(&format!("id='{id}'"))
                && out.contains(&format!("from='{COMPONENT}'")),
            "{out}"
        );
        stream.secret(Some(SECRET));
        (stream, id)
    }

    fn established() -> ComponentStream {
        let (mut stream, id) = opened();
        stream.receive(format!("<handshake>{}</handshake>", handshake(&id, SECRET)).as_bytes());
        let (_, actions) = drain(&mut stream);
        assert!(matches!(&actions[..], [Action::Authenticated { domain }] if domain == COMPONENT));
        stream.accepted();
        let (out, _) = drain(&mut stream);
        assert_eq!(out, "<handshake/>");
        assert!(stream.is_established());
        stream
    }

    fn closed_with(stream: &mut ComponentStream) -> StreamCondition {
        let (out, actions) = drain(stream);
        assert!(out.ends_with("</stream:stream>"), "{out}");
        match actions.last() {
            Some(Action::Close { error: Some(error) }) => error.condition,
            other => panic!("not closed with an error: {other:?}"),
        }
    }

    /// The digest of XEP-0114 §3: SHA-1 over the stream id and then the
    /// secret, in lowercase hex (checked against Python's hashlib).
    #[test]
    fn the_handshake_is_sha1_of_id_and_secret() {
        assert_eq!(
            handshake("3BF96D32", b"Open Sesame"),
            "eea2f239a37c6cfe9295911dd40e979f08aebb35"
        );
        assert_eq!(
            decode_hex("EEA2F239A37C6CFE9295911DD40E979F08AEBB35"),
            Some(digest("3BF96D32", b"Open Sesame"))
        );
        assert_eq!(decode_hex("eea2"), None);
        assert_eq!(decode_hex(&"zz".repeat(20)), None);
    }

    #[test]
    fn a_good_handshake_establishes_the_stream_and_stanzas_flow() {
        let mut stream = established();
        stream.receive(
            b"<message from='room@muc.example.org/nick' to='juliet@example.org' type='chat'>\
              <body>hi</body></message>",
        );
        let (_, actions) = drain(&mut stream);
        let [Action::Stanza(stanza)] = &actions[..] else {
            panic!("{actions:?}")
        };
        assert!(stanza.is("message", ns::CLIENT));
        assert_eq!(stanza.child("body", ns::CLIENT).unwrap().text(), "hi");

        stream
            .send_stanza(
                Element::new("message", ns::CLIENT)
                    .with_attribute("to", "room@muc.example.org")
                    .with_child(Element::new("body", ns::CLIENT).with_text("back")),
            )
            .unwrap();
        let (out, _) = drain(&mut stream);
        assert_eq!(
            out,
            "<message to=\"room@muc.example.org\"><body>back</body></message>"
        );
    }

    #[test]
    fn stream_ids_are_fresh() {
        let (_, first) = opened();
        let (_, second) = opened();
        assert_ne!(first, second);
        assert_eq!(first.len(), 32);
    }

    #[test]
    fn a_wrong_secret_is_not_authorized() {
        let (mut stream, id) = opened();
        let wrong = handshake(&id, b"another secret");
        stream.receive(format!("<handshake>{wrong}</handshake>").as_bytes());
        assert_eq!(closed_with(&mut stream), StreamCondition::NotAuthorized);
        // Nor a handshake over another stream id.
        let (mut stream, _) = opened();
        let replayed = handshake("3BF96D32", SECRET);
        stream.receive(format!("<handshake>{replayed}</handshake>").as_bytes());
        assert_eq!(closed_with(&mut stream), StreamCondition::NotAuthorized);
        // Nor anything but a handshake first.
        let (mut stream, _) = opened();
        stream.receive(b"<message from='a@muc.example.org' to='b@example.org'/>");
        assert_eq!(closed_with(&mut stream), StreamCondition::NotAuthorized);
    }

    #[test]
    fn an_unknown_domain_is_host_unknown() {
        let mut stream = new_stream();
        stream.receive(header("nowhere.example.org").as_bytes());
        let (_, actions) = drain(&mut stream);
        assert!(matches!(&actions[..], [Action::NeedSecret { .. }]));
        stream.secret(None);
        assert_eq!(closed_with(&mut stream), StreamCondition::HostUnknown);
        let mut stream = new_stream();
        stream.receive(header("user@example.org").as_bytes());
        assert_eq!(closed_with(&mut stream), StreamCondition::HostUnknown);
    }

    #[test]
    fn a_client_stream_is_the_wrong_namespace() {
        let mut stream = new_stream();
        stream.receive(
            b"<stream:stream xmlns='jabber:client' \
              xmlns:stream='http://etherx.jabber.org/streams' to='muc.example.org'>",
        );
        assert_eq!(closed_with(&mut stream), StreamCondition::InvalidNamespace);
    }

    #[test]
    fn a_component_speaks_only_for_its_domain() {
        for from in [
            "juliet@example.org/balcony",
            "example.org",
            "room@othermuc.example.org",
            "room@xmuc.example.org",
            "not a jid@@",
        ] {
            let mut stream = established();
            stream.receive(format!("<message from='{from}' to='romeo@example.org'/>").as_bytes());
            assert_eq!(
                closed_with(&mut stream),
                StreamCondition::InvalidFrom,
                "{from}"
            );
        }
        for from in [
            "muc.example.org",
            "room@muc.example.org/nick",
            "a@sub.muc.example.org",
        ] {
            let mut stream = established();
            stream.receive(format!("<presence from='{from}' to='romeo@example.org'/>").as_bytes());
            let (_, actions) = drain(&mut stream);
            assert!(
                matches!(&actions[..], [Action::Stanza(_)]),
                "{from}: {actions:?}"
            );
        }
        let mut stream = established();
        stream.receive(b"<message to='romeo@example.org'/>");
        assert_eq!(
            closed_with(&mut stream),
            StreamCondition::ImproperAddressing
        );
        let mut stream = established();
        stream.receive(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
        assert_eq!(
            closed_with(&mut stream),
            StreamCondition::UnsupportedStanzaType
        );
    }

    /// Input that arrives while the caller looks up the secret or takes
    /// the domain is held (bounded) and read once it answers.
    #[test]
    fn input_waits_for_the_answers() {
        let mut stream = new_stream();
        stream.receive(header(COMPONENT).as_bytes());
        let _ = drain(&mut stream);
        let id = stream.stream_id().unwrap().to_owned();
        stream.receive(
            format!(
                "<handshake>{}</handshake><presence from='muc.example.org' to='a@example.org'/>",
                handshake(&id, SECRET)
            )
            .as_bytes(),
        );
        assert!(drain(&mut stream).1.is_empty());
        stream.secret(Some(SECRET));
        let (_, actions) = drain(&mut stream);
        assert!(matches!(&actions[..], [Action::Authenticated { .. }]));
        stream.accepted();
        let (_, actions) = drain(&mut stream);
        assert!(matches!(&actions[..], [Action::Stanza(_)]), "{actions:?}");

        let mut stream = new_stream();
        stream.receive(header(COMPONENT).as_bytes());
        stream.receive(&vec![b' '; 70 * 1024]);
        assert_eq!(closed_with(&mut stream), StreamCondition::PolicyViolation);
    }

    #[test]
    fn the_unauthenticated_limit_applies_before_the_handshake() {
        let (mut stream, _) = opened();
        let _ = drain(&mut stream);
        let filler = format!("<handshake>{}</handshake>", "x".repeat(70 * 1024));
        stream.receive(filler.as_bytes());
        assert_eq!(closed_with(&mut stream), StreamCondition::PolicyViolation);
    }

    #[test]
    fn subdomains() {
        assert!(in_domain("muc.example.org", "muc.example.org"));
        assert!(in_domain("a.muc.example.org", "muc.example.org"));
        assert!(!in_domain("amuc.example.org", "muc.example.org"));
        assert!(!in_domain("example.org", "muc.example.org"));
    }
}
