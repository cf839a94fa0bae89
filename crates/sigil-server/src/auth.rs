//! The one place a certificate login is decided (XEP-0178, XEP-0257).
//!
//! Every transport hands [`decide`] the client's certificate chain from
//! the TLS handshake and the authzid the client sent. TLS only proved that
//! the client holds the certificate's key; here the certificate's dates,
//! its `id-on-xmppAddr` identities, the account's registered certificates
//! and the configured trust anchors decide, on every login (a resumed TLS
//! session would hand back an old chain without checking it again).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jid::{BareJid, Jid};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use sigil_sasl::Failure;
use sigil_sasl::server::Authzid;
use sigil_x509::{CertificateInfo, OffsetDateTime, Validity};

use crate::context::Context;

/// How a certificate earned the login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Registered by the account's owner (XEP-0257) under this name.
    Registered {
        /// The device name.
        name: String,
        /// The certificate may not manage certificates.
        no_cert_management: bool,
    },
    /// Chains to a configured trust anchor.
    Anchor,
}

/// A successful certificate login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateLogin {
    /// The account.
    pub account: BareJid,
    /// The identity the login used: a full JID pins the resource.
    pub identity: Jid,
    /// SHA-256 of the certificate's DER.
    pub fingerprint: [u8; 32],
    /// Why it is trusted.
    pub trust: Trust,
    /// How revocation lists name the certificate, and, when it logged
    /// in by CA trust, the chain presented (end entity first): the
    /// session is checked again when the trusted CAs or their lists
    /// change.
    pub revocation_key: sigil_x509::RevocationKey,
    /// See `revocation_key` (empty for a registered certificate).
    pub chain: Box<[CertificateDer<'static>]>,
}

impl CertificateLogin {
    /// The resource the certificate pins, if its identity is a full JID.
    pub fn pinned_resource(&self) -> Option<String> {
        self.identity.resource().map(|r| r.to_string())
    }

    /// Whether this session may change the account's certificates.
    pub fn may_manage_certificates(&self) -> bool {
        !matches!(
            self.trust,
            Trust::Registered {
                no_cert_management: true,
                ..
            }
        )
    }
}

/// The certificate chain a connection presented, with what is costly to
/// work out from it kept for the connection's next decision: the parsed
/// end-entity certificate, and whether it chains to a trust anchor. A
/// connection decides at most twice (to offer EXTERNAL alone, then at
/// SASL) within its login time; the account and its registered
/// certificates are read from the store every time.
#[derive(Debug)]
pub struct PresentedChain {
    chain: Vec<CertificateDer<'static>>,
    info: std::sync::OnceLock<Option<CertificateInfo>>,
    /// The CA verdict, with the number of the reading that gave it.
    anchored: Mutex<Option<(u64, Result<(), AnchorError>)>>,
}

impl PresentedChain {
    /// The chain as the TLS handshake gave it (end entity first).
    pub fn new(chain: Vec<CertificateDer<'static>>) -> Self {
        Self {
            chain,
            info: std::sync::OnceLock::new(),
            anchored: Mutex::new(None),
        }
    }

    /// The chain.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    fn info(&self) -> Option<&CertificateInfo> {
        self.info
            .get_or_init(|| {
                self.chain
                    .first()
                    .and_then(|der| CertificateInfo::from_der(der).ok())
            })
            .as_ref()
    }

    /// Whether the chain leads to a trusted CA, by this reading (kept
    /// until the reading changes).
    fn anchored(&self, reading: &Reading, now: OffsetDateTime) -> Result<(), AnchorError> {
        let mut anchored = self
            .anchored
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match *anchored {
            Some((generation, verdict)) if generation == reading.generation => verdict,
            _ => {
                let verdict = reading.verify(&self.chain, now);
                *anchored = Some((reading.generation, verdict));
                verdict
            }
        }
    }
}

