//! The client's configuration: [`Client::builder`] and [`ClientBuilder`],
//! checked once into the settings every (re)connection uses, and
//! [`TlsSettings`] to share among builders.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jid::BareJid;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sigil_proto::client::JoinRequest;
use sigil_proto::sasl2::UserAgent;
use sigil_sasl::client::{ClientConfig, ClientContext};

use crate::Error;
use crate::client::Client;
use crate::login::Prepared;
use crate::transport::{self, Endpoint, Transport, Trust};

/// The TLS side of a [`ClientBuilder`] (trust and client certificate),
/// built once by [`ClientBuilder::build_tls`] and shared by many builders
/// with [`ClientBuilder::tls`]: building it parses the certificates and
/// the key, which costs more than a connection's own share of the TLS
/// handshake when one program opens thousands of connections.
#[derive(Clone)]
pub struct TlsSettings {
    config: Arc<rustls::ClientConfig>,
    has_identity: bool,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("client_certificate", &self.has_identity)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Client`].
pub struct ClientBuilder {
    jid: String,
    addresses: Vec<SocketAddr>,
    transport: Transport,
    url: Option<String>,
    password: Option<String>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    trust: Trust,
    tls: Option<TlsSettings>,
    sasl: ClientConfig,
    resource: Option<String>,
    timeout: Duration,
    dns_server: Option<SocketAddr>,
    local_address: Option<std::net::IpAddr>,
    error: Option<String>,
    stream_management: bool,
    carbons: bool,
    join: Option<JoinRequest>,
    sasl2: bool,
    user_agent: UserAgent,
    fast: bool,
    fast_token: Option<FastToken>,
}

/// A FAST token (XEP-0484) the server issued to this client: keep it like
/// a password (it logs the account in, from this client's user-agent id
/// alone) and give it back with [`ClientBuilder::fast_token`].
#[derive(Clone, PartialEq, Eq)]
pub struct FastToken {
    /// The HT mechanism it is for.
    pub mechanism: String,
    /// The token.
    pub token: String,
    /// When it expires (XEP-0082).
    pub expiry: String,
}

impl fmt::Debug for FastToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FastToken")
            .field("mechanism", &self.mechanism)
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("jid", &self.jid)
            .field("addresses", &self.addresses)
            .field("transport", &self.transport)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Starts building a client for this account (`user@domain`), or for
    /// an anonymous login to a domain (`domain` alone: SASL ANONYMOUS).
    pub fn builder(jid: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            jid: jid.into(),
            addresses: Vec::new(),
            transport: Transport::StartTls,
            url: None,
            password: None,
            identity: None,
            tls: None,
            trust: Trust::System,
            sasl: ClientConfig::new(),
            resource: None,
            timeout: Duration::from_secs(30),
            dns_server: None,
            local_address: None,
            error: None,
            stream_management: false,
            carbons: false,
            join: None,
            sasl2: true,
            user_agent: UserAgent {
                id: sigil_proto::sasl2::new_uuid(),
                software: Some("Sigil".into()),
                device: None,
            },
            fast: false,
            fast_token: None,
        }
    }
}

impl ClientBuilder {
    /// The address to connect to, instead of looking the server up: by DNS
    /// SRV (`_xmpp-client._tcp`, or `_xmpps-client._tcp` for direct TLS),
    /// then the domain's own address (port 5222 or 5223); for WebSocket
    /// and BOSH, the URL's host.
    #[must_use]
    pub fn address(mut self, address: SocketAddr) -> Self {
        self.addresses = vec![address];
        self
    }

    /// Several addresses of one service, such as the nodes of a cluster,
    /// instead of looking the server up: each connection (and each
    /// [`Client::reconnect`]) tries them in this order and takes the first
    /// that answers, so that a client whose node died logs in on another.
    /// An empty list looks the server up as without [`Self::address`].
    #[must_use]
    pub fn addresses(mut self, addresses: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.addresses = addresses.into_iter().collect();
        self
    }

    /// The DNS server for SRV lookups (default: the first `nameserver` of
    /// `/etc/resolv.conf`).
    #[must_use]
    pub fn dns_server(mut self, server: SocketAddr) -> Self {
        self.dns_server = Some(server);
        self
    }

    /// The local address to connect from (for load generators that need
    /// more source ports than one address has).
    #[must_use]
    pub fn local_address(mut self, address: std::net::IpAddr) -> Self {
        self.local_address = Some(address);
        self
    }

    /// STARTTLS (default), direct TLS, WebSocket or BOSH.
    #[must_use]
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// The endpoint for WebSocket (`wss://host[:port]/path`) or BOSH
    /// (`https://host[:port]/path`). Default: the account's domain, port
    /// 443, `/xmpp-websocket` or `/http-bind`. The server certificate is
    /// checked against the URL's host.
    #[must_use]
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// The password, for SCRAM and PLAIN.
    #[must_use]
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// A client certificate chain and its private key, both PEM: presented
    /// in the TLS handshake, and SASL EXTERNAL is then preferred.
    #[must_use]
    pub fn client_certificate_pem(mut self, chain: &[u8], key: &[u8]) -> Self {
        let chain: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(chain).collect();
        match (chain, PrivateKeyDer::from_pem_slice(key)) {
            (Ok(chain), Ok(key)) if !chain.is_empty() => self.identity = Some((chain, key)),
            _ => self.error = Some("the client certificate or key is not valid PEM".into()),
        }
        self
    }

