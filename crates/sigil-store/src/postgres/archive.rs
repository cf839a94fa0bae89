//! Message archives (XEP-0313) in PostgreSQL.
//!
//! A message's `seq` is its archive time in Unix microseconds, raised
//! past the owner's newest when the clock has not moved on (or went
//! back), under the owner's account row lock: unique and increasing per
//! owner, it orders the owner's archive, and a query by time is a range
//! of the same indexes as one by position.

use std::collections::BTreeMap;

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use super::{
    PostgresStore, backend, execute, lock_account, query, query_one, query_opt, to_bigint,
};
use crate::{
    ArchiveDefault, ArchivePage, ArchivePrefs, ArchiveQuery, ArchiveResult, ArchiveStore,
    ArchivedMessage, StoreError, StoreFuture, archive_id_time,
};

/// The predicate of the `archive_other_ids` partial index, word for word:
/// ids `archive_id_time` does not read.
const OTHER_ID: &str = "(length(id) <> 37 OR id ~ '[^0-9a-f]')";

/// Rows one expiry statement deletes at most.
const EXPIRY_BATCH: i64 = 10_000;

/// A JID split into its bare part and its resource ("" for none).
fn split(jid: &str) -> (&str, &str) {
    jid.split_once('/').unwrap_or((jid, ""))
}

impl ArchiveStore for PostgresStore {
    fn archive(&self, messages: Vec<ArchivedMessage>) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            if messages.is_empty() {
                return Ok(0);
            }
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(backend)?;
            let archived = insert(&transaction, &messages).await?;
            transaction.commit().await.map_err(backend)?;
            Ok(archived)
        })
    }

    fn archive_query<'a>(
        &'a self,
        owner: &'a str,
        query: &'a ArchiveQuery,
    ) -> StoreFuture<'a, ArchiveResult> {
        Box::pin(async move {
            let mut client = self.client().await?;
            // The id lookups and the page from one snapshot.
            let transaction = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(backend)?;
            let result = run_query(&transaction, owner, query).await?;
            transaction.commit().await.map_err(backend)?;
            Ok(result)
        })
    }

    fn archive_prefs<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, Option<ArchivePrefs>> {
        Box::pin(async move {
            let client = self.client().await?;
            let Some(row) = query_opt(
                &client,
                "SELECT default_rule, always, never FROM archive_prefs WHERE owner = $1",
                &[&owner],
            )
            .await?
            else {
                return Ok(None);
            };
            let rule: String = row.try_get(0).map_err(backend)?;
            let default = ArchiveDefault::from_name(&rule)
                .ok_or_else(|| StoreError::Corrupt(format!("archive default '{rule}'")))?;
            Ok(Some(ArchivePrefs {
                default,
                always: row.try_get(1).map_err(backend)?,
                never: row.try_get(2).map_err(backend)?,
            }))
        })
    }

    fn set_archive_prefs<'a>(
        &'a self,
        owner: &'a str,
        prefs: &'a ArchivePrefs,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let clean = |list: &[String]| -> Vec<String> {
                let mut list: Vec<String> = list
                    .iter()
                    .filter(|jid| !jid.is_empty() && !jid.contains('\n'))
                    .cloned()
                    .collect();
                list.sort_unstable();
                list.dedup();
                list
            };
            let (always, never) = (clean(&prefs.always), clean(&prefs.never));
            let client = self.client().await?;
            let written = execute(
                &client,
                "INSERT INTO archive_prefs (owner, default_rule, always, never)
                 SELECT jid, $2, $3, $4 FROM accounts WHERE jid = $1 FOR KEY SHARE
                 ON CONFLICT (owner) DO UPDATE SET default_rule = excluded.default_rule,
                     always = excluded.always, never = excluded.never",
                &[&owner, &prefs.default.name(), &always, &never],
            )
            .await?;
            match written {
                0 => Err(StoreError::NotFound),
                _ => Ok(()),
            }
        })
    }

    fn expire_archive(&self, before: i64, keep: u64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let client = self.client().await?;
            // In short statements, so that messages being archived
            // meanwhile wait milliseconds, not the whole expiry.
            let mut deleted = 0_u64;
            loop {
                let batch = execute(
                    &client,
                    "DELETE FROM archive WHERE ctid IN (
                         SELECT ctid FROM archive WHERE seq < $1 LIMIT $2)",
                    &[&before, &EXPIRY_BATCH],
                )
                .await?;
                deleted += batch;
                if i64::try_from(batch).unwrap_or(i64::MAX) < EXPIRY_BATCH {
                    break;
                }
            }
            let keep = i64::try_from(keep).unwrap_or(i64::MAX);
            let over = query(
                &client,
                "SELECT owner FROM archive GROUP BY owner HAVING count(*) > $1",
                &[&keep],
            )
            .await?;
            for row in over {
                let owner: String = row.get(0);
                loop {
                    let batch = execute(
                        &client,
                        "DELETE FROM archive WHERE ctid IN (
                             SELECT ctid FROM archive WHERE owner = $1
                             AND seq <= (SELECT seq FROM archive WHERE owner = $1
                                         ORDER BY seq DESC LIMIT 1 OFFSET $2)
                             ORDER BY seq LIMIT $3)",
                        &[&owner, &keep, &EXPIRY_BATCH],
                    )
                    .await?;
                    deleted += batch;
                    if i64::try_from(batch).unwrap_or(i64::MAX) < EXPIRY_BATCH {
                        break;
                    }
                }
            }
            Ok(deleted)
        })
    }
}

