//! A test server on loopback and a client that speaks to it over real TCP
//! and real TLS, using sigil-proto's client negotiation.

#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

pub mod raw;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jid::{BareJid, FullJid};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sigil_proto::client::{self, ClientError, ClientStream, ClientStreamConfig};
use sigil_sasl::client::{AllowList, ClientConfig, ClientContext};
use sigil_sasl::{Algorithm, ChannelBinding, ChannelBindingType, StoredCredentials};
use sigil_server::config::{ClientCertificatePolicy, ListenerConfig, ListenerKind};
use sigil_server::{Config, Server};
use sigil_store::Store;
use sigil_xml::Element;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

pub const DOMAIN: &str = "localhost";
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub server: Option<Server>,
    pub config: Config,
}

pub fn config(policy: ClientCertificatePolicy) -> Config {
    let mut config = Config::new(DOMAIN);
    config.listeners = vec![
        ListenerConfig {
            kind: ListenerKind::Starttls,
            address: "127.0.0.1:0".parse().unwrap(),
            client_certificates: policy,
        },
        ListenerConfig {
            kind: ListenerKind::DirectTls,
            address: "127.0.0.1:0".parse().unwrap(),
            client_certificates: policy,
        },
        ListenerConfig {
            kind: ListenerKind::Https,
            address: "127.0.0.1:0".parse().unwrap(),
            client_certificates: policy,
        },
    ];
    config
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(config(ClientCertificatePolicy::Wanted)).await
    }

    pub async fn start_with(config: Config) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (certificate, key) = sigil_server::certificate_paths(&config, dir.path());
        sigil_server::tls::ensure_server_certificate(DOMAIN, &certificate, &key).unwrap();
        let server = Server::start(&config, dir.path()).await.unwrap();
        let this = Self {
            dir,
            server: Some(server),
            config,
        };
        for (name, password) in [
            ("alice", "alice-secret"),
            ("bob", "bob-secret"),
            ("carol", "carol-secret"),
        ] {
            this.add_user(name, password).await;
        }
        this
    }

    pub fn context(&self) -> &Arc<sigil_server::context::Context> {
        self.server.as_ref().unwrap().context()
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.server.as_ref().unwrap().context().store.clone()
    }

    pub async fn add_user(&self, name: &str, password: &str) {
        let credentials: Vec<StoredCredentials> =
            [Algorithm::Sha512, Algorithm::Sha256, Algorithm::Sha1]
                .into_iter()
                .map(|a| StoredCredentials::generate(a, password).unwrap())
                .collect();
        let jid = format!("{name}@{DOMAIN}");
        let _ = self.store().create_account(&jid, &credentials).await;
    }

    pub fn address(&self, kind: ListenerKind) -> SocketAddr {
        self.server.as_ref().unwrap().address(kind).unwrap()
    }

    pub fn certificate(&self) -> PathBuf {
        self.dir.path().join("server.crt")
    }

    /// Stops and starts the server again on the same files (new ports).
    pub async fn restart(&mut self) {
        let server = self.server.take().unwrap();
        let store = server.context().store.clone();
        server.shutdown().await;
        drop(store);
        // Reopen the database (from disk, or the server), as a new process
        // would.
        let store = sigil_server::open_store(&self.config.storage, self.dir.path())
            .await
            .unwrap();
        self.server = Some(
            Server::start_with_store(&self.config, self.dir.path(), store.shared())
                .await
                .unwrap(),
        );
    }

    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

/// A TLS connection to `address` with this client configuration, checking
/// the server's name as the domain.
pub async fn tls_connect(
    address: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(address).await?;
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from(DOMAIN).unwrap(), tcp)
        .await
}

pub fn tls_client_config(
    server_certificate: &Path,
    client_identity: Option<Identity>,
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(server_certificate).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match client_identity {
        Some(Identity(chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    })
}

/// One HTTP/1.1 request to the HTTPS listener over a TLS connection of
/// its own (presenting `identity` if given): the status, the head in
/// lower case, and the body.
pub async fn http_request(
    server: &TestServer,
    identity: Option<Identity>,
    method: &str,
    path: &str,
) -> (u16, String, String) {
    http_exchange(server, identity, method, path, &[], "").await
}

/// [`http_request`] with more headers and a body.
pub async fn http_exchange(
    server: &TestServer,
    identity: Option<Identity>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let config = tls_client_config(&server.certificate(), identity);
    let mut tls = tls_connect(server.address(ListenerKind::Https), config)
        .await
        .unwrap();
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(TIMEOUT, tls.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// A GET request to the HTTPS listener ([`http_request`]).
pub async fn get(
    server: &TestServer,
    identity: Option<Identity>,
    path: &str,
) -> (u16, String, String) {
    http_request(server, identity, "GET", path).await
}

pub enum Transport {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Gone,
}

impl AsyncRead for Transport {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
            Self::Gone => std::task::Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_write(cx, data),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, data),
            Self::Gone => std::task::Poll::Ready(Err(std::io::ErrorKind::NotConnected.into())),
        }
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
            Self::Gone => std::task::Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
            Self::Gone => std::task::Poll::Ready(Ok(())),
        }
    }
}

