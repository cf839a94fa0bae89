//! An async XMPP client whose SASL layer is Strophe.js's, in Rust:
//! pluggable, prioritised, allow-listed mechanisms from [`sigil_sasl`],
//! EXTERNAL with a TLS client certificate first whenever one is given.
//!
//! One client speaks all four transports: TCP with STARTTLS, direct TLS
//! (XEP-0368), WebSocket (RFC 7395) and BOSH (XEP-0124/0206), each with an
//! optional client certificate. The negotiation is
//! [`sigil_proto::client::ClientStream`]; this crate adds sockets, TLS,
//! HTTP, timeouts, IQ tracking and reconnection.
//!
//! ```no_run
//! # async fn run() -> Result<(), sigil_client::Error> {
//! use sigil_client::{Client, Message, Transport};
//! let mut client = Client::builder("juliet@example.org")
//!     .address("127.0.0.1:5222".parse().unwrap())
//!     .transport(Transport::StartTls)
//!     .password("r0m30")
//!     .connect()
//!     .await?;
//! println!("bound {} with {}", client.jid(), client.mechanism());
//! client.send_presence(&sigil_client::Presence::available()).await?;
//! client.send_message(&Message::chat("romeo@example.net".parse().unwrap(), "hi")).await?;
//! client.close().await;
//! # Ok(()) }
//! ```

mod bosh;
mod connection;
mod error;
pub mod saslcert;
mod srv;
mod stanza;
mod transport;

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jid::{BareJid, FullJid, Jid};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sigil_proto::client::{self as proto, ClientError, ClientStream, ClientStreamConfig};
use sigil_proto::error::StanzaError;
use sigil_sasl::client::{ClientConfig, ClientContext};
use sigil_xml::{Element, ns};

use connection::{Connection, Input};
pub use error::Error;
pub use sigil_proto::error::StanzaCondition;
pub use sigil_proto::random_id;
pub use stanza::{Iq, IqType, Message, MessageType, Presence, PresenceType, Stanza};
use transport::Endpoint;
pub use transport::Transport;

/// How the server's certificate is checked.
#[derive(Clone, Debug)]
enum Trust {
    /// The operating system's trusted roots.
    System,
    /// These CA (or self-signed) certificates, DER.
    Anchors(Vec<CertificateDer<'static>>),
    /// Exactly the certificate with this SHA-256 fingerprint.
    Pinned([u8; 32]),
}

/// How [`Client::reconnect`] waits between attempts: exponential, with
/// jitter, bounded in count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Attempts before giving up (at least one).
    pub attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
            attempts: 10,
        }
    }
}

