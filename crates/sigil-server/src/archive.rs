//! XEP-0313 message archives: which messages an account keeps, the
//! XEP-0359 stanza ids its archive gives them, and the writer that
//! commits them to the store in batches. The queries and preferences a
//! client sends are the `mam` feature's.
//!
//! A message between two local accounts is archived for both, in one
//! batch entry, before it is routed: each archive's id goes into the
//! stanza (`<stanza-id by='account'/>`), so that live delivery, carbons,
//! offline delivery and the archive name it alike. What the client that
//! sent it is told is handled (XEP-0198) waits for the commit, so an
//! acknowledged message is in the archive.
//!
//! One writer task drains a bounded queue: every entry waiting when it
//! wakes goes into one transaction (group commit), so a burst costs one
//! disk flush rather than one per message. A full queue makes senders
//! wait: the store sets the pace. A batch the store fails to take is
//! tried again for a while (a database restarting loses no history).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jid::{BareJid, Jid};
use sigil_proto::sid::StanzaId;
use sigil_store::{ArchiveDefault, ArchivePrefs, ArchivedMessage, Store};
use sigil_xml::Element;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::config::ArchiveConfig;

/// Entries waiting for the writer: beyond it, senders wait.
const QUEUE: usize = 16384;
/// The most entries one transaction takes: all that wait, so that a
/// commit's cost is shared by as many messages as possible.
const BATCH: usize = QUEUE;
/// The bytes the entries waiting may hold, in KiB: large messages make
/// senders wait before the count does.
const QUEUE_KIB: u32 = 32 * 1024;
/// Accounts whose preferences are kept in memory; when full, the cache
/// starts again empty.
const MAX_CACHED: usize = 50_000;
/// How long a batch is tried again while the store fails.
const RETRY_FOR: Duration = Duration::from_secs(30);
/// How often old messages are deleted.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(3600);

/// One message's archive rows, and who waits for their commit.
struct Entry {
    rows: Vec<ArchivedMessage>,
    done: oneshot::Sender<bool>,
    /// Its share of [`QUEUE_KIB`], given back once it is written.
    _bytes: OwnedSemaphorePermit,
}

/// The archives of a server's accounts.
pub struct Archive {
    queue: Option<mpsc::Sender<Entry>>,
    /// KiB the queue may still take.
    room: Arc<Semaphore>,
    default: Arc<ArchivePrefs>,
    /// Preferences of accounts seen lately (the default ones shared).
    prefs: Mutex<HashMap<BareJid, Arc<ArchivePrefs>>>,
}

impl Archive {
    /// Archives that keep nothing.
    pub fn disabled() -> Self {
        Self {
            queue: None,
            room: Arc::new(Semaphore::new(0)),
            default: Arc::default(),
            prefs: Mutex::default(),
        }
    }

    /// Starts the writer (in the current runtime), unless archiving is
    /// off. It ends once the archive is dropped and what was queued is
    /// written.
    pub fn start(config: &ArchiveConfig, store: Arc<dyn Store>) -> Self {
        if !config.enabled {
            return Self::disabled();
        }
        let (queue, entries) = mpsc::channel(QUEUE);
        tokio::spawn(write(store, entries));
        Self {
            queue: Some(queue),
            room: Arc::new(Semaphore::new(QUEUE_KIB as usize)),
            default: Arc::new(ArchivePrefs {
                default: config.default_rule(),
                ..ArchivePrefs::default()
            }),
            prefs: Mutex::default(),
        }
    }

    /// Whether messages are archived.
    pub fn enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// `owner`'s preferences: its own, or the server's default.
    pub async fn prefs(&self, store: &dyn Store, owner: &BareJid) -> Arc<ArchivePrefs> {
        if let Some(prefs) = crate::router::lock(&self.prefs).get(owner) {
            return prefs.clone();
        }
        let prefs = match store.archive_prefs(owner.as_str()).await {
            Ok(Some(prefs)) => Arc::new(prefs),
            Ok(None) => self.default.clone(),
            Err(error) => {
                // Archived by the default meanwhile; not remembered.
                tracing::error!(%error, "reading archive preferences failed");
                return self.default.clone();
            }
        };
        // Kept unless newer preferences were set meanwhile (a read that
        // began before a change must not undo it).
        let mut cache = crate::router::lock(&self.prefs);
        if cache.len() >= MAX_CACHED && !cache.contains_key(owner) {
            *cache = HashMap::new();
        }
        cache
            .entry(owner.clone())
            .or_insert_with(|| prefs.clone())
            .clone()
    }

    /// Records preferences just stored for `owner`.
    pub fn remember(&self, owner: &BareJid, prefs: Arc<ArchivePrefs>) {
        let mut cache = crate::router::lock(&self.prefs);
        if cache.len() >= MAX_CACHED && !cache.contains_key(owner) {
            *cache = HashMap::new();
        }
        cache.insert(owner.clone(), prefs);
    }

