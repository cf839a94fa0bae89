//! Which nodes are alive: every node writes its heartbeat into the nodes
//! bucket every [`HEARTBEAT`] and watches the others'; a node unheard of
//! for [`DEAD_AFTER`] (or whose sessions are in the registry but which
//! never beat since this node started) is dead.
//!
//! A node that cannot hear its own heartbeat is the one cut off: it
//! declares nobody dead meanwhile. A node that finds its heartbeat gone
//! from the bucket was taken for dead (and its records purged): it
//! claims its sessions again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::{CreateErrorKind, Operation, UpdateErrorKind};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::Cluster;
use super::directory::key;

/// How often a node beats.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(1);

/// How long a node may go unheard before it is dead.
pub(super) const DEAD_AFTER: Duration = Duration::from_secs(3);

/// How long a heartbeat stays in the bucket.
pub(super) const MAX_AGE: Duration = Duration::from_secs(5);

/// A node's heartbeat.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct Beat {
    /// The node's run.
    run: u64,
    /// Its sessions.
    sessions: usize,
}

/// What one node knows of a node of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// Its name.
    pub name: String,
    /// Its sessions, as its last heartbeat said.
    pub sessions: usize,
    /// Milliseconds since its last heartbeat.
    pub last_heard_ms: u128,
}

/// Writes this node's first heartbeat: fails if a live node already
/// goes by its name (waiting out the heartbeat of an earlier run of this
/// node that ended without removing it).
pub(super) async fn announce(cluster: &Cluster) -> Result<(), String> {
    let deadline = Instant::now() + MAX_AGE + HEARTBEAT;
    let beat = beat(cluster);
    loop {
        match cluster.nodes.create(&*cluster.node, beat.clone()).await {
            Ok(_) => return Ok(()),
            Err(error) if error.kind() == CreateErrorKind::AlreadyExists => {
                if Instant::now() > deadline {
                    return Err(format!(
                        "cluster.node: another running node is named {:?}; give each node its own name",
                        &*cluster.node
                    ));
                }
                tokio::time::sleep(HEARTBEAT).await;
            }
            Err(error) => {
                return Err(format!("cannot write to the NATS nodes bucket: {error}"));
            }
        }
    }
}

fn beat(cluster: &Cluster) -> bytes::Bytes {
    let beat = Beat {
        run: cluster.run,
        sessions: cluster.local.len(),
    };
    bytes::Bytes::from(serde_json::to_vec(&beat).unwrap_or_default())
}

/// The nodes heard from, by name: when last (`None`: it left), and how
/// many sessions it said it had.
pub(super) type Heard = HashMap<Arc<str>, (Option<Instant>, usize)>;

/// Beats for ever. After a beat that failed, the next that succeeds
/// claims every session of this node again: the records may be gone
/// (purged while this node was taken for dead, or lost with a NATS
/// server that restarted).
pub(super) async fn heartbeat(cluster: Arc<Cluster>) {
    let mut revision = None;
    let mut failed = false;
    let mut taken = false;
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        let beat = beat(&cluster);
        let writing = async {
            match revision {
                Some(last) => cluster
                    .nodes
                    .update(&*cluster.node, beat, last)
                    .await
                    .map_err(|e| {
                        (
                            e.kind() == UpdateErrorKind::WrongLastRevision,
                            e.to_string(),
                        )
                    }),
                None => write_again(&cluster, beat).await,
            }
        };
        // A beat late is no beat: the next one tries again.
        let written = tokio::time::timeout(HEARTBEAT * 3 / 2, writing)
            .await
            .unwrap_or_else(|_| Err((false, "timed out".to_owned())));
        match written {
            Ok(next) => {
                revision = Some(next);
                if std::mem::take(&mut failed) {
                    // Read the registry again: this node's sessions whose
                    // records went claim them again.
                    tracing::warn!(node = %cluster.node, "cluster: heartbeat back");
                    cluster.watches.send_modify(|renewals| *renewals += 1);
                }
                if std::mem::take(&mut taken) {
                    tracing::warn!(node = %cluster.node, "cluster: claiming this node's sessions again");
                    cluster.registry.reclaim_all();
                }
            }
            Err((taken_for_dead, error)) => {
                revision = None;
                failed = true;
                taken |= taken_for_dead;
                if taken_for_dead {
                    tracing::warn!(node = %cluster.node, "cluster: this node was taken for dead");
                } else {
                    tracing::warn!(node = %cluster.node, %error, "cluster: heartbeat not written");
                    // A NATS server that restarted lost the buckets.
                    let _ = cluster.ensure_buckets().await;
                }
            }
        }
    }
}