impl Backoff {
    /// The wait before attempt `n` (0 is the first retry): doubling from
    /// `initial` up to `max`, minus up to a quarter at random so that many
    /// clients do not come back in step.
    pub fn delay(&self, n: u32) -> Duration {
        let full = self.initial.saturating_mul(1u32 << n.min(16)).min(self.max);
        let jitter = random_id()
            .get(..4)
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .unwrap_or(0);
        full.saturating_sub(full / 4 * jitter / 0xffff)
    }
}

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
    address: Option<SocketAddr>,
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
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("jid", &self.jid)
            .field("address", &self.address)
            .field("transport", &self.transport)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// The address to connect to, instead of looking the server up: by DNS
    /// SRV (`_xmpp-client._tcp`, or `_xmpps-client._tcp` for direct TLS),
    /// then the domain's own address (port 5222 or 5223); for WebSocket
    /// and BOSH, the URL's host.
    #[must_use]
    pub fn address(mut self, address: SocketAddr) -> Self {
        self.address = Some(address);
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
        let prepared = Arc::new(self.prepare()?);
        let connection = prepared.connect(None).await?;
        Ok(Client::from_parts(prepared, connection))
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
            address: self.address,
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

/// Everything needed to (re)connect, checked once.
struct Prepared {
    jid: BareJid,
    address: Option<SocketAddr>,
    transport: Transport,
    endpoint: Option<Endpoint>,
    tls_name: ServerName<'static>,
    connector: tokio_rustls::TlsConnector,
    sasl: Arc<ClientConfig>,
    context: ClientContext,
    resource: Option<String>,
    timeout: Duration,
    dns_server: Option<SocketAddr>,
    local_address: Option<std::net::IpAddr>,
    stream_management: bool,
}

/// A connection that completed negotiation.
struct Established {
    connection: Connection,
    stream: ClientStream,
    jid: FullJid,
    mechanism: String,
    inbox: VecDeque<Element>,
    /// With an earlier session to resume: `Ok(h)` resumed, `Err(h)` a new
    /// session (with the server's `h` for the earlier one if it said).
    resumption: Option<Result<u32, Option<u32>>>,
}

impl Prepared {
    async fn connect(&self, resume: Option<proto::Resumption>) -> Result<Established, Error> {
        tokio::time::timeout(self.timeout, self.connect_inner(resume))
            .await
            .map_err(|_| Error::Timeout)?
    }

    /// The addresses to try, in order.
    async fn resolve(&self) -> Result<Vec<SocketAddr>, Error> {
        if let Some(address) = self.address {
            return Ok(vec![address]);
        }
        let domain = self.jid.domain().to_string();
        let (host, port) = match (&self.endpoint, self.transport) {
            (Some(endpoint), _) => (endpoint.host.clone(), endpoint.port),
            (None, Transport::DirectTls) => (domain.clone(), 5223),
            (None, _) => (domain.clone(), 5222),
        };
        if self.endpoint.is_none()
            && let Some(server) = self.dns_server.or_else(srv::system_name_server)
        {
            let service = if self.transport == Transport::DirectTls {
                "_xmpps-client._tcp"
            } else {
                "_xmpp-client._tcp"
            };
            match srv::lookup(&format!("{service}.{domain}"), server).await {
                Ok(srv::Lookup::Records(records)) => {
                    let mut addresses = Vec::new();
                    for record in records {
                        if let Ok(found) =
                            tokio::net::lookup_host((record.target.as_str(), record.port)).await
                        {
                            addresses.extend(found);
                        }
                    }
                    if !addresses.is_empty() {
                        return Ok(addresses);
                    }
                }
                Ok(srv::Lookup::Refused) => {
                    return Err(Error::Config(format!(
                        "{domain} says (DNS SRV {service}) that it offers no such service"
                    )));
                }
                // No records, or no answer: the domain's own address.
                Ok(srv::Lookup::None) | Err(_) => {}
            }
        }
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| Error::Io(std::io::Error::new(e.kind(), format!("{host}: {e}"))))?
            .collect();
        if addresses.is_empty() {
            return Err(Error::Config(format!("{host} has no address")));
        }
        Ok(addresses)
    }

    /// Connects TCP to the first address that answers.
    async fn connect_tcp(&self) -> Result<(tokio::net::TcpStream, SocketAddr), Error> {
        let mut last = None;
        for address in self.resolve().await? {
            match transport::connect_tcp(address, self.local_address).await {
                Ok(tcp) => {
                    let _ = tcp.set_nodelay(true);
                    return Ok((tcp, address));
                }
                Err(error) => last = Some(error),
            }
        }
        Err(Error::Io(last.unwrap_or_else(|| {
            std::io::ErrorKind::AddrNotAvailable.into()
        })))
    }

    async fn connect_inner(&self, resume: Option<proto::Resumption>) -> Result<Established, Error> {
        let (tcp, address) = self.connect_tcp().await?;
        let config = ClientStreamConfig {
            jid: self.jid.clone(),
            resource: self.resource.clone(),
            tls: match self.transport {
                Transport::StartTls => proto::TlsMode::Required,
                // TLS lies outside the XML stream for the others.
                _ => proto::TlsMode::Direct,
            },
            sasl: self.sasl.clone(),
            context: self.context.clone(),
            limits: sigil_xml::Limits::default(),
            framing: if self.transport.is_http() {
                sigil_proto::Framing::Standalone
            } else {
                sigil_proto::Framing::Stream
            },
        };
        let mut stream = ClientStream::new(config);
        if self.stream_management {
            stream.request_resumption();
            if let Some(earlier) = resume {
                stream.resume_from(earlier);
            }
        }
        let connection = match self.transport {
            Transport::StartTls => Connection::Plain(tcp),
            Transport::DirectTls => {
                let tls = transport::handshake(tcp, &self.connector, self.tls_name.clone()).await?;
                stream.set_channel_binding(transport::channel_binding(tls.get_ref().1));
                Connection::Tls(Box::new(tls))
            }
            Transport::WebSocket => {
                let endpoint = self
                    .endpoint
                    .as_ref()
                    .ok_or_else(|| Error::Config("no WebSocket URL".into()))?;
                let tls = transport::handshake(tcp, &self.connector, self.tls_name.clone()).await?;
                // One TLS connection carries the whole stream, so its
                // channel binding holds.
                stream.set_channel_binding(transport::channel_binding(tls.get_ref().1));
                let ws = transport::websocket(
                    tls,
                    endpoint,
                    sigil_xml::Limits::default().max_stanza_bytes * 2,
                )
                .await?;
                Connection::WebSocket(Box::new(ws))
            }
            Transport::Bosh => {
                let endpoint = self
                    .endpoint
                    .clone()
                    .ok_or_else(|| Error::Config("no BOSH URL".into()))?;
                // Several HTTPS connections carry one session: no channel
                // binding.
                Connection::Bosh(
                    bosh::Bosh::open(
                        bosh::Dialer {
                            address,
                            name: self.tls_name.clone(),
                            connector: self.connector.clone(),
                            endpoint,
                            domain: self.jid.domain().to_string(),
                            local_address: self.local_address,
                        },
                        tcp,
                    )
                    .await?,
                )
            }
        };
        negotiate(connection, stream, &self.connector, self.tls_name.clone()).await
    }
}

