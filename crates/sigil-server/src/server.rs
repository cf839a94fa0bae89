//! Starting and stopping a server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sigil_proto::server::{ServerStreamConfig, TlsMode};
use sigil_store::{AnyStore, Store};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::component::ComponentListener;
use crate::config::{ClientCertificatePolicy, Config, ListenerKind};
use crate::context::Context;
use crate::router::Router;
use crate::tls::ServerIdentity;
use crate::transport::http::HttpSettings;
use crate::wire::Listener;

/// Why a server could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// A running server.
pub struct Server {
    context: Arc<Context>,
    identity: Arc<ServerIdentity>,
    addresses: Vec<(ListenerKind, SocketAddr)>,
    shutdown: watch::Sender<bool>,
    /// Every connection task holds a clone of the sender; when all are
    /// gone, every connection has ended.
    done_sender: Option<mpsc::Sender<()>>,
    done: mpsc::Receiver<()>,
    accept_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Tells the task that checks sessions against the trusted CAs and
    /// lists to do it now.
    trust_changed: Arc<tokio::sync::Notify>,
    /// The cluster tasks, which run until every connection has ended.
    cluster_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Where metrics are served, if they are.
    metrics_address: Option<SocketAddr>,
}

impl Server {
    /// Opens the store named by the configuration (paths relative to
    /// `base`) and starts the server.
    pub async fn start(config: &Config, base: &Path) -> Result<Self, StartError> {
        let store = open_store(&config.storage, base).await?;
        Self::start_with_store(config, base, store.shared()).await
    }