    /// A client certificate and key from a PKCS#12 file (`.p12`, as made
    /// for browsers by `sigil cert new`).
    #[must_use]
    pub fn client_certificate_p12(mut self, p12: &[u8], password: &str) -> Self {
        match read_p12(p12, password) {
            Ok(identity) => self.identity = Some(identity),
            Err(error) => self.error = Some(error),
        }
        self
    }

    /// Trusts the CA (or self-signed server) certificates in this PEM
    /// instead of the system's roots.
    #[must_use]
    pub fn trust_pem(mut self, pem: &[u8]) -> Self {
        match CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>() {
            Ok(anchors) if !anchors.is_empty() => self.trust = Trust::Anchors(anchors),
            _ => self.error = Some("the trusted certificates are not valid PEM".into()),
        }
        self
    }

    /// Accepts exactly the server certificate with this SHA-256 fingerprint.
    #[must_use]
    pub fn pin_sha256(mut self, fingerprint: [u8; 32]) -> Self {
        self.trust = Trust::Pinned(fingerprint);
        self
    }

    /// Builds the TLS settings this builder's trust and client certificate
    /// describe, to hand to other builders with [`Self::tls`].
    pub fn build_tls(&self) -> Result<TlsSettings, Error> {
        if let Some(error) = &self.error {
            return Err(Error::Config(error.clone()));
        }
        let identity = self
            .identity
            .as_ref()
            .map(|(chain, key)| (chain.clone(), key.clone_key()));
        let config = transport::tls_config(self.trust.clone(), identity).map_err(Error::Tls)?;
        Ok(TlsSettings {
            config,
            has_identity: self.identity.is_some(),
        })
    }

    /// Uses TLS settings built before (by [`Self::build_tls`]) instead of
    /// this builder's trust and client certificate.
    #[must_use]
    pub fn tls(mut self, settings: TlsSettings) -> Self {
        self.tls = Some(settings);
        self
    }

    /// The SASL mechanisms: the registry with custom mechanisms and an
    /// allow-list (default: the built-ins).
    #[must_use]
    pub fn sasl(mut self, config: ClientConfig) -> Self {
        self.sasl = config;
        self
    }

    /// Asks for XEP-0198 stream management where the server offers it:
    /// the server acknowledges what it took charge of, and what it had
    /// not acknowledged when a connection ends is sent again by
    /// [`Client::reconnect`]. See [`Client::wait_acknowledged`].
    ///
    /// With resumption: after a connection dropped, [`Client::reconnect`]
    /// takes the same session over (same resource and presence, what the
    /// server queued meanwhile delivered), or, if the server no longer
    /// has it, binds a new one; either way only what the server says it
    /// did not handle is sent again.
    pub fn stream_management(mut self, enable: bool) -> Self {
        self.stream_management = enable;
        self
    }

