//! Operation sequences against a server session: each input byte picks an
//! operation (client input from a dictionary of what sessions send, the
//! caller confirming handled stanzas, stanzas to the client, ack requests,
//! the session parked and resumed on a new stream). It never panics, an
//! acknowledgement never counts more than was handed over nor goes back,
//! and nothing comes out of a closed stream.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use sigil_proto::server::{Action, ServerStream, ServerStreamConfig, TlsMode};
use sigil_sasl::server::{ConnectionInfo, ServerConfig};
use sigil_xml::{Element, ns};

const HEADER: &[u8] = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>";
const AUTH: &[u8] = b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>";

/// What a client sends once logged in, picked by the low bits of a byte.
fn client_input(op: u8) -> Vec<u8> {
    let n = op >> 4;
    match op & 0x0f {
        0 => HEADER.to_vec(),
        1 => {
            b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>".to_vec()
        }
        2 => b"<enable xmlns='urn:xmpp:sm:3' resume='true'/>".to_vec(),
        3 => b"<r xmlns='urn:xmpp:sm:3'/>".to_vec(),
        4 => format!("<a xmlns='urn:xmpp:sm:3' h='{n}'/>").into_bytes(),
        5 => b"<message to='romeo@example.org' type='chat'><body>hi</body></message>".to_vec(),
        6 => b"<presence/>".to_vec(),
        7 => b"<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>".to_vec(),
        8 => format!("<resume xmlns='urn:xmpp:sm:3' previd='x' h='{n}'/>").into_bytes(),
        9 => b"<message to='romeo@example.org'".to_vec(),
        10 => b"/>".to_vec(),
        11 => b"<enable xmlns='urn:xmpp:sm:3'/>".to_vec(),
        _ => b"<a xmlns='urn:xmpp:sm:3' h='4294967295'/>".to_vec(),
    }
}

struct Session {
    stream: ServerStream,
    /// Stanzas handed over and not yet confirmed.
    unconfirmed: u32,
    /// Every stanza handed over on this stream.
    handed: u32,
    /// The last `h` acknowledged to the client.
    last_h: Option<u32>,
}

fn config() -> Arc<ServerStreamConfig> {
    let mut config = ServerStreamConfig::new(
        "example.org",
        Arc::new(ServerConfig::new().allow(["ANONYMOUS"])),
    );
    config.tls = TlsMode::Direct;
    config.resume_seconds = 60;
    config.max_unacked = 16;
    Arc::new(config)
}

fn new_session() -> Session {
    let mut stream = ServerStream::new(
        config(),
        ConnectionInfo {
            encrypted: true,
            ..ConnectionInfo::default()
        },
    );
    stream.confirm_handling();
    stream.receive(HEADER);
    stream.receive(AUTH);
    Session {
        stream,
        unconfirmed: 0,
        handed: 0,
        last_h: None,
    }
}

/// Carries out the stream's actions; `<resume/>` takes `parked`.
fn drain(session: &mut Session, parked: &mut Option<Box<sigil_proto::server::StreamManagement>>) {
    while let Some(action) = session.stream.poll_action() {
        match action {
            Action::Send(frame) => {
                let data = frame.to_text(sigil_proto::Framing::Stream);
                assert!(!data.is_empty());
                for (start, _) in data.match_indices("<a xmlns=\"urn:xmpp:sm:3\" h=\"") {
                    let rest = &data[start + 27..];
                    let h: u32 = rest[..rest.find('"').unwrap()].parse().unwrap();
                    assert!(
                        h <= session.handed,
                        "acknowledged {h} of {} handed over",
                        session.handed
                    );
                    if let Some(last) = session.last_h {
                        assert!(h >= last, "acknowledgement went back from {last} to {h}");
                    }
                    session.last_h = Some(h);
                }
            }
            Action::Stanza(_) => {
                session.unconfirmed += 1;
                session.handed += 1;
            }
            Action::Bind { .. } => session.stream.bound("anon@example.org/r".parse().unwrap()),
            Action::Resume { .. } => match parked.take() {
                Some(sm) => {
                    // Stanzas confirmed on the old stream carry over in
                    // the count the client is told.
                    session.handed = session.handed.saturating_add(sm.inbound);
                    session
                        .stream
                        .resumed("anon@example.org/r".parse().unwrap(), sm);
                }
                None => session.stream.resume_failed(None),
            },
            Action::NeedCredentials { .. }
            | Action::NeedDecision { .. }
            | Action::NeedToken { .. }
            | Action::IssueToken { .. }
            | Action::TokenUsed { .. }
            | Action::StartTls
            | Action::Register(_) => {
                unreachable!("not offered")
            }
            // Client state is not a stanza: nothing to confirm.
            Action::Authenticated { .. }
            | Action::AuthFailed { .. }
            | Action::ClientState(_)
            | Action::Close { .. } => {}
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let mut session = new_session();
    let mut parked = None;
    let mut sent = 0u32;
    for pair in input.chunks(2) {
        let (op, arg) = (pair[0], pair.get(1).copied().unwrap_or(0));
        match op % 8 {
            0..=2 => session.stream.receive(&client_input(arg)),
            3 => {
                let count = u32::from(arg % 4);
                let count = count.min(session.unconfirmed);
                session.unconfirmed -= count;
                session.stream.confirm(count);
            }
            4 => {
                sent += 1;
                let stanza =
                    Element::new("message", ns::CLIENT).with_attribute("id", sent.to_string());
                session.stream.send_stanza(stanza);
            }
            5 => session.stream.request_ack(),
            6 => {
                // The connection dies: the session is parked, and a new
                // stream (which may resume it) begins.
                let _ = session.stream.take_unacked().len();
                if let Some(sm) = session.stream.take_stream_management() {
                    assert!(sm.inbound <= session.handed);
                    parked = Some(sm);
                }
                session = new_session();
            }
            _ => {
                let _ = session.stream.acknowledged();
                let _ = session.stream.sent_count();
                let _ = session.stream.resumption_id();
            }
        }
        drain(&mut session, &mut parked);
    }
    if session.stream.is_closed() {
        session.stream.receive(b"<presence/>");
        assert!(session.stream.poll_action().is_none());
    }
});