    /// Starts with an already-open store.
    pub async fn start_with_store(
        config: &Config,
        base: &Path,
        store: Arc<dyn Store>,
    ) -> Result<Self, StartError> {
        config.validate().map_err(|e| StartError(e.to_string()))?;
        let (certificate, key) = certificate_paths(config, base);
        let identity = Arc::new(ServerIdentity::load(&certificate, &key).map_err(StartError)?);
        let offline = match config.cluster.enabled() {
            // Every node stores offline messages.
            true => crate::context::OfflineIndex::everyone(),
            false => crate::context::OfflineIndex::new(
                store
                    .offline_owners()
                    .await
                    .map_err(|e| StartError(format!("reading the offline messages: {e}")))?,
            ),
        };
        let issuing_ca = match &config.auth.issuing_ca {
            Some(dir) => Some(
                crate::issuing::IssuingCa::load(&base.join(dir), config.auth.issued_days)
                    .map_err(StartError)?,
            ),
            None => None,
        };
        let archive = crate::archive::Archive::start(&config.archive, store.clone());
        let (router, cluster) = match config.cluster.enabled() {
            false => (Arc::new(Router::new()), None),
            true => {
                // Numbers unique in the cluster: a random start per run.
                let mut first = [0u8; 4];
                getrandom::fill(&mut first).map_err(|e| {
                    StartError(format!("the system's random generator failed: {e}"))
                })?;
                let router = Arc::new(Router::with_serials_from(
                    u64::from(u32::from_le_bytes(first)) << 32,
                ));
                let cluster = crate::cluster::Cluster::connect(
                    &config.cluster,
                    base,
                    router.clone(),
                    config.limits.max_stanza_bytes,
                )
                .await
                .map_err(StartError)?;
                (router, Some(cluster))
            }
        };
        let context = Arc::new(Context {
            domain: config.domain.clone(),
            archive,
            store,
            router,
            cluster: cluster.clone(),
            metrics: crate::metrics::Metrics::default(),
            limits: config.limits,
            anchors: crate::trust::TrustAnchors::new(
                Some(base.join(&config.auth.trusted_cas)),
                Some(base.join(&config.auth.crls)),
            ),
            external_alone: config.auth.external_alone,
            blocklists: crate::blocklists::Blocklists::default(),
            profiles: crate::profiles::Profiles::default(),
            offline,
            pending: crate::limits::Pending::new(config.limits.max_pending_per_address),
            resumable: crate::session::Resumable::default(),
            saved_sessions: std::sync::Mutex::default(),
            fences: crate::context::Fences::default(),
            trust_checked: std::sync::atomic::AtomicU64::default(),
            started_at: time::OffsetDateTime::now_utc().unix_timestamp(),
            components: config.components.iter().map(|c| c.domain.clone()).collect(),
            admins: config.admins().map_err(|e| StartError(e.to_string()))?,
            adhoc: crate::adhoc::Sessions::default(),
            issuing_ca,
            invites: config.invites.clone(),
            https_port: std::sync::OnceLock::new(),
            form_key: crate::formkey::FormKey::generate(),
            fast: match config.sasl.fast_token_days {
                0 => None,
                days => Some(
                    crate::fastkey::FastTokens::load_or_create(&base.join("fast.key"), days)
                        .map_err(StartError)?,
                ),
            },
        });
        let components = match config.components.is_empty() {
            true => None,
            false => Some(Arc::new(
                ComponentListener::new(config, base).map_err(StartError)?,
            )),
        };
        let sasl = Arc::new(sasl_config(
            &config.sasl.mechanisms,
            config.sasl.fast_token_days > 0,
        ));
        let (shutdown, _) = watch::channel(false);
        let (done_sender, done) = mpsc::channel(1);
        let mut addresses = Vec::new();
        // Read once now (errors show at start), and the reading to check
        // sessions against from then on.
        let reading = {
            let context = context.clone();
            tokio::task::spawn_blocking(move || context.anchors.reading().generation)
                .await
                .map_err(|e| StartError(format!("reading the trusted CAs: {e}")))?
        };
        context
            .trust_checked
            .store(reading, std::sync::atomic::Ordering::SeqCst);
        let trust_changed = Arc::new(tokio::sync::Notify::new());
        let cluster_tasks = match &cluster {
            Some(cluster) => {
                let hooks: crate::cluster::SharedHooks = Arc::new(NodeHooks(context.clone()));
                cluster.start(&hooks)
            }
            None => Vec::new(),
        };
        let mut accept_tasks = vec![
            tokio::spawn(forget_saved_sessions(context.clone())),
            tokio::spawn(watch_trust(context.clone(), trust_changed.clone())),
        ];
        if config.auth.expiry_warning_days > 0 {
            accept_tasks.push(tokio::spawn(crate::expiry::warn(
                context.clone(),
                config.auth.expiry_warning_days,
            )));
        }
        if config.archive.enabled {
            accept_tasks.push(tokio::spawn(crate::archive::expire(
                context.store.clone(),
                config.archive.clone(),
            )));
        }
        // Invitations can be made with redemption off: they expire all the same.
        accept_tasks.push(tokio::spawn(crate::invites::expire(context.store.clone())));
        let mut bound = Vec::new();
        let mut component_sockets = Vec::new();
        for listener_config in &config.listening() {
            if listener_config.kind == ListenerKind::Component {
                let (socket, local) = bind(listener_config.address).await?;
                crate::component::warn_unless_loopback(local);
                addresses.push((ListenerKind::Component, local));
                component_sockets.push(socket);
                continue;
            }
            // XEP-0368: direct TLS says xmpp-client; HTTPS speaks
            // HTTP/1.1 (a client offering only h2 is refused there).
            let alpn: &[&[u8]] = match listener_config.kind {
                ListenerKind::DirectTls => &[crate::tls::ALPN_XMPP_CLIENT],
                ListenerKind::Https => &[b"http/1.1"],
                ListenerKind::Starttls | ListenerKind::Component => &[],
            };
            let tls = identity
                .server_config(listener_config.client_certificates, alpn)
                .map_err(StartError)?;
            let mut stream = ServerStreamConfig::new(config.domain.clone(), sasl.clone());
            stream.tls = match listener_config.kind {
                ListenerKind::DirectTls | ListenerKind::Https => TlsMode::Direct,
                ListenerKind::Starttls | ListenerKind::Component => TlsMode::Required,
            };
            stream.limits = config.framer_limits();
            stream.max_unacked = config.limits.session_queue;
            stream.resume_seconds = config.limits.resume_timeout_seconds;
            stream.more_features = Arc::new([crate::features::caps(&context)]);
            // A device joins with the certificate it presents: only where
            // client certificates are asked for.
            stream.registration = config.invites.enabled
                && listener_config.client_certificates != ClientCertificatePolicy::Disabled;
            stream.signs_certificates = context.issuing_ca.is_some();
            stream.sasl2 = config.sasl.sasl2;
            let listener = Arc::new(Listener {
                kind: listener_config.kind,
                acceptor: TlsAcceptor::from(tls),
                identity: identity.clone(),
                stream: Arc::new(stream),
            });
            let (socket, local) = bind(listener_config.address).await?;
            addresses.push((listener_config.kind, local));
            bound.push((socket, listener));
        }
        if let Some((_, address)) = addresses
            .iter()
            .find(|(kind, _)| *kind == ListenerKind::Https)
        {
            let _ = context.https_port.set(address.port());
        }
        let http = Arc::new(HttpSettings {
            allowed_origins: allowed_origins(config, &addresses),
            max_frame_bytes: config.http.max_frame_bytes,
            max_body_bytes: config.http.max_frame_bytes,
            sessions: Arc::default(),
            open: Arc::default(),
            max_sessions: config.http.max_sessions,
            web: crate::web::WebSettings {
                assets: web_assets(config, base),
                source_maps: config.http.source_maps,
                hsts: config.domain != "localhost",
                domain: config.domain.clone(),
                invites_enabled: config.invites.enabled,
            },
            connections: crate::limits::Pending::new(config.http.max_connections_per_address),
            open_connections: Arc::default(),
            max_connections: config.http.max_connections,
            io_timeout: Duration::from_secs(config.limits.write_timeout_seconds),
            endpoints: addresses
                .iter()
                .filter(|(kind, _)| *kind == ListenerKind::Https)
                .map(|(_, address)| {
                    crate::transport::discovery::Endpoints::new(&config.domain, address.port())
                })
                .collect(),
        });
        for (socket, listener) in bound {
            accept_tasks.push(tokio::spawn(accept_loop(
                socket,
                listener,
                http.clone(),
                context.clone(),
                shutdown.subscribe(),
                done_sender.clone(),
            )));
        }
        if let Some(components) = &components {
            for socket in component_sockets {
                accept_tasks.push(tokio::spawn(crate::component::accept_loop(
                    socket,
                    components.clone(),
                    context.clone(),
                    shutdown.subscribe(),
                    done_sender.clone(),
                )));
            }
        }
        let metrics_address = match config.admin.metrics {
            Some(address) => {
                let (task, bound) = crate::admin::start(address, context.clone())
                    .await
                    .map_err(StartError)?;
                accept_tasks.push(task);
                Some(bound)
            }
            None => None,
        };
        // The control task comes last (`shutdown` waits for it).
        let socket = base.join(&config.auth.control_socket);
        accept_tasks.push(
            crate::control::start(&socket, context.clone(), shutdown.subscribe())
                .map_err(StartError)?,
        );
        Ok(Self {
            context,
            identity,
            addresses,
            shutdown,
            done_sender: Some(done_sender),
            done,
            accept_tasks,
            trust_changed,
            cluster_tasks,
            metrics_address,
        })
    }

