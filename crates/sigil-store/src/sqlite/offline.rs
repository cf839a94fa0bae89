//! Offline messages in SQLite.

use rusqlite::Row;

use super::{SqliteStore, account_exists, backend, to_sql_integer, to_unsigned};
use crate::{OfflineMessage, OfflineQuota, OfflineStore, StoreError, StoreFuture};

impl OfflineStore for SqliteStore {
    fn store_offline<'a>(
        &'a self,
        owner: &'a str,
        from: &'a str,
        stanza: &'a str,
        stored_at: i64,
        quota: OfflineQuota,
    ) -> StoreFuture<'a, i64> {
        Box::pin(async move {
            let (owner, from, stanza) = (owner.to_owned(), from.to_owned(), stanza.to_owned());
            // Count and insert under the write lock, so that concurrent
            // stores cannot overshoot the quota together. The commit
            // returns once the write-ahead log is on disk: the message is
            // durable when this resolves.
            self.write(move |transaction| {
                if !account_exists(transaction, &owner)? {
                    return Err(StoreError::NotFound);
                }
                let (count, bytes): (i64, i64) = transaction
                    .prepare_cached(
                        "SELECT count(*), coalesce(sum(length(CAST(stanza AS BLOB))), 0)
                         FROM offline_messages WHERE owner = ?",
                    )
                    .map_err(backend)?
                    .query_row([&owner], |row| Ok((row.get(0)?, row.get(1)?)))
                    .map_err(backend)?;
                let new_bytes = i64::try_from(stanza.len()).unwrap_or(i64::MAX);
                if count >= to_sql_integer(quota.messages)
                    || bytes.saturating_add(new_bytes) > to_sql_integer(quota.bytes)
                {
                    return Err(StoreError::QuotaExceeded);
                }
                transaction
                    .prepare_cached(
                        "INSERT INTO offline_messages (owner, sender, stanza, stored_at)
                         VALUES (?, ?, ?, ?) RETURNING id",
                    )
                    .map_err(backend)?
                    .query_row((&owner, &from, &stanza, stored_at), |row| row.get("id"))
                    .map_err(backend)
            })
            .await
        })
    }

    fn offline_messages<'a>(
        &'a self,
        owner: &'a str,
        limit: usize,
    ) -> StoreFuture<'a, Vec<OfflineMessage>> {
        Box::pin(async move {
            self.read(|connection| {
                connection
                    .prepare_cached(
                        "SELECT id, owner, sender, stanza, stored_at FROM offline_messages
                         WHERE owner = ? ORDER BY id LIMIT ?",
                    )
                    .map_err(backend)?
                    .query_map((owner, to_sql_integer(limit)), decode_message)
                    .map_err(backend)?
                    .map(|row| row.map_err(backend))
                    .collect()
            })
        })
    }

    fn delete_offline<'a>(&'a self, owner: &'a str, ids: &'a [i64]) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(0);
            }
            let (owner, ids) = (owner.to_owned(), ids.to_vec());
            // One statement per id in one transaction: no SQL built from
            // the input, and all or nothing.
            self.write(move |transaction| {
                let mut delete = transaction
                    .prepare_cached("DELETE FROM offline_messages WHERE owner = ? AND id = ?")
                    .map_err(backend)?;
                let mut deleted = 0_u64;
                for id in &ids {
                    let rows = delete.execute((&owner, id)).map_err(backend)?;
                    deleted += u64::try_from(rows).unwrap_or(u64::MAX);
                }
                Ok(deleted)
            })
            .await
        })
    }

    fn offline_count<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let count = self.read(|connection| {
                connection
                    .prepare_cached("SELECT count(*) FROM offline_messages WHERE owner = ?")
                    .map_err(backend)?
                    .query_row([owner], |row| row.get(0))
                    .map_err(backend)
            })?;
            to_unsigned(count, "message count")
        })
    }

    fn offline_owners(&self) -> StoreFuture<'_, Vec<String>> {
        Box::pin(async move {
            self.read(|connection| {
                connection
                    .prepare_cached("SELECT DISTINCT owner FROM offline_messages ORDER BY owner")
                    .map_err(backend)?
                    .query_map([], |row| row.get("owner"))
                    .map_err(backend)?
                    .map(|row| row.map_err(backend))
                    .collect()
            })
        })
    }
}

fn decode_message(row: &Row<'_>) -> rusqlite::Result<OfflineMessage> {
    Ok(OfflineMessage {
        id: row.get("id")?,
        owner: row.get("owner")?,
        from: row.get("sender")?,
        stanza: row.get("stanza")?,
        stored_at: row.get("stored_at")?,
    })
}
