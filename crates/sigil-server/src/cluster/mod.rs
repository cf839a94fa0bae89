//! Cluster mode: several nodes that share one PostgreSQL database and one
//! NATS server, each serving its own connections.
//!
//! - **Registry** (`registry`): every bound session has a record in a
//!   JetStream key-value bucket under its full JID (node, number,
//!   presence, flags, certificate), written by compare-and-set so that a
//!   full JID lives on one node: the session that bound last keeps it
//!   and the other ends with `conflict`.
//! - **Directory** (`directory`): every node watches the bucket and
//!   keeps the other nodes' sessions in memory, so that routing and
//!   presence read them without a round trip.
//! - **Routing**: [`Cluster`] implements [`Routes`]: sessions of this
//!   node are reached through its [`Router`]; others by a NATS message to
//!   their node's subject (`wire`). A stanza followed by a receipt
//!   (XEP-0198) is kept until that node says it is safe (`copies`).
//! - **Liveness** (`liveness`): each node writes a heartbeat into a
//!   second bucket every second; a node not heard from for
//!   [`DEAD_AFTER`] is dead: the others forget its sessions,
//!   one of them deletes its records, and the stanzas followed to it go
//!   to their accounts' other sessions or offline.
//!
//! NATS carries stanzas and the directory in the clear unless its URL is
//! `tls://`; like the database, it must be the cluster's own (its
//! subjects take stanzas for any session).

mod copies;
mod directory;
mod liveness;
mod registry;
mod tasks;
mod wire;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use jid::{BareJid, FullJid};
use sigil_proto::error::StreamError;
use tokio::sync::mpsc;

use crate::config::ClusterConfig;
use crate::router::{
    Entry, Presence, Receipt, ReceiptId, Router, Routes, SendError, SessionHandle, SessionId,
    SessionMessage, Settled, Undelivered,
};
use directory::Directory;
use wire::Op;

pub use liveness::{NodeStatus, read_status};

/// How long a node may go unheard before the others take it for dead.
pub const DEAD_AFTER: Duration = liveness::DEAD_AFTER;

/// What the cluster asks of the server it is part of.
pub trait Hooks: Send + Sync {
    /// Sends a stanza (with its receipt, if followed) where it would
    /// have gone had the session it was for not been there: the
    /// account's other sessions, or offline storage.
    fn reroute(&self, stanza: sigil_xml::Element, receipt: Option<Receipt>);

    /// As [`Self::reroute`], for several stanzas in turn, in order.
    fn reroute_all(&self, stanzas: Vec<(sigil_xml::Element, Option<Receipt>)>);

    /// Forgets what is kept of one account in one cache (another node
    /// changed it), or (`None`) everything other nodes may change (their
    /// word of a change may have been missed).
    fn forget(&self, what: Option<(Cache, &BareJid)>);

    /// These sessions of a node that died ended without a word: those who
    /// saw them available are to hear they left.
    fn gone(&self, sessions: Vec<FullJid>);

    /// An account change on another node: this node's sessions of
    /// `account` that `closing` picks end with `error`, and its logins of
    /// that kind under way are fenced off.
    fn close(&self, account: &BareJid, closing: &crate::router::Closing, error: StreamError);
}

/// The hooks of a server.
pub type SharedHooks = Arc<dyn Hooks>;

/// What nodes keep of an account in memory that another node may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache {
    /// Its blocklist (XEP-0191).
    Blocklist,
    /// Its avatar hash (XEP-0153).
    Avatar,
    /// Its archiving preferences (XEP-0313).
    ArchivePrefs,
    /// Whether it has messages stored for later: one was stored (by a
    /// node that may not have known of its available sessions, such as
    /// one catching up after NATS trouble), and the nodes where it has
    /// some deliver it.
    Offline,
}

