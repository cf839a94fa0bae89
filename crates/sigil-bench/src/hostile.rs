//! `hostile`: the hostile-input battery. Hostile clients (malformed XML,
//! oversized and deeply nested stanzas, protocol tricks, slow and flooding
//! connections) run all at once against a server while a probe client,
//! logged in normally, sends itself a message every 20 ms. Every hostile
//! connection must end the way the protocol says (its stream error, or
//! its SASL failure); the probe must lose nothing. Reported: what each
//! hostile client got, the probe's round trips (p50, p99, max) and the
//! server's memory before, at its peak and after.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sigil_client::{Message, MessageType};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

use crate::measure::{memory, settled};
use crate::ready::Ready;
use crate::report::say;
use crate::stats::Latencies;

/// What the battery needs besides the probe's target.
pub(crate) struct Hostile {
    /// The STARTTLS listener (the probe's `--address`).
    pub(crate) starttls: SocketAddr,
    /// The direct TLS listener.
    pub(crate) direct_tls: SocketAddr,
    /// Trust for raw TLS connections: the server's certificate.
    pub(crate) tls: Arc<rustls::ClientConfig>,
    pub(crate) domain: String,
    /// An account for the hostile clients that log in first.
    pub(crate) user: String,
    pub(crate) password: String,
    /// Seconds the server gives a connection to log in.
    pub(crate) login_timeout: u64,
    /// Slow connections (from 127.0.0.2) and flooding ones (127.0.0.3).
    pub(crate) slowloris: usize,
    pub(crate) flood: usize,
    pub(crate) server_pid: Option<u32>,
    /// Fail when the probe's p99 exceeds this (0: report only).
    pub(crate) max_p99_ms: f64,
}

impl Hostile {
    /// Trust for raw TLS: the server certificate in `path` as the only
    /// anchor.
    pub(crate) fn trust(path: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut roots = rustls::RootCertStore::empty();
        for der in sigil_x509::pem_certificates(&pem).map_err(|e| e.to_string())? {
            roots
                .add(rustls::pki_types::CertificateDer::from(der))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }

    fn header(&self) -> String {
        format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' to='{}' version='1.0'>",
            self.domain
        )
    }

    fn plain_auth(&self) -> String {
        let mut response = vec![0u8];
        response.extend_from_slice(self.user.as_bytes());
        response.push(0);
        response.extend_from_slice(self.password.as_bytes());
        format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
            sigil_sasl::xmpp::encode(&response)
        )
    }

    /// How long a hostile connection may take to get its answer.
    fn patience(&self) -> Duration {
        Duration::from_secs(self.login_timeout + 15)
    }

    async fn tls(&self, tcp: TcpStream) -> Result<TlsStream<TcpStream>, String> {
        let name = rustls::pki_types::ServerName::try_from(self.domain.clone())
            .map_err(|e| e.to_string())?;
        tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))
    }

    /// A direct TLS connection logged in with PLAIN and bound, the way a
    /// pipelining client does it: each step in one write.
    async fn logged_in(&self, resource: &str) -> Result<TlsStream<TcpStream>, String> {
        let tcp = connect(self.direct_tls, None).await?;
        let mut tls = self.tls(tcp).await?;
        write(&mut tls, &format!("{}{}", self.header(), self.plain_auth())).await?;
        until(&mut tls, "<success", self.patience()).await?;
        let bind = format!(
            "{}<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>{resource}</resource></bind></iq>",
            self.header()
        );
        write(&mut tls, &bind).await?;
        until(&mut tls, "</iq>", self.patience()).await?;
        Ok(tls)
    }
}

