//! `sigil-bench`: a load generator for XMPP servers on loopback, built on
//! `sigil-client`. Every scenario is bounded in count and in time and
//! stops by itself.
//!
//! - `prepare`: a CA, one CA-signed client certificate per account, and
//!   `accounts.txt` for `sigil user import` (or a peer server's tools).
//! - `login`: a login storm; logins/s and latency percentiles.
//! - `idle`: many authenticated sessions held open; the server's memory
//!   per session from `/proc/PID/status`, and after they leave.
//! - `messaging`: pairs exchanging messages at a fixed rate or at
//!   saturation; delivered messages/s and end-to-end latency.
//! - `hostile`: the hostile-input battery, with a probe client measuring
//!   round trips meanwhile.
//! - `soak`: connection churn for a long while; the server's memory growth.

mod hostile;
mod soak;
mod stats;

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use sigil_client::{Client, Message, Presence, Transport};
use sigil_sasl::client::{AllowList, ClientConfig};
use stats::{Latencies, rate};

/// jemalloc, as the server: the generator shares the machine with the
/// server it measures, and glibc's malloc and free were a tenth of its
/// CPU per message.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Load generator for XMPP servers (loopback only).
#[derive(Debug, Parser)]
#[command(name = "sigil-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make DIR/ca.crt, DIR/certs/NAME.{crt,key} (CA-signed, one
    /// id-on-xmppAddr each) and DIR/accounts.txt (`name password` lines).
    Prepare {
        /// Where to write.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// How many accounts.
        #[arg(long, default_value_t = 100)]
        users: usize,
        /// The accounts' domain.
        #[arg(long, default_value = "localhost")]
        domain: String,
        /// Account names are PREFIX0, PREFIX1…
        #[arg(long, default_value = "bench")]
        prefix: String,
        /// The password of every account.
        #[arg(long, default_value = "bench-password")]
        password: String,
    },
    /// Log in COUNT times (TLS, SASL, bind, initial presence, close), at
    /// most CONCURRENCY at once.
    Login {
        #[command(flatten)]
        target: Target,
        /// How many logins.
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// Logins in flight at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Stop after this many seconds whatever the count.
        #[arg(long, default_value_t = 120)]
        max_seconds: u64,
    },
    /// Hold SESSIONS authenticated sessions, measure the server's memory,
    /// let them all leave and measure again.
    Idle {
        #[command(flatten)]
        target: Target,
        /// How many sessions.
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        /// Logins in flight at once while opening them.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Spread the connections over 127.0.0.1 … 127.0.0.N (one source
        /// address has about 28,000 ports).
        #[arg(long, default_value_t = 1)]
        sources: u8,
        /// The server's process id, for /proc/PID/status.
        #[arg(long)]
        server_pid: u32,
        /// Seconds to wait before each memory reading.
        #[arg(long, default_value_t = 3)]
        settle_seconds: u64,
        /// Stop opening sessions after this many seconds.
        #[arg(long, default_value_t = 600)]
        max_seconds: u64,
        /// Sessions that connect and leave before the baseline is read.
        #[arg(long, default_value_t = 500)]
        warmup: usize,
    },
    /// Registers each account's certificate with the server over XEP-0257
    /// (for servers that accept self-registered certificates rather than a
    /// CA, such as Prosody's mod_client_certs), logging in with the
    /// password.
    RegisterCerts {
        #[command(flatten)]
        target: Target,
    },
    /// PAIRS senders each send to their own receiver; RATE messages/s in
    /// all (0: as fast as WINDOW unanswered messages per pair allow).
    Messaging {
        #[command(flatten)]
        target: Target,
        /// Sender/receiver pairs.
        #[arg(long, default_value_t = 10)]
        pairs: usize,
        /// Offered messages per second, all pairs together; 0 saturates.
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Messages in flight per pair at saturation.
        #[arg(long, default_value_t = 32)]
        window: u64,
        /// How long to send.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// SESSIONS sessions held while CHURN a second leave and are replaced,
    /// each sending itself a message every 5 s, for SECONDS; the server's
    /// RSS growth from the first minute to the last.
    Soak {
        #[command(flatten)]
        target: Target,
        /// Sessions held at once.
        #[arg(long, default_value_t = 2000)]
        sessions: usize,
        /// Sessions that leave (and are replaced) per second.
        #[arg(long, default_value_t = 50)]
        churn: usize,
        /// How long.
        #[arg(long, default_value_t = 1800)]
        seconds: u64,
        /// The server's process id, for /proc/PID/status.
        #[arg(long)]
        server_pid: u32,
        /// Seconds between memory readings.
        #[arg(long, default_value_t = 10)]
        sample: u64,
    },
    /// Hostile clients, all at once (malformed and oversized XML, protocol
    /// tricks, slow and flooding connections), while a probe client (the
    /// first account, on `--address` and `--transport`) sends itself a
    /// message every 20 ms. `--address` must be a STARTTLS listener.
    /// Fails if a hostile client is not answered as the protocol says or
    /// the probe loses a message. Uses 127.0.0.2 and 127.0.0.3 as source
    /// addresses for the slow and the flooding connections.
    Hostile {
        #[command(flatten)]
        target: Target,
        /// The server's direct TLS listener.
        #[arg(long)]
        direct_tls: SocketAddr,
        /// The server's process id, for its memory (/proc/PID/status).
        #[arg(long)]
        server_pid: Option<u32>,
        /// The server's login timeout in seconds (how long slow
        /// connections take to be closed).
        #[arg(long, default_value_t = 30)]
        login_timeout: u64,
        /// Slow connections, from 127.0.0.2.
        #[arg(long, default_value_t = 20)]
        slowloris: usize,
        /// Flooding connections, from 127.0.0.3.
        #[arg(long, default_value_t = 300)]
        flood: usize,
        /// Fail if the probe's p99 round trip is above this many
        /// milliseconds (0: report only).
        #[arg(long, default_value_t = 0.0)]
        max_p99_ms: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TransportArg {
    Starttls,
    DirectTls,
    Websocket,
    Bosh,
}

/// Which server, how, and as whom.
#[derive(Debug, Args)]
struct Target {
    /// The server's address for this transport.
    #[arg(long)]
    address: SocketAddr,
    /// The transport.
    #[arg(long, value_enum, default_value_t = TransportArg::Starttls)]
    transport: TransportArg,
    /// The URL for WebSocket or BOSH (default
    /// wss://DOMAIN:PORT/xmpp-websocket or https://DOMAIN:PORT/http-bind).
    #[arg(long)]
    url: Option<String>,
    /// The server's certificate (PEM); it is pinned.
    #[arg(long, value_name = "FILE")]
    server_cert: PathBuf,
    /// The directory `prepare` wrote.
    #[arg(long, value_name = "DIR")]
    accounts: PathBuf,
    /// EXTERNAL (the account's certificate) or a password mechanism
    /// (SCRAM-SHA-256…).
    #[arg(long, default_value = "EXTERNAL")]
    mechanism: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// The server's process id: its CPU time is reported per login or
    /// message (from /proc/PID/stat).
    #[arg(long = "cpu-of", value_name = "PID")]
    cpu_of: Option<u32>,
}

/// One account of a prepared directory.
struct Account {
    jid: String,
    /// The account's client certificate, PEM.
    certificate: Vec<u8>,
    /// Trust (the pinned server certificate) and, for EXTERNAL, the
    /// account's client certificate: built once, shared by its connections.
    tls: sigil_client::TlsSettings,
}

/// A target made ready: accounts read, their TLS settings built.
struct Ready {
    address: SocketAddr,
    transport: Transport,
    url: Option<String>,
    accounts: Vec<Account>,
    /// Trust without a client certificate (password logins).
    without_certificate: sigil_client::TlsSettings,
    password: String,
    mechanism: String,
    json: bool,
    cpu_of: Option<u32>,
}

/// CPU seconds (user + system) a process has used so far, from
/// /proc/PID/stat (USER_HZ is 100 on Linux).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    #[allow(clippy::cast_precision_loss)]
    Some((user + system) as f64 / 100.0)
}

/// CPU used by the server and by this process over a run.
struct CpuMeter {
    server: Option<(String, f64)>,
    own: Option<f64>,
}

impl CpuMeter {
    fn start(server: Option<u32>) -> Self {
        let server = server.and_then(|pid| {
            let pid = pid.to_string();
            cpu_seconds(&pid).map(|s| (pid, s))
        });
        Self {
            server,
            own: cpu_seconds("self"),
        }
    }

    /// (server, own) CPU milliseconds per event.
    fn per_event(&self, events: usize) -> (Option<f64>, Option<f64>) {
        #[allow(clippy::cast_precision_loss)]
        let events = events.max(1) as f64;
        let server = self
            .server
            .as_ref()
            .and_then(|(pid, before)| cpu_seconds(pid).map(|now| (now - before) * 1000.0 / events));
        let own = self
            .own
            .and_then(|before| cpu_seconds("self").map(|now| (now - before) * 1000.0 / events));
        (server, own)
    }
}

fn cpu_text(cpu: (Option<f64>, Option<f64>), what: &str) -> String {
    let mut out = String::new();
    if let Some(server) = cpu.0 {
        out.push_str(&format!("; server CPU {server:.3} ms/{what}"));
    }
    if let Some(own) = cpu.1 {
        out.push_str(&format!("; load generator CPU {own:.3} ms/{what}"));
    }
    out
}

impl Ready {
    fn load(target: &Target) -> Result<Self, String> {
        let pem = read(&target.server_cert)?;
        let der = sigil_x509::pem_certificates(&pem)
            .map_err(|e| format!("{}: {e}", target.server_cert.display()))?
            .into_iter()
            .next()
            .ok_or_else(|| format!("{}: no certificate", target.server_cert.display()))?;
        let pin = sigil_x509::CertificateInfo::from_der(&der)
            .map_err(|e| e.to_string())?
            .sha256;
        let listing = String::from_utf8(read(&target.accounts.join("accounts.txt"))?)
            .map_err(|_| "accounts.txt is not UTF-8".to_owned())?;
        let domain = String::from_utf8(read(&target.accounts.join("domain"))?)
            .map_err(|_| "domain is not UTF-8".to_owned())?;
        let mut accounts = Vec::new();
        let mut password = String::new();
        let tls_error = |e: sigil_client::Error| e.to_string();
        let without_certificate = Client::builder(format!("bench@{}", domain.trim()))
            .pin_sha256(pin)
            .build_tls()
            .map_err(tls_error)?;
        for line in listing.lines().filter(|l| !l.trim().is_empty()) {
            let (name, pw) = line.split_once(' ').unwrap_or((line, ""));
            password = pw.to_owned();
            let certs = target.accounts.join("certs");
            let jid = format!("{name}@{}", domain.trim());
            let certificate = read(&certs.join(format!("{name}.crt")))?;
            let tls = if target.mechanism == "EXTERNAL" {
                Client::builder(jid.clone())
                    .pin_sha256(pin)
                    .client_certificate_pem(
                        &certificate,
                        &read(&certs.join(format!("{name}.key")))?,
                    )
                    .build_tls()
                    .map_err(tls_error)?
            } else {
                without_certificate.clone()
            };
            accounts.push(Account {
                jid,
                certificate,
                tls,
            });
        }
        if accounts.is_empty() {
            return Err("accounts.txt lists no accounts".into());
        }
        let transport = match target.transport {
            TransportArg::Starttls => Transport::StartTls,
            TransportArg::DirectTls => Transport::DirectTls,
            TransportArg::Websocket => Transport::WebSocket,
            TransportArg::Bosh => Transport::Bosh,
        };
        let domain = domain.trim();
        let url = target.url.clone().or_else(|| match transport {
            Transport::WebSocket => Some(format!(
                "wss://{domain}:{}/xmpp-websocket",
                target.address.port()
            )),
            Transport::Bosh => Some(format!(
                "https://{domain}:{}/http-bind",
                target.address.port()
            )),
            _ => None,
        });
        Ok(Self {
            address: target.address,
            transport,
            url,
            accounts,
            without_certificate,
            password,
            mechanism: target.mechanism.clone(),
            json: target.json,
            cpu_of: target.cpu_of,
        })
    }

    /// A builder for account `index` (modulo the number of accounts).
    fn builder(&self, index: usize, source: Option<IpAddr>) -> sigil_client::ClientBuilder {
        let account = &self.accounts[index % self.accounts.len()];
        let mut builder = Client::builder(account.jid.clone())
            .address(self.address)
            .transport(self.transport)
            .tls(account.tls.clone())
            .timeout(Duration::from_secs(30))
            .resource(format!("b{index}"));
        if let Some(url) = &self.url {
            builder = builder.url(url.clone());
        }
        if let Some(source) = source {
            builder = builder.local_address(source);
        }
        if self.mechanism == "EXTERNAL" {
            builder
        } else {
            builder
                .password(self.password.clone())
                .sasl(ClientConfig::new().allow(AllowList::new().name(self.mechanism.clone())))
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn prepare(
    out: &Path,
    users: usize,
    domain: &str,
    prefix: &str,
    password: &str,
) -> Result<(), String> {
    use sigil_x509::generate::{Ca, Options, client_certificate};
    if password.contains(char::is_whitespace) || password.is_empty() {
        return Err("the password must be one word".into());
    }
    let certs = out.join("certs");
    std::fs::create_dir_all(&certs).map_err(|e| format!("{}: {e}", certs.display()))?;
    let options = Options::new(sigil_x509::OffsetDateTime::now_utc());
    let ca = Ca::new("sigil-bench CA", &options).map_err(|e| e.to_string())?;
    let write = |path: PathBuf, data: &[u8]| {
        std::fs::write(&path, data).map_err(|e| format!("{}: {e}", path.display()))
    };
    write(out.join("ca.crt"), ca.issued().certificate_pem().as_bytes())?;
    write(out.join("domain"), domain.as_bytes())?;
    let mut listing = String::new();
    for i in 0..users {
        let name = format!("{prefix}{i}");
        let jid = sigil_x509::Jid::new(&format!("{name}@{domain}")).map_err(|e| e.to_string())?;
        let issued = client_certificate(&[jid], &options, Some(&ca)).map_err(|e| e.to_string())?;
        write(
            certs.join(format!("{name}.crt")),
            issued.certificate_pem().as_bytes(),
        )?;
        write(
            certs.join(format!("{name}.key")),
            issued.key_pem().as_bytes(),
        )?;
        listing.push_str(&format!("{name} {password}\n"));
    }
    write(out.join("accounts.txt"), listing.as_bytes())?;
    say(&format!(
        "wrote {users} accounts for {domain} to {}",
        out.display()
    ));
    Ok(())
}

fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}

/// Failures counted, with the first one kept to tell why.
#[derive(Default)]
struct Failures {
    count: AtomicUsize,
    first: std::sync::Mutex<Option<String>>,
}

impl Failures {
    fn record(&self, error: &sigil_client::Error) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first.lock() {
            first.get_or_insert_with(|| error.to_string());
        }
    }

    fn report(&self) -> (usize, String) {
        let first = self
            .first
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .unwrap_or_default();
        (self.count.load(Ordering::Relaxed), first)
    }
}

async fn login(
    ready: Arc<Ready>,
    count: usize,
    concurrency: usize,
    max: Duration,
) -> Result<(), String> {
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Failures::default());
    let cpu = CpuMeter::start(ready.cpu_of);
    let start = Instant::now();
    let deadline = start + max;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (ready, next, failures) = (ready.clone(), next.clone(), failures.clone());
        workers.spawn(async move {
            let mut latencies = Latencies::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count || Instant::now() >= deadline {
                    return latencies;
                }
                let began = Instant::now();
                let result = async {
                    let mut client = ready.builder(i, None).connect().await?;
                    client.send_presence(&Presence::available()).await?;
                    client.close().await;
                    Ok::<_, sigil_client::Error>(())
                }
                .await;
                match result {
                    Ok(()) => latencies.push(began.elapsed()),
                    Err(error) => failures.record(&error),
                }
            }
        });
    }
    let mut latencies = Latencies::default();
    while let Some(done) = workers.join_next().await {
        latencies.extend(done.map_err(|e| e.to_string())?);
    }
    let elapsed = start.elapsed();
    let (failed, why) = failures.report();
    let ok = latencies.len();
    let (p50, p99) = (latencies.quantile_ms(0.5), latencies.quantile_ms(0.99));
    let per_second = rate(ok, elapsed);
    let cpu = cpu.per_event(ok);
    if ready.json {
        say(&serde_json::json!({
            "server_cpu_ms_per_login": cpu.0, "generator_cpu_ms_per_login": cpu.1,
            "scenario": "login",
            "transport": ready.transport.as_str(),
            "mechanism": ready.mechanism,
            "ok": ok, "failed": failed, "first_error": why,
            "seconds": elapsed.as_secs_f64(),
            "logins_per_second": per_second,
            "p50_ms": p50, "p99_ms": p99,
            "concurrency": concurrency,
        })
        .to_string());
    } else {
        say(&format!(
            "login ({}, {}): {ok} ok, {failed} failed in {:.2} s: {per_second:.0} logins/s; \
             latency p50 {p50:.1} ms, p99 {p99:.1} ms{}{}",
            ready.transport.as_str(),
            ready.mechanism,
            elapsed.as_secs_f64(),
            cpu_text(cpu, "login"),
            if why.is_empty() {
                String::new()
            } else {
                format!("; first failure: {why}")
            }
        ));
    }
    if ok == 0 {
        return Err("no login succeeded".into());
    }
    Ok(())
}

