//! Accounts and credentials in SQLite.

use sigil_sasl::scram::{Algorithm, StoredCredentials};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::{SqliteStore, backend, begin_write, now_unix};
use crate::types::{algorithm_from_name, algorithm_name, check_credentials, sort_credentials};
use crate::{Account, AccountStore, StoreError, StoreFuture};

impl AccountStore for SqliteStore {
    fn create_account<'a>(
        &'a self,
        jid: &'a str,
        credentials: &'a [StoredCredentials],
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            check_credentials(credentials)?;
            let mut transaction = begin_write(&self.pool).await?;
            let inserted = sqlx::query(
                "INSERT INTO accounts (jid, created_at) VALUES (?, ?) ON CONFLICT (jid) DO NOTHING",
            )
            .bind(jid)
            .bind(now_unix())
            .execute(&mut *transaction)
            .await
            .map_err(backend)?;
            if inserted.rows_affected() == 0 {
                return Err(StoreError::AlreadyExists);
            }
            insert_credentials(&mut transaction, jid, credentials).await?;
            transaction.commit().await.map_err(backend)
        })
    }

    fn account<'a>(&'a self, jid: &'a str) -> StoreFuture<'a, Option<Account>> {
        Box::pin(async move {
            // One read transaction: the account and its credentials from the
            // same snapshot.
            let mut transaction = self.pool.begin().await.map_err(backend)?;
            let Some(row) =
                sqlx::query("SELECT jid, disabled, created_at FROM accounts WHERE jid = ?")
                    .bind(jid)
                    .fetch_optional(&mut *transaction)
                    .await
                    .map_err(backend)?
            else {
                return Ok(None);
            };
            let rows = sqlx::query(
                "SELECT algorithm, salt, iterations, stored_key, server_key
                 FROM credentials WHERE account = ?",
            )
            .bind(jid)
            .fetch_all(&mut *transaction)
            .await
            .map_err(backend)?;
            let mut credentials = rows
                .iter()
                .map(decode_credentials)
                .collect::<Result<Vec<_>, _>>()?;
            sort_credentials(&mut credentials);
            Ok(Some(Account {
                jid: row.try_get("jid").map_err(backend)?,
                disabled: row.try_get("disabled").map_err(backend)?,
                created_at: row.try_get("created_at").map_err(backend)?,
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
            sqlx::query(
                "SELECT algorithm, salt, iterations, stored_key, server_key
                 FROM credentials WHERE account = ? AND algorithm = ?",
            )
            .bind(jid)
            .bind(algorithm_name(algorithm))
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(decode_credentials)
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
            let mut transaction = begin_write(&self.pool).await?;
            if !super::account_exists(&mut transaction, jid).await? {
                return Err(StoreError::NotFound);
            }
            sqlx::query("DELETE FROM credentials WHERE account = ?")
                .bind(jid)
                .execute(&mut *transaction)
                .await
                .map_err(backend)?;
            insert_credentials(&mut transaction, jid, credentials).await?;
            transaction.commit().await.map_err(backend)
        })
    }

    fn set_disabled<'a>(&'a self, jid: &'a str, disabled: bool) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let updated = sqlx::query("UPDATE accounts SET disabled = ? WHERE jid = ?")
                .bind(disabled)
                .bind(jid)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
            match updated.rows_affected() {
                0 => Err(StoreError::NotFound),
                _ => Ok(()),
            }
        })
    }

    fn delete_account<'a>(&'a self, jid: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut transaction = begin_write(&self.pool).await?;
            // Explicit deletes as well as the cascades: the account's data
            // goes even through a connection opened without foreign keys.
            for sql in [
                "DELETE FROM roster_groups WHERE owner = ?",
                "DELETE FROM roster_items WHERE owner = ?",
                "DELETE FROM offline_messages WHERE owner = ?",
                "DELETE FROM certificates WHERE owner = ?",
                "DELETE FROM blocked WHERE owner = ?",
                "DELETE FROM credentials WHERE account = ?",
            ] {
                sqlx::query(sql)
                    .bind(jid)
                    .execute(&mut *transaction)
                    .await
                    .map_err(backend)?;
            }
            let deleted = sqlx::query("DELETE FROM accounts WHERE jid = ?")
                .bind(jid)
                .execute(&mut *transaction)
                .await
                .map_err(backend)?;
            transaction.commit().await.map_err(backend)?;
            Ok(deleted.rows_affected() > 0)
        })
    }

    fn accounts(&self) -> StoreFuture<'_, Vec<String>> {
        Box::pin(async move {
            // The primary key's BINARY collation sorts by bytes, which for
            // UTF-8 is code point order, as `str`'s `Ord`.
            sqlx::query("SELECT jid FROM accounts ORDER BY jid")
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?
                .iter()
                .map(|row| row.try_get("jid").map_err(backend))
                .collect()
        })
    }
}

async fn insert_credentials(
    connection: &mut SqliteConnection,
    jid: &str,
    credentials: &[StoredCredentials],
) -> Result<(), StoreError> {
    for credential in credentials {
        sqlx::query(
            "INSERT INTO credentials (account, algorithm, salt, iterations, stored_key, server_key)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(jid)
        .bind(algorithm_name(credential.algorithm))
        .bind(&credential.salt)
        .bind(i64::from(credential.iterations))
        .bind(&credential.stored_key)
        .bind(&credential.server_key)
        .execute(&mut *connection)
        .await
        .map_err(backend)?;
    }
    Ok(())
}

fn decode_credentials(row: &SqliteRow) -> Result<StoredCredentials, StoreError> {
    let name: String = row.try_get("algorithm").map_err(backend)?;
    let algorithm = algorithm_from_name(&name)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown SCRAM algorithm {name:?}")))?;
    let iterations: i64 = row.try_get("iterations").map_err(backend)?;
    Ok(StoredCredentials {
        algorithm,
        salt: row.try_get("salt").map_err(backend)?,
        iterations: u32::try_from(iterations)
            .map_err(|_| StoreError::Corrupt(format!("iteration count {iterations}")))?,
        stored_key: row.try_get("stored_key").map_err(backend)?,
        server_key: row.try_get("server_key").map_err(backend)?,
    })
}
