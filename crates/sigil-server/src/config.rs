//! `sigil.toml`: what the server serves, where, and with which limits.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The domain served (the part after `@` in every account).
    pub domain: String,
    /// Client-to-server listeners, and the listener of external
    /// components (`kind = "component"`).
    #[serde(default = "default_listeners", rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    /// External components (XEP-0114): the domains they may serve, each
    /// with its shared secret.
    #[serde(default, rename = "component", skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<ComponentConfig>,
    /// The server certificate.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Account and message storage.
    #[serde(default)]
    pub storage: StorageConfig,
    /// SASL mechanisms.
    #[serde(default)]
    pub sasl: SaslConfig,
    /// Certificate logins.
    #[serde(default)]
    pub auth: AuthConfig,
    /// WebSocket and BOSH over HTTPS.
    #[serde(default)]
    pub http: HttpConfig,
    /// Limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
}

/// One listener.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// `starttls` (RFC 6120, port 5222), `direct-tls` (XEP-0368, port
    /// 5223), `https` (port 5281) or `component` (XEP-0114, port 5347).
    pub kind: ListenerKind,
    /// Address and port, e.g. `127.0.0.1:5222`.
    pub address: SocketAddr,
    /// Whether clients are asked for a certificate (not used by a
    /// `component` listener, which has no TLS).
    #[serde(default)]
    pub client_certificates: ClientCertificatePolicy,
}

/// The kind of a listener.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ListenerKind {
    /// External components (XEP-0114, `jabber:component:accept`): plain
    /// TCP, authenticated by a shared secret. Meant for loopback: the
    /// stream is not encrypted.
    Component,
    /// TLS from the first byte (XEP-0368).
    DirectTls,
    /// HTTPS: XMPP over WebSocket (RFC 7395) at `/xmpp-websocket`, BOSH
    /// (XEP-0124/0206) at `/http-bind`, and the web chat at `/`.
    Https,
    /// Plain TCP, STARTTLS required before anything else.
    Starttls,
}

impl ListenerKind {
    /// As the configuration spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Component => "component",
            Self::DirectTls => "direct-tls",
            Self::Https => "https",
            Self::Starttls => "starttls",
        }
    }
}

/// Whether a listener asks for client certificates (Openfire's
/// `xmpp.client.cert.policy`).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ClientCertificatePolicy {
    /// Never asked for.
    Disabled,
    /// Asked for; a handshake without one goes on.
    #[default]
    Wanted,
    /// Required: a handshake without one fails.
    Needed,
}

impl ClientCertificatePolicy {
    /// As the configuration spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Wanted => "wanted",
            Self::Needed => "needed",
        }
    }
}

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
    fn check(&self) -> Result<(), String> {
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
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `sqlite://PATH` (relative to the configuration file).
    pub url: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://sigil.db".into(),
        }
    }
}

/// SASL.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    /// The mechanisms that may be offered (an allow-list). Others are never
    /// offered, whatever the connection.
    pub mechanisms: Vec<String>,
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
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            trusted_cas: PathBuf::from("trusted-cas"),
            crls: PathBuf::from("crls"),
            external_alone: true,
            control_socket: PathBuf::from("sigil.sock"),
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

fn default_listeners() -> Vec<ListenerConfig> {
    vec![
        ListenerConfig {
            kind: ListenerKind::Starttls,
            address: SocketAddr::from(([127, 0, 0, 1], 5222)),
            client_certificates: ClientCertificatePolicy::Wanted,
        },
        ListenerConfig {
            kind: ListenerKind::DirectTls,
            address: SocketAddr::from(([127, 0, 0, 1], 5223)),
            client_certificates: ClientCertificatePolicy::Wanted,
        },
        ListenerConfig {
            kind: ListenerKind::Https,
            address: SocketAddr::from(([127, 0, 0, 1], 5281)),
            client_certificates: ClientCertificatePolicy::Wanted,
        },
    ]
}