/// VmRSS and RssAnon of a process, in KiB.
fn memory(pid: u32) -> Result<(u64, u64), String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read /proc/{pid}/status: {e}"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("RssAnon:")?))
}

#[allow(clippy::cast_precision_loss)]
fn per(numerator: u64, base: u64, count: usize) -> f64 {
    numerator.saturating_sub(base) as f64 / count.max(1) as f64
}

/// Reads the memory once it stopped falling: after `settle`, then every
/// second until two readings are within 1% (at most 30 s).
async fn settled(pid: u32, settle: Duration) -> Result<(u64, u64), String> {
    tokio::time::sleep(settle).await;
    let mut last = memory(pid)?;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = memory(pid)?;
        if last.0.abs_diff(now.0) <= (last.0 / 100).max(256) {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// Opens up to `sessions` sessions, `concurrency` logins at a time.
async fn open_sessions(
    ready: &Arc<Ready>,
    sessions: usize,
    concurrency: usize,
    sources: u8,
    deadline: Instant,
    failures: &Arc<Failures>,
) -> Vec<Client> {
    let next = Arc::new(AtomicUsize::new(0));
    let (opened_tx, mut opened) = tokio::sync::mpsc::unbounded_channel::<Client>();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (ready, next, failures, opened_tx) = (
            ready.clone(),
            next.clone(),
            failures.clone(),
            opened_tx.clone(),
        );
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= sessions || Instant::now() >= deadline {
                    return;
                }
                let source = (sources > 1).then(|| {
                    let last = u8::try_from(i % usize::from(sources)).unwrap_or(0) + 1;
                    IpAddr::from([127, 0, 0, last])
                });
                match ready.builder(i, source).connect().await {
                    Ok(client) => {
                        let _ = opened_tx.send(client);
                    }
                    Err(error) => failures.record(&error),
                }
            }
        });
    }
    drop(opened_tx);
    let mut clients = Vec::with_capacity(sessions);
    while let Some(client) = opened.recv().await {
        clients.push(client);
    }
    while workers.join_next().await.is_some() {}
    clients
}

