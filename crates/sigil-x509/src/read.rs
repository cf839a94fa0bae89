//! Reading a certificate: its XMPP identities and everything a person or a
//! login decision needs to know about it.

use core::fmt;

use jid::Jid;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::der::{OtherNameValue, other_name_value};

/// `id-on-xmppAddr` (RFC 6120 §13.7.1.4), as a dotted string.
pub const ID_ON_XMPPADDR: &str = "1.3.6.1.5.5.7.8.5";

/// The largest input [`CertificateInfo::parse`] accepts, in bytes.
pub const MAX_INPUT_LEN: usize = 1024 * 1024;

/// The most subjectAltName entries a certificate may carry before it is
/// refused as hostile (a large public server certificate has about 100).
pub const MAX_SUBJECT_ALT_NAMES: usize = 1024;

/// The most `id-on-xmppAddr` identities a certificate may carry.
pub const MAX_XMPP_ADDRS: usize = 64;

/// Why a certificate could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The DER is truncated, malformed or followed by other data.
    Der(String),
    /// An extension Sigil reads (subjectAltName, extendedKeyUsage, basic
    /// constraints) is malformed or repeated.
    Extension(String),
    /// The PEM text holds no `CERTIFICATE` block.
    NoCertificate,
    /// The PEM armour is broken.
    Pem(String),
    /// The input is larger than [`MAX_INPUT_LEN`].
    TooLarge(usize),
    /// More names than [`MAX_SUBJECT_ALT_NAMES`] or [`MAX_XMPP_ADDRS`].
    TooManyNames {
        /// What kind of names.
        kind: &'static str,
        /// How many the certificate has.
        count: usize,
        /// The limit.
        limit: usize,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Der(e) => write!(f, "not a valid DER certificate: {e}"),
            Self::Extension(e) => write!(f, "a certificate extension is invalid: {e}"),
            Self::NoCertificate => f.write_str("no CERTIFICATE block in the PEM text"),
            Self::Pem(e) => write!(f, "invalid PEM: {e}"),
            Self::TooLarge(len) => {
                write!(
                    f,
                    "{len} bytes is too large for a certificate (limit {MAX_INPUT_LEN})"
                )
            }
            Self::TooManyNames { kind, count, limit } => {
                write!(
                    f,
                    "the certificate has {count} {kind}; at most {limit} are accepted"
                )
            }
        }
    }
}

impl core::error::Error for ReadError {}

/// Why an `id-on-xmppAddr` entry is not usable as an identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityError {
    /// The value is not `[0] EXPLICIT` around one string.
    Malformed,
    /// The value contains a NUL character.
    EmbeddedNul,
    /// The value is not a valid JID.
    InvalidJid(String),
    /// The UTF8String is not valid UTF-8.
    InvalidUtf8,
    /// XEP-0178 requires a UTF8String; this is another string type.
    NotUtf8String(&'static str),
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str("the value is not a DER [0] EXPLICIT string"),
            Self::EmbeddedNul => f.write_str("the value contains a NUL character"),
            Self::InvalidJid(reason) => write!(f, "not a valid JID: {reason}"),
            Self::InvalidUtf8 => f.write_str("the UTF8String is not valid UTF-8"),
            Self::NotUtf8String(kind) => {
                write!(
                    f,
                    "the value is a {kind}, but id-on-xmppAddr must be a UTF8String"
                )
            }
        }
    }
}

/// An `id-on-xmppAddr` entry that is present but cannot identify anyone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidIdentity {
    /// The value as far as it could be read, for display (lossy, escaped).
    pub value: String,
    /// Why it was rejected.
    pub reason: IdentityError,
}

/// The public key's kind and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA on NIST P-256.
    EcdsaP256,
    /// ECDSA on NIST P-384.
    EcdsaP384,
    /// ECDSA on another curve (its OID).
    EcdsaOther(String),
    /// Ed25519.
    Ed25519,
    /// RSA with a modulus of this many bits.
    Rsa(usize),
    /// Another algorithm (its OID).
    Other(String),
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EcdsaP256 => f.write_str("ECDSA P-256"),
            Self::EcdsaP384 => f.write_str("ECDSA P-384"),
            Self::EcdsaOther(curve) => write!(f, "ECDSA (curve {curve})"),
            Self::Ed25519 => f.write_str("Ed25519"),
            Self::Rsa(bits) => write!(f, "RSA {bits}"),
            Self::Other(oid) => write!(f, "unknown ({oid})"),
        }
    }
}

