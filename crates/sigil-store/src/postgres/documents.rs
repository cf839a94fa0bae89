//! Per-account documents and last activity in PostgreSQL.

use deadpool_postgres::GenericClient;

use super::{
    PostgresStore, backend, execute, lock_account, query, query_one, query_opt, to_bigint,
};
use crate::{DocumentQuota, DocumentStore, LastActivity, StoreError, StoreFuture};

impl DocumentStore for PostgresStore {
    fn document<'a>(
        &'a self,
        owner: &'a str,
        collection: &'a str,
        key: &'a str,
    ) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move {
            let client = self.client().await?;
            Ok(query_opt(
                &client,
                "SELECT document FROM documents
                 WHERE owner = $1 AND collection = $2 AND key = $3",
                &[&owner, &collection, &key],
            )
            .await?
            .map(|row| row.get(0)))
        })
    }

    fn document_keys<'a>(
        &'a self,
        owner: &'a str,
        collection: &'a str,
    ) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = query(
                &client,
                "SELECT key FROM documents WHERE owner = $1 AND collection = $2 ORDER BY key",
                &[&owner, &collection],
            )
            .await?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    fn put_documents<'a>(
        &'a self,
        owner: &'a str,
        collection: &'a str,
        changes: &'a [(String, Option<String>)],
        quota: DocumentQuota,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if changes
                .iter()
                .any(|(_, document)| document.as_ref().is_some_and(|d| d.len() > quota.bytes))
            {
                return Err(StoreError::QuotaExceeded);
            }
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(backend)?;
            // Counted before and after with the account row locked, so that
            // concurrent writes cannot overshoot the quota together.
            if !lock_account(&transaction, owner).await? {
                return Err(StoreError::NotFound);
            }
            let before = count(&transaction, owner, collection).await?;
            for (key, document) in changes {
                match document {
                    Some(document) => {
                        execute(
                            &transaction,
                            "INSERT INTO documents (owner, collection, key, document)
                             VALUES ($1, $2, $3, $4)
                             ON CONFLICT (owner, collection, key)
                             DO UPDATE SET document = excluded.document",
                            &[&owner, &collection, key, document],
                        )
                        .await?
                    }
                    None => execute(
                        &transaction,
                        "DELETE FROM documents WHERE owner = $1 AND collection = $2 AND key = $3",
                        &[&owner, &collection, key],
                    )
                    .await?,
                };
            }
            let after = count(&transaction, owner, collection).await?;
            // A collection already past a quota since lowered may still
            // change, as long as it does not grow.
            if after > before && after > to_bigint(quota.documents) {
                return Err(StoreError::QuotaExceeded);
            }
            transaction.commit().await.map_err(backend)
        })
    }

    fn last_activity<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, Option<LastActivity>> {
        Box::pin(async move {
            let client = self.client().await?;
            Ok(query_opt(
                &client,
                "SELECT at, status FROM last_activity WHERE owner = $1",
                &[&owner],
            )
            .await?
            .map(|row| LastActivity {
                at: row.get(0),
                status: row.get(1),
            }))
        })
    }

    fn set_last_activity<'a>(
        &'a self,
        owner: &'a str,
        activity: &'a LastActivity,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let client = self.client().await?;
            // One statement: the account's existence and the later of two
            // crossing writes are decided together.
            let written = execute(
                &client,
                "INSERT INTO last_activity (owner, at, status)
                 SELECT jid, $2, $3 FROM accounts WHERE jid = $1
                 ON CONFLICT (owner) DO UPDATE
                 SET at = excluded.at, status = excluded.status
                 WHERE excluded.at >= last_activity.at",
                &[&owner, &activity.at, &activity.status],
            )
            .await?;
            if written == 0
                && query_opt(&client, "SELECT 1 FROM accounts WHERE jid = $1", &[&owner])
                    .await?
                    .is_none()
            {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
    }
}

/// Documents in `owner`'s `collection`.
async fn count(
    client: &impl GenericClient,
    owner: &str,
    collection: &str,
) -> Result<i64, StoreError> {
    let row = query_one(
        client,
        "SELECT count(*) FROM documents WHERE owner = $1 AND collection = $2",
        &[&owner, &collection],
    )
    .await?;
    Ok(row.get(0))
}
