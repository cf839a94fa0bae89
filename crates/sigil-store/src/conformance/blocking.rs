//! Blocked JIDs (XEP-0191).

use super::create;
use crate::{Store, StoreError};

/// Blocking, listing (sorted, no duplicates), unblocking some and all.
pub async fn blocking_round_trip(store: &dyn Store) {
    let owner = "juliet@example.com";
    create(store, owner).await;
    create(store, "romeo@example.net").await;
    assert!(store.blocklist(owner).await.unwrap().is_empty());
    let list = [
        "tybalt@example.com".to_owned(),
        "example.org".to_owned(),
        "nurse@example.com/balcony".to_owned(),
    ];
    store.block(owner, &list).await.unwrap();
    store.block(owner, &list[..1]).await.unwrap();
    assert_eq!(
        store.blocklist(owner).await.unwrap(),
        [
            "example.org",
            "nurse@example.com/balcony",
            "tybalt@example.com"
        ]
    );
    assert!(
        store
            .blocklist("romeo@example.net")
            .await
            .unwrap()
            .is_empty()
    );
    store.unblock(owner, &list[1..2]).await.unwrap();
    assert_eq!(
        store.blocklist(owner).await.unwrap(),
        ["nurse@example.com/balcony", "tybalt@example.com"]
    );
    store.unblock(owner, &[]).await.unwrap();
    assert!(store.blocklist(owner).await.unwrap().is_empty());
}

/// Blocking needs an account; deleting the account deletes its list.
pub async fn blocking_requires_account(store: &dyn Store) {
    let result = store
        .block("ghost@example.com", &["x@example.com".to_owned()])
        .await;
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
    let owner = "juliet@example.com";
    create(store, owner).await;
    store
        .block(owner, &["x@example.com".to_owned()])
        .await
        .unwrap();
    assert!(store.delete_account(owner).await.unwrap());
    create(store, owner).await;
    assert!(store.blocklist(owner).await.unwrap().is_empty());
}
