//! An async XMPP client whose SASL layer is Strophe.js's, in Rust:
//! pluggable, prioritised, allow-listed mechanisms from [`sigil_sasl`],
//! EXTERNAL with a TLS client certificate first whenever one is given.
//!
//! This first cut connects over TCP with STARTTLS or with direct TLS
//! (XEP-0368) to an explicit address; WebSocket, BOSH and DNS SRV lookup
//! come next. The negotiation is [`sigil_proto::client::ClientStream`];
//! this crate adds sockets, TLS and timeouts.
//!
//! ```no_run
//! # async fn run() -> Result<(), sigil_client::Error> {
//! use sigil_client::{Client, Transport};
//! let mut client = Client::builder("juliet@example.org")
//!     .address("127.0.0.1:5222".parse().unwrap())
//!     .transport(Transport::StartTls)
//!     .password("r0m30")
//!     .connect()
//!     .await?;
//! println!("bound {} with {}", client.jid(), client.mechanism());
//! client.close().await;
//! # Ok(()) }
//! ```

mod transport;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jid::{BareJid, FullJid};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sigil_proto::client::{self as proto, ClientError, ClientStream, ClientStreamConfig};
use sigil_sasl::client::{ClientConfig, ClientContext};
use sigil_xml::Element;
use tokio::net::TcpStream;

pub use transport::Transport;
use transport::Wire;

/// Why a connection failed or ended.
#[derive(Debug)]
pub enum Error {
    /// The configuration is incomplete or invalid.
    Config(String),
    /// Connecting or reading/writing the socket failed.
    Io(std::io::Error),
    /// The TLS handshake failed (certificate not trusted, refused client
    /// certificate…).
    Tls(String),
    /// The XMPP stream failed: stream error, SASL failure, bind error.
    Stream(ClientError),
    /// No answer in time.
    Timeout,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(detail) => write!(f, "configuration: {detail}"),
            Self::Io(error) => write!(f, "connection: {error}"),
            Self::Tls(detail) => write!(f, "TLS: {detail}"),
            Self::Stream(error) => error.fmt(f),
            Self::Timeout => f.write_str("timed out"),
        }
    }
}

impl std::error::Error for Error {}

/// How the server's certificate is checked.
#[derive(Clone, Debug)]
enum Trust {
    /// These CA (or self-signed) certificates, DER.
    Anchors(Vec<CertificateDer<'static>>),
    /// Exactly the certificate with this SHA-256 fingerprint.
    Pinned([u8; 32]),
}

/// Builds a [`Client`].
pub struct ClientBuilder {
    jid: String,
    address: Option<SocketAddr>,
    transport: Transport,
    password: Option<String>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    trust: Option<Trust>,
    sasl: ClientConfig,
    resource: Option<String>,
    timeout: Duration,
    error: Option<String>,
}

impl ClientBuilder {
    /// The server's address (DNS SRV lookup is not done yet).
    #[must_use]
    pub fn address(mut self, address: SocketAddr) -> Self {
        self.address = Some(address);
        self
    }

    /// STARTTLS (default) or direct TLS.
    #[must_use]
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
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

    /// Trusts the CA (or self-signed server) certificates in this PEM.
    #[must_use]
    pub fn trust_pem(mut self, pem: &[u8]) -> Self {
        match CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>() {
            Ok(anchors) if !anchors.is_empty() => self.trust = Some(Trust::Anchors(anchors)),
            _ => self.error = Some("the trusted certificates are not valid PEM".into()),
        }
        self
    }

    /// Accepts exactly the server certificate with this SHA-256 fingerprint.
    #[must_use]
    pub fn pin_sha256(mut self, fingerprint: [u8; 32]) -> Self {
        self.trust = Some(Trust::Pinned(fingerprint));
        self
    }

    /// The SASL mechanisms: the registry with custom mechanisms and an
    /// allow-list (default: the built-ins).
    #[must_use]
    pub fn sasl(mut self, config: ClientConfig) -> Self {
        self.sasl = config;
        self
    }

