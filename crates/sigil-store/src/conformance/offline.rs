//! Offline messages.

use super::create;
use crate::{OfflineMessage, Store, StoreError};

/// Messages come back oldest first with what was stored; deleting removes
/// exactly the given ids.
pub async fn offline_order_and_delete(store: &dyn Store) {
    let owner = "juliet@example.com";
    create(store, owner).await;
    let mut expected = Vec::new();
    for index in 0..5_i64 {
        let from = format!("romeo@example.net/phone{index}");
        let stanza = format!("<message><body>{index}</body></message>");
        // Stored times out of order: the order is the store's, not the clock's.
        let stored_at = 1_700_000_000 - index;
        let id = store
            .store_offline(
                owner,
                &from,
                &stanza,
                stored_at,
                crate::OfflineQuota::messages(100),
            )
            .await
            .unwrap();
        if let Some(OfflineMessage { id: previous, .. }) = expected.last() {
            assert!(id > *previous, "id {id} after {previous}");
        }
        expected.push(OfflineMessage {
            id,
            owner: owner.into(),
            from,
            stanza,
            stored_at,
        });
    }
    assert_eq!(store.offline_count(owner).await.unwrap(), 5);
    assert_eq!(store.offline_messages(owner, 100).await.unwrap(), expected);

    let gone = [expected[1].id, expected[3].id, i64::MAX];
    assert_eq!(store.delete_offline(owner, &gone).await.unwrap(), 2);
    assert_eq!(store.delete_offline(owner, &gone).await.unwrap(), 0);
    assert_eq!(store.delete_offline(owner, &[]).await.unwrap(), 0);
    expected.remove(3);
    expected.remove(1);
    assert_eq!(store.offline_messages(owner, 100).await.unwrap(), expected);
    assert_eq!(store.offline_count(owner).await.unwrap(), 3);
}

/// `limit` caps the answer at the oldest messages.
pub async fn offline_limit(store: &dyn Store) {
    let owner = "juliet@example.com";
    create(store, owner).await;
    let mut ids = Vec::new();
    for index in 0..4 {
        let stanza = format!("<message id='{index}'/>");
        ids.push(
            store
                .store_offline(
                    owner,
                    "romeo@example.net",
                    &stanza,
                    index,
                    crate::OfflineQuota::messages(10),
                )
                .await
                .unwrap(),
        );
    }
    let ids_of = |messages: Vec<OfflineMessage>| -> Vec<i64> {
        messages.into_iter().map(|message| message.id).collect()
    };
    assert_eq!(
        ids_of(store.offline_messages(owner, 2).await.unwrap()),
        ids[..2]
    );
    assert!(store.offline_messages(owner, 0).await.unwrap().is_empty());
    assert_eq!(
        ids_of(store.offline_messages(owner, usize::MAX).await.unwrap()),
        ids
    );
}

/// An owner with `max_per_owner` messages gets no more until some are
/// deleted; the quota is per owner.
pub async fn offline_quota(store: &dyn Store) {
    let owner = "juliet@example.com";
    create(store, owner).await;
    create(store, "romeo@example.net").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            store
                .store_offline(
                    owner,
                    "a@example.org",
                    "<message/>",
                    1,
                    crate::OfflineQuota::messages(3),
                )
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        store
            .store_offline(
                owner,
                "a@example.org",
                "<message/>",
                1,
                crate::OfflineQuota::messages(3)
            )
            .await,
        Err(StoreError::QuotaExceeded)
    );
    assert_eq!(store.offline_count(owner).await.unwrap(), 3);
    // A lower quota than what is stored refuses too.
    assert_eq!(
        store
            .store_offline(
                owner,
                "a@example.org",
                "<message/>",
                1,
                crate::OfflineQuota::messages(1)
            )
            .await,
        Err(StoreError::QuotaExceeded)
    );
    // A quota of zero refuses everything.
    assert_eq!(
        store
            .store_offline(
                "romeo@example.net",
                "a@example.org",
                "<message/>",
                1,
                crate::OfflineQuota::messages(0)
            )
            .await,
        Err(StoreError::QuotaExceeded)
    );
    store
        .store_offline(
            "romeo@example.net",
            "a@example.org",
            "<message/>",
            1,
            crate::OfflineQuota::messages(3),
        )
        .await
        .unwrap();

    store.delete_offline(owner, &ids[..1]).await.unwrap();
    store
        .store_offline(
            owner,
            "a@example.org",
            "<message/>",
            1,
            crate::OfflineQuota::messages(3),
        )
        .await
        .unwrap();
    assert_eq!(store.offline_count(owner).await.unwrap(), 3);
}

/// The bytes an account has waiting are capped as well: a message that
/// would take them past the quota is refused, one that fits is kept, and
/// multi-byte characters count as their bytes.
pub async fn offline_byte_quota(store: &dyn Store) {
    let owner = "juliet@example.com";
    create(store, owner).await;
    let quota = crate::OfflineQuota {
        messages: 100,
        bytes: 30,
    };
    let ten = "<m>1234</m>"; // 11 bytes
    for _ in 0..2 {
        store
            .store_offline(owner, "a@example.org", ten, 1, quota)
            .await
            .unwrap();
    }
    // 22 + 11 > 30.
    assert_eq!(
        store
            .store_offline(owner, "a@example.org", ten, 1, quota)
            .await,
        Err(StoreError::QuotaExceeded)
    );
    // 22 + 8 fits exactly; "é" is two bytes.
    store
        .store_offline(owner, "a@example.org", "<m>é</m", 1, quota)
        .await
        .unwrap();
    assert_eq!(
        store
            .store_offline(owner, "a@example.org", "x", 1, quota)
            .await,
        Err(StoreError::QuotaExceeded)
    );
    assert_eq!(store.offline_count(owner).await.unwrap(), 3);
}