impl Cache {
    /// As sent between nodes.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Blocklist => "blocklist",
            Self::Avatar => "avatar",
            Self::ArchivePrefs => "archive-prefs",
            Self::Offline => "offline",
        }
    }

    /// From [`Self::as_str`].
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        [
            Self::Blocklist,
            Self::Avatar,
            Self::ArchivePrefs,
            Self::Offline,
        ]
        .into_iter()
        .find(|cache| cache.as_str() == name)
    }
}

/// Messages waiting to be published, at most.
const OUTBOX: usize = 65_536;

/// Bytes of messages waiting to be published, at most.
const OUTBOX_BYTES: usize = 64 << 20;

/// One message on its way to NATS.
#[derive(Debug)]
struct Outgoing {
    subject: String,
    headers: async_nats::HeaderMap,
    payload: bytes::Bytes,
}

/// What waits to be published, in order, within a count and a byte
/// budget.
#[derive(Debug)]
struct Outbox {
    sender: mpsc::Sender<Outgoing>,
    bytes: Arc<std::sync::atomic::AtomicUsize>,
}

impl Outbox {
    /// Queues a message; `false` when the outbox is full.
    fn post(
        &self,
        subject: String,
        (headers, payload): (async_nats::HeaderMap, bytes::Bytes),
    ) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let size = payload.len();
        if self.bytes.fetch_add(size, Relaxed).saturating_add(size) > OUTBOX_BYTES {
            self.bytes.fetch_sub(size, Relaxed);
            return false;
        }
        let posted = self.sender.try_send(Outgoing {
            subject,
            headers,
            payload,
        });
        if posted.is_err() {
            self.bytes.fetch_sub(size, Relaxed);
        }
        posted.is_ok()
    }

    /// Queues a small message, waiting for room.
    async fn post_waiting(
        &self,
        subject: String,
        (headers, payload): (async_nats::HeaderMap, bytes::Bytes),
    ) {
        self.bytes
            .fetch_add(payload.len(), std::sync::atomic::Ordering::Relaxed);
        let _ = self
            .sender
            .send(Outgoing {
                subject,
                headers,
                payload,
            })
            .await;
    }

    /// Whether nothing waits.
    fn is_empty(&self) -> bool {
        self.sender.capacity() == self.sender.max_capacity()
    }
}

/// This node's part in a cluster.
#[derive(Debug)]
pub struct Cluster {
    /// This node's name.
    node: Arc<str>,
    /// This run of it (a node that restarts is another run).
    run: u64,
    /// Subjects begin with this (`sigil.CLUSTER`).
    prefix: String,
    /// The sessions of this node.
    local: Arc<Router>,
    client: async_nats::Client,
    registry: Arc<registry::Registry>,
    nodes: kv::Store,
    directory: Directory,
    copies: copies::Copies,
    outbox: Outbox,
    /// The outbox's other end, until the publisher takes it.
    outbox_receiver: Mutex<Option<mpsc::Receiver<Outgoing>>>,
    /// Told when the NATS connection is made again, or dropped messages.
    troubled: Arc<tokio::sync::Notify>,
    /// Since when operations may have been lost (the NATS connection
    /// dropped, or messages from it were), until that is seen to.
    troubled_since: Arc<Mutex<Option<Instant>>>,
    /// Until when copies unanswered after NATS trouble are sent again,
    /// while a task does so (`tasks::reroute_unanswered`).
    rerouting: Mutex<Option<Instant>>,
    /// Bumped when the watches are to start again (the buckets may have
    /// been made anew).
    watches: tokio::sync::watch::Sender<u64>,
    /// Node names, shared by their sessions' entries.
    names: Mutex<std::collections::HashMap<String, Arc<str>>>,
    /// The nodes heard from.
    heard: Mutex<liveness::Heard>,
}

