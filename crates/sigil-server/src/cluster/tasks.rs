//! The tasks of a node in a cluster: publishing, receiving, watching the
//! registry, writing it, beating.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::Operation;
use futures_util::StreamExt as _;
use jid::FullJid;
use sigil_proto::error::{StreamCondition, StreamError};

use super::directory::{Record, Remote, jid_of};
use super::wire::Op;
use super::{Cluster, SharedHooks, liveness};
use crate::router::{Routes, SessionId, SessionMessage, Undelivered};

/// How long leaving the cluster at shutdown may take.
const LEAVING: Duration = Duration::from_secs(10);

impl Cluster {
    /// Starts this node's cluster tasks; they run until aborted (after
    /// [`Self::leave`]).
    pub fn start(self: &Arc<Self>, hooks: &SharedHooks) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        if let Some(outbox) = crate::router::lock(&self.outbox_receiver).take() {
            tasks.push(tokio::spawn(publish(
                self.client.clone(),
                outbox,
                self.outbox.bytes.clone(),
            )));
        }
        let own = self.subject(&self.node);
        tasks.push(tokio::spawn(receive(self.clone(), own, hooks.clone())));
        let everyone = self.everyone();
        tasks.push(tokio::spawn(receive(self.clone(), everyone, hooks.clone())));
        tasks.push(tokio::spawn(forget_when_troubled(
            self.clone(),
            hooks.clone(),
        )));
        tasks.push(tokio::spawn(self.registry.clone().run()));
        tasks.push(tokio::spawn(watch_registry(self.clone())));
        tasks.push(tokio::spawn(liveness::heartbeat(self.clone())));
        tasks.push(tokio::spawn(liveness::watch(self.clone(), hooks.clone())));
        tasks
    }

    /// Leaves the cluster at shutdown, once this node's sessions have
    /// ended: their records are deleted, and the heartbeat, so that the
    /// others know at once.
    pub async fn leave(&self) {
        let leaving = async {
            self.registry.flush().await;
            let _ = self.nodes.delete(&*self.node).await;
            // What the outbox still holds goes out first.
            for _ in 0..50 {
                if self.outbox.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = self.client.flush().await;
        };
        // NATS away: the others find this node dead instead.
        if tokio::time::timeout(LEAVING, leaving).await.is_err() {
            tracing::warn!(node = %self.node, "cluster: leaving took too long; the other nodes will find this node gone");
        }
    }

    /// Makes the buckets again if they are gone (a NATS server that kept
    /// them in memory restarted).
    pub(super) async fn ensure_buckets(&self) -> Result<(), String> {
        let jetstream = super::jetstream(&self.client);
        super::bucket(
            &jetstream,
            self.registry.bucket.name.clone(),
            super::registry::MAX_AGE,
        )
        .await?;
        super::bucket(&jetstream, self.nodes.name.clone(), liveness::MAX_AGE).await?;
        Ok(())
    }
}

/// Publishes what the outbox holds, in order.
async fn publish(
    client: async_nats::Client,
    mut outbox: tokio::sync::mpsc::Receiver<super::Outgoing>,
    bytes: Arc<std::sync::atomic::AtomicUsize>,
) {
    while let Some(message) = outbox.recv().await {
        let size = message.payload.len();
        let published = client
            .publish_with_headers(message.subject, message.headers, message.payload)
            .await;
        bytes.fetch_sub(size, std::sync::atomic::Ordering::Relaxed);
        if let Err(error) = published {
            tracing::warn!(%error, "cluster: publishing failed");
        }
    }
}

/// After a NATS connection was made again, or messages were dropped, a
/// change another node told of may have been missed: caches go.
/// The buckets are made again at once if the server lost them (the
/// heartbeat then finds this node's gone, and claims its sessions again).
async fn forget_when_troubled(cluster: Arc<Cluster>, hooks: SharedHooks) {
    // The first connection, made before the tasks started, is no news.
    cluster.troubled.notified().await;
    loop {
        cluster.troubled.notified().await;
        hooks.forget(None);
        let since = crate::router::lock(&cluster.troubled_since).take();
        if let Some(since) = since {
            // One task reroutes at a time; more trouble widens its window.
            let window = Instant::now() + RECONNECTING;
            let start = {
                let mut rerouting = crate::router::lock(&cluster.rerouting);
                let start = rerouting.is_none();
                *rerouting = Some(rerouting.map_or(window, |until| until.max(window)));
                start
            };
            if start {
                tokio::spawn(reroute_unanswered(cluster.clone(), hooks.clone(), since));
            }
        }
        match cluster.ensure_buckets().await {
            // Read again from scratch: this node's sessions whose records
            // went with a NATS server that restarted claim them again.
            Ok(()) => cluster.watches.send_modify(|renewals| *renewals += 1),
            Err(error) => tracing::warn!(%error, "cluster: the buckets are not there yet"),
        }
    }
}

