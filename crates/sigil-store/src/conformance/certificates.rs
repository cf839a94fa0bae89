//! Client certificates.

use super::{certificate, create};
use crate::{CertificateEntry, Store, StoreError};

/// Certificates read back as added, sorted by name, per owner.
pub async fn certificates_add_and_list(store: &dyn Store) {
    let owner = "juliet@example.com";
    create(store, owner).await;
    create(store, "romeo@example.net").await;
    let mut phone = certificate(owner, "phone", 2);
    phone.no_cert_management = true;
    let mut laptop = certificate(owner, "laptop", 1);
    laptop.disabled = true;
    laptop.der = (0..=255).collect();
    store.add_certificate(&phone).await.unwrap();
    store.add_certificate(&laptop).await.unwrap();
    store
        .add_certificate(&certificate("romeo@example.net", "desk", 3))
        .await
        .unwrap();
    assert_eq!(store.certificates(owner).await.unwrap(), [laptop, phone]);
    assert!(
        store
            .certificates("nobody@example.com")
            .await
            .unwrap()
            .is_empty()
    );
}

/// A name or a fingerprint already registered to the owner is refused,
/// naming the field; other owners may reuse both.
pub async fn certificates_conflicts(store: &dyn Store) {
    let owner = "juliet@example.com";
    create(store, owner).await;
    create(store, "romeo@example.net").await;
    let laptop = certificate(owner, "laptop", 1);
    store.add_certificate(&laptop).await.unwrap();

    assert_eq!(
        store
            .add_certificate(&certificate(owner, "laptop", 2))
            .await,
        Err(StoreError::Conflict("name".into()))
    );
    assert_eq!(
        store.add_certificate(&certificate(owner, "phone", 1)).await,
        Err(StoreError::Conflict("fingerprint".into()))
    );
    // Both at once: the name is reported.
    assert_eq!(
        store.add_certificate(&laptop).await,
        Err(StoreError::Conflict("name".into()))
    );
    assert_eq!(store.certificates(owner).await.unwrap(), [laptop]);

    store
        .add_certificate(&certificate("romeo@example.net", "laptop", 1))
        .await
        .unwrap();
    assert_eq!(
        store.certificates("romeo@example.net").await.unwrap().len(),
        1
    );
}

/// Disabling keeps the certificate but marks it; revoking deletes it and
/// hands it back; both report a missing name.
pub async fn certificates_disable_and_revoke(store: &dyn Store) {
    let owner = "juliet@example.com";
    create(store, owner).await;
    create(store, "romeo@example.net").await;
    let laptop = certificate(owner, "laptop", 1);
    let phone = certificate(owner, "phone", 2);
    store.add_certificate(&laptop).await.unwrap();
    store.add_certificate(&phone).await.unwrap();
    store
        .add_certificate(&certificate("romeo@example.net", "laptop", 3))
        .await
        .unwrap();

    assert!(store.disable_certificate(owner, "laptop").await.unwrap());
    // Disabling twice still finds it.
    assert!(store.disable_certificate(owner, "laptop").await.unwrap());
    assert!(!store.disable_certificate(owner, "tablet").await.unwrap());
    let mut disabled = laptop.clone();
    disabled.disabled = true;
    assert_eq!(
        store.certificates(owner).await.unwrap(),
        [disabled.clone(), phone.clone()]
    );
    // The other owner's certificate of the same name is untouched.
    let romeo = store.certificates("romeo@example.net").await.unwrap();
    assert!(!romeo[0].disabled);
    // Enabled again, and disabled once more.
    assert!(store.enable_certificate(owner, "laptop").await.unwrap());
    assert!(!store.certificates(owner).await.unwrap()[0].disabled);
    assert!(!store.enable_certificate(owner, "tablet").await.unwrap());
    assert!(store.disable_certificate(owner, "laptop").await.unwrap());

    assert_eq!(
        store
            .revoke_certificate(owner, "laptop", 1_800_000_000)
            .await
            .unwrap(),
        Some(disabled)
    );
    assert_eq!(
        store
            .revoke_certificate(owner, "laptop", 1_800_000_001)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.certificates(owner).await.unwrap(), [phone]);
    assert_eq!(
        store.certificates("romeo@example.net").await.unwrap(),
        romeo
    );

    // The name is free again; the certificate is not.
    assert_eq!(
        store.add_certificate(&laptop).await,
        Err(StoreError::Revoked)
    );
    let mut renamed = laptop.clone();
    renamed.name = "laptop-2".into();
    assert_eq!(
        store.add_certificate(&renamed).await,
        Err(StoreError::Revoked)
    );
    let new_laptop = certificate(owner, "laptop", 4);
    store.add_certificate(&new_laptop).await.unwrap();
}