/// What extendedKeyUsage says about client authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// extendedKeyUsage lists `clientAuth`.
    Allowed,
    /// extendedKeyUsage lists other purposes but not `clientAuth`.
    NotAllowed,
    /// No extendedKeyUsage, or `anyExtendedKeyUsage`: any purpose.
    Unrestricted,
}

impl ClientAuth {
    /// Whether the certificate may be used to authenticate a TLS client.
    pub fn permits_client_auth(self) -> bool {
        !matches!(self, Self::NotAllowed)
    }
}

/// Where a moment falls in a certificate's validity window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    /// Before `notBefore`.
    NotYetValid,
    /// Within the window.
    Valid,
    /// After `notAfter`.
    Expired,
}

/// Everything Sigil reads from a certificate.
///
/// Common names and e-mail addresses are kept for display only: Sigil never
/// logs anyone in by them (Openfire CVE-2025-59154 mapped spoofable CNs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The usable `id-on-xmppAddr` identities, in certificate order.
    pub identities: Vec<Jid>,
    /// `id-on-xmppAddr` entries that cannot be used, with the reason.
    pub invalid_identities: Vec<InvalidIdentity>,
    /// dNSName subjectAltNames.
    pub dns_names: Vec<String>,
    /// Start of the validity window.
    pub not_before: OffsetDateTime,
    /// End of the validity window.
    pub not_after: OffsetDateTime,
    /// SHA-256 of the DER: the fingerprint Sigil keys certificates by.
    pub sha256: [u8; 32],
    /// SHA-1 of the DER, only to show next to tools that print it.
    pub sha1: [u8; 20],
    /// The public key.
    pub key: KeyKind,
    /// What extendedKeyUsage allows.
    pub client_auth: ClientAuth,
    /// Whether basicConstraints marks a CA.
    pub is_ca: bool,
    /// Whether subject and issuer are the same name (self-issued).
    pub self_issued: bool,
    /// The issuer's distinguished name (RFC 4514 style).
    pub issuer: String,
    /// The subject's distinguished name (RFC 4514 style).
    pub subject: String,
    /// Subject common names, for display only.
    pub common_names: Vec<String>,
    /// Subject e-mail addresses, for display only.
    pub email_addresses: Vec<String>,
    /// The serial number, colon-separated hex.
    pub serial: String,
    /// The issuer's name (DER) and the serial number (the INTEGER's
    /// content bytes): what a revocation list names a certificate by.
    pub revocation_key: RevocationKey,
}

impl CertificateInfo {
    /// Reads a certificate given as DER or as PEM (the first `CERTIFICATE`
    /// block).
    pub fn parse(input: &[u8]) -> Result<Self, ReadError> {
        if input.len() > MAX_INPUT_LEN {
            return Err(ReadError::TooLarge(input.len()));
        }
        if looks_like_pem(input) {
            let der = pem_certificates(input)?
                .into_iter()
                .next()
                .ok_or(ReadError::NoCertificate)?;
            Self::from_der(&der)
        } else if input.first() == Some(&0x30) {
            Self::from_der(input)
        } else {
            Err(ReadError::Der(
                "neither PEM (-----BEGIN CERTIFICATE-----) nor DER (no leading SEQUENCE)"
                    .to_owned(),
            ))
        }
    }

    /// Reads a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, ReadError> {
        if der.len() > MAX_INPUT_LEN {
            return Err(ReadError::TooLarge(der.len()));
        }
        let (rest, certificate) =
            X509Certificate::from_der(der).map_err(|e| ReadError::Der(e.to_string()))?;
        if !rest.is_empty() {
            return Err(ReadError::Der(format!(
                "{} bytes after the certificate",
                rest.len()
            )));
        }
        let extension_error =
            |e: x509_parser::error::X509Error| ReadError::Extension(e.to_string());

