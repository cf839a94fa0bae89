//! Accounts and credentials in SQLite.

use rusqlite::{Connection, OptionalExtension, Row};
use sigil_sasl::scram::{Algorithm, StoredCredentials};

use super::{SqliteStore, account_exists, backend, now_unix, snapshot};
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
            let (jid, credentials) = (jid.to_owned(), credentials.to_vec());
            self.write(move |transaction| {
                let inserted = transaction
                    .prepare_cached(
                        "INSERT INTO accounts (jid, created_at) VALUES (?, ?)
                         ON CONFLICT (jid) DO NOTHING",
                    )
                    .map_err(backend)?
                    .execute((&jid, now_unix()))
                    .map_err(backend)?;
                if inserted == 0 {
                    return Err(StoreError::AlreadyExists);
                }
                insert_credentials(transaction, &jid, &credentials)
            })
            .await
        })
    }

    fn account<'a>(&'a self, jid: &'a str) -> StoreFuture<'a, Option<Account>> {
        Box::pin(async move {
            self.read(|connection| {
                // One read transaction: the account and its credentials
                // from the same snapshot.
                snapshot(connection, |connection| {
                    let Some((jid, disabled, created_at)) = connection
                        .prepare_cached(
                            "SELECT jid, disabled, created_at FROM accounts WHERE jid = ?",
                        )
                        .map_err(backend)?
                        .query_row([jid], |row| {
                            Ok((
                                row.get::<_, String>("jid")?,
                                row.get::<_, bool>("disabled")?,
                                row.get::<_, i64>("created_at")?,
                            ))
                        })
                        .optional()
                        .map_err(backend)?
                    else {
                        return Ok(None);
                    };
                    let mut credentials = connection
                        .prepare_cached(
                            "SELECT algorithm, salt, iterations, stored_key, server_key
                             FROM credentials WHERE account = ?",
                        )
                        .map_err(backend)?
                        .query_map([&jid], decode_credentials)
                        .map_err(backend)?
                        .map(|row| row.map_err(backend).and_then(|decoded| decoded))
                        .collect::<Result<Vec<_>, _>>()?;
                    sort_credentials(&mut credentials);
                    Ok(Some(Account {
                        jid,
                        disabled,
                        created_at,
                        credentials,
                    }))
                })
            })
        })
    }

    fn credentials<'a>(
        &'a self,
        jid: &'a str,
        algorithm: Algorithm,
    ) -> StoreFuture<'a, Option<StoredCredentials>> {
        Box::pin(async move {
            self.read(|connection| {
                connection
                    .prepare_cached(
                        "SELECT algorithm, salt, iterations, stored_key, server_key
                         FROM credentials WHERE account = ? AND algorithm = ?",
                    )
                    .map_err(backend)?
                    .query_row((jid, algorithm_name(algorithm)), decode_credentials)
                    .optional()
                    .map_err(backend)?
                    .transpose()
            })
        })
    }

    fn set_credentials<'a>(
        &'a self,
        jid: &'a str,
        credentials: &'a [StoredCredentials],
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            check_credentials(credentials)?;
            let (jid, credentials) = (jid.to_owned(), credentials.to_vec());
            self.write(move |transaction| {
                if !account_exists(transaction, &jid)? {
                    return Err(StoreError::NotFound);
                }
                transaction
                    .prepare_cached("DELETE FROM credentials WHERE account = ?")
                    .map_err(backend)?
                    .execute([&jid])
                    .map_err(backend)?;
                // The tokens a password login got end with the password.
                super::tokens::end_for_account(transaction, &jid, true)?;
                insert_credentials(transaction, &jid, &credentials)
            })
            .await
        })
    }

    fn set_disabled<'a>(&'a self, jid: &'a str, disabled: bool) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let jid = jid.to_owned();
            self.write(move |transaction| {
                if disabled {
                    // What the account's sessions made, and what would add
                    // a device to it, end with it.
                    super::invites::end_for_account(transaction, &jid)?;
                    super::tokens::end_for_account(transaction, &jid, false)?;
                }
                let updated = transaction
                    .prepare_cached("UPDATE accounts SET disabled = ? WHERE jid = ?")
                    .map_err(backend)?
                    .execute((disabled, &jid))
                    .map_err(backend)?;
                match updated {
                    0 => Err(StoreError::NotFound),
                    _ => Ok(()),
                }
            })
            .await
        })
    }

    fn delete_account<'a>(&'a self, jid: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let jid = jid.to_owned();
            self.write(move |transaction| {
                // Explicit deletes as well as the cascades: the account's
                // data goes even through a connection opened without
                // foreign keys.
                for sql in [
                    "DELETE FROM roster_groups WHERE owner = ?",
                    "DELETE FROM roster_items WHERE owner = ?",
                    "DELETE FROM offline_messages WHERE owner = ?",
                    "DELETE FROM expiry_warnings WHERE owner = ?",
                    "DELETE FROM certificate_renewals WHERE owner = ?",
                    "DELETE FROM certificate_logins WHERE owner = ?",
                    "DELETE FROM certificates WHERE owner = ?",
                    "DELETE FROM blocked WHERE owner = ?",
                    "DELETE FROM archive WHERE owner = ?",
                    "DELETE FROM archive_prefs WHERE owner = ?",
                    "DELETE FROM documents WHERE owner = ?",
                    "DELETE FROM last_activity WHERE owner = ?",
                    "DELETE FROM credentials WHERE account = ?",
                ] {
                    transaction
                        .prepare_cached(sql)
                        .map_err(backend)?
                        .execute([&jid])
                        .map_err(backend)?;
                }
                super::invites::end_for_account(transaction, &jid)?;
                super::tokens::end_for_account(transaction, &jid, false)?;
                transaction
                    .prepare_cached("DELETE FROM user_agents WHERE owner = ?")
                    .map_err(backend)?
                    .execute([&jid])
                    .map_err(backend)?;
                let deleted = transaction
                    .prepare_cached("DELETE FROM accounts WHERE jid = ?")
                    .map_err(backend)?
                    .execute([&jid])
                    .map_err(backend)?;
                Ok(deleted > 0)
            })
            .await
        })
    }

    fn accounts(&self) -> StoreFuture<'_, Vec<String>> {
        Box::pin(async move {
            self.read(|connection| {
                // The primary key's BINARY collation sorts by bytes, which
                // for UTF-8 is code point order, as `str`'s `Ord`.
                connection
                    .prepare_cached("SELECT jid FROM accounts ORDER BY jid")
                    .map_err(backend)?
                    .query_map([], |row| row.get("jid"))
                    .map_err(backend)?
                    .map(|row| row.map_err(backend))
                    .collect()
            })
        })
    }
}

