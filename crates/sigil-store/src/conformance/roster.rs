//! Rosters.

use super::create;
use crate::{Roster, RosterItem, Store, StoreError, Subscription};

/// A new account's roster is empty at version 0, and so is the roster of an
/// owner without an account.
pub async fn roster_empty(store: &dyn Store) {
    create(store, "juliet@example.com").await;
    assert_eq!(
        store.roster("juliet@example.com").await.unwrap(),
        Roster::default()
    );
    assert_eq!(
        store.roster("nobody@example.com").await.unwrap(),
        Roster::default()
    );
    assert_eq!(
        store
            .roster_item("juliet@example.com", "romeo@example.net")
            .await
            .unwrap(),
        None
    );
}

/// Every change returns a version greater than all earlier ones, and the
/// roster reports the latest.
pub async fn roster_versions_increase(store: &dyn Store) {
    let owner = "juliet@example.com";
    create(store, owner).await;
    let mut last = store.roster(owner).await.unwrap().version;
    for contact in ["a@example.org", "b@example.org", "a@example.org"] {
        let version = store
            .put_roster_item(owner, &RosterItem::new(contact))
            .await
            .unwrap();
        assert!(version > last, "{version} after {last}");
        last = version;
    }
    let removed = store
        .remove_roster_item(owner, "a@example.org")
        .await
        .unwrap()
        .unwrap();
    assert!(removed > last, "{removed} after {last}");
    let version = store
        .put_roster_item(owner, &RosterItem::new("a@example.org"))
        .await
        .unwrap();
    assert!(version > removed, "{version} after {removed}");
    assert_eq!(store.roster(owner).await.unwrap().version, version);
}

/// Putting an item for a known contact replaces all of it.
pub async fn roster_replace_item(store: &dyn Store) {
    let owner = "juliet@example.com";
    create(store, owner).await;
    let first = RosterItem {
        jid: "romeo@example.net".into(),
        name: Some("Romeo".into()),
        subscription: Subscription::None,
        ask: true,
        pending_in: true,
        approved: true,
        groups: vec!["Friends".into(), "Verona".into()],
    };
    store.put_roster_item(owner, &first).await.unwrap();
    assert_eq!(
        store.roster_item(owner, "romeo@example.net").await.unwrap(),
        Some(first)
    );
    let second = RosterItem {
        subscription: Subscription::Both,
        ..RosterItem::new("romeo@example.net")
    };
    store.put_roster_item(owner, &second).await.unwrap();
    assert_eq!(
        store.roster_item(owner, "romeo@example.net").await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(store.roster(owner).await.unwrap().items, [second]);
}

/// Every field and every subscription state round-trips; groups keep
/// their order; items come sorted by contact.
pub async fn roster_groups_round_trip(store: &dyn Store) {
    let owner = "juliet@example.com";
    create(store, owner).await;
    let subscriptions = [
        Subscription::Both,
        Subscription::From,
        Subscription::To,
        Subscription::None,
    ];
    let mut expected = Vec::new();
    for (index, subscription) in subscriptions.into_iter().enumerate() {
        let item = RosterItem {
            // Put in reverse order of contact, to see the sorting.
            jid: format!("{}@example.org", char::from(b'd' - index as u8)),
            name: (index % 2 == 0).then(|| format!("Contact {index}")),
            subscription,
            ask: index == 1,
            pending_in: index == 2,
            approved: index == 3,
            groups: match index {
                0 => vec!["Zeta".into(), "Alpha".into(), "Mu".into()],
                1 => vec!["Alpha".into()],
                2 => Vec::new(),
                _ => vec![String::new(), "Friends".into()],
            },
        };
        store.put_roster_item(owner, &item).await.unwrap();
        expected.push(item);
    }
    expected.reverse();
    let roster = store.roster(owner).await.unwrap();
    assert_eq!(roster.items, expected);
    for item in &expected {
        assert_eq!(
            store.roster_item(owner, &item.jid).await.unwrap().as_ref(),
            Some(item)
        );
    }
}

/// An item naming a group twice is refused, and nothing changes.
pub async fn roster_duplicate_group_refused(store: &dyn Store) {
    let owner = "juliet@example.com";
    create(store, owner).await;
    let mut item = RosterItem::new("romeo@example.net");
    item.groups = vec!["Friends".into(), "Verona".into(), "Friends".into()];
    assert_eq!(
        store.put_roster_item(owner, &item).await,
        Err(StoreError::Conflict("group".into()))
    );
    assert_eq!(store.roster(owner).await.unwrap(), Roster::default());
}

/// Removing an item removes it with its groups; removing a missing item
/// reports `None` and leaves the version alone.
pub async fn roster_remove(store: &dyn Store) {
    let owner = "juliet@example.com";
    create(store, owner).await;
    let mut romeo = RosterItem::new("romeo@example.net");
    romeo.groups = vec!["Friends".into()];
    store.put_roster_item(owner, &romeo).await.unwrap();
    let nurse = RosterItem::new("nurse@example.com");
    store.put_roster_item(owner, &nurse).await.unwrap();

    let version = store
        .remove_roster_item(owner, "romeo@example.net")
        .await
        .unwrap();
    assert!(version.is_some());
    let roster = store.roster(owner).await.unwrap();
    assert_eq!(roster.items, [nurse]);
    assert_eq!(Some(roster.version), version);

    assert_eq!(
        store
            .remove_roster_item(owner, "romeo@example.net")
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.roster(owner).await.unwrap().version, roster.version);

    // Put back without groups: the old groups are gone.
    store
        .put_roster_item(owner, &RosterItem::new("romeo@example.net"))
        .await
        .unwrap();
    let item = store.roster_item(owner, "romeo@example.net").await.unwrap();
    assert_eq!(item, Some(RosterItem::new("romeo@example.net")));
}

/// Roster writes for an owner without an account fail with `NotFound`.
pub async fn roster_requires_account(store: &dyn Store) {
    let owner = "nobody@example.com";
    assert_eq!(
        store
            .put_roster_item(owner, &RosterItem::new("romeo@example.net"))
            .await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store
            .remove_roster_item(owner, "romeo@example.net")
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.roster(owner).await.unwrap(), Roster::default());
}

/// Each owner has a roster and a version of their own.
pub async fn roster_owners_isolated(store: &dyn Store) {
    create(store, "juliet@example.com").await;
    create(store, "romeo@example.net").await;
    let mut item = RosterItem::new("nurse@example.com");
    item.groups = vec!["Household".into()];
    store
        .put_roster_item("juliet@example.com", &item)
        .await
        .unwrap();
    let mut other = RosterItem::new("nurse@example.com");
    other.name = Some("Nurse".into());
    store
        .put_roster_item("romeo@example.net", &other)
        .await
        .unwrap();
    store
        .put_roster_item("romeo@example.net", &RosterItem::new("tybalt@example.com"))
        .await
        .unwrap();

    let juliet = store.roster("juliet@example.com").await.unwrap();
    assert_eq!(juliet.items, [item.clone()]);
    let romeo = store.roster("romeo@example.net").await.unwrap();
    assert_eq!(
        romeo.items,
        [other.clone(), RosterItem::new("tybalt@example.com")]
    );

    store
        .remove_roster_item("romeo@example.net", "nurse@example.com")
        .await
        .unwrap();
    assert_eq!(store.roster("juliet@example.com").await.unwrap(), juliet);
}