/// How long a copy may go unanswered, in troubled times, before it is
/// taken for lost.
const ANSWERS_AFTER_TROUBLE: Duration = Duration::from_secs(2);

/// How long after this node's connection to NATS is back the others may
/// still be connecting again: what is sent to a node meanwhile is lost
/// if it has not subscribed again yet.
const RECONNECTING: Duration = Duration::from_secs(10);

/// After the connection to NATS was lost (or messages from it dropped),
/// copies may never be answered: they, or their answers, went with the
/// NATS server, or went to a node not subscribed again yet. Copies sent
/// until a while after the connection is back that go unanswered for
/// [`ANSWERS_AFTER_TROUBLE`] go where they would have gone had their
/// session not been there. What reached its client already comes again
/// under the same stanza ids, by which clients tell copies; and nothing
/// waits the two minutes after which an unanswered copy is taken for
/// lost anyway.
async fn reroute_unanswered(cluster: Arc<Cluster>, hooks: SharedHooks, since: Instant) {
    let back = Instant::now();
    // A stanza goes again once: one rerouted to a session that is merely
    // slow to acknowledge is not sent to it again and again.
    let mut rerouted = HashSet::new();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(window) = *crate::router::lock(&cluster.rerouting) else {
            return;
        };
        let now = Instant::now();
        let cutoff = now
            .checked_sub(ANSWERS_AFTER_TROUBLE)
            .unwrap_or(since)
            .min(window);
        let lost = cluster.copies.sent_before(cutoff, &rerouted);
        rerouted.extend(lost.iter().map(|copy| copy.receipt.id().0));
        if !lost.is_empty() {
            tracing::warn!(
                copies = lost.len(),
                trouble_ms = back.duration_since(since).as_millis(),
                "cluster: copies unanswered after NATS trouble sent again"
            );
            hooks.reroute_all(
                lost.into_iter()
                    .map(|copy| (copy.stanza, Some(copy.receipt)))
                    .collect(),
            );
        }
        if cutoff >= window {
            let mut rerouting = crate::router::lock(&cluster.rerouting);
            // Unless more trouble widened the window meanwhile.
            if *rerouting == Some(window) {
                *rerouting = None;
                return;
            }
        }
    }
}

