//! `sigil login`: connect, authenticate, bind, report, disconnect.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use sigil_client::{Client, Transport};
use sigil_sasl::client::{AllowList, ClientConfig};

/// What `sigil login` was asked for.
pub(crate) struct LoginRequest<'a> {
    pub(crate) jid: &'a str,
    pub(crate) address: Option<SocketAddr>,
    pub(crate) direct_tls: bool,
    pub(crate) password_file: Option<&'a Path>,
    pub(crate) cert: Option<&'a Path>,
    pub(crate) key: Option<&'a Path>,
    pub(crate) ca: Option<&'a Path>,
    pub(crate) pin: Option<&'a str>,
    pub(crate) mechanisms: &'a [String],
    pub(crate) resource: Option<&'a str>,
}

pub(crate) fn login(request: &LoginRequest<'_>) -> Result<(), String> {
    let transport = if request.direct_tls {
        Transport::DirectTls
    } else {
        Transport::StartTls
    };
    let address = request.address.unwrap_or_else(|| {
        let port = if request.direct_tls { 5223 } else { 5222 };
        SocketAddr::from(([127, 0, 0, 1], port))
    });
    let mut builder = Client::builder(request.jid)
        .address(address)
        .transport(transport);
    match (request.pin, request.ca) {
        (Some(pin), _) => builder = builder.pin_sha256(parse_pin(pin)?),
        (None, Some(ca)) => builder = builder.trust_pem(&read(ca)?),
        (None, None) => {
            let default = PathBuf::from("sigil-data/server.crt");
            if !default.exists() {
                return Err("say how to check the server: --ca FILE or --pin SHA256 (sigil-data/server.crt is not here)".into());
            }
            builder = builder.trust_pem(&read(&default)?);
        }
    }
    match (request.cert, request.key) {
        (Some(cert), Some(key)) => {
            builder = builder.client_certificate_pem(&read(cert)?, &read(key)?)
        }
        (None, None) => {}
        _ => return Err("--cert and --key go together".into()),
    }
    if let Some(file) = request.password_file {
        let text = String::from_utf8(read(file)?)
            .map_err(|_| format!("{} is not UTF-8", file.display()))?;
        builder = builder.password(
            text.lines()
                .next()
                .unwrap_or_default()
                .trim_end_matches('\r'),
        );
    }
    if !request.mechanisms.is_empty() {
        let allow = request
            .mechanisms
            .iter()
            .fold(AllowList::new(), |list, name| list.name(name.clone()));
        builder = builder.sasl(ClientConfig::new().allow(allow));
    }
    if let Some(resource) = request.resource {
        builder = builder.resource(resource);
    }
    let runtime = crate::serve::runtime()?;
    runtime.block_on(async {
        let client = builder.connect().await.map_err(|e| e.to_string())?;
        let mut out = io::stdout().lock();
        let _ = writeln!(
            out,
            "transport: {} to {address}",
            client.transport().as_str()
        );
        let _ = writeln!(out, "TLS: {}", client.tls_version());
        let _ = writeln!(out, "mechanism: {}", client.mechanism());
        let _ = writeln!(out, "bound: {}", client.jid());
        client.close().await;
        Ok(())
    })
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn parse_pin(text: &str) -> Result<[u8; 32], String> {
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return Err("--pin takes the 64 hex digits of a SHA-256 fingerprint".into());
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = hex
            .get(2 * i..2 * i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or("--pin takes the 64 hex digits of a SHA-256 fingerprint")?;
    }
    Ok(out)
}
