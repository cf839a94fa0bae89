//! The sections of `sigil.toml` beside the listeners: components, TLS,
//! storage, SASL, HTTP, certificate logins, limits, archives, logging.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One external component (XEP-0114): the domain it serves and the secret
/// it proves in its handshake, given inline (`secret`) or read from a file
/// at start (`secret_file`, relative to the configuration file; one line,
/// its line end dropped). Exactly one of the two.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ComponentConfig {
    /// The domain, e.g. `muc.example.org`; the component also speaks for
    /// its subdomains.
    pub domain: String,
    /// The shared secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// A file holding the shared secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
}

/// A shared secret: never printed (its `Debug` says only that it is one).
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A secret of this text.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The secret's bytes, for the handshake.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Whether its length is within [`SECRET_BYTES`].
    pub(super) fn check(&self) -> Result<(), String> {
        if SECRET_BYTES.contains(&self.0.len()) {
            Ok(())
        } else {
            Err(format!(
                "a component secret must be {} to {} bytes (this one has {}); \
                 make one with `openssl rand -hex 32`",
                SECRET_BYTES.start(),
                SECRET_BYTES.end(),
                self.0.len()
            ))
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// How long a component secret may be, in bytes: at least 16, so that it
/// is not a word to guess (the handshake is offline-guessable by anyone
/// who sees the plaintext stream).
pub const SECRET_BYTES: std::ops::RangeInclusive<usize> = 16..=1024;

/// The address a component listener takes when components are configured
/// and no `component` listener is.
pub const DEFAULT_COMPONENT_ADDRESS: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    5347,
));

impl ComponentConfig {
    /// The secret: inline, or read from `secret_file` (relative to
    /// `base`), checked for length.
    pub fn read_secret(&self, base: &Path) -> Result<Secret, String> {
        let secret = match (&self.secret, &self.secret_file) {
            (Some(secret), None) => secret.clone(),
            (None, Some(file)) => {
                let path = base.join(file);
                let text = std::fs::read_to_string(&path).map_err(|error| {
                    format!(
                        "cannot read the secret of {}: {}: {error}",
                        self.domain,
                        path.display()
                    )
                })?;
                let line = text.strip_suffix('\n').unwrap_or(&text);
                Secret(line.strip_suffix('\r').unwrap_or(line).to_owned())
            }
            _ => return Err("set either secret or secret_file".into()),
        };
        secret.check()?;
        Ok(secret)
    }
}

/// Where the server certificate comes from.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain. Relative paths are relative to the
    /// configuration file. Default: `server.crt`, generated on first run.
    pub certificate: Option<PathBuf>,
    /// PEM private key. Default: `server.key`, generated on first run.
    pub key: Option<PathBuf>,
}

/// Storage.
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `sqlite://PATH` (relative to the configuration file), or
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE` (with
    /// `?sslmode=require` for TLS to the database).
    pub url: String,
    /// PostgreSQL: the CA certificate (PEM) that signed the database
    /// server's, for TLS; default: the system's trusted roots.
    pub ca: Option<PathBuf>,
    /// PostgreSQL: connections in the pool at most.
    pub max_connections: usize,
}

impl fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry the database password.
        f.debug_struct("StorageConfig")
            .field("url", &sigil_store::redact(&self.url))
            .field("ca", &self.ca)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://sigil.db".into(),
            ca: None,
            max_connections: 16,
        }
    }
}

/// Cluster mode: several nodes share one PostgreSQL database and one
/// NATS server (or NATS cluster).
#[derive(Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// The NATS server: `nats://HOST:PORT` (`tls://HOST:PORT` for TLS;
    /// several, comma-separated, to try in turn; `nats://USER:PASSWORD@…`
    /// to log in). Empty (the default): this node runs alone.
    pub nats: String,
    /// This node's name, unique in the cluster: letters, digits, `-` and
    /// `_`, at most 64.
    pub node: String,
    /// The cluster's name, which prefixes its NATS subjects and buckets,
    /// so that several clusters can share one NATS (default `sigil`).
    pub name: Option<String>,
    /// The CA certificate (PEM) that signed the NATS server's, for TLS;
    /// default: the system's trusted roots.
    pub ca: Option<PathBuf>,
}

impl ClusterConfig {
    /// Whether this node is part of a cluster.
    pub fn enabled(&self) -> bool {
        !self.nats.is_empty()
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("sigil")
    }

    /// Not set at all (left out of a written configuration).
    pub(crate) fn is_off(&self) -> bool {
        *self == Self::default()
    }