/// Receives the operations on `subject` (this node's, or everyone's).
async fn receive(cluster: Arc<Cluster>, subject: String, hooks: SharedHooks) {
    loop {
        match cluster.client.subscribe(subject.clone()).await {
            Ok(mut subscription) => {
                while let Some(message) = subscription.next().await {
                    let Some(op) = Op::decode(message.headers.as_ref(), &message.payload) else {
                        tracing::debug!(subject = %message.subject, "cluster: malformed operation dropped");
                        continue;
                    };
                    handle(&cluster, &*hooks, op);
                }
            }
            Err(error) => tracing::warn!(%error, "cluster: cannot subscribe"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A node name fit for a subject (what the configuration allows).
fn valid_node(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn handle(cluster: &Arc<Cluster>, hooks: &dyn super::Hooks, op: Op) {
    match op {
        Op::Deliver {
            to,
            serial,
            copy,
            from,
            stanza,
        } => {
            let message = match copy.filter(|_| valid_node(&from)) {
                Some(number) => {
                    // Followed: the sender hears when it is safe, or gone.
                    let (receipt, settled) = cluster.local.receipt();
                    let answer = cluster.clone();
                    let subject = cluster.subject(&from);
                    tokio::spawn(async move {
                        let safe = settled.await.unwrap_or(false);
                        let settle = Op::Settle { copy: number, safe };
                        answer.outbox.post_waiting(subject, settle.encode()).await;
                    });
                    SessionMessage::Tracked(Box::new(stanza), receipt)
                }
                None => SessionMessage::Stanza(Box::new(stanza)),
            };
            let result = match serial {
                Some(serial) => cluster.local.send(&SessionId { jid: to, serial }, message),
                None => cluster.local.deliver(&to, message),
            };
            if let Err(Undelivered { message, .. }) = result {
                // The session went meanwhile: where it would have gone
                // had the session not been there.
                let (stanza, receipt) = match message {
                    SessionMessage::Stanza(stanza) => (*stanza, None),
                    SessionMessage::Tracked(stanza, receipt) => (*stanza, Some(receipt)),
                };
                hooks.reroute(stanza, receipt);
            }
        }
        Op::End { to, serial, error } => {
            cluster.local.end(&SessionId { jid: to, serial }, error);
        }
        Op::Settle { copy, safe } => cluster.copies.settle(copy, safe),
        Op::Close {
            account,
            closing,
            error,
            from,
        } => {
            if *from != *cluster.node {
                hooks.close(&account, &closing, error);
            }
        }
        Op::Forget {
            cache,
            account,
            from,
        } => {
            if *from != *cluster.node {
                hooks.forget(Some((cache, &account)));
            }
        }
    }
}

/// Keeps the directory of the other nodes' sessions from the registry's
/// records, and hears of this node's sessions replaced elsewhere.
async fn watch_registry(cluster: Arc<Cluster>) {
    let mut renewed = cluster.watches.subscribe();
    loop {
        let watched = cluster.registry.bucket.watch_with_history(">").await;
        match watched {
            Ok(mut records) => {
                // The records come again, the latest of each; what the
                // directory holds stays meanwhile, and what did not come
                // again goes once all came (so no session goes missing
                // for a moment).
                let mut seen = HashSet::new();
                let mut current = cluster
                    .registry
                    .bucket
                    .status()
                    .await
                    .is_ok_and(|status| status.values() == 0);
                if current {
                    caught_up(&cluster, &seen);
                }
                loop {
                    let entry = tokio::select! {
                        next = records.next() => match next {
                            Some(Ok(entry)) => entry,
                            _ => break,
                        },
                        // The buckets were made again: a watch of the old
                        // one may never say it is gone.
                        _ = renewed.changed() => break,
                    };
                    if !current && let Some(jid) = jid_of(&entry.key) {
                        if entry.operation == Operation::Put {
                            seen.insert(jid);
                        } else {
                            seen.remove(&jid);
                        }
                    }
                    apply(&cluster, &entry);
                    if !current && entry.delta == 0 {
                        current = true;
                        caught_up(&cluster, &seen);
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cluster: cannot watch the registry"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The registry was read whole: the directory keeps only what it holds,
/// and this node's sessions whose records are missing (lost, or purged)
/// claim them again.
fn caught_up(cluster: &Cluster, present: &HashSet<FullJid>) {
    tracing::debug!(node = %cluster.node, present = present.len(), "cluster: registry read whole");
    cluster.directory.retain(present);
    cluster.registry.reclaim_missing(present);
}

fn apply(cluster: &Arc<Cluster>, entry: &async_nats::jetstream::kv::Entry) {
    tracing::debug!(node = %cluster.node, key = %entry.key, operation = ?entry.operation, revision = entry.revision, "cluster: record");
    let Some(jid) = jid_of(&entry.key) else {
        return;
    };
    match entry.operation {
        Operation::Put => {
            let Ok(record) = serde_json::from_slice::<Record>(&entry.value) else {
                return;
            };
            // Its node's name goes into subjects.
            if !valid_node(&record.node) {
                return;
            }
            if *record.node == *cluster.node {
                cluster.directory.remove(&jid);
                if record.run != cluster.run && cluster.registry.owned(&jid).is_none() {
                    // An earlier run of this node left it: its session is
                    // gone (a newer one claims at its own revision).
                    let bucket = cluster.registry.bucket.clone();
                    let (key, revision) = (entry.key.clone(), entry.revision);
                    tokio::spawn(async move {
                        let _ = bucket.delete_expect_revision(key, Some(revision)).await;
                    });
                }
                return;
            }
            if let Some(owned) = cluster.registry.owned(&jid)
                && entry.revision > owned.revision
            {
                // Another node's session has this full JID too: the one
                // that bound last keeps it.
                let ours = cluster.registry.bound_at(&jid, owned.serial);
                if ours.is_some_and(|ours| {
                    (ours, &*cluster.node) > (record.bound, record.node.as_str())
                }) {
                    cluster.registry.disown(&jid);
                    cluster.registry.mark(&jid);
                    return;
                }
                cluster.registry.disown(&jid);
                cluster.local.end(
                    &SessionId {
                        jid: jid.clone(),
                        serial: owned.serial,
                    },
                    StreamError::with_text(
                        StreamCondition::Conflict,
                        "replaced by a new connection",
                    ),
                );
            }
            if let Some(found) = record.entry(jid) {
                cluster.directory.put(Remote {
                    entry: found,
                    node: cluster.intern(&record.node),
                    revision: entry.revision,
                });
            }
        }
        Operation::Delete | Operation::Purge => {
            cluster.directory.remove(&jid);
            if cluster
                .registry
                .owned(&jid)
                .is_some_and(|owned| entry.revision > owned.revision)
            {
                // This node's record was deleted by another (it was taken
                // for dead): claimed again while the session lives.
                cluster.registry.disown(&jid);
                cluster.registry.mark(&jid);
            }
        }
    }
}
