//! Invitations (XEP-0401): making them, the `xmpp:` URIs and web pages
//! that carry their tokens, and deleting them once expired.
//!
//! A token is 128 bits from the operating system's generator
//! ([`sigil_proto::secret_id`]), handed once to whoever made the
//! invitation and never stored: the store keeps its SHA-256
//! ([`invite_token_hash`]), so a copy of the database opens no account.
//! An invitation is single-use, ends at `expires_at` (`[invites]
//! valid_hours` after it was made), and counts against a cap until then:
//! `[invites] max_open` for the operator's (the command line),
//! `max_open_per_account` for each account's. An hourly task deletes the
//! expired ones (`expire`).
//!
//! Its URI follows XEP-0401 §5.4 and XEP-0445 §2:
//! `xmpp:DOMAIN?register;preauth=TOKEN` for a new account with a name the
//! invitee picks, `xmpp:alice@DOMAIN?register;preauth=TOKEN` for one that
//! fixes the account, which a client shows without letting it change; a
//! new device for alice has the same form (the server knows from the
//! token that alice exists). Its landing page is
//! `https://DOMAIN[:PORT]/invite/TOKEN` on the HTTPS listener (`page`),
//! with a QR code of the URI ([`qr`]).

pub(crate) mod page;
pub mod qr;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sigil_store::{Invite, InviteCreator, InviteKind, Store, StoreError, invite_token_hash};

use crate::config::{Config, InvitesConfig, ListenerKind};

/// The path under which the HTTPS listener serves landing pages; the
/// token follows.
pub const PAGE_PATH: &str = "/invite/";

/// How often expired invitations are deleted.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(3600);

/// What an invitation is to be: made by [`create`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InviteRequest {
    /// What it lets its holder do; JIDs are normalised bare JIDs of the
    /// served domain.
    pub kind: InviteKind,
    /// The name the device gets unless its holder picks another.
    pub device: Option<String>,
    /// The session that makes it, or `None` for the operator.
    pub creator: Option<InviteCreator>,
    /// Hours it stays valid (1 to [`InvitesConfig::MAX_VALID_HOURS`]).
    pub valid_hours: u32,
}

impl InviteRequest {
    /// An invitation of `kind` from the operator, valid for
    /// `[invites] valid_hours`, suggesting no device name.
    pub fn new(kind: InviteKind, config: &InvitesConfig) -> Self {
        Self {
            kind,
            device: None,
            creator: None,
            valid_hours: config.valid_hours,
        }
    }
}

/// An invitation just made: its token, which exists nowhere else, and
/// what the store keeps of it.
#[derive(Clone, PartialEq, Eq)]
pub struct NewInvite {
    /// The token: shown once (in the URI and the page's address), never
    /// stored.
    pub token: String,
    /// The stored invitation.
    pub invite: Invite,
}

impl NewInvite {
    /// Its `xmpp:` URI ([`uri`]).
    pub fn uri(&self, domain: &str) -> String {
        uri(domain, &self.invite.kind, &self.token)
    }
}

impl fmt::Debug for NewInvite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token opens an account: it stays out of logs and panics.
        f.debug_struct("NewInvite")
            .field("token", &"…")
            .field("invite", &self.invite)
            .finish()
    }
}

