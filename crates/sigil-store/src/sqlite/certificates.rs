//! Client certificates (XEP-0257) in SQLite.

use rusqlite::{OptionalExtension, Row};

use super::{SqliteStore, account_exists, backend};

/// The columns `decode_certificate` reads, in every query that feeds it.
macro_rules! certificate_columns {
    () => {
        "owner, name, fingerprint, der, no_cert_management, disabled, added_at"
    };
}
use crate::{
    CertificateEntry, CertificateLookup, CertificateStore, RevokedCertificate, StoreError,
    StoreFuture,
};

impl CertificateStore for SqliteStore {
    fn add_certificate<'a>(&'a self, entry: &'a CertificateEntry) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let entry = entry.clone();
            self.write(move |transaction| insert_certificate(transaction, &entry))
                .await
        })
    }

    fn certificates<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, Vec<CertificateEntry>> {
        Box::pin(async move {
            self.read(|connection| {
                connection
                    .prepare_cached(concat!(
                        "SELECT ",
                        certificate_columns!(),
                        " FROM certificates WHERE owner = ? ORDER BY name"
                    ))
                    .map_err(backend)?
                    .query_map([owner], decode_certificate)
                    .map_err(backend)?
                    .map(|row| row.map_err(backend).and_then(|decoded| decoded))
                    .collect()
            })
        })
    }

    fn certificate_by_fingerprint<'a>(
        &'a self,
        owner: &'a str,
        fingerprint: &'a [u8; 32],
    ) -> StoreFuture<'a, Option<CertificateEntry>> {
        Box::pin(async move {
            self.read(|connection| {
                connection
                    .prepare_cached(concat!(
                        "SELECT ",
                        certificate_columns!(),
                        " FROM certificates WHERE owner = ? AND fingerprint = ?"
                    ))
                    .map_err(backend)?
                    .query_row((owner, fingerprint.as_slice()), decode_certificate)
                    .optional()
                    .map_err(backend)?
                    .transpose()
            })
        })
    }

    fn certificate_lookup<'a>(
        &'a self,
        owner: &'a str,
        fingerprint: &'a [u8; 32],
    ) -> StoreFuture<'a, Option<CertificateLookup>> {
        Box::pin(async move {
            self.read(|connection| {
                // One statement, so one snapshot.
                connection
                    .prepare_cached(
                        "SELECT a.disabled AS account_disabled,
                                EXISTS (SELECT 1 FROM revoked_certificates v
                                        WHERE v.owner = a.jid AND v.fingerprint = ?1) AS revoked,
                                c.owner, c.name,
                                coalesce(n.fingerprint, c.fingerprint) AS fingerprint,
                                coalesce(n.der, c.der) AS der,
                                c.no_cert_management, c.disabled, c.added_at,
                                n.owner IS NOT NULL AS renewal,
                                (SELECT l.at FROM certificate_logins l
                                 WHERE l.owner = c.owner AND l.name = c.name) AS last_login_at
                         FROM accounts a
                         LEFT JOIN certificate_renewals n
                             ON n.owner = a.jid AND n.fingerprint = ?1
                         LEFT JOIN certificates c ON c.owner = a.jid
                             AND (c.fingerprint = ?1 OR c.name = n.name)
                         WHERE a.jid = ?2",
                    )
                    .map_err(backend)?
                    .query_row((fingerprint.as_slice(), owner), |row| {
                        let account_disabled: bool = row.get("account_disabled")?;
                        let revoked: bool = row.get("revoked")?;
                        let registered: Option<String> = row.get("owner")?;
                        let certificate = match registered {
                            Some(_) => Some(decode_certificate(row)?),
                            None => None,
                        };
                        let renewal: bool = row.get("renewal")?;
                        let last_login_at: Option<i64> = row.get("last_login_at")?;
                        Ok((
                            account_disabled,
                            revoked,
                            certificate,
                            (renewal, last_login_at),
                        ))
                    })
                    .optional()
                    .map_err(backend)?
                    .map(
                        |(account_disabled, revoked, certificate, (renewal, last_login_at))| {
                            let certificate = certificate.transpose()?;
                            Ok(CertificateLookup {
                                account_disabled,
                                renewal: renewal && certificate.is_some(),
                                revoked,
                                certificate,
                                last_login_at,
                            })
                        },
                    )
                    .transpose()
            })
        })
    }

    fn renew_certificate<'a>(
        &'a self,
        next: &'a CertificateEntry,
        replaces: Option<&'a [u8; 32]>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let (next, replaces) = (next.clone(), replaces.copied());
            self.write(move |transaction| {
                let current: Option<Vec<u8>> = transaction
                    .prepare_cached(
                        "SELECT fingerprint FROM certificates WHERE owner = ? AND name = ?",
                    )
                    .map_err(backend)?
                    .query_row((&next.owner, &next.name), |row| row.get(0))
                    .optional()
                    .map_err(backend)?;
                let device = match (current, replaces) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(current), Some(replaces)) => current == replaces,
                };
                if !device {
                    return Err(StoreError::NotFound);
                }
                check_not_revoked(transaction, &next.owner, &next.fingerprint)?;
                check_not_registered(transaction, &next.owner, &next.fingerprint)?;
                transaction
                    .prepare_cached(
                        "INSERT OR REPLACE INTO certificate_renewals
                             (owner, name, fingerprint, der, added_at)
                         VALUES (?, ?, ?, ?, ?)",
                    )
                    .map_err(backend)?
                    .execute((
                        &next.owner,
                        &next.name,
                        next.fingerprint.as_slice(),
                        &next.der,
                        next.added_at,
                    ))
                    .map_err(backend)?;
                Ok(())
            })
            .await
        })
    }

    fn certificate_renewals<'a>(
        &'a self,
        owner: &'a str,
    ) -> StoreFuture<'a, Vec<CertificateEntry>> {
        Box::pin(async move {
            self.read(|connection| {
                connection
                    .prepare_cached(
                        "SELECT n.owner, n.name, n.fingerprint, n.der,
                                c.no_cert_management, c.disabled, n.added_at
                         FROM certificate_renewals n
                         JOIN certificates c ON c.owner = n.owner AND c.name = n.name
                         WHERE n.owner = ? ORDER BY n.name",
                    )
                    .map_err(backend)?
                    .query_map([owner], decode_certificate)
                    .map_err(backend)?
                    .map(|row| row.map_err(backend).and_then(|decoded| decoded))
                    .collect()
            })
        })
    }

    fn promote_certificate<'a>(
        &'a self,
        owner: &'a str,
        fingerprint: &'a [u8; 32],
    ) -> StoreFuture<'a, Option<[u8; 32]>> {
        Box::pin(async move {
            let (owner, fingerprint) = (owner.to_owned(), *fingerprint);
            let promoted = self
                .write(move |transaction| {
                    let next = transaction
                        .prepare_cached(
                            "DELETE FROM certificate_renewals WHERE owner = ? AND fingerprint = ?
                         RETURNING name, der",
                        )
                        .map_err(backend)?
                        .query_row((&owner, fingerprint.as_slice()), |row| {
                            Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
                        })
                        .optional()
                        .map_err(backend)?;
                    let Some((name, der)) = next else {
                        return Ok(None);
                    };
                    let (old, disabled): (Vec<u8>, bool) = transaction
                        .prepare_cached(
                            "SELECT fingerprint, disabled FROM certificates
                         WHERE owner = ? AND name = ?",
                        )
                        .map_err(backend)?
                        .query_row((&owner, &name), |row| Ok((row.get(0)?, row.get(1)?)))
                        .map_err(backend)?;
                    if disabled {
                        // Not promoted: the delete above is undone.
                        return Err(StoreError::Conflict("disabled".into()));
                    }
                    let old = fingerprint_array(&old)?;
                    transaction
                        .prepare_cached(
                            "DELETE FROM expiry_warnings WHERE owner = ? AND fingerprint = ?",
                        )
                        .map_err(backend)?
                        .execute((&owner, old.as_slice()))
                        .map_err(backend)?;
                    transaction
                        .prepare_cached(
                            "UPDATE certificates SET fingerprint = ?, der = ?
                         WHERE owner = ? AND name = ?",
                        )
                        .map_err(backend)?
                        .execute((fingerprint.as_slice(), &der, &owner, &name))
                        .map_err(backend)?;
                    transaction
                        .prepare_cached(
                            "UPDATE invites SET creator_certificate = ?
                         WHERE creator = ? AND creator_certificate = ?",
                        )
                        .map_err(backend)?
                        .execute((fingerprint.as_slice(), &owner, old.as_slice()))
                        .map_err(backend)?;
                    super::tokens::follow_renewal(transaction, &owner, &old, &fingerprint)?;
                    Ok(Some(old))
                })
                .await;
            match promoted {
                // The device is disabled: nothing changed.
                Err(StoreError::Conflict(what)) if what == "disabled" => Ok(None),
                promoted => promoted,
            }
        })
    }

    fn record_certificate_login<'a>(
        &'a self,
        owner: &'a str,
        name: &'a str,
        at: i64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let (owner, name) = (owner.to_owned(), name.to_owned());
            self.write(move |transaction| {
                transaction
                    .prepare_cached(
                        "INSERT INTO certificate_logins (owner, name, at)
                         SELECT owner, name, ?3 FROM certificates WHERE owner = ?1 AND name = ?2
                         ON CONFLICT (owner, name) DO UPDATE SET at = excluded.at
                         WHERE excluded.at - certificate_logins.at >= 3600",
                    )
                    .map_err(backend)?
                    .execute((&owner, &name, at))
                    .map_err(backend)?;
                Ok(())
            })
            .await
        })
    }

    fn certificate_logins<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, Vec<(String, i64)>> {
        Box::pin(async move {
            self.read(|connection| {
                connection
                    .prepare_cached(
                        "SELECT name, at FROM certificate_logins WHERE owner = ? ORDER BY name",
                    )
                    .map_err(backend)?
                    .query_map([owner], |row| Ok((row.get(0)?, row.get(1)?)))
                    .map_err(backend)?
                    .map(|row| row.map_err(backend))
                    .collect()
            })
        })
    }

    fn disable_certificate<'a>(&'a self, owner: &'a str, name: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let (owner, name) = (owner.to_owned(), name.to_owned());
            self.write(move |transaction| {
                // What its sessions made ends with it.
                super::invites::end_for_certificate(transaction, &owner, &name)?;
                super::tokens::end_for_certificate(transaction, &owner, &name)?;
                let updated = transaction
                    .prepare_cached(
                        "UPDATE certificates SET disabled = 1 WHERE owner = ? AND name = ?",
                    )
                    .map_err(backend)?
                    .execute((&owner, &name))
                    .map_err(backend)?;
                Ok(updated > 0)
            })
            .await
        })
    }

    fn enable_certificate<'a>(&'a self, owner: &'a str, name: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let (owner, name) = (owner.to_owned(), name.to_owned());
            self.write(move |transaction| {
                let updated = transaction
                    .prepare_cached(
                        "UPDATE certificates SET disabled = 0 WHERE owner = ? AND name = ?",
                    )
                    .map_err(backend)?
                    .execute((&owner, &name))
                    .map_err(backend)?;
                Ok(updated > 0)
            })
            .await
        })
    }

    fn revoke_certificate<'a>(
        &'a self,
        owner: &'a str,
        name: &'a str,
        revoked_at: i64,
    ) -> StoreFuture<'a, Option<CertificateEntry>> {
        Box::pin(async move {
            let (owner, name) = (owner.to_owned(), name.to_owned());
            self.write(move |transaction| {
                // What its sessions made ends with it.
                super::invites::end_for_certificate(transaction, &owner, &name)?;
                super::tokens::end_for_certificate(transaction, &owner, &name)?;
                // Its next certificate is revoked with it (the delete
                // below takes the renewal row with the device's).
                transaction
                    .prepare_cached(
                        "INSERT OR REPLACE INTO revoked_certificates
                             (owner, fingerprint, name, der, revoked_at)
                         SELECT owner, fingerprint, name, der, ?3 FROM certificate_renewals
                         WHERE owner = ?1 AND name = ?2",
                    )
                    .map_err(backend)?
                    .execute((&owner, &name, revoked_at))
                    .map_err(backend)?;
                let Some(entry) = transaction
                    .prepare_cached(concat!(
                        "DELETE FROM certificates WHERE owner = ? AND name = ? RETURNING ",
                        certificate_columns!()
                    ))
                    .map_err(backend)?
                    .query_row((&owner, &name), decode_certificate)
                    .optional()
                    .map_err(backend)?
                    .transpose()?
                else {
                    return Ok(None);
                };
                transaction
                    .prepare_cached(
                        "DELETE FROM expiry_warnings WHERE owner = ? AND fingerprint = ?",
                    )
                    .map_err(backend)?
                    .execute((&entry.owner, entry.fingerprint.as_slice()))
                    .map_err(backend)?;
                transaction
                    .prepare_cached(
                        "INSERT OR REPLACE INTO revoked_certificates
                             (owner, fingerprint, name, der, revoked_at)
                         VALUES (?, ?, ?, ?, ?)",
                    )
                    .map_err(backend)?
                    .execute((
                        &entry.owner,
                        entry.fingerprint.as_slice(),
                        &entry.name,
                        &entry.der,
                        revoked_at,
                    ))
                    .map_err(backend)?;
                Ok(Some(entry))
            })
            .await
        })
    }

    fn revoked_certificates<'a>(
        &'a self,
        owner: &'a str,
    ) -> StoreFuture<'a, Vec<RevokedCertificate>> {
        Box::pin(async move {
            self.read(|connection| {
                connection
                    .prepare_cached(
                        "SELECT owner, name, fingerprint, der, revoked_at
                         FROM revoked_certificates WHERE owner = ?
                         ORDER BY revoked_at, name, fingerprint",
                    )
                    .map_err(backend)?
                    .query_map([owner], |row| {
                        let fingerprint: Vec<u8> = row.get("fingerprint")?;
                        Ok((
                            fingerprint,
                            RevokedCertificate {
                                owner: row.get("owner")?,
                                name: row.get("name")?,
                                fingerprint: [0; 32],
                                der: row.get("der")?,
                                revoked_at: row.get("revoked_at")?,
                            },
                        ))
                    })
                    .map_err(backend)?
                    .map(|row| {
                        let (fingerprint, mut revoked) = row.map_err(backend)?;
                        revoked.fingerprint = fingerprint_array(&fingerprint)?;
                        Ok(revoked)
                    })
                    .collect()
            })
        })
    }

    fn forget_revocations<'a>(
        &'a self,
        owner: &'a str,
        fingerprints: &'a [[u8; 32]],
    ) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let owner = owner.to_owned();
            let fingerprints = fingerprints.to_vec();
            self.write(move |transaction| {
                let mut statement = transaction
                    .prepare_cached(
                        "DELETE FROM revoked_certificates WHERE owner = ? AND fingerprint = ?",
                    )
                    .map_err(backend)?;
                let mut forgotten = 0;
                for fingerprint in &fingerprints {
                    forgotten += statement
                        .execute((&owner, &fingerprint[..]))
                        .map_err(backend)? as u64;
                }
                Ok(forgotten)
            })
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
            self.read(|connection| {
                connection
                    .prepare_cached(concat!(
                        "SELECT ",
                        certificate_columns!(),
                        " FROM certificates WHERE ?1 OR (owner, name) > (?2, ?3)
                         ORDER BY owner, name LIMIT ?4"
                    ))
                    .map_err(backend)?
                    .query_map(
                        (first, owner, name, super::to_sql_integer(limit)),
                        decode_certificate,
                    )
                    .map_err(backend)?
                    .map(|row| row.map_err(backend).and_then(|decoded| decoded))
                    .collect()
            })
        })
    }

    fn mark_expiry_warned<'a>(
        &'a self,
        owner: &'a str,
        fingerprint: &'a [u8; 32],
        at: i64,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let (owner, fingerprint) = (owner.to_owned(), *fingerprint);
            self.write(move |transaction| {
                let marked = transaction
                    .prepare_cached(
                        "INSERT INTO expiry_warnings (owner, fingerprint, warned_at)
                         SELECT owner, fingerprint, ?3 FROM certificates
                         WHERE owner = ?1 AND fingerprint = ?2
                         ON CONFLICT (owner, fingerprint) DO NOTHING",
                    )
                    .map_err(backend)?
                    .execute((&owner, fingerprint.as_slice(), at))
                    .map_err(backend)?;
                Ok(marked > 0)
            })
            .await
        })
    }
}

