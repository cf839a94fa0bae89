//! The records the store keeps, independent of any backend.

use core::future::Future;
use core::pin::Pin;

use sigil_sasl::scram::{Algorithm, StoredCredentials};

use crate::StoreError;

/// The future every store method returns: boxed so that the traits stay
/// dyn-compatible and the server can hold an `Arc<dyn Store>`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// One account, keyed by its normalised bare JID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// The bare JID, `local@domain`, exactly as it was created.
    pub jid: String,
    /// Whether logins are refused.
    pub disabled: bool,
    /// When the account was created, in Unix seconds.
    pub created_at: i64,
    /// One set of SCRAM credentials per algorithm, strongest first.
    pub credentials: Vec<StoredCredentials>,
}

/// A user's roster and its version (RFC 6121 §2.6).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roster {
    /// Increases with every change to the roster; 0 for a roster never
    /// changed.
    pub version: u64,
    /// The items, sorted by contact JID.
    pub items: Vec<RosterItem>,
}

/// One roster item (RFC 6121 §2.1.2), with the subscription state the server
/// keeps beside it (RFC 6121 §3 and appendix A).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterItem {
    /// The contact's bare JID.
    pub jid: String,
    /// The name the user gave the contact.
    pub name: Option<String>,
    /// The subscription state.
    pub subscription: Subscription,
    /// An outbound subscription request is pending (`ask='subscribe'`).
    pub ask: bool,
    /// An inbound subscription request awaits the user's answer.
    pub pending_in: bool,
    /// The user pre-approved the contact's subscription (RFC 6121 §3.4).
    pub approved: bool,
    /// The groups the item is in, in the order given; no duplicates.
    pub groups: Vec<String>,
}

impl RosterItem {
    /// An item with no name, no groups and no subscription.
    pub fn new(jid: impl Into<String>) -> Self {
        Self {
            jid: jid.into(),
            name: None,
            subscription: Subscription::None,
            ask: false,
            pending_in: false,
            approved: false,
            groups: Vec::new(),
        }
    }
}

/// The subscription state of a roster item (RFC 6121 §2.1.2.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Subscription {
    /// Neither side is subscribed.
    #[default]
    None,
    /// The user receives the contact's presence.
    To,
    /// The contact receives the user's presence.
    From,
    /// Both receive each other's presence.
    Both,
}

impl Subscription {
    /// The value of the `subscription` attribute: `none`, `to`, `from`, `both`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::To => "to",
            Self::From => "from",
            Self::Both => "both",
        }
    }

    /// Parses the value of the `subscription` attribute (`remove` is a
    /// request, not a state, and gives `None`).
    pub fn from_attribute(value: &str) -> Option<Self> {
        match value {
            "none" => Some(Self::None),
            "to" => Some(Self::To),
            "from" => Some(Self::From),
            "both" => Some(Self::Both),
            _ => None,
        }
    }
}

/// How much one account may have waiting offline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OfflineQuota {
    /// Messages.
    pub messages: usize,
    /// Bytes of stanzas, all together.
    pub bytes: usize,
}

impl OfflineQuota {
    /// At most `messages` messages, of any size.
    pub fn messages(messages: usize) -> Self {
        Self {
            messages,
            bytes: usize::MAX,
        }
    }
}

/// How much one account may keep in one collection of documents
/// ([`DocumentStore`](crate::DocumentStore)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocumentQuota {
    /// Documents in the collection.
    pub documents: usize,
    /// Bytes of one document (its UTF-8 text).
    pub bytes: usize,
}

/// When an account was last seen (XEP-0012): its last session ended at
/// `at`, after an unavailable presence with this status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastActivity {
    /// When, in Unix seconds.
    pub at: i64,
    /// The `<status/>` text of the last unavailable presence, if it had one.
    pub status: Option<String>,
}

/// A stanza kept for an account while it is offline (XEP-0160).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfflineMessage {
    /// Assigned by the store; increases with each message and is never
    /// reused, so deleting by id cannot hit a newer message.
    pub id: i64,
    /// The bare JID of the account it is kept for.
    pub owner: String,
    /// The full JID of the sender.
    pub from: String,
    /// The serialised stanza.
    pub stanza: String,
    /// When it was stored, in Unix seconds.
    pub stored_at: i64,
}

