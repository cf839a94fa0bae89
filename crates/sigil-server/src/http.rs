//! The HTTPS listener: XMPP over WebSocket (RFC 7395) at
//! `/xmpp-websocket`.
//!
//! The TLS accept loop is ours, so every request knows the client
//! certificate chain and channel-binding data of its connection, and the
//! WebSocket session feeds them to the same negotiation and certificate
//! decision as TCP. Browsers present client certificates to any page that
//! asks, so a WebSocket from a foreign `Origin` is refused before it
//! could log in.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sigil_proto::Framing;
use sigil_proto::frame::Frame;
use sigil_xml::{Element, FramerError};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::connection;
use crate::context::Context;
use crate::tls::tls_info;
use crate::transport::{self, Input, Listener, Wire};

/// What the HTTPS listener needs besides the c2s listener settings.
pub(crate) struct HttpSettings {
    /// Origins whose pages may open a session (scheme://host[:port]).
    pub(crate) allowed_origins: Vec<String>,
    /// The largest WebSocket message accepted, in bytes.
    pub(crate) max_frame_bytes: usize,
    /// The largest BOSH request body, in bytes.
    pub(crate) max_body_bytes: usize,
    /// The BOSH sessions.
    pub(crate) sessions: Arc<crate::bosh::Sessions>,
    /// WebSocket connections and BOSH sessions open now, and the most.
    pub(crate) open: Arc<AtomicUsize>,
    pub(crate) max_sessions: usize,
    /// The web chat.
    pub(crate) web: crate::web::WebSettings,
    /// HTTPS connections per address, held for a connection's life.
    pub(crate) connections: Arc<crate::limits::Pending>,
    /// HTTPS connections open now, and the most.
    pub(crate) open_connections: Arc<AtomicUsize>,
    pub(crate) max_connections: usize,
    /// How long a request body may take to arrive, and a write to be
    /// taken by the client.
    pub(crate) io_timeout: Duration,
}

impl HttpSettings {
    /// A place for one more WebSocket connection or BOSH session, held
    /// until it ends; `None` when `max_sessions` are open.
    fn open_slot(&self) -> Option<SessionSlot> {
        let max = self.max_sessions;
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < max).then_some(open + 1)
            })
            .ok()
            .map(|_| SessionSlot(self.open.clone()))
    }
}

/// A place for one more HTTPS connection; `None` when `max_connections`
/// are open.
fn connection_slot(settings: &HttpSettings) -> Option<SessionSlot> {
    let max = settings.max_connections;
    settings
        .open_connections
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
            (open < max).then_some(open + 1)
        })
        .ok()
        .map(|_| SessionSlot(settings.open_connections.clone()))
}

/// One open WebSocket connection or BOSH session (or HTTPS connection).
struct SessionSlot(Arc<AtomicUsize>);

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn too_many_sessions() -> Response<Full<Bytes>> {
    plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many WebSocket and BOSH sessions are open; try again later\n",
    )
}

