//! Message archives (XEP-0313).

use super::create;
use crate::{
    ArchiveDefault, ArchivePage, ArchivePrefs, ArchiveQuery, ArchivedMessage, Store, StoreError,
};

const OWNER: &str = "juliet@example.com";

/// `n` messages in `OWNER`'s archive, alternately with romeo (from his
/// balcony resource) and the nurse, a second apart from `t0`.
async fn fill(store: &dyn Store, n: usize) -> Vec<ArchivedMessage> {
    let t0 = 1_700_000_000_000_000_i64;
    let messages: Vec<ArchivedMessage> = (0..n)
        .map(|i| ArchivedMessage {
            id: format!("id-{i:04}"),
            owner: OWNER.into(),
            with: if i % 2 == 0 {
                "romeo@example.net/balcony".into()
            } else {
                "nurse@example.com".into()
            },
            at: t0 + i64::try_from(i).unwrap() * 1_000_000,
            stanza: format!("<message xmlns='jabber:client'><body>{i}</body></message>"),
        })
        .collect();
    assert_eq!(store.archive(messages.clone()).await.unwrap(), n as u64);
    messages
}

fn ids(result: &crate::ArchiveResult) -> Vec<&str> {
    result.messages.iter().map(|m| m.id.as_str()).collect()
}

fn query(max: usize) -> ArchiveQuery {
    ArchiveQuery {
        max,
        ..ArchiveQuery::default()
    }
}

/// Archived messages come back in order, whole, page by page forwards
/// and backwards, with `complete` on the last page of each direction.
pub async fn archive_paging(store: &dyn Store) {
    create(store, OWNER).await;
    let all = fill(store, 10).await;
    let first = store.archive_query(OWNER, &query(4)).await.unwrap();
    assert_eq!(ids(&first), ["id-0000", "id-0001", "id-0002", "id-0003"]);
    assert!(!first.complete);
    assert_eq!(first.messages[0].stanza, all[0].stanza);
    assert_eq!(first.messages[0].with, "romeo@example.net/balcony");
    assert_eq!(first.messages[0].at, all[0].at);
    let next = ArchiveQuery {
        page: ArchivePage::After("id-0007".into()),
        ..query(4)
    };
    let next = store.archive_query(OWNER, &next).await.unwrap();
    assert_eq!(ids(&next), ["id-0008", "id-0009"]);
    assert!(next.complete);
    let last = ArchiveQuery {
        page: ArchivePage::Last,
        ..query(3)
    };
    let last = store.archive_query(OWNER, &last).await.unwrap();
    assert_eq!(
        ids(&last),
        ["id-0007", "id-0008", "id-0009"],
        "oldest first"
    );
    assert!(!last.complete);
    let before = ArchiveQuery {
        page: ArchivePage::Before("id-0002".into()),
        ..query(3)
    };
    let before = store.archive_query(OWNER, &before).await.unwrap();
    assert_eq!(ids(&before), ["id-0000", "id-0001"]);
    assert!(before.complete);
    let everything = store.archive_query(OWNER, &query(10)).await.unwrap();
    assert_eq!(everything.messages.len(), 10);
    assert!(everything.complete);
}

/// Filters: a bare `with` matches every resource, a full one only that
/// resource; start and end are inclusive; after-id, before-id and ids.
pub async fn archive_filters(store: &dyn Store) {
    create(store, OWNER).await;
    let all = fill(store, 10).await;
    let with = |with: &str| ArchiveQuery {
        with: Some(with.into()),
        ..query(50)
    };
    let romeo = store
        .archive_query(OWNER, &with("romeo@example.net"))
        .await
        .unwrap();
    assert_eq!(romeo.messages.len(), 5);
    let balcony = store
        .archive_query(OWNER, &with("romeo@example.net/balcony"))
        .await
        .unwrap();
    assert_eq!(balcony.messages.len(), 5);
    let garden = store
        .archive_query(OWNER, &with("romeo@example.net/garden"))
        .await
        .unwrap();
    assert!(garden.messages.is_empty() && garden.complete);
    let range = ArchiveQuery {
        start: Some(all[2].at),
        end: Some(all[4].at),
        ..query(50)
    };
    let range = store.archive_query(OWNER, &range).await.unwrap();
    assert_eq!(ids(&range), ["id-0002", "id-0003", "id-0004"]);
    let between = ArchiveQuery {
        after_id: Some("id-0005".into()),
        before_id: Some("id-0008".into()),
        ..query(50)
    };
    let between = store.archive_query(OWNER, &between).await.unwrap();
    assert_eq!(ids(&between), ["id-0006", "id-0007"]);
    let picked = ArchiveQuery {
        ids: vec!["id-0009".into(), "id-0001".into(), "nope".into()],
        ..query(50)
    };
    let picked = store.archive_query(OWNER, &picked).await.unwrap();
    assert_eq!(ids(&picked), ["id-0001", "id-0009"]);
    // Combined: romeo's after id-0003, backwards.
    let combined = ArchiveQuery {
        with: Some("romeo@example.net".into()),
        after_id: Some("id-0003".into()),
        page: ArchivePage::Last,
        ..query(2)
    };
    let combined = store.archive_query(OWNER, &combined).await.unwrap();
    assert_eq!(ids(&combined), ["id-0006", "id-0008"]);
    assert!(!combined.complete);
}

