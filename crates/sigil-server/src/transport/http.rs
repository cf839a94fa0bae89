//! The HTTPS listener: one TLS accept loop of our own, so every request
//! knows the client certificate chain and channel-binding data of its
//! connection; requests are routed to XMPP over WebSocket (RFC 7395,
//! `/xmpp-websocket`), BOSH (XEP-0124/0206, `/http-bind`), the web
//! chat's pages, invitations' pages (`/invite/TOKEN`) and the devices
//! page (`/devices`). Browsers present client certificates to any page that
//! asks, so a session from a foreign `Origin` is refused before it could
//! log in.
//!
//! HTTPS connections are counted from acceptance to their end: at most
//! `http.max_connections_per_address` (256) per address and
//! `http.max_connections` (20,000) in all; more are closed at once.
//! Every write must progress within `limits.write_timeout_seconds`
//! (`limits::WriteDeadline`), and a BOSH body must arrive within it
//! (HTTP 408). WebSocket connections and BOSH sessions together are
//! capped at `http.max_sessions` (HTTP 503 beyond).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::context::Context;
use crate::tls::tls_info;
use crate::wire::Listener;

/// What the HTTPS listener needs besides the c2s listener settings.
pub(crate) struct HttpSettings {
    /// Origins whose pages may open a session (`scheme://host[:port]`).
    pub(crate) allowed_origins: Vec<String>,
    /// The largest WebSocket message accepted, in bytes.
    pub(crate) max_frame_bytes: usize,
    /// The largest BOSH request body, in bytes.
    pub(crate) max_body_bytes: usize,
    /// The BOSH sessions.
    pub(crate) sessions: Arc<crate::transport::bosh::Sessions>,
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
    /// The endpoints web discovery names (XEP-0156).
    pub(crate) endpoints: Vec<super::discovery::Endpoints>,
}

impl HttpSettings {
    /// A place for one more WebSocket connection or BOSH session, held
    /// until it ends; `None` when `max_sessions` are open.
    pub(super) fn open_slot(&self) -> Option<SessionSlot> {
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
pub(super) struct SessionSlot(Arc<AtomicUsize>);

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(super) fn too_many_sessions() -> Response<Full<Bytes>> {
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

pub(super) struct RequestState {
    pub(super) peer: SocketAddr,
    pub(super) listener: Arc<Listener>,
    pub(super) settings: Arc<HttpSettings>,
    pub(super) context: Arc<Context>,
    pub(super) info: Arc<crate::tls::TlsInfo>,
    pub(super) shutdown: watch::Receiver<bool>,
    pub(super) done: mpsc::Sender<()>,
}

async fn route(request: Request<Incoming>, state: RequestState) -> Response<crate::web::Body> {
    use crate::web::Page;
    let web = &state.settings.web;
    let response = match request.uri().path() {
        "/xmpp-websocket" => super::websocket::upgrade(request, state),
        "/http-bind" | "/http-bind/" => super::bosh::handle(request, state).await,
        "/.well-known/host-meta" => super::discovery::host_meta(&state.settings.endpoints, false),
        "/.well-known/host-meta.json" => {
            super::discovery::host_meta(&state.settings.endpoints, true)
        }
        "/" | "/index.html" => {
            let jid = certificate_jid(&state.info, &state.context.domain);
            crate::web::page(&request, web, Page::Certificate, jid)
        }
        "/password" | "/password.html" => crate::web::page(&request, web, Page::Password, None),
        "/chat.js" => crate::web::script(&request, web, Page::Certificate),
        "/password.js" => crate::web::script(&request, web, Page::Password),
        crate::devices_page::PATH => {
            crate::devices_page::handle(
                request,
                &state.context,
                &state.info.peer_certificates,
                web,
                &state.settings.allowed_origins,
            )
            .await
        }
        path if path.starts_with(crate::invites::PAGE_PATH) => {
            let token = &path[crate::invites::PAGE_PATH.len()..];
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let store = state.context.store.as_ref();
            crate::invites::page::page(&request, web, store, token, now).await
        }
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

use crate::web::plain;

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
}
