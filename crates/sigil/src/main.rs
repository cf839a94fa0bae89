//! `sigil`: the command-line front of Sigil.
//!
//! Today it inspects the SASL layer; the server (`sigil serve`), the
//! certificate tools (`sigil cert …`) and the client (`sigil login …`) join
//! as they land.

use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::{Parser, Subcommand, ValueEnum};
use sigil_sasl::client::{ClientConfig, ClientContext};
use sigil_sasl::server::{ConnectionInfo, ServerConfig};
use sigil_sasl::{Algorithm, ChannelBinding, ChannelBindingType, StoredCredentials, scram};

/// Sigil: XMPP with passwordless logins (TLS client certificates, SASL
/// EXTERNAL, per-device certificates).
#[derive(Debug, Parser)]
#[command(name = "sigil", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect the SASL layer.
    #[command(subcommand)]
    Sasl(SaslCommand),
}

#[derive(Debug, Subcommand)]
enum SaslCommand {
    /// List the mechanisms: client priorities, and what the server offers on
    /// each kind of connection.
    Mechanisms,
    /// Derive the SCRAM credentials a server stores for a password (salt,
    /// iteration count, StoredKey, ServerKey; never the password). The
    /// password is read from the first line of standard input.
    Derive {
        /// The SCRAM hash.
        #[arg(long, value_enum, default_value_t = Hash::Sha256)]
        hash: Hash,
        /// The PBKDF2 iteration count (at least 4096).
        #[arg(long, default_value_t = scram::DEFAULT_ITERATIONS)]
        iterations: u32,
        /// The salt, base64 (default: 16 random bytes).
        #[arg(long)]
        salt: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Hash {
    #[value(name = "sha-1")]
    Sha1,
    #[value(name = "sha-256")]
    Sha256,
    #[value(name = "sha-512")]
    Sha512,
}

impl From<Hash> for Algorithm {
    fn from(hash: Hash) -> Self {
        match hash {
            Hash::Sha1 => Self::Sha1,
            Hash::Sha256 => Self::Sha256,
            Hash::Sha512 => Self::Sha512,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sasl(SaslCommand::Mechanisms) => mechanisms(&mut io::stdout().lock()),
        Command::Sasl(SaslCommand::Derive {
            hash,
            iterations,
            salt,
        }) => derive(hash.into(), iterations, salt.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            let _ = writeln!(io::stderr(), "sigil: {message}");
            ExitCode::FAILURE
        }
    }
}

fn mechanisms(out: &mut impl Write) -> Result<(), String> {
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

fn derive(algorithm: Algorithm, iterations: u32, salt: Option<&str>) -> Result<(), String> {
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