/// Why a certificate may not log in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// What the client is told.
    pub failure: Failure,
    /// The certificate names no usable identity, or not the one asked
    /// for: XEP-0178 closes the stream. Otherwise it names the account
    /// but may not log in to it, and the client may try another
    /// mechanism on the same stream.
    pub identity: bool,
    /// Why, for the server's log (never sent).
    pub reason: &'static str,
}

impl Refusal {
    fn identity(failure: Failure, reason: &'static str) -> Self {
        Self {
            failure,
            identity: true,
            reason,
        }
    }

    fn account(failure: Failure, reason: &'static str) -> Self {
        Self {
            failure,
            identity: false,
            reason,
        }
    }
}

/// Decides whether the presented chain may log in with this authzid.
pub async fn decide(
    context: &Context,
    presented: &PresentedChain,
    authzid: &Authzid,
    now: OffsetDateTime,
) -> Result<CertificateLogin, Refusal> {
    let info = presented.info().ok_or(Refusal::identity(
        Failure::NotAuthorized,
        "no readable client certificate",
    ))?;
    let identity = select_identity(&info.identities, authzid, &context.domain).map_err(|f| {
        Refusal::identity(
            f,
            match f {
                Failure::InvalidAuthzid => "the certificate does not name the account asked for",
                _ => "the certificate names no XMPP address",
            },
        )
    })?;
    if identity.domain().as_str() != context.domain || identity.node().is_none() {
        return Err(Refusal::identity(
            Failure::NotAuthorized,
            "the certificate names no account of this domain",
        ));
    }
    let account = identity.to_bare();
    let reading = context.anchors.reading();
    // The account and the certificate's entry in one read. An unknown
    // account is refused like an untrusted certificate, on a stream that
    // stays open: how a refusal ends tells nothing of which accounts exist.
    let lookup = match context
        .store
        .certificate_lookup(account.as_str(), &info.sha256)
        .await
    {
        Ok(Some(lookup)) => lookup,
        Ok(None) => {
            // The CA check a known account's unregistered certificate gets,
            // so that the time a refusal takes tells nothing either.
            let _ = presented.anchored(&reading, now);
            return Err(Refusal::account(Failure::NotAuthorized, "unknown account"));
        }
        Err(error) => {
            tracing::error!(%error, "account lookup failed");
            return Err(Refusal::account(
                Failure::TemporaryAuthFailure,
                "the store failed",
            ));
        }
    };
    if lookup.revoked {
        // Before CA trust: a revocation is final.
        return Err(Refusal::account(
            Failure::NotAuthorized,
            "revoked certificate",
        ));
    }
    // Named by a CA's list: never, registered or not, whatever chain it
    // came with (the CA knows something its owner may not: a stolen key).
    if reading.lists(info) {
        return Err(Refusal::account(
            Failure::NotAuthorized,
            AnchorError::Revoked.reason(),
        ));
    }
    let trust = match lookup.certificate {
        // Registered, but made for something else (say serverAuth only):
        // its owner's word does not widen what its issuer allowed.
        Some(_) if !info.client_auth.permits_client_auth() => {
            return Err(Refusal::account(
                Failure::NotAuthorized,
                "certificate not for client authentication (extendedKeyUsage)",
            ));
        }
        Some(entry) if !entry.disabled => Trust::Registered {
            name: entry.name,
            no_cert_management: entry.no_cert_management,
        },
        // A disabled certificate is not trusted, and not by a CA either.
        Some(_) => {
            return Err(Refusal::account(
                Failure::NotAuthorized,
                "disabled certificate",
            ));
        }
        None => {
            presented
                .anchored(&reading, now)
                .map_err(|error| Refusal::account(error.failure(), error.reason()))?;
            Trust::Anchor
        }
    };
    match info.validity_at(now) {
        Validity::Valid => {}
        Validity::Expired => {
            return Err(Refusal::account(
                Failure::CredentialsExpired,
                "expired certificate",
            ));
        }
        Validity::NotYetValid => {
            return Err(Refusal::account(
                Failure::NotAuthorized,
                "certificate not yet valid",
            ));
        }
    }
    if lookup.account_disabled {
        return Err(Refusal::account(
            Failure::AccountDisabled,
            "disabled account",
        ));
    }
    Ok(CertificateLogin {
        account,
        identity,
        fingerprint: info.sha256,
        chain: if trust == Trust::Anchor {
            presented.chain.clone().into()
        } else {
            Box::default()
        },
        trust,
        revocation_key: info.revocation_key.clone(),
    })
}

