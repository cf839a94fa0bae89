//! The HT mechanisms (`HT-SHA-256-NONE`, `-ENDP`, `-EXPR`): a client proves
//! that it holds a token the server gave it (XEP-0484 FAST), in one round
//! trip, with the channel bound where the name says so.
//!
//! The wire format is draft-schmaus-kitten-sasl-ht-09's, the one XEP-0484
//! cites and its implementations speak:
//!
//! ```text
//! initiator = authcid NUL HMAC-SHA-256(token, "Initiator" || cb-data)
//! responder = HMAC-SHA-256(token, "Responder" || cb-data)
//! ```
//!
//! where the token is the UTF-8 string the server issued, and cb-data is
//! the connection's `tls-server-end-point` (ENDP) or `tls-exporter` (EXPR)
//! data, or nothing (NONE). `-UNIQ` (`tls-unique`) is not offered: it is
//! undefined on TLS 1.3 and unsafe on TLS 1.2 without the extended master
//! secret (see [`ChannelBindingType`]).
//!
//! The server never needs the token itself: tokens longer than the hash's
//! block (64 bytes) are, as HMAC keys, replaced by their SHA-256 (RFC 2104
//! §2), so the server keeps and uses that hash, a [`TokenKey`]. Servers
//! must therefore issue tokens longer than 64 bytes.

use core::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::channel_binding::ChannelBindingType;

/// The HT mechanisms implemented, most binding first.
pub const MECHANISMS: [&str; 3] = [ENDP, EXPR, NONE];

/// `HT-SHA-256-ENDP`: bound to `tls-server-end-point`.
pub const ENDP: &str = "HT-SHA-256-ENDP";
/// `HT-SHA-256-EXPR`: bound to `tls-exporter`.
pub const EXPR: &str = "HT-SHA-256-EXPR";
/// `HT-SHA-256-NONE`: unbound.
pub const NONE: &str = "HT-SHA-256-NONE";

/// Longest authcid accepted (the draft asks for at least 255 octets).
pub const MAX_AUTHCID: usize = 1024;

/// What an HT mechanism binds its proof to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// Nothing (`-NONE`).
    Unbound,
    /// The connection's channel binding data of this type.
    Channel(ChannelBindingType),
}

/// What the HT mechanism `mechanism` binds to; `None` for a name this
/// crate does not implement.
pub fn binding_of(mechanism: &str) -> Option<Binding> {
    match mechanism {
        NONE => Some(Binding::Unbound),
        ENDP => Some(Binding::Channel(ChannelBindingType::TlsServerEndPoint)),
        EXPR => Some(Binding::Channel(ChannelBindingType::TlsExporter)),
        _ => None,
    }
}

/// The key a server keeps for a token: its SHA-256, which is the HMAC key
/// the token stands for when it is longer than 64 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenKey(pub [u8; 32]);

impl TokenKey {
    /// The key of `token`; `None` when the token is 64 bytes or shorter
    /// (its HMAC key would be the token itself, which a server must not
    /// keep).
    pub fn of(token: &str) -> Option<Self> {
        (token.len() > 64).then(|| Self(Sha256::digest(token.as_bytes()).into()))
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// A token a server tries a client's proof against: its key, and the
/// condition to refuse the login with if the proof matches it anyway
/// (an expired token, one whose grounds are gone). Refusing only after
/// the proof matched tells a client without the token nothing about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenCandidate {
    /// The token's key.
    pub key: TokenKey,
    /// `Some`: a login with this token fails with this condition.
    pub refusal: Option<crate::Failure>,
}

impl From<TokenKey> for TokenCandidate {
    fn from(key: TokenKey) -> Self {
        Self { key, refusal: None }
    }
}

fn hmac(key: &[u8], label: &[u8], cb_data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; 32];
    };
    mac.update(label);
    mac.update(cb_data);
    mac.finalize().into_bytes().into()
}

/// The client's message for `token` (the key is the token's bytes).
pub fn initiator(authcid: &str, token: &[u8], cb_data: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(authcid.len() + 33);
    message.extend_from_slice(authcid.as_bytes());
    message.push(0);
    message.extend_from_slice(&hmac(token, b"Initiator", cb_data));
    message
}

