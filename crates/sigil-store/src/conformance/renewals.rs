//! A device's next certificate (renewal): registered beside the current
//! one, made current by its first login.

use super::{certificate, create};
use crate::{Invite, InviteCreator, InviteKind, Store, StoreError, invite_token_hash};

const ALICE: &str = "alice@example.com";

/// The next certificate of `name`, of `seed`.
fn next(owner: &str, name: &str, seed: u8) -> crate::CertificateEntry {
    certificate(owner, name, seed)
}

/// Both the current and the next certificate log in, the next one as a
/// renewal of the device; promoting it makes it the device's, the old one
/// no longer logs in, and what was tied to the old one moves or goes.
pub async fn renewal_logs_in_beside_the_current_until_promoted(store: &dyn Store) {
    create(store, ALICE).await;
    let mut laptop = certificate(ALICE, "laptop", 1);
    laptop.no_cert_management = true;
    store.add_certificate(&laptop).await.unwrap();
    store
        .renew_certificate(&next(ALICE, "laptop", 2), None)
        .await
        .unwrap();

    let current = store
        .certificate_lookup(ALICE, &[1; 32])
        .await
        .unwrap()
        .unwrap();
    assert!(!current.renewal);
    assert_eq!(current.certificate.as_ref(), Some(&laptop));
    let renewal = store
        .certificate_lookup(ALICE, &[2; 32])
        .await
        .unwrap()
        .unwrap();
    assert!(renewal.renewal);
    let entry = renewal.certificate.unwrap();
    assert_eq!(entry.name, "laptop");
    assert_eq!(entry.fingerprint, [2; 32]);
    assert_eq!(entry.der, certificate(ALICE, "laptop", 2).der);
    // The device's flags, not the ones the renewal was given.
    assert!(entry.no_cert_management);
    // Listed as the device's next one; the device is unchanged.
    let renewals = store.certificate_renewals(ALICE).await.unwrap();
    assert_eq!(renewals.len(), 1);
    assert_eq!(renewals[0].fingerprint, [2; 32]);
    assert_eq!(
        store.certificates(ALICE).await.unwrap(),
        vec![laptop.clone()]
    );

    // What the old one was tied to.
    assert!(store.mark_expiry_warned(ALICE, &[1; 32], 10).await.unwrap());
    let invite = Invite {
        token_hash: invite_token_hash("t"),
        kind: InviteKind::Device {
            account: ALICE.into(),
        },
        device: None,
        creator: Some(InviteCreator {
            account: ALICE.into(),
            certificate: Some([1; 32]),
        }),
        created_at: 100,
        expires_at: 10_000,
    };
    store.create_invite(&invite, 10, 100).await.unwrap();

    assert_eq!(
        store.promote_certificate(ALICE, &[2; 32]).await.unwrap(),
        Some([1; 32])
    );
    // The old one is no longer registered; the new one is the device's.
    let old = store
        .certificate_lookup(ALICE, &[1; 32])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.certificate, None);
    assert!(!old.revoked);
    let promoted = store
        .certificate_lookup(ALICE, &[2; 32])
        .await
        .unwrap()
        .unwrap();
    assert!(!promoted.renewal);
    let entry = promoted.certificate.unwrap();
    assert_eq!(
        (entry.name.as_str(), entry.added_at),
        ("laptop", laptop.added_at)
    );
    assert!(store.certificate_renewals(ALICE).await.unwrap().is_empty());
    // The new one has no warning yet; the invitation is the new one's,
    // so disabling the device still ends it.
    assert!(store.mark_expiry_warned(ALICE, &[2; 32], 20).await.unwrap());
    let moved = store.invite(&invite.token_hash).await.unwrap().unwrap();
    assert_eq!(moved.creator.unwrap().certificate, Some([2; 32]));
    assert!(store.disable_certificate(ALICE, "laptop").await.unwrap());
    assert_eq!(store.invite(&invite.token_hash).await.unwrap(), None);
    // Promoted once only.
    assert_eq!(
        store.promote_certificate(ALICE, &[2; 32]).await.unwrap(),
        None
    );
    assert_eq!(
        store.promote_certificate(ALICE, &[9; 32]).await.unwrap(),
        None
    );
}