/// Concurrent stores do not overshoot the quota together.
pub async fn offline_quota_under_concurrency(store: &dyn Store) {
    let owner = "juliet@example.com";
    create(store, owner).await;
    let attempt = || {
        store.store_offline(
            owner,
            "romeo@example.net",
            "<message/>",
            1,
            crate::OfflineQuota::messages(5),
        )
    };
    let results = tokio::join!(
        attempt(),
        attempt(),
        attempt(),
        attempt(),
        attempt(),
        attempt(),
        attempt(),
        attempt()
    );
    let results = [
        results.0, results.1, results.2, results.3, results.4, results.5, results.6, results.7,
    ];
    let stored = results.iter().filter(|result| result.is_ok()).count();
    for result in &results {
        assert!(
            matches!(result, Ok(_) | Err(StoreError::QuotaExceeded)),
            "{result:?}"
        );
    }
    assert_eq!(stored, 5);
    assert_eq!(store.offline_count(owner).await.unwrap(), 5);
}

/// One owner's reads and deletes never touch another owner's messages.
pub async fn offline_other_owner_untouched(store: &dyn Store) {
    create(store, "juliet@example.com").await;
    create(store, "romeo@example.net").await;
    let juliet = store
        .store_offline(
            "juliet@example.com",
            "a@example.org",
            "<message>j</message>",
            1,
            crate::OfflineQuota::messages(10),
        )
        .await
        .unwrap();
    let romeo = store
        .store_offline(
            "romeo@example.net",
            "a@example.org",
            "<message>r</message>",
            1,
            crate::OfflineQuota::messages(10),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .delete_offline("juliet@example.com", &[romeo])
            .await
            .unwrap(),
        0
    );
    let messages = store
        .offline_messages("juliet@example.com", 10)
        .await
        .unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].id, juliet);
    assert_eq!(messages[0].stanza, "<message>j</message>");
    assert_eq!(store.offline_count("romeo@example.net").await.unwrap(), 1);
    assert_eq!(
        store
            .delete_offline("romeo@example.net", &[juliet, romeo])
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.offline_count("juliet@example.com").await.unwrap(), 1);
}

/// Messages for an owner without an account are refused with `NotFound`;
/// reads find nothing.
pub async fn offline_requires_account(store: &dyn Store) {
    let owner = "nobody@example.com";
    assert_eq!(
        store
            .store_offline(
                owner,
                "a@example.org",
                "<message/>",
                1,
                crate::OfflineQuota::messages(10)
            )
            .await,
        Err(StoreError::NotFound)
    );
    assert_eq!(store.offline_count(owner).await.unwrap(), 0);
    assert!(store.offline_messages(owner, 10).await.unwrap().is_empty());
    assert_eq!(store.delete_offline(owner, &[1, 2]).await.unwrap(), 0);
}

/// Ids are never reused, not even after the newest message is deleted:
/// a late delete of an old id must not hit a new message.
pub async fn offline_ids_not_reused(store: &dyn Store) {
    let owner = "juliet@example.com";
    create(store, owner).await;
    let first = store
        .store_offline(
            owner,
            "a@example.org",
            "<message/>",
            1,
            crate::OfflineQuota::messages(10),
        )
        .await
        .unwrap();
    assert_eq!(store.delete_offline(owner, &[first]).await.unwrap(), 1);
    let second = store
        .store_offline(
            owner,
            "a@example.org",
            "<message/>",
            1,
            crate::OfflineQuota::messages(10),
        )
        .await
        .unwrap();
    assert!(second > first, "{second} after {first}");
    assert!(store.delete_account(owner).await.unwrap());
    create(store, owner).await;
    let third = store
        .store_offline(
            owner,
            "a@example.org",
            "<message/>",
            1,
            crate::OfflineQuota::messages(10),
        )
        .await
        .unwrap();
    assert!(third > second, "{third} after {second}");
}

/// The owners with messages: each once, sorted, and gone once emptied.
pub async fn offline_owners(store: &dyn Store) {
    assert!(store.offline_owners().await.unwrap().is_empty());
    for owner in [
        "romeo@example.net",
        "juliet@example.com",
        "nurse@example.com",
    ] {
        create(store, owner).await;
    }
    let mut ids = Vec::new();
    for (owner, n) in [("romeo@example.net", 2), ("juliet@example.com", 1)] {
        for i in 0..n {
            ids.push(
                store
                    .store_offline(
                        owner,
                        "a@example.org",
                        "<message/>",
                        i,
                        crate::OfflineQuota::messages(10),
                    )
                    .await
                    .unwrap(),
            );
        }
    }
    assert_eq!(
        store.offline_owners().await.unwrap(),
        ["juliet@example.com", "romeo@example.net"]
    );
    store
        .delete_offline("juliet@example.com", &ids[2..])
        .await
        .unwrap();
    assert_eq!(store.offline_owners().await.unwrap(), ["romeo@example.net"]);
}
