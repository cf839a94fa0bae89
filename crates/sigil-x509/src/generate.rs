//! Making certificates: self-signed client certificates for XMPP
//! identities, a local CA and the certificates it signs, server
//! certificates.
//!
//! Every certificate gets explicit dates (rcgen's default, 1975–4096, would
//! outlive everyone), a random 128-bit serial, and a `notBefore` one hour in
//! the past so that a certificate made on one machine is already valid on a
//! server whose clock runs a little behind.

use core::fmt;
use core::str::FromStr;

use jid::Jid;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, RsaKeySize,
    SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// subjectAltName (2.5.29.17) as rcgen wants it.
const SUBJECT_ALT_NAME: [u64; 4] = [2, 5, 29, 17];

/// How far `notBefore` is set in the past.
pub const BACKDATE: Duration = Duration::hours(1);

/// The longest validity accepted, in days (100 years).
pub const MAX_DAYS: u32 = 36_500;

/// The default validity of a client or server certificate, in days.
pub const DEFAULT_DAYS: u32 = 365;

/// The default validity of a CA certificate, in days (10 years).
pub const DEFAULT_CA_DAYS: u32 = 3650;

/// The kind of key to generate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256: small, fast, accepted everywhere.
    #[default]
    P256,
    /// RSA 2048 with SHA-256.
    Rsa2048,
    /// RSA 4096 with SHA-256 (the seeds' choice; slow to make and use).
    Rsa4096,
    /// Ed25519 (not accepted by every TLS client or browser).
    Ed25519,
}

impl KeyType {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::P256 => "p256",
            Self::Rsa2048 => "rsa2048",
            Self::Rsa4096 => "rsa4096",
            Self::Ed25519 => "ed25519",
        }
    }

    fn generate(self) -> Result<KeyPair, GenerateError> {
        let key = match self {
            Self::P256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            Self::Rsa2048 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048),
            Self::Rsa4096 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_4096),
            Self::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
        };
        key.map_err(|e| GenerateError::Key(e.to_string()))
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::P256, Self::Rsa2048, Self::Rsa4096, Self::Ed25519]
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| format!("unknown key type {s:?}: use p256, rsa2048, rsa4096 or ed25519"))
    }
}

/// Why a certificate could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GenerateError {
    /// The CA's certificate or key cannot be used.
    Ca(String),
    /// The validity is zero days or more than [`MAX_DAYS`].
    Days(u32),
    /// The server domain is not a usable DNS name.
    Domain(String),
    /// Key generation or loading failed.
    Key(String),
    /// A client certificate needs at least one JID.
    NoIdentity,
    /// A certificate signing request cannot be used.
    Request(String),
    /// The certificate could not be assembled or signed.
    Sign(String),
}

impl fmt::Display for GenerateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ca(e) => write!(f, "unusable CA: {e}"),
            Self::Days(days) => write!(f, "validity of {days} days: must be 1 to {MAX_DAYS}"),
            Self::Domain(e) => write!(f, "invalid server domain: {e}"),
            Self::Key(e) => write!(f, "key: {e}"),
            Self::NoIdentity => f.write_str("a client certificate needs at least one JID"),
            Self::Request(e) => write!(f, "unusable certificate signing request: {e}"),
            Self::Sign(e) => write!(f, "cannot make the certificate: {e}"),
        }
    }
}

impl core::error::Error for GenerateError {}

/// Validity and key choices shared by every certificate made here.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Days of validity from `now`.
    pub days: u32,
    /// The key to generate.
    pub key: KeyType,
    /// The current time (passed in: this crate reads no clock).
    pub now: OffsetDateTime,
}

impl Options {
    /// [`DEFAULT_DAYS`] with a P-256 key, from `now`.
    pub fn new(now: OffsetDateTime) -> Self {
        Self {
            days: DEFAULT_DAYS,
            key: KeyType::default(),
            now,
        }
    }
}

/// A certificate and its private key.
pub struct Issued {
    /// The certificate, DER.
    pub certificate_der: Vec<u8>,
    key: KeyPair,
}

