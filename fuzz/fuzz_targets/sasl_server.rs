//! Drives every server mechanism with arbitrary client messages.
//!
//! Input layout: the first byte picks the mechanism and the connection; the
//! rest is split on 0xFF into the client's messages (the first is the
//! initial response, or none if it is empty and the low bit of the selector
//! is set). Credential requests are answered with real credentials for
//! "user"/"pencil", decisions and token lookups by the selector's second
//! bit.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sigil_sasl::server::{ConnectionInfo, ServerConfig, ServerStep};
use sigil_sasl::{Algorithm, ChannelBinding, ChannelBindingType, Failure, StoredCredentials};

const MECHANISMS: [&str; 12] = [
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
    "SCRAM-SHA-512",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-512-PLUS",
    "PLAIN",
    "EXTERNAL",
    "ANONYMOUS",
    "HT-SHA-256-NONE",
    "HT-SHA-256-ENDP",
    "HT-SHA-256-EXPR",
];

fn credentials() -> &'static [StoredCredentials] {
    static CREDENTIALS: OnceLock<Vec<StoredCredentials>> = OnceLock::new();
    CREDENTIALS.get_or_init(|| {
        Algorithm::ALL
            .into_iter()
            .filter_map(|algorithm| StoredCredentials::derive(algorithm, "pencil", b"salt", 4096).ok())
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let name = MECHANISMS[usize::from(selector) % MECHANISMS.len()];
    let connection = ConnectionInfo {
        encrypted: true,
        client_certificate: true,
        channel_bindings: vec![
            ChannelBinding::new(ChannelBindingType::TlsExporter, [1; 32]),
            ChannelBinding::new(ChannelBindingType::TlsServerEndPoint, [2; 32]),
        ],
    };
    let server = ServerConfig::new().allow(MECHANISMS).with_max_message_len(4096);
    let Ok(mut session) = server.start(name, &connection) else {
        return;
    };
    let mut messages = rest.split(|&b| b == 0xff);
    let first = messages.next().unwrap_or_default();
    let initial = (!(first.is_empty() && selector & 0x80 != 0)).then_some(first);
    let mut step = session.start(initial);
    for _ in 0..16 {
        step = match step {
            Err(_) | Ok(ServerStep::Success(_)) => break,
            Ok(ServerStep::Challenge(_)) => match messages.next() {
                Some(message) => session.response(message),
                None => break,
            },
            Ok(ServerStep::NeedCredentials(request)) => {
                let found = (request.authcid == "user")
                    .then(|| {
                        credentials()
                            .iter()
                            .find(|c| request.algorithm.is_none_or(|a| a == c.algorithm))
                            .cloned()
                    })
                    .flatten();
                session.credentials(found)
            }
            Ok(ServerStep::NeedDecision(_)) => {
                session.decision(if selector & 0x40 == 0 { Ok(()) } else { Err(Failure::NotAuthorized) })
            }
            Ok(ServerStep::NeedToken(_)) => {
                session.token(if selector & 0x40 == 0 {
                    sigil_sasl::ht::TokenKey::of(&"t".repeat(96))
                        .map(|key| vec![key])
                        .ok_or(Failure::NotAuthorized)
                } else {
                    Err(Failure::CredentialsExpired)
                })
            }
            Ok(ServerStep::NeedCustom(_)) => break,
        };
    }
});
