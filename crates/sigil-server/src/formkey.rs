//! The key of the devices page's form tokens ([`crate::devices_page`]):
//! an HMAC-SHA-256 key drawn at start, never stored or sent; a token is
//! the HMAC of the account and the certificate's fingerprint.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::auth::CertificateLogin;

/// The key of the page's form tokens: random, drawn at start, never
/// stored or sent.
pub(crate) struct FormKey([u8; 32]);

impl FormKey {
    /// A key from the operating system's generator; `None` if it fails.
    pub(crate) fn generate() -> Option<Self> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).ok()?;
        Some(Self(key))
    }

    /// The token of the forms shown to `login`.
    pub(crate) fn token(&self, login: &CertificateLogin) -> String {
        let tag = self.mac(login).finalize().into_bytes();
        tag.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `token` is the one of `login`'s forms (constant time).
    pub(crate) fn verify(&self, login: &CertificateLogin, token: &str) -> bool {
        let Some(tag) = unhex(token) else {
            return false;
        };
        self.mac(login).verify_slice(&tag).is_ok()
    }

    fn mac(&self, login: &CertificateLogin) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"sigil devices page\0");
        mac.update(login.account.as_str().as_bytes());
        mac.update(b"\0");
        mac.update(&login.fingerprint);
        mac
    }
}

impl std::fmt::Debug for FormKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FormKey(…)")
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_read_strictly() {
        assert_eq!(unhex("00ff"), Some(vec![0, 255]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }
}