/// Serves one accepted TCP connection of the HTTPS listener.
pub(crate) async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    listener: Arc<Listener>,
    settings: Arc<HttpSettings>,
    context: Arc<Context>,
    shutdown: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    let _ = tcp.set_nodelay(true);
    // Held for the connection's life: HTTPS connections per address and
    // in all are capped, whatever they do once TLS is up.
    let Some(_connection) = settings.connections.admit(peer.ip()) else {
        return tracing::info!(%peer, "refused: too many HTTPS connections from this address");
    };
    let Some(_slot) = connection_slot(&settings) else {
        return tracing::info!(%peer, "refused: too many HTTPS connections");
    };
    // Counted against its address until the TLS handshake is done; the
    // sessions it opens are counted until they bind.
    let Some(handshake) = context.pending.admit(peer.ip()) else {
        return tracing::info!(%peer, "refused: too many connections from this address are logging in");
    };
    let timeout = Duration::from_secs(context.limits.login_timeout_seconds);
    let tls = match tokio::time::timeout(timeout, listener.acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => return tracing::debug!(%peer, %error, "TLS handshake failed"),
        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
    };
    drop(handshake);
    let info = Arc::new(tls_info(&tls, &listener.identity));
    let io_timeout = settings.io_timeout;
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let request_state = RequestState {
            peer,
            listener: listener.clone(),
            settings: settings.clone(),
            context: context.clone(),
            info: info.clone(),
            shutdown: shutdown.clone(),
            done: done.clone(),
        };
        async move { Ok::<_, Infallible>(route(request, request_state).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(timeout)
        .serve_connection(
            TokioIo::new(crate::limits::WriteDeadline::new(tls, io_timeout)),
            service,
        )
        .with_upgrades();
    if let Err(error) = connection.await {
        tracing::debug!(%peer, %error, "HTTP connection ended with an error");
    }
}

struct RequestState {
    peer: SocketAddr,
    listener: Arc<Listener>,
    settings: Arc<HttpSettings>,
    context: Arc<Context>,
    info: Arc<crate::tls::TlsInfo>,
    shutdown: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
}

async fn route(request: Request<Incoming>, state: RequestState) -> Response<crate::web::Body> {
    use crate::web::Page;
    let web = &state.settings.web;
    let response = match request.uri().path() {
        "/xmpp-websocket" => websocket(request, state),
        "/http-bind" | "/http-bind/" => bosh(request, state).await,
        "/" | "/index.html" => {
            let jid = certificate_jid(&state.info, &state.context.domain);
            crate::web::page(&request, web, Page::Certificate, jid)
        }
        "/password" | "/password.html" => crate::web::page(&request, web, Page::Password, None),
        "/chat.js" => crate::web::script(&request, web, Page::Certificate),
        "/password.js" => crate::web::script(&request, web, Page::Password),
        path if path.starts_with("/dist/") => {
            return crate::web::asset(&request, web, &path["/dist/".len()..]).await;
        }
        _ => plain(StatusCode::NOT_FOUND, "not found\n"),
    };
    response.map(http_body_util::Either::Left)
}

/// The bare JID of the first identity of the connection's certificate on
/// this domain.
fn certificate_jid(info: &crate::tls::TlsInfo, domain: &str) -> Option<String> {
    let certificate = info.peer_certificates.first()?;
    let parsed = sigil_x509::CertificateInfo::from_der(certificate).ok()?;
    parsed
        .identities
        .iter()
        .find(|id| id.domain().as_str() == domain && id.node().is_some())
        .map(|id| id.to_bare().to_string())
}

fn terminate(condition: &str) -> String {
    format!(
        "<body xmlns='http://jabber.org/protocol/httpbind' type='terminate' condition='{condition}'/>"
    )
}

fn xml(status: StatusCode, body: String, origin: Option<&HeaderValue>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    cors(headers, origin);
    response
}

/// CORS for an allowed origin, with credentials: browsers send the client
/// certificate and need `Access-Control-Allow-Credentials` and the exact
/// origin (never `*`).
fn cors(headers: &mut hyper::HeaderMap, origin: Option<&HeaderValue>) {
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
}

fn fingerprint(info: &crate::tls::TlsInfo) -> Option<[u8; 32]> {
    use sha2::Digest as _;
    info.peer_certificates
        .first()
        .map(|c| sha2::Sha256::digest(c.as_ref()).into())
}

async fn bosh(request: Request<Incoming>, state: RequestState) -> Response<Full<Bytes>> {
    use http_body_util::BodyExt as _;
    let origin = request.headers().get(header::ORIGIN).cloned();
    if !origin_allowed(origin.as_ref(), &state.settings.allowed_origins) {
        return plain(
            StatusCode::FORBIDDEN,
            "this origin may not open XMPP sessions here\n",
        );
    }
    if request.method() == Method::OPTIONS {
        let mut response = xml(StatusCode::NO_CONTENT, String::new(), origin.as_ref());
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, OPTIONS"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Content-Type"),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        return response;
    }
    if request.method() != Method::POST {
        return plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "BOSH takes POST requests (XEP-0124)\n",
        );
    }
    let limited = http_body_util::Limited::new(request.into_body(), state.settings.max_body_bytes);
    // A body that does not come in time is not waited for forever.
    let collected = tokio::time::timeout(state.settings.io_timeout, limited.collect()).await;
    let bytes = match collected {
        Ok(Ok(collected)) => collected.to_bytes(),
        Err(_) => {
            return xml(
                StatusCode::REQUEST_TIMEOUT,
                terminate("policy-violation"),
                origin.as_ref(),
            );
        }
        Ok(Err(_)) => {
            return xml(
                StatusCode::PAYLOAD_TOO_LARGE,
                terminate("policy-violation"),
                origin.as_ref(),
            );
        }
    };
    let request = match sigil_proto::bosh::Request::parse(&bytes) {
        Ok(request) => request,
        Err(error) => {
            tracing::debug!(peer = %state.peer, %error, "bad BOSH request");
            return xml(
                StatusCode::BAD_REQUEST,
                terminate("bad-request"),
                origin.as_ref(),
            );
        }
    };
    let rid = request.rid;
    let certificate = fingerprint(&state.info);
    let Some(sid) = request.sid.as_deref() else {
        return create_session(&request, certificate, state, origin).await;
    };
    let Some(session) = state.settings.sessions.get(sid) else {
        return xml(
            StatusCode::NOT_FOUND,
            terminate("item-not-found"),
            origin.as_ref(),
        );
    };
    if session.certificate != certificate {
        tracing::info!(peer = %state.peer, "BOSH request with another certificate than the session's refused");
        return xml(
            StatusCode::FORBIDDEN,
            terminate("policy-violation"),
            origin.as_ref(),
        );
    }
    // The request's bytes are charged to the session's read budget once,
    // with its first input.
    let mut size = bytes.len();
    let mut inputs: Vec<Input> = request
        .stream_elements(&state.context.domain)
        .into_iter()
        .map(|element| Input::Element(element, std::mem::take(&mut size)))
        .collect();
    if inputs.is_empty() {
        // An empty poll costs its bytes too, and tells the session the
        // client is still there.
        inputs.push(Input::Charge(size));
    }
    match session.accept(rid, inputs).await {
        crate::bosh::RidCheck::Invalid => {
            return xml(
                StatusCode::NOT_FOUND,
                terminate("item-not-found"),
                origin.as_ref(),
            );
        }
        crate::bosh::RidCheck::Repeat(response) => {
            return xml(StatusCode::OK, response, origin.as_ref());
        }
        crate::bosh::RidCheck::Next => {}
    }
    let response = session
        .respond(rid, Duration::from_secs(session.wait), "")
        .await;
    if session.is_closed() {
        state.settings.sessions.remove(&session.sid);
    }
    xml(StatusCode::OK, response, origin.as_ref())
}