/// A renewal needs its device, a certificate neither revoked nor
/// registered, and replaces an earlier renewal not yet used.
pub async fn renewal_rules(store: &dyn Store) {
    create(store, ALICE).await;
    create(store, "bob@example.com").await;
    store
        .add_certificate(&certificate(ALICE, "laptop", 1))
        .await
        .unwrap();
    store
        .add_certificate(&certificate(ALICE, "phone", 2))
        .await
        .unwrap();
    assert_eq!(
        store
            .renew_certificate(&next(ALICE, "tablet", 3), None)
            .await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store
            .renew_certificate(&next("bob@example.com", "laptop", 3), None)
            .await,
        Err(StoreError::NotFound)
    );
    // The phone's certificate, or the laptop's own.
    for seed in [1, 2] {
        assert_eq!(
            store
                .renew_certificate(&next(ALICE, "laptop", seed), None)
                .await,
            Err(StoreError::Conflict("fingerprint".into()))
        );
    }
    store
        .renew_certificate(&next(ALICE, "phone", 5), None)
        .await
        .unwrap();
    // Another device's next one.
    assert_eq!(
        store
            .renew_certificate(&next(ALICE, "laptop", 5), None)
            .await,
        Err(StoreError::Conflict("fingerprint".into()))
    );
    // Nor can a new device take it.
    assert_eq!(
        store
            .add_certificate(&certificate(ALICE, "tablet", 5))
            .await,
        Err(StoreError::Conflict("fingerprint".into()))
    );
    // A revoked certificate never comes back as a renewal.
    store
        .add_certificate(&certificate(ALICE, "old", 7))
        .await
        .unwrap();
    store.revoke_certificate(ALICE, "old", 50).await.unwrap();
    assert_eq!(
        store
            .renew_certificate(&next(ALICE, "laptop", 7), None)
            .await,
        Err(StoreError::Revoked)
    );
    // A renewal for the certificate a session logged in with: only while
    // that is still the device's.
    assert_eq!(
        store
            .renew_certificate(&next(ALICE, "laptop", 8), Some(&[2; 32]))
            .await,
        Err(StoreError::NotFound)
    );
    store
        .renew_certificate(&next(ALICE, "laptop", 8), Some(&[1; 32]))
        .await
        .unwrap();
    // A second renewal replaces the first, which no longer logs in.
    store
        .renew_certificate(&next(ALICE, "laptop", 3), None)
        .await
        .unwrap();
    store
        .renew_certificate(&next(ALICE, "laptop", 4), None)
        .await
        .unwrap();
    let first = store
        .certificate_lookup(ALICE, &[3; 32])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.certificate, None);
    assert!(!first.renewal);
    let renewals: Vec<_> = store
        .certificate_renewals(ALICE)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| (entry.name, entry.fingerprint[0]))
        .collect();
    assert_eq!(
        renewals,
        [("laptop".to_owned(), 4), ("phone".to_owned(), 5)]
    );
    // Another account may hold the same certificate: fingerprints are
    // per account, as registrations are.
    store
        .add_certificate(&certificate("bob@example.com", "desk", 6))
        .await
        .unwrap();
    store
        .renew_certificate(&next("bob@example.com", "desk", 4), None)
        .await
        .unwrap();
}

