//! Per-account documents and last activity.

use super::create;
use crate::{DocumentQuota, LastActivity, Store, StoreError};

const QUOTA: DocumentQuota = DocumentQuota {
    documents: 3,
    bytes: 64,
};

fn put(key: &str, document: &str) -> (String, Option<String>) {
    (key.to_owned(), Some(document.to_owned()))
}

/// Documents are stored, replaced, listed and deleted per owner and
/// collection; other owners and collections are untouched.
pub async fn documents_round_trip(store: &dyn Store) {
    let owner = "juliet@example.com";
    create(store, owner).await;
    create(store, "romeo@example.net").await;
    assert_eq!(store.document(owner, "private", "a").await.unwrap(), None);
    assert!(
        store
            .document_keys(owner, "private")
            .await
            .unwrap()
            .is_empty()
    );
    let changes = [put("b", "<b xmlns='b'/>"), put("a", "<a xmlns='a'>ü</a>")];
    store
        .put_documents(owner, "private", &changes, QUOTA)
        .await
        .unwrap();
    store
        .put_documents(owner, "vcard", &[put("", "<vCard/>")], QUOTA)
        .await
        .unwrap();
    assert_eq!(
        store
            .document(owner, "private", "a")
            .await
            .unwrap()
            .as_deref(),
        Some("<a xmlns='a'>ü</a>")
    );
    assert_eq!(
        store.document_keys(owner, "private").await.unwrap(),
        ["a", "b"]
    );
    assert_eq!(store.document_keys(owner, "vcard").await.unwrap(), [""]);
    assert_eq!(
        store
            .document("romeo@example.net", "private", "a")
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.document(owner, "vcard", "a").await.unwrap(), None);

    store
        .put_documents(
            owner,
            "private",
            &[put("a", "<a xmlns='a'>new</a>"), ("b".to_owned(), None)],
            QUOTA,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .document(owner, "private", "a")
            .await
            .unwrap()
            .as_deref(),
        Some("<a xmlns='a'>new</a>")
    );
    assert_eq!(store.document_keys(owner, "private").await.unwrap(), ["a"]);
    // Deleting what is not there is no error.
    store
        .put_documents(owner, "private", &[("zz".to_owned(), None)], QUOTA)
        .await
        .unwrap();
    assert_eq!(store.document_keys(owner, "vcard").await.unwrap(), [""]);
}

/// A document over the byte quota, or a collection that would grow past
/// its count, is refused whole; replacing within the quota still works.
pub async fn documents_quota(store: &dyn Store) {
    let owner = "juliet@example.com";
    create(store, owner).await;
    let long = "x".repeat(QUOTA.bytes + 1);
    let result = store
        .put_documents(
            owner,
            "private",
            &[put("a", "<a/>"), put("b", &long)],
            QUOTA,
        )
        .await;
    assert_eq!(result, Err(StoreError::QuotaExceeded));
    assert!(
        store
            .document_keys(owner, "private")
            .await
            .unwrap()
            .is_empty()
    );
    // Exactly the quota's bytes fit (UTF-8 bytes, not characters).
    let exact = "é".repeat(QUOTA.bytes / 2);
    store
        .put_documents(owner, "private", &[put("a", &exact)], QUOTA)
        .await
        .unwrap();
    let over = format!("{exact}é");
    let result = store
        .put_documents(owner, "private", &[put("a", &over)], QUOTA)
        .await;
    assert_eq!(result, Err(StoreError::QuotaExceeded));

    store
        .put_documents(
            owner,
            "private",
            &[put("b", "<b/>"), put("c", "<c/>")],
            QUOTA,
        )
        .await
        .unwrap();
    let result = store
        .put_documents(owner, "private", &[put("d", "<d/>")], QUOTA)
        .await;
    assert_eq!(result, Err(StoreError::QuotaExceeded));
    // A change that adds one and deletes one stays within the count.
    store
        .put_documents(
            owner,
            "private",
            &[put("d", "<d/>"), ("a".to_owned(), None)],
            QUOTA,
        )
        .await
        .unwrap();
    assert_eq!(
        store.document_keys(owner, "private").await.unwrap(),
        ["b", "c", "d"]
    );
    store
        .put_documents(owner, "private", &[put("b", "<b>again</b>")], QUOTA)
        .await
        .unwrap();
    // Another collection has its own count.
    store
        .put_documents(owner, "vcard", &[put("", "<vCard/>")], QUOTA)
        .await
        .unwrap();
}

/// Writes need an account; deleting the account deletes its documents and
/// its last activity.
pub async fn documents_require_account(store: &dyn Store) {
    let ghost = "ghost@example.com";
    let result = store
        .put_documents(ghost, "private", &[put("a", "<a/>")], QUOTA)
        .await;
    assert_eq!(result, Err(StoreError::NotFound));
    let activity = LastActivity {
        at: 10,
        status: None,
    };
    let result = store.set_last_activity(ghost, &activity).await;
    assert_eq!(result, Err(StoreError::NotFound));
    assert_eq!(store.last_activity(ghost).await.unwrap(), None);

    let owner = "juliet@example.com";
    create(store, owner).await;
    create(store, "kept@example.com").await;
    for jid in [owner, "kept@example.com"] {
        store
            .put_documents(jid, "private", &[put("a", "<a/>")], QUOTA)
            .await
            .unwrap();
        store.set_last_activity(jid, &activity).await.unwrap();
    }
    assert!(store.delete_account(owner).await.unwrap());
    create(store, owner).await;
    assert!(
        store
            .document_keys(owner, "private")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.last_activity(owner).await.unwrap(), None);
    assert_eq!(
        store
            .document_keys("kept@example.com", "private")
            .await
            .unwrap(),
        ["a"]
    );
    assert_eq!(
        store.last_activity("kept@example.com").await.unwrap(),
        Some(activity)
    );
}

/// The last activity is replaced by a later one, never by an earlier one.
pub async fn last_activity_keeps_the_latest(store: &dyn Store) {
    let owner = "juliet@example.com";
    create(store, owner).await;
    assert_eq!(store.last_activity(owner).await.unwrap(), None);
    let first = LastActivity {
        at: 1_700_000_000,
        status: Some("Gone to the ball «<&>»".into()),
    };
    store.set_last_activity(owner, &first).await.unwrap();
    assert_eq!(
        store.last_activity(owner).await.unwrap(),
        Some(first.clone())
    );
    let earlier = LastActivity {
        at: first.at - 5,
        status: Some("earlier".into()),
    };
    store.set_last_activity(owner, &earlier).await.unwrap();
    assert_eq!(
        store.last_activity(owner).await.unwrap(),
        Some(first.clone())
    );
    let later = LastActivity {
        at: first.at + 60,
        status: None,
    };
    store.set_last_activity(owner, &later).await.unwrap();
    assert_eq!(store.last_activity(owner).await.unwrap(), Some(later));
}