fn fingerprint_array(bytes: &[u8]) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| StoreError::Corrupt(format!("fingerprint of {} bytes", bytes.len())))
}

/// Decodes a certificate row; the outer error is SQLite's, the inner one a
/// stored value this code does not accept.
fn decode_certificate(row: &Row<'_>) -> rusqlite::Result<Result<CertificateEntry, StoreError>> {
    let fingerprint: Vec<u8> = row.get("fingerprint")?;
    let fingerprint = match fingerprint_array(&fingerprint) {
        Ok(fingerprint) => fingerprint,
        Err(error) => return Ok(Err(error)),
    };
    Ok(Ok(CertificateEntry {
        owner: row.get("owner")?,
        name: row.get("name")?,
        fingerprint,
        der: row.get("der")?,
        no_cert_management: row.get("no_cert_management")?,
        disabled: row.get("disabled")?,
        added_at: row.get("added_at")?,
    }))
}

/// [`StoreError::Revoked`] if `owner` revoked `fingerprint`.
fn check_not_revoked(
    transaction: &rusqlite::Connection,
    owner: &str,
    fingerprint: &[u8; 32],
) -> Result<(), StoreError> {
    let revoked = transaction
        .prepare_cached("SELECT 1 FROM revoked_certificates WHERE owner = ? AND fingerprint = ?")
        .map_err(backend)?
        .exists((owner, fingerprint.as_slice()))
        .map_err(backend)?;
    match revoked {
        true => Err(StoreError::Revoked),
        false => Ok(()),
    }
}