    /// Where the listeners listen (with the real port when 0 was asked).
    pub fn addresses(&self) -> &[(ListenerKind, SocketAddr)] {
        &self.addresses
    }

    /// Where metrics are served (`[admin] metrics`, with the real port
    /// when 0 was asked), if they are.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_address
    }

    /// The address of the first listener of this kind.
    pub fn address(&self, kind: ListenerKind) -> Option<SocketAddr> {
        self.addresses
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, a)| *a)
    }

    /// Reads the server certificate and key again (used from the next
    /// handshake on; on an error the one in use stays), and the trusted
    /// CAs and revocation lists (at once, in the background), ending the
    /// sessions whose certificates they no longer vouch for (`SIGHUP`).
    pub fn reload(&self) -> Result<(), String> {
        self.context.anchors.reload();
        self.trust_changed.notify_one();
        self.identity.reload()
    }

    /// The shared state (store, router).
    pub fn context(&self) -> &Arc<Context> {
        &self.context
    }

    /// Stops accepting, closes every stream with `system-shutdown`, waits
    /// for every connection to end.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        // The control task ends by itself (removing its socket); the accept
        // loops are aborted.
        if let Some(control) = self.accept_tasks.pop() {
            for task in &self.accept_tasks {
                task.abort();
            }
            let _ = control.await;
        }
        for task in self.accept_tasks.drain(..) {
            let _ = task.await;
        }
        self.done_sender = None;
        let _ = self.done.recv().await;
        // XEP-0198 counters, for clients that try to resume after the
        // restart.
        let saved = std::mem::take(&mut *crate::router::lock(&self.context.saved_sessions));
        match self.context.store.save_sessions(&saved).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "stream management state saved"),
            Err(error) => tracing::error!(%error, "saving the stream management state failed"),
        }
        if let Some(cluster) = &self.context.cluster {
            cluster.leave().await;
        }
        for task in self.cluster_tasks.drain(..) {
            task.abort();
        }
    }
}