/// Inserts a batch in the caller's transaction, each message at a `seq`
/// past its owner's newest; drops the messages of owners that are not
/// accounts (any more). The owners' rows are locked in the order of their
/// JIDs, so that two batches cannot deadlock.
async fn insert(
    transaction: &impl GenericClient,
    messages: &[ArchivedMessage],
) -> Result<u64, StoreError> {
    // Each owner's newest seq, for those that are accounts.
    let mut last: BTreeMap<&str, Option<i64>> = BTreeMap::new();
    for message in messages {
        last.entry(message.owner.as_str()).or_insert(None);
    }
    let owners: Vec<&str> = last.keys().copied().collect();
    for owner in owners {
        if lock_account(transaction, owner).await? {
            let newest: i64 = query_one(
                transaction,
                "SELECT coalesce(max(seq), 0) FROM archive WHERE owner = $1",
                &[&owner],
            )
            .await?
            .get(0);
            last.insert(owner, Some(newest));
        }
    }
    let mut columns: [Vec<String>; 5] = Default::default();
    let mut seqs: Vec<i64> = Vec::with_capacity(messages.len());
    for message in messages {
        let Some(Some(newest)) = last.get_mut(message.owner.as_str()) else {
            continue;
        };
        // Never below the time the id names, where a lookup by id starts.
        let floor = archive_id_time(&message.id).unwrap_or(i64::MIN);
        let seq = message.at.max(floor).max(newest.saturating_add(1));
        *newest = seq;
        let (bare, resource) = split(&message.with);
        seqs.push(seq);
        columns[0].push(message.owner.clone());
        columns[1].push(message.id.clone());
        columns[2].push(bare.to_owned());
        columns[3].push(resource.to_owned());
        columns[4].push(message.stanza.clone());
    }
    if seqs.is_empty() {
        return Ok(0);
    }
    // One statement for the batch.
    let statement = transaction
        .prepare_cached(
            "INSERT INTO archive (owner, seq, id, with_bare, with_resource, stanza)
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[],
                                  $5::text[], $6::text[])",
        )
        .await
        .map_err(backend)?;
    let [owners, ids, bares, resources, stanzas] = &columns;
    let params: [&(dyn ToSql + Sync); 6] = [owners, &seqs, ids, bares, resources, stanzas];
    transaction
        .execute(&statement, &params)
        .await
        .map_err(|error| match error.code() {
            Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                StoreError::Conflict("id".into())
            }
            _ => backend(error),
        })
}

/// The `seq` of `owner`'s message `id`, or [`StoreError::NotFound`].
async fn seq_of(client: &impl GenericClient, owner: &str, id: &str) -> Result<i64, StoreError> {
    find_seq(client, owner, id)
        .await?
        .ok_or(StoreError::NotFound)
}