/// Writes the heartbeat without knowing its revision: creates it, or
/// finds this run's own (an answer lost) and writes over it; never over
/// another process's that took this node's name meanwhile.
async fn write_again(cluster: &Cluster, beat: bytes::Bytes) -> Result<u64, (bool, String)> {
    let exists = match cluster.nodes.create(&*cluster.node, beat.clone()).await {
        Ok(revision) => return Ok(revision),
        Err(error) if error.kind() == CreateErrorKind::AlreadyExists => error,
        Err(error) => return Err((false, error.to_string())),
    };
    match cluster.nodes.entry(&*cluster.node).await {
        Ok(Some(entry))
            if serde_json::from_slice::<Beat>(&entry.value).is_ok_and(|b| b.run == cluster.run) =>
        {
            cluster
                .nodes
                .update(&*cluster.node, beat, entry.revision)
                .await
                .map_err(|e| (false, e.to_string()))
        }
        Ok(Some(_)) => {
            tracing::error!(node = %cluster.node, "cluster: another running node took this node's name; this node stays out of the cluster until it stops");
            Err((false, exists.to_string()))
        }
        _ => Err((false, exists.to_string())),
    }
}

/// Watches the heartbeats, and declares the dead, for ever.
pub(super) async fn watch(cluster: Arc<Cluster>, hooks: super::SharedHooks) {
    let started = Instant::now();
    let monitor = {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            let mut silent = false;
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                declare_dead(&cluster, started, &*hooks, &mut silent);
            }
        })
    };
    let mut renewed = cluster.watches.subscribe();
    loop {
        match cluster.nodes.watch_with_history(">").await {
            Ok(mut beats) => loop {
                let entry = tokio::select! {
                    next = beats.next() => match next {
                        Some(Ok(entry)) => entry,
                        _ => break,
                    },
                    _ = renewed.changed() => break,
                };
                {
                    let node = cluster.intern(&entry.key);
                    let heard = match entry.operation {
                        Operation::Put => {
                            let sessions = serde_json::from_slice::<Beat>(&entry.value)
                                .map_or(0, |beat| beat.sessions);
                            (Some(Instant::now()), sessions)
                        }
                        // A node that left: dead at once.
                        Operation::Delete | Operation::Purge => (None, 0),
                    };
                    let known = crate::router::lock(&cluster.heard)
                        .insert(node, heard)
                        .is_some();
                    // A node this one took for dead speaks again: the
                    // registry is read again, for its sessions.
                    if !known && heard.0.is_some() && started.elapsed() > DEAD_AFTER * 2 {
                        cluster.watches.send_modify(|renewals| *renewals += 1);
                    }
                }
            },
            Err(error) => tracing::warn!(%error, "cluster: cannot watch the heartbeats"),
        }
        if monitor.is_finished() {
            return;
        }
        tokio::time::sleep(HEARTBEAT).await;
    }
}