/// An unknown id to page or filter from is `NotFound`; another owner's
/// archive is apart; ids are unique per owner; no account, nothing kept.
pub async fn archive_ids_and_owners(store: &dyn Store) {
    create(store, OWNER).await;
    create(store, "romeo@example.net").await;
    fill(store, 3).await;
    for page in [
        ArchivePage::After("missing".into()),
        ArchivePage::Before("missing".into()),
    ] {
        let q = ArchiveQuery { page, ..query(5) };
        let result = store.archive_query(OWNER, &q).await;
        assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
    }
    let q = ArchiveQuery {
        after_id: Some("id-0001".into()),
        ..query(5)
    };
    let result = store.archive_query("romeo@example.net", &q).await;
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
    let theirs = store
        .archive_query("romeo@example.net", &query(5))
        .await
        .unwrap();
    assert!(theirs.messages.is_empty() && theirs.complete);
    // The same id for another owner is fine; twice for one is not.
    let mut message = ArchivedMessage {
        id: "id-0001".into(),
        owner: "romeo@example.net".into(),
        with: OWNER.into(),
        at: 1,
        stanza: "<message xmlns='jabber:client'/>".into(),
    };
    assert_eq!(store.archive(vec![message.clone()]).await.unwrap(), 1);
    let twice = store.archive(vec![message.clone()]).await;
    assert_eq!(twice, Err(StoreError::Conflict("id".into())));
    message.owner = "ghost@example.com".into();
    message.id = "id-x".into();
    assert_eq!(store.archive(vec![message]).await.unwrap(), 0);
}

/// Times that do not increase (a clock that stood still or went back)
/// still give an increasing order, in the order archived.
pub async fn archive_order_survives_the_clock(store: &dyn Store) {
    create(store, OWNER).await;
    let message = |id: &str, at: i64| ArchivedMessage {
        id: id.into(),
        owner: OWNER.into(),
        with: "romeo@example.net".into(),
        at,
        stanza: "<message xmlns='jabber:client'/>".into(),
    };
    store
        .archive(vec![message("a", 5_000), message("b", 5_000)])
        .await
        .unwrap();
    store.archive(vec![message("c", 10)]).await.unwrap();
    let all = store.archive_query(OWNER, &query(10)).await.unwrap();
    assert_eq!(ids(&all), ["a", "b", "c"]);
    assert!(all.messages.windows(2).all(|w| w[0].at < w[1].at));
}