/// Every session closes its stream, 256 at a time.
async fn close_all(clients: Vec<Client>) {
    let mut closing = tokio::task::JoinSet::new();
    for client in clients {
        closing.spawn(client.close());
        if closing.len() >= 256 {
            closing.join_next().await;
        }
    }
    while closing.join_next().await.is_some() {}
}

#[allow(clippy::too_many_arguments)]
async fn idle(
    ready: Arc<Ready>,
    sessions: usize,
    concurrency: usize,
    sources: u8,
    pid: u32,
    settle: Duration,
    max: Duration,
    warmup: usize,
) -> Result<(), String> {
    let failures = Arc::new(Failures::default());
    if warmup > 0 {
        // Caches that fill once (the database's pages, the runtime's
        // tables) are part of an idle server, not of its sessions.
        let deadline = Instant::now() + max;
        let warm = open_sessions(&ready, warmup, concurrency, sources, deadline, &failures).await;
        close_all(warm).await;
    }
    let (base_rss, base_anon) = settled(pid, settle).await?;
    let start = Instant::now();
    let deadline = start + max;
    let clients = open_sessions(&ready, sessions, concurrency, sources, deadline, &failures).await;
    let opened_in = start.elapsed();
    tokio::time::sleep(settle).await;
    let (rss, anon) = memory(pid)?;
    let held = clients.len();
    close_all(clients).await;
    let (after_rss, after_anon) = settled(pid, settle).await?;
    let (failed, why) = failures.report();
    let rss_per = per(rss, base_rss, held);
    let anon_per = per(anon, base_anon, held);
    #[allow(clippy::cast_precision_loss)]
    let returned = (after_rss as f64 / base_rss.max(1) as f64 - 1.0) * 100.0;
    if ready.json {
        say(&serde_json::json!({
            "scenario": "idle",
            "transport": ready.transport.as_str(),
            "mechanism": ready.mechanism,
            "sessions": held, "failed": failed, "first_error": why,
            "open_seconds": opened_in.as_secs_f64(),
            "baseline_rss_kib": base_rss, "baseline_anon_kib": base_anon,
            "rss_kib": rss, "anon_kib": anon,
            "rss_kib_per_session": rss_per, "anon_kib_per_session": anon_per,
            "after_rss_kib": after_rss, "after_anon_kib": after_anon,
            "after_vs_baseline_percent": returned,
        })
        .to_string());
    } else {
        say(&format!(
            "idle ({}, {}): {held} sessions held ({failed} failed) after {:.1} s; server RSS \
             {base_rss} → {rss} KiB ({rss_per:.1} KiB/session), anonymous {base_anon} → {anon} \
             KiB ({anon_per:.1} KiB/session); after they left: RSS {after_rss} KiB \
             ({returned:+.1}% of the baseline), anonymous {after_anon} KiB{}",
            ready.transport.as_str(),
            ready.mechanism,
            opened_in.as_secs_f64(),
            if why.is_empty() {
                String::new()
            } else {
                format!("; first failure: {why}")
            }
        ));
    }
    if held == 0 {
        return Err("no session could be opened".into());
    }
    Ok(())
}

