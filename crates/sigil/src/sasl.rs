//! `sigil sasl …`: inspect the SASL layer.

use std::io::{self, BufRead, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sigil_sasl::client::{ClientConfig, ClientContext};
use sigil_sasl::server::{ConnectionInfo, ServerConfig};
use sigil_sasl::{Algorithm, ChannelBinding, ChannelBindingType, StoredCredentials};

pub(crate) fn mechanisms(out: &mut impl Write) -> Result<(), String> {
    let write_error = |e: io::Error| format!("cannot write: {e}");
    let config = ClientConfig::new();
    let everything: Vec<&str> = config.registered().collect();
    let binding = ChannelBinding::new(ChannelBindingType::TlsExporter, [0; 32]);
    // A context in which every built-in passes its test, to rank them all.
    let rank = |context: ClientContext| config.candidates(&context, &everything);
    let mut ranked = rank(
        ClientContext::new()
            .with_client_certificate(true)
            .with_authcid("user")
            .with_password("password")
            .with_encrypted(true)
            .with_channel_binding(binding.clone()),
    );
    ranked.extend(rank(ClientContext::new().with_bearer_token("token")));
    ranked.extend(rank(ClientContext::new()));
    ranked.dedup();
    writeln!(out, "Client mechanisms, most preferred first:").map_err(write_error)?;
    for name in &ranked {
        writeln!(out, "  {name}").map_err(write_error)?;
    }
    let server = ServerConfig::new();
    writeln!(out, "\nServer offer (default allow-list):").map_err(write_error)?;
    for (label, connection) in [
        ("plaintext", ConnectionInfo::default()),
        (
            "TLS",
            ConnectionInfo {
                encrypted: true,
                ..ConnectionInfo::default()
            },
        ),
        (
            "TLS with channel binding and a client certificate",
            ConnectionInfo {
                encrypted: true,
                client_certificate: true,
                channel_bindings: vec![binding.clone()],
            },
        ),
    ] {
        writeln!(out, "  {label}: {}", server.offered(&connection).join(" "))
            .map_err(write_error)?;
    }
    Ok(())
}

pub(crate) fn derive(
    algorithm: Algorithm,
    iterations: u32,
    salt: Option<&str>,
) -> Result<(), String> {
    let mut password = String::new();
    io::stdin()
        .lock()
        .read_line(&mut password)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let password = password.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err("no password on standard input".to_owned());
    }
    let credentials = match salt {
        Some(salt) => {
            let salt = STANDARD
                .decode(salt)
                .map_err(|e| format!("--salt is not base64: {e}"))?;
            StoredCredentials::derive(algorithm, password, &salt, iterations)
        }
        None => {
            let mut salt = [0u8; 16];
            getrandom::fill(&mut salt).map_err(|e| format!("no randomness: {e}"))?;
            StoredCredentials::derive(algorithm, password, &salt, iterations)
        }
    }
    .map_err(|e| e.to_string())?;
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "mechanism={}\nsalt={}\niterations={}\nstored_key={}\nserver_key={}",
        algorithm.mechanism_name(false),
        STANDARD.encode(&credentials.salt),
        credentials.iterations,
        STANDARD.encode(&credentials.stored_key),
        STANDARD.encode(&credentials.server_key),
    )
    .map_err(|e| format!("cannot write: {e}"))
}
