//! XEP-0198 state kept over a restart, in SQLite.

use rusqlite::OptionalExtension;

use super::{SqliteStore, account_exists, backend};
use crate::{SavedSession, SessionStore, StoreError, StoreFuture};

impl SessionStore for SqliteStore {
    fn save_sessions<'a>(&'a self, sessions: &'a [SavedSession]) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            if sessions.is_empty() {
                return Ok(0);
            }
            let sessions = sessions.to_vec();
            self.write(move |transaction| {
                let mut kept = 0_u64;
                for session in &sessions {
                    if !account_exists(transaction, &session.owner)? {
                        continue;
                    }
                    // Replacing: the old one's messages go with it.
                    transaction
                        .prepare_cached("DELETE FROM saved_sessions WHERE id = ?")
                        .map_err(backend)?
                        .execute([&session.id])
                        .map_err(backend)?;
                    transaction
                        .prepare_cached(
                            "INSERT INTO saved_sessions (id, owner, inbound, acked, saved_at)
                             VALUES (?, ?, ?, ?, ?)",
                        )
                        .map_err(backend)?
                        .execute((
                            &session.id,
                            &session.owner,
                            i64::from(session.inbound),
                            i64::from(session.acked),
                            session.saved_at,
                        ))
                        .map_err(backend)?;
                    let mut insert = transaction
                        .prepare_cached(
                            "INSERT OR REPLACE INTO saved_session_messages (session, seq, offline_id)
                             VALUES (?, ?, ?)",
                        )
                        .map_err(backend)?;
                    for (seq, offline_id) in &session.unacknowledged {
                        insert
                            .execute((&session.id, i64::from(*seq), offline_id))
                            .map_err(backend)?;
                    }
                    kept += 1;
                }
                Ok(kept)
            })
            .await
        })
    }

    fn take_saved_session<'a>(
        &'a self,
        owner: &'a str,
        id: &'a str,
    ) -> StoreFuture<'a, Option<SavedSession>> {
        Box::pin(async move {
            // Most resumption attempts after a restart are for sessions
            // that were not saved: a read answers those without a write.
            let exists = self.read(|connection| {
                connection
                    .prepare_cached("SELECT 1 FROM saved_sessions WHERE id = ? AND owner = ?")
                    .map_err(backend)?
                    .query_row([id, owner], |_| Ok(()))
                    .optional()
                    .map_err(backend)
            })?;
            if exists.is_none() {
                return Ok(None);
            }
            let (owner, id) = (owner.to_owned(), id.to_owned());
            self.write(move |transaction| {
                let row = transaction
                    .prepare_cached(
                        "SELECT inbound, acked, saved_at FROM saved_sessions
                         WHERE id = ? AND owner = ?",
                    )
                    .map_err(backend)?
                    .query_row([&id, &owner], |row| {
                        Ok((
                            row.get::<_, i64>("inbound")?,
                            row.get::<_, i64>("acked")?,
                            row.get::<_, i64>("saved_at")?,
                        ))
                    })
                    .optional()
                    .map_err(backend)?;
                // Taken by another connection in the meantime.
                let Some((inbound, acked, saved_at)) = row else {
                    return Ok(None);
                };
                let unacknowledged = transaction
                    .prepare_cached(
                        "SELECT seq, offline_id FROM saved_session_messages
                         WHERE session = ? ORDER BY rowid",
                    )
                    .map_err(backend)?
                    .query_map([&id], |row| {
                        Ok((row.get::<_, i64>("seq")?, row.get::<_, i64>("offline_id")?))
                    })
                    .map_err(backend)?
                    .map(|row| {
                        let (seq, offline_id) = row.map_err(backend)?;
                        Ok((counter(seq, "sequence number")?, offline_id))
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                transaction
                    .prepare_cached("DELETE FROM saved_sessions WHERE id = ?")
                    .map_err(backend)?
                    .execute([&id])
                    .map_err(backend)?;
                Ok(Some(SavedSession {
                    id,
                    owner,
                    inbound: counter(inbound, "handled count")?,
                    acked: counter(acked, "acknowledged count")?,
                    unacknowledged,
                    saved_at,
                }))
            })
            .await
        })
    }

    fn expire_saved_sessions(&self, before: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            self.write(move |transaction| {
                let deleted = transaction
                    .prepare_cached("DELETE FROM saved_sessions WHERE saved_at < ?")
                    .map_err(backend)?
                    .execute([before])
                    .map_err(backend)?;
                Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
            })
            .await
        })
    }
}

/// A stored XEP-0198 counter, which must fit in 32 bits.
fn counter(value: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} out of range: {value}")))
}
