//! Invitations (XEP-0401).

use super::{certificate, create};
use crate::{
    Invite, InviteCreator, InviteKind, Redeemed, Redemption, Store, StoreError, invite_token_hash,
};

const NOW: i64 = 1_800_000_000;
const ALICE: &str = "alice@example.com";

/// An invitation of `kind` made by `creator`, valid for an hour.
fn invite(token: &str, kind: InviteKind, creator: Option<InviteCreator>) -> Invite {
    Invite {
        token_hash: invite_token_hash(token),
        kind,
        device: Some("phone".into()),
        creator,
        created_at: NOW,
        expires_at: NOW + 3600,
    }
}

fn account(jid: Option<&str>) -> InviteKind {
    InviteKind::Account {
        jid: jid.map(str::to_owned),
    }
}

fn device(account: &str) -> InviteKind {
    InviteKind::Device {
        account: account.to_owned(),
    }
}

fn made_by(account: &str, certificate: Option<u8>) -> Option<InviteCreator> {
    Some(InviteCreator {
        account: account.to_owned(),
        certificate: certificate.map(|seed| [seed; 32]),
    })
}

/// Redeeming for `account` with a certificate of `seed`, checked at `at`.
fn redemption(account: &str, seed: u8, at: i64) -> Redemption {
    Redemption {
        account: account.to_owned(),
        certificate: certificate(account, "phone", seed),
        checked_at: at,
    }
}

/// Made, found by hash, listed (all, or an account's), revoked; the
/// same hash twice is a conflict; a device invitation needs its account,
/// and an account's invitation its creator, enabled, with the
/// certificate it logged in with still registered and enabled.
pub async fn invites_round_trip(store: &dyn Store) {
    create(store, ALICE).await;
    store
        .add_certificate(&certificate(ALICE, "laptop", 1))
        .await
        .unwrap();
    store
        .add_certificate(&certificate(ALICE, "desk", 2))
        .await
        .unwrap();
    assert!(store.disable_certificate(ALICE, "desk").await.unwrap());
    for (creator, why) in [
        (made_by(ALICE, Some(2)), "a disabled certificate"),
        (made_by(ALICE, Some(3)), "a certificate not registered"),
    ] {
        assert_eq!(
            store
                .create_invite(&invite("t-z", device(ALICE), creator), 10, NOW)
                .await,
            Err(StoreError::NotFound),
            "{why}"
        );
    }
    let operator = invite("t-operator", account(None), None);
    let fixed = invite("t-fixed", account(Some("bob@example.com")), None);
    let alices = invite("t-alice", device(ALICE), made_by(ALICE, Some(1)));
    for made in [&operator, &fixed, &alices] {
        store.create_invite(made, 10, NOW).await.unwrap();
    }
    assert_eq!(
        store.create_invite(&operator, 10, NOW).await,
        Err(StoreError::Conflict("token".into()))
    );
    assert_eq!(
        store
            .create_invite(&invite("t-x", device("nobody@example.com"), None), 10, NOW)
            .await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store
            .create_invite(
                &invite("t-y", account(None), made_by("nobody@example.com", None)),
                10,
                NOW
            )
            .await,
        Err(StoreError::NotFound)
    );
    create(store, "carol@example.com").await;
    store.set_disabled("carol@example.com", true).await.unwrap();
    assert_eq!(
        store
            .create_invite(
                &invite("t-w", account(None), made_by("carol@example.com", None)),
                10,
                NOW
            )
            .await,
        Err(StoreError::NotFound),
        "a disabled account"
    );
    assert_eq!(
        store.invite(&invite_token_hash("t-alice")).await.unwrap(),
        Some(alices.clone())
    );
    assert_eq!(
        store.invite(&invite_token_hash("t-none")).await.unwrap(),
        None
    );
    let all = store.invites(None, NOW).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.contains(&operator) && all.contains(&fixed) && all.contains(&alices));
    assert_eq!(
        store.invites(Some(ALICE), NOW).await.unwrap(),
        std::slice::from_ref(&alices)
    );
    // Listing leaves out what expired.
    assert!(store.invites(None, NOW + 3600).await.unwrap().is_empty());
    assert!(store.revoke_invite(&alices.token_hash).await.unwrap());
    assert!(!store.revoke_invite(&alices.token_hash).await.unwrap());
    assert_eq!(store.invite(&alices.token_hash).await.unwrap(), None);
    assert_eq!(alices.id().len(), 16);
}

