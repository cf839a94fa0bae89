//! Connecting and logging in: finding the server, opening the transport
//! (TCP, TLS, WebSocket or BOSH), and driving
//! [`sigil_proto::client::ClientStream`]'s negotiation (STARTTLS, SASL,
//! resumption or bind) until the stream is ready for stanzas.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jid::{BareJid, FullJid};
use rustls_pki_types::ServerName;
use sigil_proto::client::{self as proto, ClientError, ClientStream, ClientStreamConfig};
use sigil_sasl::client::{ClientConfig, ClientContext};
use sigil_xml::Element;

use crate::connection::{Connection, Input};
use crate::transport::{self, Endpoint, Transport};
use crate::{Error, bosh, srv};

/// Everything needed to (re)connect, checked once.
pub(crate) struct Prepared {
    pub(crate) jid: BareJid,
    /// Addresses given instead of a lookup, tried in order.
    pub(crate) addresses: Vec<SocketAddr>,
    pub(crate) transport: Transport,
    pub(crate) endpoint: Option<Endpoint>,
    pub(crate) tls_name: ServerName<'static>,
    pub(crate) connector: tokio_rustls::TlsConnector,
    pub(crate) sasl: Arc<ClientConfig>,
    pub(crate) context: ClientContext,
    pub(crate) resource: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) dns_server: Option<SocketAddr>,
    pub(crate) local_address: Option<std::net::IpAddr>,
    pub(crate) stream_management: bool,
    /// Carbons asked for (inline with Bind 2 where it binds).
    pub(crate) carbons: bool,
    pub(crate) sasl2: bool,
    pub(crate) user_agent: sigil_proto::sasl2::UserAgent,
    /// Ask for a FAST token, and the one kept (used by the next login).
    pub(crate) fast: bool,
    pub(crate) token: Arc<std::sync::Mutex<Option<crate::FastToken>>>,
}

/// A connection that completed negotiation.
pub(crate) struct Established {
    pub(crate) connection: Connection,
    pub(crate) stream: ClientStream,
    pub(crate) jid: FullJid,
    pub(crate) mechanism: String,
    pub(crate) inbox: VecDeque<Element>,
    /// With an earlier session to resume: `Ok(h)` resumed, `Err(h)` a new
    /// session (with the server's `h` for the earlier one if it said).
    pub(crate) resumption: Option<Result<u32, Option<u32>>>,
    /// Times the login waited for the server after sending (its round
    /// trips, TLS handshakes apart).
    pub(crate) round_trips: u32,
}

impl Prepared {
    /// Connects and logs in: resuming `resume` if given, joining by
    /// invitation first with `join`.
    pub(crate) async fn connect(
        &self,
        resume: Option<proto::Resumption>,
        join: Option<proto::JoinRequest>,
    ) -> Result<Established, Error> {
        let with_token = self.kept_token().is_some();
        let attempt = tokio::time::timeout(
            self.timeout,
            self.connect_inner(resume.clone(), join.clone()),
        )
        .await
        .map_err(|_| Error::Timeout)?;
        match attempt {
            // XEP-0484: a token the server refused is dropped, and the
            // login tried again without it (any other failure, the
            // server's own proof among them, stands).
            Err(Error::Stream(ClientError::FastTokenRefused(_))) if with_token => {
                self.keep_token(None);
                tokio::time::timeout(self.timeout, self.connect_inner(resume, join))
                    .await
                    .map_err(|_| Error::Timeout)?
            }
            attempt => attempt,
        }
    }

    /// The FAST token kept, if any.
    pub(crate) fn kept_token(&self) -> Option<crate::FastToken> {
        self.token.lock().ok().and_then(|kept| kept.clone())
    }

    fn keep_token(&self, token: Option<crate::FastToken>) {
        if let Ok(mut kept) = self.token.lock() {
            *kept = token;
        }
    }

    /// The addresses to try, in order.
    async fn resolve(&self) -> Result<Vec<SocketAddr>, Error> {
        if !self.addresses.is_empty() {
            return Ok(self.addresses.clone());
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

    /// Connects TCP to the first address that answers. An address that
    /// neither answers nor refuses (a host gone) is given a quarter of
    /// the login's time, so that the next ones still get theirs.
    async fn connect_tcp(&self) -> Result<(tokio::net::TcpStream, SocketAddr), Error> {
        let mut last = None;
        let patience = (self.timeout / 4).max(Duration::from_millis(100));
        for address in self.resolve().await? {
            let attempt = tokio::time::timeout(
                patience,
                transport::connect_tcp(address, self.local_address),
            )
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
            match attempt {
                Ok(tcp) => {
                    let _ = tcp.set_nodelay(true);
                    return Ok((tcp, address));
                }
                Err(error) => {
                    last = Some(std::io::Error::new(
                        error.kind(),
                        format!("{address}: {error}"),
                    ))
                }
            }
        }
        Err(Error::Io(last.unwrap_or_else(|| {
            std::io::ErrorKind::AddrNotAvailable.into()
        })))
    }

    async fn connect_inner(
        &self,
        resume: Option<proto::Resumption>,
        join: Option<proto::JoinRequest>,
    ) -> Result<Established, Error> {
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
            context: match self.kept_token() {
                Some(kept) => self
                    .context
                    .clone()
                    .with_fast_token(kept.mechanism, kept.token),
                None => self.context.clone(),
            },
            limits: sigil_xml::Limits::default(),
            join,
            sasl2: self.sasl2,
            user_agent: Some(self.user_agent.clone()),
        };
        let mut stream = ClientStream::new(config);
        if self.carbons {
            stream.request_carbons();
        }
        if self.fast {
            stream.request_fast_token();
        }
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
        negotiate(connection, stream, self).await
    }
}

async fn negotiate(
    mut connection: Connection,
    mut stream: ClientStream,
    prepared: &Prepared,
) -> Result<Established, Error> {
    let (connector, name) = (&prepared.connector, prepared.tls_name.clone());
    let mut buffer = vec![0; 16 * 1024];
    let mut inbox = VecDeque::new();
    let mut mechanism = String::new();
    let mut bound = None;
    let mut resumption = None;
    let mut enrolled = None;
    let (mut round_trips, mut sent) = (0, false);
    loop {
        let mut start_tls = false;
        while let Some(action) = stream.poll_action() {
            match action {
                proto::Action::Send(data) => {
                    sent = true;
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
                proto::Action::Enrolled { certificate } => enrolled = Some(certificate),
                proto::Action::FastToken { mechanism, token } => {
                    prepared.keep_token(Some(crate::FastToken {
                        mechanism,
                        token: token.token,
                        expiry: token.expiry,
                    }));
                }
                proto::Action::Close(Ok(())) => {
                    let _ = connection.flush().await;
                    return Err(match enrolled {
                        Some(certificate) => Error::Enrolled(certificate),
                        None => Error::Stream(ClientError::Closed),
                    });
                }
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
                round_trips,
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
        if std::mem::take(&mut sent) {
            round_trips += 1;
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
