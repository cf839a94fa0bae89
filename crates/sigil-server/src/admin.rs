//! The admin listener: `GET /metrics` in Prometheus's text format, plain
//! HTTP, meant for loopback or a private network (`[admin] metrics`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::context::Context;
use crate::metrics::gauge;

/// Scrapes served at once, at most.
const CONCURRENT: usize = 8;

/// How long a scraper may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Listens on `address` for scrapers until aborted; the address bound.
pub(crate) async fn start(
    address: SocketAddr,
    context: Arc<Context>,
) -> Result<(tokio::task::JoinHandle<()>, SocketAddr), String> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| format!("admin.metrics: cannot listen on {address}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("admin.metrics: {e}"))?;
    if !bound.ip().is_loopback() {
        tracing::warn!(%bound, "the metrics listener is not on loopback: keep it on a private network");
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENT));
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                continue;
            };
            let context = context.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let context = context.clone();
                    async move { Ok::<_, Infallible>(answer(&request, &context).await) }
                });
                // One scrape a connection: a client cannot keep a slot.
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .keep_alive(false)
                    .header_read_timeout(REQUEST_TIMEOUT)
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
                drop(slot);
            });
        }
    });
    Ok((task, bound))
}

async fn answer(request: &Request<Incoming>, context: &Context) -> Response<Full<Bytes>> {
    let response = |status: StatusCode, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    };
    if request.method() != Method::GET || request.uri().path() != "/metrics" {
        return response(StatusCode::NOT_FOUND, "only GET /metrics here\n".into());
    }
    response(StatusCode::OK, render(context).await)
}

/// Every metric of this node, as scraped now.
pub(crate) async fn render(context: &Context) -> String {
    let mut out = String::new();
    context.metrics.render(&mut out);
    let sessions = context.router.all();
    let queued: usize = sessions.iter().map(|s| s.queued()).sum();
    let deepest = sessions.iter().map(|s| s.queued()).max().unwrap_or(0);
    gauge(
        &mut out,
        "sigil_session_queued",
        "gauge",
        "Stanzas queued for this node's sessions, all together.",
        queued as f64,
    );
    gauge(
        &mut out,
        "sigil_session_queued_max",
        "gauge",
        "Stanzas queued for this node's most behind session.",
        deepest as f64,
    );
    // One lookup, timed: how the store answers now.
    let began = Instant::now();
    let answered = tokio::time::timeout(
        Duration::from_secs(2),
        context.store.account("metrics-probe@invalid"),
    )
    .await
    .is_ok_and(|answer| answer.is_ok());
    gauge(
        &mut out,
        "sigil_store_probe_seconds",
        "gauge",
        "How long one account lookup in the store took, at this scrape.",
        began.elapsed().as_secs_f64(),
    );
    gauge(
        &mut out,
        "sigil_store_up",
        "gauge",
        "Whether the store answered at this scrape.",
        f64::from(u8::from(answered)),
    );
    if let Some(cluster) = &context.cluster {
        cluster.render_metrics(&mut out).await;
    }
    out
}
