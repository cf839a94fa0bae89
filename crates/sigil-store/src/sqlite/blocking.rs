//! Blocked JIDs (XEP-0191) in SQLite.

use super::{SqliteStore, account_exists, backend};
use crate::{BlockingStore, StoreError, StoreFuture};

impl BlockingStore for SqliteStore {
    fn blocklist<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            self.read(|connection| {
                connection
                    .prepare_cached("SELECT jid FROM blocked WHERE owner = ? ORDER BY jid")
                    .map_err(backend)?
                    .query_map([owner], |row| row.get("jid"))
                    .map_err(backend)?
                    .map(|row| row.map_err(backend))
                    .collect()
            })
        })
    }

    fn block<'a>(&'a self, owner: &'a str, jids: &'a [String]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let (owner, jids) = (owner.to_owned(), jids.to_vec());
            self.write(move |transaction| {
                if !account_exists(transaction, &owner)? {
                    return Err(StoreError::NotFound);
                }
                let mut insert = transaction
                    .prepare_cached("INSERT OR IGNORE INTO blocked (owner, jid) VALUES (?, ?)")
                    .map_err(backend)?;
                for jid in &jids {
                    insert.execute((&owner, jid)).map_err(backend)?;
                }
                Ok(())
            })
            .await
        })
    }

    fn unblock<'a>(&'a self, owner: &'a str, jids: &'a [String]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let (owner, jids) = (owner.to_owned(), jids.to_vec());
            self.write(move |transaction| {
                if jids.is_empty() {
                    transaction
                        .prepare_cached("DELETE FROM blocked WHERE owner = ?")
                        .map_err(backend)?
                        .execute([&owner])
                        .map_err(backend)?;
                }
                let mut delete = transaction
                    .prepare_cached("DELETE FROM blocked WHERE owner = ? AND jid = ?")
                    .map_err(backend)?;
                for jid in &jids {
                    delete.execute((&owner, jid)).map_err(backend)?;
                }
                Ok(())
            })
            .await
        })
    }
}