async fn create_session(
    request: &sigil_proto::bosh::Request,
    certificate: Option<[u8; 32]>,
    state: RequestState,
    origin: Option<HeaderValue>,
) -> Response<Full<Bytes>> {
    let Some(slot) = state.settings.open_slot() else {
        tracing::warn!(peer = %state.peer, "BOSH session refused: http.max_sessions are open");
        return too_many_sessions();
    };
    let Some(pending) = state.context.pending.admit(state.peer.ip()) else {
        tracing::info!(peer = %state.peer, "BOSH session refused: too many from this address are logging in");
        return xml(
            StatusCode::TOO_MANY_REQUESTS,
            terminate("policy-violation"),
            origin.as_ref(),
        );
    };
    let Some(sid) = crate::bosh::new_sid() else {
        return xml(
            StatusCode::SERVICE_UNAVAILABLE,
            terminate("internal-server-error"),
            origin.as_ref(),
        );
    };
    let rid = request.rid;
    let wait = request
        .wait
        .unwrap_or(crate::bosh::MAX_WAIT)
        .clamp(1, crate::bosh::MAX_WAIT);
    let (session, wire) = crate::bosh::BoshSession::new(
        sid.clone(),
        rid,
        wait,
        certificate,
        // At least two delivery batches, so a client that collects
        // promptly is never closed by one burst.
        state
            .context
            .limits
            .session_queue
            .max(2 * connection::DELIVERY_BATCH),
    );
    state.settings.sessions.insert(session.clone());
    session.push(Input::Element(
        request.open_element(&state.context.domain),
        0,
    ));
    let context = state.context.clone();
    let settings = state.settings.clone();
    let listener = state.listener.clone();
    let info = state.info.clone();
    let shutdown = state.shutdown.clone();
    let done = state.done.clone();
    let peer = state.peer;
    // However the session's task ends, even by a panic, the session is
    // closed (waiting requests wake) and leaves the map.
    let ended = crate::bosh::Ended::new(session.clone(), settings.sessions.clone());
    tokio::spawn(async move {
        let _ended = ended;
        let timeout = Duration::from_secs(context.limits.login_timeout_seconds);
        let deadline = tokio::time::Instant::now() + timeout;
        connection::run_session(
            wire,
            peer,
            listener,
            context,
            transport::connection_info(&info),
            Some((*info).clone()),
            deadline,
            Some(pending),
            shutdown,
            (),
        )
        .await;
        drop(slot);
        drop(done);
    });
    let attributes = crate::bosh::creation_attributes(&sid, wait, &state.context.domain, rid);
    let response = session
        .respond(rid, Duration::from_secs(wait), &attributes)
        .await;
    xml(StatusCode::OK, response, origin.as_ref())
}