    /// The resource to ask for (default: the server picks).
    #[must_use]
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// The time allowed to connect and log in (default 30 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connects, negotiates TLS and SASL, and binds a resource.
    pub async fn connect(self) -> Result<Client, Error> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.connect_inner())
            .await
            .map_err(|_| Error::Timeout)?
    }

    async fn connect_inner(self) -> Result<Client, Error> {
        if let Some(error) = self.error {
            return Err(Error::Config(error));
        }
        let jid =
            BareJid::new(&self.jid).map_err(|e| Error::Config(format!("{:?}: {e}", self.jid)))?;
        let node = jid
            .node()
            .ok_or_else(|| Error::Config("the JID has no user name".into()))?;
        let address = self
            .address
            .ok_or_else(|| Error::Config("no server address".into()))?;
        let trust = self.trust.ok_or_else(|| {
            Error::Config("no way to check the server certificate (trust_pem or pin_sha256)".into())
        })?;
        let has_identity = self.identity.is_some();
        let tls = transport::tls_config(trust, self.identity).map_err(Error::Tls)?;
        let mut context = ClientContext::new()
            .with_authcid(node.to_string())
            .with_client_certificate(has_identity);
        if let Some(password) = &self.password {
            context = context.with_password(password.clone());
        }
        let config = ClientStreamConfig {
            jid: jid.clone(),
            resource: self.resource.clone(),
            tls: match self.transport {
                Transport::DirectTls => proto::TlsMode::Direct,
                Transport::StartTls => proto::TlsMode::Required,
            },
            sasl: Arc::new(self.sasl),
            context,
            limits: sigil_xml::Limits::default(),
        };
        let tcp = TcpStream::connect(address).await.map_err(Error::Io)?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(jid.domain().to_string())
            .map_err(|e| Error::Config(e.to_string()))?;
        let connector = tokio_rustls::TlsConnector::from(tls);
        let mut stream = ClientStream::new(config);
        let wire = match self.transport {
            Transport::DirectTls => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| Error::Tls(e.to_string()))?;
                stream.set_channel_binding(transport::channel_binding(tls.get_ref().1));
                Wire::Tls(Box::new(tls))
            }
            Transport::StartTls => Wire::Plain(tcp),
        };
        let mut client = Client {
            wire,
            stream,
            jid: None,
            mechanism: String::new(),
            inbox: std::collections::VecDeque::new(),
            buffer: vec![0; 16 * 1024],
            transport: self.transport,
        };
        client.negotiate(&connector, name).await?;
        Ok(client)
    }
}

