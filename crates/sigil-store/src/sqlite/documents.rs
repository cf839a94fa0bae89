//! Per-account documents and last activity in SQLite.

use rusqlite::OptionalExtension;

use super::{SqliteStore, account_exists, backend, to_sql_integer};
use crate::{DocumentQuota, DocumentStore, LastActivity, StoreError, StoreFuture};

impl DocumentStore for SqliteStore {
    fn document<'a>(
        &'a self,
        owner: &'a str,
        collection: &'a str,
        key: &'a str,
    ) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move {
            self.read(|connection| {
                connection
                    .prepare_cached(
                        "SELECT document FROM documents
                         WHERE owner = ? AND collection = ? AND key = ?",
                    )
                    .map_err(backend)?
                    .query_row((owner, collection, key), |row| row.get("document"))
                    .optional()
                    .map_err(backend)
            })
        })
    }

    fn document_keys<'a>(
        &'a self,
        owner: &'a str,
        collection: &'a str,
    ) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            self.read(|connection| {
                connection
                    .prepare_cached(
                        "SELECT key FROM documents WHERE owner = ? AND collection = ?
                         ORDER BY key",
                    )
                    .map_err(backend)?
                    .query_map((owner, collection), |row| row.get("key"))
                    .map_err(backend)?
                    .map(|row| row.map_err(backend))
                    .collect()
            })
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
            let (owner, collection, changes) =
                (owner.to_owned(), collection.to_owned(), changes.to_vec());
            // Counted before and after under the write lock, so that
            // concurrent writes cannot overshoot the quota together.
            self.write(move |transaction| {
                if !account_exists(transaction, &owner)? {
                    return Err(StoreError::NotFound);
                }
                let count = |transaction: &rusqlite::Transaction<'_>| -> Result<i64, StoreError> {
                    transaction
                        .prepare_cached(
                            "SELECT count(*) FROM documents WHERE owner = ? AND collection = ?",
                        )
                        .map_err(backend)?
                        .query_row((&owner, &collection), |row| row.get(0))
                        .map_err(backend)
                };
                let before = count(transaction)?;
                for (key, document) in &changes {
                    match document {
                        Some(document) => transaction
                            .prepare_cached(
                                "INSERT INTO documents (owner, collection, key, document)
                                 VALUES (?, ?, ?, ?)
                                 ON CONFLICT (owner, collection, key)
                                 DO UPDATE SET document = excluded.document",
                            )
                            .map_err(backend)?
                            .execute((&owner, &collection, key, document)),
                        None => transaction
                            .prepare_cached(
                                "DELETE FROM documents
                                 WHERE owner = ? AND collection = ? AND key = ?",
                            )
                            .map_err(backend)?
                            .execute((&owner, &collection, key)),
                    }
                    .map_err(backend)?;
                }
                let after = count(transaction)?;
                // A collection already past a quota since lowered may still
                // change, as long as it does not grow.
                if after > before && after > to_sql_integer(quota.documents) {
                    return Err(StoreError::QuotaExceeded);
                }
                Ok(())
            })
            .await
        })
    }

    fn last_activity<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, Option<LastActivity>> {
        Box::pin(async move {
            self.read(|connection| {
                connection
                    .prepare_cached("SELECT at, status FROM last_activity WHERE owner = ?")
                    .map_err(backend)?
                    .query_row([owner], |row| {
                        Ok(LastActivity {
                            at: row.get("at")?,
                            status: row.get("status")?,
                        })
                    })
                    .optional()
                    .map_err(backend)
            })
        })
    }

    fn set_last_activity<'a>(
        &'a self,
        owner: &'a str,
        activity: &'a LastActivity,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let (owner, activity) = (owner.to_owned(), activity.clone());
            self.write(move |transaction| {
                if !account_exists(transaction, &owner)? {
                    return Err(StoreError::NotFound);
                }
                transaction
                    .prepare_cached(
                        "INSERT INTO last_activity (owner, at, status) VALUES (?, ?, ?)
                         ON CONFLICT (owner) DO UPDATE
                         SET at = excluded.at, status = excluded.status
                         WHERE excluded.at >= last_activity.at",
                    )
                    .map_err(backend)?
                    .execute((&owner, activity.at, &activity.status))
                    .map_err(backend)?;
                Ok(())
            })
            .await
        })
    }
}