/// A configuration that cannot be used, with the key at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The key, e.g. `limits.max_depth` or `listener[1].address`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// The configuration a first run writes.
    pub fn new(domain: &str) -> Self {
        Self {
            domain: domain.to_owned(),
            listeners: default_listeners(),
            components: Vec::new(),
            tls: TlsConfig::default(),
            storage: StorageConfig::default(),
            sasl: SaslConfig::default(),
            auth: AuthConfig::default(),
            http: HttpConfig::default(),
            limits: LimitsConfig::default(),
            log: LogConfig::default(),
        }
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|error| ConfigError {
            key: String::new(),
            message: error.to_string().trim_end().to_owned(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError {
            key: String::new(),
            message: format!("cannot read {}: {error}", path.display()),
        })?;
        Self::parse(&text).map_err(|mut error| {
            error.message = format!("{}: {}", path.display(), error.message);
            error
        })
    }

    /// The configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Checks what serde cannot: values in range, names that exist.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError {
            key: key.to_owned(),
            message,
        };
        match jid::BareJid::new(&self.domain) {
            Ok(jid) if jid.node().is_none() => {}
            _ => {
                return Err(bad(
                    "domain",
                    format!("{:?} is not a domain name", self.domain),
                ));
            }
        }
        if self.listeners.is_empty() {
            return Err(bad("listener", "at least one listener is needed".into()));
        }
        self.validate_components()?;
        let listeners = self.listening();
        for (i, a) in listeners.iter().enumerate() {
            if a.address.port() != 0 && listeners[..i].iter().any(|b| b.address == a.address) {
                return Err(bad(
                    &format!("listener[{i}].address"),
                    format!("{} is used twice", a.address),
                ));
            }
        }
        if !self.storage.url.starts_with("sqlite:") {
            return Err(bad(
                "storage.url",
                format!("{:?}: only sqlite:// URLs are supported", self.storage.url),
            ));
        }
        if self.tls.certificate.is_some() != self.tls.key.is_some() {
            return Err(bad(
                "tls",
                "set both certificate and key, or neither".into(),
            ));
        }
        if self.sasl.mechanisms.is_empty() {
            return Err(bad(
                "sasl.mechanisms",
                "no mechanism allowed: nobody could log in".into(),
            ));
        }
        for (i, name) in self.sasl.mechanisms.iter().enumerate() {
            if !KNOWN_MECHANISMS.contains(&name.as_str()) {
                return Err(bad(
                    &format!("sasl.mechanisms[{i}]"),
                    format!(
                        "unknown mechanism {name:?}; known: {}",
                        KNOWN_MECHANISMS.join(", ")
                    ),
                ));
            }
        }
        let l = &self.limits;
        let ranges: [(&str, u64, u64, u64); 21] = [
            (
                "limits.max_offline_bytes",
                l.max_offline_bytes as u64,
                4096,
                1 << 40,
            ),
            (
                "limits.max_roster_items",
                l.max_roster_items as u64,
                1,
                10_000_000,
            ),
            (
                "limits.max_blocked_jids",
                l.max_blocked_jids as u64,
                1,
                10_000_000,
            ),
            (
                "http.max_connections",
                self.http.max_connections as u64,
                1,
                10_000_000,
            ),
            (
                "http.max_connections_per_address",
                self.http.max_connections_per_address as u64,
                1,
                10_000_000,
            ),
            (
                "limits.resume_timeout_seconds",
                l.resume_timeout_seconds,
                0,
                86_400,
            ),
            (
                "http.max_frame_bytes",
                self.http.max_frame_bytes as u64,
                4096,
                64 << 20,
            ),
            (
                "http.max_sessions",
                self.http.max_sessions as u64,
                1,
                10_000_000,
            ),
            (
                "limits.max_stanza_bytes",
                l.max_stanza_bytes as u64,
                4096,
                64 << 20,
            ),
            ("limits.max_depth", l.max_depth as u64, 4, 256),
            ("limits.max_attributes", l.max_attributes as u64, 8, 4096),
            (
                "limits.max_unauthenticated_bytes",
                l.max_unauthenticated_bytes,
                4096,
                64 << 20,
            ),
            (
                "limits.max_offline_messages",
                l.max_offline_messages as u64,
                0,
                1_000_000,
            ),
            (
                "limits.session_queue",
                l.session_queue as u64,
                16,
                1_000_000,
            ),
            (
                "limits.login_timeout_seconds",
                l.login_timeout_seconds,
                1,
                3600,
            ),
            (
                "limits.max_certificates_per_account",
                l.max_certificates_per_account as u64,
                1,
                10_000,
            ),
            (
                "limits.max_revoked_certificates_per_account",
                l.max_revoked_certificates_per_account as u64,
                1,
                1_000_000,
            ),
            (
                "limits.read_bytes_per_second",
                l.read_bytes_per_second,
                0,
                1 << 40,
            ),
            (
                "limits.unauthenticated_read_bytes_per_second",
                l.unauthenticated_read_bytes_per_second,
                0,
                1 << 40,
            ),
            (
                "limits.max_pending_per_address",
                l.max_pending_per_address as u64,
                0,
                1_000_000,
            ),
            (
                "limits.write_timeout_seconds",
                l.write_timeout_seconds,
                1,
                3600,
            ),
        ];
        for (key, value, min, max) in ranges {
            if value < min || value > max {
                return Err(bad(key, format!("{value} is outside {min}..={max}")));
            }
        }
        if self.log.level.trim().is_empty() {
            return Err(bad("log.level", "empty".into()));
        }
        Ok(())
    }

    /// The listeners the server opens: those configured, and a component
    /// listener on [`DEFAULT_COMPONENT_ADDRESS`] when components are
    /// configured without one.
    pub fn listening(&self) -> Vec<ListenerConfig> {
        let mut listeners = self.listeners.clone();
        if !self.components.is_empty()
            && !listeners.iter().any(|l| l.kind == ListenerKind::Component)
        {
            listeners.push(ListenerConfig {
                kind: ListenerKind::Component,
                address: DEFAULT_COMPONENT_ADDRESS,
                client_certificates: ClientCertificatePolicy::Disabled,
            });
        }
        listeners
    }

    /// The components: valid domains, none twice, none the server's own
    /// or nested in another's (a component speaks for its subdomains, so
    /// nesting would let one speak for the other, or for the server's
    /// users), and an inline secret of [`SECRET_BYTES`]. A secret file is
    /// read at start ([`ComponentConfig::read_secret`]).
    fn validate_components(&self) -> Result<(), ConfigError> {
        let bad = |key: String, message: String| ConfigError { key, message };
        let has_listener = self
            .listeners
            .iter()
            .any(|l| l.kind == ListenerKind::Component);
        if has_listener && self.components.is_empty() {
            return Err(bad(
                "listener".into(),
                "a component listener without any [[component]]: no component could log in".into(),
            ));
        }
        let server = self.domain.to_ascii_lowercase();
        let mut domains: Vec<String> = Vec::new();
        for (i, component) in self.components.iter().enumerate() {
            let key = |field: &str| format!("component[{i}].{field}");
            let domain = match jid::BareJid::new(&component.domain) {
                Ok(jid) if jid.node().is_none() => jid.domain().to_string(),
                _ => {
                    return Err(bad(
                        key("domain"),
                        format!("{:?} is not a domain name", component.domain),
                    ));
                }
            };
            if domain != component.domain {
                return Err(bad(
                    key("domain"),
                    format!("write it as {domain:?} (lowercase, normalised)"),
                ));
            }
            if domain == server {
                return Err(bad(
                    key("domain"),
                    format!("{domain:?} is the server's own domain"),
                ));
            }
            if sigil_proto::component::in_domain(&server, &domain) {
                return Err(bad(
                    key("domain"),
                    format!("the server's domain {server:?} is under {domain:?}"),
                ));
            }
            if let Some(other) = domains.iter().find(|other| {
                sigil_proto::component::in_domain(&domain, other)
                    || sigil_proto::component::in_domain(other, &domain)
            }) {
                let message = if *other == domain {
                    format!("{domain:?} is configured twice")
                } else {
                    format!("{domain:?} and {other:?} are nested")
                };
                return Err(bad(key("domain"), message));
            }
            domains.push(domain);
            match (&component.secret, &component.secret_file) {
                (Some(secret), None) => secret.check().map_err(|m| bad(key("secret"), m))?,
                (None, Some(_)) => {}
                (Some(_), Some(_)) => {
                    return Err(bad(
                        key("secret"),
                        "set secret or secret_file, not both".into(),
                    ));
                }
                (None, None) => {
                    return Err(bad(key("secret"), "set secret or secret_file".into()));
                }
            }
        }
        Ok(())
    }

    /// The framer limits.
    pub fn framer_limits(&self) -> sigil_xml::Limits {
        sigil_xml::Limits {
            max_stanza_bytes: self.limits.max_stanza_bytes,
            max_depth: self.limits.max_depth,
            max_attributes: self.limits.max_attributes,
            max_unauthenticated_bytes: self.limits.max_unauthenticated_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip() {
        let config = Config::new("example.org");
        let text = config.to_toml();
        assert_eq!(Config::parse(&text).unwrap(), config);
    }

    #[test]
    fn minimal_file() {
        let config = Config::parse("domain = 'example.org'\n").unwrap();
        assert_eq!(config.listeners.len(), 3);
        assert_eq!(config.limits.max_stanza_bytes, 256 * 1024);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                "domain = 'example.org'\n[limits]\nmax_depth = 1\n",
                "limits.max_depth",
            ),
            (
                "domain = 'example.org'\n[sasl]\nmechanisms = ['PLAIN', 'DIGEST-MD5']\n",
                "sasl.mechanisms[1]",
            ),
            ("domain = 'a@b'\n", "domain"),
            (
                "domain = 'example.org'\n[storage]\nurl = 'postgres://x'\n",
                "storage.url",
            ),
            (
                "domain = 'example.org'\n[[listener]]\nkind = 'starttls'\naddress = '127.0.0.1:1'\n[[listener]]\nkind = 'direct-tls'\naddress = '127.0.0.1:1'\n",
                "listener[1].address",
            ),
        ];
        for (text, key) in cases {
            let error = Config::parse(text).unwrap_err();
            assert_eq!(error.key, key, "{error}");
        }
        // Unknown keys and bad values are reported by the parser, with the key.
        let error = Config::parse("domain = 'example.org'\n[limits]\nmax_dpeth = 3\n").unwrap_err();
        assert!(error.to_string().contains("max_dpeth"), "{error}");
        let error = Config::parse(
            "domain = 'example.org'\n[[listener]]\nkind = 'tcp'\naddress = '127.0.0.1:1'\n",
        )
        .unwrap_err();
        assert!(error.to_string().contains("tcp"), "{error}");
        let error = Config::parse(
            "domain = 'example.org'\n[[listener]]\nkind = 'starttls'\naddress = 'nowhere'\n",
        )
        .unwrap_err();
        assert!(error.to_string().contains("address"), "{error}");
    }

    const SECRET: &str = "0123456789abcdef0123";

    fn component(domain: &str, secret: &str) -> String {
        format!("[[component]]\ndomain = '{domain}'\nsecret = '{secret}'\n")
    }

    #[test]
    fn components_get_a_loopback_listener_and_keep_their_secret_hidden() {
        let text = format!(
            "domain = 'example.org'\n{}",
            component("muc.example.org", SECRET)
        );
        let config = Config::parse(&text).unwrap();
        let listening = config.listening();
        assert_eq!(listening.len(), 4);
        assert_eq!(listening[3].kind, ListenerKind::Component);
        assert_eq!(listening[3].address, DEFAULT_COMPONENT_ADDRESS);
        assert_eq!(DEFAULT_COMPONENT_ADDRESS.to_string(), "127.0.0.1:5347");
        assert!(!format!("{config:?}").contains(SECRET));
        assert_eq!(Config::parse(&config.to_toml()).unwrap(), config);
        // A listener of its own replaces the default one.
        let text = format!(
            "domain = 'example.org'\n[[listener]]\nkind = 'component'\naddress = '127.0.0.1:6000'\n{}",
            component("muc.example.org", SECRET)
        );
        let listening = Config::parse(&text).unwrap().listening();
        assert_eq!(listening.len(), 1);
        assert_eq!(listening[0].address.port(), 6000);
    }

    #[test]
    fn component_errors_name_the_key() {
        let base = "domain = 'example.org'\n";
        let cases = [
            (component("example.org", SECRET), "component[0].domain"),
            (
                component("a@muc.example.org", SECRET),
                "component[0].domain",
            ),
            (component("MUC.example.org", SECRET), "component[0].domain"),
            (component("org", SECRET), "component[0].domain"),
            (
                component("muc.example.org", SECRET) + &component("muc.example.org", SECRET),
                "component[1].domain",
            ),
            (
                component("muc.example.org", SECRET) + &component("a.muc.example.org", SECRET),
                "component[1].domain",
            ),
            (component("muc.example.org", "short"), "component[0].secret"),
            (
                "[[component]]\ndomain = 'muc.example.org'\n".to_owned(),
                "component[0].secret",
            ),
            (
                component("muc.example.org", SECRET) + "secret_file = 'x'\n",
                "component[0].secret",
            ),
            (
                "[[listener]]\nkind = 'component'\naddress = '127.0.0.1:5347'\n".to_owned(),
                "listener",
            ),
        ];
        for (text, key) in cases {
            let error = Config::parse(&format!("{base}{text}")).unwrap_err();
            assert_eq!(error.key, key, "{text}: {error}");
            assert!(!error.to_string().contains(SECRET), "{error}");
        }
    }

    #[test]
    fn a_secret_file_is_read_at_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("muc.secret"), format!("{SECRET}\r\n")).unwrap();
        std::fs::write(dir.path().join("short.secret"), "short\n").unwrap();
        let mut config = ComponentConfig {
            domain: "muc.example.org".into(),
            secret: None,
            secret_file: Some("muc.secret".into()),
        };
        assert_eq!(
            config.read_secret(dir.path()).unwrap().expose(),
            SECRET.as_bytes()
        );
        config.secret_file = Some("short.secret".into());
        let error = config.read_secret(dir.path()).unwrap_err();
        assert!(error.contains("16 to 1024 bytes"), "{error}");
        config.secret_file = Some("missing".into());
        let error = config.read_secret(dir.path()).unwrap_err();
        assert!(error.contains("missing"), "{error}");
    }
}
