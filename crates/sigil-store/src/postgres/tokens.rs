//! FAST tokens (XEP-0484) and SASL2 clients (XEP-0388) in PostgreSQL.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{PostgresStore, backend, execute, query, query_one, query_opt};
use crate::{
    FastToken, StoreError, StoreFuture, TokenGrounds, TokenSlot, TokenStore, UserAgentRecord,
};

const COLUMNS: &str = "slot, owner, agent, mechanism, sealed, certificate, issued_at, expires_at";

impl TokenStore for PostgresStore {
    fn issue_fast_token<'a>(
        &'a self,
        token: &'a FastToken,
        grounds: &'a TokenGrounds,
        max_clients: u64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(backend)?;
            // The account row, locked first: what follows is decided with
            // nothing else changing the account's tokens or rights.
            if !may_hold(&transaction, &token.owner, token.certificate.as_ref()).await?
                || !grounds_hold(&transaction, token, grounds).await?
            {
                return Err(StoreError::NotFound);
            }
            execute(
                &transaction,
                "DELETE FROM fast_tokens WHERE owner = $1 AND expires_at <= $2",
                &[&token.owner, &token.issued_at],
            )
            .await?;
            let others: i64 = query_one(
                &transaction,
                "SELECT count(DISTINCT agent) FROM fast_tokens WHERE owner = $1 AND agent <> $2",
                &[&token.owner, &token.agent],
            )
            .await?
            .get(0);
            if u64::try_from(others).unwrap_or(0) >= max_clients {
                return Err(StoreError::QuotaExceeded);
            }
            execute(
                &transaction,
                "INSERT INTO fast_tokens (slot, owner, agent, mechanism, sealed, certificate,
                     issued_at, expires_at)
                 VALUES ('new', $1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (owner, agent, slot) DO UPDATE SET
                     mechanism = excluded.mechanism, sealed = excluded.sealed,
                     certificate = excluded.certificate, issued_at = excluded.issued_at,
                     expires_at = excluded.expires_at",
                &[
                    &token.owner,
                    &token.agent,
                    &token.mechanism,
                    &token.sealed,
                    &token.certificate.as_ref().map(<[u8; 32]>::as_slice),
                    &token.issued_at,
                    &token.expires_at,
                ],
            )
            .await?;
            transaction.commit().await.map_err(backend)
        })
    }

    fn fast_tokens<'a>(
        &'a self,
        owner: &'a str,
        agent: &'a str,
    ) -> StoreFuture<'a, Vec<(TokenSlot, FastToken)>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = query(
                &client,
                &format!(
                    "SELECT {COLUMNS} FROM fast_tokens WHERE owner = $1 AND agent = $2
                     ORDER BY slot = 'current'"
                ),
                &[&owner, &agent],
            )
            .await?;
            rows.iter().map(decode).collect()
        })
    }

    fn promote_fast_token<'a>(&'a self, owner: &'a str, agent: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(backend)?;
            // The account's row first, as every writer of its tokens takes
            // it; then the new one: of two logins promoting it, one does.
            if !super::lock_account(&transaction, owner).await? {
                return Ok(false);
            }
            let new = query_opt(
                &transaction,
                "SELECT 1 FROM fast_tokens WHERE owner = $1 AND agent = $2 AND slot = 'new'
                 FOR UPDATE",
                &[&owner, &agent],
            )
            .await?;
            if new.is_none() {
                return Ok(false);
            }
            execute(
                &transaction,
                "DELETE FROM fast_tokens WHERE owner = $1 AND agent = $2 AND slot = 'current'",
                &[&owner, &agent],
            )
            .await?;
            execute(
                &transaction,
                "UPDATE fast_tokens SET slot = 'current'
                 WHERE owner = $1 AND agent = $2 AND slot = 'new'",
                &[&owner, &agent],
            )
            .await?;
            transaction.commit().await.map_err(backend)?;
            Ok(true)
        })
    }

    fn delete_fast_tokens<'a>(
        &'a self,
        owner: &'a str,
        agent: &'a str,
        slot: Option<TokenSlot>,
    ) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let client = self.client().await?;
            let slot = slot.map(TokenSlot::as_str);
            execute(
                &client,
                "DELETE FROM fast_tokens WHERE owner = $1 AND agent = $2
                 AND ($3::text IS NULL OR slot = $3)",
                &[&owner, &agent, &slot],
            )
            .await
        })
    }

    fn expire_fast_tokens(&self, now: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let client = self.client().await?;
            execute(
                &client,
                "DELETE FROM fast_tokens WHERE expires_at <= $1",
                &[&now],
            )
            .await
        })
    }

    fn record_user_agent<'a>(
        &'a self,
        record: &'a UserAgentRecord,
        max: u64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(backend)?;
            if !super::lock_account(&transaction, &record.owner).await? {
                return Err(StoreError::NotFound);
            }
            execute(
                &transaction,
                "INSERT INTO user_agents (owner, agent, software, device, certificate, last_login)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (owner, agent) DO UPDATE SET
                     software = excluded.software, device = excluded.device,
                     certificate = excluded.certificate, last_login = excluded.last_login",
                &[
                    &record.owner,
                    &record.agent,
                    &record.software,
                    &record.device,
                    &record.certificate.as_ref().map(<[u8; 32]>::as_slice),
                    &record.last_login,
                ],
            )
            .await?;
            execute(
                &transaction,
                "DELETE FROM user_agents WHERE owner = $1 AND agent NOT IN
                     (SELECT agent FROM user_agents WHERE owner = $1
                      ORDER BY last_login DESC, agent LIMIT $2)",
                &[&record.owner, &i64::try_from(max).unwrap_or(i64::MAX)],
            )
            .await?;
            transaction.commit().await.map_err(backend)
        })
    }

    fn user_agents<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, Vec<UserAgentRecord>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = query(
                &client,
                "SELECT owner, agent, software, device, certificate, last_login
                 FROM user_agents WHERE owner = $1 ORDER BY last_login DESC, agent",
                &[&owner],
            )
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(UserAgentRecord {
                        owner: row.try_get(0).map_err(backend)?,
                        agent: row.try_get(1).map_err(backend)?,
                        software: row.try_get(2).map_err(backend)?,
                        device: row.try_get(3).map_err(backend)?,
                        certificate: fingerprint(row.try_get(4).map_err(backend)?, "user agent")?,
                        last_login: row.try_get(5).map_err(backend)?,
                    })
                })
                .collect()
        })
    }
}

