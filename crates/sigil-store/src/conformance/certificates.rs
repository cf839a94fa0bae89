//! Client certificates.

use super::{certificate, create};
use crate::{Store, StoreError};

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

    assert_eq!(
        store.revoke_certificate(owner, "laptop").await.unwrap(),
        Some(disabled)
    );
    assert_eq!(
        store.revoke_certificate(owner, "laptop").await.unwrap(),
        None
    );
    assert_eq!(store.certificates(owner).await.unwrap(), [phone]);
    assert_eq!(
        store.certificates("romeo@example.net").await.unwrap(),
        romeo
    );

    // The name and the fingerprint are free again.
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
        store.revoke_certificate(owner, "laptop").await.unwrap(),
        None
    );
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
            certificate,
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
