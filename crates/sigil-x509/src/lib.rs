//! XMPP client certificates, read and made.
//!
//! - [`CertificateInfo`] reads a DER or PEM certificate: its ordered
//!   `id-on-xmppAddr` identities (XEP-0178, each a JID, bare or full), the
//!   validity window, SHA-256 fingerprint, key kind, whether it may
//!   authenticate a TLS client, names for display.
//! - [`generate`] makes self-signed client certificates for one or more
//!   JIDs, a local CA and certificates signed by it, and server
//!   certificates; [`pkcs12`] bundles a key and its chain for a browser,
//!   encrypted with PBKDF2 and AES-256 so that OpenSSL 3 and Chromium import
//!   it.
//!
//! No async runtime, no clock reads: the current time is a parameter.

mod binding;
mod der;
#[cfg(feature = "generate")]
pub mod generate;
#[cfg(feature = "generate")]
pub mod pkcs12;
mod read;

pub use binding::tls_server_end_point;
pub use jid::{BareJid, FullJid, Jid};
pub use read::{
    CertificateInfo, ClientAuth, ID_ON_XMPPADDR, IdentityError, InvalidIdentity, KeyKind,
    MAX_INPUT_LEN, MAX_SUBJECT_ALT_NAMES, MAX_XMPP_ADDRS, ReadError, RevocationKey,
    RevocationListInfo, Validity, pem_certificates,
};
pub use time::OffsetDateTime;
