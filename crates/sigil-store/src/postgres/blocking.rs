//! Blocked JIDs (XEP-0191) in PostgreSQL.

use super::{PostgresStore, backend, execute, lock_account, query};
use crate::{BlockingStore, StoreError, StoreFuture};

impl BlockingStore for PostgresStore {
    fn blocklist<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = query(
                &client,
                "SELECT jid FROM blocked WHERE owner = $1 ORDER BY jid",
                &[&owner],
            )
            .await?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    fn block<'a>(&'a self, owner: &'a str, jids: &'a [String]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(backend)?;
            if !lock_account(&transaction, owner).await? {
                return Err(StoreError::NotFound);
            }
            execute(
                &transaction,
                "INSERT INTO blocked (owner, jid) SELECT $1, unnest($2::text[])
                 ON CONFLICT DO NOTHING",
                &[&owner, &jids],
            )
            .await?;
            transaction.commit().await.map_err(backend)
        })
    }

    fn unblock<'a>(&'a self, owner: &'a str, jids: &'a [String]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let client = self.client().await?;
            if jids.is_empty() {
                execute(&client, "DELETE FROM blocked WHERE owner = $1", &[&owner]).await?;
            } else {
                execute(
                    &client,
                    "DELETE FROM blocked WHERE owner = $1 AND jid = ANY($2::text[])",
                    &[&owner, &jids],
                )
                .await?;
            }
            Ok(())
        })
    }
}
