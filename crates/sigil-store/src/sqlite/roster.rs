//! Rosters in SQLite: items, their groups in their own table, and a version
//! counter on the account row.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::{SqliteStore, backend, begin_write, to_unsigned};
use crate::types::check_roster_item;
use crate::{Roster, RosterItem, RosterStore, StoreError, StoreFuture, Subscription};

impl RosterStore for SqliteStore {
    fn roster<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, Roster> {
        Box::pin(async move {
            // One read transaction: version, items and groups agree.
            let mut transaction = self.pool.begin().await.map_err(backend)?;
            let version = sqlx::query("SELECT roster_version FROM accounts WHERE jid = ?")
                .bind(owner)
                .fetch_optional(&mut *transaction)
                .await
                .map_err(backend)?;
            let Some(version) = version else {
                return Ok(Roster::default());
            };
            let version = to_unsigned(
                version.try_get("roster_version").map_err(backend)?,
                "roster version",
            )?;
            let rows = sqlx::query(
                "SELECT contact, name, subscription, ask, pending_in, approved
                 FROM roster_items WHERE owner = ? ORDER BY contact",
            )
            .bind(owner)
            .fetch_all(&mut *transaction)
            .await
            .map_err(backend)?;
            let mut items = rows
                .iter()
                .map(decode_item)
                .collect::<Result<Vec<_>, _>>()?;
            let groups = sqlx::query(
                "SELECT contact, name FROM roster_groups WHERE owner = ?
                 ORDER BY contact, position",
            )
            .bind(owner)
            .fetch_all(&mut *transaction)
            .await
            .map_err(backend)?;
            for row in &groups {
                let contact: String = row.try_get("contact").map_err(backend)?;
                // Items are sorted by contact, as the groups are.
                let index = items
                    .binary_search_by(|item| item.jid.as_str().cmp(&contact))
                    .map_err(|_| StoreError::Corrupt(format!("group of no item {contact:?}")))?;
                items[index]
                    .groups
                    .push(row.try_get("name").map_err(backend)?);
            }
            Ok(Roster { version, items })
        })
    }

    fn roster_item<'a>(
        &'a self,
        owner: &'a str,
        contact: &'a str,
    ) -> StoreFuture<'a, Option<RosterItem>> {
        Box::pin(async move {
            let mut transaction = self.pool.begin().await.map_err(backend)?;
            let row = sqlx::query(
                "SELECT contact, name, subscription, ask, pending_in, approved
                 FROM roster_items WHERE owner = ? AND contact = ?",
            )
            .bind(owner)
            .bind(contact)
            .fetch_optional(&mut *transaction)
            .await
            .map_err(backend)?;
            let Some(row) = row else {
                return Ok(None);
            };
            let mut item = decode_item(&row)?;
            item.groups = sqlx::query(
                "SELECT name FROM roster_groups WHERE owner = ? AND contact = ? ORDER BY position",
            )
            .bind(owner)
            .bind(contact)
            .fetch_all(&mut *transaction)
            .await
            .map_err(backend)?
            .iter()
            .map(|row| row.try_get("name").map_err(backend))
            .collect::<Result<_, _>>()?;
            Ok(Some(item))
        })
    }

    fn put_roster_item<'a>(&'a self, owner: &'a str, item: &'a RosterItem) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            check_roster_item(item)?;
            let mut transaction = begin_write(&self.pool).await?;
            let version = bump_version(&mut transaction, owner)
                .await?
                .ok_or(StoreError::NotFound)?;
            // An upsert rather than INSERT OR REPLACE: REPLACE deletes the
            // row first, and whether that cascades to the groups depends on
            // pragmas.
            sqlx::query(
                "INSERT INTO roster_items (owner, contact, name, subscription, ask, pending_in, approved)
                 VALUES (?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (owner, contact) DO UPDATE SET
                     name = excluded.name,
                     subscription = excluded.subscription,
                     ask = excluded.ask,
                     pending_in = excluded.pending_in,
                     approved = excluded.approved",
            )
            .bind(owner)
            .bind(&item.jid)
            .bind(&item.name)
            .bind(item.subscription.as_str())
            .bind(item.ask)
            .bind(item.pending_in)
            .bind(item.approved)
            .execute(&mut *transaction)
            .await
            .map_err(backend)?;
            sqlx::query("DELETE FROM roster_groups WHERE owner = ? AND contact = ?")
                .bind(owner)
                .bind(&item.jid)
                .execute(&mut *transaction)
                .await
                .map_err(backend)?;
            for (position, group) in (0_i64..).zip(&item.groups) {
                sqlx::query(
                    "INSERT INTO roster_groups (owner, contact, position, name) VALUES (?, ?, ?, ?)",
                )
                .bind(owner)
                .bind(&item.jid)
                .bind(position)
                .bind(group)
                .execute(&mut *transaction)
                .await
                .map_err(backend)?;
            }
            transaction.commit().await.map_err(backend)?;
            Ok(version)
        })
    }

    fn remove_roster_item<'a>(
        &'a self,
        owner: &'a str,
        contact: &'a str,
    ) -> StoreFuture<'a, Option<u64>> {
        Box::pin(async move {
            let mut transaction = begin_write(&self.pool).await?;
            sqlx::query("DELETE FROM roster_groups WHERE owner = ? AND contact = ?")
                .bind(owner)
                .bind(contact)
                .execute(&mut *transaction)
                .await
                .map_err(backend)?;
            let deleted = sqlx::query("DELETE FROM roster_items WHERE owner = ? AND contact = ?")
                .bind(owner)
                .bind(contact)
                .execute(&mut *transaction)
                .await
                .map_err(backend)?;
            if deleted.rows_affected() == 0 {
                // Nothing changed, so no new version: the transaction rolls
                // back on drop.
                return Ok(None);
            }
            let version = bump_version(&mut transaction, owner).await?;
            transaction.commit().await.map_err(backend)?;
            Ok(version)
        })
    }
}

/// Increments the roster version of `owner`: the new version, or `None`
/// without an account.
async fn bump_version(
    connection: &mut SqliteConnection,
    owner: &str,
) -> Result<Option<u64>, StoreError> {
    let row = sqlx::query(
        "UPDATE accounts SET roster_version = roster_version + 1 WHERE jid = ?
         RETURNING roster_version",
    )
    .bind(owner)
    .fetch_optional(connection)
    .await
    .map_err(backend)?;
    row.map(|row| {
        to_unsigned(
            row.try_get("roster_version").map_err(backend)?,
            "roster version",
        )
    })
    .transpose()
}

/// An item without its groups, which live in their own table.
fn decode_item(row: &SqliteRow) -> Result<RosterItem, StoreError> {
    let subscription: String = row.try_get("subscription").map_err(backend)?;
    Ok(RosterItem {
        jid: row.try_get("contact").map_err(backend)?,
        name: row.try_get("name").map_err(backend)?,
        subscription: Subscription::from_attribute(&subscription)
            .ok_or_else(|| StoreError::Corrupt(format!("subscription {subscription:?}")))?,
        ask: row.try_get("ask").map_err(backend)?,
        pending_in: row.try_get("pending_in").map_err(backend)?,
        approved: row.try_get("approved").map_err(backend)?,
        groups: Vec::new(),
    })
}
