//! XEP-0198 state kept over a restart.

use super::create;
use crate::{SavedSession, Store};

fn saved(id: &str, owner: &str, saved_at: i64, unacknowledged: Vec<(u32, i64)>) -> SavedSession {
    SavedSession {
        id: id.into(),
        owner: owner.into(),
        inbound: u32::MAX,
        acked: 4_000_000_000,
        unacknowledged,
        saved_at,
    }
}

/// Saved sessions are taken once, with their counters (all of `u32`) and
/// their messages in order, by their owner only; saving an id again
/// replaces it; sessions of owners without an account are left out.
pub async fn saved_sessions_round_trip(store: &dyn Store) {
    let owner = "juliet@example.com";
    create(store, owner).await;
    let first = saved("a1", owner, 1_700_000_000, vec![(7, 30), (5, 10), (6, 20)]);
    let second = saved("b2", owner, 1_700_000_001, Vec::new());
    let ghost = saved("c3", "ghost@example.com", 1_700_000_002, vec![(1, 1)]);
    let kept = store
        .save_sessions(&[first.clone(), second.clone(), ghost])
        .await
        .unwrap();
    assert_eq!(kept, 2);
    let other = store.take_saved_session("romeo@example.net", "a1").await;
    assert_eq!(other.unwrap(), None);
    assert_eq!(
        store.take_saved_session(owner, "a1").await.unwrap(),
        Some(first)
    );
    assert_eq!(store.take_saved_session(owner, "a1").await.unwrap(), None);
    assert_eq!(
        store
            .take_saved_session("ghost@example.com", "c3")
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.take_saved_session(owner, "A1").await.unwrap(), None);

    let replaced = saved("b2", owner, 1_700_000_005, vec![(u32::MAX, i64::MAX)]);
    assert_eq!(
        store
            .save_sessions(std::slice::from_ref(&replaced))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.save_sessions(&[]).await.unwrap(), 0);
    assert_eq!(
        store.take_saved_session(owner, "b2").await.unwrap(),
        Some(replaced)
    );
    assert_eq!(store.take_saved_session(owner, "b2").await.unwrap(), None);
}

/// Expiry deletes what was saved before the time given, and deleting an
/// account deletes its saved sessions.
pub async fn saved_sessions_expire(store: &dyn Store) {
    let owner = "juliet@example.com";
    create(store, owner).await;
    create(store, "romeo@example.net").await;
    let sessions = [
        saved("old", owner, 100, vec![(1, 1)]),
        saved("edge", owner, 200, Vec::new()),
        saved("new", owner, 300, Vec::new()),
        saved("romeo", "romeo@example.net", 300, vec![(2, 2)]),
    ];
    assert_eq!(store.save_sessions(&sessions).await.unwrap(), 4);
    assert_eq!(store.expire_saved_sessions(200).await.unwrap(), 1);
    assert_eq!(store.take_saved_session(owner, "old").await.unwrap(), None);
    assert_eq!(
        store.take_saved_session(owner, "edge").await.unwrap(),
        Some(sessions[1].clone())
    );
    assert!(store.delete_account("romeo@example.net").await.unwrap());
    assert_eq!(
        store
            .take_saved_session("romeo@example.net", "romeo")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.take_saved_session(owner, "new").await.unwrap(),
        Some(sessions[2].clone())
    );
    assert_eq!(store.expire_saved_sessions(i64::MAX).await.unwrap(), 0);
}