/// Whether `owner` may hold a token of a login with `certificate`: the
/// account is enabled (its row is locked for the transaction) and the
/// certificate (if any) registered to it and enabled.
async fn may_hold(
    client: &impl GenericClient,
    owner: &str,
    certificate: Option<&[u8; 32]>,
) -> Result<bool, StoreError> {
    let enabled = query_opt(
        client,
        "SELECT 1 FROM accounts WHERE jid = $1 AND NOT disabled FOR NO KEY UPDATE",
        &[&owner],
    )
    .await?;
    if enabled.is_none() {
        return Ok(false);
    }
    let Some(fingerprint) = certificate else {
        return Ok(true);
    };
    let registered = query_opt(
        client,
        "SELECT 1 FROM certificates WHERE owner = $1 AND fingerprint = $2 AND NOT disabled",
        &[&owner, &fingerprint.as_slice()],
    )
    .await?;
    Ok(registered.is_some())
}

/// Whether what the issuing login proved still holds (see
/// [`TokenGrounds`]).
async fn grounds_hold(
    client: &impl GenericClient,
    token: &FastToken,
    grounds: &TokenGrounds,
) -> Result<bool, StoreError> {
    let found = match grounds {
        TokenGrounds::Certificate => return Ok(token.certificate.is_some()),
        TokenGrounds::Password(stored_key) => {
            query_opt(
                client,
                "SELECT 1 FROM credentials WHERE account = $1 AND stored_key = $2",
                &[&token.owner, stored_key],
            )
            .await?
        }
        TokenGrounds::Token(sealed) => {
            query_opt(
                client,
                "SELECT 1 FROM fast_tokens WHERE owner = $1 AND agent = $2 AND sealed = $3",
                &[&token.owner, &token.agent, sealed],
            )
            .await?
        }
    };
    Ok(found.is_some())
}

/// Deletes the tokens of logins with `owner`'s certificate `name` (being
/// disabled or revoked), in the caller's transaction.
pub(super) async fn end_for_certificate(
    client: &impl GenericClient,
    owner: &str,
    name: &str,
) -> Result<(), StoreError> {
    execute(
        client,
        "DELETE FROM fast_tokens WHERE owner = $1 AND certificate IN
             (SELECT fingerprint FROM certificates WHERE owner = $1 AND name = $2
              UNION SELECT fingerprint FROM certificate_renewals WHERE owner = $1 AND name = $2)",
        &[&owner, &name],
    )
    .await?;
    Ok(())
}

/// The tokens and clients of logins with `owner`'s certificate `old`
/// follow the device to its next certificate `new`, in the caller's
/// transaction.
pub(super) async fn follow_renewal(
    client: &impl GenericClient,
    owner: &str,
    old: &[u8; 32],
    new: &[u8; 32],
) -> Result<(), StoreError> {
    for sql in [
        "UPDATE fast_tokens SET certificate = $1 WHERE owner = $2 AND certificate = $3",
        "UPDATE user_agents SET certificate = $1 WHERE owner = $2 AND certificate = $3",
    ] {
        execute(client, sql, &[&new.as_slice(), &owner, &old.as_slice()]).await?;
    }
    Ok(())
}

/// A stored fingerprint: 32 bytes, or [`StoreError::Corrupt`].
pub(super) fn fingerprint(
    bytes: Option<Vec<u8>>,
    what: &str,
) -> Result<Option<[u8; 32]>, StoreError> {
    bytes
        .map(|bytes| {
            <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                StoreError::Corrupt(format!("{what} certificate of {} bytes", bytes.len()))
            })
        })
        .transpose()
}

/// One row of `COLUMNS`; an undecodable one is [`StoreError::Corrupt`].
fn decode(row: &Row) -> Result<(TokenSlot, FastToken), StoreError> {
    let slot: String = row.try_get(0).map_err(backend)?;
    let slot = match slot.as_str() {
        "current" => TokenSlot::Current,
        "new" => TokenSlot::New,
        other => return Err(StoreError::Corrupt(format!("token slot {other:?}"))),
    };
    Ok((
        slot,
        FastToken {
            owner: row.try_get(1).map_err(backend)?,
            agent: row.try_get(2).map_err(backend)?,
            mechanism: row.try_get(3).map_err(backend)?,
            sealed: row.try_get(4).map_err(backend)?,
            certificate: fingerprint(row.try_get(5).map_err(backend)?, "token")?,
            issued_at: row.try_get(6).map_err(backend)?,
            expires_at: row.try_get(7).map_err(backend)?,
        },
    ))
}