/// Why an invitation was not made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateError {
    /// An account invitation names an account that exists already.
    AccountExists(String),
    /// A JID is not a bare JID with a user name on the served domain.
    BadJid(String),
    /// The suggested device name is empty, too long or not printable.
    BadDeviceName,
    /// The validity is outside 1 to [`InvitesConfig::MAX_VALID_HOURS`]
    /// hours.
    BadValidity(u32),
    /// The operating system's random number generator failed.
    NoRandomness,
    /// Its creator already has this many open invitations (the cap).
    TooMany(u64),
    /// The account a device invitation adds to, or the creator's, does
    /// not exist.
    UnknownAccount,
    /// The store failed.
    Store(StoreError),
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AccountExists(jid) => write!(f, "the account {jid} exists already"),
            Self::BadJid(jid) => write!(
                f,
                "{jid:?} is not an account (user@domain) on this server's domain"
            ),
            Self::BadDeviceName => write!(
                f,
                "a device name is 1 to {} printable characters",
                crate::saslcert::MAX_NAME_CHARS
            ),
            Self::BadValidity(hours) => write!(
                f,
                "{hours} hours: an invitation is valid for 1 to {} hours",
                InvitesConfig::MAX_VALID_HOURS
            ),
            Self::NoRandomness => f.write_str("the operating system's random generator failed"),
            Self::TooMany(max) => write!(
                f,
                "{max} invitations are open already, the most allowed: revoke some or let them expire"
            ),
            Self::UnknownAccount => f.write_str("the account does not exist"),
            Self::Store(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for CreateError {}

/// Makes an invitation at `now` (Unix seconds) on `domain`: a fresh
/// token, its hash stored with what `request` says. The cap is
/// `config.max_open` for the operator's, `config.max_open_per_account`
/// for an account's.
pub async fn create(
    store: &dyn Store,
    domain: &str,
    config: &InvitesConfig,
    request: InviteRequest,
    now: i64,
) -> Result<NewInvite, CreateError> {
    if !(1..=InvitesConfig::MAX_VALID_HOURS).contains(&request.valid_hours) {
        return Err(CreateError::BadValidity(request.valid_hours));
    }
    let device = match request.device {
        Some(name) => {
            Some(crate::saslcert::checked_name(&name).map_err(|_| CreateError::BadDeviceName)?)
        }
        None => None,
    };
    match &request.kind {
        InviteKind::Account { jid: None } => {}
        InviteKind::Account { jid: Some(jid) } => {
            local_account(jid, domain)?;
            if store
                .account(jid)
                .await
                .map_err(CreateError::Store)?
                .is_some()
            {
                return Err(CreateError::AccountExists(jid.clone()));
            }
        }
        InviteKind::Device { account } => local_account(account, domain)?,
    }
    let max_open = match request.creator {
        None => config.max_open,
        Some(_) => config.max_open_per_account,
    };
    let token = sigil_proto::secret_id().ok_or(CreateError::NoRandomness)?;
    let hours = i64::from(request.valid_hours);
    let invite = Invite {
        token_hash: invite_token_hash(&token),
        kind: request.kind,
        device,
        creator: request.creator,
        created_at: now,
        expires_at: now.saturating_add(hours * 3600),
    };
    match store.create_invite(&invite, max_open, now).await {
        Ok(()) => Ok(NewInvite { token, invite }),
        Err(StoreError::QuotaExceeded) => Err(CreateError::TooMany(max_open)),
        Err(StoreError::NotFound) => Err(CreateError::UnknownAccount),
        Err(error) => Err(CreateError::Store(error)),
    }
}

/// The `xmpp:` URI of an invitation of `kind` on `domain` with `token`
/// (XEP-0401 §5.4, XEP-0445 §2), percent-encoded (RFC 5122): the JID's
/// parts keep only unreserved characters and those RFC 5122 allows in a
/// node that have no meaning in the query (`!$()*+,`).
pub fn uri(domain: &str, kind: &InviteKind, token: &str) -> String {
    let account = match kind {
        InviteKind::Account { jid } => jid.as_deref(),
        InviteKind::Device { account } => Some(account.as_str()),
    };
    let mut uri = String::from("xmpp:");
    match account.and_then(|jid| jid.split_once('@')) {
        Some((node, jid_domain)) => {
            percent_encode(&mut uri, node, "!$()*+,");
            uri.push('@');
            percent_encode(&mut uri, jid_domain, "[]:");
        }
        None => percent_encode(&mut uri, domain, "[]:"),
    }
    uri.push_str("?register;preauth=");
    percent_encode(&mut uri, token, "");
    uri
}

/// The landing page of the invitation with `token`, on an HTTPS listener
/// on `port` of `domain`: `https://DOMAIN[:PORT]/invite/TOKEN`, named as
/// web discovery names that listener.
pub fn landing_url(domain: &str, port: u16, token: &str) -> String {
    let mut url = format!(
        "https://{}{PAGE_PATH}",
        crate::config::https_authority(domain, port)
    );
    percent_encode(&mut url, token, "");
    url
}

/// The port of the configured HTTPS listener that landing pages name
/// (the first), if there is one with a fixed port.
pub fn landing_port(config: &Config) -> Option<u16> {
    config
        .listeners
        .iter()
        .find(|listener| listener.kind == ListenerKind::Https)
        .map(|listener| listener.address.port())
        .filter(|port| *port != 0)
}

/// What an invitation of `kind` on `domain` is for, in words: "a new
/// account on DOMAIN", "the new account bob@DOMAIN", "a new device for
/// alice@DOMAIN".
pub fn describe(kind: &InviteKind, domain: &str) -> String {
    match kind {
        InviteKind::Account { jid: None } => {
            format!("a new account on {domain}, with a name the invitee picks")
        }
        InviteKind::Account { jid: Some(jid) } => format!("the new account {jid}"),
        InviteKind::Device { account } => format!("a new device for {account}"),
    }
}

/// The command that redeems the invitation with `uri` with Sigil's own
/// client, quoted for a POSIX shell (the URI's `;` and `?` would split or
/// glob it): `sigil device join 'URI' --name DEVICE`, with `NAME` to fill
/// in when the invitation suggests no device name.
pub fn join_command(uri: &str, device: Option<&str>) -> String {
    format!(
        "sigil device join {} --name {}",
        shell_quote(uri),
        device.map_or_else(|| "NAME".to_owned(), shell_quote)
    )
}

/// Deletes expired invitations, at start and then hourly.
pub(crate) async fn expire(store: Arc<dyn Store>) {
    loop {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        match store.expire_invites(now).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "expired invitations deleted"),
            Err(error) => tracing::warn!(%error, "deleting expired invitations failed"),
        }
        tokio::time::sleep(EXPIRY_INTERVAL).await;
    }
}