/// The accounts a chain would log in to right now (to offer EXTERNAL
/// alone to such a connection, unless it asks for another account).
pub async fn accounts_logged_in(
    context: &Context,
    presented: &PresentedChain,
    now: OffsetDateTime,
) -> Vec<BareJid> {
    let Some(info) = presented.info() else {
        return Vec::new();
    };
    let mut accounts = Vec::new();
    // A certificate may name many identities; looking up a few is enough
    // to decide what to offer, and bounds the work a stranger can cause.
    for identity in info.identities.iter().take(MAX_OFFER_LOOKUPS) {
        let authzid = Authzid::Value(identity.to_string());
        if let Ok(login) = decide(context, presented, &authzid, now).await
            && !accounts.contains(&login.account)
        {
            accounts.push(login.account);
        }
    }
    accounts
}

/// Identities of one certificate looked up to decide whether to offer
/// EXTERNAL alone.
const MAX_OFFER_LOOKUPS: usize = 4;

/// XEP-0178 with the authzids real clients send: none (or empty) means the
/// only identity; an identity, its bare JID, or the bare domain (when one
/// identity is on it) names that identity.
fn select_identity(identities: &[Jid], authzid: &Authzid, domain: &str) -> Result<Jid, Failure> {
    if identities.is_empty() {
        return Err(Failure::NotAuthorized);
    }
    let Some(value) = authzid.value().filter(|v| !v.is_empty()) else {
        return match identities {
            [only] => Ok(only.clone()),
            _ => Err(Failure::InvalidAuthzid),
        };
    };
    let Ok(requested) = Jid::new(value) else {
        return Err(Failure::InvalidAuthzid);
    };
    let exact: Vec<&Jid> = identities.iter().filter(|id| **id == requested).collect();
    if let [only] = exact.as_slice() {
        return Ok((*only).clone());
    }
    let matching: Vec<&Jid> = if requested.node().is_some() && requested.resource().is_none() {
        identities
            .iter()
            .filter(|id| id.to_bare() == requested.to_bare())
            .collect()
    } else if requested.node().is_none()
        && requested.resource().is_none()
        && requested.domain().as_str() == domain
    {
        identities
            .iter()
            .filter(|id| id.domain() == requested.domain())
            .collect()
    } else {
        Vec::new()
    };
    match matching.as_slice() {
        [only] => Ok((*only).clone()),
        _ => Err(Failure::InvalidAuthzid),
    }
}

type Verifier = Arc<dyn ClientCertVerifier>;

/// Why a chain does not log in by CA trust.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnchorError {
    /// It leads to no trusted CA (or none is configured).
    Untrusted,
    /// It has expired.
    Expired,
    /// A CA's revocation list names it.
    Revoked,
    /// The revocation list of its CA is past its `nextUpdate`: what was
    /// revoked since is unknown.
    StaleRevocationList,
    /// The trusted CAs or revocation lists cannot be read or used: no
    /// certificate logs in by CA trust until they are fixed.
    Unavailable,
    /// The chain holds more certificates or bytes than a session keeps.
    ChainTooLarge,
}

impl AnchorError {
    /// What the client is told.
    pub fn failure(self) -> Failure {
        match self {
            Self::Untrusted | Self::Revoked | Self::ChainTooLarge => Failure::NotAuthorized,
            Self::Expired => Failure::CredentialsExpired,
            Self::StaleRevocationList | Self::Unavailable => Failure::TemporaryAuthFailure,
        }
    }

