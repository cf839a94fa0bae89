//! Rosters in PostgreSQL: items, their groups in their own table, and a
//! version counter on the account row.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{PostgresStore, backend, execute, query, query_opt, to_unsigned};
use crate::types::check_roster_item;
use crate::{Roster, RosterItem, RosterStore, StoreError, StoreFuture, Subscription};

/// An item's columns and its groups in order, as one row.
const ITEM: &str = "i.contact, i.name, i.subscription, i.ask, i.pending_in, i.approved,
     ARRAY(SELECT g.name FROM roster_groups g
           WHERE g.owner = i.owner AND g.contact = i.contact ORDER BY g.position) AS groups";

impl RosterStore for PostgresStore {
    fn roster<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, Roster> {
        Box::pin(async move {
            let client = self.client().await?;
            // One statement, so version, items and groups agree.
            let rows = query(
                &client,
                &format!(
                    "SELECT a.roster_version, {ITEM}
                     FROM accounts a LEFT JOIN roster_items i ON i.owner = a.jid
                     WHERE a.jid = $1 ORDER BY i.contact"
                ),
                &[&owner],
            )
            .await?;
            let Some(first) = rows.first() else {
                return Ok(Roster::default());
            };
            let version = to_unsigned(
                first.try_get("roster_version").map_err(backend)?,
                "roster version",
            )?;
            let mut items = Vec::with_capacity(rows.len());
            for row in &rows {
                if row
                    .try_get::<_, Option<String>>("contact")
                    .map_err(backend)?
                    .is_some()
                {
                    items.push(decode_item(row)?);
                }
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
            let client = self.client().await?;
            query_opt(
                &client,
                &format!("SELECT {ITEM} FROM roster_items i WHERE i.owner = $1 AND i.contact = $2"),
                &[&owner, &contact],
            )
            .await?
            .map(|row| decode_item(&row))
            .transpose()
        })
    }

    fn put_roster_item<'a>(&'a self, owner: &'a str, item: &'a RosterItem) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            check_roster_item(item)?;
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(backend)?;
            // First: the account row is locked until the commit.
            let version = bump_version(&transaction, owner)
                .await?
                .ok_or(StoreError::NotFound)?;
            execute(
                &transaction,
                "INSERT INTO roster_items
                     (owner, contact, name, subscription, ask, pending_in, approved)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (owner, contact) DO UPDATE SET
                     name = excluded.name,
                     subscription = excluded.subscription,
                     ask = excluded.ask,
                     pending_in = excluded.pending_in,
                     approved = excluded.approved",
                &[
                    &owner,
                    &item.jid,
                    &item.name,
                    &item.subscription.as_str(),
                    &item.ask,
                    &item.pending_in,
                    &item.approved,
                ],
            )
            .await?;
            execute(
                &transaction,
                "DELETE FROM roster_groups WHERE owner = $1 AND contact = $2",
                &[&owner, &item.jid],
            )
            .await?;
            if !item.groups.is_empty() {
                execute(
                    &transaction,
                    "INSERT INTO roster_groups (owner, contact, position, name)
                     SELECT $1, $2, g.position - 1, g.name
                     FROM unnest($3::text[]) WITH ORDINALITY AS g(name, position)",
                    &[&owner, &item.jid, &item.groups],
                )
                .await?;
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
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(backend)?;
            // The version first, which locks the account row before the
            // item's, in the order every writer takes them; undone (with
            // the transaction) if there is no such item.
            let Some(version) = bump_version(&transaction, owner).await? else {
                return Ok(None);
            };
            // The groups go with the item (ON DELETE CASCADE).
            let deleted = execute(
                &transaction,
                "DELETE FROM roster_items WHERE owner = $1 AND contact = $2",
                &[&owner, &contact],
            )
            .await?;
            if deleted == 0 {
                // Nothing changed, so no new version.
                return Ok(None);
            }
            transaction.commit().await.map_err(backend)?;
            Ok(Some(version))
        })
    }
}

/// Increments the roster version of `owner` (locking its account row): the
/// new version, or `None` without an account.
async fn bump_version(client: &impl GenericClient, owner: &str) -> Result<Option<u64>, StoreError> {
    query_opt(
        client,
        "UPDATE accounts SET roster_version = roster_version + 1 WHERE jid = $1
         RETURNING roster_version",
        &[&owner],
    )
    .await?
    .map(|row| to_unsigned(row.get(0), "roster version"))
    .transpose()
}

/// An item with its groups; a stored value this code does not accept is
/// [`StoreError::Corrupt`].
fn decode_item(row: &Row) -> Result<RosterItem, StoreError> {
    let subscription: String = row.try_get("subscription").map_err(backend)?;
    Ok(RosterItem {
        jid: row.try_get("contact").map_err(backend)?,
        name: row.try_get("name").map_err(backend)?,
        subscription: Subscription::from_attribute(&subscription)
            .ok_or_else(|| StoreError::Corrupt(format!("subscription {subscription:?}")))?,
        ask: row.try_get("ask").map_err(backend)?,
        pending_in: row.try_get("pending_in").map_err(backend)?,
        approved: row.try_get("approved").map_err(backend)?,
        groups: row.try_get("groups").map_err(backend)?,
    })
}
