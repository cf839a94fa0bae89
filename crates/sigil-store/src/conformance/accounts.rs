//! Accounts and credentials.

use sigil_sasl::scram::Algorithm;

use super::{certificate, create, credential};
use crate::{RosterItem, Store, StoreError};

/// An account reads back as created: enabled, with its credentials
/// strongest first and a plausible creation time.
pub async fn accounts_create_and_read(store: &dyn Store) {
    let credentials = [
        credential(Algorithm::Sha1, 1),
        credential(Algorithm::Sha512, 3),
        credential(Algorithm::Sha256, 2),
    ];
    store
        .create_account("juliet@example.com", &credentials)
        .await
        .unwrap();
    let account = store.account("juliet@example.com").await.unwrap().unwrap();
    assert_eq!(account.jid, "juliet@example.com");
    assert!(!account.disabled);
    // After 2020 and not in the far future: a Unix time in seconds.
    assert!(account.created_at > 1_577_836_800, "{}", account.created_at);
    assert!(account.created_at < 4_102_444_800, "{}", account.created_at);
    assert_eq!(
        account.credentials,
        [
            credential(Algorithm::Sha512, 3),
            credential(Algorithm::Sha256, 2),
            credential(Algorithm::Sha1, 1),
        ]
    );
}

/// Creating an account twice fails and leaves the first one as it was.
pub async fn accounts_duplicate_refused(store: &dyn Store) {
    let first = [credential(Algorithm::Sha256, 1)];
    store
        .create_account("romeo@example.net", &first)
        .await
        .unwrap();
    let again = store
        .create_account("romeo@example.net", &[credential(Algorithm::Sha256, 9)])
        .await;
    assert_eq!(again, Err(StoreError::AlreadyExists));
    let account = store.account("romeo@example.net").await.unwrap().unwrap();
    assert_eq!(account.credentials, first);
}

/// `accounts` lists every account, sorted.
pub async fn accounts_list_sorted(store: &dyn Store) {
    assert_eq!(store.accounts().await.unwrap(), Vec::<String>::new());
    for jid in [
        "nurse@b.example",
        "benvolio@b.example",
        "mercutio@a.example",
    ] {
        create(store, jid).await;
    }
    assert_eq!(
        store.accounts().await.unwrap(),
        [
            "benvolio@b.example",
            "mercutio@a.example",
            "nurse@b.example"
        ]
    );
}

/// Reads of a missing account find nothing; writes to it fail with
/// `NotFound`; deleting it reports that nothing was there.
pub async fn accounts_missing(store: &dyn Store) {
    let jid = "nobody@example.com";
    assert_eq!(store.account(jid).await.unwrap(), None);
    assert_eq!(
        store.credentials(jid, Algorithm::Sha256).await.unwrap(),
        None
    );
    let credentials = [credential(Algorithm::Sha256, 1)];
    assert_eq!(
        store.set_credentials(jid, &credentials).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store.set_disabled(jid, true).await,
        Err(StoreError::NotFound)
    );
    assert!(!store.delete_account(jid).await.unwrap());
}

/// Deleting an account deletes its credentials, roster, offline messages
/// and certificates, and nothing of other accounts.
pub async fn accounts_delete_cascades(store: &dyn Store) {
    for jid in ["gone@example.com", "kept@example.com"] {
        store
            .create_account(jid, &[credential(Algorithm::Sha256, 1)])
            .await
            .unwrap();
        let mut item = RosterItem::new("friend@example.org");
        item.groups = vec!["Friends".into()];
        store.put_roster_item(jid, &item).await.unwrap();
        store
            .store_offline(
                jid,
                "friend@example.org/a",
                "<message/>",
                1,
                crate::OfflineQuota::messages(10),
            )
            .await
            .unwrap();
        store
            .add_certificate(&certificate(jid, "laptop", 7))
            .await
            .unwrap();
    }
    assert!(store.delete_account("gone@example.com").await.unwrap());
    assert!(!store.delete_account("gone@example.com").await.unwrap());

    let gone = "gone@example.com";
    assert_eq!(store.account(gone).await.unwrap(), None);
    assert_eq!(
        store.credentials(gone, Algorithm::Sha256).await.unwrap(),
        None
    );
    let roster = store.roster(gone).await.unwrap();
    assert!(roster.items.is_empty());
    assert_eq!(store.offline_count(gone).await.unwrap(), 0);
    assert!(store.certificates(gone).await.unwrap().is_empty());
    assert_eq!(store.accounts().await.unwrap(), ["kept@example.com"]);

    // A new account of the same name starts empty.
    create(store, gone).await;
    assert!(store.roster(gone).await.unwrap().items.is_empty());
    assert_eq!(store.offline_count(gone).await.unwrap(), 0);
    assert!(store.certificates(gone).await.unwrap().is_empty());

    let kept = "kept@example.com";
    assert!(
        store
            .credentials(kept, Algorithm::Sha256)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.roster(kept).await.unwrap().items.len(), 1);
    assert_eq!(store.offline_count(kept).await.unwrap(), 1);
    assert_eq!(store.certificates(kept).await.unwrap().len(), 1);
}