impl Issued {
    /// Loads a certificate and its PKCS#8 key, both PEM; the key must
    /// belong to the certificate.
    pub fn from_pem(certificate_pem: &str, key_pem: &str) -> Result<Self, GenerateError> {
        let certificate_der = crate::pem_certificates(certificate_pem.as_bytes())
            .map_err(|e| GenerateError::Ca(e.to_string()))?
            .into_iter()
            .next()
            .ok_or_else(|| GenerateError::Ca("no certificate".to_owned()))?;
        let key = KeyPair::from_pem(key_pem).map_err(|e| GenerateError::Ca(format!("key: {e}")))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&certificate_der)
            .map_err(|e| GenerateError::Ca(e.to_string()))?;
        if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(GenerateError::Ca(
                "the key does not belong to the certificate".to_owned(),
            ));
        }
        Ok(Self {
            certificate_der,
            key,
        })
    }

    /// A certificate signing request (PKCS#10, DER) for this key, naming
    /// `jid` as its common name and asking for nothing else: what a device
    /// sends a server that signs certificates ([`Ca::sign_client_request`]
    /// decides what the certificate says).
    pub fn signing_request(&self, jid: &Jid) -> Result<Vec<u8>, GenerateError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(jid.as_str());
        let request = params
            .serialize_request(&self.key)
            .map_err(|e| GenerateError::Sign(e.to_string()))?;
        Ok(request.der().to_vec())
    }

    /// This key with another certificate for it (one a CA signed for
    /// [`Self::signing_request`]); refused if the certificate is for
    /// another key.
    pub fn with_certificate(self, certificate_der: Vec<u8>) -> Result<Self, GenerateError> {
        let (_, parsed) = x509_parser::parse_x509_certificate(&certificate_der)
            .map_err(|e| GenerateError::Sign(format!("the signed certificate: {e}")))?;
        if parsed.public_key().raw != self.key.subject_public_key_info().as_slice() {
            return Err(GenerateError::Sign(
                "the signed certificate is not for this key".to_owned(),
            ));
        }
        Ok(Self {
            certificate_der,
            key: self.key,
        })
    }

    /// The certificate as PEM.
    pub fn certificate_pem(&self) -> String {
        pem::encode(&pem::Pem::new("CERTIFICATE", self.certificate_der.clone()))
    }

    /// The private key, PKCS#8 DER.
    ///
    /// Ed25519 keys are written as version 1 (RFC 8410 without the public
    /// key): OpenSSL 3.0 cannot read the version 2 form inside a PKCS#12.
    pub fn key_der(&self) -> Vec<u8> {
        let der = self.key.serialize_der();
        ed25519_v1(&der).unwrap_or(der)
    }

    /// The private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        pem::encode(&pem::Pem::new("PRIVATE KEY", self.key_der()))
    }
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("certificate_der", &self.certificate_der.len())
            .finish_non_exhaustive()
    }
}

/// A certificate authority that can sign client and server certificates.
pub struct Ca {
    issued: Issued,
}

