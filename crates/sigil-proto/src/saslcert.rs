//! XEP-0257: Client Certificate Management for SASL EXTERNAL
//! (`urn:xmpp:saslcert:1`): the payloads by which users list, add,
//! disable and revoke the certificates their devices log in with.
//!
//! - [`Items`]: `<items/>`, empty in the `get` request, and in the answer
//!   one [`Item`] per certificate, with the resources logged in with it;
//! - [`Append`]: registers a certificate under a device name;
//! - [`Disable`] and [`Revoke`]: stop new logins with the named
//!   certificate; revoking also ends the sessions that logged in with it.
//!
//! Certificates travel as base64 DER in `<x509cert/>`; whitespace in it
//! (lines wrapped) is ignored when reading.

use sigil_xml::Element;

use crate::error::ParseError;
use crate::payload::{self, child_text, expect};

/// The XEP-0257 namespace.
pub const NS: &str = "urn:xmpp:saslcert:1";

/// `<items/>`: the account's certificates. Empty, it is the request for
/// them.
///
/// ```xml
/// <items xmlns='urn:xmpp:saslcert:1'>
///   <item>
///     <name>phone</name>
///     <x509cert>MIIB…</x509cert>
///     <users><resource>balcony</resource></users>
///   </item>
/// </items>
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Items {
    /// The certificates, in the server's order.
    pub items: Vec<Item>,
}

impl Items {
    /// Reads an `<items/>`; children other than `<item/>` are ignored.
    pub fn from_element(element: &Element) -> Result<Self, ParseError> {
        expect(element, "items", NS)?;
        let items = element
            .children()
            .filter(|c| c.is("item", NS))
            .map(Item::from_element)
            .collect::<Result<_, _>>()?;
        Ok(Self { items })
    }

    /// The `<items/>` element.
    pub fn to_element(&self) -> Element {
        let mut element = Element::new("items", NS);
        for item in &self.items {
            element.push_child(item.to_element());
        }
        element
    }
}

/// One `<item/>` of [`Items`]: a certificate registered to the account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Item {
    /// The device name.
    pub name: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// No new logins with it (`<disabled/>`).
    pub disabled: bool,
    /// Sessions that logged in with it may not manage certificates
    /// (`<no-cert-management/>`).
    pub no_cert_management: bool,
    /// Resources logged in with it now (`<users><resource/>…</users>`).
    pub resources: Vec<String>,
}