/// A connection to `address`, from `source` when given.
async fn connect(address: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream, String> {
    let result = match source {
        None => TcpStream::connect(address).await,
        Some(ip) => {
            let socket = match ip {
                IpAddr::V4(_) => TcpSocket::new_v4(),
                IpAddr::V6(_) => TcpSocket::new_v6(),
            }
            .map_err(|e| e.to_string())?;
            socket
                .bind(SocketAddr::new(ip, 0))
                .map_err(|e| format!("bind {ip}: {e}"))?;
            socket.connect(address).await
        }
    };
    result.map_err(|e| format!("connect {address}: {e}"))
}

async fn write<S: AsyncWrite + Unpin>(stream: &mut S, data: &str) -> Result<(), String> {
    stream
        .write_all(data.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    stream.flush().await.map_err(|e| format!("write: {e}"))
}

/// Everything the server says until it closes the connection (or
/// `limit` passes): the text, and whether it closed.
async fn said<S: AsyncRead + Unpin>(stream: &mut S, limit: Duration) -> (String, bool) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

/// Reads until `marker` has been said.
async fn until<S: AsyncRead + Unpin>(
    stream: &mut S,
    marker: &str,
    limit: Duration,
) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let text = String::from_utf8_lossy(&out);
        if text.contains(marker) {
            return Ok(text.into_owned());
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Err(format!("closed before {marker}: {}", tail(&text))),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return Err(format!("no {marker} in time: {}", tail(&text))),
        }
    }
}

fn tail(text: &str) -> String {
    let start = text
        .char_indices()
        .rev()
        .nth(300)
        .map_or(0, |(index, _)| index);
    text[start..].to_owned()
}

/// The stream ended with `condition`, then `</stream:stream>`.
fn stream_error(said: &(String, bool), condition: &str) -> Result<String, String> {
    let (text, closed) = said;
    let tag = format!("<stream:error><{condition} xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\"");
    if text.contains(&tag) && text.trim_end().ends_with("</stream:stream>") && *closed {
        Ok(condition.to_owned())
    } else {
        Err(format!(
            "expected the stream error {condition} and the end of the connection{}; got: {}",
            if *closed { "" } else { " (still open)" },
            tail(text)
        ))
    }
}

/// Sends `chunks` on a fresh connection, each in its own write, while
/// reading what the server says (a write may block once the server stops
/// reading; the server's answer still arrives).
async fn exchange<S>(stream: S, chunks: Vec<Vec<u8>>, limit: Duration) -> (String, bool)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let writing = tokio::spawn(async move {
        for chunk in chunks {
            if writer.write_all(&chunk).await.is_err() || writer.flush().await.is_err() {
                break;
            }
        }
        writer
    });
    let answer = said(&mut reader, limit).await;
    writing.abort();
    answer
}

type Outcome = Result<String, String>;

async fn doctype(h: Arc<Hostile>) -> Outcome {
    let tcp = connect(h.starttls, None).await?;
    let chunks = vec![
        h.header().into_bytes(),
        b"<!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;'>]><lolz>&lol2;</lolz>"
            .to_vec(),
    ];
    stream_error(&exchange(tcp, chunks, h.patience()).await, "restricted-xml")
}

async fn undeclared_entity(h: Arc<Hostile>) -> Outcome {
    let tcp = connect(h.starttls, None).await?;
    let chunks = vec![
        h.header().into_bytes(),
        b"<message><body>&lol9;</body></message>".to_vec(),
    ];
    stream_error(
        &exchange(tcp, chunks, h.patience()).await,
        "not-well-formed",
    )
}

async fn deep_nesting(h: Arc<Hostile>) -> Outcome {
    let tcp = connect(h.starttls, None).await?;
    let chunks = vec![h.header().into_bytes(), "<a>".repeat(100_000).into_bytes()];
    stream_error(
        &exchange(tcp, chunks, h.patience()).await,
        "policy-violation",
    )
}

async fn huge_stanza(h: Arc<Hostile>) -> Outcome {
    let tls = h.logged_in("huge").await?;
    let mut chunks = vec![b"<message to='nobody@localhost'><body>".to_vec()];
    // 10 MB in 64 KiB writes.
    chunks.extend((0..160).map(|_| vec![b'x'; 64 * 1024]));
    stream_error(
        &exchange(tls, chunks, h.patience()).await,
        "policy-violation",
    )
}

async fn million_attributes(h: Arc<Hostile>) -> Outcome {
    let tcp = connect(h.starttls, None).await?;
    let mut chunks = vec![h.header().into_bytes(), b"<message".to_vec()];
    for block in 0..100 {
        let attributes: String = (0..10_000)
            .map(|n| format!(" a{}=''", block * 10_000 + n))
            .collect();
        chunks.push(attributes.into_bytes());
    }
    stream_error(
        &exchange(tcp, chunks, h.patience()).await,
        "policy-violation",
    )
}