    /// Forgets what is known of `owner` (its account went, or another
    /// node changed its preferences).
    pub fn forget(&self, owner: &BareJid) {
        crate::router::lock(&self.prefs).remove(owner);
    }

    /// Forgets every account's preferences (changes may have been
    /// missed).
    pub(crate) fn forget_all(&self) {
        *crate::router::lock(&self.prefs) = HashMap::new();
    }

    /// Whether `owner` archives its messages with `with`.
    async fn keeps(&self, store: &dyn Store, owner: &BareJid, with: &BareJid) -> bool {
        let prefs = self.prefs(store, owner).await;
        let with_text = with.as_str();
        if prefs.never.iter().any(|jid| jid == with_text) {
            return false;
        }
        if prefs.always.iter().any(|jid| jid == with_text) {
            return true;
        }
        match prefs.default {
            ArchiveDefault::Always => true,
            ArchiveDefault::Never => false,
            // In the roster as the user sees it: not an item that only
            // holds someone's request to subscribe.
            ArchiveDefault::Roster => matches!(
                store.roster_item(owner.as_str(), with_text).await,
                Ok(Some(item)) if item.subscription != sigil_store::Subscription::None
                    || item.ask
                    || item.name.is_some()
                    || !item.groups.is_empty()
            ),
        }
    }

    /// Queues rows for the writer: what resolves once they are committed
    /// (`true`) or failed (`false`).
    async fn append(&self, rows: Vec<ArchivedMessage>) -> Option<oneshot::Receiver<bool>> {
        let queue = self.queue.as_ref()?;
        let bytes: usize = rows
            .iter()
            .map(|row| row.stanza.len() + row.owner.len() + row.with.len() + row.id.len())
            .sum();
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(QUEUE_KIB)
            .clamp(1, QUEUE_KIB);
        let held = self.room.clone().acquire_many_owned(kib).await.ok()?;
        let (done, committed) = oneshot::channel();
        queue
            .send(Entry {
                rows,
                done,
                _bytes: held,
            })
            .await
            .ok()?;
        Some(committed)
    }
}

/// Whether a message goes into archives (XEP-0313 §5.1.1, with the
/// XEP-0334 hints): `chat` and `normal` messages with a body, an
/// end-to-end encrypted payload or a `<store/>` hint; never those
/// marked `<no-store/>` or `<no-permanent-store/>`.
pub fn archivable(stanza: &Element) -> bool {
    use sigil_proto::carbons::HINTS;
    if !matches!(
        stanza.attribute("type").unwrap_or("normal"),
        "chat" | "normal"
    ) {
        return false;
    }
    if stanza.has_child("no-store", HINTS) || stanza.has_child("no-permanent-store", HINTS) {
        return false;
    }
    stanza.children().any(|child| {
        child.is("body", sigil_xml::ns::CLIENT)
            || child.is("store", HINTS)
            || child.is("encrypted", "eu.siacs.conversations.axolotl")
            || child.is("encrypted", "urn:xmpp:omemo:2")
    })
}

/// What archiving a message gave: the ids each archive gave it (each side
/// is shown only its own: which of its messages the other side archives
/// is the other side's business), and what resolves once they are
/// committed.
#[derive(Debug, Default)]
pub struct Archived {
    /// The sender's archive's id, for the sender's own sessions (carbons).
    pub sender_id: Option<StanzaId>,
    /// The recipient's archive's id, for the message as delivered.
    pub recipient_id: Option<StanzaId>,
    /// Resolves once the archives committed the message.
    pub committed: Option<oneshot::Receiver<bool>>,
}

/// Archives a message for its sender and its recipient, those of them
/// that are accounts of `domain` and keep it. `to` is where it goes
/// (`None`: the sender's own account).
pub async fn archive(
    archive: &Archive,
    store: &dyn Store,
    domain: &str,
    stanza: &Element,
    to: Option<&Jid>,
) -> Archived {
    let mut archived = Archived::default();
    if !archive.enabled() || !archivable(stanza) {
        return archived;
    }
    let Some(from) = stanza
        .attribute("from")
        .and_then(|from| Jid::new(from).ok())
    else {
        return archived;
    };
    let sender = from.to_bare();
    let to = to.cloned().unwrap_or_else(|| Jid::from(sender.clone()));
    let recipient = to.to_bare();
    let local = |jid: &Jid| jid.node().is_some() && jid.domain().as_str() == domain;
    // The message as it was sent, before any archive's id.
    let stored = stanza.to_xml();
    let at = now_micros();
    let mut rows = Vec::with_capacity(2);
    let [sender_random, recipient_random] = random_pair();
    // A message to oneself is archived once, as received.
    if local(&from) && sender != recipient && archive.keeps(store, &sender, &recipient).await {
        let id = sigil_store::archive_id(at, &sender_random);
        archived.sender_id = Some(StanzaId::new(id.clone(), sender.clone().into()));
        rows.push(ArchivedMessage {
            id,
            owner: sender.to_string(),
            with: to.to_string(),
            at,
            stanza: stored.clone(),
        });
    }
    if local(&to) && archive.keeps(store, &recipient, &sender).await {
        let id = sigil_store::archive_id(at, &recipient_random);
        archived.recipient_id = Some(StanzaId::new(id.clone(), recipient.clone().into()));
        rows.push(ArchivedMessage {
            id,
            owner: recipient.to_string(),
            with: from.to_string(),
            at,
            stanza: stored,
        });
    }
    if !rows.is_empty() {
        archived.committed = archive.append(rows).await;
    }
    archived
}

