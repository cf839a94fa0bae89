//! Reads arbitrary bytes as a certificate (DER or PEM): the identity reader
//! must end in a value or an error, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_x509::{CertificateInfo, OffsetDateTime};

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = CertificateInfo::parse(data) {
        // Everything a caller reads must be usable.
        let _ = info.validity_at(OffsetDateTime::UNIX_EPOCH);
        let _ = info.sha256_fingerprint();
        for jid in &info.identities {
            let _ = jid.to_bare();
        }
        for invalid in &info.invalid_identities {
            let _ = invalid.reason.to_string();
        }
        let _ = info.key.to_string();
    }
});
