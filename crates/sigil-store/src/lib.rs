//! Sigil's storage.
//!
//! # The API, split by concern
//!
//! Eight traits each cover one kind of data, so that a part of the server
//! asks only for what it uses:
//!
//! - [`AccountStore`]: accounts, keyed by normalised bare JID
//!   (`local@domain`), with one set of SCRAM credentials per hash;
//! - [`RosterStore`]: rosters (RFC 6121), versioned per owner;
//! - [`OfflineStore`]: stanzas kept for offline accounts, with a quota;
//! - [`CertificateStore`]: client certificates (XEP-0257);
//! - [`BlockingStore`]: blocked JIDs (XEP-0191);
//! - [`SessionStore`]: the XEP-0198 state of sessions a shutdown ended;
//! - [`ArchiveStore`]: message archives (XEP-0313) and their preferences;
//! - [`DocumentStore`]: per-account XML documents (private storage, the
//!   vCard), capped per collection, and last activity.
//!
//! [`Store`] gathers the eight and is implemented for every type that
//! implements them. The methods return a boxed [`StoreFuture`], which keeps
//! the traits dyn-compatible: the server holds an `Arc<dyn Store>` and does
//! not care which backend is behind it.
//!
//! Keys are opaque, case-sensitive strings: the caller normalises JIDs.
//! Deleting an account deletes everything the account owns, in one
//! transaction.
//!
//! # Backends
//!
//! [`SqliteStore`] keeps everything in one SQLite file (rusqlite, with
//! SQLite built in); reads run on the calling thread, writes on the
//! blocking pool. Its
//! schema is versioned and upgraded by an in-crate migration runner that
//! refuses databases written by a newer version.
//!
//! Every backend must pass the [`conformance`] battery; the
//! [`conformance_tests!`] macro turns it into one test per behaviour.
//!
//! # Durability
//!
//! A write that returned `Ok` is committed and on stable storage. This
//! matters most for [`OfflineStore::store_offline`]: once it resolves the
//! server acknowledges the message to its sender, and losing it afterwards
//! would silently drop a message nobody else has anymore. SQLite therefore
//! runs in WAL mode with `synchronous = FULL`, which flushes the log at
//! every commit: slower than `NORMAL`, which can lose the last commits on a
//! power loss, but a chat server writes rarely enough to afford it.

mod error;
mod traits;
mod types;

mod any;
pub mod conformance;
pub mod postgres;
pub mod sqlite;

pub use any::{AnyStore, redact};
pub use error::StoreError;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use traits::{
    AccountStore, ArchiveStore, BlockingStore, CertificateStore, DocumentStore, InviteStore,
    OfflineStore, RosterStore, SessionStore, Store, TokenStore,
};
pub use types::{
    Account, ArchiveDefault, ArchivePage, ArchivePrefs, ArchiveQuery, ArchiveResult,
    ArchivedMessage, CertificateEntry, CertificateLookup, DocumentQuota, FastToken, Invite,
    InviteCreator, InviteKind, LastActivity, OfflineMessage, OfflineQuota, Redeemed, Redemption,
    RevokedCertificate, Roster, RosterItem, SavedSession, StoreFuture, Subscription, TokenGrounds,
    TokenSlot, UserAgentRecord, algorithm_from_name, algorithm_name, archive_id, archive_id_time,
    invite_token_hash,
};