    /// What serde cannot check: `(key, why)` of the first problem.
    pub(crate) fn check(&self, storage: &StorageConfig) -> Result<(), (&'static str, String)> {
        fn name_ok(name: &str) -> bool {
            (1..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }
        if !self.enabled() {
            if self.is_off() {
                return Ok(());
            }
            return Err((
                "cluster.nats",
                "set the NATS server's URL, nats://HOST:PORT".into(),
            ));
        }
        if !self.nats.split(',').all(|url| {
            ["nats://", "tls://"]
                .iter()
                .any(|s| url.trim().starts_with(s))
        }) {
            return Err((
                "cluster.nats",
                format!(
                    "{:?}: use nats://HOST:PORT or tls://HOST:PORT",
                    redact_nats(&self.nats)
                ),
            ));
        }
        if !name_ok(&self.node) {
            return Err((
                "cluster.node",
                format!(
                    "{:?}: name this node with 1 to 64 letters, digits, - or _",
                    self.node
                ),
            ));
        }
        if !name_ok(self.name()) {
            return Err((
                "cluster.name",
                format!("{:?}: use 1 to 64 letters, digits, - or _", self.name()),
            ));
        }
        if storage.url.starts_with("sqlite:") {
            return Err((
                "storage.url",
                "a cluster's nodes share one PostgreSQL database: set postgres://… \
                 (sigil migrate copies an SQLite deployment over)"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// A NATS URL (or comma-separated list of them) fit to show: whatever
/// comes before `@` (a user and password, or a token) is left out.
pub fn redact_nats(urls: &str) -> String {
    urls.split(',')
        .map(|url| {
            let url = url.trim();
            match (url.split_once("://"), url.rfind('@')) {
                (Some((scheme, _)), Some(at)) => format!("{scheme}://…@{}", &url[at + 1..]),
                (None, Some(at)) => format!("…@{}", &url[at + 1..]),
                _ => url.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a NATS password or token.
        f.debug_struct("ClusterConfig")
            .field("nats", &redact_nats(&self.nats))
            .field("node", &self.node)
            .field("name", &self.name)
            .field("ca", &self.ca)
            .finish()
    }
}

/// SASL.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    /// The mechanisms that may be offered (an allow-list). Others are never
    /// offered, whatever the connection.
    pub mechanisms: Vec<String>,
    /// Offer SASL2 (XEP-0388) with Bind 2 (XEP-0386) beside SASL 1 on
    /// encrypted streams, with the same mechanisms.
    #[serde(default = "offer_sasl2")]
    pub sasl2: bool,
    /// Days a FAST token (XEP-0484) lives: a SASL2 client may ask for
    /// one and log in with it in one round trip. 0: no tokens.
    #[serde(default = "fast_token_days")]
    pub fast_token_days: u32,
}

fn offer_sasl2() -> bool {
    true
}

fn fast_token_days() -> u32 {
    30
}

/// The mechanisms a server offers when the configuration does not say.
pub const DEFAULT_MECHANISMS: &[&str] = &[
    "EXTERNAL",
    "SCRAM-SHA-512-PLUS",
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-512",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
    "PLAIN",
];

/// Every mechanism the server implements.
pub const KNOWN_MECHANISMS: &[&str] = &[
    "SCRAM-SHA-512-PLUS",
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-512",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
    "PLAIN",
    "ANONYMOUS",
    "EXTERNAL",
];

impl Default for SaslConfig {
    fn default() -> Self {
        Self {
            mechanisms: DEFAULT_MECHANISMS.iter().map(|m| (*m).to_owned()).collect(),
            sasl2: true,
            fast_token_days: fast_token_days(),
        }
    }
}

/// WebSocket and BOSH over HTTPS.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Origins (`https://chat.example.org`) whose pages may open sessions,
    /// besides the server's own HTTPS origins. Browsers present client
    /// certificates to any page, so other pages are refused.
    pub allowed_origins: Vec<String>,
    /// The largest WebSocket message, in bytes.
    pub max_frame_bytes: usize,
    /// WebSocket connections and BOSH sessions open at once, all clients
    /// together; more get HTTP 503.
    pub max_sessions: usize,
    /// HTTPS connections open at once, all clients together; more are
    /// closed at once.
    pub max_connections: usize,
    /// HTTPS connections from one IP address (an IPv6 /64) at once.
    pub max_connections_per_address: usize,
    /// Serve `.map` files from `web_assets` (large, for debugging).
    pub source_maps: bool,
    /// Converse.js's `dist/` directory (relative to this file). Default:
    /// `web/converse` of the Sigil checkout (vendored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_assets: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            max_frame_bytes: 256 * 1024 + 1024,
            max_sessions: 10_000,
            max_connections: 20_000,
            max_connections_per_address: 256,
            source_maps: false,
            web_assets: None,
        }
    }
}

/// Certificate logins (SASL EXTERNAL).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// A directory of PEM files: CAs whose client certificates (with
    /// clientAuth and an xmppAddr naming the account) may log in. Relative
    /// to the configuration file; `sigil cert trust` puts files there.
    pub trusted_cas: PathBuf,
    /// A directory of certificate revocation lists from those CAs: every
    /// file in it but hidden ones is a list (PEM or DER, any name). A
    /// certificate a list names never logs in, registered or not; a list
    /// that cannot be used stops logins by CA trust (see
    /// [`crate::trust`]). Relative to the configuration file; a missing
    /// directory means no lists. Read again when a file in it changes.
    pub crls: PathBuf,
    /// Offer EXTERNAL alone to a connection whose certificate would log in
    /// right now, so a client in certificate mode cannot choose a password
    /// mechanism it has no password for.
    pub external_alone: bool,
    /// The Unix socket through which the command line (`sigil cert
    /// revoke`, `sigil user del|disable|passwd`) tells a running server to
    /// end the sessions that lost their right ([`crate::control`]).
    pub control_socket: PathBuf,
    /// Days before a registered certificate expires when its account is
    /// sent a message naming the device, once per certificate
    /// ([`crate::expiry`]); 0: no warnings.
    pub expiry_warning_days: u32,
    /// A directory holding a CA (`ca.crt`, `ca.key`, as `sigil ca new`
    /// writes them) that signs the certificate signing requests of
    /// devices joining by invitation, relative to
    /// this file. Unset (the default): devices register the self-signed
    /// certificate they present. A signed certificate is registered to
    /// its device like any other (disable and revoke work the same); it
    /// logs in because it is registered, and only while it is: a
    /// certificate this CA signed never logs in by CA trust, even with
    /// the CA among `trusted_cas`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuing_ca: Option<PathBuf>,
    /// Days of validity of the certificates `issuing_ca` signs.
    pub issued_days: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            trusted_cas: PathBuf::from("trusted-cas"),
            crls: PathBuf::from("crls"),
            external_alone: true,
            control_socket: PathBuf::from("sigil.sock"),
            expiry_warning_days: 14,
            issuing_ca: None,
            issued_days: 365,
        }
    }
}

/// Limits. The framer's come from [`sigil_xml::Limits`], which says why
/// each default; the others say so below.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest stanza in bytes.
    pub max_stanza_bytes: usize,
    /// Deepest element nesting.
    pub max_depth: usize,
    /// Attributes per element.
    pub max_attributes: usize,
    /// Bytes a connection may send before authenticating.
    pub max_unauthenticated_bytes: u64,
    /// Offline messages kept per account.
    pub max_offline_messages: usize,
    /// Bytes of offline messages kept per account, all together.
    pub max_offline_bytes: usize,
    /// Items one roster holds (inbound subscription requests included).
    pub max_roster_items: usize,
    /// JIDs one account may block (XEP-0191).
    pub max_blocked_jids: usize,
    /// Namespaces one account may keep in private XML storage (XEP-0049).
    /// Default 100.
    pub max_private_documents: usize,
    /// Bytes of one element in private XML storage (XEP-0049). Default
    /// 64 KiB: bookmarks and client settings, with room to spare.
    pub max_private_bytes: usize,
    /// Bytes of one account's vCard (XEP-0054; also when written as
    /// vCard4). Default 128 KiB: a photo of about 90 KiB, and the whole
    /// IQ within the default stanza limit.
    pub max_vcard_bytes: usize,
    /// Stanzas queued for one session before it is disconnected as too slow
    /// (`policy-violation`); also the most stanzas kept unacknowledged
    /// (XEP-0198) and, on BOSH, frames waiting for the client's next
    /// request. Default 1,024.
    pub session_queue: usize,
    /// Seconds to complete TLS and authentication.
    pub login_timeout_seconds: u64,
    /// Certificates one account may register (XEP-0257).
    pub max_certificates_per_account: usize,
    /// Revoked certificates one account keeps (revocations are final and
    /// outlive the certificate): once reached, the account registers no
    /// more certificates. Revoking always works.
    pub max_revoked_certificates_per_account: usize,
    /// Bytes a second one connection may send once its session is bound,
    /// on average (a token bucket holding one second's worth); a faster
    /// client is read more slowly, not disconnected. 0: no limit (as
    /// `scripts/bench` runs, to measure the server, not the limit).
    /// Default 256 KiB: a largest stanza a second, far above any chat
    /// client (ejabberd's default shaper gives normal users 1 KB/s).
    pub read_bytes_per_second: u64,
    /// The same before the session is bound (TLS, SASL, bind).
    pub unauthenticated_read_bytes_per_second: u64,
    /// Connections from one IP address (an IPv6 /64) whose session is not
    /// bound yet (TLS handshake and login under way); more are refused at
    /// once. 0: no limit. Default 64: room for an office behind one NAT
    /// logging in at once.
    pub max_pending_per_address: usize,
    /// Seconds a write to a client may take before the connection is
    /// dropped: a client that stops reading would otherwise hold its
    /// session (and the queue behind it) forever.
    pub write_timeout_seconds: u64,
    /// Seconds a session whose connection died waits to be resumed
    /// (XEP-0198), for clients that asked for resumption; its messages
    /// queue meanwhile. 0: no resumption.
    pub resume_timeout_seconds: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let framer = sigil_xml::Limits::default();
        Self {
            max_stanza_bytes: framer.max_stanza_bytes,
            max_depth: framer.max_depth,
            max_attributes: framer.max_attributes,
            max_unauthenticated_bytes: framer.max_unauthenticated_bytes,
            max_offline_messages: 1000,
            max_offline_bytes: 16 << 20,
            max_roster_items: 5000,
            max_blocked_jids: 5000,
            max_private_documents: 100,
            max_private_bytes: 64 * 1024,
            max_vcard_bytes: 128 * 1024,
            session_queue: 1024,
            login_timeout_seconds: 30,
            max_certificates_per_account: 32,
            max_revoked_certificates_per_account: 1024,
            read_bytes_per_second: 256 * 1024,
            unauthenticated_read_bytes_per_second: 16 * 1024,
            max_pending_per_address: 64,
            write_timeout_seconds: 60,
            resume_timeout_seconds: 300,
        }
    }
}