/// The server's answer, proving it holds the token too.
pub fn responder(key: &[u8], cb_data: &[u8]) -> [u8; 32] {
    hmac(key, b"Responder", cb_data)
}

/// Splits an initiator message at its first NUL (the HMAC may hold NULs):
/// the authcid and the 32-byte proof.
pub fn split_initiator(message: &[u8]) -> Option<(&str, &[u8])> {
    let nul = message.iter().position(|b| *b == 0)?;
    let authcid = core::str::from_utf8(&message[..nul]).ok()?;
    let proof = &message[nul + 1..];
    (!authcid.is_empty() && authcid.len() <= MAX_AUTHCID && proof.len() == 32)
        .then_some((authcid, proof))
}

/// Whether `proof` is the initiator proof of the token whose key is `key`,
/// compared in constant time.
pub fn verify_initiator(key: &TokenKey, cb_data: &[u8], proof: &[u8]) -> bool {
    hmac(&key.0, b"Initiator", cb_data).ct_eq(proof).into()
}

/// Whether `answer` is the responder message for `token`, compared in
/// constant time.
pub fn verify_responder(token: &[u8], cb_data: &[u8], answer: &[u8]) -> bool {
    hmac(token, b"Responder", cb_data).ct_eq(answer).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn the_digests_vectors() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let token = b"WXZzciBwYmFmdmZnZiBqdmd1IGp2eXFhcmZm";
        let none = initiator("user", token, b"");
        assert_eq!(
            hex(&none[5..]),
            "9097787461a184e0fa84ec00c1381190b6c4d16a8ec4453c7b2ac5e7fcf935ed"
        );
        assert_eq!(
            b64.encode(&none),
            "dXNlcgCQl3h0YaGE4PqE7ADBOBGQtsTRao7ERTx7KsXn/Pk17Q=="
        );
        assert_eq!(
            b64.encode(responder(token, b"")),
            "TlE0CWMUdIY7mGyfPoweJ8op0derntQJfnr9YAe/nGI="
        );
        let cb: Vec<u8> = (0u8..32).collect();
        assert_eq!(
            hex(&initiator("user", token, &cb)[5..]),
            "0c5745576afeea711960549186a31a65c9f328205ee38b66825b3d4c872b395c"
        );
        assert_eq!(
            b64.encode(responder(token, &cb)),
            "EmBXmzTVWuuk5DBipBLbYJoKcVOr0hiw8UhEXE6DUp8="
        );
    }

    #[test]
    fn a_server_with_the_tokens_hash_verifies_what_the_client_sends() {
        let token = "t".repeat(96);
        let key = TokenKey::of(&token).unwrap();
        let cb = [7u8; 32];
        let message = initiator("alice", token.as_bytes(), &cb);
        let (authcid, proof) = split_initiator(&message).unwrap();
        assert_eq!(authcid, "alice");
        assert!(verify_initiator(&key, &cb, proof));
        assert!(
            !verify_initiator(&key, &[8u8; 32], proof),
            "another channel"
        );
        assert!(verify_responder(
            token.as_bytes(),
            &cb,
            &responder(&key.0, &cb)
        ));
        assert!(TokenKey::of(&"t".repeat(64)).is_none());
    }

    #[test]
    fn malformed_initiators_are_refused() {
        assert!(split_initiator(b"alice").is_none());
        assert!(split_initiator(b"\0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").is_none());
        let mut short = b"alice\0".to_vec();
        short.extend_from_slice(&[0u8; 31]);
        assert!(split_initiator(&short).is_none());
        // NULs inside the proof are the proof's.
        let mut zeros = b"alice\0".to_vec();
        zeros.extend_from_slice(&[0u8; 32]);
        assert_eq!(
            split_initiator(&zeros).map(|(a, p)| (a, p.len())),
            Some(("alice", 32))
        );
        assert_eq!(binding_of("HT-SHA-256-UNIQ"), None);
    }
}
