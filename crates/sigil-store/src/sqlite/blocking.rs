//! Blocked JIDs (XEP-0191) in SQLite.

use sqlx::Row;

use super::{SqliteStore, account_exists, backend, begin_write};
use crate::{BlockingStore, StoreError, StoreFuture};

impl BlockingStore for SqliteStore {
    fn blocklist<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT jid FROM blocked WHERE owner = ? ORDER BY jid")
                .bind(owner)
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
            rows.iter()
                .map(|row| row.try_get::<String, _>("jid").map_err(backend))
                .collect()
        })
    }

    fn block<'a>(&'a self, owner: &'a str, jids: &'a [String]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut transaction = begin_write(&self.pool).await?;
            if !account_exists(&mut transaction, owner).await? {
                return Err(StoreError::NotFound);
            }
            for jid in jids {
                sqlx::query("INSERT OR IGNORE INTO blocked (owner, jid) VALUES (?, ?)")
                    .bind(owner)
                    .bind(jid)
                    .execute(&mut *transaction)
                    .await
                    .map_err(backend)?;
            }
            transaction.commit().await.map_err(backend)
        })
    }

    fn unblock<'a>(&'a self, owner: &'a str, jids: &'a [String]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut transaction = begin_write(&self.pool).await?;
            if jids.is_empty() {
                sqlx::query("DELETE FROM blocked WHERE owner = ?")
                    .bind(owner)
                    .execute(&mut *transaction)
                    .await
                    .map_err(backend)?;
            }
            for jid in jids {
                sqlx::query("DELETE FROM blocked WHERE owner = ? AND jid = ?")
                    .bind(owner)
                    .bind(jid)
                    .execute(&mut *transaction)
                    .await
                    .map_err(backend)?;
            }
            transaction.commit().await.map_err(backend)
        })
    }
}