        let mut identities = Vec::new();
        let mut invalid_identities = Vec::new();
        let mut dns_names = Vec::new();
        if let Some(san) = certificate
            .subject_alternative_name()
            .map_err(extension_error)?
        {
            let names = &san.value.general_names;
            if names.len() > MAX_SUBJECT_ALT_NAMES {
                return Err(ReadError::TooManyNames {
                    kind: "subjectAltName entries",
                    count: names.len(),
                    limit: MAX_SUBJECT_ALT_NAMES,
                });
            }
            let mut xmpp_addrs = 0;
            for name in names {
                match name {
                    GeneralName::OtherName(oid, value) if oid.to_id_string() == ID_ON_XMPPADDR => {
                        xmpp_addrs += 1;
                        match identity(value) {
                            Ok(jid) => identities.push(jid),
                            Err(invalid) => invalid_identities.push(invalid),
                        }
                    }
                    GeneralName::DNSName(name) => dns_names.push((*name).to_owned()),
                    _ => {}
                }
            }
            if xmpp_addrs > MAX_XMPP_ADDRS {
                return Err(ReadError::TooManyNames {
                    kind: "id-on-xmppAddr identities",
                    count: xmpp_addrs,
                    limit: MAX_XMPP_ADDRS,
                });
            }
        }

        let client_auth = match certificate.extended_key_usage().map_err(extension_error)? {
            None => ClientAuth::Unrestricted,
            Some(eku) if eku.value.any => ClientAuth::Unrestricted,
            Some(eku) if eku.value.client_auth => ClientAuth::Allowed,
            Some(_) => ClientAuth::NotAllowed,
        };
        let is_ca = certificate
            .basic_constraints()
            .map_err(extension_error)?
            .is_some_and(|constraints| constraints.value.ca);

        let subject = certificate.subject();
        let strings = |values: Vec<Result<&str, _>>| -> Vec<String> {
            values
                .into_iter()
                .map(|value| value.map_or_else(|_| "(not a string)".to_owned(), str::to_owned))
                .collect()
        };
        let common_names = strings(subject.iter_common_name().map(|a| a.as_str()).collect());
        let email_addresses = strings(subject.iter_email().map(|a| a.as_str()).collect());

        Ok(Self {
            der: der.to_vec(),
            identities,
            invalid_identities,
            dns_names,
            not_before: certificate.validity().not_before.to_datetime(),
            not_after: certificate.validity().not_after.to_datetime(),
            sha256: Sha256::digest(der).into(),
            sha1: Sha1::digest(der).into(),
            key: key_kind(&certificate),
            client_auth,
            is_ca,
            self_issued: certificate.subject().as_raw() == certificate.issuer().as_raw(),
            issuer: certificate.issuer().to_string(),
            subject: subject.to_string(),
            common_names,
            email_addresses,
            serial: colon_hex(certificate.raw_serial()),
            revocation_key: RevocationKey {
                issuer: certificate.issuer().as_raw().to_vec(),
                serial: certificate.raw_serial().to_vec(),
            },
        })
    }

    /// Where `now` falls in the validity window.
    pub fn validity_at(&self, now: OffsetDateTime) -> Validity {
        if now < self.not_before {
            Validity::NotYetValid
        } else if now > self.not_after {
            Validity::Expired
        } else {
            Validity::Valid
        }
    }

    /// The SHA-256 fingerprint as colon-separated upper-case hex, as
    /// `openssl x509 -fingerprint -sha256` prints it.
    pub fn sha256_fingerprint(&self) -> String {
        colon_hex(&self.sha256)
    }

    /// The SHA-1 fingerprint, colon-separated (for display only).
    pub fn sha1_fingerprint(&self) -> String {
        colon_hex(&self.sha1)
    }
}

/// The DER of every `CERTIFICATE` block in PEM text, in order.
pub fn pem_certificates(input: &[u8]) -> Result<Vec<Vec<u8>>, ReadError> {
    if input.len() > MAX_INPUT_LEN {
        return Err(ReadError::TooLarge(input.len()));
    }
    let blocks = pem::parse_many(input).map_err(|e| ReadError::Pem(e.to_string()))?;
    if blocks.is_empty() {
        return Err(ReadError::Pem("no complete BEGIN/END block".to_owned()));
    }
    let certificates: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|block| block.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .collect();
    if certificates.is_empty() {
        return Err(ReadError::NoCertificate);
    }
    Ok(certificates)
}

fn looks_like_pem(input: &[u8]) -> bool {
    let start = input
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(input.len());
    input[start..].starts_with(b"-----BEGIN")
}