use crate::web::plain;

fn header_has_token(request: &Request<Incoming>, name: header::HeaderName, token: &str) -> bool {
    request.headers().get_all(name).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// Whether a request's `Origin` may use the server. Requests without one
/// come from programs, not pages, and carry no ambient browser credentials.
pub(crate) fn origin_allowed(origin: Option<&HeaderValue>, allowed: &[String]) -> bool {
    match origin {
        None => true,
        Some(origin) => origin
            .to_str()
            .is_ok_and(|o| allowed.iter().any(|a| a.eq_ignore_ascii_case(o))),
    }
}

fn websocket(mut request: Request<Incoming>, state: RequestState) -> Response<Full<Bytes>> {
    if request.method() != Method::GET
        || !header_has_token(&request, header::UPGRADE, "websocket")
        || !header_has_token(&request, header::CONNECTION, "upgrade")
        || request
            .headers()
            .get(header::SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
    {
        return plain(
            StatusCode::BAD_REQUEST,
            "a WebSocket upgrade (version 13) is expected here\n",
        );
    }
    let Some(key) = request.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return plain(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing\n");
    };
    if !header_has_token(&request, header::SEC_WEBSOCKET_PROTOCOL, "xmpp") {
        return plain(
            StatusCode::BAD_REQUEST,
            "the WebSocket subprotocol must be xmpp (RFC 7395)\n",
        );
    }
    if !origin_allowed(
        request.headers().get(header::ORIGIN),
        &state.settings.allowed_origins,
    ) {
        tracing::info!(peer = %state.peer, origin = ?request.headers().get(header::ORIGIN), "WebSocket from a foreign origin refused");
        return plain(
            StatusCode::FORBIDDEN,
            "this origin may not open XMPP sessions here\n",
        );
    }
    let Some(slot) = state.settings.open_slot() else {
        tracing::warn!(peer = %state.peer, "WebSocket refused: http.max_sessions are open");
        return too_many_sessions();
    };
    let Some(pending) = state.context.pending.admit(state.peer.ip()) else {
        tracing::info!(peer = %state.peer, "WebSocket refused: too many from this address are logging in");
        return plain(
            StatusCode::TOO_MANY_REQUESTS,
            "too many connections from your address are logging in\n",
        );
    };
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => return tracing::debug!(%error, "WebSocket upgrade failed"),
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(state.settings.max_frame_bytes))
            .max_frame_size(Some(state.settings.max_frame_bytes))
            .read_buffer_size(8 * 1024)
            .write_buffer_size(0);
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        let wire = WsWire {
            ws: Some(ws),
            queued: Vec::new(),
        };
        let timeout = Duration::from_secs(state.context.limits.login_timeout_seconds);
        let deadline = tokio::time::Instant::now() + timeout;
        let shutdown = state.shutdown.clone();
        connection::run_session(
            wire,
            state.peer,
            state.listener,
            state.context,
            transport::connection_info(&state.info),
            Some((*state.info).clone()),
            deadline,
            Some(pending),
            shutdown,
            (),
        )
        .await;
        drop(slot);
        drop(state.done);
    });
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static("xmpp"),
    );
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// RFC 7395: one text frame per element.
struct WsWire<S> {
    /// `None` once released.
    ws: Option<WebSocketStream<S>>,
    queued: Vec<Frame>,
}

