//! Certificates made by `generate` read back exactly; hostile input ends in
//! a clear error or a clearly reported state.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use rcgen::{CertificateParams, CustomExtension, KeyPair};
use sigil_x509::generate::{self, Ca, GenerateError, KeyType, Options};
use sigil_x509::{
    CertificateInfo, ClientAuth, IdentityError, Jid, KeyKind, MAX_SUBJECT_ALT_NAMES,
    MAX_XMPP_ADDRS, ReadError, Validity,
};
use time::{Duration, OffsetDateTime};

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn jid(s: &str) -> Jid {
    Jid::new(s).unwrap()
}

fn read(der: &[u8]) -> CertificateInfo {
    CertificateInfo::from_der(der).unwrap()
}

#[test]
fn two_jids_read_back_in_order() {
    let jids = [jid("user01@localhost"), jid("hamlet@shakespeare.lit")];
    let issued = generate::client_certificate(&jids, &Options::new(now()), None).unwrap();
    let info = read(&issued.certificate_der);
    assert_eq!(info.identities, jids);
    assert!(info.invalid_identities.is_empty());
    assert_eq!(info.client_auth, ClientAuth::Allowed);
    assert_eq!(info.key, KeyKind::EcdsaP256);
    assert!(!info.is_ca);
    assert!(info.self_issued);
    assert_eq!(info.common_names, ["user01@localhost"]);
    assert_eq!(info.validity_at(now()), Validity::Valid);
    let days = (info.not_after - info.not_before).whole_days();
    assert_eq!(days, 365, "365 days plus the one-hour backdate rounds down");
    // PEM reads the same.
    assert_eq!(
        CertificateInfo::parse(issued.certificate_pem().as_bytes()).unwrap(),
        info
    );
    assert_eq!(info.sha256_fingerprint().len(), 32 * 3 - 1);
}

#[test]
fn a_full_jid_keeps_its_resource() {
    let issued = generate::client_certificate(
        &[jid("juliet@capulet.lit/balcony")],
        &Options::new(now()),
        None,
    )
    .unwrap();
    let info = read(&issued.certificate_der);
    assert_eq!(info.identities.len(), 1);
    assert!(info.identities[0].is_full());
    assert_eq!(info.identities[0].resource().unwrap().as_str(), "balcony");
}

#[test]
fn a_certificate_without_xmpp_addr_has_no_identity() {
    let issued = generate::server_certificate("localhost", &Options::new(now()), None).unwrap();
    let info = read(&issued.certificate_der);
    assert!(info.identities.is_empty());
    assert!(info.invalid_identities.is_empty());
    assert_eq!(info.dns_names, ["localhost"]);
    assert_eq!(info.client_auth, ClientAuth::NotAllowed);
    assert_eq!(
        generate::client_certificate(&[], &Options::new(now()), None).unwrap_err(),
        GenerateError::NoIdentity
    );
}