/// Keys are compared as given: the caller normalises, the store does not
/// fold case.
pub async fn accounts_keys_case_sensitive(store: &dyn Store) {
    create(store, "juliet@example.com").await;
    assert_eq!(store.account("Juliet@example.com").await.unwrap(), None);
    create(store, "Juliet@example.com").await;
    assert_eq!(
        store.accounts().await.unwrap(),
        ["Juliet@example.com", "juliet@example.com"]
    );
}

/// Credentials are kept and looked up per algorithm.
pub async fn credentials_per_algorithm(store: &dyn Store) {
    let jid = "juliet@example.com";
    store
        .create_account(
            jid,
            &[
                credential(Algorithm::Sha1, 1),
                credential(Algorithm::Sha256, 2),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        store.credentials(jid, Algorithm::Sha1).await.unwrap(),
        Some(credential(Algorithm::Sha1, 1))
    );
    assert_eq!(
        store.credentials(jid, Algorithm::Sha256).await.unwrap(),
        Some(credential(Algorithm::Sha256, 2))
    );
    assert_eq!(
        store.credentials(jid, Algorithm::Sha512).await.unwrap(),
        None
    );

    // Extreme values round-trip: the largest iteration count, empty keys.
    let mut extreme = credential(Algorithm::Sha512, 0);
    extreme.iterations = u32::MAX;
    extreme.salt = vec![0, 0xff, 0, 0x27, 0x22];
    extreme.stored_key = Vec::new();
    store
        .set_credentials(jid, &[extreme.clone()])
        .await
        .unwrap();
    assert_eq!(
        store.credentials(jid, Algorithm::Sha512).await.unwrap(),
        Some(extreme)
    );
}

/// `set_credentials` replaces every credential of the account at once.
pub async fn credentials_replaced(store: &dyn Store) {
    let jid = "juliet@example.com";
    store
        .create_account(
            jid,
            &[
                credential(Algorithm::Sha1, 1),
                credential(Algorithm::Sha256, 2),
            ],
        )
        .await
        .unwrap();
    store
        .set_credentials(jid, &[credential(Algorithm::Sha512, 5)])
        .await
        .unwrap();
    let account = store.account(jid).await.unwrap().unwrap();
    assert_eq!(account.credentials, [credential(Algorithm::Sha512, 5)]);
    assert_eq!(store.credentials(jid, Algorithm::Sha1).await.unwrap(), None);

    // An empty list leaves an account that no password opens.
    store.set_credentials(jid, &[]).await.unwrap();
    let account = store.account(jid).await.unwrap().unwrap();
    assert!(account.credentials.is_empty());
}

/// Two credentials for one algorithm are refused, and nothing changes.
pub async fn credentials_duplicate_algorithm_refused(store: &dyn Store) {
    let jid = "juliet@example.com";
    let twice = [
        credential(Algorithm::Sha256, 1),
        credential(Algorithm::Sha256, 2),
    ];
    assert_eq!(
        store.create_account(jid, &twice).await,
        Err(StoreError::Conflict("algorithm".into()))
    );
    assert_eq!(store.account(jid).await.unwrap(), None);

    store
        .create_account(jid, &[credential(Algorithm::Sha1, 3)])
        .await
        .unwrap();
    assert_eq!(
        store.set_credentials(jid, &twice).await,
        Err(StoreError::Conflict("algorithm".into()))
    );
    let account = store.account(jid).await.unwrap().unwrap();
    assert_eq!(account.credentials, [credential(Algorithm::Sha1, 3)]);
}

/// The disabled flag is kept, per account, and can be cleared again.
pub async fn disabled_flag(store: &dyn Store) {
    create(store, "juliet@example.com").await;
    create(store, "romeo@example.net").await;
    store
        .set_disabled("juliet@example.com", true)
        .await
        .unwrap();
    let disabled =
        |jid: &'static str| async move { store.account(jid).await.unwrap().unwrap().disabled };
    assert!(disabled("juliet@example.com").await);
    assert!(!disabled("romeo@example.net").await);
    // Setting the same value again is not an error.
    store
        .set_disabled("juliet@example.com", true)
        .await
        .unwrap();
    store
        .set_disabled("juliet@example.com", false)
        .await
        .unwrap();
    assert!(!disabled("juliet@example.com").await);
}