/// A logged-in, bound client.
pub struct Client {
    wire: Wire,
    stream: ClientStream,
    jid: Option<FullJid>,
    mechanism: String,
    inbox: std::collections::VecDeque<Element>,
    buffer: Vec<u8>,
    transport: Transport,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("jid", &self.jid)
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Starts building a client for this account (`user@domain`).
    pub fn builder(jid: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            jid: jid.into(),
            address: None,
            transport: Transport::StartTls,
            password: None,
            identity: None,
            trust: None,
            sasl: ClientConfig::new(),
            resource: None,
            timeout: Duration::from_secs(30),
            error: None,
        }
    }

    /// The bound full JID.
    pub fn jid(&self) -> String {
        self.jid
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    /// The SASL mechanism that logged in.
    pub fn mechanism(&self) -> &str {
        &self.mechanism
    }

    /// The transport.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The negotiated TLS version (`TLSv1_3`…).
    pub fn tls_version(&self) -> String {
        self.wire.tls_version()
    }

    /// Sends a stanza.
    pub async fn send(&mut self, stanza: &Element) -> Result<(), Error> {
        self.stream.send_stanza(stanza);
        self.pump().await
    }

    /// The next stanza from the server; `Err` when the stream ended.
    pub async fn recv(&mut self) -> Result<Element, Error> {
        loop {
            if let Some(stanza) = self.inbox.pop_front() {
                return Ok(stanza);
            }
            let n = self.wire.read(&mut self.buffer).await.map_err(Error::Io)?;
            if n == 0 {
                return Err(Error::Stream(ClientError::Closed));
            }
            let data = self.buffer[..n].to_vec();
            self.stream.receive(&data);
            self.pump().await?;
        }
    }

    /// Ends the stream cleanly.
    pub async fn close(mut self) {
        self.stream.close();
        let _ = self.pump().await;
        let _ = self.wire.shutdown().await;
    }

    async fn pump(&mut self) -> Result<(), Error> {
        let mut result = Ok(());
        while let Some(action) = self.stream.poll_action() {
            match action {
                proto::Action::Send(data) => self
                    .wire
                    .write_all(data.as_bytes())
                    .await
                    .map_err(Error::Io)?,
                proto::Action::Stanza(stanza) => self.inbox.push_back(stanza),
                proto::Action::Close(Err(error)) => result = Err(Error::Stream(error)),
                proto::Action::Close(Ok(()))
                | proto::Action::StartTls
                | proto::Action::Authenticated { .. }
                | proto::Action::Bound(_) => {}
            }
        }
        self.wire.flush().await.map_err(Error::Io)?;
        result
    }

    async fn negotiate(
        &mut self,
        connector: &tokio_rustls::TlsConnector,
        name: ServerName<'static>,
    ) -> Result<(), Error> {
        loop {
            let mut start_tls = false;
            while let Some(action) = self.stream.poll_action() {
                match action {
                    proto::Action::Send(data) => self
                        .wire
                        .write_all(data.as_bytes())
                        .await
                        .map_err(Error::Io)?,
                    proto::Action::StartTls => start_tls = true,
                    proto::Action::Authenticated { mechanism } => self.mechanism = mechanism,
                    proto::Action::Bound(jid) => self.jid = Some(jid),
                    proto::Action::Stanza(stanza) => self.inbox.push_back(stanza),
                    proto::Action::Close(Err(error)) => return Err(Error::Stream(error)),
                    proto::Action::Close(Ok(())) => return Err(Error::Stream(ClientError::Closed)),
                }
            }
            self.wire.flush().await.map_err(Error::Io)?;
            if self.jid.is_some() {
                return Ok(());
            }
            if start_tls {
                let Wire::Plain(tcp) = std::mem::replace(&mut self.wire, Wire::Gone) else {
                    return Err(Error::Tls("STARTTLS on an encrypted stream".into()));
                };
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| Error::Tls(e.to_string()))?;
                let binding = transport::channel_binding(tls.get_ref().1);
                self.wire = Wire::Tls(Box::new(tls));
                self.stream.tls_established(binding);
                continue;
            }
            let n = self.wire.read(&mut self.buffer).await.map_err(Error::Io)?;
            if n == 0 {
                return Err(Error::Stream(ClientError::Closed));
            }
            let data = self.buffer[..n].to_vec();
            self.stream.receive(&data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn configuration_errors_are_reported() {
        let missing_address = Client::builder("a@example.org")
            .pin_sha256([0; 32])
            .connect()
            .await;
        assert!(
            matches!(missing_address, Err(Error::Config(_))),
            "{missing_address:?}"
        );
        let missing_trust = Client::builder("a@example.org")
            .address("127.0.0.1:1".parse().unwrap())
            .connect()
            .await;
        assert!(
            matches!(missing_trust, Err(Error::Config(_))),
            "{missing_trust:?}"
        );
        let bad_jid = Client::builder("not a jid@@").connect().await;
        assert!(matches!(bad_jid, Err(Error::Config(_))), "{bad_jid:?}");
        let bad_pem = Client::builder("a@example.org")
            .trust_pem(b"garbage")
            .connect()
            .await;
        assert!(matches!(bad_pem, Err(Error::Config(_))), "{bad_pem:?}");
    }
}
