//! The conformance battery: the behaviour every backend must show.
//!
//! Each function checks one behaviour against a fresh, empty store and
//! panics (through `assert!`) when the store misbehaves; they are ordinary
//! async code, compiled in every build so that other crates' tests can call
//! them. [`conformance_tests!`](crate::conformance_tests) makes one test per
//! function:
//!
//! ```no_run
//! sigil_store::conformance_tests!(sqlite, async {
//!     sigil_store::SqliteStore::in_memory().await.unwrap()
//! });
//! ```
//!
//! The constructor runs once per test and may return anything that is a
//! [`Fixture`]: a store, or a `(store, guard)` pair whose guard (a temporary
//! directory, say) must live as long as the store.

// The battery is test code compiled into the library so other crates' tests
// can run it: a store call that fails is a failed test, and `unwrap` reports
// it with the error.
#![allow(
    clippy::unwrap_used,
    reason = "test battery: a failing store call is a failing test"
)]

mod accounts;
mod archive;
mod blocking;
mod certificates;
pub mod dataset;
mod documents;
mod invites;
mod offline;
mod renewals;
mod roster;
mod sessions;
mod text;
mod tokens;

use std::sync::Arc;

use sigil_sasl::scram::{Algorithm, StoredCredentials};

use crate::{CertificateEntry, Store};

pub use accounts::*;
pub use archive::*;
pub use blocking::*;
pub use certificates::*;
pub use documents::*;
pub use invites::*;
pub use offline::*;
pub use renewals::*;
pub use roster::*;
pub use sessions::*;
pub use text::*;
pub use tokens::*;

/// What a conformance test constructor returns: something that lends a
/// store for the length of the test.
pub trait Fixture {
    /// The store under test.
    fn store(&self) -> &dyn Store;
}

impl<S: Store> Fixture for S {
    fn store(&self) -> &dyn Store {
        self
    }
}

impl<S: Store, G> Fixture for (S, G) {
    fn store(&self) -> &dyn Store {
        &self.0
    }
}

impl Fixture for Arc<dyn Store> {
    fn store(&self) -> &dyn Store {
        self.as_ref()
    }
}

/// Expands to one `#[tokio::test]` per conformance function, in a module
/// named `$backend`.
///
/// `$constructor` is an expression of a future that resolves to a fresh,
/// empty [`Fixture`](crate::conformance::Fixture); it is evaluated once per
/// test inside the module, which glob-imports its parent so that the
/// expression may call the test file's helpers. The calling crate needs
/// `tokio` with the `macros` and `rt` features.
#[macro_export]
macro_rules! conformance_tests {
    (@each $constructor:expr; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                let fixture = $constructor.await;
                $crate::conformance::$test($crate::conformance::Fixture::store(&fixture)).await;
            }
        )*
    };
    ($backend:ident, $constructor:expr $(,)?) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;

            $crate::conformance_tests!(@each $constructor;
                accounts_create_and_read,
                accounts_duplicate_refused,
                accounts_list_sorted,
                accounts_missing,
                accounts_delete_cascades,
                accounts_keys_case_sensitive,
                credentials_per_algorithm,
                credentials_replaced,
                credentials_duplicate_algorithm_refused,
                disabled_flag,
                roster_empty,
                roster_versions_increase,
                roster_replace_item,
                roster_groups_round_trip,
                roster_duplicate_group_refused,
                roster_remove,
                roster_requires_account,
                roster_owners_isolated,
                offline_order_and_delete,
                offline_limit,
                offline_quota,
                offline_byte_quota,
                offline_quota_under_concurrency,
                offline_other_owner_untouched,
                offline_requires_account,
                offline_ids_not_reused,
                offline_owners,
                certificates_add_and_list,
                certificates_conflicts,
                certificates_disable_and_revoke,
                certificates_revocation_is_final,
                certificate_by_fingerprint,
                certificate_lookup,
                certificates_require_account,
                certificates_walk_and_expiry_warnings,
                renewal_logs_in_beside_the_current_until_promoted,
                renewal_rules,
                renewal_goes_with_its_device,
                certificate_last_login,
                unicode_and_quotes_round_trip,
                blocking_round_trip,
                blocking_requires_account,
                saved_sessions_round_trip,
                saved_sessions_expire,
                archive_paging,
                archive_filters,
                archive_ids_and_owners,
                archive_order_survives_the_clock,
                archive_ids_found_by_their_time,
                archive_prefs_expiry_and_deletion,
                archive_expiry_of_many,
                documents_round_trip,
                documents_quota,
                documents_require_account,
                last_activity_keeps_the_latest,
                invites_round_trip,
                invites_quota,
                invites_redeem_account,
                invites_redeem_device,
                invites_end_with_their_creator,
                invites_expire,
                fast_tokens_rotate_per_client,
                fast_tokens_end_with_what_issued_them,
                user_agents_recorded_and_capped,
            );
        }
    };
}

/// Credentials with recognisable, algorithm-sized bytes (no key
/// derivation: the store never looks inside).
fn credential(algorithm: Algorithm, seed: u8) -> StoredCredentials {
    let length = algorithm.output_len();
    StoredCredentials {
        algorithm,
        salt: vec![seed; 16],
        iterations: 4096 + u32::from(seed),
        stored_key: vec![seed.wrapping_add(1); length],
        server_key: vec![seed.wrapping_add(2); length],
    }
}

/// Creates an account without credentials.
async fn create(store: &dyn Store, jid: &str) {
    let created = store.create_account(jid, &[]).await;
    assert_eq!(created, Ok(()), "creating {jid}");
}

/// A certificate entry whose fingerprint and DER follow `seed`.
fn certificate(owner: &str, name: &str, seed: u8) -> CertificateEntry {
    CertificateEntry {
        owner: owner.into(),
        name: name.into(),
        fingerprint: [seed; 32],
        der: vec![0x30, 0x82, seed, seed],
        no_cert_management: false,
        disabled: false,
        added_at: 1_700_000_000 + i64::from(seed),
    }
}
