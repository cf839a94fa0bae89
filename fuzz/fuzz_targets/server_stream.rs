//! The server negotiation machine fed arbitrary bytes in arbitrary chunks,
//! answering every request the way a server would: it never panics and
//! never keeps producing output after it closed.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use sigil_proto::server::{
    Action, Registration, ServerStream, ServerStreamConfig, TlsMode, invalid_token,
};
use sigil_sasl::server::{ConnectionInfo, ServerConfig};
use sigil_sasl::{Algorithm, Failure, StoredCredentials};

fuzz_target!(|input: &[u8]| {
    let Some((&first, data)) = input.split_first() else {
        return;
    };
    let mut config = ServerStreamConfig::new(
        "example.org",
        Arc::new(ServerConfig::new().allow([
            "PLAIN",
            "SCRAM-SHA-1",
            "EXTERNAL",
            "ANONYMOUS",
            "HT-SHA-256-NONE",
        ])),
    );
    config.tls = if first & 1 == 0 {
        TlsMode::Direct
    } else {
        TlsMode::Optional
    };
    // Bit 7: the standalone framing of WebSocket and BOSH, one element per
    // line of input.
    let standalone = first & 0x80 != 0;
    // Bit 6: registration by invitation offered.
    config.registration = first & 0x40 != 0;
    if standalone {
        config.tls = TlsMode::Direct;
    }
    let connection = ConnectionInfo {
        encrypted: first & 1 == 0,
        client_certificate: first & 2 != 0,
        channel_bindings: Vec::new(),
    };
    let mut stream = ServerStream::new(config, connection);
    static CREDENTIALS: std::sync::OnceLock<Option<StoredCredentials>> = std::sync::OnceLock::new();
    let credentials = CREDENTIALS
        .get_or_init(|| {
            StoredCredentials::derive(Algorithm::Sha1, "pencil", b"salt-salt", 4096).ok()
        })
        .clone();
    let pieces: Vec<&[u8]> = if standalone {
        data.split(|b| *b == b'\n').collect()
    } else {
        data.chunks(usize::from((first >> 2) & 0x1f) + 1).collect()
    };
    for piece in pieces {
        if standalone {
            match std::str::from_utf8(piece)
                .ok()
                .map(sigil_xml::Element::parse)
            {
                Some(Ok(element)) => stream.receive_element(element, piece.len()),
                _ => continue,
            }
        } else {
            stream.receive(piece);
        }
        while let Some(action) = stream.poll_action() {
            match action {
                Action::StartTls => stream.tls_established(ConnectionInfo {
                    encrypted: true,
                    ..ConnectionInfo::default()
                }),
                Action::NeedCredentials { .. } => stream.credentials(Ok(credentials.clone())),
                Action::NeedDecision { .. } => {
                    stream.external_decision(Err(Failure::NotAuthorized))
                }
                Action::Resume { .. } => stream.resume_failed(None),
                // One token, "t" 96 times, is known; issuing gives another.
                Action::NeedToken { .. } => stream.token(
                    sigil_sasl::ht::TokenKey::of(&"t".repeat(96))
                        .map(|key| vec![key])
                        .ok_or(Failure::NotAuthorized),
                ),
                Action::IssueToken { .. } => {
                    stream.token_issued(Some(sigil_proto::sasl2::IssuedToken {
                        token: "u".repeat(96),
                        expiry: "2030-01-01T00:00:00Z".into(),
                    }))
                }
                // Tokens that start with 'a' are accepted; every device
                // registration is refused.
                Action::Register(Registration::Preauth { token }) => {
                    if token.starts_with('a') {
                        stream.preauth_accepted(0);
                    } else {
                        stream.registration_refused(invalid_token());
                    }
                }
                Action::Register(Registration::Device(_)) => {
                    stream.registration_refused(invalid_token())
                }
                Action::Bind { resource, .. } => {
                    let resource = resource.map_or("r".to_owned(), |r| r.to_string());
                    if let Ok(jid) = jid::FullJid::new(&format!("user@example.org/{resource}")) {
                        stream.bound(jid);
                    }
                }
                Action::Send(_)
                | Action::TokenUsed { .. }
                | Action::Authenticated { .. }
                | Action::AuthFailed { .. }
                | Action::Stanza(_)
                | Action::ClientState(_)
                | Action::Close { .. } => {}
            }
        }
    }
    if stream.is_closed() {
        stream.receive(b"<presence/>");
        assert!(stream.poll_action().is_none());
    }
});