/// What a certificate login needs to know of an account, in one read:
/// whether the account is disabled, and the presented certificate's entry
/// if it is registered to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateLookup {
    /// The account is disabled.
    pub account_disabled: bool,
    /// The certificate was revoked for this account.
    pub revoked: bool,
    /// The entry of the certificate, if registered to this account: its
    /// device's, with this certificate's fingerprint and DER.
    pub certificate: Option<CertificateEntry>,
    /// The certificate is its device's next one, not yet used
    /// ([`crate::CertificateStore::renew_certificate`]): a login with it
    /// makes it current ([`crate::CertificateStore::promote_certificate`]).
    pub renewal: bool,
    /// When the device last logged in with its certificate, as recorded
    /// ([`crate::CertificateStore::record_certificate_login`]).
    pub last_login_at: Option<i64>,
}

/// A client certificate registered to an account (XEP-0257).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateEntry {
    /// The bare JID of the account.
    pub owner: String,
    /// The name the user gave the certificate, unique per account.
    pub name: String,
    /// SHA-256 of the DER encoding, unique per account.
    pub fingerprint: [u8; 32],
    /// The certificate, DER encoded.
    pub der: Vec<u8>,
    /// Whether a login with this certificate may manage certificates
    /// (XEP-0257 `<no-cert-management/>`).
    pub no_cert_management: bool,
    /// Whether logins with this certificate are refused.
    pub disabled: bool,
    /// When it was added, in Unix seconds.
    pub added_at: i64,
}

/// What an invitation (XEP-0401) lets its holder do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InviteKind {
    /// Create an account: the one named, or (`None`) any free name of
    /// the domain the holder picks.
    Account {
        /// The bare JID the invitation fixes, if it does.
        jid: Option<String>,
    },
    /// Add a device (a certificate) to this existing account (a bare JID).
    Device {
        /// The account the device joins.
        account: String,
    },
}

/// Who made an invitation: it ends with them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InviteCreator {
    /// The account whose session made it (a bare JID).
    pub account: String,
    /// The certificate that session logged in with, if it did: disabling
    /// or revoking the certificate ends the invitation.
    pub certificate: Option<[u8; 32]>,
}

/// An invitation (XEP-0401): a single-use token, kept only as its hash,
/// that lets a new device join without a password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invite {
    /// SHA-256 of the token ([`invite_token_hash`]); the token itself is
    /// never stored.
    pub token_hash: [u8; 32],
    /// What it lets its holder do.
    pub kind: InviteKind,
    /// The name the device gets unless its holder picks another.
    pub device: Option<String>,
    /// The session that made it, or `None` for the server's operator
    /// (the command line).
    pub creator: Option<InviteCreator>,
    /// When it was made, in Unix seconds.
    pub created_at: i64,
    /// When it stops working, in Unix seconds.
    pub expires_at: i64,
}

impl Invite {
    /// A short public name for the invitation (the first 8 bytes of its
    /// hash, hex): what lists show and revocation takes. It gives the
    /// token away no more than the hash does.
    pub fn id(&self) -> String {
        self.token_hash[..8]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

/// What redeeming an invitation does: the account a device joins (or
/// creates) and the certificate it logs in with from then on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redemption {
    /// The account (a bare JID): the invitation's, or for an account
    /// invitation that fixes none, the one the holder picked.
    pub account: String,
    /// The device's certificate, registered to `account` (its `owner`
    /// must be `account`).
    pub certificate: CertificateEntry,
    /// When the invitation was found valid, in Unix seconds: its expiry
    /// is checked at that time (XEP-0445 checks a token once, when the
    /// client presents it, not again at registration).
    pub checked_at: i64,
}

/// What a redemption did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redeemed {
    /// A new account, passwordless, with the device's certificate.
    AccountCreated,
    /// The device's certificate, added to an existing account.
    DeviceAdded,
}

/// The SHA-256 of an invitation token, as the store keeps it.
pub fn invite_token_hash(token: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// A certificate its account revoked: never to log in to it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedCertificate {
    /// The bare JID of the account.
    pub owner: String,
    /// The name it had when it was revoked.
    pub name: String,
    /// SHA-256 of the DER encoding.
    pub fingerprint: [u8; 32],
    /// The certificate, DER encoded.
    pub der: Vec<u8>,
    /// When it was revoked, in Unix seconds.
    pub revoked_at: i64,
}

/// The name of `algorithm` as stored: `SHA-1`, `SHA-256` or `SHA-512`.
pub fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::Sha1 => "SHA-1",
        Algorithm::Sha256 => "SHA-256",
        Algorithm::Sha512 => "SHA-512",
    }
}

/// Parses a name made by [`algorithm_name`].
pub fn algorithm_from_name(name: &str) -> Option<Algorithm> {
    match name {
        "SHA-1" => Some(Algorithm::Sha1),
        "SHA-256" => Some(Algorithm::Sha256),
        "SHA-512" => Some(Algorithm::Sha512),
        _ => None,
    }
}