async fn invalid_utf8(h: Arc<Hostile>) -> Outcome {
    let tcp = connect(h.starttls, None).await?;
    let chunks = vec![
        h.header().into_bytes(),
        b"<message><body>\xff\xfe\xc3</body></message>".to_vec(),
    ];
    stream_error(
        &exchange(tcp, chunks, h.patience()).await,
        "not-well-formed",
    )
}

/// Not an attack to refuse: characters whose bytes arrive in different
/// TLS records must come out whole.
async fn split_multibyte(h: Arc<Hostile>) -> Outcome {
    let mut tls = h.logged_in("split").await?;
    let body = "é漢🎉ü";
    let stanza = format!(
        "<message to='{}@{}/split' type='chat'><body>{body}</body></message>",
        h.user, h.domain
    );
    for byte in stanza.as_bytes() {
        // One byte per write, so one byte per TLS record.
        tls.write_all(std::slice::from_ref(byte))
            .await
            .map_err(|e| format!("write: {e}"))?;
        tls.flush().await.map_err(|e| format!("write: {e}"))?;
    }
    let echoed = until(&mut tls, "</message>", h.patience()).await?;
    if echoed.contains(&format!("<body>{body}</body>")) {
        Ok(format!("{body} delivered whole"))
    } else {
        Err(format!("the body changed: {}", tail(&echoed)))
    }
}

async fn stanza_before_header(h: Arc<Hostile>) -> Outcome {
    let tcp = connect(h.starttls, None).await?;
    let chunks = vec![b"<message to='a@localhost'><body>early</body></message>".to_vec()];
    stream_error(
        &exchange(tcp, chunks, h.patience()).await,
        "invalid-namespace",
    )
}

async fn second_header(h: Arc<Hostile>) -> Outcome {
    let tls = h.logged_in("again").await?;
    let header = h.header();
    let bare = header
        .split_once("?>")
        .map_or(header.as_str(), |(_, rest)| rest);
    let chunks = vec![bare.as_bytes().to_vec()];
    stream_error(
        &exchange(tls, chunks, h.patience()).await,
        "unsupported-stanza-type",
    )
}

async fn data_after_close(h: Arc<Hostile>) -> Outcome {
    let tls = h.logged_in("after").await?;
    let chunks = vec![b"</stream:stream><message><body>after the end</body></message>".to_vec()];
    let (text, closed) = exchange(tls, chunks, h.patience()).await;
    if closed && text.trim_end().ends_with("</stream:stream>") && !text.contains("after the end") {
        Ok("closed, the rest ignored".into())
    } else {
        Err(format!("closed: {closed}; said: {}", tail(&text)))
    }
}

/// STARTTLS command injection: plaintext sent after `<starttls/>` in the
/// same packet must be thrown away, not processed inside TLS.
async fn injection_after_starttls(h: Arc<Hostile>) -> Outcome {
    let mut tcp = connect(h.starttls, None).await?;
    let injected = format!(
        "{}<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>{}",
        h.header(),
        h.plain_auth()
    );
    write(&mut tcp, &injected).await?;
    until(&mut tcp, "<proceed", h.patience()).await?;
    let mut tls = h.tls(tcp).await?;
    write(&mut tls, &h.header()).await?;
    let said = until(&mut tls, "</stream:features>", h.patience()).await?;
    if said.contains("<success") || !said.contains("<mechanisms") {
        return Err(format!(
            "the injected <auth/> was acted on: {}",
            tail(&said)
        ));
    }
    Ok("injected plaintext ignored".into())
}

async fn plaintext_instead_of_handshake(h: Arc<Hostile>) -> Outcome {
    let mut tcp = connect(h.starttls, None).await?;
    write(
        &mut tcp,
        &format!(
            "{}<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
            h.header()
        ),
    )
    .await?;
    until(&mut tcp, "<proceed", h.patience()).await?;
    let chunks = vec![b"<message><body>no TLS</body></message>".to_vec()];
    let (_, closed) = exchange(tcp, chunks, h.patience()).await;
    if closed {
        Ok("connection closed".into())
    } else {
        Err("the connection stayed open".into())
    }
}