async fn connect(ready: &Ready, index: usize) -> Result<Client, String> {
    ready
        .builder(index, None)
        .connect()
        .await
        .map_err(|e| format!("account {index}: {e}"))
}

async fn register_certs(ready: Arc<Ready>) -> Result<(), String> {
    let mut registered = 0usize;
    for (index, account) in ready.accounts.iter().enumerate() {
        let der = sigil_x509::pem_certificates(&account.certificate)
            .map_err(|e| format!("{}: {e}", account.jid))?
            .into_iter()
            .next()
            .ok_or_else(|| format!("{}: no certificate", account.jid))?;
        let mut client = Client::builder(account.jid.clone())
            .address(ready.address)
            .transport(ready.transport)
            .tls(ready.without_certificate.clone())
            .password(ready.password.clone())
            .resource(format!("register{index}"))
            .connect()
            .await
            .map_err(|e| format!("{}: {e}", account.jid))?;
        match sigil_client::saslcert::append(&mut client, "bench", &der, false).await {
            Ok(()) => registered += 1,
            // Registered already by an earlier run.
            Err(sigil_client::Error::Iq(error))
                if error.condition == sigil_client::StanzaCondition::Conflict => {}
            Err(error) => return Err(format!("{}: {error}", account.jid)),
        }
        client.close().await;
    }
    say(&format!(
        "registered {registered} certificates ({} accounts)",
        ready.accounts.len()
    ));
    Ok(())
}

