//! FAST tokens (XEP-0484) and SASL2 clients (XEP-0388).

use super::{certificate, create, credential};
use crate::{FastToken, Store, StoreError, TokenGrounds, TokenSlot, UserAgentRecord};

const NOW: i64 = 1_800_000_000;
const ALICE: &str = "alice@example.com";
const PHONE: &str = "d4565fa7-4d72-4749-b3d3-740edbf87770";
const LAPTOP: &str = "6b1e2a3c-0d4e-4f5a-8b6c-7d8e9fa0b1c2";

/// A token of `agent`, sealed as `seed`, from a login with the
/// certificate of `certificate` (or a password).
fn token(agent: &str, seed: u8, certificate: Option<u8>) -> FastToken {
    FastToken {
        owner: ALICE.into(),
        agent: agent.into(),
        mechanism: "HT-SHA-256-EXPR".into(),
        sealed: vec![seed; 48],
        certificate: certificate.map(|seed| [seed; 32]),
        issued_at: NOW,
        expires_at: NOW + 3600,
    }
}

/// What the token's issuing login proved: its certificate, or the
/// password of [`credential`] seed 1.
fn by(token: &FastToken) -> TokenGrounds {
    match token.certificate {
        Some(_) => TokenGrounds::Certificate,
        None => TokenGrounds::Password(credential(sigil_sasl::Algorithm::Sha256, 1).stored_key),
    }
}

async fn slots(store: &dyn Store, agent: &str) -> Vec<(TokenSlot, u8)> {
    store
        .fast_tokens(ALICE, agent)
        .await
        .unwrap()
        .into_iter()
        .map(|(slot, token)| (slot, token.sealed[0]))
        .collect()
}

async fn with_password(store: &dyn Store) {
    store
        .create_account(ALICE, &[credential(sigil_sasl::Algorithm::Sha256, 1)])
        .await
        .unwrap();
}

/// Issued as the new token (replacing a new one never used), promoted to
/// current on use (the old current goes), deleted by slot or whole,
/// expired; per client, and capped per account.
pub async fn fast_tokens_rotate_per_client(store: &dyn Store) {
    with_password(store).await;
    assert_eq!(
        store
            .issue_fast_token(&token(PHONE, 1, None), &by(&token(PHONE, 1, None)), 8)
            .await,
        Ok(())
    );
    assert_eq!(slots(store, PHONE).await, vec![(TokenSlot::New, 1)]);
    assert!(store.promote_fast_token(ALICE, PHONE).await.unwrap());
    assert!(!store.promote_fast_token(ALICE, PHONE).await.unwrap());
    store
        .issue_fast_token(&token(PHONE, 2, None), &by(&token(PHONE, 2, None)), 8)
        .await
        .unwrap();
    store
        .issue_fast_token(&token(PHONE, 3, None), &by(&token(PHONE, 3, None)), 8)
        .await
        .unwrap();
    assert_eq!(
        slots(store, PHONE).await,
        vec![(TokenSlot::New, 3), (TokenSlot::Current, 1)],
        "a new token replaces the unused new one, the current stays"
    );
    assert!(store.promote_fast_token(ALICE, PHONE).await.unwrap());
    assert_eq!(slots(store, PHONE).await, vec![(TokenSlot::Current, 3)]);
    assert_eq!(slots(store, LAPTOP).await, vec![]);
    let read = store.fast_tokens(ALICE, PHONE).await.unwrap();
    assert_eq!(read[0].1.mechanism, "HT-SHA-256-EXPR");
    assert_eq!(read[0].1.expires_at, NOW + 3600);

    // One client more than the cap is refused; the same client is not.
    assert_eq!(
        store
            .issue_fast_token(&token(LAPTOP, 4, None), &by(&token(LAPTOP, 4, None)), 1)
            .await,
        Err(StoreError::QuotaExceeded)
    );
    store
        .issue_fast_token(&token(PHONE, 5, None), &by(&token(PHONE, 5, None)), 1)
        .await
        .unwrap();
    assert_eq!(
        store
            .delete_fast_tokens(ALICE, PHONE, Some(TokenSlot::New))
            .await,
        Ok(1)
    );
    assert_eq!(slots(store, PHONE).await, vec![(TokenSlot::Current, 3)]);
    assert_eq!(store.delete_fast_tokens(ALICE, PHONE, None).await, Ok(1));
    assert_eq!(slots(store, PHONE).await, vec![]);

    // Expired tokens go, by the sweep or with the next token issued.
    let mut old = token(LAPTOP, 6, None);
    old.expires_at = NOW - 1;
    store.issue_fast_token(&old, &by(&old), 8).await.unwrap();
    assert_eq!(store.expire_fast_tokens(NOW).await, Ok(1));
    assert_eq!(slots(store, LAPTOP).await, vec![]);
    store.issue_fast_token(&old, &by(&old), 8).await.unwrap();
    store
        .issue_fast_token(&token(PHONE, 7, None), &by(&token(PHONE, 7, None)), 1)
        .await
        .unwrap();
    assert_eq!(
        slots(store, LAPTOP).await,
        vec![],
        "it took no client's place"
    );
    assert_eq!(slots(store, PHONE).await, vec![(TokenSlot::New, 7)]);

    // No account, or a disabled one: no token.
    let mut bob = token(PHONE, 8, None);
    bob.owner = "bob@example.com".into();
    assert_eq!(
        store.issue_fast_token(&bob, &by(&bob), 8).await,
        Err(StoreError::NotFound)
    );
}

