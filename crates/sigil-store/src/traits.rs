//! The store API, one trait per concern.
//!
//! Every key is a normalised bare JID (`local@domain`) that the caller made;
//! the store compares keys as opaque, case-sensitive strings.
//!
//! Reads for an owner without an account answer as for an empty account
//! (no items, no messages); writes for such an owner fail with
//! [`StoreError::NotFound`].

use sigil_sasl::scram::{Algorithm, StoredCredentials};

#[cfg(doc)]
use crate::StoreError;
use crate::{
    Account, ArchivePrefs, ArchiveQuery, ArchiveResult, ArchivedMessage, CertificateEntry,
    CertificateLookup, DocumentQuota, FastToken, Invite, LastActivity, OfflineMessage,
    OfflineQuota, Redeemed, Redemption, RevokedCertificate, Roster, RosterItem, SavedSession,
    StoreFuture, TokenGrounds, TokenSlot, UserAgentRecord,
};

/// Everything the server needs, in one object-safe trait.
///
/// Implemented for every type that implements the concern traits.
pub trait Store:
    AccountStore
    + RosterStore
    + OfflineStore
    + CertificateStore
    + BlockingStore
    + SessionStore
    + ArchiveStore
    + DocumentStore
    + InviteStore
    + TokenStore
    + Send
    + Sync
{
}

impl<T> Store for T where
    T: AccountStore
        + RosterStore
        + OfflineStore
        + CertificateStore
        + BlockingStore
        + SessionStore
        + ArchiveStore
        + DocumentStore
        + InviteStore
        + TokenStore
        + Send
        + Sync
{
}

/// Message archives (XEP-0313), one per account, in the order messages
/// were archived.
pub trait ArchiveStore: Send + Sync {
    /// Archives these messages, in one transaction, in order. Those whose
    /// owner has no account are left out; the answer is how many were
    /// archived. Ids made by [`archive_id`](crate::archive_id) are unique by
    /// their random part; for an id of another form the owner already
    /// holds, [`StoreError::Conflict`]`("id")` (nothing is archived then).
    fn archive(&self, messages: Vec<ArchivedMessage>) -> StoreFuture<'_, u64>;

    /// A page of `owner`'s archive. [`StoreError::NotFound`] when an id the
    /// query pages or filters from is not in the archive.
    fn archive_query<'a>(
        &'a self,
        owner: &'a str,
        query: &'a ArchiveQuery,
    ) -> StoreFuture<'a, ArchiveResult>;

    /// `owner`'s archiving preferences, if set.
    fn archive_prefs<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, Option<ArchivePrefs>>;

    /// Replaces `owner`'s archiving preferences; [`StoreError::NotFound`]
    /// without an account.
    fn set_archive_prefs<'a>(
        &'a self,
        owner: &'a str,
        prefs: &'a ArchivePrefs,
    ) -> StoreFuture<'a, ()>;

    /// Deletes the messages archived before `before` (Unix microseconds),
    /// and each owner's oldest beyond its newest `keep` messages; how
    /// many were deleted.
    fn expire_archive(&self, before: i64, keep: u64) -> StoreFuture<'_, u64>;
}

/// Per-account XML documents, in named collections of keyed documents
/// (XEP-0049 private storage keyed by namespace, the XEP-0054 vCard), and
/// when the account was last seen (XEP-0012).
///
/// A document is text the store does not look into; the caller serialises
/// and parses it. Every collection is capped by the [`DocumentQuota`] the
/// caller passes with each write.
pub trait DocumentStore: Send + Sync {
    /// The document `key` of `owner`'s `collection`.
    fn document<'a>(
        &'a self,
        owner: &'a str,
        collection: &'a str,
        key: &'a str,
    ) -> StoreFuture<'a, Option<String>>;

    /// The keys of `owner`'s `collection`, sorted.
    fn document_keys<'a>(
        &'a self,
        owner: &'a str,
        collection: &'a str,
    ) -> StoreFuture<'a, Vec<String>>;

    /// Changes documents of `owner`'s `collection` in one transaction: a
    /// `Some` replaces (or adds) the document of its key, a `None` deletes
    /// it. [`StoreError::NotFound`] without an account;
    /// [`StoreError::QuotaExceeded`], and nothing changed, if a document
    /// is longer than `quota.bytes` or the collection would grow past
    /// `quota.documents` documents.
    fn put_documents<'a>(
        &'a self,
        owner: &'a str,
        collection: &'a str,
        changes: &'a [(String, Option<String>)],
        quota: DocumentQuota,
    ) -> StoreFuture<'a, ()>;

    /// When `owner`'s last session ended, as last recorded.
    fn last_activity<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, Option<LastActivity>>;

    /// Records when `owner`'s last session ended, unless a later time is
    /// recorded already (so that writes that cross keep the latest);
    /// [`StoreError::NotFound`] without an account.
    fn set_last_activity<'a>(
        &'a self,
        owner: &'a str,
        activity: &'a LastActivity,
    ) -> StoreFuture<'a, ()>;
}