/// Declares dead the nodes unheard of for [`DEAD_AFTER`], and those with
/// sessions in the registry that never beat since this node started.
fn declare_dead(
    cluster: &Arc<Cluster>,
    started: Instant,
    hooks: &dyn super::Hooks,
    was_silent: &mut bool,
) {
    let now = Instant::now();
    let silent = |at: &Option<Instant>| at.is_none_or(|at| now.duration_since(at) > DEAD_AFTER);
    let mut heard = crate::router::lock(&cluster.heard);
    // Cut off from NATS (or stalled): everyone looks silent, so no one is
    // declared; once this node hears itself again, the others get as
    // long again to be heard.
    if heard.get(&cluster.node).is_none_or(|(at, _)| silent(at)) {
        *was_silent = true;
        return;
    }
    if std::mem::take(was_silent) {
        for (at, _) in heard.values_mut() {
            if at.is_some() {
                *at = Some(now);
            }
        }
        return;
    }
    let mut dead: Vec<Arc<str>> = heard
        .iter()
        .filter(|(_, (at, _))| silent(at))
        .map(|(node, _)| node.clone())
        .collect();
    if now.duration_since(started) > DEAD_AFTER {
        for node in cluster.directory.counts().into_keys() {
            if !heard.contains_key(&node) && !dead.contains(&node) {
                dead.push(node);
            }
        }
    }
    for node in &dead {
        heard.remove(node);
    }
    // The live node first by name purges the records.
    let purger = heard
        .keys()
        .min()
        .is_some_and(|first| *first == cluster.node);
    drop(heard);
    let lost = cluster.copies.lost(&dead, super::copies::UNANSWERED);
    for node in &dead {
        let sessions = cluster.directory.remove_node(Some(node));
        tracing::warn!(node = %node, sessions = sessions.len(), "cluster: node dead");
        if purger {
            // One node tells, for all.
            hooks.gone(
                sessions
                    .iter()
                    .filter(|s| s.entry.presence.is_some())
                    .map(|s| s.entry.id.jid.clone())
                    .collect(),
            );
            let bucket = cluster.registry.bucket.clone();
            tokio::spawn(async move {
                for session in sessions {
                    let _ = bucket
                        .delete_expect_revision(key(&session.entry.id.jid), Some(session.revision))
                        .await;
                }
            });
        }
    }
    // What was sent there, or lost on the way, goes where it would have
    // gone had its session not been there.
    if !lost.is_empty() {
        hooks.reroute_all(
            lost.into_iter()
                .map(|copy| (copy.stanza, Some(copy.receipt)))
                .collect(),
        );
    }
}

/// The nodes heard from, as this node knows them.
pub(super) fn status(cluster: &Cluster) -> Vec<NodeStatus> {
    let now = Instant::now();
    let mut nodes: Vec<NodeStatus> = crate::router::lock(&cluster.heard)
        .iter()
        .filter_map(|(name, (at, sessions))| {
            Some(NodeStatus {
                name: name.to_string(),
                sessions: *sessions,
                last_heard_ms: now.duration_since((*at)?).as_millis(),
            })
        })
        .collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    nodes
}

/// The nodes of the cluster `config` names, as the heartbeats in NATS say
/// (for `sigil cluster status`): connects, reads, and leaves.
pub async fn read_status(
    config: &crate::config::ClusterConfig,
    base: &std::path::Path,
) -> Result<Vec<NodeStatus>, String> {
    let client = super::connect_nats(config, base, Arc::default(), Arc::default()).await?;
    let jetstream = super::jetstream(&client);
    let bucket = format!("{}_nodes", config.name());
    let Ok(nodes) = jetstream.get_key_value(bucket.as_str()).await else {
        // No node ever started.
        return Ok(Vec::new());
    };
    let mut names: Vec<String> = nodes
        .keys()
        .await
        .map_err(|e| format!("cannot read the NATS bucket {bucket}: {e}"))?
        .filter_map(|key| async move { key.ok() })
        .collect()
        .await;
    names.sort();
    let now = time::OffsetDateTime::now_utc();
    let mut out = Vec::new();
    for name in names {
        let Ok(Some(entry)) = nodes.entry(name.as_str()).await else {
            continue;
        };
        if entry.operation != Operation::Put {
            continue;
        }
        let sessions = serde_json::from_slice::<Beat>(&entry.value).map_or(0, |beat| beat.sessions);
        let age = (now - entry.created).whole_milliseconds().max(0);
        out.push(NodeStatus {
            name,
            sessions,
            last_heard_ms: u128::try_from(age).unwrap_or(0),
        });
    }
    Ok(out)
}
