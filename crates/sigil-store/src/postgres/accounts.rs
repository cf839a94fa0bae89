//! Accounts and credentials in PostgreSQL.

use deadpool_postgres::GenericClient;
use sigil_sasl::scram::{Algorithm, StoredCredentials};
use tokio_postgres::Row;

use super::{PostgresStore, backend, execute, lock_account, now_unix, query, query_opt};
use crate::types::{algorithm_from_name, algorithm_name, check_credentials, sort_credentials};
use crate::{Account, AccountStore, StoreError, StoreFuture};

impl AccountStore for PostgresStore {
    fn create_account<'a>(
        &'a self,
        jid: &'a str,
        credentials: &'a [StoredCredentials],
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            check_credentials(credentials)?;
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(backend)?;
            let inserted = execute(
                &transaction,
                "INSERT INTO accounts (jid, created_at) VALUES ($1, $2)
                 ON CONFLICT (jid) DO NOTHING",
                &[&jid, &now_unix()],
            )
            .await?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists);
            }
            insert_credentials(&transaction, jid, credentials).await?;
            transaction.commit().await.map_err(backend)
        })
    }

    fn account<'a>(&'a self, jid: &'a str) -> StoreFuture<'a, Option<Account>> {
        Box::pin(async move {
            let client = self.client().await?;
            // One statement: the account and its credentials from the same
            // snapshot.
            let rows = query(
                &client,
                "SELECT a.jid, a.disabled, a.created_at, c.algorithm, c.salt,
                        c.iterations, c.stored_key, c.server_key
                 FROM accounts a LEFT JOIN credentials c ON c.account = a.jid
                 WHERE a.jid = $1",
                &[&jid],
            )
            .await?;
            let Some(first) = rows.first() else {
                return Ok(None);
            };
            let mut credentials = Vec::new();
            for row in &rows {
                if row.get::<_, Option<String>>("algorithm").is_some() {
                    credentials.push(decode_credentials(row)?);
                }
            }
            sort_credentials(&mut credentials);
            Ok(Some(Account {
                jid: first.get("jid"),
                disabled: first.get("disabled"),
                created_at: first.get("created_at"),
                credentials,
            }))
        })
    }

    fn credentials<'a>(
        &'a self,
        jid: &'a str,
        algorithm: Algorithm,
    ) -> StoreFuture<'a, Option<StoredCredentials>> {
        Box::pin(async move {
            let client = self.client().await?;
            query_opt(
                &client,
                "SELECT algorithm, salt, iterations, stored_key, server_key
                 FROM credentials WHERE account = $1 AND algorithm = $2",
                &[&jid, &algorithm_name(algorithm)],
            )
            .await?
            .map(|row| decode_credentials(&row))
            .transpose()
        })
    }

    fn set_credentials<'a>(
        &'a self,
        jid: &'a str,
        credentials: &'a [StoredCredentials],
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            check_credentials(credentials)?;
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(backend)?;
            if !lock_account(&transaction, jid).await? {
                return Err(StoreError::NotFound);
            }
            execute(
                &transaction,
                "DELETE FROM credentials WHERE account = $1",
                &[&jid],
            )
            .await?;
            // The tokens a password login got end with the password.
            end_tokens(&transaction, jid, true).await?;
            insert_credentials(&transaction, jid, credentials).await?;
            transaction.commit().await.map_err(backend)
        })
    }

    fn set_disabled<'a>(&'a self, jid: &'a str, disabled: bool) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(backend)?;
            if !lock_account(&transaction, jid).await? {
                return Err(StoreError::NotFound);
            }
            if disabled {
                // What the account's sessions made, and what would add a
                // device to it, end with it.
                end_invites(&transaction, jid).await?;
                end_tokens(&transaction, jid, false).await?;
            }
            execute(
                &transaction,
                "UPDATE accounts SET disabled = $1 WHERE jid = $2",
                &[&disabled, &jid],
            )
            .await?;
            transaction.commit().await.map_err(backend)
        })
    }

    fn delete_account<'a>(&'a self, jid: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(backend)?;
            if !lock_account(&transaction, jid).await? {
                return Ok(false);
            }
            // What is not owned through a foreign key: invitations that
            // add to the account or that it made (the cascades take the
            // rest; revocations stay, a revocation being final).
            end_invites(&transaction, jid).await?;
            execute(&transaction, "DELETE FROM accounts WHERE jid = $1", &[&jid]).await?;
            transaction.commit().await.map_err(backend)?;
            Ok(true)
        })
    }

    fn accounts(&self) -> StoreFuture<'_, Vec<String>> {
        Box::pin(async move {
            let client = self.client().await?;
            // COLLATE "C": byte order, which for UTF-8 is code point order,
            // as `str`'s `Ord`.
            let rows = query(&client, "SELECT jid FROM accounts ORDER BY jid", &[]).await?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }
}

async fn insert_credentials(
    client: &impl GenericClient,
    jid: &str,
    credentials: &[StoredCredentials],
) -> Result<(), StoreError> {
    for credential in credentials {
        execute(
            client,
            "INSERT INTO credentials (account, algorithm, salt, iterations, stored_key, server_key)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &jid,
                &algorithm_name(credential.algorithm),
                &credential.salt,
                &i64::from(credential.iterations),
                &credential.stored_key,
                &credential.server_key,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Deletes `owner`'s FAST tokens: those password logins got, or all.
pub(super) async fn end_tokens(
    client: &impl GenericClient,
    owner: &str,
    by_password: bool,
) -> Result<(), StoreError> {
    execute(
        client,
        "DELETE FROM fast_tokens WHERE owner = $1 AND (NOT $2 OR certificate IS NULL)",
        &[&owner, &by_password],
    )
    .await?;
    Ok(())
}

/// Deletes the invitations `account` made or that add a device to it.
pub(super) async fn end_invites(
    client: &impl GenericClient,
    account: &str,
) -> Result<(), StoreError> {
    execute(
        client,
        "DELETE FROM invites WHERE creator = $1 OR (kind = 'device' AND jid = $1)",
        &[&account],
    )
    .await?;
    Ok(())
}

/// Decodes a credentials row; a stored value this code does not accept is
/// [`StoreError::Corrupt`].
fn decode_credentials(row: &Row) -> Result<StoredCredentials, StoreError> {
    let name: String = row.try_get("algorithm").map_err(backend)?;
    let iterations: i64 = row.try_get("iterations").map_err(backend)?;
    Ok(StoredCredentials {
        algorithm: algorithm_from_name(&name)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown SCRAM algorithm {name:?}")))?,
        salt: row.try_get("salt").map_err(backend)?,
        iterations: u32::try_from(iterations)
            .map_err(|_| StoreError::Corrupt(format!("iteration count {iterations}")))?,
        stored_key: row.try_get("stored_key").map_err(backend)?,
        server_key: row.try_get("server_key").map_err(backend)?,
    })
}
