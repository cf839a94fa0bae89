//! A BOSH client (XEP-0124, XEP-0206): the stream's frames go out in
//! `<body/>` wrappers over HTTPS, with a long poll held open for what the
//! server sends.
//!
//! A background task owns the HTTP connections. It keeps at most as many
//! requests in flight as the server allows (`requests`, normally two:
//! one held by the server, one carrying what the client sends), numbers
//! them with consecutive `rid`s, and hands the responses' children to the
//! client in `rid` order.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use sigil_proto::Framing;
use sigil_proto::frame::Frame;
use sigil_xml::{Element, ns};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::Error;
use crate::transport::{Endpoint, connect_tls, handshake, tls_version};

const NS_HTTPBIND: &str = "http://jabber.org/protocol/httpbind";
const NS_XBOSH: &str = "urn:xmpp:xbosh";

/// The longest a request may be held by the server, seconds.
const WAIT: u64 = 60;

/// The largest response body read, bytes.
const MAX_BODY_BYTES: usize = 1 << 20;

/// Opens HTTPS connections to the BOSH endpoint (the first one on the
/// socket the client connected).
pub(crate) struct Dialer {
    pub(crate) address: SocketAddr,
    pub(crate) name: ServerName<'static>,
    pub(crate) connector: tokio_rustls::TlsConnector,
    pub(crate) endpoint: Endpoint,
    pub(crate) domain: String,
    pub(crate) local_address: Option<std::net::IpAddr>,
}

type Sender = SendRequest<Full<Bytes>>;

/// A finished request: its rid, and the connection with the response body.
type Posted = (u64, Result<(Sender, String), Error>);

impl Dialer {
    async fn connect(&self, tcp: Option<tokio::net::TcpStream>) -> Result<(Sender, String), Error> {
        let tls = match tcp {
            Some(tcp) => handshake(tcp, &self.connector, self.name.clone()).await?,
            None => {
                connect_tls(
                    self.address,
                    self.local_address,
                    &self.connector,
                    self.name.clone(),
                )
                .await?
            }
        };
        let version = tls_version(tls.get_ref().1);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| Error::Protocol(format!("HTTP: {e}")))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok((sender, version))
    }

    async fn post(&self, sender: Option<Sender>, body: String) -> Result<(Sender, String), Error> {
        let mut sender = match sender {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.connect(None).await?.0,
        };
        sender
            .ready()
            .await
            .map_err(|e| Error::Protocol(format!("HTTP: {e}")))?;
        let request = Request::post(self.endpoint.path.as_str())
            .header(header::HOST, self.endpoint.authority())
            .header(header::CONTENT_TYPE, "text/xml; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Error::Config(format!("BOSH request: {e}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| Error::Protocol(format!("HTTP: {e}")))?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| Error::Protocol(format!("BOSH response: {e}")))?
            .to_bytes();
        if status != StatusCode::OK {
            let detail = String::from_utf8_lossy(&body);
            return Err(Error::Protocol(format!(
                "BOSH request refused with HTTP {status}: {}",
                detail.trim()
            )));
        }
        let text = String::from_utf8(body.to_vec())
            .map_err(|_| Error::Protocol("BOSH response is not UTF-8".into()))?;
        Ok((sender, text))
    }
}

/// The client's end of a BOSH session.
pub(crate) struct Bosh {
    outgoing: Option<mpsc::UnboundedSender<Frame>>,
    incoming: mpsc::UnboundedReceiver<Result<Vec<Element>, Error>>,
    task: tokio::task::JoinHandle<()>,
    tls_version: String,
}