async fn negotiate(
    mut connection: Connection,
    mut stream: ClientStream,
    connector: &tokio_rustls::TlsConnector,
    name: ServerName<'static>,
) -> Result<Established, Error> {
    let mut buffer = vec![0; 16 * 1024];
    let mut inbox = VecDeque::new();
    let mut mechanism = String::new();
    let mut bound = None;
    let mut resumption = None;
    loop {
        let mut start_tls = false;
        while let Some(action) = stream.poll_action() {
            match action {
                proto::Action::Send(data) => {
                    if let Err(error) = connection.send(data).await {
                        // A stream the server already ended (BOSH closes
                        // its session with a SASL failure) says why in the
                        // actions that follow: that is the better error.
                        return Err(closing_error(&mut stream).unwrap_or(error));
                    }
                }
                proto::Action::StartTls => start_tls = true,
                proto::Action::Authenticated { mechanism: used } => mechanism = used,
                proto::Action::Bound(jid) => bound = Some(jid),
                proto::Action::Resumed { handled } => resumption = Some(Ok(handled)),
                proto::Action::ResumeFailed { handled } => resumption = Some(Err(handled)),
                proto::Action::Stanza(stanza) => inbox.push_back(stanza),
                proto::Action::Close(Err(error)) => return Err(Error::Stream(error)),
                proto::Action::Close(Ok(())) => return Err(Error::Stream(ClientError::Closed)),
            }
        }
        connection.flush().await?;
        if let Some(jid) = bound {
            return Ok(Established {
                connection,
                stream,
                jid,
                mechanism,
                inbox,
                resumption,
            });
        }
        if start_tls {
            let Connection::Plain(tcp) = std::mem::replace(&mut connection, Connection::Gone)
            else {
                return Err(Error::Tls("STARTTLS on an encrypted stream".into()));
            };
            let tls = connector
                .connect(name.clone(), tcp)
                .await
                .map_err(|e| Error::Tls(e.to_string()))?;
            let binding = transport::channel_binding(tls.get_ref().1);
            connection = Connection::Tls(Box::new(tls));
            stream.tls_established(binding);
            continue;
        }
        match connection.read(&mut buffer).await? {
            Input::Bytes(n) => stream.receive(&buffer[..n]),
            Input::Elements(elements) => {
                for element in elements {
                    stream.receive_element(element);
                }
            }
            Input::Closed => return Err(Error::Stream(ClientError::Closed)),
        }
    }
}