impl Cluster {
    /// Connects to NATS, makes the buckets if they are missing, and
    /// announces this node; `local` is this node's router, and stanzas
    /// are at most `max_stanza_bytes` long (NATS must carry them).
    pub async fn connect(
        config: &ClusterConfig,
        base: &Path,
        local: Arc<Router>,
        max_stanza_bytes: usize,
    ) -> Result<Arc<Self>, String> {
        let troubled = Arc::new(tokio::sync::Notify::new());
        let troubled_since = Arc::new(Mutex::new(None));
        let client = connect_nats(config, base, troubled.clone(), troubled_since.clone()).await?;
        // Room for the headers and a registry record's other fields.
        let carried = client.server_info().max_payload.saturating_sub(8 * 1024);
        if max_stanza_bytes > carried {
            return Err(format!(
                "limits.max_stanza_bytes ({max_stanza_bytes}) is more than the NATS server \
                 carries in one message ({} bytes, max_payload): raise NATS's max_payload or \
                 lower limits.max_stanza_bytes",
                client.server_info().max_payload
            ));
        }
        let jetstream = jetstream(&client);
        let name = config.name();
        let sessions = bucket(&jetstream, format!("{name}_sessions"), registry::MAX_AGE).await?;
        let nodes = bucket(&jetstream, format!("{name}_nodes"), liveness::MAX_AGE).await?;
        let run = random_u64()?;
        let node: Arc<str> = Arc::from(config.node.as_str());
        let (outbox, receiver) = mpsc::channel(OUTBOX);
        let cluster = Arc::new(Self {
            registry: Arc::new(registry::Registry::new(
                sessions,
                node.clone(),
                run,
                local.clone(),
            )),
            node,
            run,
            prefix: format!("sigil.{name}"),
            local,
            client,
            nodes,
            directory: Directory::default(),
            copies: copies::Copies::default(),
            outbox: Outbox {
                sender: outbox,
                bytes: Arc::default(),
            },
            outbox_receiver: Mutex::new(Some(receiver)),
            names: Mutex::default(),
            heard: Mutex::default(),
            troubled,
            troubled_since,
            rerouting: Mutex::new(None),
            watches: tokio::sync::watch::Sender::new(0),
        });
        liveness::announce(&cluster).await?;
        Ok(cluster)
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The subject of `node`'s operations.
    fn subject(&self, node: &str) -> String {
        format!("{}.node.{node}", self.prefix)
    }

    /// The subject every node hears.
    fn everyone(&self) -> String {
        format!("{}.all", self.prefix)
    }

    /// An account change here ends sessions of `account`: the other
    /// nodes end theirs (and fence off their logins under way).
    pub fn close(&self, account: &BareJid, closing: &crate::router::Closing, error: &StreamError) {
        let op = Op::Close {
            account: account.clone(),
            closing: closing.clone(),
            error: error.clone(),
            from: self.node.to_string(),
        };
        if !self.outbox.post(self.everyone(), op.encode()) {
            tracing::error!(%account, "cluster: the outbox is full; an account change was not told to the other nodes");
        }
    }

    /// What `cache` keeps of `account` changed here: the other nodes
    /// forget it.
    pub fn changed(&self, cache: Cache, account: &BareJid) {
        let op = Op::Forget {
            cache,
            account: account.clone(),
            from: self.node.to_string(),
        };
        if !self.outbox.post(self.everyone(), op.encode()) {
            tracing::warn!(%account, "cluster: the outbox is full; a change was not told to the other nodes");
        }
    }

    /// The shared name of `node`.
    fn intern(&self, node: &str) -> Arc<str> {
        crate::router::lock(&self.names)
            .entry(node.to_owned())
            .or_insert_with(|| Arc::from(node))
            .clone()
    }

    /// A session of this node bound.
    pub fn bound(&self, handle: &SessionHandle) {
        self.registry.bound(&handle.jid, handle.serial);
    }

    /// A session of this node ended.
    pub fn unbound(&self, handle: &SessionHandle) {
        self.registry.mark(&handle.jid);
    }

    /// The cluster's metrics, in Prometheus's text format: what this node
    /// knows of the others, what it keeps for them, and one NATS round
    /// trip, timed.
    pub async fn render_metrics(&self, out: &mut String) {
        use crate::metrics::gauge;
        let alive = self
            .status()
            .iter()
            .filter(|node| node.last_heard_ms <= liveness::DEAD_AFTER.as_millis())
            .count();
        gauge(
            out,
            "sigil_cluster_nodes",
            "gauge",
            "Nodes heard from lately, this one included.",
            alive as f64,
        );
        let remote: usize = self.directory.counts().values().sum();
        gauge(
            out,
            "sigil_cluster_remote_sessions",
            "gauge",
            "Sessions on the other nodes, as this node knows them.",
            remote as f64,
        );
        let (copies, copy_bytes) = self.copies.load();
        gauge(
            out,
            "sigil_cluster_followed",
            "gauge",
            "Stanzas sent to other nodes and kept until they are safe.",
            copies as f64,
        );
        gauge(
            out,
            "sigil_cluster_followed_bytes",
            "gauge",
            "Bytes of those stanzas.",
            copy_bytes as f64,
        );
        let waiting = self.outbox.bytes.load(std::sync::atomic::Ordering::Relaxed);
        gauge(
            out,
            "sigil_cluster_outbox_bytes",
            "gauge",
            "Bytes waiting to be published to NATS.",
            waiting as f64,
        );
        let began = Instant::now();
        let answered = tokio::time::timeout(Duration::from_secs(2), self.client.flush())
            .await
            .is_ok_and(|flushed| flushed.is_ok());
        gauge(
            out,
            "sigil_cluster_bus_probe_seconds",
            "gauge",
            "How long one round trip to NATS took, at this scrape.",
            began.elapsed().as_secs_f64(),
        );
        gauge(
            out,
            "sigil_cluster_bus_up",
            "gauge",
            "Whether NATS answered at this scrape.",
            f64::from(u8::from(answered)),
        );
    }

    /// The nodes this node knows are alive, with their sessions as this
    /// node knows them.
    pub fn status(&self) -> Vec<NodeStatus> {
        liveness::status(self)
    }

    /// Sends `message` to the session `to` (numbered `serial`, if given)
    /// on `node`.
    fn forward(
        &self,
        node: &Arc<str>,
        to: &FullJid,
        serial: Option<u64>,
        message: SessionMessage,
    ) -> Result<(), Undelivered> {
        let (stanza, receipt) = match message {
            SessionMessage::Stanza(stanza) => (*stanza, None),
            SessionMessage::Tracked(stanza, receipt) => (*stanza, Some(receipt)),
        };
        let xml = stanza.to_xml();
        let copy = match receipt {
            Some(receipt) => {
                match self
                    .copies
                    .follow(receipt, stanza.clone(), node.clone(), xml.len())
                {
                    Ok(number) => Some(number),
                    Err(receipt) => {
                        return Err(Undelivered {
                            error: SendError::Full,
                            message: SessionMessage::Tracked(Box::new(stanza), receipt),
                        });
                    }
                }
            }
            None => None,
        };
        let message = wire::deliver(to, serial, copy, &self.node, xml);
        if self.outbox.post(self.subject(node), message) {
            return Ok(());
        }
        let stanza = Box::new(stanza);
        let message = match copy.and_then(|number| self.copies.take(number)) {
            Some(copy) => SessionMessage::Tracked(stanza, copy.receipt),
            None => SessionMessage::Stanza(stanza),
        };
        Err(Undelivered {
            error: SendError::Full,
            message,
        })
    }

    /// Tells `node` to end its session `session`.
    fn end_remote(&self, node: &str, session: &SessionId, error: StreamError) -> bool {
        let op = Op::End {
            to: session.jid.clone(),
            serial: session.serial,
            error,
        };
        self.outbox.post(self.subject(node), op.encode())
    }

    /// The remote sessions of `account` not shadowed by a local one with
    /// the same full JID (a claim under way).
    fn remote_sessions(&self, account: &BareJid, local: &[Entry]) -> Vec<directory::Remote> {
        let mut remote = self.directory.sessions(account);
        remote.retain(|r| local.iter().all(|l| l.id.jid != r.entry.id.jid));
        remote
    }
}

impl Routes for Cluster {
    fn deliver(&self, to: &FullJid, message: SessionMessage) -> Result<(), Undelivered> {
        if self.local.session(to).is_some() {
            return self.local.deliver(to, message);
        }
        match self.directory.get(to) {
            Some(remote) => self.forward(&remote.node, to, None, message),
            None => self.local.deliver(to, message),
        }
    }