    /// Enables XEP-0280 carbons as soon as the resource is bound (and on
    /// every new session after [`Client::reconnect`]): see
    /// [`Client::enable_carbons`]. A server that refuses fails the
    /// connection with [`Error::Iq`].
    #[must_use]
    pub fn carbons(mut self, enable: bool) -> Self {
        self.carbons = enable;
        self
    }

    /// Before logging in, joins by invitation: redeems the token and
    /// registers this builder's client certificate as the device (XEP-0445,
    /// XEP-0077, XEP-0257), then logs in with it (give it a client
    /// certificate naming the account, and SASL EXTERNAL). On the first
    /// connection only: [`Client::reconnect`] logs in as usual. A refusal
    /// is [`Error::Stream`] with `TokenRefused`, `RegistrationRefused` or
    /// `RegistrationUnavailable`. [`crate::join()`] does all of it from an
    /// invitation URI.
    #[must_use]
    pub fn join(mut self, request: JoinRequest) -> Self {
        self.join = Some(request);
        self
    }

    /// Whether to log in by SASL2 (XEP-0388) where the server offers it
    /// (default: yes), binding by Bind 2 (XEP-0386) unless an exact
    /// [`Self::resource`] is asked for; SASL 1 otherwise, and always
    /// against servers without SASL2. [`Client::login_path`] tells which
    /// was taken.
    #[must_use]
    pub fn sasl2(mut self, enable: bool) -> Self {
        self.sasl2 = enable;
        self
    }

    /// The id this installation gives itself (XEP-0388 `<user-agent
    /// id/>`, a UUID), and the device's name for the user's own list of
    /// devices. Keep the id from one run to the next: with SASL2 the
    /// server keeps one resource per id, ending a session of the same id
    /// that a new one replaces. Default: an id made for this builder.
    #[must_use]
    pub fn user_agent(mut self, id: &str, device: Option<&str>) -> Self {
        if sigil_proto::sasl2::is_uuid(id) {
            self.user_agent.id = Some(id.to_ascii_lowercase());
        } else {
            self.error = Some(format!("the user-agent id {id:?} is not a UUID"));
        }
        self.user_agent.device = device.map(str::to_owned);
        self
    }

    /// Asks the server for a FAST token (XEP-0484) when logging in by
    /// SASL2 with anything but a token; the client logs in with it on
    /// [`Client::reconnect`], in one round trip, and
    /// [`Client::fast_token`] gives it to keep. Default: no.
    #[must_use]
    pub fn fast(mut self, enable: bool) -> Self {
        self.fast = enable;
        self
    }

    /// A FAST token kept from an earlier run, with the same
    /// [`Self::user_agent`] id: the first login uses it where the server
    /// offers its mechanism. A refused token is dropped, and the login
    /// tried again with the other credentials.
    #[must_use]
    pub fn fast_token(mut self, token: FastToken) -> Self {
        self.fast_token = Some(token);
        self
    }

    /// The resource to ask for (default: the server picks).
    #[must_use]
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// The time allowed to connect and log in, and the default for IQ
    /// requests (default 30 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connects, negotiates TLS and SASL, and binds a resource.
    pub async fn connect(self) -> Result<Client, Error> {
        let carbons = self.carbons;
        let join = self.join.clone();
        let prepared = Arc::new(self.prepare()?);
        let connection = prepared.connect(None, join).await?;
        let mut client = Client::from_parts(prepared, connection);
        client.set_up_session(carbons, true).await?;
        Ok(client)
    }

