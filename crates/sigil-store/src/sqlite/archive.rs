//! Message archives (XEP-0313) in SQLite.
//!
//! A message's `seq` is its archive time in Unix microseconds, raised
//! past the newest one when the clock has not moved on (or went back):
//! unique and increasing, it orders the archive, and a query by time is
//! a range of the same indexes as one by position.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};

use super::{SqliteStore, account_exists, backend, to_sql_integer};
use crate::{
    ArchiveDefault, ArchivePage, ArchivePrefs, ArchiveQuery, ArchiveResult, ArchiveStore,
    ArchivedMessage, StoreError, StoreFuture, archive_id_time,
};

/// The predicate of the `archive_other_ids` partial index, repeated word
/// for word where a query means to use it: ids `archive_id_time` does
/// not read.
const OTHER_ID: &str = "(length(id) <> 37 OR id GLOB '*[^0-9a-f]*')";

/// A JID split into its bare part and its resource ("" for none). A bare
/// JID has no `/`, so the first one starts the resource.
fn split(jid: &str) -> (&str, &str) {
    jid.split_once('/').unwrap_or((jid, ""))
}

impl ArchiveStore for SqliteStore {
    fn archive(&self, messages: Vec<ArchivedMessage>) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            if messages.is_empty() {
                return Ok(0);
            }
            self.write(move |transaction| insert(transaction, &messages))
                .await
        })
    }

    fn archive_query<'a>(
        &'a self,
        owner: &'a str,
        query: &'a ArchiveQuery,
    ) -> StoreFuture<'a, ArchiveResult> {
        Box::pin(async move {
            let (owner, query) = (owner.to_owned(), query.clone());
            self.read_blocking(move |connection| run_query(connection, &owner, &query))
                .await
        })
    }

    fn archive_prefs<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, Option<ArchivePrefs>> {
        Box::pin(async move {
            self.read(|connection| {
                let row = connection
                    .prepare_cached(
                        "SELECT default_rule, always, never FROM archive_prefs WHERE owner = ?",
                    )
                    .map_err(backend)?
                    .query_row([owner], |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, String>(2)?,
                        ))
                    })
                    .optional()
                    .map_err(backend)?;
                let Some((rule, always, never)) = row else {
                    return Ok(None);
                };
                let default = ArchiveDefault::from_name(&rule)
                    .ok_or_else(|| StoreError::Corrupt(format!("archive default '{rule}'")))?;
                let list = |text: &str| -> Vec<String> {
                    text.lines()
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned)
                        .collect()
                };
                Ok(Some(ArchivePrefs {
                    default,
                    always: list(&always),
                    never: list(&never),
                }))
            })
        })
    }

    fn set_archive_prefs<'a>(
        &'a self,
        owner: &'a str,
        prefs: &'a ArchivePrefs,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let owner = owner.to_owned();
            let join = |list: &[String]| -> String {
                let mut list: Vec<&str> = list
                    .iter()
                    .map(String::as_str)
                    .filter(|jid| !jid.is_empty() && !jid.contains('\n'))
                    .collect();
                list.sort_unstable();
                list.dedup();
                list.join("\n")
            };
            let (rule, always, never) = (
                prefs.default.name(),
                join(&prefs.always),
                join(&prefs.never),
            );
            self.write(move |transaction| {
                if !account_exists(transaction, &owner)? {
                    return Err(StoreError::NotFound);
                }
                transaction
                    .prepare_cached(
                        "INSERT OR REPLACE INTO archive_prefs (owner, default_rule, always, never)
                         VALUES (?, ?, ?, ?)",
                    )
                    .map_err(backend)?
                    .execute((&owner, rule, &always, &never))
                    .map_err(backend)?;
                Ok(())
            })
            .await
        })
    }

    fn expire_archive(&self, before: i64, keep: u64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            // In short transactions, so that messages being archived and
            // everything else written meanwhile wait milliseconds, not the
            // whole expiry.
            let mut deleted = 0_u64;
            loop {
                let batch = self
                    .write(move |transaction| {
                        transaction
                            .prepare_cached(
                                "DELETE FROM archive WHERE seq IN (
                                     SELECT seq FROM archive WHERE seq < ? ORDER BY seq LIMIT ?)",
                            )
                            .map_err(backend)?
                            .execute((before, EXPIRY_BATCH))
                            .map_err(backend)
                    })
                    .await?;
                deleted += u64::try_from(batch).unwrap_or(0);
                if i64::try_from(batch).unwrap_or(i64::MAX) < EXPIRY_BATCH {
                    break;
                }
            }
            let keep = i64::try_from(keep).unwrap_or(i64::MAX);
            // Found on a reader, without the write lock.
            let over: Vec<String> = self.read(|connection| {
                connection
                    .prepare_cached("SELECT owner FROM archive GROUP BY owner HAVING count(*) > ?")
                    .map_err(backend)?
                    .query_map([keep], |row| row.get(0))
                    .map_err(backend)?
                    .collect::<Result<_, _>>()
                    .map_err(backend)
            })?;
            for owner in over {
                loop {
                    let owner = owner.clone();
                    let batch = self
                        .write(move |transaction| {
                            transaction
                                .prepare_cached(
                                    "DELETE FROM archive WHERE seq IN (
                                         SELECT seq FROM archive WHERE owner = ?1
                                         AND seq <= (SELECT seq FROM archive WHERE owner = ?1
                                                     ORDER BY seq DESC LIMIT 1 OFFSET ?2)
                                         ORDER BY seq LIMIT ?3)",
                                )
                                .map_err(backend)?
                                .execute((&owner, keep, EXPIRY_BATCH))
                                .map_err(backend)
                        })
                        .await?;
                    deleted += u64::try_from(batch).unwrap_or(0);
                    if i64::try_from(batch).unwrap_or(i64::MAX) < EXPIRY_BATCH {
                        break;
                    }
                }
            }
            Ok(deleted)
        })
    }
}