/// XEP-0198 state kept over a server restart ([`SavedSession`]).
pub trait SessionStore: Send + Sync {
    /// Keeps these sessions, in one transaction, replacing any with the
    /// same id. Sessions whose owner has no account are left out; the
    /// answer is how many were kept.
    fn save_sessions<'a>(&'a self, sessions: &'a [SavedSession]) -> StoreFuture<'a, u64>;

    /// Takes `owner`'s session with this id out: it is deleted and
    /// returned. Another owner's is left alone.
    fn take_saved_session<'a>(
        &'a self,
        owner: &'a str,
        id: &'a str,
    ) -> StoreFuture<'a, Option<SavedSession>>;

    /// Deletes the sessions saved before `before` (Unix seconds) and
    /// returns how many.
    fn expire_saved_sessions(&self, before: i64) -> StoreFuture<'_, u64>;
}

/// The JIDs an account blocks (XEP-0191), as the client wrote them
/// (bare, full or a domain).
pub trait BlockingStore: Send + Sync {
    /// The blocked JIDs, sorted.
    fn blocklist<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, Vec<String>>;

    /// Blocks these JIDs (already blocked ones stay); [`StoreError::NotFound`]
    /// without an account.
    fn block<'a>(&'a self, owner: &'a str, jids: &'a [String]) -> StoreFuture<'a, ()>;

    /// Unblocks these JIDs; an empty list unblocks every one.
    fn unblock<'a>(&'a self, owner: &'a str, jids: &'a [String]) -> StoreFuture<'a, ()>;
}

/// Accounts and their SCRAM credentials.
pub trait AccountStore: Send + Sync {
    /// Creates an enabled account with `credentials` (at most one per
    /// algorithm, else [`StoreError::Conflict`]`("algorithm")`).
    ///
    /// Fails with [`StoreError::AlreadyExists`] if `jid` has an account.
    fn create_account<'a>(
        &'a self,
        jid: &'a str,
        credentials: &'a [StoredCredentials],
    ) -> StoreFuture<'a, ()>;

    /// The account `jid`, with its credentials strongest first.
    fn account<'a>(&'a self, jid: &'a str) -> StoreFuture<'a, Option<Account>>;

    /// The credentials of `jid` for `algorithm`, if it has an account and
    /// credentials for that algorithm.
    fn credentials<'a>(
        &'a self,
        jid: &'a str,
        algorithm: Algorithm,
    ) -> StoreFuture<'a, Option<StoredCredentials>>;

    /// Replaces all credentials of `jid` (at most one per algorithm), in one
    /// transaction; [`StoreError::NotFound`] without an account.
    fn set_credentials<'a>(
        &'a self,
        jid: &'a str,
        credentials: &'a [StoredCredentials],
    ) -> StoreFuture<'a, ()>;

    /// Disables or enables `jid`; [`StoreError::NotFound`] without an account.
    fn set_disabled<'a>(&'a self, jid: &'a str, disabled: bool) -> StoreFuture<'a, ()>;

    /// Deletes `jid` with everything it owns (credentials, roster, offline
    /// messages, certificates, blocklist, saved sessions, archive,
    /// documents and last activity), in one transaction. Whether there was
    /// such an account.
    fn delete_account<'a>(&'a self, jid: &'a str) -> StoreFuture<'a, bool>;

    /// Every account's JID, sorted.
    fn accounts(&self) -> StoreFuture<'_, Vec<String>>;
}

/// Rosters (RFC 6121 §2), versioned per owner.
pub trait RosterStore: Send + Sync {
    /// The roster of `owner`, items sorted by contact JID.
    fn roster<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, Roster>;