/// Each creator (and the operator) holds at most `max_open` invitations
/// that have not expired.
pub async fn invites_quota(store: &dyn Store) {
    create(store, ALICE).await;
    for n in 0..3 {
        let mine = invite(&format!("a{n}"), device(ALICE), made_by(ALICE, None));
        store.create_invite(&mine, 3, NOW).await.unwrap();
        let operators = invite(&format!("o{n}"), account(None), None);
        store.create_invite(&operators, 3, NOW).await.unwrap();
    }
    let more = invite("a3", device(ALICE), made_by(ALICE, None));
    assert_eq!(
        store.create_invite(&more, 3, NOW).await,
        Err(StoreError::QuotaExceeded)
    );
    let more_operator = invite("o3", account(None), None);
    assert_eq!(
        store.create_invite(&more_operator, 3, NOW).await,
        Err(StoreError::QuotaExceeded)
    );
    // Once those expire, there is room again.
    store.create_invite(&more, 3, NOW + 3600).await.unwrap();
}

/// An account invitation creates the account, passwordless, with the
/// device's certificate, once: for the name it fixes or any free one.
pub async fn invites_redeem_account(store: &dyn Store) {
    let free = invite("t-free", account(None), None);
    let fixed = invite("t-fixed", account(Some("bob@example.com")), None);
    store.create_invite(&free, 10, NOW).await.unwrap();
    store.create_invite(&fixed, 10, NOW).await.unwrap();
    // Not the name it fixes: as if there were no such invitation.
    assert_eq!(
        store
            .redeem_invite(&fixed.token_hash, &redemption("carol@example.com", 1, NOW))
            .await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store
            .redeem_invite(&fixed.token_hash, &redemption("bob@example.com", 1, NOW))
            .await,
        Ok(Redeemed::AccountCreated)
    );
    let bob = store.account("bob@example.com").await.unwrap().unwrap();
    assert!(bob.credentials.is_empty(), "no password");
    assert_eq!(
        store.certificates("bob@example.com").await.unwrap(),
        [certificate("bob@example.com", "phone", 1)]
    );
    // Single use.
    assert_eq!(
        store
            .redeem_invite(&fixed.token_hash, &redemption("bob@example.com", 2, NOW))
            .await,
        Err(StoreError::NotFound)
    );
    // A free name that is taken: nothing changes, the invitation stays.
    assert_eq!(
        store
            .redeem_invite(&free.token_hash, &redemption("bob@example.com", 3, NOW))
            .await,
        Err(StoreError::AlreadyExists)
    );
    assert_eq!(
        store.certificates("bob@example.com").await.unwrap().len(),
        1
    );
    assert_eq!(
        store
            .redeem_invite(&free.token_hash, &redemption("carol@example.com", 3, NOW))
            .await,
        Ok(Redeemed::AccountCreated)
    );
    assert!(store.invites(None, NOW).await.unwrap().is_empty());
}