#[test]
fn every_key_type() {
    for (key, expected) in [
        (KeyType::P256, KeyKind::EcdsaP256),
        (KeyType::Rsa2048, KeyKind::Rsa(2048)),
        (KeyType::Rsa4096, KeyKind::Rsa(4096)),
        (KeyType::Ed25519, KeyKind::Ed25519),
    ] {
        let options = Options {
            key,
            ..Options::new(now())
        };
        let issued = generate::client_certificate(&[jid("a@b.c")], &options, None).unwrap();
        assert_eq!(read(&issued.certificate_der).key, expected, "{key}");
        assert!(issued.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    }
    assert_eq!("rsa4096".parse(), Ok(KeyType::Rsa4096));
    assert!("dsa".parse::<KeyType>().unwrap_err().contains("p256"));
}

#[test]
fn ca_signed_certificates_name_their_issuer() {
    let ca = Ca::new("Sigil test CA", &Options::new(now())).unwrap();
    let ca_info = read(&ca.issued().certificate_der);
    assert!(ca_info.is_ca);
    let issued = generate::client_certificate(
        &[jid("romeo@montague.lit")],
        &Options::new(now()),
        Some(&ca),
    )
    .unwrap();
    let info = read(&issued.certificate_der);
    assert_eq!(info.issuer, ca_info.subject);
    assert!(!info.self_issued);

    // Loaded back from PEM, the CA still signs.
    let loaded = Ca::from_pem(&ca.issued().certificate_pem(), &ca.issued().key_pem()).unwrap();
    let issued =
        generate::server_certificate("example.org", &Options::new(now()), Some(&loaded)).unwrap();
    assert_eq!(read(&issued.certificate_der).issuer, ca_info.subject);

    // A key that is not the CA's, or a certificate that is not a CA.
    let other = KeyPair::generate().unwrap();
    assert!(matches!(
        Ca::from_pem(&ca.issued().certificate_pem(), &other.serialize_pem()),
        Err(GenerateError::Ca(_))
    ));
    assert!(matches!(
        Ca::from_pem(&issued.certificate_pem(), &issued.key_pem()),
        Err(GenerateError::Ca(_))
    ));
    assert!(matches!(
        Ca::from_pem("garbage", "garbage"),
        Err(GenerateError::Ca(_))
    ));
}

#[test]
fn expired_and_not_yet_valid_are_reported() {
    let long_ago = Options {
        days: 1,
        ..Options::new(now() - Duration::days(30))
    };
    let info = read(
        &generate::client_certificate(&[jid("a@b.c")], &long_ago, None)
            .unwrap()
            .certificate_der,
    );
    assert_eq!(info.validity_at(now()), Validity::Expired);
    let future = Options::new(now() + Duration::days(30));
    let info = read(
        &generate::client_certificate(&[jid("a@b.c")], &future, None)
            .unwrap()
            .certificate_der,
    );
    assert_eq!(info.validity_at(now()), Validity::NotYetValid);
    for days in [0, generate::MAX_DAYS + 1] {
        let options = Options {
            days,
            ..Options::new(now())
        };
        assert_eq!(
            generate::client_certificate(&[jid("a@b.c")], &options, None).unwrap_err(),
            GenerateError::Days(days)
        );
    }
}

#[test]
fn bad_server_domains() {
    for domain in ["", "a..b", "-a.b", "a b", "a_b.c", &"x".repeat(64)] {
        assert!(
            matches!(
                generate::server_certificate(domain, &Options::new(now()), None),
                Err(GenerateError::Domain(_))
            ),
            "{domain:?}"
        );
    }
}

// --- hostile input -------------------------------------------------------------

/// DER of one TLV.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

const XMPP_ADDR_OID: &[u8] = &[0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x05];

/// An otherName id-on-xmppAddr whose value is `string_tag` around `value`.
fn xmpp_addr(string_tag: u8, value: &[u8]) -> Vec<u8> {
    let explicit = tlv(0xa0, &tlv(string_tag, value));
    tlv(0xa0, &[XMPP_ADDR_OID, &explicit].concat())
}

/// A self-signed certificate whose subjectAltName holds `names` (DER
/// GeneralNames, already encoded).
fn with_san(names: &[Vec<u8>]) -> Vec<u8> {
    let san = tlv(0x30, &names.concat());
    let mut params = CertificateParams::default();
    params
        .custom_extensions
        .push(CustomExtension::from_oid_content(&[2, 5, 29, 17], san));
    let key = KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

#[test]
fn xmpp_addr_of_other_string_types_or_with_nul_is_reported() {
    let der = with_san(&[
        xmpp_addr(0x0c, b"good@example.org"),
        xmpp_addr(0x16, b"ia5@example.org"),
        xmpp_addr(0x1e, b"\0b\0m\0p"),
        xmpp_addr(0x0c, b"nul@example.org\0admin@example.org"),
        xmpp_addr(0x0c, b"\xff\xfe"),
        xmpp_addr(0x0c, b"@@@"),
        xmpp_addr(0x0c, b"x@"),
        tlv(0xa0, &[XMPP_ADDR_OID, &[0xa0, 0x01, 0x00][..]].concat()),
        tlv(0x82, b"dns.example.org"),
    ]);
    let info = read(&der);
    assert_eq!(info.identities, [jid("good@example.org")]);
    let reasons: Vec<_> = info
        .invalid_identities
        .iter()
        .map(|i| i.reason.clone())
        .collect();
    assert_eq!(reasons[0], IdentityError::NotUtf8String("IA5String"));
    assert_eq!(reasons[1], IdentityError::NotUtf8String("BMPString"));
    assert_eq!(reasons[2], IdentityError::EmbeddedNul);
    assert_eq!(reasons[3], IdentityError::InvalidUtf8);
    assert!(matches!(reasons[4], IdentityError::InvalidJid(_)));
    assert!(matches!(reasons[5], IdentityError::InvalidJid(_)));
    assert_eq!(reasons[6], IdentityError::Malformed);
    assert_eq!(
        info.invalid_identities[2].value,
        "nul@example.org\\0admin@example.org"
    );
    assert_eq!(info.dns_names, ["dns.example.org"]);
    for invalid in &info.invalid_identities {
        assert!(!invalid.reason.to_string().is_empty());
    }
}

#[test]
fn hundreds_of_names_are_read_and_thousands_refused() {
    let many: Vec<Vec<u8>> = (0..300)
        .map(|i| tlv(0x82, format!("h{i}.example.org").as_bytes()))
        .collect();
    assert_eq!(read(&with_san(&many)).dns_names.len(), 300);

    let too_many: Vec<Vec<u8>> = (0..=MAX_SUBJECT_ALT_NAMES)
        .map(|i| tlv(0x82, format!("h{i}.example.org").as_bytes()))
        .collect();
    assert!(matches!(
        CertificateInfo::from_der(&with_san(&too_many)),
        Err(ReadError::TooManyNames { count, .. }) if count == MAX_SUBJECT_ALT_NAMES + 1
    ));

    let addrs: Vec<Vec<u8>> = (0..=MAX_XMPP_ADDRS)
        .map(|i| xmpp_addr(0x0c, format!("u{i}@example.org").as_bytes()))
        .collect();
    let error = CertificateInfo::from_der(&with_san(&addrs)).unwrap_err();
    assert!(error.to_string().contains("id-on-xmppAddr"), "{error}");
    let within: Vec<Vec<u8>> = addrs[..MAX_XMPP_ADDRS].to_vec();
    assert_eq!(read(&with_san(&within)).identities.len(), MAX_XMPP_ADDRS);
}

#[test]
fn garbage_and_truncated_input_is_an_error_never_a_panic() {
    let issued = generate::client_certificate(&[jid("a@b.c")], &Options::new(now()), None).unwrap();
    let der = &issued.certificate_der;
    for cut in 0..der.len() {
        assert!(CertificateInfo::parse(&der[..cut]).is_err(), "cut at {cut}");
    }
    let mut trailing = der.clone();
    trailing.push(0);
    assert!(matches!(
        CertificateInfo::from_der(&trailing),
        Err(ReadError::Der(_))
    ));
    for garbage in [&b""[..], b"hello", b"\x30\x80", &[0xff; 64]] {
        assert!(
            matches!(CertificateInfo::parse(garbage), Err(ReadError::Der(_))),
            "{garbage:?}"
        );
    }

    let pem = issued.certificate_pem();
    assert!(matches!(
        CertificateInfo::parse(&pem.as_bytes()[..pem.len() / 2]),
        Err(ReadError::Pem(_))
    ));
    assert!(matches!(
        CertificateInfo::parse(issued.key_pem().as_bytes()),
        Err(ReadError::NoCertificate)
    ));
    let corrupted = pem.replacen("MII", "M!I", 1);
    assert!(CertificateInfo::parse(corrupted.as_bytes()).is_err());
    // Leading whitespace and a key before the certificate are fine.
    let bundle = format!("\n  {}{}", issued.key_pem(), pem);
    assert_eq!(
        CertificateInfo::parse(bundle.as_bytes())
            .unwrap()
            .identities,
        [jid("a@b.c")]
    );
    let huge = vec![b'A'; sigil_x509::MAX_INPUT_LEN + 1];
    assert!(matches!(
        CertificateInfo::parse(&huge),
        Err(ReadError::TooLarge(_))
    ));
}

#[test]
fn cas_of_every_key_type_load_back_and_sign() {
    for key in [KeyType::P256, KeyType::Rsa2048, KeyType::Ed25519] {
        let options = Options {
            key,
            ..Options::new(now())
        };
        let ca = Ca::new("CA", &options).unwrap();
        let loaded = Ca::from_pem(&ca.issued().certificate_pem(), &ca.issued().key_pem()).unwrap();
        let issued =
            generate::client_certificate(&[jid("a@b.c")], &options, Some(&loaded)).unwrap();
        assert_eq!(read(&issued.certificate_der).issuer, "CN=CA", "{key}");
    }
}

/// The subjectAltName comes after keyUsage, never first: libstrophe 0.12
/// finds no xmppAddr when it is the first extension. Long names (a
/// multi-byte DER length) read back too.
#[test]
fn the_subject_alt_name_is_not_the_first_extension() {
    let long = format!("{}@localhost", "a".repeat(300));
    let jids = [jid("user01@localhost"), jid(&long)];
    let ca = Ca::new("Test CA", &Options::new(now())).unwrap();
    for signer in [None, Some(&ca)] {
        let issued = generate::client_certificate(&jids, &Options::new(now()), signer).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&issued.certificate_der).unwrap();
        let oids: Vec<String> = parsed
            .extensions()
            .iter()
            .map(|e| e.oid.to_id_string())
            .collect();
        let san = oids.iter().position(|o| o == "2.5.29.17").unwrap();
        let key_usage = oids.iter().position(|o| o == "2.5.29.15").unwrap();
        assert!(san > key_usage, "{oids:?}");
        assert_eq!(read(&issued.certificate_der).identities, jids);
    }
}

#[test]
fn a_signing_request_is_signed_as_the_ca_decides() {
    let ca = Ca::new("Sigil issuing CA", &Options::new(now())).unwrap();
    let ca_info = read(&ca.issued().certificate_der);
    for key in [KeyType::P256, KeyType::Rsa2048, KeyType::Ed25519] {
        let options = Options {
            key,
            ..Options::new(now())
        };
        let own =
            generate::client_certificate(&[jid("mallory@example.com")], &options, None).unwrap();
        let request = own.signing_request(&jid("mallory@example.com")).unwrap();
        // The CA names the account it decides, not what the request says.
        let options = Options {
            days: 30,
            ..Options::new(now())
        };
        let der = ca
            .sign_client_request(&request, &[jid("alice@example.com")], &options)
            .unwrap();
        let info = read(&der);
        assert_eq!(info.identities, vec![jid("alice@example.com")], "{key}");
        assert_eq!(info.client_auth, ClientAuth::Allowed, "{key}");
        assert!(!info.is_ca);
        assert_eq!(info.issuer, ca_info.subject);
        assert_eq!((info.not_after - now()).whole_days(), 29, "{key}");
        // The certificate is for the request's key, and for no other.
        let other =
            generate::client_certificate(&[jid("alice@example.com")], &options, None).unwrap();
        assert!(matches!(
            other.with_certificate(der.clone()),
            Err(GenerateError::Sign(_))
        ));
        let key_pem = own.key_pem();
        let issued = own.with_certificate(der.clone()).unwrap();
        assert_eq!(issued.certificate_der, der);
        assert_eq!(issued.key_pem(), key_pem);
    }
}

#[test]
fn a_request_that_asks_for_more_gets_a_client_certificate() {
    let ca = Ca::new("Sigil issuing CA", &Options::new(now())).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["evil.example".to_owned()]).unwrap();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let request = params.serialize_request(&key).unwrap();
    let der = ca
        .sign_client_request(
            request.der(),
            &[jid("alice@example.com")],
            &Options::new(now()),
        )
        .unwrap();
    let info = read(&der);
    assert!(info.dns_names.is_empty());
    assert_eq!(info.client_auth, ClientAuth::Allowed);
    assert!(!info.is_ca);
    assert_eq!(info.identities, vec![jid("alice@example.com")]);
}

#[test]
fn forged_weak_and_garbage_requests_are_refused() {
    let ca = Ca::new("Sigil issuing CA", &Options::new(now())).unwrap();
    let sign =
        |der: &[u8]| ca.sign_client_request(der, &[jid("alice@example.com")], &Options::new(now()));
    let own = generate::client_certificate(&[jid("alice@example.com")], &Options::new(now()), None)
        .unwrap();
    let request_der = own.signing_request(&jid("alice@example.com")).unwrap();
    // A flipped bit in the signature (the last bytes): no proof of the key.
    let mut forged = request_der.clone();
    let last = forged.len() - 2;
    forged[last] ^= 1;
    assert!(matches!(sign(&forged), Err(GenerateError::Request(_))));
    // Trailing bytes, truncation, garbage, nothing.
    let mut trailing = request_der.clone();
    trailing.push(0);
    assert!(matches!(sign(&trailing), Err(GenerateError::Request(_))));
    for bad in [
        &request_der[..request_der.len() / 2],
        b"garbage".as_slice(),
        b"",
    ] {
        assert!(matches!(sign(bad), Err(GenerateError::Request(_))));
    }
    assert!(sign(&request_der).is_ok());
}