/// [`StoreError::Conflict`]`("fingerprint")` if `fingerprint` is
/// registered to `owner` as a device's certificate or next certificate.
fn check_not_registered(
    transaction: &rusqlite::Connection,
    owner: &str,
    fingerprint: &[u8; 32],
) -> Result<(), StoreError> {
    let registered = transaction
        .prepare_cached(
            "SELECT 1 FROM certificates WHERE owner = ?1 AND fingerprint = ?2
             UNION ALL
             SELECT 1 FROM certificate_renewals WHERE owner = ?1 AND fingerprint = ?2",
        )
        .map_err(backend)?
        .exists((owner, fingerprint.as_slice()))
        .map_err(backend)?;
    if registered {
        return Err(StoreError::Conflict("fingerprint".into()));
    }
    Ok(())
}

/// Registers `entry`, checking each rule under the write lock so that a
/// conflict names its field exactly rather than relaying a constraint
/// message (see [`CertificateStore::add_certificate`]).
pub(super) fn insert_certificate(
    transaction: &rusqlite::Connection,
    entry: &CertificateEntry,
) -> Result<(), StoreError> {
    if !account_exists(transaction, &entry.owner)? {
        return Err(StoreError::NotFound);
    }
    check_not_revoked(transaction, &entry.owner, &entry.fingerprint)?;
    let by_name = transaction
        .prepare_cached("SELECT 1 FROM certificates WHERE owner = ? AND name = ?")
        .map_err(backend)?
        .exists((&entry.owner, &entry.name))
        .map_err(backend)?;
    if by_name {
        return Err(StoreError::Conflict("name".into()));
    }
    check_not_registered(transaction, &entry.owner, &entry.fingerprint)?;
    transaction
        .prepare_cached(
            "INSERT INTO certificates
                 (owner, name, fingerprint, der, no_cert_management, disabled, added_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .map_err(backend)?
        .execute((
            &entry.owner,
            &entry.name,
            entry.fingerprint.as_slice(),
            &entry.der,
            entry.no_cert_management,
            entry.disabled,
            entry.added_at,
        ))
        .map_err(backend)?;
    Ok(())
}
