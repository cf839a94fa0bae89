//! FAST tokens (XEP-0484) and SASL2 clients (XEP-0388) in SQLite.

use rusqlite::{Connection, OptionalExtension, Row};

use super::{SqliteStore, backend};
use crate::{
    FastToken, StoreError, StoreFuture, TokenGrounds, TokenSlot, TokenStore, UserAgentRecord,
};

const COLUMNS: &str = "slot, owner, agent, mechanism, sealed, certificate, issued_at, expires_at";

impl TokenStore for SqliteStore {
    fn issue_fast_token<'a>(
        &'a self,
        token: &'a FastToken,
        grounds: &'a TokenGrounds,
        max_clients: u64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let (token, grounds) = (token.clone(), grounds.clone());
            self.write(move |transaction| {
                if !may_hold(transaction, &token.owner, token.certificate.as_ref())?
                    || !grounds_hold(transaction, &token, &grounds)?
                {
                    return Err(StoreError::NotFound);
                }
                transaction
                    .prepare_cached("DELETE FROM fast_tokens WHERE owner = ? AND expires_at <= ?")
                    .map_err(backend)?
                    .execute((&token.owner, token.issued_at))
                    .map_err(backend)?;
                let others: i64 = transaction
                    .prepare_cached(
                        "SELECT count(DISTINCT agent) FROM fast_tokens
                         WHERE owner = ? AND agent != ?",
                    )
                    .map_err(backend)?
                    .query_row((&token.owner, &token.agent), |row| row.get(0))
                    .map_err(backend)?;
                if u64::try_from(others).unwrap_or(0) >= max_clients {
                    return Err(StoreError::QuotaExceeded);
                }
                transaction
                    .prepare_cached(
                        "INSERT OR REPLACE INTO fast_tokens (slot, owner, agent, mechanism,
                             sealed, certificate, issued_at, expires_at)
                         VALUES ('new', ?, ?, ?, ?, ?, ?, ?)",
                    )
                    .map_err(backend)?
                    .execute((
                        &token.owner,
                        &token.agent,
                        &token.mechanism,
                        &token.sealed,
                        token.certificate.as_ref().map(<[u8; 32]>::as_slice),
                        token.issued_at,
                        token.expires_at,
                    ))
                    .map_err(backend)?;
                Ok(())
            })
            .await
        })
    }

    fn fast_tokens<'a>(
        &'a self,
        owner: &'a str,
        agent: &'a str,
    ) -> StoreFuture<'a, Vec<(TokenSlot, FastToken)>> {
        Box::pin(async move {
            self.read(|connection| {
                connection
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM fast_tokens WHERE owner = ? AND agent = ?
                         ORDER BY slot = 'current'"
                    ))
                    .map_err(backend)?
                    .query_map((owner, agent), decode)
                    .map_err(backend)?
                    .map(|row| row.map_err(backend).and_then(|decoded| decoded))
                    .collect()
            })
        })
    }

    fn promote_fast_token<'a>(&'a self, owner: &'a str, agent: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let (owner, agent) = (owner.to_owned(), agent.to_owned());
            self.write(move |transaction| {
                let new = transaction
                    .prepare_cached(
                        "SELECT 1 FROM fast_tokens WHERE owner = ? AND agent = ? AND slot = 'new'",
                    )
                    .map_err(backend)?
                    .query_row((&owner, &agent), |_| Ok(()))
                    .optional()
                    .map_err(backend)?;
                if new.is_none() {
                    return Ok(false);
                }
                transaction
                    .prepare_cached(
                        "DELETE FROM fast_tokens WHERE owner = ? AND agent = ? AND slot = 'current'",
                    )
                    .map_err(backend)?
                    .execute((&owner, &agent))
                    .map_err(backend)?;
                transaction
                    .prepare_cached(
                        "UPDATE fast_tokens SET slot = 'current'
                         WHERE owner = ? AND agent = ? AND slot = 'new'",
                    )
                    .map_err(backend)?
                    .execute((&owner, &agent))
                    .map_err(backend)?;
                Ok(true)
            })
            .await
        })
    }

    fn delete_fast_tokens<'a>(
        &'a self,
        owner: &'a str,
        agent: &'a str,
        slot: Option<TokenSlot>,
    ) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let (owner, agent) = (owner.to_owned(), agent.to_owned());
            let slot = slot.map(TokenSlot::as_str);
            self.write(move |transaction| {
                let deleted = transaction
                    .prepare_cached(
                        "DELETE FROM fast_tokens WHERE owner = ? AND agent = ?
                         AND (?3 IS NULL OR slot = ?3)",
                    )
                    .map_err(backend)?
                    .execute((&owner, &agent, slot))
                    .map_err(backend)?;
                Ok(u64::try_from(deleted).unwrap_or(0))
            })
            .await
        })
    }

    fn expire_fast_tokens(&self, now: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            self.write(move |transaction| {
                let deleted = transaction
                    .prepare_cached("DELETE FROM fast_tokens WHERE expires_at <= ?")
                    .map_err(backend)?
                    .execute([now])
                    .map_err(backend)?;
                Ok(u64::try_from(deleted).unwrap_or(0))
            })
            .await
        })
    }

    fn record_user_agent<'a>(
        &'a self,
        record: &'a UserAgentRecord,
        max: u64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let record = record.clone();
            self.write(move |transaction| {
                if !super::account_exists(transaction, &record.owner)? {
                    return Err(StoreError::NotFound);
                }
                transaction
                    .prepare_cached(
                        "INSERT OR REPLACE INTO user_agents (owner, agent, software, device,
                             certificate, last_login)
                         VALUES (?, ?, ?, ?, ?, ?)",
                    )
                    .map_err(backend)?
                    .execute((
                        &record.owner,
                        &record.agent,
                        &record.software,
                        &record.device,
                        record.certificate.as_ref().map(<[u8; 32]>::as_slice),
                        record.last_login,
                    ))
                    .map_err(backend)?;
                transaction
                    .prepare_cached(
                        "DELETE FROM user_agents WHERE owner = ?1 AND agent NOT IN
                             (SELECT agent FROM user_agents WHERE owner = ?1
                              ORDER BY last_login DESC, agent LIMIT ?2)",
                    )
                    .map_err(backend)?
                    .execute((&record.owner, i64::try_from(max).unwrap_or(i64::MAX)))
                    .map_err(backend)?;
                Ok(())
            })
            .await
        })
    }

    fn user_agents<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, Vec<UserAgentRecord>> {
        Box::pin(async move {
            self.read(|connection| {
                connection
                    .prepare_cached(
                        "SELECT owner, agent, software, device, certificate, last_login
                         FROM user_agents WHERE owner = ? ORDER BY last_login DESC, agent",
                    )
                    .map_err(backend)?
                    .query_map([owner], |row| {
                        let certificate: Option<Vec<u8>> = row.get(4)?;
                        Ok(UserAgentRecord {
                            owner: row.get(0)?,
                            agent: row.get(1)?,
                            software: row.get(2)?,
                            device: row.get(3)?,
                            certificate: certificate.and_then(|c| <[u8; 32]>::try_from(c).ok()),
                            last_login: row.get(5)?,
                        })
                    })
                    .map_err(backend)?
                    .map(|row| row.map_err(backend))
                    .collect()
            })
        })
    }
}