    /// Why, for the server's log.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Untrusted => "certificate neither registered nor issued by a trusted CA",
            Self::Expired => "expired certificate",
            Self::Revoked => "certificate on a CA's revocation list",
            Self::StaleRevocationList => "its CA's revocation list is past its next update",
            Self::Unavailable => "the trusted CAs or revocation lists are unusable",
            Self::ChainTooLarge => "certificate chain too large",
        }
    }
}

/// The most certificates, and bytes, of a chain that logs in by CA trust
/// (a session keeps it, to check it again when the lists change).
pub const MAX_CHAIN_CERTIFICATES: usize = 8;
/// See [`MAX_CHAIN_CERTIFICATES`].
pub const MAX_CHAIN_BYTES: usize = 16 * 1024;

/// The configured certificate authorities whose client certificates may
/// log in (with clientAuth and an xmppAddr naming the account): every PEM
/// file in one directory, with the revocation lists of another. Both are
/// read again whenever a file in them changes, and at once after
/// [`Self::reload`]; each reading is numbered, so that the sessions that
/// logged in under an older one are checked again
/// ([`crate::context::Context::check_trust`]).
#[derive(Debug)]
pub struct TrustAnchors {
    directory: Option<PathBuf>,
    crls: Option<PathBuf>,
    cache: Mutex<Option<Arc<Reading>>>,
    loads: std::sync::atomic::AtomicU64,
}

/// One reading of the anchors and lists.
#[derive(Debug)]
pub struct Reading {
    stamp: Stamp,
    verifier: Result<Verifier, AnchorError>,
    revoked: Revoked,
    /// Its number.
    pub generation: u64,
}

/// Every certificate any of the lists names, by issuer and serial: a
/// listed certificate never logs in, whatever chain it comes with and
/// even from a list past its next update (a list can only deny).
#[derive(Debug, Default)]
struct Revoked(std::collections::HashMap<Vec<u8>, std::collections::HashSet<Vec<u8>>>);

impl Revoked {
    fn contains(&self, key: &sigil_x509::RevocationKey) -> bool {
        self.0
            .get(&key.issuer)
            .is_some_and(|serials| serials.contains(&key.serial))
    }
}

impl Reading {
    /// Whether it could be read and used (an unusable reading judges no
    /// session; logins by CA trust are refused meanwhile).
    pub fn usable(&self) -> bool {
        !matches!(self.verifier, Err(AnchorError::Unavailable))
    }

    /// Whether a list names this certificate.
    pub fn lists(&self, certificate: &CertificateInfo) -> bool {
        self.revokes(&certificate.revocation_key)
    }

    /// Whether a list names the certificate with this key.
    pub fn revokes(&self, key: &sigil_x509::RevocationKey) -> bool {
        self.revoked.contains(key)
    }

    /// Whether the chain leads to an anchor, for clientAuth, at `now`,
    /// and is on none of the anchors' revocation lists.
    pub fn verify(
        &self,
        chain: &[CertificateDer<'static>],
        now: OffsetDateTime,
    ) -> Result<(), AnchorError> {
        use rustls::CertificateError as E;
        let verifier = self.verifier.as_ref().map_err(|e| *e)?;
        if chain.len() > MAX_CHAIN_CERTIFICATES
            || chain.iter().map(|c| c.len()).sum::<usize>() > MAX_CHAIN_BYTES
        {
            return Err(AnchorError::ChainTooLarge);
        }
        let (end_entity, intermediates) = chain.split_first().ok_or(AnchorError::Untrusted)?;
        let seconds = u64::try_from(now.unix_timestamp()).unwrap_or(0);
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds));
        match verifier.verify_client_cert(end_entity, intermediates, time) {
            Ok(_) => Ok(()),
            Err(rustls::Error::InvalidCertificate(E::Expired | E::ExpiredContext { .. })) => {
                Err(AnchorError::Expired)
            }
            Err(rustls::Error::InvalidCertificate(E::Revoked)) => Err(AnchorError::Revoked),
            Err(rustls::Error::InvalidCertificate(
                E::ExpiredRevocationList | E::ExpiredRevocationListContext { .. },
            )) => Err(AnchorError::StaleRevocationList),
            // A list that does not verify (a bad signature, an issuer
            // without cRLSign): the lists are broken, not the certificate.
            Err(rustls::Error::InvalidCertRevocationList(error)) => {
                tracing::error!(
                    ?error,
                    "unusable revocation list: no certificate logs in by CA trust until it is fixed"
                );
                Err(AnchorError::Unavailable)
            }
            Err(error) => {
                tracing::debug!(%error, "client certificate not trusted by any anchor");
                Err(AnchorError::Untrusted)
            }
        }
    }
}

