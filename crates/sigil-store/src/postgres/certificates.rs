//! Client certificates (XEP-0257) in PostgreSQL.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{PostgresStore, backend, execute, lock_account, query, query_opt, to_bigint};
use crate::{
    CertificateEntry, CertificateLookup, CertificateStore, RevokedCertificate, StoreError,
    StoreFuture,
};

/// The columns `decode_certificate` reads, in every query that feeds it.
macro_rules! certificate_columns {
    () => {
        "owner, name, fingerprint, der, no_cert_management, disabled, added_at"
    };
}

impl CertificateStore for PostgresStore {
    fn add_certificate<'a>(&'a self, entry: &'a CertificateEntry) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(backend)?;
            insert_certificate(&transaction, entry).await?;
            transaction.commit().await.map_err(backend)
        })
    }

    fn certificates<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, Vec<CertificateEntry>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = query(
                &client,
                concat!(
                    "SELECT ",
                    certificate_columns!(),
                    " FROM certificates WHERE owner = $1 ORDER BY name"
                ),
                &[&owner],
            )
            .await?;
            rows.iter().map(decode_certificate).collect()
        })
    }

    fn certificate_by_fingerprint<'a>(
        &'a self,
        owner: &'a str,
        fingerprint: &'a [u8; 32],
    ) -> StoreFuture<'a, Option<CertificateEntry>> {
        Box::pin(async move {
            let client = self.client().await?;
            query_opt(
                &client,
                concat!(
                    "SELECT ",
                    certificate_columns!(),
                    " FROM certificates WHERE owner = $1 AND fingerprint = $2"
                ),
                &[&owner, &fingerprint.as_slice()],
            )
            .await?
            .map(|row| decode_certificate(&row))
            .transpose()
        })
    }

    fn certificate_lookup<'a>(
        &'a self,
        owner: &'a str,
        fingerprint: &'a [u8; 32],
    ) -> StoreFuture<'a, Option<CertificateLookup>> {
        Box::pin(async move {
            let client = self.client().await?;
            // One statement, so one snapshot.
            let Some(row) = query_opt(
                &client,
                "SELECT a.disabled AS account_disabled,
                        EXISTS (SELECT 1 FROM revoked_certificates v
                                WHERE v.owner = a.jid AND v.fingerprint = $1) AS revoked,
                        c.owner, c.name,
                        coalesce(n.fingerprint, c.fingerprint) AS fingerprint,
                        coalesce(n.der, c.der) AS der,
                        c.no_cert_management, c.disabled, c.added_at,
                        n.owner IS NOT NULL AS renewal,
                        (SELECT l.at FROM certificate_logins l
                         WHERE l.owner = c.owner AND l.name = c.name) AS last_login_at
                 FROM accounts a
                 LEFT JOIN certificate_renewals n ON n.owner = a.jid AND n.fingerprint = $1
                 LEFT JOIN certificates c ON c.owner = a.jid
                     AND (c.fingerprint = $1 OR c.name = n.name)
                 WHERE a.jid = $2",
                &[&fingerprint.as_slice(), &owner],
            )
            .await?
            else {
                return Ok(None);
            };
            let registered: Option<String> = row.try_get("owner").map_err(backend)?;
            let certificate = match registered {
                Some(_) => Some(decode_certificate(&row)?),
                None => None,
            };
            let renewal: bool = row.try_get("renewal").map_err(backend)?;
            Ok(Some(CertificateLookup {
                account_disabled: row.try_get("account_disabled").map_err(backend)?,
                renewal: renewal && certificate.is_some(),
                revoked: row.try_get("revoked").map_err(backend)?,
                certificate,
                last_login_at: row.try_get("last_login_at").map_err(backend)?,
            }))
        })
    }

    fn renew_certificate<'a>(
        &'a self,
        next: &'a CertificateEntry,
        replaces: Option<&'a [u8; 32]>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(backend)?;
            if !lock_account(&transaction, &next.owner).await? {
                return Err(StoreError::NotFound);
            }
            let current: Option<Vec<u8>> = query_opt(
                &transaction,
                "SELECT fingerprint FROM certificates WHERE owner = $1 AND name = $2",
                &[&next.owner, &next.name],
            )
            .await?
            .map(|row| row.get(0));
            let device = match (current, replaces) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(current), Some(replaces)) => current == replaces,
            };
            if !device {
                return Err(StoreError::NotFound);
            }
            check_not_revoked(&transaction, &next.owner, &next.fingerprint).await?;
            check_not_registered(&transaction, &next.owner, &next.fingerprint).await?;
            execute(
                &transaction,
                "INSERT INTO certificate_renewals (owner, name, fingerprint, der, added_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (owner, name) DO UPDATE SET
                     fingerprint = excluded.fingerprint, der = excluded.der,
                     added_at = excluded.added_at",
                &[
                    &next.owner,
                    &next.name,
                    &next.fingerprint.as_slice(),
                    &next.der,
                    &next.added_at,
                ],
            )
            .await?;
            transaction.commit().await.map_err(backend)
        })
    }

    fn certificate_renewals<'a>(
        &'a self,
        owner: &'a str,
    ) -> StoreFuture<'a, Vec<CertificateEntry>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = query(
                &client,
                "SELECT n.owner, n.name, n.fingerprint, n.der,
                        c.no_cert_management, c.disabled, n.added_at
                 FROM certificate_renewals n
                 JOIN certificates c ON c.owner = n.owner AND c.name = n.name
                 WHERE n.owner = $1 ORDER BY n.name",
                &[&owner],
            )
            .await?;
            rows.iter().map(decode_certificate).collect()
        })
    }

    fn promote_certificate<'a>(
        &'a self,
        owner: &'a str,
        fingerprint: &'a [u8; 32],
    ) -> StoreFuture<'a, Option<[u8; 32]>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(backend)?;
            if !lock_account(&transaction, owner).await? {
                return Ok(None);
            }
            let Some(next) = query_opt(
                &transaction,
                "SELECT n.name, n.der, c.fingerprint AS old, c.disabled
                 FROM certificate_renewals n
                 JOIN certificates c ON c.owner = n.owner AND c.name = n.name
                 WHERE n.owner = $1 AND n.fingerprint = $2",
                &[&owner, &fingerprint.as_slice()],
            )
            .await?
            else {
                return Ok(None);
            };
            let disabled: bool = next.try_get("disabled").map_err(backend)?;
            if disabled {
                // The device is disabled: nothing changes.
                return Ok(None);
            }
            let name: String = next.try_get("name").map_err(backend)?;
            let der: Vec<u8> = next.try_get("der").map_err(backend)?;
            let old = fingerprint_array(&next.try_get::<_, Vec<u8>>("old").map_err(backend)?)?;
            execute(
                &transaction,
                "DELETE FROM certificate_renewals WHERE owner = $1 AND name = $2",
                &[&owner, &name],
            )
            .await?;
            execute(
                &transaction,
                "DELETE FROM expiry_warnings WHERE owner = $1 AND fingerprint = $2",
                &[&owner, &old.as_slice()],
            )
            .await?;
            execute(
                &transaction,
                "UPDATE certificates SET fingerprint = $1, der = $2 WHERE owner = $3 AND name = $4",
                &[&fingerprint.as_slice(), &der, &owner, &name],
            )
            .await?;
            execute(
                &transaction,
                "UPDATE invites SET creator_certificate = $1
                 WHERE creator = $2 AND creator_certificate = $3",
                &[&fingerprint.as_slice(), &owner, &old.as_slice()],
            )
            .await?;
            super::tokens::follow_renewal(&transaction, owner, &old, fingerprint).await?;
            transaction.commit().await.map_err(backend)?;
            Ok(Some(old))
        })
    }

    fn record_certificate_login<'a>(
        &'a self,
        owner: &'a str,
        name: &'a str,
        at: i64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let client = self.client().await?;
            execute(
                &client,
                "INSERT INTO certificate_logins (owner, name, at)
                 SELECT owner, name, $3 FROM certificates WHERE owner = $1 AND name = $2
                 FOR KEY SHARE
                 ON CONFLICT (owner, name) DO UPDATE SET at = excluded.at
                 WHERE excluded.at - certificate_logins.at >= 3600",
                &[&owner, &name, &at],
            )
            .await?;
            Ok(())
        })
    }

    fn certificate_logins<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, Vec<(String, i64)>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = query(
                &client,
                "SELECT name, at FROM certificate_logins WHERE owner = $1 ORDER BY name",
                &[&owner],
            )
            .await?;
            Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
        })
    }

    fn disable_certificate<'a>(&'a self, owner: &'a str, name: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(backend)?;
            if !lock_account(&transaction, owner).await? {
                return Ok(false);
            }
            // What its sessions made ends with it.
            end_invites_for_certificate(&transaction, owner, name).await?;
            super::tokens::end_for_certificate(&transaction, owner, name).await?;
            let updated = execute(
                &transaction,
                "UPDATE certificates SET disabled = TRUE WHERE owner = $1 AND name = $2",
                &[&owner, &name],
            )
            .await?;
            transaction.commit().await.map_err(backend)?;
            Ok(updated > 0)
        })
    }

    fn enable_certificate<'a>(&'a self, owner: &'a str, name: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let client = self.client().await?;
            let updated = execute(
                &client,
                "UPDATE certificates SET disabled = FALSE WHERE owner = $1 AND name = $2",
                &[&owner, &name],
            )
            .await?;
            Ok(updated > 0)
        })
    }

    fn revoke_certificate<'a>(
        &'a self,
        owner: &'a str,
        name: &'a str,
        revoked_at: i64,
    ) -> StoreFuture<'a, Option<CertificateEntry>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(backend)?;
            if !lock_account(&transaction, owner).await? {
                return Ok(None);
            }
            // What its sessions made ends with it.
            end_invites_for_certificate(&transaction, owner, name).await?;
            super::tokens::end_for_certificate(&transaction, owner, name).await?;
            // Its next certificate is revoked with it (the delete below
            // takes the renewal row with the device's).
            execute(
                &transaction,
                "INSERT INTO revoked_certificates (owner, fingerprint, name, der, revoked_at)
                 SELECT owner, fingerprint, name, der, $3 FROM certificate_renewals
                 WHERE owner = $1 AND name = $2
                 ON CONFLICT (owner, fingerprint) DO UPDATE SET
                     name = excluded.name, der = excluded.der, revoked_at = excluded.revoked_at",
                &[&owner, &name, &revoked_at],
            )
            .await?;
            let Some(row) = query_opt(
                &transaction,
                concat!(
                    "DELETE FROM certificates WHERE owner = $1 AND name = $2 RETURNING ",
                    certificate_columns!()
                ),
                &[&owner, &name],
            )
            .await?
            else {
                return Ok(None);
            };
            let entry = decode_certificate(&row)?;
            // (Its expiry warning goes with it, by the cascade.)
            execute(
                &transaction,
                "INSERT INTO revoked_certificates (owner, fingerprint, name, der, revoked_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (owner, fingerprint) DO UPDATE SET
                     name = excluded.name, der = excluded.der, revoked_at = excluded.revoked_at",
                &[
                    &entry.owner,
                    &entry.fingerprint.as_slice(),
                    &entry.name,
                    &entry.der,
                    &revoked_at,
                ],
            )
            .await?;
            transaction.commit().await.map_err(backend)?;
            Ok(Some(entry))
        })
    }

    fn revoked_certificates<'a>(
        &'a self,
        owner: &'a str,
    ) -> StoreFuture<'a, Vec<RevokedCertificate>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = query(
                &client,
                "SELECT owner, name, fingerprint, der, revoked_at
                 FROM revoked_certificates WHERE owner = $1
                 ORDER BY revoked_at, name, fingerprint",
                &[&owner],
            )
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(RevokedCertificate {
                        owner: row.try_get("owner").map_err(backend)?,
                        name: row.try_get("name").map_err(backend)?,
                        fingerprint: fingerprint_array(
                            &row.try_get::<_, Vec<u8>>("fingerprint").map_err(backend)?,
                        )?,
                        der: row.try_get("der").map_err(backend)?,
                        revoked_at: row.try_get("revoked_at").map_err(backend)?,
                    })
                })
                .collect()
        })
    }

    fn forget_revocations<'a>(
        &'a self,
        owner: &'a str,
        fingerprints: &'a [[u8; 32]],
    ) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            if fingerprints.is_empty() {
                return Ok(0);
            }
            let client = self.client().await?;
            let fingerprints: Vec<&[u8]> = fingerprints.iter().map(<[u8; 32]>::as_slice).collect();
            execute(
                &client,
                "DELETE FROM revoked_certificates WHERE owner = $1 AND fingerprint = ANY($2)",
                &[&owner, &fingerprints],
            )
            .await
        })
    }

    fn all_certificates<'a>(
        &'a self,
        after: Option<(&'a str, &'a str)>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<CertificateEntry>> {
        Box::pin(async move {
            let (owner, name) = after.unwrap_or(("", ""));
            let first = after.is_none();
            let client = self.client().await?;
            let rows = query(
                &client,
                concat!(
                    "SELECT ",
                    certificate_columns!(),
                    " FROM certificates WHERE $1 OR (owner, name) > ($2, $3)
                     ORDER BY owner, name LIMIT $4"
                ),
                &[&first, &owner, &name, &to_bigint(limit)],
            )
            .await?;
            rows.iter().map(decode_certificate).collect()
        })
    }

    fn mark_expiry_warned<'a>(
        &'a self,
        owner: &'a str,
        fingerprint: &'a [u8; 32],
        at: i64,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(backend)?;
            // Not while the certificate is being promoted or revoked.
            if !lock_account(&transaction, owner).await? {
                return Ok(false);
            }
            let marked = execute(
                &transaction,
                "INSERT INTO expiry_warnings (owner, fingerprint, warned_at)
                 SELECT owner, fingerprint, $3 FROM certificates
                 WHERE owner = $1 AND fingerprint = $2 FOR KEY SHARE
                 ON CONFLICT (owner, fingerprint) DO NOTHING",
                &[&owner, &fingerprint.as_slice(), &at],
            )
            .await?;
            transaction.commit().await.map_err(backend)?;
            Ok(marked > 0)
        })
    }
}