/// What the cluster asks of this server.
struct NodeHooks(Arc<Context>);

impl crate::cluster::Hooks for NodeHooks {
    fn reroute(&self, stanza: sigil_xml::Element, receipt: Option<crate::router::Receipt>) {
        let context = self.0.clone();
        tokio::spawn(async move {
            crate::session::reroute(&context, stanza, receipt).await;
        });
    }

    fn reroute_all(&self, stanzas: Vec<(sigil_xml::Element, Option<crate::router::Receipt>)>) {
        let context = self.0.clone();
        tokio::spawn(async move {
            for (stanza, receipt) in stanzas {
                crate::session::reroute(&context, stanza, receipt).await;
            }
        });
    }

    fn forget(&self, what: Option<(crate::cluster::Cache, &jid::BareJid)>) {
        if let Some((crate::cluster::Cache::Offline, account)) = what {
            let (context, account) = (self.0.clone(), account.clone());
            tokio::spawn(async move {
                crate::session::offer_stored(&context, &account).await;
            });
        }
        self.0.forget(what);
    }

    fn close(
        &self,
        account: &jid::BareJid,
        closing: &crate::router::Closing,
        error: sigil_proto::error::StreamError,
    ) {
        self.0.close_local_sessions(account, closing, &error);
    }

    fn gone(&self, sessions: Vec<jid::FullJid>) {
        let context = self.0.clone();
        tokio::spawn(async move {
            for jid in sessions {
                crate::session::gone(&context, &jid).await;
            }
        });
    }
}

/// Listens on `address`; returns the socket and the address it got.
async fn bind(address: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let socket = TcpListener::bind(address)
        .await
        .map_err(|e| StartError(format!("cannot listen on {address}: {e}")))?;
    let local = socket.local_addr().map_err(|e| StartError(e.to_string()))?;
    Ok((socket, local))
}

/// Sessions saved at a shutdown stay resumable (as `<failed h='…'/>`)
/// for the resumption timeout after this server started, or after they
/// were saved, whichever is later (another node of a cluster saves them
/// at its own shutdown); then they go. Looked at once a timeout.
async fn forget_saved_sessions(context: Arc<Context>) {
    let wait = Duration::from_secs(context.limits.resume_timeout_seconds.max(1));
    loop {
        tokio::time::sleep(wait).await;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let timeout = i64::try_from(wait.as_secs()).unwrap_or(i64::MAX);
        // The first look comes a timeout after the start: what was saved
        // before it goes then.
        if let Err(error) = context
            .store
            .expire_saved_sessions(now.saturating_sub(timeout))
            .await
        {
            tracing::warn!(%error, "deleting old stream management state failed");
        }
    }
}

/// How often the trusted CA and revocation list directories are looked
/// at for changes (logins look at every use; this is for the sessions).
const TRUST_CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// Ends the sessions whose certificates the trusted CAs or revocation
/// lists no longer vouch for, once their files change or when told
/// (`SIGHUP`). The files are read and the sessions checked off the
/// async workers.
async fn watch_trust(context: Arc<Context>, told: Arc<tokio::sync::Notify>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(TRUST_CHECK_INTERVAL) => {}
            () = told.notified() => {}
        }
        let context = context.clone();
        if let Ok(ended) = tokio::task::spawn_blocking(move || context.check_trust()).await
            && ended > 0
        {
            tracing::info!(
                ended,
                "trusted CAs or revocation lists changed: sessions ended"
            );
        }
    }
}

async fn accept_loop(
    socket: TcpListener,
    listener: Arc<Listener>,
    http: Arc<HttpSettings>,
    context: Arc<Context>,
    shutdown: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    loop {
        let (tcp, peer) = match socket.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait a little
                // rather than spin.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if *shutdown.borrow() {
            return;
        }
        let listener = listener.clone();
        let context = context.clone();
        let shutdown = shutdown.clone();
        let done = done.clone();
        if listener.kind == ListenerKind::Https {
            let http = http.clone();
            tokio::spawn(async move {
                let mut stop = shutdown.clone();
                tokio::select! {
                    () = crate::transport::http::serve(tcp, peer, listener, http, context, shutdown, done.clone()) => {}
                    // Plain HTTP connections end at shutdown; WebSocket
                    // sessions end by themselves with system-shutdown.
                    _ = stop.changed() => {}
                }
                drop(done);
            });
            continue;
        }
        tokio::spawn(crate::transport::tcp::serve(
            tcp, peer, listener, context, shutdown, done,
        ));
    }
}