/// How a test client logs in.
#[derive(Clone)]
pub struct Login {
    pub user: String,
    pub password: String,
    pub resource: Option<String>,
    pub kind: ListenerKind,
    pub mechanisms: Option<Vec<String>>,
    pub client_identity: Option<Identity>,
    pub authzid: Option<String>,
    /// Log in by SASL2 where offered (and Bind 2 without a resource).
    pub sasl2: bool,
    /// The SASL2 user-agent id (default: a fresh one).
    pub agent: Option<String>,
    /// Ask for a FAST token.
    pub request_token: bool,
    /// Log in with this FAST token (mechanism, token); `invalidate` it.
    pub fast_token: Option<(String, String)>,
    pub invalidate: bool,
    /// Bind with channel binding data other than the connection's.
    pub wrong_channel_binding: bool,
}

pub struct Identity(pub Vec<CertificateDer<'static>>, pub PrivateKeyDer<'static>);

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self(self.0.clone(), self.1.clone_key())
    }
}

impl Login {
    pub fn new(user: &str, kind: ListenerKind) -> Self {
        Self {
            user: user.into(),
            password: format!("{user}-secret"),
            resource: Some("test".into()),
            kind,
            mechanisms: None,
            client_identity: None,
            authzid: None,
            sasl2: false,
            agent: None,
            request_token: false,
            fast_token: None,
            invalidate: false,
            wrong_channel_binding: false,
        }
    }

    /// Logs in with a certificate (EXTERNAL only), no password.
    pub fn certificate(user: &str, kind: ListenerKind, identity: Identity) -> Self {
        let mut login = Self::new(user, kind).mechanism("EXTERNAL");
        login.password = String::new();
        login.client_identity = Some(identity);
        login
    }

    pub fn authzid(mut self, authzid: Option<&str>) -> Self {
        self.authzid = authzid.map(str::to_owned);
        self
    }

    pub fn sasl2(mut self, sasl2: bool) -> Self {
        self.sasl2 = sasl2;
        self
    }

    pub fn mechanism(mut self, name: &str) -> Self {
        self.mechanisms = Some(vec![name.into()]);
        self
    }

    pub fn password(mut self, password: &str) -> Self {
        self.password = password.into();
        self
    }

    pub fn resource(mut self, resource: Option<&str>) -> Self {
        self.resource = resource.map(str::to_owned);
        self
    }
}

impl Identity {
    pub fn from_issued(issued: &sigil_x509::generate::Issued) -> Self {
        Self(
            vec![CertificateDer::from(issued.certificate_der.clone())],
            PrivateKeyDer::try_from(issued.key_der()).unwrap(),
        )
    }
}

pub struct TestClient {
    pub io: Transport,
    pub stream: ClientStream,
    pub jid: Option<FullJid>,
    pub mechanism: Option<String>,
    pub inbox: std::collections::VecDeque<Element>,

    pub closed: Option<Result<(), ClientError>>,
    /// The FAST token the server issued (mechanism, token).
    pub fast_token: Option<(String, String)>,
    buffer: Vec<u8>,
}

fn channel_binding(connection: &rustls::ClientConnection) -> Option<ChannelBinding> {
    let mut exported = [0u8; 32];
    connection
        .export_keying_material(&mut exported, b"EXPORTER-Channel-Binding", None)
        .ok()?;
    Some(ChannelBinding::new(
        ChannelBindingType::TlsExporter,
        exported.to_vec(),
    ))
}

