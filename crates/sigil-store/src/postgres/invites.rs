//! Invitations (XEP-0401) in PostgreSQL.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::certificates::insert_certificate;
use super::{PostgresStore, backend, execute, lock_account, query, query_one, query_opt};
use crate::{
    Invite, InviteCreator, InviteKind, InviteStore, Redeemed, Redemption, StoreError, StoreFuture,
};

/// The columns `decode` reads, in every query that feeds it.
const COLUMNS: &str =
    "token_hash, kind, jid, device, creator, creator_certificate, created_at, expires_at";

/// The advisory lock the operator's invitations are counted under (they
/// have no account row to lock): "invites" in ASCII.
const OPERATOR_INVITES_LOCK: i64 = 0x0069_6e76_6974_6573;

impl InviteStore for PostgresStore {
    fn create_invite<'a>(
        &'a self,
        invite: &'a Invite,
        max_open: u64,
        now: i64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(backend)?;
            // The accounts involved (the creator's, and the one a device
            // invitation adds to), locked in JID order; for the operator's
            // invitations, which have no creator row, an advisory lock:
            // invitations are counted and made with nothing else making
            // or ending them.
            let target = match &invite.kind {
                InviteKind::Account { .. } => None,
                InviteKind::Device { account } => Some(account.as_str()),
            };
            let creator = invite.creator.as_ref().map(|c| c.account.as_str());
            let mut accounts: Vec<&str> = creator.into_iter().chain(target).collect();
            accounts.sort_unstable();
            accounts.dedup();
            for account in accounts {
                if !lock_account(&transaction, account).await? {
                    return Err(StoreError::NotFound);
                }
            }
            match &invite.creator {
                Some(maker) => {
                    if !may_invite(&transaction, maker).await? {
                        return Err(StoreError::NotFound);
                    }
                }
                None => {
                    execute(
                        &transaction,
                        "SELECT pg_advisory_xact_lock($1)",
                        &[&OPERATOR_INVITES_LOCK],
                    )
                    .await?;
                }
            }
            let (kind, jid) = match target {
                None => ("account", invite_jid(&invite.kind)),
                Some(account) => ("device", Some(account)),
            };
            // (Two statements, so that each uses an index.)
            let open: i64 = match creator {
                Some(creator) => query_one(
                    &transaction,
                    "SELECT count(*) FROM invites WHERE creator = $1 AND expires_at > $2",
                    &[&creator, &now],
                )
                .await?
                .get(0),
                None => query_one(
                    &transaction,
                    "SELECT count(*) FROM invites WHERE creator IS NULL AND expires_at > $1",
                    &[&now],
                )
                .await?
                .get(0),
            };
            if u64::try_from(open).unwrap_or(0) >= max_open {
                return Err(StoreError::QuotaExceeded);
            }
            let certificate = invite
                .creator
                .as_ref()
                .and_then(|c| c.certificate)
                .map(|fingerprint| fingerprint.to_vec());
            let inserted = execute(
                &transaction,
                "INSERT INTO invites (token_hash, kind, jid, device, creator,
                     creator_certificate, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (token_hash) DO NOTHING",
                &[
                    &invite.token_hash.as_slice(),
                    &kind,
                    &jid,
                    &invite.device.as_deref(),
                    &creator,
                    &certificate,
                    &invite.created_at,
                    &invite.expires_at,
                ],
            )
            .await?;
            if inserted == 0 {
                return Err(StoreError::Conflict("token".into()));
            }
            transaction.commit().await.map_err(backend)
        })
    }

    fn invite<'a>(&'a self, token_hash: &'a [u8; 32]) -> StoreFuture<'a, Option<Invite>> {
        Box::pin(async move {
            let client = self.client().await?;
            find(&client, token_hash, false).await
        })
    }

    fn invites<'a>(&'a self, account: Option<&'a str>, now: i64) -> StoreFuture<'a, Vec<Invite>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = query(
                &client,
                &format!(
                    "SELECT {COLUMNS} FROM invites WHERE expires_at > $1
                     AND ($2::text IS NULL OR creator = $2 OR (kind = 'device' AND jid = $2))
                     ORDER BY created_at, token_hash"
                ),
                &[&now, &account],
            )
            .await?;
            rows.iter().map(decode).collect()
        })
    }

    fn revoke_invite<'a>(&'a self, token_hash: &'a [u8; 32]) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let client = self.client().await?;
            let deleted = execute(
                &client,
                "DELETE FROM invites WHERE token_hash = $1",
                &[&token_hash.as_slice()],
            )
            .await?;
            Ok(deleted > 0)
        })
    }

    fn redeem_invite<'a>(
        &'a self,
        token_hash: &'a [u8; 32],
        redemption: &'a Redemption,
    ) -> StoreFuture<'a, Redeemed> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(backend)?;
            // Nothing is kept unless all of it succeeds: an error returns
            // before the commit, and the transaction rolls back.
            let redeemed = redeem(&transaction, token_hash, redemption).await?;
            transaction.commit().await.map_err(backend)?;
            Ok(redeemed)
        })
    }

    fn expire_invites(&self, now: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let client = self.client().await?;
            execute(
                &client,
                "DELETE FROM invites WHERE expires_at <= $1",
                &[&now],
            )
            .await
        })
    }
}