/// A device invitation adds the certificate to its account only; the
/// certificate's checks hold; expiry counts at the time it was checked.
pub async fn invites_redeem_device(store: &dyn Store) {
    create(store, ALICE).await;
    create(store, "mallory@example.com").await;
    store
        .add_certificate(&certificate(ALICE, "laptop", 9))
        .await
        .unwrap();
    let alices = invite("t-alice", device(ALICE), made_by(ALICE, Some(9)));
    store.create_invite(&alices, 10, NOW).await.unwrap();
    // Another account cannot use it.
    assert_eq!(
        store
            .redeem_invite(
                &alices.token_hash,
                &redemption("mallory@example.com", 1, NOW)
            )
            .await,
        Err(StoreError::NotFound)
    );
    // Nor a certificate that names another owner.
    let mut crossed = redemption(ALICE, 1, NOW);
    crossed.certificate.owner = "mallory@example.com".into();
    assert_eq!(
        store.redeem_invite(&alices.token_hash, &crossed).await,
        Err(StoreError::NotFound)
    );
    // Checked after it expired.
    assert_eq!(
        store
            .redeem_invite(&alices.token_hash, &redemption(ALICE, 1, NOW + 3600))
            .await,
        Err(StoreError::Expired)
    );
    // A certificate alice revoked: refused, and the invitation stays.
    store
        .add_certificate(&certificate(ALICE, "old", 5))
        .await
        .unwrap();
    store.revoke_certificate(ALICE, "old", NOW).await.unwrap();
    assert_eq!(
        store
            .redeem_invite(&alices.token_hash, &redemption(ALICE, 5, NOW))
            .await,
        Err(StoreError::Revoked)
    );
    // A device name in use.
    store
        .add_certificate(&certificate(ALICE, "phone", 6))
        .await
        .unwrap();
    assert_eq!(
        store
            .redeem_invite(&alices.token_hash, &redemption(ALICE, 7, NOW))
            .await,
        Err(StoreError::Conflict("name".into()))
    );
    store.revoke_certificate(ALICE, "phone", NOW).await.unwrap();
    // Checked before it expired, redeemed after: it works (XEP-0445).
    assert_eq!(
        store
            .redeem_invite(&alices.token_hash, &redemption(ALICE, 7, NOW + 3599))
            .await,
        Ok(Redeemed::DeviceAdded)
    );
    assert!(
        store
            .certificates(ALICE)
            .await
            .unwrap()
            .contains(&certificate(ALICE, "phone", 7))
    );
    assert_eq!(store.invite(&alices.token_hash).await.unwrap(), None);
    // A device invitation whose account went.
    let again = invite("t-again", device("mallory@example.com"), None);
    store.create_invite(&again, 10, NOW).await.unwrap();
    store.delete_account("mallory@example.com").await.unwrap();
    assert_eq!(store.invite(&again.token_hash).await.unwrap(), None);
}

/// An invitation ends with what made it: its creator's account (deleted
/// or disabled), the certificate its creator logged in with (disabled or
/// revoked), and the account a device invitation is for.
pub async fn invites_end_with_their_creator(store: &dyn Store) {
    create(store, ALICE).await;
    create(store, "bob@example.com").await;
    store
        .add_certificate(&certificate(ALICE, "laptop", 1))
        .await
        .unwrap();
    store
        .add_certificate(&certificate(ALICE, "desk", 2))
        .await
        .unwrap();
    let by_laptop = invite("t1", device(ALICE), made_by(ALICE, Some(1)));
    let by_desk = invite("t2", account(None), made_by(ALICE, Some(2)));
    let by_password = invite("t3", device(ALICE), made_by(ALICE, None));
    let for_bob = invite("t4", device("bob@example.com"), None);
    let bobs = invite("t5", account(None), made_by("bob@example.com", None));
    for made in [&by_laptop, &by_desk, &by_password, &for_bob, &bobs] {
        store.create_invite(made, 10, NOW).await.unwrap();
    }
    async fn left(store: &dyn Store) -> Vec<String> {
        let mut left: Vec<String> = store
            .invites(None, NOW)
            .await
            .unwrap()
            .iter()
            .map(Invite::id)
            .collect();
        left.sort();
        left
    }
    let ids = |invites: &[&Invite]| {
        let mut ids: Vec<String> = invites.iter().map(|i| i.id()).collect();
        ids.sort();
        ids
    };
    assert!(store.disable_certificate(ALICE, "laptop").await.unwrap());
    assert_eq!(
        left(store).await,
        ids(&[&by_desk, &by_password, &for_bob, &bobs])
    );
    store.revoke_certificate(ALICE, "desk", NOW).await.unwrap();
    assert_eq!(left(store).await, ids(&[&by_password, &for_bob, &bobs]));
    store.set_disabled("bob@example.com", true).await.unwrap();
    assert_eq!(left(store).await, ids(&[&by_password]));
    store.delete_account(ALICE).await.unwrap();
    assert!(left(store).await.is_empty());
}

/// Expired invitations are deleted; the others stay.
pub async fn invites_expire(store: &dyn Store) {
    let mut soon = invite("t-soon", account(None), None);
    soon.expires_at = NOW + 10;
    let later = invite("t-later", account(None), None);
    store.create_invite(&soon, 10, NOW).await.unwrap();
    store.create_invite(&later, 10, NOW).await.unwrap();
    assert_eq!(store.expire_invites(NOW + 9).await.unwrap(), 0);
    assert_eq!(store.expire_invites(NOW + 10).await.unwrap(), 1);
    assert_eq!(store.invite(&soon.token_hash).await.unwrap(), None);
    assert_eq!(store.invite(&later.token_hash).await.unwrap(), Some(later));
}
