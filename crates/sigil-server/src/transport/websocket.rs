//! XMPP over WebSocket (RFC 7395): the upgrade, and the wire that carries
//! one standalone element per text message.

use std::io;
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
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::http::{RequestState, origin_allowed, too_many_sessions};
use crate::connection::{Start, run_session};
use crate::web::plain;
use crate::wire::{Input, Wire, connection_info};

/// A request to `/xmpp-websocket`: checks the upgrade and the origin, and
/// runs the session over the WebSocket once upgraded.
pub(super) fn upgrade(
    mut request: Request<Incoming>,
    state: RequestState,
) -> Response<Full<Bytes>> {
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
        let start = Start {
            wire,
            peer: state.peer,
            listener: state.listener,
            context: state.context,
            connection: connection_info(&state.info),
            tls: Some((*state.info).clone()),
            deadline,
            pending: Some(pending),
            shutdown,
        };
        run_session(start, ()).await;
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

fn header_has_token(request: &Request<Incoming>, name: header::HeaderName, token: &str) -> bool {
    request.headers().get_all(name).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
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
    const TRANSPORT: &'static str = "websocket";
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