impl TrustAnchors {
    /// Anchors from the PEM files in `directory` (`None`: no anchors),
    /// with the revocation lists in `crls` (`None`, or a missing
    /// directory: none).
    pub fn new(directory: Option<PathBuf>, crls: Option<PathBuf>) -> Self {
        Self {
            directory,
            crls,
            cache: Mutex::new(None),
            loads: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Forgets what was loaded: the next use reads the files again
    /// (`SIGHUP`).
    pub fn reload(&self) {
        *self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// Whether the chain leads to an anchor (see [`Reading::verify`]), by
    /// the current reading.
    pub fn verify(
        &self,
        chain: &[CertificateDer<'static>],
        now: OffsetDateTime,
    ) -> Result<(), AnchorError> {
        self.reading().verify(chain, now)
    }

    /// The current reading, made again first if the files changed.
    pub fn reading(&self) -> Arc<Reading> {
        let stamp = match self.directory.as_deref() {
            Some(directory) => stamp(&[Some(directory), self.crls.as_deref()]),
            None => Stamp::new(),
        };
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(reading) = cache.as_ref()
            && reading.stamp == stamp
        {
            return reading.clone();
        }
        let (verifier, revoked) = match self.directory.as_deref() {
            Some(directory) => load(directory, self.crls.as_deref()),
            None => (Err(AnchorError::Untrusted), Revoked::default()),
        };
        let generation = self
            .loads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let reading = Arc::new(Reading {
            stamp,
            verifier,
            revoked,
            generation,
        });
        *cache = Some(reading.clone());
        reading
    }
}

/// What the anchors were loaded from: the directories and every file in
/// them, each with what tells its content or rights changed.
type Stamp = Vec<(PathBuf, Option<FileStamp>)>;

/// What tells a file's content or rights changed: its inode, size,
/// modification and change times (the change time no program can set
/// back), mode and owner.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct FileStamp {
    device: u64,
    inode: u64,
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
    mode: u32,
    owner: u32,
}

impl FileStamp {
    /// Of what `path` names (following links).
    fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(path).ok()?;
        Some(Self {
            device: metadata.dev(),
            inode: metadata.ino(),
            len: metadata.len(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
            mode: metadata.mode(),
            owner: metadata.uid(),
        })
    }
}

/// These directories and their files, each with its [`FileStamp`] (of
/// what a link points to), sorted; a directory's read error too, so that
/// one that becomes readable again is read again.
fn stamp(directories: &[Option<&Path>]) -> Stamp {
    let mut stamp = Stamp::new();
    for directory in directories.iter().flatten() {
        stamp.push((directory.to_path_buf(), FileStamp::of(directory)));
        let entries = match std::fs::read_dir(directory) {
            Ok(entries) => entries,
            Err(error) => {
                stamp.push((directory.join(format!(":{:?}", error.kind())), None));
                continue;
            }
        };
        for entry in entries.flatten().take(MAX_TRUST_FILES + 1) {
            let path = entry.path();
            let file = FileStamp::of(&path);
            stamp.push((path, file));
        }
    }
    stamp.sort();
    stamp
}

/// Files read from each of the anchor and CRL directories.
const MAX_TRUST_FILES: usize = 4096;

/// Reads the anchors and the lists: the verifier (or why there is none),
/// and every certificate the lists name.
fn load(directory: &Path, crls: Option<&Path>) -> (Result<Verifier, AnchorError>, Revoked) {
    let mut revoked = Revoked::default();
    let lists = match crls {
        Some(crls) => read_lists(crls, &mut revoked),
        None => Ok(Vec::new()),
    };
    let roots = match read_anchors(directory) {
        Ok(roots) => roots,
        Err(error) => return (Err(error), revoked),
    };
    let lists = match lists {
        Ok(lists) => lists,
        Err((path, error)) => {
            // Fail closed: a revocation list that cannot be read might
            // have listed the certificate now logging in.
            tracing::error!(path = %path.display(), %error,
                "unusable revocation list: no certificate logs in by CA trust until it is fixed");
            return (Err(AnchorError::Unavailable), revoked);
        }
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .with_crls(lists)
        // A CA without a list here still vouches for its certificates; a
        // list past its next update no longer does.
        .allow_unknown_revocation_status()
        .enforce_revocation_expiration()
        .build()
        .map_err(|error| {
            tracing::error!(%error,
                "unusable trust anchors or revocation lists: no certificate logs in by CA trust");
            AnchorError::Unavailable
        });
    (verifier, revoked)
}

/// The anchors: the PEM files (`.pem`, `.crt`) in the anchor directory.
/// None for a missing directory; [`AnchorError::Unavailable`] for one
/// that cannot be read. Anchors that other users may change (the
/// directory, one above it, or a file) are not used: whoever can add an
/// anchor can log in as anyone.
fn read_anchors(directory: &Path) -> Result<rustls::RootCertStore, AnchorError> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let entries = match std::fs::read_dir(directory) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(AnchorError::Untrusted);
        }
        Err(error) => {
            tracing::error!(path = %directory.display(), %error,
                "cannot read the trusted CAs: no certificate logs in by CA trust");
            return Err(AnchorError::Unavailable);
        }
    };
    if let Err(error) = crate::files::check_not_changeable(directory) {
        tracing::error!(%error, "trusted CAs not used: {error}");
        return Err(AnchorError::Untrusted);
    }
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e == "pem" || e == "crt")
        })
        .take(MAX_TRUST_FILES)
        .collect();
    files.sort();
    for path in files {
        let bytes = match crate::files::read_unchangeable(&path) {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "trusted CA not used");
                continue;
            }
        };
        for certificate in CertificateDer::pem_slice_iter(&bytes).flatten() {
            if let Err(error) = roots.add(certificate) {
                tracing::warn!(path = %path.display(), %error, "unusable trust anchor");
            }
        }
    }
    if roots.is_empty() {
        return Err(AnchorError::Untrusted);
    }
    Ok(roots)
}