async fn oversized_sasl(h: Arc<Hostile>) -> Outcome {
    // Bigger than any SASL message: a SASL failure, the stream goes on.
    let tcp = connect(h.direct_tls, None).await?;
    let mut tls = h.tls(tcp).await?;
    let auth = format!(
        "{}<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
        h.header(),
        "A".repeat(20_000)
    );
    write(&mut tls, &auth).await?;
    let said = until(&mut tls, "</failure>", h.patience()).await?;
    if !said.contains("<malformed-request/>") {
        return Err(format!("expected malformed-request: {}", tail(&said)));
    }
    // Bigger than what may be sent before authentication: the stream ends.
    let tcp = connect(h.direct_tls, None).await?;
    let tls = h.tls(tcp).await?;
    let chunks = vec![
        h.header().into_bytes(),
        b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>".to_vec(),
        vec![b'A'; 200_000],
    ];
    stream_error(
        &exchange(tls, chunks, h.patience()).await,
        "policy-violation",
    )?;
    Ok("malformed-request, then policy-violation".into())
}

/// Connections that send their stream header a byte at a time, too slowly
/// to log in: each ends at the login deadline.
async fn slowloris(h: Arc<Hostile>) -> Outcome {
    let source = Some(IpAddr::from([127, 0, 0, 2]));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..h.slowloris {
        let h = h.clone();
        set.spawn(async move {
            let tcp = connect(h.starttls, source).await?;
            let chunks: Vec<Vec<u8>> = h.header().bytes().map(|b| vec![b]).collect();
            let (mut reader, mut writer) = tokio::io::split(tcp);
            let writing = tokio::spawn(async move {
                for chunk in chunks {
                    if writer.write_all(&chunk).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
            let answer = said(&mut reader, h.patience()).await;
            writing.abort();
            stream_error(&answer, "connection-timeout")
        });
    }
    let mut ended = 0;
    while let Some(result) = set.join_next().await {
        result.map_err(|e| e.to_string())??;
        ended += 1;
    }
    Ok(format!(
        "{ended} slow connections ended with connection-timeout"
    ))
}

/// Connections opened as fast as possible that never log in: those beyond
/// the address's limit are refused at once, the others end at the login
/// deadline; every one gets its stream error.
async fn flood(h: Arc<Hostile>) -> Outcome {
    let source = Some(IpAddr::from([127, 0, 0, 3]));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..h.flood {
        let tcp = connect(h.starttls, source).await?;
        let h = h.clone();
        set.spawn(async move {
            let chunks = vec![h.header().into_bytes()];
            let answer = exchange(tcp, chunks, h.patience()).await;
            stream_error(&answer, "policy-violation")
                .map(|_| true)
                .or_else(|_| stream_error(&answer, "connection-timeout").map(|_| false))
        });
    }
    let (mut refused, mut timed_out) = (0, 0);
    while let Some(result) = set.join_next().await {
        if result.map_err(|e| e.to_string())?? {
            refused += 1;
        } else {
            timed_out += 1;
        }
    }
    Ok(format!(
        "{refused} refused with policy-violation, {timed_out} ended with connection-timeout"
    ))
}

/// Runs the battery; `Err` when any hostile client was not answered as it
/// should be, or the probe lost a message.
pub(crate) async fn run(ready: Arc<Ready>, hostile: Hostile) -> Result<(), String> {
    let hostile = Arc::new(hostile);

    let mut probe = crate::ready::connect(&ready, 0).await?;
    let probe_jid: jid::Jid = probe.jid().parse().map_err(|e| format!("{e}"))?;
    let baseline = hostile.server_pid.map(memory).transpose()?;
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(baseline.map_or(0, |m| m.0)));
    let sampler = hostile.server_pid.map(|pid| {
        let (stop, peak) = (stop.clone(), peak.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok((rss, _)) = memory(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });
    let probing = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut latencies = Latencies::default();
            let mut lost = 0usize;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let message = Message {
                    from: None,
                    to: Some(probe_jid.clone()),
                    id: format!("p{n}"),
                    kind: MessageType::Chat,
                    body: Some(n.to_string()),
                    element: None,
                };
                let sent = Instant::now();
                if probe.send_message(&message).await.is_err() {
                    lost += 1;
                    break;
                }
                let back = tokio::time::timeout(Duration::from_secs(5), async {
                    loop {
                        match probe.recv().await {
                            Ok(e) if e.attribute("id") == Some(message.id.as_str()) => {
                                return true;
                            }
                            Ok(_) => {}
                            Err(_) => return false,
                        }
                    }
                })
                .await;
                match back {
                    Ok(true) => latencies.push(sent.elapsed()),
                    _ => {
                        lost += 1;
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            probe.close().await;
            (latencies, lost)
        })
    };

    let start = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    macro_rules! attack {
        ($name:literal, $f:ident) => {{
            let attack = $f(hostile.clone());
            running.spawn(async move {
                let started = Instant::now();
                let outcome = attack.await;
                ($name, outcome, started.elapsed())
            });
        }};
    }
    attack!("DOCTYPE and entity expansion", doctype);
    attack!("undeclared entity", undeclared_entity);
    attack!("100,000-deep nesting", deep_nesting);
    attack!("10 MB stanza", huge_stanza);
    attack!("a million attributes", million_attributes);
    attack!("invalid UTF-8", invalid_utf8);
    attack!(
        "multibyte characters split across TLS records",
        split_multibyte
    );
    attack!("stanza before the stream header", stanza_before_header);
    attack!("second stream header mid-session", second_header);
    attack!("data after </stream:stream>", data_after_close);
    attack!(
        "plaintext injected after STARTTLS",
        injection_after_starttls
    );
    attack!(
        "plaintext instead of the TLS handshake",
        plaintext_instead_of_handshake
    );
    attack!("oversized SASL messages", oversized_sasl);
    attack!("slowloris connections", slowloris);
    attack!("flood of unauthenticated connections", flood);
    let mut failures = Vec::new();
    let mut results = Vec::new();
    while let Some(done) = running.join_next().await {
        let (name, outcome, took) = done.map_err(|e| e.to_string())?;
        match &outcome {
            Ok(what) => say(&format!(
                "ok    {name}: {what} ({:.1} s)",
                took.as_secs_f64()
            )),
            Err(why) => {
                say(&format!("FAIL  {name}: {why}"));
                failures.push(name);
            }
        }
        results.push(serde_json::json!({
            "attack": name, "ok": outcome.is_ok(),
            "outcome": outcome.unwrap_or_else(|e| e), "seconds": took.as_secs_f64(),
        }));
    }
    let battery = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (mut latencies, lost) = probing.await.map_err(|e| e.to_string())?;
    if let Some(sampler) = sampler {
        let _ = sampler.await;
    }
    let after = match hostile.server_pid {
        Some(pid) => Some(settled(pid, Duration::from_secs(2)).await?),
        None => None,
    };
    let (p50, p99, max) = (
        latencies.quantile_ms(0.5),
        latencies.quantile_ms(0.99),
        latencies.quantile_ms(1.0),
    );
    let mib = |kib: u64| {
        #[allow(clippy::cast_precision_loss)]
        let mib = kib as f64 / 1024.0;
        mib
    };
    let memory_text = match (baseline, after) {
        (Some(base), Some(after)) => format!(
            "; server RSS {:.1} MB before, {:.1} MB at the peak, {:.1} MB after",
            mib(base.0),
            mib(peak.load(Ordering::Relaxed)),
            mib(after.0)
        ),
        _ => String::new(),
    };
    let summary = serde_json::json!({
        "scenario": "hostile",
        "attacks": results,
        "failed": failures.len(),
        "seconds": battery.as_secs_f64(),
        "probe_round_trips": latencies.len(),
        "probe_lost": lost,
        "probe_p50_ms": p50, "probe_p99_ms": p99, "probe_max_ms": max,
        "rss_before_kib": baseline.map(|m| m.0),
        "rss_peak_kib": baseline.map(|_| peak.load(Ordering::Relaxed)),
        "rss_after_kib": after.map(|m| m.0),
    });
    if ready.json {
        say(&summary.to_string());
    } else {
        say(&format!(
            "hostile: {} of {} hostile clients answered as they should in {:.1} s; \
             probe: {} round trips, {lost} lost, p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms{memory_text}",
            results.len() - failures.len(),
            results.len(),
            battery.as_secs_f64(),
            latencies.len(),
        ));
    }
    if !failures.is_empty() {
        return Err(format!(
            "hostile clients not answered as expected: {failures:?}"
        ));
    }
    if lost > 0 || latencies.len() == 0 {
        return Err(format!("the probe lost {lost} messages"));
    }
    if hostile.max_p99_ms > 0.0 && p99 > hostile.max_p99_ms {
        return Err(format!(
            "the probe's p99 was {p99:.1} ms, above {} ms",
            hostile.max_p99_ms
        ));
    }
    Ok(())
}