    /// The item for `contact` in the roster of `owner`.
    fn roster_item<'a>(
        &'a self,
        owner: &'a str,
        contact: &'a str,
    ) -> StoreFuture<'a, Option<RosterItem>>;

    /// Inserts or replaces the item for `item.jid`, groups included, and
    /// returns the roster's new version, greater than every earlier one.
    ///
    /// [`StoreError::Conflict`]`("group")` if a group is named twice.
    fn put_roster_item<'a>(&'a self, owner: &'a str, item: &'a RosterItem) -> StoreFuture<'a, u64>;

    /// Removes the item for `contact`: the roster's new version, or `None`
    /// (and no new version) if there was no such item.
    fn remove_roster_item<'a>(
        &'a self,
        owner: &'a str,
        contact: &'a str,
    ) -> StoreFuture<'a, Option<u64>>;
}

/// Messages kept for accounts while they are offline (XEP-0160).
pub trait OfflineStore: Send + Sync {
    /// Keeps `stanza` for `owner` and returns its id.
    ///
    /// When the future resolves the message is committed: the server may
    /// then tell the sender it was delivered. [`StoreError::QuotaExceeded`]
    /// if `owner` already has `quota.messages` messages, or this one would
    /// take its stanzas past `quota.bytes`.
    fn store_offline<'a>(
        &'a self,
        owner: &'a str,
        from: &'a str,
        stanza: &'a str,
        stored_at: i64,
        quota: OfflineQuota,
    ) -> StoreFuture<'a, i64>;

    /// Up to `limit` messages of `owner`, oldest first.
    fn offline_messages<'a>(
        &'a self,
        owner: &'a str,
        limit: usize,
    ) -> StoreFuture<'a, Vec<OfflineMessage>>;

    /// Deletes the messages of `owner` with these ids (ids of other owners
    /// are ignored) and returns how many were deleted.
    fn delete_offline<'a>(&'a self, owner: &'a str, ids: &'a [i64]) -> StoreFuture<'a, u64>;

    /// How many messages `owner` has.
    fn offline_count<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, u64>;

    /// The owners that have messages, sorted (for a server to know at
    /// start whom to look up at login).
    fn offline_owners(&self) -> StoreFuture<'_, Vec<String>>;
}

/// Invitations (XEP-0401, XEP-0445): single-use tokens, kept as hashes,
/// that let a new device create an account or join one without a
/// password.
///
/// An invitation ends when it is redeemed, revoked or expired, and with
/// what made it: deleting or disabling its creator's account, or
/// disabling or revoking the certificate its creator logged in with,
/// deletes it; so does deleting the account a device invitation adds to.
pub trait InviteStore: Send + Sync {
    /// Keeps `invite`. [`StoreError::Conflict`]`("token")` if an
    /// invitation has its hash; [`StoreError::NotFound`] if the account a
    /// device invitation adds to, or its creator's account, does not
    /// exist; [`StoreError::QuotaExceeded`] if its creator (or, for the
    /// operator's, the server) holds `max_open` invitations that have not
    /// expired at `now` already.
    fn create_invite<'a>(
        &'a self,
        invite: &'a Invite,
        max_open: u64,
        now: i64,
    ) -> StoreFuture<'a, ()>;

    /// The invitation whose token has this hash, expired or not.
    fn invite<'a>(&'a self, token_hash: &'a [u8; 32]) -> StoreFuture<'a, Option<Invite>>;

    /// The invitations not expired at `now`: all of them, or those of
    /// `account` (made by it or adding a device to it); oldest first.
    fn invites<'a>(&'a self, account: Option<&'a str>, now: i64) -> StoreFuture<'a, Vec<Invite>>;

    /// Deletes the invitation whose token has this hash: whether there
    /// was one.
    fn revoke_invite<'a>(&'a self, token_hash: &'a [u8; 32]) -> StoreFuture<'a, bool>;

    /// Redeems the invitation whose token has this hash, in one
    /// transaction: creates the account (passwordless) or checks that it
    /// exists, registers the certificate, and deletes the invitation.
    ///
    /// [`StoreError::NotFound`] if there is no such invitation (never
    /// made, redeemed, revoked) or it is not for `redemption.account`
    /// (a device invitation for another account, an account invitation
    /// that fixes another name), or a device invitation's account is
    /// gone; [`StoreError::Expired`] if it expired before
    /// `redemption.checked_at`; [`StoreError::AlreadyExists`] if an
    /// account invitation's account exists; else the errors of
    /// [`CertificateStore::add_certificate`]. Nothing changes on an
    /// error.
    fn redeem_invite<'a>(
        &'a self,
        token_hash: &'a [u8; 32],
        redemption: &'a Redemption,
    ) -> StoreFuture<'a, Redeemed>;

    /// Deletes the invitations that expired before `now`: how many.
    fn expire_invites(&self, now: i64) -> StoreFuture<'_, u64>;
}