/// Whether `owner` may hold a token of a login with `certificate`: the
/// account is enabled and the certificate (if any) registered to it and
/// enabled.
fn may_hold(
    connection: &Connection,
    owner: &str,
    certificate: Option<&[u8; 32]>,
) -> Result<bool, StoreError> {
    let enabled = connection
        .prepare_cached("SELECT 1 FROM accounts WHERE jid = ? AND disabled = 0")
        .map_err(backend)?
        .query_row([owner], |_| Ok(()))
        .optional()
        .map_err(backend)?;
    if enabled.is_none() {
        return Ok(false);
    }
    let Some(fingerprint) = certificate else {
        return Ok(true);
    };
    let registered = connection
        .prepare_cached(
            "SELECT 1 FROM certificates WHERE owner = ? AND fingerprint = ? AND disabled = 0",
        )
        .map_err(backend)?
        .query_row((owner, fingerprint.as_slice()), |_| Ok(()))
        .optional()
        .map_err(backend)?;
    Ok(registered.is_some())
}

/// Whether what the issuing login proved still holds (see
/// [`TokenGrounds`]).
fn grounds_hold(
    connection: &Connection,
    token: &FastToken,
    grounds: &TokenGrounds,
) -> Result<bool, StoreError> {
    let found = match grounds {
        TokenGrounds::Certificate => return Ok(token.certificate.is_some()),
        TokenGrounds::Password(stored_key) => connection
            .prepare_cached("SELECT 1 FROM credentials WHERE account = ? AND stored_key = ?")
            .map_err(backend)?
            .query_row((&token.owner, stored_key), |_| Ok(()))
            .optional(),
        TokenGrounds::Token(sealed) => connection
            .prepare_cached(
                "SELECT 1 FROM fast_tokens WHERE owner = ? AND agent = ? AND sealed = ?",
            )
            .map_err(backend)?
            .query_row((&token.owner, &token.agent, sealed), |_| Ok(()))
            .optional(),
    };
    Ok(found.map_err(backend)?.is_some())
}