/// Ids made by [`crate::archive_id`] are found by their time: through
/// pages, `after-id`/`before-id` and `ids`, also when the clock went back
/// (the message's place is later than its id's time), among another
/// owner's messages with the same times, and beside ids of other forms.
pub async fn archive_ids_found_by_their_time(store: &dyn Store) {
    create(store, OWNER).await;
    create(store, "nurse@example.com").await;
    let t0 = 1_700_000_000_000_000_i64;
    let message = |owner: &str, n: u8, at: i64| {
        let id = crate::archive_id(at, &[n; 12]);
        ArchivedMessage {
            id,
            owner: owner.into(),
            with: "romeo@example.net".into(),
            at,
            stanza: format!("<message xmlns='jabber:client'><body>{n}</body></message>"),
        }
    };
    // The clock goes back an hour after the third message.
    let mut mine: Vec<ArchivedMessage> = (0..3)
        .map(|n| message(OWNER, n, t0 + i64::from(n)))
        .collect();
    mine.extend((3..6).map(|n| message(OWNER, n, t0 - 3_600_000_000 + i64::from(n))));
    mine.push(ArchivedMessage {
        id: "other-form".into(),
        ..message(OWNER, 6, t0)
    });
    let theirs: Vec<ArchivedMessage> = (0..6)
        .map(|n| message("nurse@example.com", n + 100, t0 + i64::from(n)))
        .collect();
    let mut batch = mine.clone();
    batch.extend(theirs.clone());
    assert_eq!(store.archive(batch).await.unwrap(), 13);
    let all = store.archive_query(OWNER, &query(10)).await.unwrap();
    let expected: Vec<&str> = mine.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids(&all), expected);
    for (n, message) in mine.iter().enumerate() {
        let after = ArchiveQuery {
            after_id: Some(message.id.clone()),
            ..query(10)
        };
        let found = store.archive_query(OWNER, &after).await.unwrap();
        assert_eq!(ids(&found), expected[n + 1..], "after {}", message.id);
        let before = ArchiveQuery {
            page: ArchivePage::Before(message.id.clone()),
            ..query(10)
        };
        let found = store.archive_query(OWNER, &before).await.unwrap();
        assert_eq!(ids(&found), expected[..n], "before {}", message.id);
    }
    let chosen = ArchiveQuery {
        ids: vec![
            mine[4].id.clone(),
            theirs[1].id.clone(),
            "other-form".into(),
            crate::archive_id(t0, &[9; 12]),
            mine[0].id.clone(),
        ],
        ..query(10)
    };
    let found = store.archive_query(OWNER, &chosen).await.unwrap();
    assert_eq!(ids(&found), [expected[0], expected[4], "other-form"]);
    // An id of the right form that the archive never gave, or another
    // owner's.
    for unknown in [crate::archive_id(t0 + 1, &[7; 12]), theirs[0].id.clone()] {
        let after = ArchiveQuery {
            after_id: Some(unknown),
            ..query(10)
        };
        assert_eq!(
            store.archive_query(OWNER, &after).await,
            Err(StoreError::NotFound)
        );
    }
}

/// Preferences round trip; expiry by age and by count per owner; the
/// archive and its preferences go with the account.
pub async fn archive_prefs_expiry_and_deletion(store: &dyn Store) {
    assert_eq!(store.archive_prefs(OWNER).await.unwrap(), None);
    let prefs = ArchivePrefs {
        default: ArchiveDefault::Roster,
        always: vec!["romeo@example.net".into(), "friar@example.com".into()],
        never: vec!["tybalt@example.com".into()],
    };
    let missing = store.set_archive_prefs(OWNER, &prefs).await;
    assert_eq!(missing, Err(StoreError::NotFound));
    create(store, OWNER).await;
    store.set_archive_prefs(OWNER, &prefs).await.unwrap();
    let read = store.archive_prefs(OWNER).await.unwrap().unwrap();
    assert_eq!(read.default, ArchiveDefault::Roster);
    assert_eq!(read.always, ["friar@example.com", "romeo@example.net"]);
    assert_eq!(read.never, ["tybalt@example.com"]);
    let all = fill(store, 10).await;
    // Older than the fourth: three go.
    assert_eq!(store.expire_archive(all[3].at, 100).await.unwrap(), 3);
    // Beyond the newest five: two more go.
    assert_eq!(store.expire_archive(0, 5).await.unwrap(), 2);
    let left = store.archive_query(OWNER, &query(50)).await.unwrap();
    assert_eq!(
        ids(&left),
        ["id-0005", "id-0006", "id-0007", "id-0008", "id-0009"]
    );
    assert!(store.delete_account(OWNER).await.unwrap());
    create(store, OWNER).await;
    let left = store.archive_query(OWNER, &query(50)).await.unwrap();
    assert!(left.messages.is_empty());
    assert_eq!(store.archive_prefs(OWNER).await.unwrap(), None);
}

/// Expiry deletes everything it should however much it is (a backend
/// may delete in batches), by age and by count.
pub async fn archive_expiry_of_many(store: &dyn Store) {
    create(store, OWNER).await;
    let message = |n: i64| ArchivedMessage {
        id: format!("m{n}"),
        owner: OWNER.into(),
        with: "romeo@example.net".into(),
        at: 1_000 + n,
        stanza: "<message xmlns='jabber:client'/>".into(),
    };
    let all: Vec<ArchivedMessage> = (0..25_000).map(message).collect();
    assert_eq!(store.archive(all).await.unwrap(), 25_000);
    // The oldest 22,000 by age, then all but the newest 1,000 by count.
    assert_eq!(
        store
            .expire_archive(1_000 + 22_000, u64::MAX)
            .await
            .unwrap(),
        22_000
    );
    assert_eq!(store.expire_archive(0, 1_000).await.unwrap(), 2_000);
    let left = store.archive_query(OWNER, &query(2_000)).await.unwrap();
    assert_eq!(left.messages.len(), 1_000);
    assert_eq!(left.messages[0].id, "m24000");
}
