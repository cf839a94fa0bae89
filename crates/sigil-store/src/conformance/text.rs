//! Text that a careless backend would mangle.

use sigil_sasl::scram::Algorithm;

use super::{certificate, credential};
use crate::{RosterItem, Store, Subscription};

/// Keys and values with quotes, semicolons, SQL comment marks, backslashes,
/// non-ASCII letters and emoji are stored and found as given.
pub async fn unicode_and_quotes_round_trip(store: &dyn Store) {
    let owner = "o'brien\"; DROP TABLE accounts; --@ex\u{e4}mple.com";
    let contact = "\u{1f600}\u{5b57}'\"\\%_@example.org";
    let group = "Fr\u{ee}ends \u{2764}\u{fe0f} ' \" ; -- /* */";
    store
        .create_account(owner, &[credential(Algorithm::Sha256, 1)])
        .await
        .unwrap();
    assert_eq!(store.accounts().await.unwrap(), [owner]);
    assert!(store.account(owner).await.unwrap().is_some());
    // A LIKE pattern is not a key.
    assert_eq!(store.account("%").await.unwrap(), None);

    let item = RosterItem {
        jid: contact.into(),
        name: Some("R\u{f6}m\u{e9}o \u{1f339} 'the' \"one\";".into()),
        subscription: Subscription::Both,
        ask: false,
        pending_in: false,
        approved: false,
        groups: vec![group.into(), "\u{65e5}\u{672c}".into()],
    };
    store.put_roster_item(owner, &item).await.unwrap();
    assert_eq!(
        store.roster(owner).await.unwrap().items,
        std::slice::from_ref(&item)
    );
    assert_eq!(store.roster_item(owner, contact).await.unwrap(), Some(item));

    let from = "\u{1f600}@example.org/r\u{e9}sum\u{e9} ';";
    let stanza =
        "<message xml:lang='fr'><body>C'est \"\u{e7}a\" \u{1f44d}; -- \\n</body></message>";
    store
        .store_offline(owner, from, stanza, 1, crate::OfflineQuota::messages(10))
        .await
        .unwrap();
    let messages = store.offline_messages(owner, 10).await.unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].owner, owner);
    assert_eq!(messages[0].from, from);
    assert_eq!(messages[0].stanza, stanza);

    let entry = certificate(owner, "T\u{e9}l\u{e9}phone '\u{1f4f1}\";", 4);
    store.add_certificate(&entry).await.unwrap();
    assert_eq!(
        store.certificates(owner).await.unwrap(),
        std::slice::from_ref(&entry)
    );
    assert_eq!(
        store
            .revoke_certificate(owner, &entry.name, 1)
            .await
            .unwrap(),
        Some(entry.clone())
    );
    assert_eq!(
        store.revoked_certificates(owner).await.unwrap()[0].name,
        entry.name
    );

    assert!(store.delete_account(owner).await.unwrap());
    assert!(store.accounts().await.unwrap().is_empty());
}