/// The lists for the verifier (the newest of each issuer: the verifier
/// uses only the first it finds for an issuer), filling `revoked` with
/// what every list names. Every file in the directory is a list,
/// whatever its name (so OpenSSL's `<hash>.r0` links count), hidden
/// files aside. A missing directory has none; one that cannot be read, or
/// holds more than [`MAX_TRUST_FILES`] entries or anything but lists, or
/// that other users may change (or a list in it), is an error, with the
/// path it concerns: a list left unread might name the certificate
/// logging in.
#[allow(clippy::type_complexity)]
fn read_lists(
    directory: &Path,
    revoked: &mut Revoked,
) -> Result<Vec<rustls::pki_types::CertificateRevocationListDer<'static>>, (PathBuf, String)> {
    let failed = |path: &Path, error: String| (path.to_path_buf(), error);
    let entries = match std::fs::read_dir(directory) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(failed(directory, error.to_string())),
    };
    crate::files::check_not_changeable(directory).map_err(|e| failed(directory, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| failed(directory, e.to_string()))?;
        if files.len() >= MAX_TRUST_FILES {
            return Err(failed(
                directory,
                format!("more than {MAX_TRUST_FILES} files"),
            ));
        }
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        files.push(entry.path());
    }
    files.sort();
    let mut newest: std::collections::HashMap<
        Vec<u8>,
        (
            OffsetDateTime,
            rustls::pki_types::CertificateRevocationListDer<'static>,
        ),
    > = std::collections::HashMap::new();
    for path in files {
        let bytes = crate::files::read_unchangeable(&path).map_err(|e| failed(&path, e))?;
        for list in parse_lists(&bytes).map_err(|e| failed(&path, e))? {
            let info = sigil_x509::RevocationListInfo::from_der(&list)
                .map_err(|e| failed(&path, e.to_string()))?;
            revoked
                .0
                .entry(info.issuer.clone())
                .or_default()
                .extend(info.serials.iter().cloned());
            match newest.get(&info.issuer) {
                Some((this_update, _)) if *this_update >= info.this_update => {}
                _ => {
                    newest.insert(info.issuer, (info.this_update, list));
                }
            }
        }
    }
    Ok(newest.into_values().map(|(_, list)| list).collect())
}

