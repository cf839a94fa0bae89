//! XEP-0198 state kept over a restart, in PostgreSQL.

use super::{PostgresStore, backend, execute, query_opt};
use crate::{SavedSession, SessionStore, StoreError, StoreFuture};

impl SessionStore for PostgresStore {
    fn save_sessions<'a>(&'a self, sessions: &'a [SavedSession]) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            if sessions.is_empty() {
                return Ok(0);
            }
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(backend)?;
            let mut kept = 0_u64;
            for session in sessions {
                // Replacing: the old one's messages go with it.
                execute(
                    &transaction,
                    "DELETE FROM saved_sessions WHERE id = $1",
                    &[&session.id],
                )
                .await?;
                // Only for an account that exists (and stays, until the
                // commit: the row is locked).
                let inserted = execute(
                    &transaction,
                    "INSERT INTO saved_sessions (id, owner, inbound, acked, saved_at)
                     SELECT $1, jid, $3, $4, $5 FROM accounts WHERE jid = $2 FOR KEY SHARE",
                    &[
                        &session.id,
                        &session.owner,
                        &i64::from(session.inbound),
                        &i64::from(session.acked),
                        &session.saved_at,
                    ],
                )
                .await?;
                if inserted == 0 {
                    continue;
                }
                // A sequence number given twice keeps its last message,
                // in its first place (as SQLite's INSERT OR REPLACE).
                let mut seqs: Vec<i64> = Vec::new();
                let mut ids: Vec<i64> = Vec::new();
                for (seq, id) in &session.unacknowledged {
                    let seq = i64::from(*seq);
                    match seqs.iter().position(|s| *s == seq) {
                        Some(at) => ids[at] = *id,
                        None => {
                            seqs.push(seq);
                            ids.push(*id);
                        }
                    }
                }
                execute(
                    &transaction,
                    "INSERT INTO saved_session_messages (session, seq, offline_id, position)
                     SELECT $1, m.seq, m.offline_id, m.position
                     FROM unnest($2::bigint[], $3::bigint[]) WITH ORDINALITY
                          AS m(seq, offline_id, position)
                     ON CONFLICT (session, seq) DO NOTHING",
                    &[&session.id, &seqs, &ids],
                )
                .await?;
                kept += 1;
            }
            transaction.commit().await.map_err(backend)?;
            Ok(kept)
        })
    }

    fn take_saved_session<'a>(
        &'a self,
        owner: &'a str,
        id: &'a str,
    ) -> StoreFuture<'a, Option<SavedSession>> {
        Box::pin(async move {
            let client = self.client().await?;
            // One statement takes it: of two connections resuming the same
            // session, one gets it. The messages are read before the
            // cascade deletes them (at the statement's end).
            let Some(row) = query_opt(
                &client,
                "WITH taken AS (
                     DELETE FROM saved_sessions WHERE id = $1 AND owner = $2
                     RETURNING id, inbound, acked, saved_at)
                 SELECT t.inbound, t.acked, t.saved_at,
                        ARRAY(SELECT m.seq FROM saved_session_messages m
                              WHERE m.session = t.id ORDER BY m.position) AS seqs,
                        ARRAY(SELECT m.offline_id FROM saved_session_messages m
                              WHERE m.session = t.id ORDER BY m.position) AS ids
                 FROM taken t",
                &[&id, &owner],
            )
            .await?
            else {
                return Ok(None);
            };
            let seqs: Vec<i64> = row.try_get("seqs").map_err(backend)?;
            let ids: Vec<i64> = row.try_get("ids").map_err(backend)?;
            let unacknowledged = seqs
                .into_iter()
                .zip(ids)
                .map(|(seq, id)| Ok((counter(seq, "sequence number")?, id)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok(Some(SavedSession {
                id: id.to_owned(),
                owner: owner.to_owned(),
                inbound: counter(row.try_get("inbound").map_err(backend)?, "handled count")?,
                acked: counter(row.try_get("acked").map_err(backend)?, "acknowledged count")?,
                unacknowledged,
                saved_at: row.try_get("saved_at").map_err(backend)?,
            }))
        })
    }

    fn expire_saved_sessions(&self, before: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let client = self.client().await?;
            execute(
                &client,
                "DELETE FROM saved_sessions WHERE saved_at < $1",
                &[&before],
            )
            .await
        })
    }
}

/// A stored XEP-0198 counter, which must fit in 32 bits.
fn counter(value: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} out of range: {value}")))
}