/// A token dies with what issued it: its certificate disabled or
/// revoked, its password changed (only password tokens), its account
/// disabled or deleted; it follows the device to its next certificate;
/// a certificate not registered, or disabled, gets none.
pub async fn fast_tokens_end_with_what_issued_them(store: &dyn Store) {
    with_password(store).await;
    for (name, seed) in [("laptop", 1), ("phone", 2), ("tablet", 3)] {
        store
            .add_certificate(&certificate(ALICE, name, seed))
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .issue_fast_token(&token(PHONE, 1, Some(9)), &by(&token(PHONE, 1, Some(9))), 8)
            .await,
        Err(StoreError::NotFound),
        "an unregistered certificate"
    );
    store
        .issue_fast_token(
            &token(LAPTOP, 1, Some(1)),
            &by(&token(LAPTOP, 1, Some(1))),
            8,
        )
        .await
        .unwrap();
    store
        .issue_fast_token(&token(PHONE, 2, Some(2)), &by(&token(PHONE, 2, Some(2))), 8)
        .await
        .unwrap();
    store
        .issue_fast_token(
            &token("by-password", 3, None),
            &by(&token("by-password", 3, None)),
            8,
        )
        .await
        .unwrap();
    store
        .issue_fast_token(
            &token("tablet", 4, Some(3)),
            &by(&token("tablet", 4, Some(3))),
            8,
        )
        .await
        .unwrap();

    assert!(store.disable_certificate(ALICE, "laptop").await.unwrap());
    assert_eq!(slots(store, LAPTOP).await, vec![]);
    assert_eq!(
        store
            .issue_fast_token(
                &token(LAPTOP, 5, Some(1)),
                &by(&token(LAPTOP, 5, Some(1))),
                8
            )
            .await,
        Err(StoreError::NotFound),
        "a disabled certificate"
    );
    store.revoke_certificate(ALICE, "phone", NOW).await.unwrap();
    assert_eq!(slots(store, PHONE).await, vec![]);
    assert_eq!(slots(store, "by-password").await, vec![(TokenSlot::New, 3)]);

    // The tablet renews: its token follows it.
    store
        .renew_certificate(&certificate(ALICE, "tablet", 4), None)
        .await
        .unwrap();
    assert_eq!(
        store.promote_certificate(ALICE, &[4; 32]).await.unwrap(),
        Some([3; 32])
    );
    let tablet = store.fast_tokens(ALICE, "tablet").await.unwrap();
    assert_eq!(tablet[0].1.certificate, Some([4; 32]));

    // A new password ends the password's tokens only.
    store
        .set_credentials(ALICE, &[credential(sigil_sasl::Algorithm::Sha256, 2)])
        .await
        .unwrap();
    assert_eq!(slots(store, "by-password").await, vec![]);
    assert_eq!(slots(store, "tablet").await.len(), 1);
    // A login that checked the old password gets no token now; one by a
    // token gets one only while that token is still the client's.
    let stale = token("by-password", 9, None);
    assert_eq!(
        store.issue_fast_token(&stale, &by(&stale), 8).await,
        Err(StoreError::NotFound),
        "the password changed since the login checked it"
    );
    let rotated = token("tablet", 10, Some(4));
    assert_eq!(
        store
            .issue_fast_token(&rotated, &TokenGrounds::Token(vec![99; 48]), 8)
            .await,
        Err(StoreError::NotFound),
        "the token used is gone"
    );
    assert_eq!(
        store
            .issue_fast_token(&rotated, &TokenGrounds::Token(vec![4; 48]), 8)
            .await,
        Ok(()),
        "the token used is still the client's"
    );

    store.set_disabled(ALICE, true).await.unwrap();
    assert_eq!(slots(store, "tablet").await, vec![]);
    assert_eq!(
        store
            .issue_fast_token(
                &token("tablet", 6, Some(4)),
                &by(&token("tablet", 6, Some(4))),
                8
            )
            .await,
        Err(StoreError::NotFound),
        "a disabled account"
    );
    store.set_disabled(ALICE, false).await.unwrap();
    store
        .issue_fast_token(
            &token("tablet", 6, Some(4)),
            &by(&token("tablet", 6, Some(4))),
            8,
        )
        .await
        .unwrap();
    assert!(store.delete_account(ALICE).await.unwrap());
    create(store, ALICE).await;
    assert_eq!(slots(store, "tablet").await, vec![]);
}