/// Rows one `INSERT` statement writes: a batch goes in statements of
/// this many rows (the rest one by one), which costs SQLite less than a
/// statement per row.
const INSERT_ROWS: usize = 32;

/// Inserts a batch, each message at a `seq` past the newest one; drops
/// the messages of owners that are not accounts (any more). Ids that
/// [`archive_id`](crate::archive_id) made are unique by their random
/// part; those of any other form are checked by their index.
fn insert(transaction: &Connection, messages: &[ArchivedMessage]) -> Result<u64, StoreError> {
    let mut last: i64 = transaction
        .prepare_cached("SELECT coalesce(max(seq), 0) FROM archive")
        .map_err(backend)?
        .query_row([], |row| row.get(0))
        .map_err(backend)?;
    // Asked once per owner and batch, in the transaction that inserts.
    let mut exists: HashMap<&str, bool> = HashMap::new();
    let mut rows: Vec<(i64, &ArchivedMessage)> = Vec::with_capacity(messages.len());
    for message in messages {
        let owner = message.owner.as_str();
        let known = match exists.get(owner) {
            Some(known) => *known,
            None => {
                let known = account_exists(transaction, owner)?;
                exists.insert(owner, known);
                known
            }
        };
        if !known {
            continue;
        }
        // Never below the time the id names, where a lookup by id starts.
        let floor = archive_id_time(&message.id).unwrap_or(i64::MIN);
        let seq = message.at.max(floor).max(last.saturating_add(1));
        last = seq;
        rows.push((seq, message));
    }
    let many = format!(
        "INSERT INTO archive (seq, owner, id, with_bare, with_resource, stanza) VALUES {}",
        vec!["(?, ?, ?, ?, ?, ?)"; INSERT_ROWS].join(", ")
    );
    let mut chunks = rows.chunks_exact(INSERT_ROWS);
    for chunk in &mut chunks {
        let mut statement = transaction.prepare_cached(&many).map_err(backend)?;
        let mut at = 1;
        for (seq, message) in chunk {
            let (bare, resource) = split(&message.with);
            let values: [&dyn rusqlite::ToSql; 6] = [
                seq,
                &message.owner,
                &message.id,
                &bare,
                &resource,
                &message.stanza,
            ];
            for value in values {
                statement.raw_bind_parameter(at, value).map_err(backend)?;
                at += 1;
            }
        }
        statement.raw_execute().map_err(conflict)?;
    }
    for (seq, message) in chunks.remainder() {
        let (bare, resource) = split(&message.with);
        transaction
            .prepare_cached(
                "INSERT INTO archive (seq, owner, id, with_bare, with_resource, stanza)
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .map_err(backend)?
            .execute((
                seq,
                &message.owner,
                &message.id,
                bare,
                resource,
                &message.stanza,
            ))
            .map_err(conflict)?;
    }
    Ok(u64::try_from(rows.len()).unwrap_or(u64::MAX))
}

/// An insert's error: [`StoreError::Conflict`] for an id the owner's
/// archive holds already.
fn conflict(error: rusqlite::Error) -> StoreError {
    match error {
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            StoreError::Conflict("id".into())
        }
        error => backend(error),
    }
}

/// Rows one expiry transaction deletes at most.
const EXPIRY_BATCH: i64 = 10_000;

