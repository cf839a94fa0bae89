//! Client certificates (XEP-0257) in SQLite.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, account_exists, backend, begin_write};
use crate::{CertificateEntry, CertificateLookup, CertificateStore, StoreError, StoreFuture};

impl CertificateStore for SqliteStore {
    fn add_certificate<'a>(&'a self, entry: &'a CertificateEntry) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            // Check each rule under the write lock, so the conflict names
            // the field exactly rather than relaying a constraint message.
            let mut transaction = begin_write(&self.pool).await?;
            if !account_exists(&mut transaction, &entry.owner).await? {
                return Err(StoreError::NotFound);
            }
            let by_name = sqlx::query("SELECT 1 FROM certificates WHERE owner = ? AND name = ?")
                .bind(&entry.owner)
                .bind(&entry.name)
                .fetch_optional(&mut *transaction)
                .await
                .map_err(backend)?;
            if by_name.is_some() {
                return Err(StoreError::Conflict("name".into()));
            }
            let by_fingerprint =
                sqlx::query("SELECT 1 FROM certificates WHERE owner = ? AND fingerprint = ?")
                    .bind(&entry.owner)
                    .bind(entry.fingerprint.as_slice())
                    .fetch_optional(&mut *transaction)
                    .await
                    .map_err(backend)?;
            if by_fingerprint.is_some() {
                return Err(StoreError::Conflict("fingerprint".into()));
            }
            sqlx::query(
                "INSERT INTO certificates
                     (owner, name, fingerprint, der, no_cert_management, disabled, added_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&entry.owner)
            .bind(&entry.name)
            .bind(entry.fingerprint.as_slice())
            .bind(&entry.der)
            .bind(entry.no_cert_management)
            .bind(entry.disabled)
            .bind(entry.added_at)
            .execute(&mut *transaction)
            .await
            .map_err(backend)?;
            transaction.commit().await.map_err(backend)
        })
    }

    fn certificates<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, Vec<CertificateEntry>> {
        Box::pin(async move {
            sqlx::query(
                "SELECT owner, name, fingerprint, der, no_cert_management, disabled, added_at
                 FROM certificates WHERE owner = ? ORDER BY name",
            )
            .bind(owner)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .iter()
            .map(decode_certificate)
            .collect()
        })
    }

    fn certificate_by_fingerprint<'a>(
        &'a self,
        owner: &'a str,
        fingerprint: &'a [u8; 32],
    ) -> StoreFuture<'a, Option<CertificateEntry>> {
        Box::pin(async move {
            sqlx::query(
                "SELECT owner, name, fingerprint, der, no_cert_management, disabled, added_at
                 FROM certificates WHERE owner = ? AND fingerprint = ?",
            )
            .bind(owner)
            .bind(fingerprint.as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(decode_certificate)
            .transpose()
        })
    }

    fn certificate_lookup<'a>(
        &'a self,
        owner: &'a str,
        fingerprint: &'a [u8; 32],
    ) -> StoreFuture<'a, Option<CertificateLookup>> {
        Box::pin(async move {
            // One statement, so one snapshot and one trip to the database.
            let Some(row) = sqlx::query(
                "SELECT a.disabled AS account_disabled, c.owner, c.name, c.fingerprint, c.der,
                        c.no_cert_management, c.disabled, c.added_at
                 FROM accounts a
                 LEFT JOIN certificates c ON c.owner = a.jid AND c.fingerprint = ?
                 WHERE a.jid = ?",
            )
            .bind(fingerprint.as_slice())
            .bind(owner)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            else {
                return Ok(None);
            };
            let registered: Option<String> = row.try_get("owner").map_err(backend)?;
            Ok(Some(CertificateLookup {
                account_disabled: row.try_get("account_disabled").map_err(backend)?,
                certificate: match registered {
                    Some(_) => Some(decode_certificate(&row)?),
                    None => None,
                },
            }))
        })
    }

    fn disable_certificate<'a>(&'a self, owner: &'a str, name: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let updated =
                sqlx::query("UPDATE certificates SET disabled = 1 WHERE owner = ? AND name = ?")
                    .bind(owner)
                    .bind(name)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
            Ok(updated.rows_affected() > 0)
        })
    }

    fn revoke_certificate<'a>(
        &'a self,
        owner: &'a str,
        name: &'a str,
    ) -> StoreFuture<'a, Option<CertificateEntry>> {
        Box::pin(async move {
            sqlx::query(
                "DELETE FROM certificates WHERE owner = ? AND name = ?
                 RETURNING owner, name, fingerprint, der, no_cert_management, disabled, added_at",
            )
            .bind(owner)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(decode_certificate)
            .transpose()
        })
    }
}

fn decode_certificate(row: &SqliteRow) -> Result<CertificateEntry, StoreError> {
    let fingerprint: Vec<u8> = row.try_get("fingerprint").map_err(backend)?;
    let fingerprint = <[u8; 32]>::try_from(fingerprint.as_slice())
        .map_err(|_| StoreError::Corrupt(format!("fingerprint of {} bytes", fingerprint.len())))?;
    Ok(CertificateEntry {
        owner: row.try_get("owner").map_err(backend)?,
        name: row.try_get("name").map_err(backend)?,
        fingerprint,
        der: row.try_get("der").map_err(backend)?,
        no_cert_management: row.try_get("no_cert_management").map_err(backend)?,
        disabled: row.try_get("disabled").map_err(backend)?,
        added_at: row.try_get("added_at").map_err(backend)?,
    })
}