fn fingerprint_array(bytes: &[u8]) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| StoreError::Corrupt(format!("fingerprint of {} bytes", bytes.len())))
}

/// Decodes a certificate row; a stored value this code does not accept is
/// [`StoreError::Corrupt`].
fn decode_certificate(row: &Row) -> Result<CertificateEntry, StoreError> {
    let fingerprint: Vec<u8> = row.try_get("fingerprint").map_err(backend)?;
    Ok(CertificateEntry {
        owner: row.try_get("owner").map_err(backend)?,
        name: row.try_get("name").map_err(backend)?,
        fingerprint: fingerprint_array(&fingerprint)?,
        der: row.try_get("der").map_err(backend)?,
        no_cert_management: row.try_get("no_cert_management").map_err(backend)?,
        disabled: row.try_get("disabled").map_err(backend)?,
        added_at: row.try_get("added_at").map_err(backend)?,
    })
}

/// [`StoreError::Revoked`] if `owner` revoked `fingerprint`.
async fn check_not_revoked(
    client: &impl GenericClient,
    owner: &str,
    fingerprint: &[u8; 32],
) -> Result<(), StoreError> {
    let revoked = query_opt(
        client,
        "SELECT 1 FROM revoked_certificates WHERE owner = $1 AND fingerprint = $2",
        &[&owner, &fingerprint.as_slice()],
    )
    .await?;
    match revoked {
        Some(_) => Err(StoreError::Revoked),
        None => Ok(()),
    }
}