/// Two ids' random parts from one call to the operating system's
/// generator.
fn random_pair() -> [[u8; 12]; 2] {
    let mut bytes = [0u8; 24];
    if getrandom::fill(&mut bytes).is_err() {
        // Unique still, by the time and a counter, though guessable.
        use std::sync::atomic::{AtomicU64, Ordering};
        static FALLBACK: AtomicU64 = AtomicU64::new(1);
        let n = FALLBACK.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        bytes[..8].copy_from_slice(&n);
        bytes[12..20].copy_from_slice(&n);
    }
    let mut pair = [[0u8; 12]; 2];
    pair[0].copy_from_slice(&bytes[..12]);
    pair[1].copy_from_slice(&bytes[12..]);
    pair
}

/// The time now, in Unix microseconds.
pub fn now_micros() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

/// Commits what is queued, in batches, until the queue's senders are
/// gone.
async fn write(store: Arc<dyn Store>, mut entries: mpsc::Receiver<Entry>) {
    let mut batch = Vec::with_capacity(BATCH);
    while entries.recv_many(&mut batch, BATCH).await > 0 {
        let rows: Vec<ArchivedMessage> = batch
            .iter_mut()
            .flat_map(|entry: &mut Entry| std::mem::take(&mut entry.rows))
            .collect();
        let committed = commit(&*store, rows, RETRY_FOR).await;
        for entry in batch.drain(..) {
            let _ = entry.done.send(committed);
        }
    }
}

/// Commits one batch. While the store fails (a database restarting) the
/// batch is tried again for up to `retry_for`, its senders waiting for
/// their acknowledgements and the queue filling behind it; past that it
/// is given up, and the failure logged. Before each new attempt the
/// store is asked whether an earlier one committed after all (its answer
/// lost with the connection): the batch is one transaction, so one of
/// its rows tells.
async fn commit(store: &dyn Store, rows: Vec<ArchivedMessage>, retry_for: Duration) -> bool {
    let messages = rows.len();
    let give_up = tokio::time::Instant::now() + retry_for;
    let mut wait = Duration::from_millis(100);
    let mut retried = false;
    loop {
        let attempt = match retried {
            false => store.archive(rows.clone()).await.map(|_| ()),
            true => match committed(store, &rows).await {
                Ok(true) => Ok(()),
                Ok(false) => store.archive(rows.clone()).await.map(|_| ()),
                Err(error) => Err(error),
            },
        };
        match attempt {
            Ok(()) => {
                if retried {
                    tracing::info!(messages, "archived after the store came back");
                }
                return true;
            }
            Err(sigil_store::StoreError::Backend(error))
                if tokio::time::Instant::now() + wait < give_up =>
            {
                if !retried {
                    tracing::warn!(%error, messages, "archiving failed; trying again");
                }
                retried = true;
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            Err(error) => {
                tracing::error!(%error, messages, "archiving failed");
                return false;
            }
        }
    }
}

/// Whether the store holds `rows` already: their first or last row, by
/// owner and id (a row whose owner has no account is not kept, so one
/// row alone could say no for a batch that is there).
async fn committed(
    store: &dyn Store,
    rows: &[ArchivedMessage],
) -> Result<bool, sigil_store::StoreError> {
    for row in [rows.first(), rows.last()].into_iter().flatten() {
        let query = sigil_store::ArchiveQuery {
            ids: vec![row.id.clone()],
            max: 1,
            ..sigil_store::ArchiveQuery::default()
        };
        if !store
            .archive_query(&row.owner, &query)
            .await?
            .messages
            .is_empty()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Deletes what is older than `keep_days` (0: nothing by age) and what
/// is beyond `keep` messages per account, at start and then hourly.
pub(crate) async fn expire(store: Arc<dyn Store>, config: ArchiveConfig) {
    let (keep_days, keep) = (config.keep_days, config.max_messages_per_account);
    loop {
        let before = match keep_days {
            0 => i64::MIN,
            days => now_micros().saturating_sub(i64::from(days) * 86_400_000_000),
        };
        match store.expire_archive(before, keep).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "old archived messages deleted"),
            Err(error) => tracing::warn!(%error, "deleting old archived messages failed"),
        }
        tokio::time::sleep(EXPIRY_INTERVAL).await;
    }
}