    fn send(&self, to: &SessionId, message: SessionMessage) -> Result<(), Undelivered> {
        if self
            .local
            .session(&to.jid)
            .is_some_and(|h| h.serial == to.serial)
        {
            return self.local.send(to, message);
        }
        match self
            .directory
            .get(&to.jid)
            .filter(|r| r.entry.id.serial == to.serial)
        {
            Some(remote) => self.forward(&remote.node, &to.jid, Some(to.serial), message),
            None => self.local.send(to, message),
        }
    }

    fn deliver_to_component(
        &self,
        domain: &str,
        message: SessionMessage,
    ) -> Result<(), Undelivered> {
        self.local.deliver_to_component(domain, message)
    }

    fn sessions(&self, account: &BareJid) -> Vec<Entry> {
        let mut sessions = self.local.sessions(account);
        let remote = self.remote_sessions(account, &sessions);
        sessions.extend(remote.into_iter().map(|r| r.entry));
        sessions
    }

    fn end(&self, session: &SessionId, error: StreamError) -> bool {
        if self.local.end(session, error.clone()) {
            return true;
        }
        match self
            .directory
            .get(&session.jid)
            .filter(|r| r.entry.id.serial == session.serial)
        {
            Some(remote) => self.end_remote(&remote.node, session, error),
            None => false,
        }
    }

