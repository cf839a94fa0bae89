//! Invitations (XEP-0401) in SQLite.

use rusqlite::{Connection, OptionalExtension, Row};

use super::certificates::insert_certificate;
use super::{SqliteStore, account_exists, backend};
use crate::{
    Invite, InviteCreator, InviteKind, InviteStore, Redeemed, Redemption, StoreError, StoreFuture,
};

/// The columns `decode` reads, in every query that feeds it.
const COLUMNS: &str =
    "token_hash, kind, jid, device, creator, creator_certificate, created_at, expires_at";

impl InviteStore for SqliteStore {
    fn create_invite<'a>(
        &'a self,
        invite: &'a Invite,
        max_open: u64,
        now: i64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let invite = invite.clone();
            self.write(move |transaction| {
                let (kind, jid) = match &invite.kind {
                    InviteKind::Account { jid } => ("account", jid.as_deref()),
                    InviteKind::Device { account } => {
                        if !account_exists(transaction, account)? {
                            return Err(StoreError::NotFound);
                        }
                        ("device", Some(account.as_str()))
                    }
                };
                let creator = invite.creator.as_ref().map(|c| c.account.as_str());
                if let Some(maker) = &invite.creator
                    && !may_invite(transaction, maker)?
                {
                    return Err(StoreError::NotFound);
                }
                let open: i64 = transaction
                    .prepare_cached(
                        "SELECT count(*) FROM invites WHERE creator IS ? AND expires_at > ?",
                    )
                    .map_err(backend)?
                    .query_row((creator, now), |row| row.get(0))
                    .map_err(backend)?;
                if u64::try_from(open).unwrap_or(0) >= max_open {
                    return Err(StoreError::QuotaExceeded);
                }
                let inserted = transaction
                    .prepare_cached(
                        "INSERT INTO invites (token_hash, kind, jid, device, creator,
                             creator_certificate, created_at, expires_at)
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                         ON CONFLICT (token_hash) DO NOTHING",
                    )
                    .map_err(backend)?
                    .execute((
                        invite.token_hash.as_slice(),
                        kind,
                        jid,
                        invite.device.as_deref(),
                        creator,
                        invite
                            .creator
                            .as_ref()
                            .and_then(|c| c.certificate)
                            .as_ref()
                            .map(<[u8; 32]>::as_slice),
                        invite.created_at,
                        invite.expires_at,
                    ))
                    .map_err(backend)?;
                if inserted == 0 {
                    return Err(StoreError::Conflict("token".into()));
                }
                Ok(())
            })
            .await
        })
    }

    fn invite<'a>(&'a self, token_hash: &'a [u8; 32]) -> StoreFuture<'a, Option<Invite>> {
        Box::pin(async move { self.read(|connection| find(connection, token_hash)) })
    }

    fn invites<'a>(&'a self, account: Option<&'a str>, now: i64) -> StoreFuture<'a, Vec<Invite>> {
        Box::pin(async move {
            self.read(|connection| {
                let sql = format!(
                    "SELECT {COLUMNS} FROM invites WHERE expires_at > ?1
                     AND (?2 IS NULL OR creator = ?2 OR (kind = 'device' AND jid = ?2))
                     ORDER BY created_at, token_hash"
                );
                connection
                    .prepare_cached(&sql)
                    .map_err(backend)?
                    .query_map((now, account), decode)
                    .map_err(backend)?
                    .map(|row| row.map_err(backend).and_then(|decoded| decoded))
                    .collect()
            })
        })
    }

    fn revoke_invite<'a>(&'a self, token_hash: &'a [u8; 32]) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let token_hash = *token_hash;
            self.write(move |transaction| {
                let deleted = transaction
                    .prepare_cached("DELETE FROM invites WHERE token_hash = ?")
                    .map_err(backend)?
                    .execute([token_hash.as_slice()])
                    .map_err(backend)?;
                Ok(deleted > 0)
            })
            .await
        })
    }

    fn redeem_invite<'a>(
        &'a self,
        token_hash: &'a [u8; 32],
        redemption: &'a Redemption,
    ) -> StoreFuture<'a, Redeemed> {
        Box::pin(async move {
            let (token_hash, redemption) = (*token_hash, redemption.clone());
            self.write(move |transaction| redeem(transaction, &token_hash, &redemption))
                .await
        })
    }

    fn expire_invites(&self, now: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            self.write(move |transaction| {
                let deleted = transaction
                    .prepare_cached("DELETE FROM invites WHERE expires_at <= ?")
                    .map_err(backend)?
                    .execute([now])
                    .map_err(backend)?;
                Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
            })
            .await
        })
    }
}