/// The `seq` of `owner`'s message `id`, or [`StoreError::NotFound`].
fn seq_of(connection: &Connection, owner: &str, id: &str) -> Result<i64, StoreError> {
    find_seq(connection, owner, id)?.ok_or(StoreError::NotFound)
}

/// The `seq` of `owner`'s message `id`, if there is one. An id that
/// names a time is looked for among the owner's messages from that time
/// on (its `seq` is at least that, and mostly equal); any other through
/// the index of such ids.
fn find_seq(connection: &Connection, owner: &str, id: &str) -> Result<Option<i64>, StoreError> {
    let found = match archive_id_time(id) {
        Some(time) => connection
            .prepare_cached(
                "SELECT seq FROM archive WHERE owner = ? AND seq >= ? AND id = ?
                 ORDER BY seq LIMIT 1",
            )
            .map_err(backend)?
            .query_row((owner, time, id), |row| row.get(0)),
        None => connection
            .prepare_cached(&format!(
                "SELECT seq FROM archive WHERE owner = ? AND id = ? AND {OTHER_ID}"
            ))
            .map_err(backend)?
            .query_row((owner, id), |row| row.get(0)),
    };
    found.optional().map_err(backend)
}

fn run_query(
    connection: &Connection,
    owner: &str,
    query: &ArchiveQuery,
) -> Result<ArchiveResult, StoreError> {
    let mut sql = String::from(
        "SELECT seq, id, with_bare, with_resource, stanza FROM archive WHERE owner = ?",
    );
    let mut values: Vec<Value> = vec![Value::Text(owner.to_owned())];
    if let Some(with) = &query.with {
        let (bare, resource) = split(with);
        sql.push_str(" AND with_bare = ?");
        values.push(Value::Text(bare.to_owned()));
        if !resource.is_empty() {
            sql.push_str(" AND with_resource = ?");
            values.push(Value::Text(resource.to_owned()));
        }
    }
    // The bounds: from the time range, the id filters and the page's
    // cursor, all on `seq`.
    let mut lower = query.start.map(|start| start.saturating_sub(1));
    let mut upper = query.end.map(|end| end.saturating_add(1));
    let mut raise = |bound: i64| lower = Some(lower.map_or(bound, |l| l.max(bound)));
    if let Some(id) = &query.after_id {
        raise(seq_of(connection, owner, id)?);
    }
    if let ArchivePage::After(id) = &query.page {
        raise(seq_of(connection, owner, id)?);
    }
    let mut cap = |bound: i64| upper = Some(upper.map_or(bound, |u| u.min(bound)));
    if let Some(id) = &query.before_id {
        cap(seq_of(connection, owner, id)?);
    }
    if let ArchivePage::Before(id) = &query.page {
        cap(seq_of(connection, owner, id)?);
    }
    if let Some(lower) = lower {
        sql.push_str(" AND seq > ?");
        values.push(Value::Integer(lower));
    }
    if let Some(upper) = upper {
        sql.push_str(" AND seq < ?");
        values.push(Value::Integer(upper));
    }
    if !query.ids.is_empty() {
        // Each found by its own lookup; ids the archive does not hold
        // match nothing.
        sql.push_str(" AND seq IN (");
        let mut first = true;
        for id in &query.ids {
            let Some(seq) = find_seq(connection, owner, id)? else {
                continue;
            };
            sql.push_str(if first { "?" } else { ", ?" });
            first = false;
            values.push(Value::Integer(seq));
        }
        sql.push(')');
    }
    let backwards = matches!(query.page, ArchivePage::Last | ArchivePage::Before(_));
    sql.push_str(if backwards {
        " ORDER BY seq DESC LIMIT ?"
    } else {
        " ORDER BY seq ASC LIMIT ?"
    });
    // One more than asked: whether the page is the last one.
    values.push(Value::Integer(to_sql_integer(query.max.saturating_add(1))));
    let mut messages: Vec<ArchivedMessage> = connection
        .prepare_cached(&sql)
        .map_err(backend)?
        .query_map(rusqlite::params_from_iter(values), |row| {
            let bare: String = row.get(2)?;
            let resource: String = row.get(3)?;
            Ok(ArchivedMessage {
                at: row.get(0)?,
                id: row.get(1)?,
                owner: owner.to_owned(),
                with: if resource.is_empty() {
                    bare
                } else {
                    format!("{bare}/{resource}")
                },
                stanza: row.get(4)?,
            })
        })
        .map_err(backend)?
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    let complete = messages.len() <= query.max;
    messages.truncate(query.max);
    if backwards {
        messages.reverse();
    }
    Ok(ArchiveResult { messages, complete })
}
