//! Rosters in SQLite: items, their groups in their own table, and a version
//! counter on the account row.

use rusqlite::{Connection, OptionalExtension, Row};

use super::{SqliteStore, backend, snapshot, to_unsigned};
use crate::types::check_roster_item;
use crate::{Roster, RosterItem, RosterStore, StoreError, StoreFuture, Subscription};

impl RosterStore for SqliteStore {
    fn roster<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, Roster> {
        Box::pin(async move {
            // One read transaction: version, items and groups agree.
            self.read(|connection| {
                snapshot(connection, |connection| read_roster(connection, owner))
            })
        })
    }

    fn roster_item<'a>(
        &'a self,
        owner: &'a str,
        contact: &'a str,
    ) -> StoreFuture<'a, Option<RosterItem>> {
        Box::pin(async move {
            self.read(|connection| {
                snapshot(connection, |connection| {
                    let Some(item) = connection
                        .prepare_cached(
                            "SELECT contact, name, subscription, ask, pending_in, approved
                             FROM roster_items WHERE owner = ? AND contact = ?",
                        )
                        .map_err(backend)?
                        .query_row((owner, contact), decode_item)
                        .optional()
                        .map_err(backend)?
                    else {
                        return Ok(None);
                    };
                    let mut item = item?;
                    item.groups = connection
                        .prepare_cached(
                            "SELECT name FROM roster_groups WHERE owner = ? AND contact = ?
                             ORDER BY position",
                        )
                        .map_err(backend)?
                        .query_map((owner, contact), |row| row.get("name"))
                        .map_err(backend)?
                        .collect::<Result<_, _>>()
                        .map_err(backend)?;
                    Ok(Some(item))
                })
            })
        })
    }

    fn put_roster_item<'a>(&'a self, owner: &'a str, item: &'a RosterItem) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            check_roster_item(item)?;
            let (owner, item) = (owner.to_owned(), item.clone());
            self.write(move |transaction| {
                let version = bump_version(transaction, &owner)?.ok_or(StoreError::NotFound)?;
                // An upsert rather than INSERT OR REPLACE: REPLACE deletes
                // the row first, and whether that cascades to the groups
                // depends on pragmas.
                transaction
                    .prepare_cached(
                        "INSERT INTO roster_items
                             (owner, contact, name, subscription, ask, pending_in, approved)
                         VALUES (?, ?, ?, ?, ?, ?, ?)
                         ON CONFLICT (owner, contact) DO UPDATE SET
                             name = excluded.name,
                             subscription = excluded.subscription,
                             ask = excluded.ask,
                             pending_in = excluded.pending_in,
                             approved = excluded.approved",
                    )
                    .map_err(backend)?
                    .execute((
                        &owner,
                        &item.jid,
                        &item.name,
                        item.subscription.as_str(),
                        item.ask,
                        item.pending_in,
                        item.approved,
                    ))
                    .map_err(backend)?;
                transaction
                    .prepare_cached("DELETE FROM roster_groups WHERE owner = ? AND contact = ?")
                    .map_err(backend)?
                    .execute((&owner, &item.jid))
                    .map_err(backend)?;
                let mut insert = transaction
                    .prepare_cached(
                        "INSERT INTO roster_groups (owner, contact, position, name)
                         VALUES (?, ?, ?, ?)",
                    )
                    .map_err(backend)?;
                for (position, group) in (0_i64..).zip(&item.groups) {
                    insert
                        .execute((&owner, &item.jid, position, group))
                        .map_err(backend)?;
                }
                Ok(version)
            })
            .await
        })
    }

    fn remove_roster_item<'a>(
        &'a self,
        owner: &'a str,
        contact: &'a str,
    ) -> StoreFuture<'a, Option<u64>> {
        Box::pin(async move {
            let (owner, contact) = (owner.to_owned(), contact.to_owned());
            self.write(move |transaction| {
                transaction
                    .prepare_cached("DELETE FROM roster_groups WHERE owner = ? AND contact = ?")
                    .map_err(backend)?
                    .execute((&owner, &contact))
                    .map_err(backend)?;
                let deleted = transaction
                    .prepare_cached("DELETE FROM roster_items WHERE owner = ? AND contact = ?")
                    .map_err(backend)?
                    .execute((&owner, &contact))
                    .map_err(backend)?;
                if deleted == 0 {
                    // Nothing changed, so no new version (committing the
                    // empty transaction changes nothing either).
                    return Ok(None);
                }
                bump_version(transaction, &owner)
            })
            .await
        })
    }
}

fn read_roster(connection: &Connection, owner: &str) -> Result<Roster, StoreError> {
    let Some(version) = connection
        .prepare_cached("SELECT roster_version FROM accounts WHERE jid = ?")
        .map_err(backend)?
        .query_row([owner], |row| row.get::<_, i64>("roster_version"))
        .optional()
        .map_err(backend)?
    else {
        return Ok(Roster::default());
    };
    let version = to_unsigned(version, "roster version")?;
    let mut items = connection
        .prepare_cached(
            "SELECT contact, name, subscription, ask, pending_in, approved
             FROM roster_items WHERE owner = ? ORDER BY contact",
        )
        .map_err(backend)?
        .query_map([owner], decode_item)
        .map_err(backend)?
        .map(|row| row.map_err(backend).and_then(|decoded| decoded))
        .collect::<Result<Vec<_>, _>>()?;
    let mut groups = connection
        .prepare_cached(
            "SELECT contact, name FROM roster_groups WHERE owner = ?
             ORDER BY contact, position",
        )
        .map_err(backend)?;
    let mut rows = groups.query([owner]).map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        let contact: String = row.get("contact").map_err(backend)?;
        // Items are sorted by contact, as the groups are.
        let index = items
            .binary_search_by(|item| item.jid.as_str().cmp(&contact))
            .map_err(|_| StoreError::Corrupt(format!("group of no item {contact:?}")))?;
        items[index].groups.push(row.get("name").map_err(backend)?);
    }
    Ok(Roster { version, items })
}

/// Increments the roster version of `owner`: the new version, or `None`
/// without an account.
fn bump_version(connection: &Connection, owner: &str) -> Result<Option<u64>, StoreError> {
    connection
        .prepare_cached(
            "UPDATE accounts SET roster_version = roster_version + 1 WHERE jid = ?
             RETURNING roster_version",
        )
        .map_err(backend)?
        .query_row([owner], |row| row.get::<_, i64>("roster_version"))
        .optional()
        .map_err(backend)?
        .map(|version| to_unsigned(version, "roster version"))
        .transpose()
}

/// An item without its groups, which live in their own table; the outer
/// error is SQLite's, the inner one a stored value this code does not
/// accept.
fn decode_item(row: &Row<'_>) -> rusqlite::Result<Result<RosterItem, StoreError>> {
    let subscription: String = row.get("subscription")?;
    let item = RosterItem {
        jid: row.get("contact")?,
        name: row.get("name")?,
        subscription: Subscription::None,
        ask: row.get("ask")?,
        pending_in: row.get("pending_in")?,
        approved: row.get("approved")?,
        groups: Vec::new(),
    };
    Ok(match Subscription::from_attribute(&subscription) {
        Some(subscription) => Ok(RosterItem {
            subscription,
            ..item
        }),
        None => Err(StoreError::Corrupt(format!(
            "subscription {subscription:?}"
        ))),
    })
}
