//! External components (XEP-0114): the `component` listener and each
//! component's connection.
//!
//! The protocol is [`sigil_proto::component::ComponentStream`]; this
//! module runs it over TCP. The stream is plaintext, so the listener is
//! meant for loopback (a warning is logged when it listens elsewhere).
//! The limits of client connections apply: logins under way per address,
//! the login timeout (until the handshake succeeded), the framer's
//! limits, the read rate (the unauthenticated rate until the handshake,
//! then `limits.read_bytes_per_second`), and the write timeout. What is
//! routed to a component waits in a queue of `limits.session_queue`
//! stanzas; a component whose queue fills is closed as too slow, and what
//! was queued for it is answered `service-unavailable`
//! ([`crate::session::undeliverable`]).
//!
//! One connection serves a domain at a time: a second one is refused
//! with `conflict` ([`crate::router::ComponentHandle`] says why).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sigil_proto::component::{Action, ComponentStream, ComponentStreamConfig, write_frame};
use sigil_proto::error::{StreamCondition, StreamError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::config::{Config, Secret};
use crate::context::Context;
use crate::limits::{PendingGuard, ReadBudget};
use crate::router::{ComponentHandle, Receipt, SessionMessage};

/// What every connection of a component listener shares.
pub(crate) struct ComponentListener {
    /// The configured components' secrets, by domain.
    secrets: HashMap<String, Secret>,
    stream: Arc<ComponentStreamConfig>,
}

impl ComponentListener {
    /// The components of `config`, their secret files read (relative to
    /// `base`).
    pub(crate) fn new(config: &Config, base: &Path) -> Result<Self, String> {
        let mut secrets = HashMap::new();
        for (i, component) in config.components.iter().enumerate() {
            let secret = component
                .read_secret(base)
                .map_err(|error| format!("component[{i}] ({}): {error}", component.domain))?;
            if let Some(file) = &component.secret_file {
                warn_if_readable_by_others(&base.join(file), &component.domain);
            }
            secrets.insert(component.domain.clone(), secret);
        }
        let mut stream = ComponentStreamConfig::new(config.domain.clone());
        stream.limits = config.framer_limits();
        Ok(Self {
            secrets,
            stream: Arc::new(stream),
        })
    }
}

/// Logs a warning when the listener is not on loopback: the component
/// protocol has no encryption, so its handshake and every stanza cross
/// the network in the clear.
pub(crate) fn warn_unless_loopback(address: SocketAddr) {
    if !address.ip().is_loopback() {
        tracing::warn!(
            %address,
            "the XEP-0114 component listener is not on loopback: component streams are \
             NOT ENCRYPTED (their stanzas, and a handshake an eavesdropper can guess the \
             secret from offline, cross the network in the clear); bind it to 127.0.0.1 \
             or ::1 and run components on this host, or tunnel them"
        );
    }
}

fn warn_if_readable_by_others(path: &Path, domain: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = std::fs::metadata(path)
        && metadata.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            %domain,
            file = %path.display(),
            "the component's secret file can be read by other users: chmod 600 it"
        );
    }
}

/// Accepts component connections until the server stops.
pub(crate) async fn accept_loop(
    socket: TcpListener,
    listener: Arc<ComponentListener>,
    context: Arc<Context>,
    shutdown: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    loop {
        let (tcp, peer) = match socket.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if *shutdown.borrow() {
            return;
        }
        let _ = tcp.set_nodelay(true);
        let Some(pending) = context.pending.admit(peer.ip()) else {
            tracing::info!(%peer, "component refused: too many connections from this address are logging in");
            continue;
        };
        let connection = Connection {
            tcp,
            peer,
            stream: ComponentStream::new(listener.stream.clone()),
            budget: ReadBudget::new(
                context.limits.unauthenticated_read_bytes_per_second,
                std::time::Instant::now(),
            ),
            listener: listener.clone(),
            context: context.clone(),
            handle: None,
            pending: Some(pending),
            out: String::new(),
            written: Vec::new(),
            write_failed: false,
        };
        let shutdown = shutdown.clone();
        let done = done.clone();
        tokio::spawn(async move {
            connection.run(shutdown).await;
            drop(done);
        });
    }
}

/// The most stanzas from a component's queue written out together.
const BATCH: usize = 64;

/// The most read from a component at once.
const READ_CHUNK: usize = 16 * 1024;

struct Connection {
    tcp: TcpStream,
    peer: SocketAddr,
    stream: ComponentStream,
    budget: ReadBudget,
    listener: Arc<ComponentListener>,
    context: Arc<Context>,
    /// The domain this connection serves, once the handshake succeeded.
    handle: Option<Arc<ComponentHandle>>,
    /// Counts the connection against its address until the handshake.
    pending: Option<PendingGuard>,
    out: String,
    /// Receipts of the stanzas in `out`: done once written.
    written: Vec<Receipt>,
    write_failed: bool,
}