/// The origins whose pages may open sessions: the configured ones, and the
/// server's own HTTPS origins (its domain, `localhost` and the listener's
/// address, with the port).
fn allowed_origins(config: &Config, addresses: &[(ListenerKind, SocketAddr)]) -> Vec<String> {
    let mut origins: Vec<String> = config.http.allowed_origins.clone();
    for (kind, address) in addresses {
        if *kind != ListenerKind::Https {
            continue;
        }
        let port = address.port();
        // `localhost` only for a server of that name: on a real domain,
        // another program on the user's machine could serve that origin.
        let mut hosts = vec![config.domain.clone(), address.ip().to_string()];
        if config.domain == "localhost" {
            hosts.push("localhost".to_owned());
        }
        if address.is_ipv6() {
            hosts.push(format!("[{}]", address.ip()));
        }
        for host in hosts {
            origins.push(format!("https://{host}:{port}"));
            if port == 443 {
                origins.push(format!("https://{host}"));
            }
        }
    }
    origins.sort();
    origins.dedup();
    origins
}

/// Where Converse.js's `dist/` is: `[http] web_assets` (relative to the
/// configuration file), else the vendored `web/converse` in the current
/// directory, beside the executable's checkout, or in the checkout this
/// program was built from.
pub fn web_assets(config: &Config, base: &Path) -> Option<PathBuf> {
    if let Some(configured) = &config.http.web_assets {
        let path = base.join(configured);
        return path.join("converse.min.js").is_file().then_some(path);
    }
    let relative = Path::new("web/converse");
    let mut candidates = vec![PathBuf::from(relative)];
    if let Ok(exe) = std::env::current_exe() {
        for ancestor in exe.ancestors().skip(1).take(4) {
            candidates.push(ancestor.join(relative));
        }
    }
    candidates.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(relative),
    );
    candidates
        .into_iter()
        .find(|c| c.join("converse.min.js").is_file())
        .and_then(|c| c.canonicalize().ok())
}

/// The SASL server configuration for an allow-list, with the FAST
/// token mechanisms (XEP-0484) if `fast`.
pub fn sasl_config(mechanisms: &[String], fast: bool) -> sigil_sasl::server::ServerConfig {
    let tokens = sigil_sasl::ht::MECHANISMS
        .into_iter()
        .filter(|_| fast)
        .map(str::to_owned);
    sigil_sasl::server::ServerConfig::new().allow(mechanisms.iter().cloned().chain(tokens))
}

/// Opens the store the configuration names (a `sqlite://PATH` relative
/// to `base`, or a `postgres://` URL with the `[storage]` options).
pub async fn open_store(
    storage: &crate::config::StorageConfig,
    base: &Path,
) -> Result<AnyStore, StartError> {
    let ca_pem = match &storage.ca {
        Some(path) => {
            let path = base.join(path);
            Some(std::fs::read(&path).map_err(|e| {
                StartError(format!("cannot read storage.ca {}: {e}", path.display()))
            })?)
        }
        None => None,
    };
    let options = sigil_store::postgres::PostgresOptions {
        max_connections: storage.max_connections,
        ca_pem,
        ..Default::default()
    };
    AnyStore::open(&storage.url, base, &options)
        .await
        .map_err(|e| StartError(e.to_string()))
}

/// The certificate and key files of a configuration.
pub fn certificate_paths(config: &Config, base: &Path) -> (PathBuf, PathBuf) {
    let certificate = config
        .tls
        .certificate
        .clone()
        .unwrap_or_else(|| "server.crt".into());
    let key = config
        .tls
        .key
        .clone()
        .unwrap_or_else(|| "server.key".into());
    (base.join(certificate), base.join(key))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn localhost_origins_only_for_a_localhost_server() {
        let https = [(ListenerKind::Https, "127.0.0.1:5281".parse().unwrap())];
        let local = allowed_origins(&Config::new("localhost"), &https);
        assert!(
            local.contains(&"https://localhost:5281".to_owned()),
            "{local:?}"
        );
        let public = allowed_origins(&Config::new("example.org"), &https);
        assert!(
            public.contains(&"https://example.org:5281".to_owned()),
            "{public:?}"
        );
        assert!(
            !public.iter().any(|o| o.contains("localhost")),
            "{public:?}"
        );
    }
}