impl Ca {
    /// A new self-signed CA named `name` (its common name).
    pub fn new(name: &str, options: &Options) -> Result<Self, GenerateError> {
        let mut params = base_params(options)?;
        params.distinguished_name = common_name(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = options.key.generate()?;
        let certificate = params
            .self_signed(&key)
            .map_err(|e| GenerateError::Sign(e.to_string()))?;
        Ok(Self {
            issued: Issued {
                certificate_der: certificate.der().to_vec(),
                key,
            },
        })
    }

    /// Loads a CA from its certificate and PKCS#8 key, both PEM.
    pub fn from_pem(certificate_pem: &str, key_pem: &str) -> Result<Self, GenerateError> {
        let certificate_der = crate::pem_certificates(certificate_pem.as_bytes())
            .map_err(|e| GenerateError::Ca(e.to_string()))?
            .into_iter()
            .next()
            .ok_or_else(|| GenerateError::Ca("no certificate".to_owned()))?;
        let info = crate::CertificateInfo::from_der(&certificate_der)
            .map_err(|e| GenerateError::Ca(e.to_string()))?;
        if !info.is_ca {
            return Err(GenerateError::Ca(
                "the certificate is not a CA (basicConstraints)".to_owned(),
            ));
        }
        let key = KeyPair::from_pem(key_pem).map_err(|e| GenerateError::Ca(format!("key: {e}")))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&certificate_der)
            .map_err(|e| GenerateError::Ca(e.to_string()))?;
        if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(GenerateError::Ca(
                "the key does not belong to the certificate".to_owned(),
            ));
        }
        Ok(Self {
            issued: Issued {
                certificate_der,
                key,
            },
        })
    }

    /// The CA certificate and key.
    pub fn issued(&self) -> &Issued {
        &self.issued
    }

    /// A certificate revocation list (DER) signed by this CA that lists
    /// the certificates given (DER), issued `now` and due again in `days`
    /// (`[auth] crls` on a server).
    pub fn revocation_list(
        &self,
        revoked: &[&[u8]],
        now: OffsetDateTime,
        days: u32,
    ) -> Result<Vec<u8>, GenerateError> {
        use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams};
        if days == 0 || days > MAX_DAYS {
            return Err(GenerateError::Days(days));
        }
        let mut revoked_certs = Vec::with_capacity(revoked.len());
        for der in revoked {
            let (_, parsed) = x509_parser::parse_x509_certificate(der)
                .map_err(|e| GenerateError::Ca(format!("a certificate to revoke: {e}")))?;
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(parsed.raw_serial()),
                revocation_time: now,
                reason_code: None,
                invalidity_date: None,
            });
        }
        let mut number = [0u8; 16];
        getrandom::fill(&mut number).map_err(|e| GenerateError::Sign(e.to_string()))?;
        number[0] &= 0x7f;
        let params = CertificateRevocationListParams {
            this_update: now,
            next_update: now + Duration::days(i64::from(days)),
            crl_number: SerialNumber::from_slice(&number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let list = params
            .signed_by(&self.issuer()?)
            .map_err(|e| GenerateError::Sign(e.to_string()))?;
        Ok(list.der().to_vec())
    }

    /// Signs a device's certificate signing request (PKCS#10, DER) as a
    /// client certificate for `jids`, valid as `options` say (its key
    /// type is ignored: the key is the request's).
    ///
    /// Only the request's public key is used, once its signature proves
    /// the requester holds the key: what the certificate names and
    /// permits is [`client_certificate`]'s, whatever the request asks.
    /// RSA keys under [`MIN_RSA_BITS`] are refused.
    pub fn sign_client_request(
        &self,
        request_der: &[u8],
        jids: &[Jid],
        options: &Options,
    ) -> Result<Vec<u8>, GenerateError> {
        use rcgen::CertificateSigningRequestParams;
        use x509_parser::prelude::FromDer;
        use x509_parser::public_key::PublicKey;
        let (rest, parsed) =
            x509_parser::certification_request::X509CertificationRequest::from_der(request_der)
                .map_err(|e| GenerateError::Request(format!("not a PKCS#10 request: {e}")))?;
        if !rest.is_empty() {
            return Err(GenerateError::Request("bytes after the request".to_owned()));
        }
        if let Ok(PublicKey::RSA(rsa)) = parsed.certification_request_info.subject_pki.parsed()
            && rsa.key_size() < MIN_RSA_BITS
        {
            return Err(GenerateError::Request(format!(
                "an RSA key of {} bits: at least {MIN_RSA_BITS} are needed",
                rsa.key_size()
            )));
        }
        let request = CertificateSigningRequestParams::from_der(&request_der.into())
            .map_err(|e| GenerateError::Request(e.to_string()))?;
        let signing = CertificateSigningRequestParams {
            params: client_params(jids, options)?,
            public_key: request.public_key,
        };
        let certificate = signing
            .signed_by(&self.issuer()?)
            .map_err(|e| GenerateError::Sign(e.to_string()))?;
        Ok(certificate.der().to_vec())
    }

    fn issuer(&self) -> Result<Issuer<'_, &KeyPair>, GenerateError> {
        Issuer::from_ca_cert_der(
            &self.issued.certificate_der.as_slice().into(),
            &self.issued.key,
        )
        .map_err(|e| GenerateError::Ca(e.to_string()))
    }
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// A client certificate for `jids` (bare or full; a full JID pins the
/// resource), self-signed or signed by `ca`.
///
/// extendedKeyUsage clientAuth, keyUsage digitalSignature, basicConstraints
/// CA:FALSE, one `id-on-xmppAddr` UTF8String per JID, in order; the common
/// name is the first JID (for display; Sigil never logs in by it).
pub fn client_certificate(
    jids: &[Jid],
    options: &Options,
    ca: Option<&Ca>,
) -> Result<Issued, GenerateError> {
    sign(client_params(jids, options)?, options, ca)
}