/// Disabling the device stops both; revoking it revokes both, for good;
/// deleting the account takes the renewal with it.
pub async fn renewal_goes_with_its_device(store: &dyn Store) {
    create(store, ALICE).await;
    store
        .add_certificate(&certificate(ALICE, "laptop", 1))
        .await
        .unwrap();
    store
        .renew_certificate(&next(ALICE, "laptop", 2), None)
        .await
        .unwrap();
    assert!(store.disable_certificate(ALICE, "laptop").await.unwrap());
    // A disabled device's renewal is not promoted (and stays pending).
    assert_eq!(
        store.promote_certificate(ALICE, &[2; 32]).await.unwrap(),
        None
    );
    assert_eq!(store.certificate_renewals(ALICE).await.unwrap().len(), 1);
    let disabled = store
        .certificate_lookup(ALICE, &[2; 32])
        .await
        .unwrap()
        .unwrap();
    assert!(disabled.certificate.unwrap().disabled);
    assert!(store.enable_certificate(ALICE, "laptop").await.unwrap());

    let revoked = store
        .revoke_certificate(ALICE, "laptop", 60)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.fingerprint, [1; 32]);
    for seed in [1, 2] {
        let lookup = store
            .certificate_lookup(ALICE, &[seed; 32])
            .await
            .unwrap()
            .unwrap();
        assert!(lookup.revoked, "{seed}");
        assert_eq!(lookup.certificate, None);
    }
    let mut fingerprints: Vec<u8> = store
        .revoked_certificates(ALICE)
        .await
        .unwrap()
        .iter()
        .map(|r| r.fingerprint[0])
        .collect();
    fingerprints.sort_unstable();
    assert_eq!(fingerprints, [1, 2]);
    assert_eq!(
        store.promote_certificate(ALICE, &[2; 32]).await.unwrap(),
        None
    );
    assert!(store.certificate_renewals(ALICE).await.unwrap().is_empty());

    store
        .add_certificate(&certificate(ALICE, "phone", 3))
        .await
        .unwrap();
    store
        .renew_certificate(&next(ALICE, "phone", 4), None)
        .await
        .unwrap();
    store.delete_account(ALICE).await.unwrap();
    create(store, ALICE).await;
    assert!(store.certificate_renewals(ALICE).await.unwrap().is_empty());
    store
        .add_certificate(&certificate(ALICE, "tablet", 4))
        .await
        .unwrap();
}

/// A device's last login: recorded at most once an hour, read with the
/// login lookup, kept through a renewal, gone with the device.
pub async fn certificate_last_login(store: &dyn Store) {
    create(store, ALICE).await;
    store
        .add_certificate(&certificate(ALICE, "laptop", 1))
        .await
        .unwrap();
    store
        .add_certificate(&certificate(ALICE, "phone", 2))
        .await
        .unwrap();
    let last = |lookup: Option<crate::CertificateLookup>| lookup.unwrap().last_login_at;
    assert_eq!(
        last(store.certificate_lookup(ALICE, &[1; 32]).await.unwrap()),
        None
    );
    store
        .record_certificate_login(ALICE, "laptop", 10_000)
        .await
        .unwrap();
    // Within the hour: not written again.
    store
        .record_certificate_login(ALICE, "laptop", 12_000)
        .await
        .unwrap();
    assert_eq!(
        last(store.certificate_lookup(ALICE, &[1; 32]).await.unwrap()),
        Some(10_000)
    );
    store
        .record_certificate_login(ALICE, "laptop", 13_600)
        .await
        .unwrap();
    // No device, nothing recorded.
    store
        .record_certificate_login(ALICE, "tablet", 13_600)
        .await
        .unwrap();
    assert_eq!(
        store.certificate_logins(ALICE).await.unwrap(),
        [("laptop".to_owned(), 13_600)]
    );
    // The device's renewal finds it too, and keeps it once promoted.
    store
        .renew_certificate(&certificate(ALICE, "laptop", 3), None)
        .await
        .unwrap();
    assert_eq!(
        last(store.certificate_lookup(ALICE, &[3; 32]).await.unwrap()),
        Some(13_600)
    );
    store.promote_certificate(ALICE, &[3; 32]).await.unwrap();
    assert_eq!(
        last(store.certificate_lookup(ALICE, &[3; 32]).await.unwrap()),
        Some(13_600)
    );
    store
        .revoke_certificate(ALICE, "laptop", 20_000)
        .await
        .unwrap();
    assert!(store.certificate_logins(ALICE).await.unwrap().is_empty());
}