impl Item {
    /// Reads an `<item/>`: `<name/>` and `<x509cert/>` are required,
    /// `<users/>` is optional (no resources).
    pub fn from_element(element: &Element) -> Result<Self, ParseError> {
        expect(element, "item", NS)?;
        Ok(Self {
            name: child_text(element, "name", NS)?,
            der: certificate(element)?,
            disabled: element.has_child("disabled", NS),
            no_cert_management: element.has_child("no-cert-management", NS),
            resources: element
                .child("users", NS)
                .map(|users| {
                    users
                        .children()
                        .filter(|r| r.is("resource", NS))
                        .map(Element::text)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// The `<item/>` element: name, certificate, the flags that are set,
    /// and `<users/>` (empty when no resource is logged in with it).
    pub fn to_element(&self) -> Element {
        let mut item = named("item", &self.name).with_child(x509cert(&self.der));
        if self.disabled {
            item.push_child(Element::new("disabled", NS));
        }
        if self.no_cert_management {
            item.push_child(Element::new("no-cert-management", NS));
        }
        let mut users = Element::new("users", NS);
        for resource in &self.resources {
            users.push_child(Element::new("resource", NS).with_text(resource.clone()));
        }
        item.with_child(users)
    }
}

/// `<append/>`: registers a certificate under a device name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Append {
    /// The device name, unique among the account's certificates.
    pub name: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Sessions that log in with it can list but not change the account's
    /// certificates.
    pub no_cert_management: bool,
}

impl Append {
    /// Reads an `<append/>`: `<name/>` and `<x509cert/>` are required.
    pub fn from_element(element: &Element) -> Result<Self, ParseError> {
        expect(element, "append", NS)?;
        Ok(Self {
            name: child_text(element, "name", NS)?,
            der: certificate(element)?,
            no_cert_management: element.has_child("no-cert-management", NS),
        })
    }

    /// The `<append/>` element.
    pub fn to_element(&self) -> Element {
        let mut append = named("append", &self.name).with_child(x509cert(&self.der));
        if self.no_cert_management {
            append.push_child(Element::new("no-cert-management", NS));
        }
        append
    }
}

/// `<disable/>`: no new logins with the named certificate; live sessions
/// stay.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Disable {
    /// The device name.
    pub name: String,
}

impl Disable {
    /// Reads a `<disable/>`: `<name/>` is required.
    pub fn from_element(element: &Element) -> Result<Self, ParseError> {
        expect(element, "disable", NS)?;
        let name = child_text(element, "name", NS)?;
        Ok(Self { name })
    }

    /// The `<disable/>` element.
    pub fn to_element(&self) -> Element {
        named("disable", &self.name)
    }
}

/// `<revoke/>`: no new logins with the named certificate, and the sessions
/// that logged in with it end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Revoke {
    /// The device name.
    pub name: String,
}

impl Revoke {
    /// Reads a `<revoke/>`: `<name/>` is required.
    pub fn from_element(element: &Element) -> Result<Self, ParseError> {
        expect(element, "revoke", NS)?;
        let name = child_text(element, "name", NS)?;
        Ok(Self { name })
    }

    /// The `<revoke/>` element.
    pub fn to_element(&self) -> Element {
        named("revoke", &self.name)
    }
}

payload::conversions!(Items, Item, Append, Disable, Revoke);

/// `<element><name>name</name></element>`.
fn named(element: &str, name: &str) -> Element {
    Element::new(element, NS).with_child(Element::new("name", NS).with_text(name))
}

fn x509cert(der: &[u8]) -> Element {
    Element::new("x509cert", NS).with_text(sigil_sasl::xmpp::encode(der))
}

/// The DER of the required `<x509cert/>`.
fn certificate(element: &Element) -> Result<Vec<u8>, ParseError> {
    let text = child_text(element, "x509cert", NS)?;
    // The base64 of SASL data: whitespace ignored, canonical padding.
    match sigil_sasl::xmpp::decode(&text) {
        Ok(der) => Ok(der.unwrap_or_default()),
        Err(_) => Err(ParseError::Invalid("x509cert is not base64")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The certificate of XEP-0257's Example 1, as wrapped there.
    const XEP_CERTIFICATE: &str = "
      MIICCTCCAXKgAwIBAgIJALhU0Id6xxwQMA0GCSqGSIb3DQEBBQUAMA4xDDAKBgNV
      BAMTA2ZvbzAeFw0wNzEyMjgyMDA1MTRaFw0wODEyMjcyMDA1MTRaMA4xDDAKBgNV
      BAMTA2ZvbzCBnzANBgkqhkiG9w0BAQEFAAOBjQAwgYkCgYEA0DPcfeJzKWLGE22p
      RMINLKr+CxqozF14DqkXkLUwGzTqYRi49yK6aebZ9ssFspTTjqa2uNpw1U32748t
      qU6bpACWHbcC+eZ/hm5KymXBhL3Vjfb/dW0xrtxjI9JRFgrgWAyxndlNZUpN2s3D
      hKDfVgpPSx/Zp8d/ubbARxqZZZkCAwEAAaNvMG0wHQYDVR0OBBYEFJWwFqmSRGcx
      YXmQfdF+XBWkeML4MD4GA1UdIwQ3MDWAFJWwFqmSRGcxYXmQfdF+XBWkeML4oRKk
      EDAOMQwwCgYDVQQDEwNmb2+CCQC4VNCHesccEDAMBgNVHRMEBTADAQH/MA0GCSqG
      SIb3DQEBBQUAA4GBAIhlUeGZ0d0msNVxYWAXg2lRsJt9INHJQTCJMmoUeTtaRjyp
      ffJtuopguNNBDn+MjrEp2/+zLNMahDYLXaTVmBf6zvY0hzB9Ih0kNTh23Fb5j+yK
      QChPXQUo0EGCaODWhfhKRNdseUozfNWOz9iTgMGw8eYNLllQRL//iAOfOr/8
    ";

    fn parse(xml: &str) -> Element {
        Element::parse(xml).unwrap()
    }

    #[test]
    fn the_xep_append_requests_parse() {
        let xml = format!(
            "<append xmlns='urn:xmpp:saslcert:1'><name>Mobile Client</name>\
             <x509cert>{XEP_CERTIFICATE}</x509cert></append>"
        );
        let append = Append::from_element(&parse(&xml)).unwrap();
        assert_eq!(append.name, "Mobile Client");
        assert_eq!(append.der.len(), 525);
        assert_eq!(append.der[..2], [0x30, 0x82], "a DER SEQUENCE");
        assert!(!append.no_cert_management);

        // Example 2: the flag before the certificate.
        let xml = format!(
            "<append xmlns='urn:xmpp:saslcert:1'><name>Simple Bot</name>\
             <no-cert-management/><x509cert>{XEP_CERTIFICATE}</x509cert></append>"
        );
        let bot = Append::from_element(&parse(&xml)).unwrap();
        assert!(bot.no_cert_management);
        assert_eq!(bot.der, append.der);
    }

    #[test]
    fn the_xep_items_disable_and_revoke_parse() {
        let items = Items::from_element(&parse(
            "<items xmlns='urn:xmpp:saslcert:1'>
               <item>
                 <name>Mobile Client</name>
                 <x509cert>\n  AQID\n  BA==\n  </x509cert>
                 <users>
                   <resource>Phone</resource>
                 </users>
               </item>
               <item>
                 <name>Laptop</name>
                 <x509cert>BQY=</x509cert>
               </item>
             </items>",
        ))
        .unwrap();
        let [mobile, laptop] = &items.items[..] else {
            panic!("{items:?}")
        };
        assert_eq!(mobile.name, "Mobile Client");
        assert_eq!(mobile.der, [1, 2, 3, 4]);
        assert_eq!(mobile.resources, ["Phone"]);
        assert_eq!(laptop.name, "Laptop");
        assert!(laptop.resources.is_empty());
        assert!(!laptop.disabled && !laptop.no_cert_management);

        let request = parse("<items xmlns='urn:xmpp:saslcert:1'/>");
        assert_eq!(Items::from_element(&request).unwrap(), Items::default());
        assert_eq!(Items::default().to_element(), request);

        let disable =
            parse("<disable xmlns='urn:xmpp:saslcert:1'><name>Mobile Client</name></disable>");
        assert_eq!(
            Disable::from_element(&disable).unwrap().name,
            "Mobile Client"
        );
        let revoke =
            parse("<revoke xmlns='urn:xmpp:saslcert:1'><name>Mobile Client</name></revoke>");
        assert_eq!(Revoke::from_element(&revoke).unwrap().name, "Mobile Client");
        assert!(Revoke::from_element(&disable).is_err());
    }

    #[test]
    fn what_is_written_reads_back() {
        let items = Items {
            items: vec![
                Item {
                    name: "phone".into(),
                    der: vec![0x30, 0x82, 1, 2, 3],
                    disabled: true,
                    no_cert_management: true,
                    resources: vec!["balcony".into(), "orchard".into()],
                },
                Item {
                    name: "laptop <work>".into(),
                    der: vec![9; 100],
                    ..Item::default()
                },
            ],
        };
        let xml = items.to_element().to_xml();
        assert_eq!(Items::from_element(&parse(&xml)).unwrap(), items);

        let append = Append {
            name: "bot".into(),
            der: vec![7; 33],
            no_cert_management: true,
        };
        let element = Element::from(append.clone());
        assert_eq!(Append::try_from(&parse(&element.to_xml())).unwrap(), append);
        let disable = Disable { name: "bot".into() };
        assert_eq!(
            Disable::from_element(&disable.to_element()).unwrap(),
            disable
        );
        let revoke = Revoke { name: "bot".into() };
        assert_eq!(Revoke::from_element(&revoke.to_element()).unwrap(), revoke);
    }

    #[test]
    fn the_xml_is_exactly_what_server_and_client_exchange() {
        let item = Item {
            name: "phone".into(),
            der: vec![1, 2, 3],
            disabled: true,
            no_cert_management: false,
            resources: vec!["balcony".into()],
        };
        assert_eq!(
            item.to_element().to_xml(),
            "<item xmlns=\"urn:xmpp:saslcert:1\"><name>phone</name><x509cert>AQID</x509cert>\
             <disabled/><users><resource>balcony</resource></users></item>"
        );
        let append = Append {
            name: "phone".into(),
            der: vec![1, 2, 3],
            no_cert_management: true,
        };
        assert_eq!(
            append.to_element().to_xml(),
            "<append xmlns=\"urn:xmpp:saslcert:1\"><name>phone</name><x509cert>AQID</x509cert>\
             <no-cert-management/></append>"
        );
    }

    #[test]
    fn malformed_payloads_say_what_is_wrong() {
        let no_name =
            parse("<append xmlns='urn:xmpp:saslcert:1'><x509cert>AQID</x509cert></append>");
        assert_eq!(
            Append::from_element(&no_name),
            Err(ParseError::MissingChild("name"))
        );
        let no_cert = parse("<append xmlns='urn:xmpp:saslcert:1'><name>a</name></append>");
        assert_eq!(
            Append::from_element(&no_cert),
            Err(ParseError::MissingChild("x509cert"))
        );
        let bad = parse(
            "<items xmlns='urn:xmpp:saslcert:1'><item><name>a</name>\
             <x509cert>not base64!</x509cert></item></items>",
        );
        assert_eq!(
            Items::from_element(&bad),
            Err(ParseError::Invalid("x509cert is not base64"))
        );
        let other = parse("<items xmlns='urn:xmpp:blocking'/>");
        assert!(matches!(
            Items::from_element(&other),
            Err(ParseError::Mismatch { name: "items", .. })
        ));
    }
}