/// Client certificates registered to accounts (XEP-0257).
pub trait CertificateStore: Send + Sync {
    /// Registers `entry` to `entry.owner`.
    ///
    /// [`StoreError::Revoked`] if the owner revoked this certificate,
    /// [`StoreError::Conflict`]`("name")` if the owner has a certificate of
    /// that name, [`StoreError::Conflict`]`("fingerprint")` if the owner has
    /// this certificate under another name.
    fn add_certificate<'a>(&'a self, entry: &'a CertificateEntry) -> StoreFuture<'a, ()>;

    /// The certificates of `owner`, sorted by name.
    fn certificates<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, Vec<CertificateEntry>>;

    /// The certificate of `owner` with this SHA-256 fingerprint.
    fn certificate_by_fingerprint<'a>(
        &'a self,
        owner: &'a str,
        fingerprint: &'a [u8; 32],
    ) -> StoreFuture<'a, Option<CertificateEntry>>;

    /// For a certificate login, in one read: `None` without an account;
    /// else whether it is disabled, whether the certificate was revoked for
    /// it, and the certificate's entry if it is registered to `owner`.
    fn certificate_lookup<'a>(
        &'a self,
        owner: &'a str,
        fingerprint: &'a [u8; 32],
    ) -> StoreFuture<'a, Option<CertificateLookup>>;

    /// Registers `next` as the next certificate of the device `next.name`
    /// of `next.owner` (its flags are the device's: `no_cert_management`
    /// and `disabled` are ignored), in place of an earlier next one not
    /// yet used. Both log in until the next one does
    /// ([`Self::promote_certificate`]); disabling or revoking the device
    /// covers both.
    ///
    /// With `replaces`, only while that is the device's current
    /// certificate (the one the renewing session logged in with).
    ///
    /// [`StoreError::NotFound`] without that device (or with another
    /// current certificate than `replaces`), [`StoreError::Revoked`] if
    /// the owner revoked the certificate,
    /// [`StoreError::Conflict`]`("fingerprint")` if it is registered to
    /// the owner already (current or next, any device).
    fn renew_certificate<'a>(
        &'a self,
        next: &'a CertificateEntry,
        replaces: Option<&'a [u8; 32]>,
    ) -> StoreFuture<'a, ()>;

    /// The next certificates of `owner`'s devices, sorted by device name.
    fn certificate_renewals<'a>(&'a self, owner: &'a str)
    -> StoreFuture<'a, Vec<CertificateEntry>>;

    /// Makes the next certificate `fingerprint` of `owner` its device's
    /// certificate, in one transaction: the one it replaces no longer
    /// logs in (its expiry warning goes with it), and the invitations
    /// made by sessions of the replaced one are the new one's. Returns
    /// the replaced certificate's fingerprint, or `None` if `fingerprint`
    /// is no next certificate of `owner` (any more) or its device is
    /// disabled.
    fn promote_certificate<'a>(
        &'a self,
        owner: &'a str,
        fingerprint: &'a [u8; 32],
    ) -> StoreFuture<'a, Option<[u8; 32]>>;

    /// Records that the device `name` of `owner` logged in at `at` (Unix
    /// seconds), unless a time after `at - 3600` is recorded already: a
    /// login writes at most once an hour per device. Nothing for a device
    /// that does not exist.
    fn record_certificate_login<'a>(
        &'a self,
        owner: &'a str,
        name: &'a str,
        at: i64,
    ) -> StoreFuture<'a, ()>;

    /// When each device of `owner` last logged in (device name, Unix
    /// seconds), for those that have, sorted by name.
    fn certificate_logins<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, Vec<(String, i64)>>;

    /// Disables the certificate `name` of `owner`: whether it exists.
    fn disable_certificate<'a>(&'a self, owner: &'a str, name: &'a str) -> StoreFuture<'a, bool>;

    /// Enables the disabled certificate `name` of `owner` again: whether it
    /// exists. (A revoked certificate has no entry: it stays revoked.)
    fn enable_certificate<'a>(&'a self, owner: &'a str, name: &'a str) -> StoreFuture<'a, bool>;

    /// Revokes the certificate `name` of `owner`, in one transaction: its
    /// entry is deleted and returned, and its fingerprint is kept among the
    /// owner's revoked certificates for good (also after the account is
    /// deleted), so it never logs in to that account again. The device's
    /// next certificate, if it has one, is revoked with it.
    fn revoke_certificate<'a>(
        &'a self,
        owner: &'a str,
        name: &'a str,
        revoked_at: i64,
    ) -> StoreFuture<'a, Option<CertificateEntry>>;

    /// The certificates `owner` revoked, oldest revocation first.
    fn revoked_certificates<'a>(
        &'a self,
        owner: &'a str,
    ) -> StoreFuture<'a, Vec<RevokedCertificate>>;

    /// Forgets these revocations of `owner` (for certificates that can
    /// no longer log in anyway, being expired): how many were forgotten.
    fn forget_revocations<'a>(
        &'a self,
        owner: &'a str,
        fingerprints: &'a [[u8; 32]],
    ) -> StoreFuture<'a, u64>;

    /// Every account's certificates, ordered by owner then name, from
    /// after `after` (an owner and a name; `None`: from the first), at
    /// most `limit`: a page of a walk through all of them.
    fn all_certificates<'a>(
        &'a self,
        after: Option<(&'a str, &'a str)>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<CertificateEntry>>;

    /// Records that `owner` was told its certificate `fingerprint`
    /// expires soon: `true` the first time, `false` once recorded or when
    /// the certificate is not registered. The record goes with the
    /// certificate.
    fn mark_expiry_warned<'a>(
        &'a self,
        owner: &'a str,
        fingerprint: &'a [u8; 32],
        at: i64,
    ) -> StoreFuture<'a, bool>;
}

