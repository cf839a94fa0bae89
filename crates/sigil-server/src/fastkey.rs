//! The secret FAST tokens (XEP-0484, [`crate::fast`]) are sealed with:
//! 32 random bytes in `fast.key` beside the configuration, mode 0600,
//! made on first start; one others may read is refused.

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sigil_sasl::ht::TokenKey;
use sigil_store::FastToken;

/// The secret tokens are sealed with, and their lifetime.
pub struct FastTokens {
    /// The sealing secret.
    secret: [u8; 32],
    seconds: i64,
}

impl std::fmt::Debug for FastTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastTokens")
            .field("seconds", &self.seconds)
            .finish_non_exhaustive()
    }
}

impl FastTokens {
    /// How long a token lives, in seconds.
    pub fn lifetime(&self) -> i64 {
        self.seconds
    }

    /// Reads the secret at `path`, or makes it there (mode 0600); tokens
    /// live `days`. A secret others may read is refused.
    pub fn load_or_create(path: &Path, days: u32) -> Result<Self, String> {
        let seconds = i64::from(days) * 86_400;
        if !path.exists() {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret)
                .map_err(|e| format!("no randomness for {}: {e}", path.display()))?;
            crate::files::write_new(path, &secret)?;
            return Ok(Self { secret, seconds });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(format!(
                    "{} may be read by others than its owner: chmod 600 it",
                    path.display()
                ));
            }
        }
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let secret = <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| format!("{} is not a 32-byte secret", path.display()))?;
        Ok(Self { secret, seconds })
    }

    /// The pad for one token: tied to its nonce and to the account,
    /// client and mechanism it belongs to, so a sealed key copied into
    /// another row unseals to nothing usable.
    fn pad(&self, token: &FastToken, nonce: &[u8]) -> [u8; 32] {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.secret) else {
            return [0; 32];
        };
        mac.update(b"sigil fast token\0");
        mac.update(nonce);
        for part in [&token.owner, &token.agent, &token.mechanism] {
            mac.update(part.as_bytes());
            mac.update(b"\0");
        }
        mac.finalize().into_bytes().into()
    }

    /// Seals the key of `token` (its owner, agent and mechanism set).
    pub(crate) fn seal(&self, token: &FastToken, key: &TokenKey) -> Option<Vec<u8>> {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).ok()?;
        let pad = self.pad(token, &nonce);
        let mut sealed = nonce.to_vec();
        sealed.extend(key.0.iter().zip(pad).map(|(k, p)| k ^ p));
        Some(sealed)
    }

    /// The key `sealed` holds for `token`.
    pub(crate) fn unseal(&self, token: &FastToken, sealed: &[u8]) -> Option<TokenKey> {
        let (nonce, body) = sealed.split_at_checked(16)?;
        let body = <[u8; 32]>::try_from(body).ok()?;
        let pad = self.pad(token, nonce);
        let mut key = [0u8; 32];
        for (out, (b, p)) in key.iter_mut().zip(body.iter().zip(pad)) {
            *out = b ^ p;
        }
        Some(TokenKey(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_round_trips_and_hides_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fast.key");
        let tokens = FastTokens::load_or_create(&path, 30).unwrap();
        let key = TokenKey::of(&"k".repeat(96)).unwrap();
        let row = FastToken {
            owner: "alice@example.org".into(),
            agent: "d4565fa7-4d72-4749-b3d3-740edbf87770".into(),
            mechanism: "HT-SHA-256-EXPR".into(),
            sealed: Vec::new(),
            certificate: None,
            issued_at: 0,
            expires_at: 1,
        };
        let sealed = tokens.seal(&row, &key).unwrap();
        assert_eq!(sealed.len(), 48);
        assert!(!sealed.windows(32).any(|w| w == key.0));
        assert_ne!(
            tokens.seal(&row, &key),
            Some(sealed.clone()),
            "a fresh nonce each time"
        );
        assert_eq!(tokens.unseal(&row, &sealed), Some(key.clone()));
        // Copied into another account's, client's or mechanism's row:
        // nothing usable.
        for other in [
            FastToken {
                owner: "mallory@example.org".into(),
                ..row.clone()
            },
            FastToken {
                agent: "6b1e2a3c-0d4e-4f5a-8b6c-7d8e9fa0b1c2".into(),
                ..row.clone()
            },
            FastToken {
                mechanism: "HT-SHA-256-NONE".into(),
                ..row.clone()
            },
        ] {
            assert_ne!(tokens.unseal(&other, &sealed), Some(key.clone()));
        }
        // The same secret read back unseals; another does not.
        let again = FastTokens::load_or_create(&path, 30).unwrap();
        assert_eq!(again.unseal(&row, &sealed), Some(key.clone()));
        let other = FastTokens::load_or_create(&dir.path().join("other.key"), 30).unwrap();
        assert_ne!(other.unseal(&row, &sealed), Some(key));
        assert_eq!(tokens.unseal(&row, &sealed[..40]), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(FastTokens::load_or_create(&path, 30).is_err());
        }
    }
}
