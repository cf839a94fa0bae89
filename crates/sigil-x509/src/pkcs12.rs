//! PKCS#12 bundles for browsers and other clients.
//!
//! Keys and certificates are encrypted with PBES2 (PBKDF2-HMAC-SHA-256,
//! AES-256-CBC) and the bundle is authenticated with HMAC-SHA-256, which
//! OpenSSL 3 reads without `-legacy` and Chromium/NSS import. The RC2-40
//! scheme of older tools is never used.

use core::fmt;

use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, LocalKeyId, PrivateKey, PrivateKeyChain};
use sha1::{Digest, Sha1};

use crate::generate::Issued;

/// Why a bundle could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pkcs12Error(String);

impl fmt::Display for Pkcs12Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot make the PKCS#12 bundle: {}", self.0)
    }
}

impl core::error::Error for Pkcs12Error {}

/// Bundles `issued` (key and certificate) with the certificates of its
/// issuers (`chain`, DER, nearest first), under `friendly_name`, encrypted
/// with `password`.
pub fn bundle(
    issued: &Issued,
    chain: &[Vec<u8>],
    friendly_name: &str,
    password: &str,
) -> Result<Vec<u8>, Pkcs12Error> {
    let error = |e: p12_keystore::error::Error| Pkcs12Error(e.to_string());
    let key = PrivateKey::from_der(&issued.key_der()).map_err(error)?;
    let certificates = core::iter::once(&issued.certificate_der)
        .chain(chain)
        .map(|der| Certificate::from_der(der).map_err(error))
        .collect::<Result<Vec<_>, _>>()?;
    // The local key id ties the key to its certificate: the certificate's
    // SHA-1, as OpenSSL does.
    let local_key_id = LocalKeyId(Sha1::digest(&issued.certificate_der).to_vec());
    let mut store = KeyStore::new();
    store.add_entry(
        friendly_name,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id, key, certificates)),
    );
    store.writer(password).write().map_err(error)
}