    fn end_sessions(
        &self,
        account: &BareJid,
        which: &dyn Fn(&Entry) -> bool,
        error: &StreamError,
    ) -> usize {
        let local = self.local.sessions(account);
        let mut ended = self.local.end_sessions(account, which, error);
        for remote in self.remote_sessions(account, &local) {
            if which(&remote.entry)
                && self.end_remote(&remote.node, &remote.entry.id, error.clone())
            {
                ended += 1;
            }
        }
        ended
    }

    fn set_presence(&self, session: &SessionId, presence: Option<Presence>) {
        self.local.set_presence(session, presence);
        self.registry.mark(&session.jid);
    }

    fn set_roster_requested(&self, session: &SessionId) {
        self.local.set_roster_requested(session);
        self.registry.mark(&session.jid);
    }

    fn set_carbons(&self, session: &SessionId, enabled: bool) {
        self.local.set_carbons(session, enabled);
        self.registry.mark(&session.jid);
    }

    fn receipt(&self) -> (Receipt, Settled) {
        self.local.receipt()
    }

    fn settle(&self, receipt: ReceiptId, safe: bool) {
        self.local.settle(receipt, safe);
    }
}

/// Connects to the NATS servers `config` names.
async fn connect_nats(
    config: &ClusterConfig,
    base: &Path,
    troubled: Arc<tokio::sync::Notify>,
    troubled_since: Arc<Mutex<Option<Instant>>>,
) -> Result<async_nats::Client, String> {
    let mut servers = Vec::new();
    for url in config.nats.split(',') {
        let url = url.trim();
        let address: async_nats::ServerAddr = url.parse().map_err(|e| {
            format!(
                "cluster.nats: {:?} is not a NATS URL: {e}",
                crate::config::redact_nats(url)
            )
        })?;
        servers.push(address);
    }
    // The client sends no credentials of a URL by itself: a user and
    // password, or a token (a user without a password), go as options.
    let credentials = servers.iter().find_map(|address| {
        let user = percent_decoded(address.username()?);
        Some((user, address.password().map(percent_decoded)))
    });
    let node = config.node.clone();
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("sigil node {node}"))
        .connection_timeout(Duration::from_secs(5))
        .ping_interval(Duration::from_secs(5))
        .max_reconnects(None::<usize>)
        .event_callback(move |event| {
            let node = node.clone();
            let troubled = troubled.clone();
            let troubled_since = troubled_since.clone();
            // What was sent before now may be lost (the earliest such
            // moment counts).
            let mark = move || {
                crate::router::lock(&troubled_since).get_or_insert_with(Instant::now);
            };
            async move {
                match event {
                    async_nats::Event::Connected => {
                        tracing::info!(node, "cluster: NATS connected");
                        troubled.notify_one();
                    }
                    async_nats::Event::SlowConsumer(_) => {
                        tracing::warn!(node, "cluster: messages from NATS dropped (slow consumer)");
                        mark();
                        troubled.notify_one();
                    }
                    async_nats::Event::Disconnected => {
                        tracing::warn!(node, "cluster: NATS connection lost; reconnecting");
                        mark();
                    }
                    other => tracing::warn!(node, event = %other, "cluster: NATS"),
                }
            }
        });
    options = match credentials {
        Some((user, Some(password))) => options.user_and_password(user, password),
        Some((token, None)) => options.token(token),
        None => options,
    };
    if let Some(ca) = &config.ca {
        options = options
            .add_root_certificates(base.join(ca))
            .require_tls(true);
    }
    options.connect(servers).await.map_err(|e| {
        format!(
            "cannot reach NATS at {}: {e}",
            crate::config::redact_nats(&config.nats)
        )
    })
}