/// What every client certificate made here says: see
/// [`client_certificate`].
fn client_params(jids: &[Jid], options: &Options) -> Result<CertificateParams, GenerateError> {
    let first = jids.first().ok_or(GenerateError::NoIdentity)?;
    let mut params = base_params(options)?;
    params.distinguished_name = common_name(first.as_str());
    // The subjectAltName goes after keyUsage and the others (rcgen writes
    // custom extensions last): libstrophe 0.12 finds no xmppAddr in a
    // certificate whose first extension is the subjectAltName.
    params.custom_extensions = vec![CustomExtension::from_oid_content(
        &SUBJECT_ALT_NAME,
        crate::der::xmpp_addr_names(jids.iter().map(Jid::as_str)),
    )];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    Ok(params)
}

/// The smallest RSA key a signing request may carry, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// A server certificate for `domain`: dNSName SAN, extendedKeyUsage
/// serverAuth, keyUsage digitalSignature (and keyEncipherment for RSA keys).
pub fn server_certificate(
    domain: &str,
    options: &Options,
    ca: Option<&Ca>,
) -> Result<Issued, GenerateError> {
    let valid = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if !valid {
        return Err(GenerateError::Domain(format!(
            "{domain:?} is not a DNS name"
        )));
    }
    let mut params = base_params(options)?;
    params.distinguished_name = common_name(domain);
    params.subject_alt_names = vec![SanType::DnsName(
        domain
            .to_ascii_lowercase()
            .try_into()
            .map_err(|e: rcgen::Error| GenerateError::Domain(e.to_string()))?,
    )];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if matches!(options.key, KeyType::Rsa2048 | KeyType::Rsa4096) {
        params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    sign(params, options, ca)
}

fn sign(
    params: CertificateParams,
    options: &Options,
    ca: Option<&Ca>,
) -> Result<Issued, GenerateError> {
    let key = options.key.generate()?;
    let certificate = match ca {
        Some(ca) => params.signed_by(&key, &ca.issuer()?),
        None => params.self_signed(&key),
    }
    .map_err(|e| GenerateError::Sign(e.to_string()))?;
    Ok(Issued {
        certificate_der: certificate.der().to_vec(),
        key,
    })
}

fn base_params(options: &Options) -> Result<CertificateParams, GenerateError> {
    if options.days == 0 || options.days > MAX_DAYS {
        return Err(GenerateError::Days(options.days));
    }
    let now = options
        .now
        .replace_nanosecond(0)
        .map_err(|e| GenerateError::Sign(e.to_string()))?;
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| GenerateError::Sign(format!("no randomness: {e}")))?;
    // A positive INTEGER with no leading zero byte.
    serial[0] = (serial[0] & 0x7f) | 0x40;
    let mut params = CertificateParams::default();
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(i64::from(options.days));
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(params)
}

/// The PKCS#8 v1 form of an Ed25519 key given as v2 (`OneAsymmetricKey`
/// with the public key), or `None` if `der` is not such a key.
fn ed25519_v1(der: &[u8]) -> Option<Vec<u8>> {
    // SEQUENCE { INTEGER 1, SEQUENCE { OID 1.3.101.112 },
    //            OCTET STRING { OCTET STRING (32) }, [1] publicKey }
    const V2_BODY: [u8; 14] = [
        0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    ];
    const V1_PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let (&[0x30, len], body) = der.split_first_chunk::<2>()? else {
        return None;
    };
    if usize::from(len) != body.len() {
        return None;
    }
    let seed = body.strip_prefix(&V2_BODY)?.get(..32)?;
    Some([&V1_PREFIX[..], seed].concat())
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}
