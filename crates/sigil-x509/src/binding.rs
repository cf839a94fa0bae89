//! The `tls-server-end-point` channel binding (RFC 5929 §4.1).

use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_parser::prelude::{FromDer, X509Certificate};

/// The `tls-server-end-point` channel binding data of a server
/// certificate: its DER hashed with the hash of its signature algorithm,
/// SHA-256 when that is MD5 or SHA-1 (RFC 5929 §4.1). `None` when the
/// certificate cannot be read or its signature algorithm names no hash
/// (Ed25519: RFC 5929 does not define the binding for it).
pub fn tls_server_end_point(der: &[u8]) -> Option<Vec<u8>> {
    let (_, certificate) = X509Certificate::from_der(der).ok()?;
    let oid = certificate.signature_algorithm.algorithm.to_id_string();
    let hash = match oid.as_str() {
        // md5WithRSA, sha1WithRSA, ecdsa-with-SHA1, dsa-with-sha1
        "1.2.840.113549.1.1.4"
        | "1.2.840.113549.1.1.5"
        | "1.2.840.10045.4.1"
        | "1.2.840.10040.4.3" => 256,
        // sha256WithRSA, ecdsa-with-SHA256
        "1.2.840.113549.1.1.11" | "1.2.840.10045.4.3.2" => 256,
        // sha384WithRSA, ecdsa-with-SHA384
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => 384,
        // sha512WithRSA, ecdsa-with-SHA512
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => 512,
        _ => return None,
    };
    Some(match hash {
        256 => Sha256::digest(der).to_vec(),
        384 => Sha384::digest(der).to_vec(),
        _ => Sha512::digest(der).to_vec(),
    })
}

#[cfg(all(test, feature = "generate"))]
mod tests {
    use super::*;
    use crate::generate::{KeyType, Options, server_certificate};

    #[test]
    fn p256_certificates_hash_with_sha256() {
        let options = Options::new(time::OffsetDateTime::now_utc());
        let issued = server_certificate("example.org", &options, None).unwrap();
        let der = issued.certificate_der.clone();
        assert_eq!(
            tls_server_end_point(&der),
            Some(Sha256::digest(&der).to_vec())
        );
        let ed = Options {
            key: KeyType::Ed25519,
            ..options
        };
        let issued = server_certificate("example.org", &ed, None).unwrap();
        assert_eq!(tls_server_end_point(&issued.certificate_der), None);
        assert_eq!(tls_server_end_point(b"garbage"), None);
    }
}
