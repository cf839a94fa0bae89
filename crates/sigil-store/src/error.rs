//! The one error type every store operation returns.

use core::fmt;

/// Why a store operation failed.
///
/// The variants name outcomes the caller acts on (an account that already
/// exists, a full offline queue); backend failures are carried as text so that
/// no database crate leaks into the API.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The record to create is already there (for example an account).
    AlreadyExists,
    /// The record, or the account it belongs to, does not exist.
    NotFound,
    /// A uniqueness rule was broken; the text names the field
    /// (`"name"`, `"fingerprint"`, `"algorithm"`, `"group"`).
    Conflict(String),
    /// A quota is exceeded: the owner's offline queue is full, or a
    /// document or collection of documents would be too large.
    QuotaExceeded,
    /// The certificate was revoked for this account: a revocation is final.
    Revoked,
    /// The record (an invitation) was valid once and has expired.
    Expired,
    /// The backend failed (I/O, locking, a closed pool); the text is the
    /// backend's own message.
    Backend(String),
    /// Stored data could not be decoded into the API's types.
    Corrupt(String),
    /// The database was written by a newer version of this software and is
    /// left untouched rather than misread.
    SchemaTooNew {
        /// The schema version found in the database.
        found: i64,
        /// The newest schema version this code knows.
        supported: i64,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyExists => f.write_str("the record already exists"),
            Self::NotFound => f.write_str("no such record"),
            Self::Conflict(field) => write!(f, "conflicting {field}: it is already in use"),
            Self::QuotaExceeded => f.write_str("the storage quota is exceeded"),
            Self::Revoked => f.write_str("the certificate was revoked for this account"),
            Self::Expired => f.write_str("the record has expired"),
            Self::Backend(message) => write!(f, "storage backend failed: {message}"),
            Self::Corrupt(message) => write!(f, "stored data is corrupt: {message}"),
            Self::SchemaTooNew { found, supported } => write!(
                f,
                "the database schema version {found} is newer than the newest this \
                 program knows ({supported}); upgrade the program or use another database"
            ),
        }
    }
}

impl std::error::Error for StoreError {}
