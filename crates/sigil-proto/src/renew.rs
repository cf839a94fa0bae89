//! Renewing a device's certificate before it expires (Sigil's own,
//! `urn:sigil:renew:0`; the XEPs define none): a session that logged in
//! with its device's registered certificate (XEP-0257) registers that
//! device's next certificate, which logs in beside the current one until
//! its first login makes it the device's.
//!
//! ```xml
//! <iq type='set' id='r1'>
//!   <renew xmlns='urn:sigil:renew:0'><x509cert>MIIB…</x509cert></renew>
//! </iq>
//! ```
//!
//! The request carries either the new certificate (`<x509cert/>`, made
//! by the device) or a certificate signing request (`<csr/>`, PKCS#10)
//! for a server that signs certificates; the result then carries the
//! signed certificate (`<renewed><x509cert/></renewed>`). Both are base64
//! DER; whitespace in them is ignored when reading.

use sigil_xml::Element;

use crate::error::ParseError;
use crate::payload::expect;

/// The namespace.
pub const NS: &str = "urn:sigil:renew:0";

/// The longest base64 text accepted for a certificate or request.
pub const MAX_BASE64_CHARS: usize = 16 * 1024;

/// What the device's next certificate is made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Renew {
    /// The certificate itself, DER.
    Certificate(Vec<u8>),
    /// A certificate signing request for the server's CA, DER.
    SigningRequest(Vec<u8>),
}

impl Renew {
    /// Reads a `<renew/>`: exactly one of `<x509cert/>` and `<csr/>`.
    pub fn from_element(element: &Element) -> Result<Self, ParseError> {
        expect(element, "renew", NS)?;
        match (element.child("x509cert", NS), element.child("csr", NS)) {
            (Some(certificate), None) => Ok(Self::Certificate(der(certificate)?)),
            (None, Some(request)) => Ok(Self::SigningRequest(der(request)?)),
            (None, None) => Err(ParseError::MissingChild("x509cert")),
            (Some(_), Some(_)) => Err(ParseError::Invalid("both x509cert and csr")),
        }
    }

    /// The `<renew/>` element.
    pub fn to_element(&self) -> Element {
        let (name, der) = match self {
            Self::Certificate(der) => ("x509cert", der),
            Self::SigningRequest(der) => ("csr", der),
        };
        Element::new("renew", NS)
            .with_child(Element::new(name, NS).with_text(sigil_sasl::xmpp::encode(der)))
    }
}

/// `<renewed/>`: the certificate the server signed for a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Renewed {
    /// The signed certificate, DER.
    pub certificate: Vec<u8>,
}

impl Renewed {
    /// Reads a `<renewed/>`.
    pub fn from_element(element: &Element) -> Result<Self, ParseError> {
        expect(element, "renewed", NS)?;
        let certificate = element
            .child("x509cert", NS)
            .ok_or(ParseError::MissingChild("x509cert"))?;
        Ok(Self {
            certificate: der(certificate)?,
        })
    }

    /// The `<renewed/>` element.
    pub fn to_element(&self) -> Element {
        Element::new("renewed", NS).with_child(
            Element::new("x509cert", NS).with_text(sigil_sasl::xmpp::encode(&self.certificate)),
        )
    }
}

/// The DER in `element`'s base64 text: not empty, not too long.
fn der(element: &Element) -> Result<Vec<u8>, ParseError> {
    let text = element.text();
    if text.len() > MAX_BASE64_CHARS {
        return Err(ParseError::Invalid(
            "the certificate or request is too large",
        ));
    }
    match sigil_sasl::xmpp::decode(&text) {
        Ok(Some(der)) if !der.is_empty() => Ok(der),
        _ => Err(ParseError::Invalid("not base64 DER")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_round_trip() {
        for renew in [
            Renew::Certificate(vec![0x30, 0x03, 1, 2, 3]),
            Renew::SigningRequest(vec![0x30, 0x01, 0]),
        ] {
            assert_eq!(Renew::from_element(&renew.to_element()), Ok(renew));
        }
        let renewed = Renewed {
            certificate: vec![0x30, 0x00],
        };
        assert_eq!(Renewed::from_element(&renewed.to_element()), Ok(renewed));
    }

    #[test]
    fn malformed_requests_are_refused() {
        let with = |inner: &str| {
            let xml = format!("<renew xmlns='{NS}'>{inner}</renew>");
            Renew::from_element(&Element::parse(&xml).unwrap())
        };
        assert_eq!(with(""), Err(ParseError::MissingChild("x509cert")));
        assert!(with("<x509cert>MA==</x509cert><csr>MA==</csr>").is_err());
        assert!(with("<x509cert>!!</x509cert>").is_err());
        assert!(with("<x509cert></x509cert>").is_err());
        let long = "A".repeat(MAX_BASE64_CHARS + 4);
        assert!(with(&format!("<csr>{long}</csr>")).is_err());
        assert_eq!(
            with("<x509cert>\n  MAA=\n</x509cert>"),
            Ok(Renew::Certificate(vec![0x30, 0x00]))
        );
    }
}