/// The `seq` of `owner`'s message `id`, if there is one. An id that names
/// a time is looked for among the owner's messages from that time on;
/// any other through the index of such ids.
async fn find_seq(
    client: &impl GenericClient,
    owner: &str,
    id: &str,
) -> Result<Option<i64>, StoreError> {
    let row = match archive_id_time(id) {
        Some(time) => {
            query_opt(
                client,
                "SELECT seq FROM archive WHERE owner = $1 AND seq >= $2 AND id = $3
                 ORDER BY seq LIMIT 1",
                &[&owner, &time, &id],
            )
            .await?
        }
        None => {
            query_opt(
                client,
                &format!("SELECT seq FROM archive WHERE owner = $1 AND id = $2 AND {OTHER_ID}"),
                &[&owner, &id],
            )
            .await?
        }
    };
    Ok(row.map(|row| row.get(0)))
}

async fn run_query(
    client: &impl GenericClient,
    owner: &str,
    query: &ArchiveQuery,
) -> Result<ArchiveResult, StoreError> {
    // The bounds: from the time range, the id filters and the page's
    // cursor, all on `seq`.
    let mut lower = query.start.map(|start| start.saturating_sub(1));
    let mut upper = query.end.map(|end| end.saturating_add(1));
    if let Some(id) = &query.after_id {
        let bound = seq_of(client, owner, id).await?;
        lower = Some(lower.map_or(bound, |l| l.max(bound)));
    }
    if let ArchivePage::After(id) = &query.page {
        let bound = seq_of(client, owner, id).await?;
        lower = Some(lower.map_or(bound, |l| l.max(bound)));
    }
    if let Some(id) = &query.before_id {
        let bound = seq_of(client, owner, id).await?;
        upper = Some(upper.map_or(bound, |u| u.min(bound)));
    }
    if let ArchivePage::Before(id) = &query.page {
        let bound = seq_of(client, owner, id).await?;
        upper = Some(upper.map_or(bound, |u| u.min(bound)));
    }
    // Each id found by its own lookup; ids the archive does not hold
    // match nothing.
    let mut only: Option<Vec<i64>> = None;
    if !query.ids.is_empty() {
        let mut seqs = Vec::new();
        for id in &query.ids {
            if let Some(seq) = find_seq(client, owner, id).await? {
                seqs.push(seq);
            }
        }
        only = Some(seqs);
    }
    let (bare, resource) = match &query.with {
        Some(with) => {
            let (bare, resource) = split(with);
            (Some(bare), (!resource.is_empty()).then_some(resource))
        }
        None => (None, None),
    };
    let backwards = matches!(query.page, ArchivePage::Last | ArchivePage::Before(_));
    let order = if backwards { "DESC" } else { "ASC" };
    // Optional filters as NULL-able parameters: one prepared statement
    // per direction.
    let sql = format!(
        "SELECT seq, id, with_bare, with_resource, stanza FROM archive
         WHERE owner = $1
           AND ($2::text IS NULL OR with_bare = $2)
           AND ($3::text IS NULL OR with_resource = $3)
           AND ($4::bigint IS NULL OR seq > $4)
           AND ($5::bigint IS NULL OR seq < $5)
           AND ($6::bigint[] IS NULL OR seq = ANY($6))
         ORDER BY seq {order} LIMIT $7"
    );
    // One more than asked: whether the page is the last one.
    let limit = to_bigint(query.max.saturating_add(1));
    let rows = self::query(
        client,
        &sql,
        &[&owner, &bare, &resource, &lower, &upper, &only, &limit],
    )
    .await?;
    let mut messages = rows
        .iter()
        .map(|row| {
            let bare: String = row.try_get(2).map_err(backend)?;
            let resource: String = row.try_get(3).map_err(backend)?;
            Ok(ArchivedMessage {
                at: row.try_get(0).map_err(backend)?,
                id: row.try_get(1).map_err(backend)?,
                owner: owner.to_owned(),
                with: if resource.is_empty() {
                    bare
                } else {
                    format!("{bare}/{resource}")
                },
                stanza: row.try_get(4).map_err(backend)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let complete = messages.len() <= query.max;
    messages.truncate(query.max);
    if backwards {
        messages.reverse();
    }
    Ok(ArchiveResult { messages, complete })
}
