//! The trusted certificate authorities and their revocation lists, as
//! read from their directories: what a certificate login by CA trust, and
//! every certificate login's revocation check, is decided against.
//!
//! A [`Reading`] is made again whenever something in either directory
//! changes (name, size, times, mode or owner, of a link's target too, and
//! of the directories) or after [`TrustAnchors::reload`] (`SIGHUP`); each
//! is numbered, and [`crate::context::Context::check_trust`] checks the
//! sessions again against a new one. Anchors are the `.pem` and `.crt`
//! files; every file in the list directory but hidden ones is a list.
//!
//! It fails closed. A certificate a list names (by issuer and serial)
//! never logs in, whatever chain the client sends and however stale the
//! list: a list can only deny. A list that cannot be read or does not verify,
//! anything but a regular file, more than 4,096 files, or a directory or
//! file another user could change stops every login by CA trust
//! ([`AnchorError::Unavailable`]); a list past its `nextUpdate` stops
//! those of its CA ([`AnchorError::StaleRevocationList`]): both are
//! `temporary-auth-failure`. Anchors another user could change are not
//! used. The verifier gets the newest list of each issuer.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use sigil_sasl::Failure;
use sigil_x509::{CertificateInfo, OffsetDateTime};

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