/// The error among the actions still waiting, if the stream ended with one.
fn closing_error(stream: &mut ClientStream) -> Option<Error> {
    while let Some(action) = stream.poll_action() {
        if let proto::Action::Close(Err(error)) = action {
            return Some(Error::Stream(error));
        }
    }
    None
}

/// Whether `element` answers the IQ request `id` that was sent to `to` by
/// the account `own`: the answer comes from the addressee, or, for
/// requests to the account itself, from the account or its server.
fn answers(element: &Element, id: &str, to: Option<&Jid>, own: &BareJid) -> bool {
    if !element.is("iq", ns::CLIENT)
        || element.attribute("id") != Some(id)
        || !matches!(element.attribute("type"), Some("result" | "error"))
    {
        return false;
    }
    let to_own_account = to.is_none_or(|to| to.node().is_some() && to.to_bare() == *own);
    match element.attribute("from").map(Jid::new) {
        None => to_own_account,
        Some(Err(_)) => false,
        Some(Ok(from)) => {
            Some(&from) == to
                || (to_own_account && from.resource().is_none() && from.to_bare() == *own)
                || (to.is_none() && from.node().is_none() && from.domain() == own.domain())
        }
    }
}

/// A logged-in, bound client.
pub struct Client {
    prepared: Arc<Prepared>,
    connection: Connection,
    stream: ClientStream,
    jid: FullJid,
    mechanism: String,
    inbox: VecDeque<Element>,
    buffer: Vec<u8>,
    /// Input read by [`Client::readable`], not yet processed.
    pending: Option<Input>,
    closed: bool,
    /// With stream management: what was sent and not acknowledged yet.
    unacked: VecDeque<Element>,
    /// Messages already received, to drop what comes twice.
    seen: Seen,
    /// The last reconnection resumed the session.
    resumed: bool,
}

/// The keys of the messages received lately (XEP-0359): a server's stanza
/// id for this account, a sender's origin id. A message can come twice
/// when a connection or the server died before an acknowledgement
/// arrived (XEP-0198 delivers at least once); the second is dropped.
#[derive(Debug, Default)]
struct Seen {
    keys: std::collections::HashSet<String>,
    order: VecDeque<String>,
}

/// Message keys remembered.
const SEEN_KEYS: usize = 20_000;

impl Seen {
    /// Whether `stanza` was received before; remembers it.
    fn repeated(&mut self, stanza: &Element, own: &BareJid) -> bool {
        if stanza.name() != "message" {
            return false;
        }
        let mut keys = Vec::new();
        for child in stanza.children() {
            if child.is("stanza-id", NS_SID) && child.attribute("by") == Some(own.as_str()) {
                keys.extend(child.attribute("id").map(|id| format!("s {id}")));
            }
            if child.is("origin-id", NS_SID) {
                let from = stanza
                    .attribute("from")
                    .and_then(|f| Jid::new(f).ok())
                    .map(|f| f.to_bare().to_string())
                    .unwrap_or_default();
                keys.extend(child.attribute("id").map(|id| format!("o {from} {id}")));
            }
        }
        if keys.iter().any(|key| self.keys.contains(key)) {
            return true;
        }
        for key in keys {
            if self.keys.insert(key.clone()) {
                self.order.push_back(key);
            }
        }
        while self.order.len() > SEEN_KEYS {
            if let Some(old) = self.order.pop_front() {
                self.keys.remove(&old);
            }
        }
        false
    }
}