/// Refuses a credential list that names an algorithm twice, before any
/// backend sees it (so every backend answers alike).
pub(crate) fn check_credentials(credentials: &[StoredCredentials]) -> Result<(), StoreError> {
    for (index, credential) in credentials.iter().enumerate() {
        if credentials[..index]
            .iter()
            .any(|earlier| earlier.algorithm == credential.algorithm)
        {
            return Err(StoreError::Conflict("algorithm".into()));
        }
    }
    Ok(())
}

/// Refuses a roster item that names a group twice (RFC 6121 §2.3.3 makes
/// that a bad request).
pub(crate) fn check_roster_item(item: &RosterItem) -> Result<(), StoreError> {
    for (index, group) in item.groups.iter().enumerate() {
        if item.groups[..index].contains(group) {
            return Err(StoreError::Conflict("group".into()));
        }
    }
    Ok(())
}

/// Sorts credentials strongest first, the order [`Algorithm::ALL`] uses.
pub(crate) fn sort_credentials(credentials: &mut [StoredCredentials]) {
    credentials.sort_by_key(|credential| core::cmp::Reverse(credential.algorithm));
}

/// The XEP-0198 state of a session that a server shutdown ended: what a
/// client that tries to resume it after the restart is told was handled,
/// and which of its unacknowledged stanzas wait as offline messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedSession {
    /// What identifies it: the server stores a hash of the resumption id
    /// the client was given, never the id itself.
    pub id: String,
    /// The bare JID of the session's account.
    pub owner: String,
    /// How many of the client's stanzas the server handled (`h`).
    pub inbound: u32,
    /// How many stanzas sent to the client it acknowledged.
    pub acked: u32,
    /// Of the stanzas sent after those, the ones kept as offline messages:
    /// their XEP-0198 number and the offline message's id, in order.
    pub unacknowledged: Vec<(u32, i64)>,
    /// When it was saved, in Unix seconds.
    pub saved_at: i64,
}

/// One message in an account's archive (XEP-0313).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchivedMessage {
    /// The id the archive gave it (its XEP-0359 stanza id, `by` the
    /// owner): unique per owner, made by [`archive_id`] (ids of other
    /// forms are kept too, found through an index of their own).
    pub id: String,
    /// Whose archive it is in (a bare JID).
    pub owner: String,
    /// The other party: the sender of a message the owner received, the
    /// recipient of one it sent (a bare or full JID, as addressed).
    pub with: String,
    /// When it was archived, in Unix microseconds.
    pub at: i64,
    /// The message, serialised.
    pub stanza: String,
}

/// The id an archive gives a message archived at `at` (Unix
/// microseconds): the time in 13 lowercase hex digits, then `random` in
/// hex (96 bits from a CSPRNG make it unguessable and, in practice,
/// unique). Backends find a message by id from its time
/// ([`archive_id_time`]) instead of keeping an index of ids.
pub fn archive_id(at: i64, random: &[u8; 12]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(ARCHIVE_ID_LEN);
    let at = u64::try_from(at).unwrap_or(0);
    for shift in (0..13).rev() {
        id.push(char::from(
            HEX[usize::try_from((at >> (4 * shift)) & 15).unwrap_or(0)],
        ));
    }
    for byte in random {
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 15)]));
    }
    id
}

/// The length of the ids [`archive_id`] makes.
const ARCHIVE_ID_LEN: usize = 37;

/// The time an id made by [`archive_id`] names, or `None` for an id of
/// any other form.
pub fn archive_id_time(id: &str) -> Option<i64> {
    let bytes = id.as_bytes();
    if bytes.len() != ARCHIVE_ID_LEN
        || !bytes
            .iter()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(byte))
    {
        return None;
    }
    i64::from_str_radix(&id[..13], 16).ok()
}

/// Where a page of an archive query starts (XEP-0059 result set
/// management).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ArchivePage {
    /// The first page: the oldest matches.
    #[default]
    First,
    /// The page after the message with this id.
    After(String),
    /// The last page: the newest matches.
    Last,
    /// The page before the message with this id.
    Before(String),
}

/// Which messages of an archive a query wants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchiveQuery {
    /// Only those with this JID: a bare JID matches every resource of it,
    /// a full JID that resource only.
    pub with: Option<String>,
    /// Only those archived at or after this time (Unix microseconds).
    pub start: Option<i64>,
    /// Only those archived at or before this time (Unix microseconds).
    pub end: Option<i64>,
    /// Only those archived after the message with this id.
    pub after_id: Option<String>,
    /// Only those archived before the message with this id.
    pub before_id: Option<String>,
    /// Only those with these ids (none: any id).
    pub ids: Vec<String>,
    /// Which page.
    pub page: ArchivePage,
    /// The most messages in the page.
    pub max: usize,
}