/// Clients are recorded with their certificate, the latest login first,
/// updated in place, capped per account, and go with the account.
pub async fn user_agents_recorded_and_capped(store: &dyn Store) {
    create(store, ALICE).await;
    let record = |agent: &str, at: i64, certificate: Option<u8>| UserAgentRecord {
        owner: ALICE.into(),
        agent: agent.into(),
        software: Some("Conversations".into()),
        device: Some("Pixel".into()),
        certificate: certificate.map(|seed| [seed; 32]),
        last_login: at,
    };
    store
        .record_user_agent(&record(PHONE, NOW, Some(1)), 2)
        .await
        .unwrap();
    store
        .record_user_agent(&record(LAPTOP, NOW + 1, None), 2)
        .await
        .unwrap();
    store
        .record_user_agent(&record(PHONE, NOW + 2, Some(2)), 2)
        .await
        .unwrap();
    let seen = store.user_agents(ALICE).await.unwrap();
    assert_eq!(
        seen,
        vec![
            record(PHONE, NOW + 2, Some(2)),
            record(LAPTOP, NOW + 1, None)
        ]
    );
    store
        .record_user_agent(&record("third", NOW + 3, None), 2)
        .await
        .unwrap();
    let agents: Vec<String> = store
        .user_agents(ALICE)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.agent)
        .collect();
    assert_eq!(agents, vec!["third".to_owned(), PHONE.to_owned()]);
    let mut bob = record(PHONE, NOW, None);
    bob.owner = "bob@example.com".into();
    assert_eq!(
        store.record_user_agent(&bob, 2).await,
        Err(StoreError::NotFound)
    );
    assert!(store.delete_account(ALICE).await.unwrap());
    assert_eq!(store.user_agents(ALICE).await.unwrap(), vec![]);
}