impl Drop for Bosh {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Bosh {
    /// Connects the first HTTPS connection (so that TLS errors show at
    /// once) and starts the session task. The session itself is created
    /// by the stream's first `<open/>` frame.
    pub(crate) async fn open(dialer: Dialer, tcp: tokio::net::TcpStream) -> Result<Self, Error> {
        let (sender, tls_version) = dialer.connect(Some(tcp)).await?;
        let (outgoing, frames) = mpsc::unbounded_channel();
        let (to_client, incoming) = mpsc::unbounded_channel();
        let first_rid = sigil_proto::random_id()
            .get(..12)
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .unwrap_or(1)
            .max(1);
        let driver = Driver {
            dialer: Arc::new(dialer),
            idle: vec![sender],
            next_rid: first_rid,
            next_delivery: first_rid,
            done: BTreeMap::new(),
            sid: None,
            requests: 1,
            pending: Vec::new(),
            create: false,
            restart: false,
            from: None,
            terminate: false,
            terminated: false,
            to_client,
        };
        let task = tokio::spawn(driver.run(frames));
        Ok(Self {
            outgoing: Some(outgoing),
            incoming,
            task,
            tls_version,
        })
    }

    pub(crate) fn send(&mut self, frame: Frame) -> Result<(), Error> {
        self.outgoing
            .as_ref()
            .and_then(|o| o.send(frame).ok())
            .ok_or_else(|| Error::Io(std::io::ErrorKind::NotConnected.into()))
    }

    pub(crate) async fn recv(&mut self) -> Option<Result<Vec<Element>, Error>> {
        self.incoming.recv().await
    }

    /// Lets the session task finish what it has to send (the terminate
    /// request), for at most two seconds.
    pub(crate) async fn finish(&mut self) {
        self.outgoing = None;
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.task).await;
    }

    pub(crate) fn tls_version(&self) -> &str {
        &self.tls_version
    }
}

struct Driver {
    dialer: Arc<Dialer>,
    idle: Vec<Sender>,
    next_rid: u64,
    next_delivery: u64,
    done: BTreeMap<u64, String>,
    sid: Option<String>,
    requests: usize,
    pending: Vec<String>,
    create: bool,
    restart: bool,
    /// The account the stream header names (`from`), once encrypted.
    from: Option<String>,
    terminate: bool,
    terminated: bool,
    to_client: mpsc::UnboundedSender<Result<Vec<Element>, Error>>,
}