/// JetStream on `client`, with requests that give up after 2 s (a NATS
/// server that restarted without the buckets answers none of them).
fn jetstream(client: &async_nats::Client) -> async_nats::jetstream::Context {
    async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(2))
        .build(client.clone())
}

/// `text` with its `%XX` escapes decoded (as URLs carry user names and
/// passwords); an escape that is not one stays as it is.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The bucket `name`, made (in memory, one value per key, entries
/// expiring after `max_age`) if missing.
async fn bucket(
    jetstream: &async_nats::jetstream::Context,
    name: String,
    max_age: Duration,
) -> Result<kv::Store, String> {
    if let Ok(store) = jetstream.get_key_value(name.as_str()).await {
        return Ok(store);
    }
    // The bucket's stream made directly, as key-value buckets are made:
    // creating it through the key-value API asks for account details
    // that NATS servers before 2.10 describe differently.
    let created = jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: format!("KV_{name}"),
            subjects: vec![format!("$KV.{name}.>")],
            max_messages_per_subject: 1,
            max_age,
            storage: async_nats::jetstream::stream::StorageType::Memory,
            num_replicas: 1,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: async_nats::jetstream::stream::DiscardPolicy::New,
            duplicate_window: max_age.min(Duration::from_secs(120)),
            ..Default::default()
        })
        .await;
    match created {
        Ok(_) => jetstream
            .get_key_value(name.as_str())
            .await
            .map_err(|e| format!("cannot open the NATS bucket {name}: {e}")),
        // Another node made it meanwhile.
        Err(error) => jetstream.get_key_value(name.as_str()).await.map_err(|_| {
            format!("cannot make the NATS bucket {name} (is JetStream enabled?): {error}")
        }),
    }
}

/// 64 bits from the system's CSPRNG.
fn random_u64() -> Result<u64, String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|e| format!("the system's random generator failed: {e}"))?;
    Ok(u64::from_le_bytes(bytes))
}