/// A page of an archive query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchiveResult {
    /// The messages, oldest first.
    pub messages: Vec<ArchivedMessage>,
    /// No more messages match beyond this page, in the direction it was
    /// asked in (later ones for [`ArchivePage::First`] and
    /// [`ArchivePage::After`], earlier ones otherwise).
    pub complete: bool,
}

/// What an account archives by default (XEP-0313 §6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ArchiveDefault {
    /// Every message.
    #[default]
    Always,
    /// None.
    Never,
    /// Those with contacts in the roster.
    Roster,
}

impl ArchiveDefault {
    /// The XEP-0313 name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::Never => "never",
            Self::Roster => "roster",
        }
    }

    /// From the XEP-0313 name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "always" => Some(Self::Always),
            "never" => Some(Self::Never),
            "roster" => Some(Self::Roster),
            _ => None,
        }
    }
}

/// An account's archiving preferences (XEP-0313 §6).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchivePrefs {
    /// The rule for JIDs in neither list.
    pub default: ArchiveDefault,
    /// Bare JIDs whose messages are always archived, sorted.
    pub always: Vec<String>,
    /// Bare JIDs whose messages are never archived, sorted.
    pub never: Vec<String>,
}

/// Which of a client's two FAST tokens (XEP-0484 §"Implementation
/// Notes"): the one in use, or one issued and not used yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenSlot {
    /// In use.
    Current,
    /// Issued, not used yet: its first use makes it the current one.
    New,
}

impl TokenSlot {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::New => "new",
        }
    }
}

/// A FAST token (XEP-0484) as kept: never the token itself, only its key
/// sealed by the server, opaque to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FastToken {
    /// The account.
    pub owner: String,
    /// The client's XEP-0388 user-agent id.
    pub agent: String,
    /// The HT mechanism it was issued for.
    pub mechanism: String,
    /// The sealed key.
    pub sealed: Vec<u8>,
    /// The fingerprint of the certificate the issuing login used; `None`
    /// for a login by password.
    pub certificate: Option<[u8; 32]>,
    /// When it was issued, Unix seconds.
    pub issued_at: i64,
    /// When it stops working, Unix seconds.
    pub expires_at: i64,
}

/// What the login that gets a FAST token proved, checked again in the
/// transaction that keeps the token, so that a login overtaken by a
/// change (a new password, the account deleted and made again, the
/// token it used ended) gets none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenGrounds {
    /// A password: the StoredKey of the credentials it was checked
    /// against, which must still be the account's.
    Password(Vec<u8>),
    /// A token: its sealed key, which must still be the client's.
    Token(Vec<u8>),
    /// A certificate ([`FastToken::certificate`], which must still be
    /// registered to the account and enabled) and nothing more.
    Certificate,
}

/// A client that logged in by SASL2 (its XEP-0388 `<user-agent/>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserAgentRecord {
    /// The account.
    pub owner: String,
    /// The client's id.
    pub agent: String,
    /// Its software, as it says.
    pub software: Option<String>,
    /// Its device's name, as its user calls it.
    pub device: Option<String>,
    /// The certificate it last logged in with (through EXTERNAL, or a
    /// token a certificate login got).
    pub certificate: Option<[u8; 32]>,
    /// When it last logged in, Unix seconds.
    pub last_login: i64,
}

#[cfg(test)]
mod tests {
    use super::{archive_id, archive_id_time};

    #[test]
    fn archive_ids_carry_their_time_and_nothing_else_parses_as_one() {
        let at = 1_765_000_000_123_456;
        let id = archive_id(at, &[0xab; 12]);
        assert_eq!(id.len(), 37);
        assert_eq!(id, format!("{at:013x}{}", "ab".repeat(12)));
        assert_eq!(archive_id_time(&id), Some(at));
        // Ordered by time as text, as they are by number.
        assert!(archive_id(at, &[0xff; 12]) < archive_id(at + 1, &[0; 12]));
        assert_eq!(archive_id_time(&archive_id(-5, &[1; 12])), Some(0));
        for other in [
            "id-0001",
            "",
            &id[..36],
            &format!("{id}0"),
            &id.to_uppercase(),
            &format!("{}g", &id[..36]),
            "0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(archive_id_time(other), None, "{other}");
        }
    }
}