/// XEP-0484 FAST tokens and the XEP-0388 clients of each account.
///
/// A token dies with what issued it, in the same transaction as the
/// change: all of an account's with the account (deleted or disabled);
/// those a password login got when the password changes
/// ([`AccountStore::set_credentials`]); those a certificate's login got
/// when the certificate is disabled or revoked (and they follow it to
/// the device's next certificate when that is promoted).
pub trait TokenStore: Send + Sync {
    /// Keeps `token` as its client's new one, replacing a new one never
    /// used and dropping the account's expired ones, if the account is
    /// enabled, its certificate (if any) is registered to it and
    /// enabled, `grounds` still hold, and fewer than `max_clients` other
    /// clients of the account hold tokens
    /// ([`StoreError::QuotaExceeded`]); else [`StoreError::NotFound`].
    fn issue_fast_token<'a>(
        &'a self,
        token: &'a FastToken,
        grounds: &'a TokenGrounds,
        max_clients: u64,
    ) -> StoreFuture<'a, ()>;

    /// The tokens of `owner`'s client `agent`: the new one first.
    fn fast_tokens<'a>(
        &'a self,
        owner: &'a str,
        agent: &'a str,
    ) -> StoreFuture<'a, Vec<(TokenSlot, FastToken)>>;

    /// The client's new token was used: it becomes the current one (the
    /// old one goes). Whether there was a new one.
    fn promote_fast_token<'a>(&'a self, owner: &'a str, agent: &'a str) -> StoreFuture<'a, bool>;

    /// Deletes the client's token in `slot`, or both; how many went.
    fn delete_fast_tokens<'a>(
        &'a self,
        owner: &'a str,
        agent: &'a str,
        slot: Option<TokenSlot>,
    ) -> StoreFuture<'a, u64>;

    /// Deletes the tokens expired by `now`; how many.
    fn expire_fast_tokens(&self, now: i64) -> StoreFuture<'_, u64>;

    /// Records a client's login (its software, device and certificate),
    /// forgetting the account's least recently seen clients beyond `max`.
    fn record_user_agent<'a>(
        &'a self,
        record: &'a UserAgentRecord,
        max: u64,
    ) -> StoreFuture<'a, ()>;

    /// The clients of `owner`, the most recently seen first.
    fn user_agents<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, Vec<UserAgentRecord>>;
}
