//! SCRAM (RFC 5802, RFC 7677) with SHA-1, SHA-256 and SHA-512, and the
//! `-PLUS` variants with channel binding.
//!
//! Credentials are stored as RFC 5802 asks: salt, iteration count, `StoredKey`
//! and `ServerKey`. [`StoredCredentials::derive`] makes them from a password,
//! which is then forgotten. PLAIN is checked against the same keys, so one
//! stored form serves both mechanisms.
//!
//! # Channel binding and the GS2 flag
//!
//! The types are `tls-exporter` (preferred) and `tls-server-end-point`
//! ([`crate::ChannelBindingType`]). A client says `y` only when it has
//! binding data and the server offered no `-PLUS` at all; otherwise `n`
//! or, with a `-PLUS` mechanism, `p=`. The server refuses `y` when it
//! offered `-PLUS` on that connection (a stripped offer), `n` or `y` with a
//! `-PLUS` mechanism, and `p=` with a plain one.
//!
//! # Unknown users
//!
//! The server answers an unknown user with a salt derived from the user
//! name and a random key of the mechanism's factory, and the default
//! iteration count, so the exchange looks the same until the proof fails.

use core::fmt;

use hmac::{Hmac, Mac};
use sha1::Sha1 as Sha1Digest;
use sha2::{Digest, Sha256 as Sha256Digest, Sha512 as Sha512Digest};
use subtle::ConstantTimeEq;

use crate::saslprep::{SaslprepError, saslprep};

/// The lowest iteration count a client accepts and the server helper derives
/// with (RFC 5802 §5.1 and RFC 7677 §4 ask for at least 4096).
pub const MIN_ITERATIONS: u32 = 4096;

/// The default highest iteration count a client accepts from a server, so
/// that a hostile server cannot make the client burn minutes of CPU.
pub const DEFAULT_MAX_ITERATIONS: u32 = 1_000_000;

/// The default iteration count for new credentials.
pub const DEFAULT_ITERATIONS: u32 = 10_000;

/// A SCRAM hash at the type level, so that each mechanism variant is its own
/// type (and can be named in an allow-list by type).
pub trait ScramHash: sealed::Sealed + Send + Sync + 'static {
    /// The hash this type stands for.
    const ALGORITHM: Algorithm;
}

/// SHA-1, at the type level.
#[derive(Debug)]
pub struct Sha1;
/// SHA-256, at the type level.
#[derive(Debug)]
pub struct Sha256;
/// SHA-512, at the type level.
#[derive(Debug)]
pub struct Sha512;

impl ScramHash for Sha1 {
    const ALGORITHM: Algorithm = Algorithm::Sha1;
}
impl ScramHash for Sha256 {
    const ALGORITHM: Algorithm = Algorithm::Sha256;
}
impl ScramHash for Sha512 {
    const ALGORITHM: Algorithm = Algorithm::Sha512;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Sha1 {}
    impl Sealed for super::Sha256 {}
    impl Sealed for super::Sha512 {}
}

/// The hash function of a SCRAM mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-1 (`SCRAM-SHA-1`, RFC 5802).
    Sha1,
    /// SHA-256 (`SCRAM-SHA-256`, RFC 7677).
    Sha256,
    /// SHA-512 (`SCRAM-SHA-512`).
    Sha512,
}

impl Algorithm {
    /// Every algorithm, strongest first.
    pub const ALL: [Self; 3] = [Self::Sha512, Self::Sha256, Self::Sha1];

    /// The mechanism name: `SCRAM-SHA-256` or, with channel binding,
    /// `SCRAM-SHA-256-PLUS`.
    pub fn mechanism_name(self, plus: bool) -> &'static str {
        match (self, plus) {
            (Self::Sha1, false) => "SCRAM-SHA-1",
            (Self::Sha1, true) => "SCRAM-SHA-1-PLUS",
            (Self::Sha256, false) => "SCRAM-SHA-256",
            (Self::Sha256, true) => "SCRAM-SHA-256-PLUS",
            (Self::Sha512, false) => "SCRAM-SHA-512",
            (Self::Sha512, true) => "SCRAM-SHA-512-PLUS",
        }
    }

    /// The output length of the hash in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    pub(crate) fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => Sha1Digest::digest(data).to_vec(),
            Self::Sha256 => Sha256Digest::digest(data).to_vec(),
            Self::Sha512 => Sha512Digest::digest(data).to_vec(),
        }
    }

    pub(crate) fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => hmac_with!(Sha1Digest, key, data),
            Self::Sha256 => hmac_with!(Sha256Digest, key, data),
            Self::Sha512 => hmac_with!(Sha512Digest, key, data),
        }
    }

    /// `Hi()` of RFC 5802: PBKDF2 with HMAC of this hash.
    pub(crate) fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0; self.output_len()];
        match self {
            Self::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1Digest>(password, salt, iterations, &mut out),
            Self::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256Digest>(password, salt, iterations, &mut out)
            }
            Self::Sha512 => {
                pbkdf2::pbkdf2_hmac::<Sha512Digest>(password, salt, iterations, &mut out)
            }
        }
        out
    }

    pub(crate) fn client_key(self, salted_password: &[u8]) -> Vec<u8> {
        self.hmac(salted_password, b"Client Key")
    }

    pub(crate) fn server_key(self, salted_password: &[u8]) -> Vec<u8> {
        self.hmac(salted_password, b"Server Key")
    }
}