    fn prepare(self) -> Result<Prepared, Error> {
        if let Some(error) = self.error {
            return Err(Error::Config(error));
        }
        let jid =
            BareJid::new(&self.jid).map_err(|e| Error::Config(format!("{:?}: {e}", self.jid)))?;
        let endpoint = match (self.transport, &self.url) {
            (Transport::StartTls | Transport::DirectTls, Some(_)) => {
                return Err(Error::Config(
                    "a URL is only for the WebSocket and BOSH transports".into(),
                ));
            }
            (Transport::StartTls | Transport::DirectTls, None) => None,
            (transport, Some(url)) => Some(Endpoint::parse(url, transport).map_err(Error::Config)?),
            (transport, None) => {
                let path = if transport == Transport::WebSocket {
                    "/xmpp-websocket"
                } else {
                    "/http-bind"
                };
                let scheme = if transport == Transport::WebSocket {
                    "wss"
                } else {
                    "https"
                };
                Some(
                    Endpoint::parse(&format!("{scheme}://{}{path}", jid.domain()), transport)
                        .map_err(Error::Config)?,
                )
            }
        };
        let tls_name = endpoint
            .as_ref()
            .map_or_else(|| jid.domain().to_string(), |e| e.host.clone());
        let tls_name = ServerName::try_from(tls_name)
            .map_err(|e| Error::Config(format!("server name: {e}")))?;
        let (tls, has_identity) = match self.tls {
            Some(settings) => (settings.config, settings.has_identity),
            None => {
                let has_identity = self.identity.is_some();
                let config =
                    transport::tls_config(self.trust, self.identity).map_err(Error::Tls)?;
                (config, has_identity)
            }
        };
        let mut context = ClientContext::new().with_client_certificate(has_identity);
        if let Some(node) = jid.node() {
            context = context.with_authcid(node.to_string());
        }
        if let Some(password) = &self.password {
            context = context.with_password(password.clone());
        }
        Ok(Prepared {
            jid,
            addresses: self.addresses,
            transport: self.transport,
            endpoint,
            tls_name,
            connector: tokio_rustls::TlsConnector::from(tls),
            sasl: Arc::new(self.sasl),
            context,
            resource: self.resource,
            timeout: self.timeout,
            dns_server: self.dns_server,
            local_address: self.local_address,
            stream_management: self.stream_management,
            carbons: self.carbons,
            sasl2: self.sasl2,
            user_agent: self.user_agent,
            fast: self.fast,
            token: Arc::new(std::sync::Mutex::new(self.fast_token)),
        })
    }
}

fn read_p12(
    p12: &[u8],
    password: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let store = p12_keystore::KeyStore::from_pkcs12(p12, password, Default::default())
        .map_err(|e| format!("the .p12 file cannot be read (wrong password?): {e}"))?;
    let (_, chain) = store
        .private_key_chain()
        .ok_or("the .p12 file holds no private key with its certificate")?;
    let certificates: Vec<CertificateDer<'static>> = chain
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    if certificates.is_empty() {
        return Err("the .p12 file holds no certificate".into());
    }
    let key = PrivateKeyDer::try_from(chain.key().as_der().to_vec())
        .map_err(|e| format!("the .p12 key is not usable: {e}"))?;
    Ok((certificates, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn configuration_errors_are_reported() {
        let url_on_tcp = Client::builder("a@example.org")
            .url("wss://example.org/ws")
            .connect()
            .await;
        assert!(
            matches!(url_on_tcp, Err(Error::Config(_))),
            "{url_on_tcp:?}"
        );
        let wrong_scheme = Client::builder("a@example.org")
            .transport(Transport::Bosh)
            .url("http://example.org/http-bind")
            .connect()
            .await;
        assert!(
            matches!(wrong_scheme, Err(Error::Config(_))),
            "{wrong_scheme:?}"
        );
        let bad_jid = Client::builder("not a jid@@").connect().await;
        assert!(matches!(bad_jid, Err(Error::Config(_))), "{bad_jid:?}");
        let bad_pem = Client::builder("a@example.org")
            .trust_pem(b"garbage")
            .connect()
            .await;
        assert!(matches!(bad_pem, Err(Error::Config(_))), "{bad_pem:?}");
        let bad_p12 = Client::builder("a@example.org")
            .client_certificate_p12(b"garbage", "x")
            .connect()
            .await;
        assert!(matches!(bad_p12, Err(Error::Config(_))), "{bad_p12:?}");
    }
}