impl<S> Wire for WsWire<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    async fn read(&mut self) -> Option<Input> {
        let ws = self.ws.as_mut()?;
        loop {
            match ws.next().await? {
                Ok(Message::Text(text)) => {
                    return Some(match Element::parse(text.as_str()) {
                        Ok(element) => Input::Element(element, text.len()),
                        Err(error) => Input::Invalid(error),
                    });
                }
                Ok(Message::Binary(_)) => {
                    return Some(Input::Invalid(FramerError::NotWellFormed(
                        "binary WebSocket frames are not XMPP (RFC 7395)".into(),
                    )));
                }
                Ok(Message::Ping(data) | Message::Pong(data)) => {
                    return Some(Input::Charge(data.len()));
                }
                Ok(Message::Frame(_)) => continue,
                Ok(Message::Close(_)) | Err(_) => return None,
            }
        }
    }

    fn queue(&mut self, frame: Frame) {
        self.queued.push(frame);
    }

    async fn flush(&mut self) -> io::Result<()> {
        let Some(ws) = self.ws.as_mut() else {
            self.queued.clear();
            return Err(io::Error::new(io::ErrorKind::NotConnected, "released"));
        };
        for frame in self.queued.drain(..) {
            ws.feed(Message::text(frame.to_text(Framing::Standalone)))
                .await
                .map_err(io::Error::other)?;
        }
        ws.flush().await.map_err(io::Error::other)
    }

    async fn shutdown(&mut self) {
        if let Some(ws) = self.ws.as_mut() {
            let _ = ws.close(None).await;
        }
    }

    fn release(&mut self) {
        self.ws = None;
        self.queued = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let allowed = vec!["https://localhost:5281".to_owned()];
        assert!(origin_allowed(None, &allowed));
        assert!(origin_allowed(
            Some(&HeaderValue::from_static("https://localhost:5281")),
            &allowed
        ));
        assert!(origin_allowed(
            Some(&HeaderValue::from_static("HTTPS://LOCALHOST:5281")),
            &allowed
        ));
        for foreign in [
            "https://localhost:5282",
            "http://localhost:5281",
            "https://evil.example",
            "null",
            "",
        ] {
            assert!(
                !origin_allowed(Some(&HeaderValue::from_static(foreign)), &allowed),
                "{foreign}"
            );
        }
    }

    #[test]
    fn bosh_error_bodies() {
        let body = terminate("item-not-found");
        let parsed = Element::parse(&body).unwrap();
        assert!(parsed.is("body", crate::bosh::NS_HTTPBIND));
        assert_eq!(parsed.attribute("type"), Some("terminate"));
        assert_eq!(parsed.attribute("condition"), Some("item-not-found"));
    }
}