impl TestClient {
    /// Connects and negotiates up to the bound resource (or the end).
    pub async fn connect(server: &TestServer, login: Login) -> Self {
        let address = server.address(login.kind);
        let tls = tls_client_config(&server.certificate(), login.client_identity.clone());
        let mut sasl = ClientConfig::new();
        if let Some(names) = &login.mechanisms {
            sasl = sasl.allow(
                names
                    .iter()
                    .fold(AllowList::new(), |list, name| list.name(name.clone())),
            );
        }
        let config = ClientStreamConfig {
            // No user: a client that leaves the account to its
            // certificate (its stream header names none).
            jid: if login.user.is_empty() {
                BareJid::new(DOMAIN).unwrap()
            } else {
                BareJid::new(&format!("{}@{DOMAIN}", login.user)).unwrap()
            },
            resource: login.resource.clone(),
            tls: match login.kind {
                ListenerKind::DirectTls | ListenerKind::Https => client::TlsMode::Direct,
                ListenerKind::Starttls | ListenerKind::Component => client::TlsMode::Required,
            },
            sasl: Arc::new(sasl),
            context: {
                let mut context = ClientContext::new()
                    .with_authcid(login.user.clone())
                    .with_client_certificate(login.client_identity.is_some());
                if !login.password.is_empty() {
                    context = context.with_password(login.password.clone());
                }
                if let Some(authzid) = &login.authzid {
                    context = context.with_authzid(authzid.clone());
                }
                if let Some((mechanism, token)) = &login.fast_token {
                    context = context.with_fast_token(mechanism.clone(), token.clone());
                }
                context
            },
            limits: Default::default(),
            join: None,
            sasl2: login.sasl2,
            user_agent: login.sasl2.then(|| sigil_proto::sasl2::UserAgent {
                id: login.agent.clone().or_else(sigil_proto::sasl2::new_uuid),
                software: Some("sigil-test".into()),
                device: None,
            }),
        };
        let tcp = TcpStream::connect(address).await.unwrap();
        let mut stream = ClientStream::new(config);
        if login.request_token {
            stream.request_fast_token();
        }
        if login.invalidate {
            stream.invalidate_fast_token();
        }
        let wrong_binding = login.wrong_channel_binding;
        let channel_binding = move |connection: &rustls::ClientConnection| {
            if wrong_binding {
                Some(ChannelBinding::new(
                    ChannelBindingType::TlsExporter,
                    vec![0u8; 32],
                ))
            } else {
                channel_binding(connection)
            }
        };
        let connector = tokio_rustls::TlsConnector::from(tls);
        let io = match login.kind {
            ListenerKind::DirectTls | ListenerKind::Https => match connector
                .connect(ServerName::try_from(DOMAIN).unwrap(), tcp)
                .await
            {
                Ok(tls) => {
                    stream.set_channel_binding(channel_binding(tls.get_ref().1));
                    Transport::Tls(Box::new(tls))
                }
                Err(_) => Transport::Gone,
            },
            ListenerKind::Starttls | ListenerKind::Component => Transport::Plain(tcp),
        };
        let mut client = Self {
            io,
            stream,
            jid: None,
            mechanism: None,
            inbox: Default::default(),
            closed: None,
            fast_token: None,
            buffer: vec![0; 65536],
        };
        if matches!(client.io, Transport::Gone) {
            client.closed = Some(Err(ClientError::Protocol("TLS handshake failed".into())));
            return client;
        }
        client.negotiate(connector).await;
        client
    }

    async fn negotiate(&mut self, connector: tokio_rustls::TlsConnector) {
        loop {
            let mut start_tls = false;
            while let Some(action) = self.stream.poll_action() {
                match action {
                    client::Action::Send(data) => {
                        if self
                            .io
                            .write_all(data.to_text(sigil_proto::Framing::Stream).as_bytes())
                            .await
                            .is_err()
                        {
                            self.closed = Some(Err(ClientError::Closed));
                            return;
                        }
                    }
                    client::Action::StartTls => start_tls = true,
                    client::Action::Authenticated { mechanism } => self.mechanism = Some(mechanism),
                    client::Action::Bound(jid) => self.jid = Some(jid),
                    client::Action::FastToken { mechanism, token } => {
                        self.fast_token = Some((mechanism, token.token));
                    }
                    client::Action::Resumed { .. }
                    | client::Action::ResumeFailed { .. }
                    | client::Action::Enrolled { .. } => {}
                    client::Action::Stanza(stanza) => self.inbox.push_back(stanza),
                    client::Action::Close(result) => {
                        self.closed = Some(result);
                        return;
                    }
                }
            }
            if self.jid.is_some() {
                return;
            }
            if start_tls {
                self.io.flush().await.unwrap();
                let Transport::Plain(tcp) = std::mem::replace(&mut self.io, Transport::Gone) else {
                    panic!("STARTTLS twice");
                };
                let Ok(tls) = connector
                    .connect(ServerName::try_from(DOMAIN).unwrap(), tcp)
                    .await
                else {
                    self.closed = Some(Err(ClientError::Protocol("TLS handshake failed".into())));
                    return;
                };
                let binding = channel_binding(tls.get_ref().1);
                self.io = Transport::Tls(Box::new(tls));
                self.stream.tls_established(binding);
                continue;
            }
            let n = match tokio::time::timeout(TIMEOUT, self.io.read(&mut self.buffer)).await {
                Ok(Ok(n)) => n,
                Ok(Err(_)) => 0,
                Err(_) => panic!("negotiation timed out"),
            };
            if n == 0 {
                self.closed = Some(Err(ClientError::Closed));
                return;
            }
            let data = self.buffer[..n].to_vec();
            self.stream.receive(&data);
        }
    }

