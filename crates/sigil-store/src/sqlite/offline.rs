//! Offline messages in SQLite.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, account_exists, backend, begin_write, to_sql_integer, to_unsigned};
use crate::{OfflineMessage, OfflineStore, StoreError, StoreFuture};

impl OfflineStore for SqliteStore {
    fn store_offline<'a>(
        &'a self,
        owner: &'a str,
        from: &'a str,
        stanza: &'a str,
        stored_at: i64,
        max_per_owner: usize,
    ) -> StoreFuture<'a, i64> {
        Box::pin(async move {
            // Count and insert under the write lock, so that concurrent
            // stores cannot overshoot the quota together.
            let mut transaction = begin_write(&self.pool).await?;
            if !account_exists(&mut transaction, owner).await? {
                return Err(StoreError::NotFound);
            }
            let count: i64 = sqlx::query("SELECT count(*) FROM offline_messages WHERE owner = ?")
                .bind(owner)
                .fetch_one(&mut *transaction)
                .await
                .map_err(backend)?
                .try_get(0)
                .map_err(backend)?;
            if count >= to_sql_integer(max_per_owner) {
                return Err(StoreError::QuotaExceeded);
            }
            let id: i64 = sqlx::query(
                "INSERT INTO offline_messages (owner, sender, stanza, stored_at)
                 VALUES (?, ?, ?, ?) RETURNING id",
            )
            .bind(owner)
            .bind(from)
            .bind(stanza)
            .bind(stored_at)
            .fetch_one(&mut *transaction)
            .await
            .map_err(backend)?
            .try_get("id")
            .map_err(backend)?;
            // With `synchronous = FULL` the commit returns only once the
            // write-ahead log is on disk: the message is durable here.
            transaction.commit().await.map_err(backend)?;
            Ok(id)
        })
    }

    fn offline_messages<'a>(
        &'a self,
        owner: &'a str,
        limit: usize,
    ) -> StoreFuture<'a, Vec<OfflineMessage>> {
        Box::pin(async move {
            sqlx::query(
                "SELECT id, owner, sender, stanza, stored_at FROM offline_messages
                 WHERE owner = ? ORDER BY id LIMIT ?",
            )
            .bind(owner)
            .bind(to_sql_integer(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .iter()
            .map(decode_message)
            .collect()
        })
    }

    fn delete_offline<'a>(&'a self, owner: &'a str, ids: &'a [i64]) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(0);
            }
            // One statement per id in one transaction: no SQL built from
            // the input, and all or nothing.
            let mut transaction = begin_write(&self.pool).await?;
            let mut deleted = 0;
            for id in ids {
                deleted += sqlx::query("DELETE FROM offline_messages WHERE owner = ? AND id = ?")
                    .bind(owner)
                    .bind(id)
                    .execute(&mut *transaction)
                    .await
                    .map_err(backend)?
                    .rows_affected();
            }
            transaction.commit().await.map_err(backend)?;
            Ok(deleted)
        })
    }

    fn offline_count<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let count = sqlx::query("SELECT count(*) FROM offline_messages WHERE owner = ?")
                .bind(owner)
                .fetch_one(&self.pool)
                .await
                .map_err(backend)?
                .try_get(0)
                .map_err(backend)?;
            to_unsigned(count, "message count")
        })
    }

    fn offline_owners(&self) -> StoreFuture<'_, Vec<String>> {
        Box::pin(async move {
            sqlx::query("SELECT DISTINCT owner FROM offline_messages ORDER BY owner")
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?
                .iter()
                .map(|row| row.try_get("owner").map_err(backend))
                .collect()
        })
    }
}

fn decode_message(row: &SqliteRow) -> Result<OfflineMessage, StoreError> {
    Ok(OfflineMessage {
        id: row.try_get("id").map_err(backend)?,
        owner: row.try_get("owner").map_err(backend)?,
        from: row.try_get("sender").map_err(backend)?,
        stanza: row.try_get("stanza").map_err(backend)?,
        stored_at: row.try_get("stored_at").map_err(backend)?,
    })
}