/// The redemption, in the caller's write transaction; nothing is kept
/// unless all of it succeeds (the caller's transaction rolls back on an
/// error).
fn redeem(
    transaction: &Connection,
    token_hash: &[u8; 32],
    redemption: &Redemption,
) -> Result<Redeemed, StoreError> {
    let invite = find(transaction, token_hash)?.ok_or(StoreError::NotFound)?;
    let account = redemption.account.as_str();
    if redemption.certificate.owner != account {
        return Err(StoreError::NotFound);
    }
    let redeemed = match &invite.kind {
        InviteKind::Account { jid } if jid.as_deref().is_none_or(|jid| jid == account) => {
            Redeemed::AccountCreated
        }
        InviteKind::Device { account: target } if target == account => {
            if !account_exists(transaction, account)? {
                return Err(StoreError::NotFound);
            }
            Redeemed::DeviceAdded
        }
        // Not this invitation's account: as if there were none.
        _ => return Err(StoreError::NotFound),
    };
    if invite.expires_at <= redemption.checked_at {
        return Err(StoreError::Expired);
    }
    if redeemed == Redeemed::AccountCreated {
        // Passwordless: an account with no credentials, which only its
        // certificates log in to.
        let inserted = transaction
            .prepare_cached(
                "INSERT INTO accounts (jid, created_at) VALUES (?, ?)
                 ON CONFLICT (jid) DO NOTHING",
            )
            .map_err(backend)?
            .execute((account, redemption.certificate.added_at))
            .map_err(backend)?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists);
        }
    }
    insert_certificate(transaction, &redemption.certificate)?;
    transaction
        .prepare_cached("DELETE FROM invites WHERE token_hash = ?")
        .map_err(backend)?
        .execute([token_hash.as_slice()])
        .map_err(backend)?;
    Ok(redeemed)
}

/// The invitation whose token has this hash.
fn find(connection: &Connection, token_hash: &[u8; 32]) -> Result<Option<Invite>, StoreError> {
    connection
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM invites WHERE token_hash = ?"
        ))
        .map_err(backend)?
        .query_row([token_hash.as_slice()], decode)
        .optional()
        .map_err(backend)?
        .transpose()
}

/// Deletes the invitations `account` made or that add a device to it
/// (the account is going or being disabled), in the caller's
/// transaction.
pub(super) fn end_for_account(transaction: &Connection, account: &str) -> Result<(), StoreError> {
    transaction
        .prepare_cached("DELETE FROM invites WHERE creator = ?1 OR (kind = 'device' AND jid = ?1)")
        .map_err(backend)?
        .execute([account])
        .map_err(backend)?;
    Ok(())
}

/// Deletes the invitations made by sessions of `owner` that logged in
/// with its certificate `name` (being disabled or revoked), in the
/// caller's transaction.
pub(super) fn end_for_certificate(
    transaction: &Connection,
    owner: &str,
    name: &str,
) -> Result<(), StoreError> {
    transaction
        .prepare_cached(
            "DELETE FROM invites WHERE creator = ?1 AND creator_certificate =
                 (SELECT fingerprint FROM certificates WHERE owner = ?1 AND name = ?2)",
        )
        .map_err(backend)?
        .execute([owner, name])
        .map_err(backend)?;
    Ok(())
}

/// One row of `COLUMNS`; an undecodable one is [`StoreError::Corrupt`].
fn decode(row: &Row<'_>) -> rusqlite::Result<Result<Invite, StoreError>> {
    let hash = |bytes: Vec<u8>, what: &str| {
        <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| StoreError::Corrupt(format!("invitation {what} of {} bytes", bytes.len())))
    };
    let token_hash = match hash(row.get("token_hash")?, "hash") {
        Ok(token_hash) => token_hash,
        Err(error) => return Ok(Err(error)),
    };
    let jid: Option<String> = row.get("jid")?;
    let kind = match (row.get::<_, String>("kind")?.as_str(), jid) {
        ("account", jid) => InviteKind::Account { jid },
        ("device", Some(account)) => InviteKind::Device { account },
        (kind, _) => {
            return Ok(Err(StoreError::Corrupt(format!(
                "invitation kind '{kind}'"
            ))));
        }
    };
    let certificate = match row.get::<_, Option<Vec<u8>>>("creator_certificate")? {
        None => None,
        Some(bytes) => match hash(bytes, "creator certificate") {
            Ok(fingerprint) => Some(fingerprint),
            Err(error) => return Ok(Err(error)),
        },
    };
    let creator = row
        .get::<_, Option<String>>("creator")?
        .map(|account| InviteCreator {
            account,
            certificate,
        });
    Ok(Ok(Invite {
        token_hash,
        kind,
        device: row.get("device")?,
        creator,
        created_at: row.get("created_at")?,
        expires_at: row.get("expires_at")?,
    }))
}

/// Whether `creator` may make invitations now: its account exists and is
/// not disabled, and the certificate its session logged in with, if any,
/// is still registered and enabled. Checked in the transaction that
/// makes the invitation, so one made as the certificate is disabled or
/// revoked does not outlive it.
fn may_invite(connection: &Connection, creator: &InviteCreator) -> Result<bool, StoreError> {
    let account = connection
        .prepare_cached("SELECT 1 FROM accounts WHERE jid = ? AND disabled = 0")
        .map_err(backend)?
        .query_row([&creator.account], |_| Ok(()))
        .optional()
        .map_err(backend)?;
    let Some(()) = account else {
        return Ok(false);
    };
    let Some(fingerprint) = creator.certificate else {
        return Ok(true);
    };
    let certificate = connection
        .prepare_cached(
            "SELECT 1 FROM certificates WHERE owner = ? AND fingerprint = ? AND disabled = 0",
        )
        .map_err(backend)?
        .query_row((&creator.account, fingerprint.as_slice()), |_| Ok(()))
        .optional()
        .map_err(backend)?;
    Ok(certificate.is_some())
}