/// A revocation is final: listed with its name, date and certificate,
/// flagged at every login lookup, kept when the account is deleted and
/// created again; another account's registration of the same certificate
/// is its own.
pub async fn certificates_revocation_is_final(store: &dyn Store) {
    use crate::RevokedCertificate;
    let owner = "juliet@example.com";
    create(store, owner).await;
    create(store, "romeo@example.net").await;
    assert!(store.revoked_certificates(owner).await.unwrap().is_empty());
    let laptop = certificate(owner, "laptop", 1);
    let phone = certificate(owner, "phone", 2);
    store.add_certificate(&laptop).await.unwrap();
    store.add_certificate(&phone).await.unwrap();
    store
        .add_certificate(&certificate("romeo@example.net", "shared", 1))
        .await
        .unwrap();
    store
        .revoke_certificate(owner, "phone", 1_800_000_005)
        .await
        .unwrap();
    store
        .revoke_certificate(owner, "laptop", 1_800_000_009)
        .await
        .unwrap();
    let revoked = |entry: &CertificateEntry, at| RevokedCertificate {
        owner: entry.owner.clone(),
        name: entry.name.clone(),
        fingerprint: entry.fingerprint,
        der: entry.der.clone(),
        revoked_at: at,
    };
    let expected = [
        revoked(&phone, 1_800_000_005),
        revoked(&laptop, 1_800_000_009),
    ];
    assert_eq!(store.revoked_certificates(owner).await.unwrap(), expected);
    assert!(
        store
            .revoked_certificates("romeo@example.net")
            .await
            .unwrap()
            .is_empty()
    );

    let lookup = store
        .certificate_lookup(owner, &[1; 32])
        .await
        .unwrap()
        .unwrap();
    assert!(lookup.revoked);
    assert_eq!(lookup.certificate, None);
    // A certificate never registered is not revoked.
    let lookup = store
        .certificate_lookup(owner, &[7; 32])
        .await
        .unwrap()
        .unwrap();
    assert!(!lookup.revoked);
    // Romeo's registration of the same certificate is his own.
    let lookup = store
        .certificate_lookup("romeo@example.net", &[1; 32])
        .await
        .unwrap()
        .unwrap();
    assert!(!lookup.revoked);
    assert!(lookup.certificate.is_some());

    assert!(store.delete_account(owner).await.unwrap());
    assert_eq!(
        store.certificate_lookup(owner, &[1; 32]).await.unwrap(),
        None
    );
    create(store, owner).await;
    assert_eq!(store.revoked_certificates(owner).await.unwrap(), expected);
    assert!(
        store
            .certificate_lookup(owner, &[1; 32])
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert_eq!(
        store.add_certificate(&laptop).await,
        Err(StoreError::Revoked)
    );

    // Forgetting (an operator's, for expired certificates) is per owner
    // and per certificate.
    assert_eq!(
        store
            .forget_revocations("romeo@example.net", &[laptop.fingerprint])
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .forget_revocations(owner, &[laptop.fingerprint, [9; 32]])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.revoked_certificates(owner).await.unwrap(),
        [revoked(&phone, 1_800_000_005)]
    );
    store.add_certificate(&laptop).await.unwrap();
}

/// A certificate is found by its fingerprint, only for its owner.
pub async fn certificate_by_fingerprint(store: &dyn Store) {
    let owner = "juliet@example.com";
    create(store, owner).await;
    create(store, "romeo@example.net").await;
    let laptop = certificate(owner, "laptop", 1);
    let phone = certificate(owner, "phone", 2);
    store.add_certificate(&laptop).await.unwrap();
    store.add_certificate(&phone).await.unwrap();

    assert_eq!(
        store
            .certificate_by_fingerprint(owner, &[2; 32])
            .await
            .unwrap(),
        Some(phone)
    );
    assert_eq!(
        store
            .certificate_by_fingerprint(owner, &[9; 32])
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .certificate_by_fingerprint("romeo@example.net", &[1; 32])
            .await
            .unwrap(),
        None
    );
    // Fingerprints differing in one byte are different certificates.
    let mut near = [1; 32];
    near[31] = 0;
    assert_eq!(
        store
            .certificate_by_fingerprint(owner, &near)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .certificate_by_fingerprint(owner, &[1; 32])
            .await
            .unwrap(),
        Some(laptop)
    );
}

/// Certificates for an owner without an account are refused with
/// `NotFound`; reads find nothing.
pub async fn certificates_require_account(store: &dyn Store) {
    let owner = "nobody@example.com";
    assert_eq!(
        store
            .add_certificate(&certificate(owner, "laptop", 1))
            .await,
        Err(StoreError::NotFound)
    );
    assert!(store.certificates(owner).await.unwrap().is_empty());
    assert!(!store.disable_certificate(owner, "laptop").await.unwrap());
    assert_eq!(
        store
            .revoke_certificate(owner, "laptop", 1_800_000_000)
            .await
            .unwrap(),
        None
    );
    assert!(store.revoked_certificates(owner).await.unwrap().is_empty());
}

/// The certificate-login read: no account, an account without the
/// certificate, with it (disabled or not), and a disabled account.
pub async fn certificate_lookup(store: &dyn Store) {
    use crate::CertificateLookup;
    let owner = "juliet@example.com";
    assert_eq!(
        store.certificate_lookup(owner, &[1; 32]).await.unwrap(),
        None
    );
    create(store, owner).await;
    create(store, "romeo@example.net").await;
    let lookup = |account_disabled, certificate| {
        Some(CertificateLookup {
            account_disabled,
            revoked: false,
            certificate,
            renewal: false,
            last_login_at: None,
        })
    };
    assert_eq!(
        store.certificate_lookup(owner, &[1; 32]).await.unwrap(),
        lookup(false, None)
    );
    let mut laptop = certificate(owner, "laptop", 1);
    store.add_certificate(&laptop).await.unwrap();
    store
        .add_certificate(&certificate("romeo@example.net", "desk", 2))
        .await
        .unwrap();
    assert_eq!(
        store.certificate_lookup(owner, &[1; 32]).await.unwrap(),
        lookup(false, Some(laptop.clone()))
    );
    // Another owner's certificate is not this account's.
    assert_eq!(
        store.certificate_lookup(owner, &[2; 32]).await.unwrap(),
        lookup(false, None)
    );
    store.disable_certificate(owner, "laptop").await.unwrap();
    laptop.disabled = true;
    assert_eq!(
        store.certificate_lookup(owner, &[1; 32]).await.unwrap(),
        lookup(false, Some(laptop.clone()))
    );
    store.set_disabled(owner, true).await.unwrap();
    assert_eq!(
        store.certificate_lookup(owner, &[1; 32]).await.unwrap(),
        lookup(true, Some(laptop))
    );
}

/// A walk through every account's certificates, page by page in order;
/// an expiry warning is recorded once per registered certificate and
/// goes with it.
pub async fn certificates_walk_and_expiry_warnings(store: &dyn Store) {
    for owner in ["alice@example.com", "bob@example.com", "carol@example.com"] {
        create(store, owner).await;
    }
    let mut all = Vec::new();
    for (n, (owner, name)) in [
        ("alice@example.com", "laptop"),
        ("alice@example.com", "phone"),
        ("bob@example.com", "desk"),
        ("carol@example.com", "a"),
        ("carol@example.com", "b"),
    ]
    .into_iter()
    .enumerate()
    {
        let entry = certificate(owner, name, u8::try_from(n).unwrap() + 1);
        store.add_certificate(&entry).await.unwrap();
        all.push(entry);
    }
    let mut walked = Vec::new();
    let mut after: Option<(String, String)> = None;
    loop {
        let page = store
            .all_certificates(after.as_ref().map(|(o, n)| (o.as_str(), n.as_str())), 2)
            .await
            .unwrap();
        let Some(last) = page.last() else {
            break;
        };
        after = Some((last.owner.clone(), last.name.clone()));
        assert!(page.len() <= 2);
        walked.extend(page);
    }
    assert_eq!(walked, all);

    let alice = "alice@example.com";
    assert!(store.mark_expiry_warned(alice, &[1; 32], 10).await.unwrap());
    assert!(!store.mark_expiry_warned(alice, &[1; 32], 11).await.unwrap());
    // Not registered (to this account): nothing recorded.
    assert!(!store.mark_expiry_warned(alice, &[3; 32], 10).await.unwrap());
    assert!(!store.mark_expiry_warned(alice, &[9; 32], 10).await.unwrap());
    // Revoked: the record goes with it.
    assert!(store.mark_expiry_warned(alice, &[2; 32], 10).await.unwrap());
    store.revoke_certificate(alice, "phone", 20).await.unwrap();
    store.forget_revocations(alice, &[[2; 32]]).await.unwrap();
    store
        .add_certificate(&certificate(alice, "phone", 2))
        .await
        .unwrap();
    assert!(store.mark_expiry_warned(alice, &[2; 32], 30).await.unwrap());
    // And with the account.
    store.delete_account(alice).await.unwrap();
    create(store, alice).await;
    store
        .add_certificate(&certificate(alice, "laptop", 1))
        .await
        .unwrap();
    assert!(store.mark_expiry_warned(alice, &[1; 32], 40).await.unwrap());
}