/// [`StoreError::Conflict`]`("fingerprint")` if `fingerprint` is
/// registered to `owner` as a device's certificate or next certificate.
async fn check_not_registered(
    client: &impl GenericClient,
    owner: &str,
    fingerprint: &[u8; 32],
) -> Result<(), StoreError> {
    let registered = query_opt(
        client,
        "SELECT 1 FROM certificates WHERE owner = $1 AND fingerprint = $2
         UNION ALL
         SELECT 1 FROM certificate_renewals WHERE owner = $1 AND fingerprint = $2
         LIMIT 1",
        &[&owner, &fingerprint.as_slice()],
    )
    .await?;
    match registered {
        Some(_) => Err(StoreError::Conflict("fingerprint".into())),
        None => Ok(()),
    }
}

/// Registers `entry` in the caller's transaction, with the owner's account
/// row locked, checking each rule so that a conflict names its field
/// exactly (see [`CertificateStore::add_certificate`]).
pub(super) async fn insert_certificate(
    client: &impl GenericClient,
    entry: &CertificateEntry,
) -> Result<(), StoreError> {
    if !lock_account(client, &entry.owner).await? {
        return Err(StoreError::NotFound);
    }
    check_not_revoked(client, &entry.owner, &entry.fingerprint).await?;
    let by_name = query_opt(
        client,
        "SELECT 1 FROM certificates WHERE owner = $1 AND name = $2",
        &[&entry.owner, &entry.name],
    )
    .await?;
    if by_name.is_some() {
        return Err(StoreError::Conflict("name".into()));
    }
    check_not_registered(client, &entry.owner, &entry.fingerprint).await?;
    execute(
        client,
        "INSERT INTO certificates
             (owner, name, fingerprint, der, no_cert_management, disabled, added_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &entry.owner,
            &entry.name,
            &entry.fingerprint.as_slice(),
            &entry.der,
            &entry.no_cert_management,
            &entry.disabled,
            &entry.added_at,
        ],
    )
    .await?;
    Ok(())
}

/// Deletes the invitations made by sessions of `owner` that logged in with
/// its certificate `name` (being disabled or revoked), in the caller's
/// transaction.
async fn end_invites_for_certificate(
    client: &impl GenericClient,
    owner: &str,
    name: &str,
) -> Result<(), StoreError> {
    execute(
        client,
        "DELETE FROM invites WHERE creator = $1 AND creator_certificate =
             (SELECT fingerprint FROM certificates WHERE owner = $1 AND name = $2)",
        &[&owner, &name],
    )
    .await?;
    Ok(())
}