/// Shared between a pair's sender and receiver.
#[derive(Default)]
struct Pair {
    received: AtomicU64,
    progress: tokio::sync::Notify,
}

async fn messaging(
    ready: Arc<Ready>,
    pairs: usize,
    offered: u64,
    window: u64,
    seconds: u64,
) -> Result<(), String> {
    let pairs = pairs.max(1);
    if ready.accounts.len() < 2 * pairs {
        return Err(format!(
            "{pairs} pairs need {} accounts; {} are prepared",
            2 * pairs,
            ready.accounts.len()
        ));
    }
    let mut senders = Vec::with_capacity(pairs);
    let mut receivers = Vec::with_capacity(pairs);
    for p in 0..pairs {
        let sender = connect(&ready, 2 * p).await?;
        let mut receiver = connect(&ready, 2 * p + 1).await?;
        receiver
            .send_presence(&Presence::available())
            .await
            .map_err(|e| e.to_string())?;
        senders.push(sender);
        receivers.push(receiver);
    }
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let state: Vec<Arc<Pair>> = (0..pairs).map(|_| Arc::new(Pair::default())).collect();
    let mut receiving = tokio::task::JoinSet::new();
    for (mut receiver, pair) in receivers.into_iter().zip(state.iter().cloned()) {
        let stop = stop.clone();
        receiving.spawn(async move {
            let mut latencies = Latencies::default();
            loop {
                // Elements, not typed stanzas: reading the body is all
                // that is needed, and the generator shares the machine.
                let next = tokio::time::timeout(Duration::from_millis(500), receiver.recv());
                match next.await {
                    Ok(Ok(element)) if element.name() == "message" => {
                        let body = element.child("body", sigil_xml::ns::CLIENT);
                        if let Some(sent) = body.and_then(|b| b.text().parse::<u64>().ok()) {
                            let now =
                                u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
                            latencies.push(Duration::from_micros(now.saturating_sub(sent)));
                            pair.received.fetch_add(1, Ordering::Relaxed);
                            pair.progress.notify_one();
                        }
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => break,
                    Err(_) if stop.load(Ordering::Relaxed) => break,
                    Err(_) => {}
                }
            }
            receiver.close().await;
            latencies
        });
    }
    let targets: Vec<jid::Jid> = state
        .iter()
        .enumerate()
        .map(|(p, _)| {
            let account = &ready.accounts[(2 * p + 1) % ready.accounts.len()];
            format!("{}/b{}", account.jid, 2 * p + 1)
                .parse()
                .map_err(|e| format!("{e}"))
        })
        .collect::<Result<_, String>>()?;
    let duration = Duration::from_secs(seconds.max(1));
    let cpu = CpuMeter::start(ready.cpu_of);
    let start = Instant::now();
    let mut sending = tokio::task::JoinSet::new();
    for ((mut sender, pair), to) in senders.into_iter().zip(state.iter().cloned()).zip(targets) {
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        let interval =
            (offered > 0).then(|| Duration::from_secs_f64(pairs as f64 / offered as f64));
        sending.spawn(async move {
            let mut sent = 0u64;
            let mut ticker = interval.map(|i| {
                let mut t = tokio::time::interval(i);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                t
            });
            while start.elapsed() < duration {
                match ticker.as_mut() {
                    Some(ticker) => {
                        ticker.tick().await;
                    }
                    None => {
                        while sent.saturating_sub(pair.received.load(Ordering::Relaxed)) >= window {
                            let wait = tokio::time::timeout(
                                Duration::from_millis(100),
                                pair.progress.notified(),
                            );
                            let _ = wait.await;
                            if start.elapsed() >= duration {
                                break;
                            }
                        }
                    }
                }
                let now = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
                // No id: `Message::chat` would draw a random one per
                // message from the kernel.
                let message = Message {
                    from: None,
                    to: Some(to.clone()),
                    id: String::new(),
                    kind: sigil_client::MessageType::Chat,
                    body: Some(now.to_string()),
                    element: None,
                };
                if sender.send_message(&message).await.is_err() {
                    break;
                }
                sent += 1;
            }
            sender.close().await;
            sent
        });
    }
    let mut sent = 0u64;
    while let Some(done) = sending.join_next().await {
        sent += done.map_err(|e| e.to_string())?;
    }
    let send_window = start.elapsed();
    // Let the last messages arrive.
    let drain = Instant::now() + Duration::from_secs(5);
    while state
        .iter()
        .map(|p| p.received.load(Ordering::Relaxed))
        .sum::<u64>()
        < sent
        && Instant::now() < drain
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Latencies::default();
    while let Some(done) = receiving.join_next().await {
        latencies.extend(done.map_err(|e| e.to_string())?);
    }
    let delivered = latencies.len();
    let per_second = rate(delivered, send_window);
    let (p50, p99) = (latencies.quantile_ms(0.5), latencies.quantile_ms(0.99));
    let lost = sent.saturating_sub(delivered as u64);
    let cpu = cpu.per_event(delivered);
    if ready.json {
        say(&serde_json::json!({
            "server_cpu_ms_per_message": cpu.0, "generator_cpu_ms_per_message": cpu.1,
            "scenario": "messaging",
            "transport": ready.transport.as_str(),
            "pairs": pairs, "offered_per_second": offered, "window": window,
            "sent": sent, "delivered": delivered, "undelivered": lost,
            "seconds": send_window.as_secs_f64(),
            "delivered_per_second": per_second,
            "p50_ms": p50, "p99_ms": p99,
        })
        .to_string());
    } else {
        let offered = if offered == 0 {
            format!("saturation (window {window})")
        } else {
            format!("{offered}/s offered")
        };
        say(&format!(
            "messaging ({}, {pairs} pairs, {offered}): {delivered} of {sent} delivered in {:.1} s: {per_second:.0} msgs/s; latency p50 {p50:.2} ms, p99 {p99:.2} ms{}",
            ready.transport.as_str(),
            send_window.as_secs_f64(),
            cpu_text(cpu, "message")
        ));
    }
    if delivered == 0 {
        return Err("no message was delivered".into());
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "sigil-bench: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Prepare {
            out,
            users,
            domain,
            prefix,
            password,
        } => prepare(&out, users, &domain, &prefix, &password),
        Command::Login {
            target,
            count,
            concurrency,
            max_seconds,
        } => Ready::load(&target).and_then(|ready| {
            runtime.block_on(login(
                Arc::new(ready),
                count,
                concurrency,
                Duration::from_secs(max_seconds),
            ))
        }),
        Command::Idle {
            target,
            sessions,
            concurrency,
            sources,
            server_pid,
            settle_seconds,
            max_seconds,
            warmup,
        } => Ready::load(&target).and_then(|ready| {
            runtime.block_on(idle(
                Arc::new(ready),
                sessions,
                concurrency,
                sources.max(1),
                server_pid,
                Duration::from_secs(settle_seconds),
                Duration::from_secs(max_seconds),
                warmup,
            ))
        }),
        Command::RegisterCerts { target } => {
            Ready::load(&target).and_then(|ready| runtime.block_on(register_certs(Arc::new(ready))))
        }
        Command::Messaging {
            target,
            pairs,
            rate,
            window,
            seconds,
        } => Ready::load(&target).and_then(|ready| {
            runtime.block_on(messaging(
                Arc::new(ready),
                pairs,
                rate,
                window.max(1),
                seconds,
            ))
        }),
        Command::Soak {
            target,
            sessions,
            churn,
            seconds,
            server_pid,
            sample,
        } => Ready::load(&target).and_then(|ready| {
            runtime.block_on(soak::run(
                Arc::new(ready),
                soak::Soak {
                    sessions,
                    churn,
                    seconds,
                    server_pid,
                    sample,
                },
            ))
        }),
        Command::Hostile {
            target,
            direct_tls,
            server_pid,
            login_timeout,
            slowloris,
            flood,
            max_p99_ms,
        } => Ready::load(&target).and_then(|ready| {
            let account = ready.accounts.first().ok_or("no accounts")?;
            let (user, domain) = account
                .jid
                .split_once('@')
                .map(|(u, d)| (u.to_owned(), d.to_owned()))
                .ok_or("an account without a domain")?;
            let hostile = hostile::Hostile {
                starttls: target.address,
                direct_tls,
                tls: hostile::Hostile::trust(&target.server_cert)?,
                domain,
                user,
                password: ready.password.clone(),
                login_timeout,
                slowloris,
                flood,
                server_pid,
                max_p99_ms,
            };
            runtime.block_on(hostile::run(Arc::new(ready), hostile))
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "sigil-bench: {message}");
            ExitCode::FAILURE
        }
    }
}