/// HMAC with the digest `$digest` (a macro: the `hmac` crate's generic bounds
/// are verbose, and there are only three digests).
macro_rules! hmac_with {
    ($digest:ty, $key:expr, $data:expr) => {{
        // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
        match <Hmac<$digest> as Mac>::new_from_slice($key) {
            Ok(mut mac) => {
                mac.update($data);
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => unreachable!("HMAC takes keys of any length"),
        }
    }};
}
use hmac_with;

/// What a server stores for one account and one SCRAM hash: never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCredentials {
    /// The hash these keys were made with.
    pub algorithm: Algorithm,
    /// The salt, raw bytes.
    pub salt: Vec<u8>,
    /// The PBKDF2 iteration count.
    pub iterations: u32,
    /// `H(HMAC(SaltedPassword, "Client Key"))`.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
}

impl fmt::Debug for StoredCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredCredentials")
            .field("algorithm", &self.algorithm)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Why credentials could not be derived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeriveError {
    /// The iteration count is below [`MIN_ITERATIONS`].
    IterationsTooLow,
    /// The password is refused by SASLprep.
    Password(SaslprepError),
    /// The salt is empty.
    EmptySalt,
    /// No random salt could be made.
    RandomUnavailable,
}

impl fmt::Display for DeriveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IterationsTooLow => {
                write!(f, "the iteration count must be at least {MIN_ITERATIONS}")
            }
            Self::Password(e) => write!(f, "password: {e}"),
            Self::EmptySalt => f.write_str("the salt must not be empty"),
            Self::RandomUnavailable => f.write_str("the system random number generator failed"),
        }
    }
}

impl core::error::Error for DeriveError {}