/// XEP-0359: unique and stable stanza ids.
const NS_SID: &str = "urn:xmpp:sid:0";

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("jid", &self.jid)
            .field("transport", &self.prepared.transport)
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Starts building a client for this account (`user@domain`), or for
    /// an anonymous login to a domain (`domain` alone: SASL ANONYMOUS).
    pub fn builder(jid: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            jid: jid.into(),
            address: None,
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
        }
    }

    fn from_parts(prepared: Arc<Prepared>, established: Established) -> Self {
        Self {
            prepared,
            connection: established.connection,
            stream: established.stream,
            jid: established.jid,
            mechanism: established.mechanism,
            inbox: established.inbox,
            buffer: vec![0; 16 * 1024],
            pending: None,
            closed: false,
            unacked: VecDeque::new(),
            seen: Seen::default(),
            resumed: false,
        }
    }

    /// The bound full JID.
    pub fn jid(&self) -> String {
        self.jid.to_string()
    }

    /// The bound full JID, typed.
    pub fn full_jid(&self) -> &FullJid {
        &self.jid
    }

    /// The SASL mechanism that logged in.
    pub fn mechanism(&self) -> &str {
        &self.mechanism
    }

    /// The transport.
    pub fn transport(&self) -> Transport {
        self.prepared.transport
    }

    /// The negotiated TLS version (`TLSv1_3`…).
    pub fn tls_version(&self) -> String {
        self.connection.tls_version()
    }

    /// The SASL mechanisms the server offered, in its order.
    pub fn offered_mechanisms(&self) -> &[String] {
        self.stream.offered_mechanisms()
    }

    /// Sends a stanza.
    ///
    /// A message gets an XEP-0359 origin id (its `id`, given one if it
    /// has none), by which its addressee tells a copy sent again from
    /// the original.
    pub async fn send(&mut self, stanza: &Element) -> Result<(), Error> {
        if self.closed {
            return Err(Error::Stream(ClientError::Closed));
        }
        let mut owned;
        let mut stanza = stanza;
        if stanza.name() == "message" && !stanza.has_child("origin-id", NS_SID) {
            owned = stanza.clone();
            let id = match owned.attribute("id") {
                Some(id) if !id.is_empty() => id.to_owned(),
                _ => {
                    let id = random_id();
                    owned.set_attribute("id", id.clone());
                    id
                }
            };
            owned.push_child(Element::new("origin-id", NS_SID).with_attribute("id", id));
            stanza = &owned;
        }
        self.stream.send_stanza(stanza);
        if self.stream.acks().is_some() {
            self.unacked.push_back(stanza.clone());
        }
        self.pump().await
    }

    /// The earlier session, for a resumption on the next connection.
    fn resumption(&self) -> Option<proto::Resumption> {
        let id = self.stream.resumption_id()?;
        let acks = self.stream.acks()?;
        Some(proto::Resumption {
            jid: self.jid.clone(),
            id: id.to_owned(),
            received: acks.received,
        })
    }

    /// Whether the last [`Self::reconnect`] resumed the earlier session
    /// (XEP-0198): its resource and presence are as they were. Otherwise
    /// a new session was bound, and its presence is still to be sent.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// With stream management: the id under which the server keeps this
    /// session for a while if the connection drops (XEP-0198), so that
    /// [`Self::reconnect`] resumes it.
    pub fn resumption_id(&self) -> Option<&str> {
        self.stream.resumption_id()
    }

    /// With stream management: how many stanzas sent are not yet
    /// acknowledged by the server.
    pub fn unacknowledged(&self) -> usize {
        self.unacked.len()
    }

    /// Whether the server enabled stream management (XEP-0198) on this
    /// connection.
    pub fn stream_management(&self) -> bool {
        self.stream.acks().is_some()
    }

    /// With stream management, asks the server to acknowledge what was
    /// sent and waits (at most `timeout`) until it has acknowledged all
    /// of it. Stanzas that arrive meanwhile are kept for [`Self::recv`].
    /// Without, returns at once.
    pub async fn wait_acknowledged(&mut self, timeout: Duration) -> Result<(), Error> {
        if self.unacked.is_empty() {
            return Ok(());
        }
        self.stream.request_ack();
        self.pump().await?;
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.unacked.is_empty() {
            tokio::time::timeout_at(deadline, self.read_once())
                .await
                .map_err(|_| Error::Timeout)??;
        }
        Ok(())
    }

    /// Sends a message.
    pub async fn send_message(&mut self, message: &Message) -> Result<(), Error> {
        self.send(&message.to_element()).await
    }

    /// Sends a presence (the first available one makes this resource
    /// receive messages and presence).
    pub async fn send_presence(&mut self, presence: &Presence) -> Result<(), Error> {
        self.send(&presence.to_element()).await
    }

    /// The next stanza from the server; `Err` when the stream ended.
    pub async fn recv(&mut self) -> Result<Element, Error> {
        loop {
            if let Some(stanza) = self.inbox.pop_front() {
                return Ok(stanza);
            }
            self.read_once().await?;
        }
    }

    /// The next stanza, typed.
    pub async fn recv_stanza(&mut self) -> Result<Stanza, Error> {
        loop {
            if let Some(stanza) = Stanza::from_element(self.recv().await?) {
                return Ok(stanza);
            }
        }
    }

    /// Sends an IQ request (`get` or `set`) and waits for its answer, at
    /// most the builder's timeout. Stanzas that arrive meanwhile are kept
    /// for [`Self::recv`]. An `error` answer is [`Error::Iq`].
    pub async fn iq(&mut self, request: Iq) -> Result<Iq, Error> {
        let timeout = self.prepared.timeout;
        self.iq_with_timeout(request, timeout).await
    }

    /// [`Self::iq`] with its own timeout.
    pub async fn iq_with_timeout(
        &mut self,
        mut request: Iq,
        timeout: Duration,
    ) -> Result<Iq, Error> {
        if request.id.is_empty() {
            request.id = random_id();
        }
        if !matches!(request.kind, IqType::Get | IqType::Set) {
            return Err(Error::Config("only get and set IQs are requests".into()));
        }
        self.send(&request.to_element()).await?;
        let id = request.id.clone();
        let to = request.to.clone();
        let own = self.jid.to_bare();
        let is_answer = move |element: &Element| answers(element, &id, to.as_ref(), &own);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = 0;
        loop {
            if let Some(position) = self.inbox.iter().skip(seen).position(&is_answer) {
                let index = seen + position;
                let answer = self.inbox.remove(index).ok_or(Error::Timeout)?;
                let iq = Iq::from_element(&answer)
                    .ok_or_else(|| Error::Protocol("malformed IQ answer".into()))?;
                if iq.kind == IqType::Error {
                    return Err(Error::Iq(StanzaError::from_stanza(&answer).unwrap_or_else(
                        || StanzaError::new(StanzaCondition::UndefinedCondition),
                    )));
                }
                return Ok(iq);
            }
            seen = self.inbox.len();
            tokio::time::timeout_at(deadline, self.read_once())
                .await
                .map_err(|_| Error::Timeout)??;
        }
    }

    /// Whether the stream has ended (closed by either side).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Connects again with the same settings after the stream ended,
    /// waiting between attempts as `backoff` says. Stanzas not yet read
    /// from the old stream are kept. Refusals (wrong password, revoked
    /// certificate…) end the attempts at once.
    pub async fn reconnect(&mut self, backoff: Backoff) -> Result<(), Error> {
        // A session whose connection dropped may be resumed; one we end
        // here is gone.
        let resume = self.resumption().filter(|_| self.closed);
        if !self.closed {
            self.stream.close();
            let _ = self.pump().await;
            self.connection.shutdown().await;
        }
        let acknowledged = self.stream.acks().map(|acks| acks.acknowledged);
        let mut last = Error::Timeout;
        for attempt in 0..backoff.attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(backoff.delay(attempt - 1)).await;
            }
            match self.prepared.connect(resume.clone()).await {
                Ok(established) => {
                    let resumed = matches!(established.resumption, Some(Ok(_)));
                    let handled = match established.resumption {
                        Some(Ok(handled) | Err(Some(handled))) => Some(handled),
                        _ => None,
                    };
                    let mut inbox = std::mem::take(&mut self.inbox);
                    let mut unacked = std::mem::take(&mut self.unacked);
                    let seen = std::mem::take(&mut self.seen);
                    // What the server says it handled is not sent again. An
                    // `h` outside what was sent is the server's mistake:
                    // then everything goes again.
                    if let (Some(handled), Some(acknowledged)) = (handled, acknowledged) {
                        let done = handled.wrapping_sub(acknowledged) as usize;
                        if done <= unacked.len() {
                            unacked.drain(..done);
                        }
                    }
                    let prepared = self.prepared.clone();
                    *self = Self::from_parts(prepared, established);
                    self.seen = seen;
                    self.resumed = resumed;
                    // What the server sent again on a resumed session
                    // comes after what was already read.
                    for stanza in std::mem::take(&mut self.inbox) {
                        if !self.seen.repeated(&stanza, &self.prepared.jid) {
                            inbox.push_back(stanza);
                        }
                    }
                    self.inbox = inbox;
                    // The rest goes again (a message keeps its origin id,
                    // so its addressee can tell a copy).
                    for stanza in unacked {
                        self.send(&stanza).await?;
                    }
                    return Ok(());
                }
                Err(error) if error.is_transient() => last = error,
                Err(error) => return Err(error),
            }
        }
        Err(last)
    }

    /// Ends the stream cleanly.
    pub async fn close(mut self) {
        if !self.closed {
            self.stream.close();
            let _ = self.pump().await;
        }
        self.connection.shutdown().await;
    }

    /// Waits until the server has sent something (or the stream ended),
    /// without processing it. Unlike [`Self::recv`] this is cancel-safe,
    /// for `tokio::select!` loops; call [`Self::recv`] or
    /// [`Self::try_recv`] afterwards.
    pub async fn readable(&mut self) -> Result<(), Error> {
        if !self.inbox.is_empty() || self.pending.is_some() {
            return Ok(());
        }
        if self.closed {
            return Err(Error::Stream(ClientError::Closed));
        }
        match self.connection.read(&mut self.buffer).await {
            Ok(input) => {
                self.pending = Some(input);
                Ok(())
            }
            Err(error) => {
                self.closed = true;
                Err(error)
            }
        }
    }

    /// A stanza that already arrived, if any: processes what
    /// [`Self::readable`] read, without waiting for more.
    pub async fn try_recv(&mut self) -> Result<Option<Element>, Error> {
        if self.inbox.is_empty() && self.pending.is_some() {
            self.process().await?;
        }
        Ok(self.inbox.pop_front())
    }

    /// Reads and processes one input from the server (what
    /// [`Self::readable`] read already, else the next), whatever the inbox
    /// holds.
    async fn read_once(&mut self) -> Result<(), Error> {
        if self.pending.is_none() {
            if self.closed {
                return Err(Error::Stream(ClientError::Closed));
            }
            match self.connection.read(&mut self.buffer).await {
                Ok(input) => self.pending = Some(input),
                Err(error) => {
                    self.closed = true;
                    return Err(error);
                }
            }
        }
        self.process().await
    }

    async fn process(&mut self) -> Result<(), Error> {
        let Some(input) = self.pending.take() else {
            return Ok(());
        };
        match input {
            Input::Bytes(n) => self.stream.receive(&self.buffer[..n]),
            Input::Elements(elements) => {
                for element in elements {
                    self.stream.receive_element(element);
                }
            }
            Input::Closed => {
                self.closed = true;
                return Err(Error::Stream(ClientError::Closed));
            }
        }
        self.pump().await
    }

    async fn pump(&mut self) -> Result<(), Error> {
        let mut result = Ok(());
        while let Some(action) = self.stream.poll_action() {
            match action {
                // After a failed write the rest is still read: stanzas
                // already counted as received (XEP-0198 `h`) must reach
                // the inbox.
                proto::Action::Send(_) if self.closed => {}
                proto::Action::Send(data) => {
                    if let Err(error) = self.connection.send(data).await {
                        self.closed = true;
                        result = Err(error);
                    }
                }
                proto::Action::Stanza(stanza) => {
                    if !self.seen.repeated(&stanza, &self.prepared.jid) {
                        self.inbox.push_back(stanza);
                    }
                }
                proto::Action::Close(outcome) => {
                    self.closed = true;
                    if let Err(error) = outcome
                        && result.is_ok()
                    {
                        result = Err(Error::Stream(error));
                    }
                }
                proto::Action::StartTls
                | proto::Action::Authenticated { .. }
                | proto::Action::Resumed { .. }
                | proto::Action::ResumeFailed { .. }
                | proto::Action::Bound(_) => {}
            }
        }
        if let Some(acks) = self.stream.acks() {
            let outstanding = acks.sent.wrapping_sub(acks.acknowledged) as usize;
            while self.unacked.len() > outstanding {
                self.unacked.pop_front();
            }
        }
        if let Err(error) = self.connection.flush().await {
            self.closed = true;
            return Err(error);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_seen_before_by_either_id_is_repeated() {
        let own = BareJid::new("bob@example.org").unwrap();
        let message = |from: &str, origin: Option<&str>, stanza_id: Option<(&str, &str)>| {
            let mut m = Element::new("message", ns::CLIENT).with_attribute("from", from);
            if let Some(id) = origin {
                m.push_child(Element::new("origin-id", NS_SID).with_attribute("id", id));
            }
            if let Some((by, id)) = stanza_id {
                m.push_child(
                    Element::new("stanza-id", NS_SID)
                        .with_attribute("by", by)
                        .with_attribute("id", id),
                );
            }
            m
        };
        let mut seen = Seen::default();
        let first = message("alice@example.org/a", Some("1"), None);
        assert!(!seen.repeated(&first, &own));
        // Sent again from another resource of the same sender.
        assert!(seen.repeated(&message("alice@example.org/b", Some("1"), None), &own));
        // The same origin id from someone else is another message.
        assert!(!seen.repeated(&message("carol@example.org/a", Some("1"), None), &own));
        // A stored copy: known by the server's stanza id, ours only.
        let stored = message(
            "dave@example.org/a",
            None,
            Some(("bob@example.org", "offline-7")),
        );
        assert!(!seen.repeated(&stored, &own));
        assert!(seen.repeated(&stored, &own));
        let foreign = message("dave@example.org/a", None, Some(("muc@example.org", "x")));
        assert!(!seen.repeated(&foreign, &own));
        assert!(!seen.repeated(&foreign, &own));
        // Messages without ids, and other stanzas, are never repeats.
        let plain = message("alice@example.org/a", None, None);
        assert!(!seen.repeated(&plain, &own));
        assert!(!seen.repeated(&plain, &own));
    }

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

    #[test]
    fn endpoints_parse() {
        let e = Endpoint::parse(
            "wss://chat.example.org:5281/xmpp-websocket",
            Transport::WebSocket,
        )
        .unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("chat.example.org", 5281, "/xmpp-websocket")
        );
        assert_eq!(e.authority(), "chat.example.org:5281");
        let e = Endpoint::parse("https://[::1]/http-bind", Transport::Bosh).unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 443));
        assert_eq!(e.url(), "https://[::1]/http-bind");
        let e = Endpoint::parse("wss://example.org", Transport::WebSocket).unwrap();
        assert_eq!(e.path, "/");
        for bad in [
            "ws://example.org/",
            "wss://:5281/",
            "wss://example.org:http/",
            "wss://user@example.org/",
            "wss://[::1/",
        ] {
            assert!(Endpoint::parse(bad, Transport::WebSocket).is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            attempts: 5,
        };
        for n in 0..10 {
            let full = Duration::from_millis(100 * (1 << n)).min(Duration::from_secs(1));
            let delay = backoff.delay(n);
            assert!(delay <= full && delay >= full * 3 / 4, "{n}: {delay:?}");
        }
    }
}