fn insert_credentials(
    connection: &Connection,
    jid: &str,
    credentials: &[StoredCredentials],
) -> Result<(), StoreError> {
    let mut statement = connection
        .prepare_cached(
            "INSERT INTO credentials (account, algorithm, salt, iterations, stored_key, server_key)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .map_err(backend)?;
    for credential in credentials {
        statement
            .execute((
                jid,
                algorithm_name(credential.algorithm),
                &credential.salt,
                i64::from(credential.iterations),
                &credential.stored_key,
                &credential.server_key,
            ))
            .map_err(backend)?;
    }
    Ok(())
}

/// Decodes a credentials row; the outer error is SQLite's, the inner one
/// a stored value this code does not accept.
fn decode_credentials(row: &Row<'_>) -> rusqlite::Result<Result<StoredCredentials, StoreError>> {
    let name: String = row.get("algorithm")?;
    let iterations: i64 = row.get("iterations")?;
    let (salt, stored_key, server_key) = (
        row.get("salt")?,
        row.get("stored_key")?,
        row.get("server_key")?,
    );
    Ok((|| {
        Ok(StoredCredentials {
            algorithm: algorithm_from_name(&name)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown SCRAM algorithm {name:?}")))?,
            salt,
            iterations: u32::try_from(iterations)
                .map_err(|_| StoreError::Corrupt(format!("iteration count {iterations}")))?,
            stored_key,
            server_key,
        })
    })())
}
