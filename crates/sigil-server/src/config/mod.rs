//! `sigil.toml`: what the server serves, where, and with which limits.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

mod sections;

pub use sections::*;

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
    /// Cluster mode (several nodes over NATS).
    #[serde(default, skip_serializing_if = "ClusterConfig::is_off")]
    pub cluster: ClusterConfig,
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
    /// Message archives (XEP-0313).
    #[serde(default)]
    pub archive: ArchiveConfig,
    /// Invitations (XEP-0401): devices that join without a password.
    #[serde(default)]
    pub invites: InvitesConfig,
    /// Server administrators (XEP-0133).
    #[serde(default)]
    pub admin: AdminConfig,
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

/// How URLs name an HTTPS listener on `port` of the served `domain` (the
/// name in the server's certificate): `domain`, with `:port` unless it is
/// 443. Web discovery (XEP-0156) and invitation pages build their URLs
/// from it.
pub fn https_authority(domain: &str, port: u16) -> String {
    if port == 443 {
        domain.to_owned()
    } else {
        format!("{domain}:{port}")
    }
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
            cluster: ClusterConfig::default(),
            sasl: SaslConfig::default(),
            auth: AuthConfig::default(),
            http: HttpConfig::default(),
            limits: LimitsConfig::default(),
            archive: ArchiveConfig::default(),
            invites: InvitesConfig::default(),
            admin: AdminConfig::default(),
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
        self.admins()?;
        let listeners = self.listening();
        for (i, a) in listeners.iter().enumerate() {
            if a.address.port() != 0 && listeners[..i].iter().any(|b| b.address == a.address) {
                return Err(bad(
                    &format!("listener[{i}].address"),
                    format!("{} is used twice", a.address),
                ));
            }
        }
        if sigil_store::ArchiveDefault::from_name(&self.archive.default).is_none() {
            return Err(bad(
                "archive.default",
                format!(
                    "{:?}: use \"always\", \"roster\" or \"never\"",
                    self.archive.default
                ),
            ));
        }
        if self.archive.max_messages_per_account == 0 {
            return Err(bad(
                "archive.max_messages_per_account",
                "must be at least 1 (set archive.enabled = false to archive nothing)".into(),
            ));
        }
        let url = &self.storage.url;
        if !["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
        {
            return Err(bad(
                "storage.url",
                format!(
                    "{:?}: use sqlite://PATH or postgres://USER:PASSWORD@HOST/DATABASE",
                    sigil_store::redact(url)
                ),
            ));
        }
        if self.storage.max_connections == 0 {
            return Err(bad("storage.max_connections", "must be at least 1".into()));
        }
        self.cluster
            .check(&self.storage)
            .map_err(|(key, message)| bad(key, message))?;
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
        if self.sasl.fast_token_days > 365 {
            return Err(bad(
                "sasl.fast_token_days",
                "at most 365: a token is a password; 0 turns FAST off".into(),
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
        let invites = &self.invites;
        let ranges: [(&str, u64, u64, u64); 28] = [
            (
                "auth.issued_days",
                u64::from(self.auth.issued_days),
                1,
                u64::from(sigil_x509::generate::MAX_DAYS),
            ),
            (
                "invites.valid_hours",
                u64::from(invites.valid_hours),
                1,
                u64::from(InvitesConfig::MAX_VALID_HOURS),
            ),
            (
                "invites.max_open_per_account",
                invites.max_open_per_account,
                0,
                1_000_000,
            ),
            ("invites.max_open", invites.max_open, 1, 1_000_000),
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
                "limits.max_private_documents",
                l.max_private_documents as u64,
                1,
                1_000_000,
            ),
            (
                "limits.max_private_bytes",
                l.max_private_bytes as u64,
                1024,
                64 << 20,
            ),
            (
                "limits.max_vcard_bytes",
                l.max_vcard_bytes as u64,
                1024,
                64 << 20,
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

    /// The administrators of `[admin] jids`, normalised: each the bare
    /// JID of an account of this domain.
    pub fn admins(&self) -> Result<Vec<jid::BareJid>, ConfigError> {
        let mut admins = Vec::with_capacity(self.admin.jids.len());
        for (i, text) in self.admin.jids.iter().enumerate() {
            let bad = |message: String| ConfigError {
                key: format!("admin.jids[{i}]"),
                message,
            };
            let jid = jid::BareJid::new(text)
                .map_err(|e| bad(format!("{text:?} is not a bare JID: {e}")))?;
            if jid.node().is_none() {
                return Err(bad(format!(
                    "{text:?} names no account (user@{})",
                    self.domain
                )));
            }
            if !jid.domain().as_str().eq_ignore_ascii_case(&self.domain) {
                return Err(bad(format!(
                    "{text:?} is not an account of this server's domain {}",
                    self.domain
                )));
            }
            admins.push(jid);
        }
        Ok(admins)
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
        assert_eq!(config.invites.valid_hours, 168);
        assert_eq!(config.invites.max_open_per_account, 10);
        assert_eq!(config.invites.max_open, 1000);
    }

    #[test]
    fn invitation_limits_at_their_bounds() {
        let config = Config::parse(
            "domain = 'example.org'\n[invites]\nvalid_hours = 8760\nmax_open_per_account = 0\nmax_open = 1\n",
        )
        .unwrap();
        assert_eq!(config.invites.valid_hours, InvitesConfig::MAX_VALID_HOURS);
        assert_eq!(config.invites.max_open_per_account, 0);
        assert!(config.invites.enabled);
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
            (
                "domain = 'example.org'\n[sasl]\nmechanisms = ['PLAIN']\nfast_token_days = 400\n",
                "sasl.fast_token_days",
            ),
            ("domain = 'a@b'\n", "domain"),
            (
                "domain = 'example.org'\n[invites]\nvalid_hours = 0\n",
                "invites.valid_hours",
            ),
            (
                "domain = 'example.org'\n[invites]\nvalid_hours = 8761\n",
                "invites.valid_hours",
            ),
            (
                "domain = 'example.org'\n[invites]\nmax_open = 0\n",
                "invites.max_open",
            ),
            (
                "domain = 'example.org'\n[storage]\nurl = 'mysql://x'\n",
                "storage.url",
            ),
            (
                "domain = 'example.org'\n[storage]\nmax_connections = 0\n",
                "storage.max_connections",
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

    #[test]
    fn administrators_are_accounts_of_this_domain() {
        let parse = |jids: &str| {
            Config::parse(&format!("domain = 'example.org'\n[admin]\njids = {jids}\n"))
        };
        assert!(parse("[]").unwrap().admins().unwrap().is_empty());
        let config = parse("['Admin@example.org']").unwrap();
        assert_eq!(config.admins().unwrap()[0].as_str(), "admin@example.org");
        for bad in [
            "['example.org']",
            "['admin@other.org']",
            "['a@@b']",
            "['a@example.org/r']",
        ] {
            let error = parse(bad).unwrap_err();
            assert_eq!(error.key, "admin.jids[0]", "{bad}: {error}");
        }
    }
}
