//! Offline messages in PostgreSQL.

use tokio_postgres::Row;

use super::{
    PostgresStore, backend, execute, lock_account, query, query_one, to_bigint, to_unsigned,
};
use crate::{OfflineMessage, OfflineQuota, OfflineStore, StoreError, StoreFuture};

impl OfflineStore for PostgresStore {
    fn store_offline<'a>(
        &'a self,
        owner: &'a str,
        from: &'a str,
        stanza: &'a str,
        stored_at: i64,
        quota: OfflineQuota,
    ) -> StoreFuture<'a, i64> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(backend)?;
            // Counted and inserted with the account row locked, so that
            // concurrent stores (on any node) cannot overshoot the quota
            // together. The commit returns once the server has it on disk:
            // the message is durable when this resolves.
            if !lock_account(&transaction, owner).await? {
                return Err(StoreError::NotFound);
            }
            let row = query_one(
                &transaction,
                "SELECT count(*), coalesce(sum(octet_length(stanza)), 0)::bigint
                 FROM offline_messages WHERE owner = $1",
                &[&owner],
            )
            .await?;
            let (count, bytes): (i64, i64) = (row.get(0), row.get(1));
            let new_bytes = to_bigint(stanza.len());
            if count >= to_bigint(quota.messages)
                || bytes.saturating_add(new_bytes) > to_bigint(quota.bytes)
            {
                return Err(StoreError::QuotaExceeded);
            }
            let id: i64 = query_one(
                &transaction,
                "INSERT INTO offline_messages (owner, sender, stanza, stored_at)
                 VALUES ($1, $2, $3, $4) RETURNING id",
                &[&owner, &from, &stanza, &stored_at],
            )
            .await?
            .get(0);
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
            let client = self.client().await?;
            let rows = query(
                &client,
                "SELECT id, owner, sender, stanza, stored_at FROM offline_messages
                 WHERE owner = $1 ORDER BY id LIMIT $2",
                &[&owner, &to_bigint(limit)],
            )
            .await?;
            rows.iter().map(decode_message).collect()
        })
    }

    fn delete_offline<'a>(&'a self, owner: &'a str, ids: &'a [i64]) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(0);
            }
            let client = self.client().await?;
            // One statement: all or nothing.
            execute(
                &client,
                "DELETE FROM offline_messages WHERE owner = $1 AND id = ANY($2::bigint[])",
                &[&owner, &ids],
            )
            .await
        })
    }

    fn offline_count<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let client = self.client().await?;
            let count: i64 = query_one(
                &client,
                "SELECT count(*) FROM offline_messages WHERE owner = $1",
                &[&owner],
            )
            .await?
            .get(0);
            to_unsigned(count, "message count")
        })
    }

    fn offline_owners(&self) -> StoreFuture<'_, Vec<String>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = query(
                &client,
                "SELECT DISTINCT owner FROM offline_messages ORDER BY owner",
                &[],
            )
            .await?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }
}

fn decode_message(row: &Row) -> Result<OfflineMessage, StoreError> {
    Ok(OfflineMessage {
        id: row.try_get("id").map_err(backend)?,
        owner: row.try_get("owner").map_err(backend)?,
        from: row.try_get("sender").map_err(backend)?,
        stanza: row.try_get("stanza").map_err(backend)?,
        stored_at: row.try_get("stored_at").map_err(backend)?,
    })
}