/// Message archives (XEP-0313): every account's messages, kept on the
/// server so that each of its devices can fetch the conversation.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// Archive messages at all.
    pub enabled: bool,
    /// Days a message stays in the archive; 0 keeps it until the account
    /// goes (or [`Self::max_messages_per_account`] pushes it out).
    pub keep_days: u32,
    /// The most messages kept per account: beyond it the oldest go.
    pub max_messages_per_account: u64,
    /// What an account archives until its user says otherwise (XEP-0313
    /// §6): `always`, `roster` (only messages with roster contacts) or
    /// `never`.
    pub default: String,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            keep_days: 365,
            max_messages_per_account: 1_000_000,
            default: "always".into(),
        }
    }
}

impl ArchiveConfig {
    /// The default rule ([`Self::default`], checked by
    /// [`super::Config::validate`]).
    pub fn default_rule(&self) -> sigil_store::ArchiveDefault {
        sigil_store::ArchiveDefault::from_name(&self.default).unwrap_or_default()
    }
}

/// Invitations (XEP-0401): tokens that let a new device create an
/// account, or join one, without a password.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct InvitesConfig {
    /// Let clients redeem invitations before login (XEP-0445 and XEP-0077
    /// on the listeners that ask for client certificates). Without it,
    /// invitations can still be made, but not used.
    pub enabled: bool,
    /// Hours an invitation stays valid after it is made (1 to 8,760, a
    /// year); the command line may ask for another span within the same
    /// range.
    pub valid_hours: u32,
    /// The most open (unexpired, unused) invitations one account may
    /// have made from its sessions; 0: users make none.
    pub max_open_per_account: u64,
    /// The most open invitations the operator may have made from the
    /// command line.
    pub max_open: u64,
}

impl Default for InvitesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            valid_hours: 168,
            max_open_per_account: 10,
            max_open: 1000,
        }
    }
}

impl InvitesConfig {
    /// The longest validity an invitation may be given, in hours (a
    /// year): `valid_hours` and the command line's `--hours` stay within
    /// it.
    pub const MAX_VALID_HOURS: u32 = 8760;
}

/// Server administrators: who may run the XEP-0133 service
/// administration commands (add, delete, disable and re-enable users, end
/// their sessions) from their XMPP client.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Bare JIDs of accounts of this server (`["admin@example.org"]`);
    /// empty (the default): nobody administers the server over XMPP.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub jids: Vec<String>,
    /// Where to serve Prometheus metrics (`GET /metrics`, plain HTTP),
    /// e.g. `127.0.0.1:9100`; none (the default): not served. Keep it on
    /// loopback or a private network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<SocketAddr>,
}

/// Logging.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter: `info`, `debug`, `sigil_server=debug,info`…
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
        }
    }
}