/// The revocation lists in one file: PEM blocks, or one DER list.
fn parse_lists(
    bytes: &[u8],
) -> Result<Vec<rustls::pki_types::CertificateRevocationListDer<'static>>, String> {
    use rustls::pki_types::CertificateRevocationListDer;
    use rustls::pki_types::pem::PemObject;
    if bytes.starts_with(b"-----") {
        let lists: Result<Vec<_>, _> =
            CertificateRevocationListDer::pem_slice_iter(bytes).collect();
        let lists = lists.map_err(|e| e.to_string())?;
        if lists.is_empty() {
            return Err("no X509 CRL block".into());
        }
        Ok(lists)
    } else {
        Ok(vec![CertificateRevocationListDer::from(bytes.to_vec())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jids(list: &[&str]) -> Vec<Jid> {
        list.iter().map(|j| Jid::new(j).unwrap()).collect()
    }

    fn value(v: &str) -> Authzid {
        Authzid::Value(v.into())
    }

    #[test]
    fn authzid_rules() {
        let one = jids(&["juliet@example.org"]);
        let pinned = jids(&["juliet@example.org/balcony"]);
        let two = jids(&["juliet@example.org", "romeo@example.org"]);
        let ok = |ids: &[Jid], a: Authzid| {
            select_identity(ids, &a, "example.org").map(|j| j.to_string())
        };
        assert_eq!(ok(&one, Authzid::Absent).unwrap(), "juliet@example.org");
        assert_eq!(ok(&one, Authzid::Empty).unwrap(), "juliet@example.org");
        assert_eq!(
            ok(&one, value("juliet@example.org")).unwrap(),
            "juliet@example.org"
        );
        assert_eq!(
            ok(&one, value("example.org")).unwrap(),
            "juliet@example.org"
        );
        assert_eq!(
            ok(&one, value("juliet@example.org/phone")),
            Err(Failure::InvalidAuthzid)
        );
        assert_eq!(
            ok(&pinned, value("juliet@example.org")).unwrap(),
            "juliet@example.org/balcony"
        );
        assert_eq!(
            ok(&pinned, value("juliet@example.org/balcony")).unwrap(),
            "juliet@example.org/balcony"
        );
        assert_eq!(ok(&two, Authzid::Absent), Err(Failure::InvalidAuthzid));
        assert_eq!(
            ok(&two, value("romeo@example.org")).unwrap(),
            "romeo@example.org"
        );
        assert_eq!(ok(&two, value("example.org")), Err(Failure::InvalidAuthzid));
        assert_eq!(
            ok(&two, value("nurse@example.org")),
            Err(Failure::InvalidAuthzid)
        );
        assert_eq!(ok(&[], Authzid::Absent), Err(Failure::NotAuthorized));
        assert_eq!(ok(&one, value("not a jid@@")), Err(Failure::InvalidAuthzid));
    }
}