fn identity(value: &[u8]) -> Result<Jid, InvalidIdentity> {
    let invalid = |value: String, reason| InvalidIdentity { value, reason };
    let bytes = match other_name_value(value) {
        OtherNameValue::Utf8(bytes) => bytes,
        OtherNameValue::OtherString(kind) => {
            return Err(invalid(
                String::from_utf8_lossy(value).escape_debug().to_string(),
                IdentityError::NotUtf8String(kind),
            ));
        }
        OtherNameValue::Malformed => {
            return Err(invalid(colon_hex(value), IdentityError::Malformed));
        }
    };
    let Ok(text) = core::str::from_utf8(bytes) else {
        return Err(invalid(
            String::from_utf8_lossy(bytes).escape_debug().to_string(),
            IdentityError::InvalidUtf8,
        ));
    };
    if text.contains('\0') {
        return Err(invalid(
            text.escape_debug().to_string(),
            IdentityError::EmbeddedNul,
        ));
    }
    Jid::new(text).map_err(|e| {
        invalid(
            text.escape_debug().to_string(),
            IdentityError::InvalidJid(e.to_string()),
        )
    })
}

fn key_kind(certificate: &X509Certificate<'_>) -> KeyKind {
    let spki = certificate.public_key();
    let algorithm = spki.algorithm.algorithm.to_id_string();
    match algorithm.as_str() {
        "1.2.840.113549.1.1.1" => match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => KeyKind::Rsa(rsa.key_size()),
            _ => KeyKind::Other(algorithm),
        },
        "1.2.840.10045.2.1" => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|parameters| parameters.as_oid().ok())
                .map(|oid| oid.to_id_string())
                .unwrap_or_default();
            match curve.as_str() {
                "1.2.840.10045.3.1.7" => KeyKind::EcdsaP256,
                "1.3.132.0.34" => KeyKind::EcdsaP384,
                _ => KeyKind::EcdsaOther(curve),
            }
        }
        "1.3.101.112" => KeyKind::Ed25519,
        _ => KeyKind::Other(algorithm),
    }
}

fn colon_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, byte) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{byte:02X}"));
    }
    out
}

/// How a revocation list names a certificate: its issuer's name (DER)
/// and its serial number (the INTEGER's content bytes).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RevocationKey {
    /// The issuer's distinguished name, DER.
    pub issuer: Vec<u8>,
    /// The serial number's content bytes.
    pub serial: Vec<u8>,
}

/// What a certificate revocation list (RFC 5280 §5) says, unverified: its
/// issuer, when it was issued and is due again, and what it revokes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationListInfo {
    /// The issuer's distinguished name, DER.
    pub issuer: Vec<u8>,
    /// The issuer's distinguished name, RFC 4514 style (for messages).
    pub issuer_name: String,
    /// When it was issued.
    pub this_update: OffsetDateTime,
    /// When the next one is due, if it says.
    pub next_update: Option<OffsetDateTime>,
    /// The serial numbers it revokes (content bytes).
    pub serials: Vec<Vec<u8>>,
}

impl RevocationListInfo {
    /// Reads a DER revocation list. Its signature is not checked: this is
    /// for lists an operator installed, which can only deny.
    pub fn from_der(der: &[u8]) -> Result<Self, ReadError> {
        use x509_parser::revocation_list::CertificateRevocationList;
        let (rest, list) =
            CertificateRevocationList::from_der(der).map_err(|e| ReadError::Der(e.to_string()))?;
        if !rest.is_empty() {
            return Err(ReadError::Der(format!(
                "{} bytes after the revocation list",
                rest.len()
            )));
        }
        Ok(Self {
            issuer: list.issuer().as_raw().to_vec(),
            issuer_name: list.issuer().to_string(),
            this_update: list.last_update().to_datetime(),
            next_update: list.next_update().map(|t| t.to_datetime()),
            serials: list
                .iter_revoked_certificates()
                .map(|revoked| revoked.raw_serial().to_vec())
                .collect(),
        })
    }

    /// The keys of the certificates it revokes.
    pub fn revoked(&self) -> impl Iterator<Item = RevocationKey> + '_ {
        self.serials.iter().map(|serial| RevocationKey {
            issuer: self.issuer.clone(),
            serial: serial.clone(),
        })
    }
}