    pub fn jid(&self) -> String {
        self.jid
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    pub async fn send(&mut self, stanza: Element) {
        self.stream.send_stanza(stanza);
        self.pump_out().await;
    }

    pub async fn send_raw(&mut self, data: &str) {
        self.io.write_all(data.as_bytes()).await.unwrap();
        self.io.flush().await.unwrap();
    }

    async fn pump_out(&mut self) {
        while let Some(action) = self.stream.poll_action() {
            match action {
                client::Action::Send(data) => {
                    let _ = self
                        .io
                        .write_all(data.to_text(sigil_proto::Framing::Stream).as_bytes())
                        .await;
                }
                client::Action::Stanza(stanza) => self.inbox.push_back(stanza),
                client::Action::Close(result) => self.closed = Some(result),
                _ => {}
            }
        }
        let _ = self.io.flush().await;
    }

    /// The next stanza, waiting up to `TIMEOUT`.
    pub async fn recv(&mut self) -> Element {
        self.try_recv(TIMEOUT)
            .await
            .expect("no stanza arrived in time")
    }

    pub async fn try_recv(&mut self, wait: Duration) -> Option<Element> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(stanza) = self.inbox.pop_front() {
                return Some(stanza);
            }
            if self.closed.is_some() {
                return None;
            }
            let n = match tokio::time::timeout_at(deadline, self.io.read(&mut self.buffer)).await {
                Ok(Ok(n)) => n,
                Ok(Err(_)) => 0,
                Err(_) => return None,
            };
            if n == 0 {
                self.closed.get_or_insert(Err(ClientError::Closed));
                return None;
            }
            let data = self.buffer[..n].to_vec();
            self.stream.receive(&data);
            self.pump_out().await;
        }
    }

    /// Waits for a stanza matching `predicate`, skipping others.
    pub async fn recv_matching(&mut self, predicate: impl Fn(&Element) -> bool) -> Element {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let stanza = self
                .try_recv(left)
                .await
                .expect("the expected stanza did not arrive");
            if predicate(&stanza) {
                return stanza;
            }
        }
    }

    /// Waits until the stream ends and returns why.
    pub async fn closed(&mut self) -> Result<(), ClientError> {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        while self.closed.is_none() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if self.try_recv(left).await.is_none() && self.closed.is_none() {
                panic!("the stream did not end");
            }
        }
        self.closed.clone().unwrap()
    }

    pub async fn close(mut self) {
        self.stream.close();
        self.pump_out().await;
    }
}

/// Whether the session answers a ping to the server.
pub async fn answers_a_ping(client: &mut TestClient, id: &str) -> bool {
    client
        .send(
            Element::new("iq", sigil_xml::ns::CLIENT)
                .with_attribute("type", "get")
                .with_attribute("id", id)
                .with_child(Element::new("ping", "urn:xmpp:ping")),
        )
        .await;
    let pong = client
        .recv_matching(|s| s.name() == "iq" && s.attribute("id") == Some(id))
        .await;
    pong.attribute("type") == Some("result")
}

/// A new client certificate for `user`, registered to its account as
/// `name`, with its SHA-256.
pub async fn registered_certificate(
    store: &dyn Store,
    user: &str,
    name: &str,
) -> (sigil_x509::generate::Issued, [u8; 32]) {
    use sigil_x509::OffsetDateTime;
    let owner = format!("{user}@{DOMAIN}");
    let issued = sigil_x509::generate::client_certificate(
        &[sigil_x509::Jid::new(&owner).unwrap()],
        &sigil_x509::generate::Options::new(OffsetDateTime::now_utc()),
        None,
    )
    .unwrap();
    let info = sigil_x509::CertificateInfo::from_der(&issued.certificate_der).unwrap();
    store
        .add_certificate(&sigil_store::CertificateEntry {
            owner,
            name: name.into(),
            fingerprint: info.sha256,
            der: issued.certificate_der.clone(),
            no_cert_management: false,
            disabled: false,
            added_at: OffsetDateTime::now_utc().unix_timestamp(),
        })
        .await
        .unwrap();
    (issued, info.sha256)
}