/// The redemption, in the caller's transaction.
async fn redeem(
    transaction: &impl GenericClient,
    token_hash: &[u8; 32],
    redemption: &Redemption,
) -> Result<Redeemed, StoreError> {
    let account = redemption.account.as_str();
    if redemption.certificate.owner != account {
        return Err(StoreError::NotFound);
    }
    // The account's row before the invitation's, in the order every other
    // writer takes them (an account locks before its invitations go), then
    // the invitation locked and read again: of two redemptions of one
    // invitation, one gets it.
    lock_account(transaction, account).await?;
    let invite = find(transaction, token_hash, true)
        .await?
        .ok_or(StoreError::NotFound)?;
    let redeemed = match &invite.kind {
        InviteKind::Account { jid } if jid.as_deref().is_none_or(|jid| jid == account) => {
            Redeemed::AccountCreated
        }
        InviteKind::Device { account: target } if target == account => {
            if !lock_account(transaction, account).await? {
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
        let inserted = execute(
            transaction,
            "INSERT INTO accounts (jid, created_at) VALUES ($1, $2)
             ON CONFLICT (jid) DO NOTHING",
            &[&account, &redemption.certificate.added_at],
        )
        .await?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists);
        }
    }
    insert_certificate(transaction, &redemption.certificate).await?;
    execute(
        transaction,
        "DELETE FROM invites WHERE token_hash = $1",
        &[&token_hash.as_slice()],
    )
    .await?;
    Ok(redeemed)
}

/// The invitation whose token has this hash (its row locked for the
/// caller's transaction with `lock`).
async fn find(
    client: &impl GenericClient,
    token_hash: &[u8; 32],
    lock: bool,
) -> Result<Option<Invite>, StoreError> {
    let sql = if lock {
        format!("SELECT {COLUMNS} FROM invites WHERE token_hash = $1 FOR UPDATE")
    } else {
        format!("SELECT {COLUMNS} FROM invites WHERE token_hash = $1")
    };
    query_opt(client, &sql, &[&token_hash.as_slice()])
        .await?
        .map(|row| decode(&row))
        .transpose()
}

/// One row of `COLUMNS`; an undecodable one is [`StoreError::Corrupt`].
fn decode(row: &Row) -> Result<Invite, StoreError> {
    let hash = |bytes: Vec<u8>, what: &str| {
        <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| StoreError::Corrupt(format!("invitation {what} of {} bytes", bytes.len())))
    };
    let token_hash = hash(row.try_get("token_hash").map_err(backend)?, "hash")?;
    let jid: Option<String> = row.try_get("jid").map_err(backend)?;
    let kind: String = row.try_get("kind").map_err(backend)?;
    let kind = match (kind.as_str(), jid) {
        ("account", jid) => InviteKind::Account { jid },
        ("device", Some(account)) => InviteKind::Device { account },
        (kind, _) => return Err(StoreError::Corrupt(format!("invitation kind '{kind}'"))),
    };
    let certificate = row
        .try_get::<_, Option<Vec<u8>>>("creator_certificate")
        .map_err(backend)?
        .map(|bytes| hash(bytes, "creator certificate"))
        .transpose()?;
    let creator = row
        .try_get::<_, Option<String>>("creator")
        .map_err(backend)?
        .map(|account| InviteCreator {
            account,
            certificate,
        });
    Ok(Invite {
        token_hash,
        kind,
        device: row.try_get("device").map_err(backend)?,
        creator,
        created_at: row.try_get("created_at").map_err(backend)?,
        expires_at: row.try_get("expires_at").map_err(backend)?,
    })
}

/// The account an account invitation fixes, if any.
fn invite_jid(kind: &InviteKind) -> Option<&str> {
    match kind {
        InviteKind::Account { jid } => jid.as_deref(),
        InviteKind::Device { account } => Some(account),
    }
}

/// Whether `creator` may make invitations now: its account exists and is
/// not disabled (its row is locked for the transaction), and the
/// certificate its session logged in with, if any, is still registered
/// and enabled.
async fn may_invite(
    client: &impl GenericClient,
    creator: &InviteCreator,
) -> Result<bool, StoreError> {
    let account = query_opt(
        client,
        "SELECT 1 FROM accounts WHERE jid = $1 AND NOT disabled",
        &[&creator.account],
    )
    .await?;
    if account.is_none() {
        return Ok(false);
    }
    let Some(fingerprint) = creator.certificate else {
        return Ok(true);
    };
    let certificate = query_opt(
        client,
        "SELECT 1 FROM certificates WHERE owner = $1 AND fingerprint = $2 AND NOT disabled",
        &[&creator.account, &fingerprint.as_slice()],
    )
    .await?;
    Ok(certificate.is_some())
}
