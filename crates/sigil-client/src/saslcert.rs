//! XEP-0257 client certificate management from a logged-in client: add
//! the certificate of a new device, list, disable and revoke them.
//!
//! ```no_run
//! # async fn run(client: &mut sigil_client::Client, der: Vec<u8>) -> Result<(), sigil_client::Error> {
//! use sigil_client::saslcert;
//! saslcert::append(client, "phone", &der, false).await?;
//! for item in saslcert::list(client).await? {
//!     println!("{} ({} live sessions)", item.name, item.resources.len());
//! }
//! saslcert::revoke(client, "phone").await?;
//! # Ok(()) }
//! ```

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sigil_xml::Element;

use crate::{Client, Error, Iq};

/// The XEP-0257 namespace.
pub const NS: &str = "urn:xmpp:saslcert:1";

/// A certificate registered to the account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The device name.
    pub name: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// No new logins with it.
    pub disabled: bool,
    /// Sessions that logged in with it may not manage certificates.
    pub no_cert_management: bool,
    /// Resources logged in with it now.
    pub resources: Vec<String>,
}

/// Registers a certificate (DER) under a device name. With
/// `no_cert_management`, sessions that log in with it can list but not
/// change the account's certificates.
pub async fn append(
    client: &mut Client,
    name: &str,
    der: &[u8],
    no_cert_management: bool,
) -> Result<(), Error> {
    let mut append = Element::new("append", NS)
        .with_child(Element::new("name", NS).with_text(name))
        .with_child(Element::new("x509cert", NS).with_text(STANDARD.encode(der)));
    if no_cert_management {
        append.push_child(Element::new("no-cert-management", NS));
    }
    client.iq(Iq::set(None, append)).await.map(drop)
}

/// The account's certificates.
pub async fn list(client: &mut Client) -> Result<Vec<Item>, Error> {
    let answer = client.iq(Iq::get(None, Element::new("items", NS))).await?;
    let Some(items) = answer.payload.filter(|p| p.is("items", NS)) else {
        return Ok(Vec::new());
    };
    items
        .children()
        .filter(|c| c.is("item", NS))
        .map(|item| {
            let text = |name: &str| item.child(name, NS).map(Element::text);
            let encoded: String = text("x509cert")
                .unwrap_or_default()
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            Ok(Item {
                name: text("name").unwrap_or_default(),
                der: STANDARD
                    .decode(encoded)
                    .map_err(|_| Error::Protocol("a listed certificate is not base64".into()))?,
                disabled: item.has_child("disabled", NS),
                no_cert_management: item.has_child("no-cert-management", NS),
                resources: item
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
        })
        .collect()
}

/// Stops new logins with the named certificate; live sessions stay.
pub async fn disable(client: &mut Client, name: &str) -> Result<(), Error> {
    named(client, "disable", name).await
}

/// Stops new logins with the named certificate and ends the sessions
/// that logged in with it.
pub async fn revoke(client: &mut Client, name: &str) -> Result<(), Error> {
    named(client, "revoke", name).await
}

async fn named(client: &mut Client, verb: &str, name: &str) -> Result<(), Error> {
    let request = Element::new(verb, NS).with_child(Element::new("name", NS).with_text(name));
    client.iq(Iq::set(None, request)).await.map(drop)
}