/// Checks that `jid` is a bare JID with a user name on `domain`.
fn local_account(jid: &str, domain: &str) -> Result<(), CreateError> {
    match jid::BareJid::new(jid) {
        Ok(parsed)
            if parsed.node().is_some()
                && parsed.domain().as_str() == domain
                && parsed.as_str() == jid =>
        {
            Ok(())
        }
        _ => Err(CreateError::BadJid(jid.to_owned())),
    }
}

/// A word for a POSIX shell: as it is when it holds only characters no
/// shell treats specially, else in single quotes.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.,:@%+/".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Appends `text` to `out`, percent-encoding every byte but ASCII letters
/// and digits, `-._~` and the characters in `keep`.
fn percent_encode(out: &mut String, text: &str, keep: &str) {
    for byte in text.bytes() {
        let c = char::from(byte);
        if byte.is_ascii_alphanumeric()
            || "-._~".contains(c)
            || (byte.is_ascii() && keep.contains(c))
        {
            out.push(c);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn uris_follow_xep_0401_and_0445() {
        let free = InviteKind::Account { jid: None };
        assert_eq!(
            uri("example.com", &free, TOKEN),
            format!("xmpp:example.com?register;preauth={TOKEN}")
        );
        let fixed = InviteKind::Account {
            jid: Some("juliet@example.com".into()),
        };
        assert_eq!(
            uri("example.com", &fixed, TOKEN),
            format!("xmpp:juliet@example.com?register;preauth={TOKEN}")
        );
        let device = InviteKind::Device {
            account: "alice@example.com".into(),
        };
        assert_eq!(
            uri("example.com", &device, TOKEN),
            format!("xmpp:alice@example.com?register;preauth={TOKEN}")
        );
    }

    #[test]
    fn uris_percent_encode_what_would_break_them() {
        // Localparts may hold characters the URI's syntax uses, and
        // non-ASCII letters (as UTF-8 bytes).
        let odd = InviteKind::Account {
            jid: Some("a?b;c=d#e%f+g!h\u{e9}@example.com".into()),
        };
        assert_eq!(
            uri("example.com", &odd, "t;k"),
            "xmpp:a%3Fb%3Bc%3Dd%23e%25f+g!h%C3%A9@example.com?register;preauth=t%3Bk"
        );
    }

    #[test]
    fn the_join_command_survives_a_shell() {
        let uri = format!("xmpp:example.com?register;preauth={TOKEN}");
        assert_eq!(
            join_command(&uri, None),
            format!("sigil device join '{uri}' --name NAME")
        );
        assert_eq!(
            join_command(&uri, Some("phone-2")),
            format!("sigil device join '{uri}' --name phone-2")
        );
        assert_eq!(
            join_command("x", Some("bob's $HOME")),
            "sigil device join x --name 'bob'\\''s $HOME'"
        );
    }

    #[test]
    fn landing_urls_name_the_listener_as_discovery_does() {
        assert_eq!(
            landing_url("example.com", 5281, TOKEN),
            format!("https://example.com:5281/invite/{TOKEN}")
        );
        assert_eq!(
            landing_url("example.com", 443, TOKEN),
            format!("https://example.com/invite/{TOKEN}")
        );
        let mut config = Config::new("example.com");
        assert_eq!(landing_port(&config), Some(5281));
        config
            .listeners
            .retain(|listener| listener.kind != ListenerKind::Https);
        assert_eq!(landing_port(&config), None);
    }

    #[test]
    fn only_bare_jids_of_the_domain_are_accounts() {
        assert_eq!(local_account("alice@example.com", "example.com"), Ok(()));
        for bad in [
            "example.com",
            "alice@other.example",
            "alice@example.com/phone",
            "Alice@example.com",
            "not a jid@@",
        ] {
            assert_eq!(
                local_account(bad, "example.com"),
                Err(CreateError::BadJid(bad.into())),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn invitations_are_made_with_their_hash_and_capped() {
        use sigil_store::{AccountStore as _, InviteStore as _, SqliteStore};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("sigil.db"))
            .await
            .unwrap();
        store
            .create_account("alice@example.com", &[])
            .await
            .unwrap();
        let mut config = InvitesConfig {
            max_open: 2,
            ..InvitesConfig::default()
        };
        let now = 1_800_000_000;
        let free = InviteRequest::new(InviteKind::Account { jid: None }, &config);
        let made = create(&store, "example.com", &config, free.clone(), now)
            .await
            .unwrap();
        assert_eq!(made.token.len(), 32);
        assert!(made.token.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(made.invite.token_hash, invite_token_hash(&made.token));
        assert_eq!(made.invite.expires_at, now + 168 * 3600);
        assert_eq!(
            store.invite(&made.invite.token_hash).await.unwrap(),
            Some(made.invite.clone())
        );
        // Another one has another token; a third is past the cap.
        let device = InviteRequest {
            device: Some(" phone ".into()),
            valid_hours: 1,
            ..InviteRequest::new(
                InviteKind::Device {
                    account: "alice@example.com".into(),
                },
                &config,
            )
        };
        let second = create(&store, "example.com", &config, device, now)
            .await
            .unwrap();
        assert_ne!(second.token, made.token);
        assert_eq!(second.invite.device.as_deref(), Some("phone"));
        assert_eq!(second.invite.expires_at, now + 3600);
        assert_eq!(
            create(&store, "example.com", &config, free.clone(), now).await,
            Err(CreateError::TooMany(2))
        );
        // Expired ones count no more.
        config.max_open = 10;
        let later = now + 2 * 3600;
        let kind = |jid: &str| InviteKind::Device {
            account: jid.to_owned(),
        };
        let refused = [
            (
                InviteRequest::new(kind("bob@example.com"), &config),
                CreateError::UnknownAccount,
            ),
            (
                InviteRequest::new(kind("alice@other.example"), &config),
                CreateError::BadJid("alice@other.example".into()),
            ),
            (
                InviteRequest::new(
                    InviteKind::Account {
                        jid: Some("alice@example.com".into()),
                    },
                    &config,
                ),
                CreateError::AccountExists("alice@example.com".into()),
            ),
            (
                InviteRequest {
                    valid_hours: 8761,
                    ..free.clone()
                },
                CreateError::BadValidity(8761),
            ),
            (
                InviteRequest {
                    device: Some("\n".into()),
                    ..free.clone()
                },
                CreateError::BadDeviceName,
            ),
        ];
        for (request, error) in refused {
            assert_eq!(
                create(&store, "example.com", &config, request, later).await,
                Err(error)
            );
        }
        // A user's own cap: none at all with max_open_per_account = 0.
        config.max_open_per_account = 0;
        let from_alice = InviteRequest {
            creator: Some(InviteCreator {
                account: "alice@example.com".into(),
                certificate: None,
            }),
            ..free.clone()
        };
        assert_eq!(
            create(&store, "example.com", &config, from_alice, later).await,
            Err(CreateError::TooMany(0))
        );
        assert!(
            create(&store, "example.com", &config, free, later)
                .await
                .is_ok()
        );
    }

    #[test]
    fn debug_output_hides_the_token() {
        let made = NewInvite {
            token: TOKEN.into(),
            invite: Invite {
                token_hash: invite_token_hash(TOKEN),
                kind: InviteKind::Account { jid: None },
                device: None,
                creator: None,
                created_at: 0,
                expires_at: 3600,
            },
        };
        assert!(!format!("{made:?}").contains(TOKEN));
        assert_eq!(
            made.uri("example.com"),
            format!("xmpp:example.com?register;preauth={TOKEN}")
        );
    }
}