impl Driver {
    async fn run(mut self, mut frames: mpsc::UnboundedReceiver<Frame>) {
        let mut in_flight: JoinSet<Posted> = JoinSet::new();
        let mut client_gone = false;
        loop {
            while let Some(body) = self.next_body(in_flight.len(), client_gone) {
                let rid = self.next_rid - 1;
                let sender = self.idle.pop();
                let dialer = self.dialer.clone();
                in_flight.spawn(async move { (rid, dialer.post(sender, body).await) });
            }
            if in_flight.is_empty() && (self.terminated || client_gone) {
                return;
            }
            tokio::select! {
                frame = frames.recv(), if !client_gone => match frame {
                    Some(frame) => self.take(frame),
                    None => client_gone = true,
                },
                Some(finished) = in_flight.join_next(), if !in_flight.is_empty() => {
                    let Ok((rid, result)) = finished else { return };
                    match result {
                        Ok((sender, text)) => {
                            self.idle.push(sender);
                            self.done.insert(rid, text);
                            if !self.deliver() {
                                return;
                            }
                        }
                        Err(error) => {
                            if !self.terminated {
                                let _ = self.to_client.send(Err(error));
                            }
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Sorts a frame from the stream: headers create or restart the
    /// session, `<close/>` terminates it, the rest is payload.
    fn take(&mut self, frame: Frame) {
        match frame {
            Frame::Open(opening) if self.sid.is_none() => {
                self.from = opening.from;
                self.create = true;
            }
            Frame::Open(opening) => {
                self.from = opening.from;
                self.restart = true;
            }
            Frame::Close => self.terminate = true,
            Frame::Element(_) => self.pending.push(frame.to_text(Framing::Standalone)),
        }
    }

    /// ` from='…'` (XEP-0206 §4) when the stream header names the account.
    fn push_from(&self, body: &mut String) {
        if let Some(from) = &self.from {
            body.push_str(" from='");
            sigil_xml::escape_attribute(body, from);
            body.push('\'');
        }
    }

    /// The next request to send, if one is due and allowed.
    fn next_body(&mut self, in_flight: usize, client_gone: bool) -> Option<String> {
        if self.terminated {
            return None;
        }
        let Some(sid) = self.sid.clone() else {
            if !self.create || in_flight > 0 {
                return None;
            }
            self.create = false;
            let rid = self.rid();
            let mut body = format!(
                "<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}' content='text/xml; charset=utf-8' \
                 hold='1' rid='{rid}' wait='{WAIT}' ver='1.6' xml:lang='en' xmpp:version='1.0' to='"
            );
            sigil_xml::escape_attribute(&mut body, &self.dialer.domain);
            body.push('\'');
            self.push_from(&mut body);
            body.push_str("/>");
            return Some(body);
        };
        if in_flight >= self.requests {
            return None;
        }
        let mut head = format!("<body xmlns='{NS_HTTPBIND}' rid='{}' sid='", self.rid());
        sigil_xml::escape_attribute(&mut head, &sid);
        head.push('\'');
        if self.terminate || client_gone {
            self.terminated = true;
            head.push_str(" type='terminate'>");
            return Some(self.with_payload(head));
        }
        if self.restart {
            self.restart = false;
            head.push_str(" xmlns:xmpp='");
            head.push_str(NS_XBOSH);
            head.push_str("' xmpp:restart='true' xml:lang='en' to='");
            sigil_xml::escape_attribute(&mut head, &self.dialer.domain);
            head.push('\'');
            self.push_from(&mut head);
            head.push_str("/>");
            return Some(head);
        }
        if !self.pending.is_empty() || in_flight == 0 {
            head.push('>');
            return Some(self.with_payload(head));
        }
        self.next_rid -= 1;
        None
    }

    fn rid(&mut self) -> u64 {
        let rid = self.next_rid;
        self.next_rid += 1;
        rid
    }

    fn with_payload(&mut self, mut head: String) -> String {
        for frame in self.pending.drain(..) {
            head.push_str(&frame);
        }
        head.push_str("</body>");
        head
    }

    /// Hands over the responses that are next in `rid` order; `false`
    /// once the session ended.
    fn deliver(&mut self) -> bool {
        while let Some(text) = self.done.remove(&self.next_delivery) {
            self.next_delivery += 1;
            let body = match Element::parse(&text) {
                Ok(body) if body.is("body", NS_HTTPBIND) => body,
                _ => {
                    let _ = self.to_client.send(Err(Error::Protocol(
                        "the BOSH response is not a <body/>".into(),
                    )));
                    return false;
                }
            };
            if self.sid.is_none() {
                let Some(sid) = body.attribute("sid") else {
                    let _ = self.to_client.send(Err(Error::Protocol(
                        "the BOSH session was not created (no sid)".into(),
                    )));
                    return false;
                };
                self.sid = Some(sid.to_owned());
                self.requests = body
                    .attribute("requests")
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(2usize)
                    .clamp(1, 2);
            }
            let mut elements: Vec<Element> = body.children().cloned().collect();
            if body.attribute("type") == Some("terminate") {
                if let Some(condition) = body.attribute("condition")
                    && elements.is_empty()
                {
                    let _ = self.to_client.send(Err(Error::Protocol(format!(
                        "the server ended the BOSH session: {condition}"
                    ))));
                    return false;
                }
                elements.push(Element::new("close", ns::FRAMING));
                let _ = self.to_client.send(Ok(elements));
                return false;
            }
            if !elements.is_empty() && self.to_client.send(Ok(elements)).is_err() {
                self.terminate = true;
            }
        }
        true
    }
}