impl Connection {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let login = Duration::from_secs(self.context.limits.login_timeout_seconds);
        let mut login_timer = Some(Box::pin(tokio::time::sleep(login)));
        let mut throttle: Option<Pin<Box<tokio::time::Sleep>>> = None;
        let mut buffer = vec![0u8; READ_CHUNK];
        loop {
            if !self.drain().await {
                break;
            }
            if self.handle.is_some() && login_timer.is_some() {
                login_timer = None;
                self.pending = None;
                self.budget.set_rate(
                    self.context.limits.read_bytes_per_second,
                    std::time::Instant::now(),
                );
            }
            tokio::select! {
                read = self.tcp.read(&mut buffer), if throttle.is_none() => {
                    let n = match read {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    self.stream.receive(&buffer[..n]);
                    if let Some(wait) = self.budget.charge(n, std::time::Instant::now()) {
                        throttle = Some(Box::pin(tokio::time::sleep(wait)));
                    }
                }
                () = expired(&mut throttle) => throttle = None,
                message = recv(&self.handle) => {
                    self.send(message);
                    for _ in 1..BATCH {
                        let Some(message) = self.handle.as_ref().and_then(|h| h.try_recv()) else {
                            break;
                        };
                        self.send(message);
                    }
                }
                () = ended(&self.handle) => {
                    let error = self.handle.as_ref().and_then(|h| h.end_error());
                    self.stream.close(error);
                }
                () = expired(&mut login_timer) => {
                    self.stream.close(Some(StreamError::with_text(
                        StreamCondition::ConnectionTimeout,
                        "complete the handshake within the time allowed",
                    )));
                }
                _ = shutdown.changed() => {
                    self.stream.close(Some(StreamError::new(StreamCondition::SystemShutdown)));
                }
            }
        }
        if !self.write_failed {
            let timeout = self.write_timeout();
            let _ = tokio::time::timeout(timeout, self.tcp.shutdown()).await;
        }
        if let Some(handle) = self.handle.take() {
            self.context.router.unregister_component(&handle);
            tracing::info!(peer = %self.peer, domain = %handle.domain, "component disconnected");
            for message in handle.close_queue() {
                let (SessionMessage::Stanza(stanza) | SessionMessage::Tracked(stanza, _)) = message;
                crate::session::undeliverable(&self.context, &stanza);
            }
        }
    }

    /// Does what the stream asks; `false` once the connection is to end.
    async fn drain(&mut self) -> bool {
        while let Some(action) = self.stream.poll_action() {
            match action {
                Action::Send(frame) => write_frame(&frame, &mut self.out),
                Action::NeedSecret { domain } => {
                    let secret = self.listener.secrets.get(&domain);
                    if secret.is_none() {
                        tracing::info!(peer = %self.peer, %domain, "component refused: no such component is configured");
                    }
                    self.stream.secret(secret.map(Secret::expose));
                }
                Action::Authenticated { domain } => {
                    let limit = self.context.limits.session_queue;
                    match self.context.router.register_component(&domain, limit) {
                        Some(handle) => {
                            tracing::info!(peer = %self.peer, %domain, "component connected");
                            self.handle = Some(handle);
                            self.stream.accepted();
                        }
                        None => {
                            tracing::info!(peer = %self.peer, %domain, "component refused: another connection serves its domain");
                            self.stream.close(Some(StreamError::with_text(
                                StreamCondition::Conflict,
                                "another connection serves this domain",
                            )));
                        }
                    }
                }
                Action::Stanza(stanza) => {
                    let domain = self
                        .handle
                        .as_ref()
                        .map(|h| h.domain.clone())
                        .unwrap_or_default();
                    crate::session::from_component(&self.context, &domain, stanza).await;
                }
                Action::Close { error } => {
                    if let Some(error) = &error {
                        let domain = self.stream.domain().unwrap_or_default().to_owned();
                        tracing::info!(peer = %self.peer, %domain, %error, "component stream closed with an error");
                    }
                    self.flush().await;
                    return false;
                }
            }
        }
        self.flush().await
    }

    /// Hands a queued stanza to the stream; one it cannot send (it ended)
    /// is answered.
    fn send(&mut self, message: SessionMessage) {
        let (stanza, receipt) = match message {
            SessionMessage::Stanza(stanza) => (*stanza, None),
            SessionMessage::Tracked(stanza, receipt) => (*stanza, Some(receipt)),
        };
        match self.stream.send_stanza(stanza) {
            Ok(()) => self.written.extend(receipt),
            Err(stanza) => crate::session::undeliverable(&self.context, &stanza),
        }
    }

    fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.context.limits.write_timeout_seconds)
    }

    /// Writes what is queued; `false` if the connection failed or the
    /// component did not take it within the write timeout.
    async fn flush(&mut self) -> bool {
        if self.write_failed {
            return false;
        }
        if self.out.is_empty() {
            return true;
        }
        let data = std::mem::take(&mut self.out);
        let timeout = self.write_timeout();
        let written = matches!(
            tokio::time::timeout(timeout, self.tcp.write_all(data.as_bytes())).await,
            Ok(Ok(()))
        );
        if written {
            for receipt in self.written.drain(..) {
                receipt.done();
            }
        } else {
            tracing::info!(peer = %self.peer, "the component stopped reading: connection dropped");
            self.write_failed = true;
        }
        written
    }
}

async fn recv(handle: &Option<Arc<ComponentHandle>>) -> SessionMessage {
    match handle {
        Some(handle) => handle.recv().await,
        None => std::future::pending().await,
    }
}

async fn ended(handle: &Option<Arc<ComponentHandle>>) {
    match handle {
        Some(handle) => handle.ended().await,
        None => std::future::pending().await,
    }
}

async fn expired(timer: &mut Option<Pin<Box<tokio::time::Sleep>>>) {
    match timer {
        Some(timer) => timer.as_mut().await,
        None => std::future::pending().await,
    }
}
