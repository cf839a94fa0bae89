//! BOSH (XEP-0124, XEP-0206): the `/http-bind` requests, which create a
//! session or carry elements to one and collect what it wrote; the
//! session itself and its wire are in `session`.
//!
//! rids move forward within the `requests` window (2): a repeated rid
//! gets the cached response, others `item-not-found`; a request that
//! overtook an earlier rid waits for it (XEP-0124 §14), so two
//! connections never reorder a session's input. `wait` is at most 60 s,
//! `inactivity` 60 s. A later request with another certificate, or none,
//! gets 403: a stolen sid is useless without the key. A request with
//! elements is admitted only once the session has read the elements of
//! the requests before it, so a session slowed by its read rate holds at
//! most one request's body. Frames waiting for the client's next request
//! are capped at `limits.session_queue` (then `policy-violation`, as a
//! TCP client whose queue fills). CORS answers allowed origins with
//! credentials, never `*`.

mod session;

pub(crate) use session::Sessions;

use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::http::{RequestState, origin_allowed, too_many_sessions};
use crate::connection::{self, Start, run_session};
use crate::web::plain;
use crate::wire::{Input, connection_info};

/// One request to `/http-bind`: creates a session, or hands its elements
/// to one and answers with what the session wrote.
pub(super) async fn handle(
    request: Request<Incoming>,
    state: RequestState,
) -> Response<Full<Bytes>> {
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
    // Each element is measured on its own (the stanza size limit is per
    // stanza); the rest of the body is charged to the read budget too, and
    // an empty poll costs its bytes and tells the session the client is
    // still there.
    let mut rest = bytes.len();
    let mut inputs: Vec<Input> = request
        .stream_elements(&state.context.domain)
        .into_iter()
        .map(|element| {
            let size = element.to_xml().len();
            rest = rest.saturating_sub(size);
            Input::Element(element, size)
        })
        .collect();
    if rest > 0 || inputs.is_empty() {
        inputs.push(Input::Charge(rest));
    }
    match session.accept(rid, inputs).await {
        session::RidCheck::Invalid => {
            return xml(
                StatusCode::NOT_FOUND,
                terminate("item-not-found"),
                origin.as_ref(),
            );
        }
        session::RidCheck::Repeat(response) => {
            return xml(StatusCode::OK, response, origin.as_ref());
        }
        session::RidCheck::Next => {}
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
    let Some(sid) = session::new_sid() else {
        return xml(
            StatusCode::SERVICE_UNAVAILABLE,
            terminate("internal-server-error"),
            origin.as_ref(),
        );
    };
    let rid = request.rid;
    let wait = request
        .wait
        .unwrap_or(session::MAX_WAIT)
        .clamp(1, session::MAX_WAIT);
    let (session, wire) = session::BoshSession::new(
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
    let ended = session::Ended::new(session.clone(), settings.sessions.clone());
    tokio::spawn(async move {
        let _ended = ended;
        let timeout = Duration::from_secs(context.limits.login_timeout_seconds);
        let deadline = tokio::time::Instant::now() + timeout;
        let start = Start {
            wire,
            peer,
            listener,
            context,
            connection: connection_info(&info),
            tls: Some((*info).clone()),
            deadline,
            pending: Some(pending),
            shutdown,
        };
        run_session(start, ()).await;
        drop(slot);
        drop(done);
    });
    let attributes = session::creation_attributes(&sid, wait, &state.context.domain, rid);
    let response = session
        .respond(rid, Duration::from_secs(wait), &attributes)
        .await;
    xml(StatusCode::OK, response, origin.as_ref())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bosh_error_bodies() {
        let body = terminate("item-not-found");
        let parsed = sigil_xml::Element::parse(&body).unwrap();
        assert!(parsed.is("body", sigil_proto::bosh::NS_HTTPBIND));
        assert_eq!(parsed.attribute("type"), Some("terminate"));
        assert_eq!(parsed.attribute("condition"), Some("item-not-found"));
    }
}