impl StoredCredentials {
    /// Derives the stored keys from `password` (SASLprep'd first).
    pub fn derive(
        algorithm: Algorithm,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, DeriveError> {
        if iterations < MIN_ITERATIONS {
            return Err(DeriveError::IterationsTooLow);
        }
        if salt.is_empty() {
            return Err(DeriveError::EmptySalt);
        }
        let prepared = saslprep(password).map_err(DeriveError::Password)?;
        Ok(Self::from_salted_password(
            algorithm,
            &algorithm.salted_password(prepared.as_bytes(), salt, iterations),
            salt,
            iterations,
        ))
    }

    /// Derives the stored keys with a fresh random 16-byte salt and
    /// [`DEFAULT_ITERATIONS`].
    pub fn generate(algorithm: Algorithm, password: &str) -> Result<Self, DeriveError> {
        let mut salt = [0u8; 16];
        crate::random::fill(&mut salt).map_err(|_| DeriveError::RandomUnavailable)?;
        Self::derive(algorithm, password, &salt, DEFAULT_ITERATIONS)
    }

    fn from_salted_password(
        algorithm: Algorithm,
        salted_password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Self {
        Self {
            algorithm,
            salt: salt.to_vec(),
            iterations,
            stored_key: algorithm.hash(&algorithm.client_key(salted_password)),
            server_key: algorithm.server_key(salted_password),
        }
    }

    /// Credentials no password matches, as costly to check as those
    /// [`Self::generate`] makes with the strongest hash (the one a PLAIN
    /// login is checked against): checked in place of an unknown user's.
    pub fn stand_in() -> Self {
        let algorithm = Algorithm::Sha512;
        Self {
            algorithm,
            salt: vec![0; 16],
            iterations: DEFAULT_ITERATIONS,
            // No derivation gives all zeros but with negligible chance.
            stored_key: vec![0; algorithm.output_len()],
            server_key: vec![0; algorithm.output_len()],
        }
    }

    /// Checks a plain password against these credentials in constant time
    /// (used by the PLAIN server mechanism, so one stored form serves both).
    pub fn verify_password(&self, password: &str) -> bool {
        let Ok(prepared) = saslprep(password) else {
            return false;
        };
        let salted =
            self.algorithm
                .salted_password(prepared.as_bytes(), &self.salt, self.iterations);
        let stored_key = self.algorithm.hash(&self.algorithm.client_key(&salted));
        bool::from(stored_key.ct_eq(&self.stored_key))
    }
}

/// Escapes a user name or authzid for a SCRAM attribute (RFC 5802 §5.1).
pub(crate) fn escape_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// Reverses [`escape_saslname`]; `None` for a stray `=`.
pub(crate) fn unescape_saslname(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3)?;
        out.push(match escape {
            "=2C" => ',',
            "=3D" => '=',
            _ => return None,
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// A SCRAM message split into its `k=value` attributes, in order.
pub(crate) struct Attributes<'a>(Vec<(u8, &'a str)>);

impl<'a> Attributes<'a> {
    /// Splits on `,`; every part must be `letter=value`.
    pub(crate) fn parse(message: &'a str) -> Option<Self> {
        message
            .split(',')
            .map(|part| {
                let bytes = part.as_bytes();
                (bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b'=')
                    .then(|| (bytes[0], &part[2..]))
            })
            .collect::<Option<Vec<_>>>()
            .map(Self)
    }

    /// The value of the attribute `key` after the first `skip`, if any
    /// (an extension such as XEP-0474's `h`).
    pub(crate) fn extension(&self, skip: usize, key: u8) -> Option<&'a str> {
        self.0
            .iter()
            .skip(skip)
            .find(|(name, _)| *name == key)
            .map(|(_, value)| *value)
    }

    /// The attributes must start with `keys`, in this order, each once
    /// (extensions may follow); their values are returned in the same
    /// order.
    pub(crate) fn expect_prefix<const N: usize>(&self, keys: [u8; N]) -> Option<[&'a str; N]> {
        let first = Self(self.0.iter().take(N).copied().collect());
        first.expect(keys)
    }

    /// The attributes must be exactly `keys`, in this order, each once;
    /// their values are returned in the same order.
    pub(crate) fn expect<const N: usize>(&self, keys: [u8; N]) -> Option<[&'a str; N]> {
        if self.0.len() != N {
            return None;
        }
        let mut values = [""; N];
        for (slot, (&wanted, &(key, value))) in values.iter_mut().zip(keys.iter().zip(&self.0)) {
            if key != wanted {
                return None;
            }
            *slot = value;
        }
        Some(values)
    }
}

/// A printable nonce (RFC 5802 `printable`: 0x21–0x7E except `,`).
pub(crate) fn is_printable(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// A fresh random nonce: 18 random bytes, base64 (24 printable characters).
pub(crate) fn fresh_nonce() -> Result<String, crate::random::RandomUnavailable> {
    use base64::Engine as _;
    let mut bytes = [0u8; 18];
    crate::random::fill(&mut bytes)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

pub(crate) fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saslname_escaping_round_trips() {
        assert_eq!(escape_saslname("a,b=c"), "a=2Cb=3Dc");
        assert_eq!(unescape_saslname("a=2Cb=3Dc").unwrap(), "a,b=c");
        assert_eq!(unescape_saslname("plain").unwrap(), "plain");
        assert!(unescape_saslname("a=2").is_none());
        assert!(unescape_saslname("a=41").is_none());
        assert!(unescape_saslname("=").is_none());
    }

    #[test]
    fn attributes_are_exact() {
        let attrs = Attributes::parse("r=abc,s=c2FsdA==,i=4096").unwrap();
        assert_eq!(
            attrs.expect([b'r', b's', b'i']),
            Some(["abc", "c2FsdA==", "4096"])
        );
        assert!(attrs.expect([b'r', b's']).is_none());
        assert!(attrs.expect([b'r', b'i', b's']).is_none());
        assert!(Attributes::parse("r=abc,,i=1").is_none());
        assert!(Attributes::parse("rabc").is_none());
        assert!(Attributes::parse("1=abc").is_none());
    }

    #[test]
    fn derive_refuses_weak_parameters() {
        assert_eq!(
            StoredCredentials::derive(Algorithm::Sha256, "pencil", b"salt", 4095),
            Err(DeriveError::IterationsTooLow)
        );
        assert_eq!(
            StoredCredentials::derive(Algorithm::Sha256, "pencil", b"", 4096),
            Err(DeriveError::EmptySalt)
        );
        assert!(matches!(
            StoredCredentials::derive(Algorithm::Sha256, "\u{0007}", b"salt", 4096),
            Err(DeriveError::Password(_))
        ));
    }

    #[test]
    fn verify_password_matches_only_the_password() {
        let creds = StoredCredentials::derive(Algorithm::Sha1, "pencil", b"salty", 4096).unwrap();
        assert!(creds.verify_password("pencil"));
        assert!(!creds.verify_password("pencil2"));
        assert!(!creds.verify_password(""));
        let generated = StoredCredentials::generate(Algorithm::Sha512, "pencil").unwrap();
        assert_eq!(generated.stored_key.len(), 64);
        assert_eq!(generated.iterations, DEFAULT_ITERATIONS);
        assert!(generated.verify_password("pencil"));
    }

    /// The stand-in an unknown user's PLAIN password is checked against
    /// costs what a new account's strongest credentials cost, and no
    /// password passes it.
    #[test]
    fn the_stand_in_costs_as_much_and_matches_nothing() {
        let stand_in = StoredCredentials::stand_in();
        let real = StoredCredentials::generate(Algorithm::Sha512, "pencil").unwrap();
        assert_eq!(stand_in.algorithm, real.algorithm);
        assert_eq!(stand_in.iterations, real.iterations);
        assert_eq!(stand_in.salt.len(), real.salt.len());
        for password in ["pencil", "", "0"] {
            assert!(!stand_in.verify_password(password));
        }
    }
}