/// Deletes `owner`'s tokens: all of them, or those of logins by password
/// (`by_password`), in the caller's transaction.
pub(super) fn end_for_account(
    transaction: &Connection,
    owner: &str,
    by_password: bool,
) -> Result<(), StoreError> {
    transaction
        .prepare_cached(
            "DELETE FROM fast_tokens WHERE owner = ? AND (? = 0 OR certificate IS NULL)",
        )
        .map_err(backend)?
        .execute((owner, by_password))
        .map_err(backend)?;
    Ok(())
}

/// Deletes the tokens of logins with `owner`'s certificate `name` (being
/// disabled or revoked), in the caller's transaction.
pub(super) fn end_for_certificate(
    transaction: &Connection,
    owner: &str,
    name: &str,
) -> Result<(), StoreError> {
    transaction
        .prepare_cached(
            "DELETE FROM fast_tokens WHERE owner = ?1 AND certificate IN
                 (SELECT fingerprint FROM certificates WHERE owner = ?1 AND name = ?2
                  UNION SELECT fingerprint FROM certificate_renewals
                        WHERE owner = ?1 AND name = ?2)",
        )
        .map_err(backend)?
        .execute([owner, name])
        .map_err(backend)?;
    Ok(())
}

/// The tokens of logins with `owner`'s certificate `old` follow the
/// device to its next certificate `new`, in the caller's transaction.
pub(super) fn follow_renewal(
    transaction: &Connection,
    owner: &str,
    old: &[u8; 32],
    new: &[u8; 32],
) -> Result<(), StoreError> {
    for table in ["fast_tokens", "user_agents"] {
        transaction
            .prepare_cached(&format!(
                "UPDATE {table} SET certificate = ? WHERE owner = ? AND certificate = ?"
            ))
            .map_err(backend)?
            .execute((new.as_slice(), owner, old.as_slice()))
            .map_err(backend)?;
    }
    Ok(())
}

/// One row of `COLUMNS`; an undecodable one is [`StoreError::Corrupt`].
fn decode(row: &Row<'_>) -> rusqlite::Result<Result<(TokenSlot, FastToken), StoreError>> {
    let slot: String = row.get(0)?;
    let certificate: Option<Vec<u8>> = row.get(5)?;
    let slot = match slot.as_str() {
        "current" => TokenSlot::Current,
        "new" => TokenSlot::New,
        other => return Ok(Err(StoreError::Corrupt(format!("token slot {other:?}")))),
    };
    let certificate = match certificate.map(<[u8; 32]>::try_from) {
        None => None,
        Some(Ok(fingerprint)) => Some(fingerprint),
        Some(Err(bytes)) => {
            return Ok(Err(StoreError::Corrupt(format!(
                "token certificate of {} bytes",
                bytes.len()
            ))));
        }
    };
    Ok(Ok((
        slot,
        FastToken {
            owner: row.get(1)?,
            agent: row.get(2)?,
            mechanism: row.get(3)?,
            sealed: row.get(4)?,
            certificate,
            issued_at: row.get(6)?,
            expires_at: row.get(7)?,
        },
    )))
}
