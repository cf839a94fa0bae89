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

use sigil_proto::saslcert::{Append, Disable, Items, Revoke};
use sigil_xml::Element;

use crate::{Client, Error, Iq};

// The vocabulary is sigil_proto's; these two were defined here first.
pub use sigil_proto::saslcert::{Item, NS};

/// Registers a certificate (DER) under a device name. With
/// `no_cert_management`, sessions that log in with it can list but not
/// change the account's certificates.
pub async fn append(
    client: &mut Client,
    name: &str,
    der: &[u8],
    no_cert_management: bool,
) -> Result<(), Error> {
    let append = Append {
        name: name.to_owned(),
        der: der.to_vec(),
        no_cert_management,
    };
    set(client, append.to_element()).await
}

/// The account's certificates.
pub async fn list(client: &mut Client) -> Result<Vec<Item>, Error> {
    let answer = client
        .iq(Iq::get(None, Items::default().to_element()))
        .await?;
    let Some(items) = answer.payload.filter(|p| p.is("items", NS)) else {
        return Ok(Vec::new());
    };
    match Items::from_element(&items) {
        Ok(items) => Ok(items.items),
        Err(error) => Err(Error::Protocol(format!(
            "a listed certificate is malformed: {error}"
        ))),
    }
}

/// Stops new logins with the named certificate; live sessions stay.
pub async fn disable(client: &mut Client, name: &str) -> Result<(), Error> {
    let name = name.to_owned();
    set(client, Disable { name }.to_element()).await
}

/// Stops new logins with the named certificate and ends the sessions
/// that logged in with it.
pub async fn revoke(client: &mut Client, name: &str) -> Result<(), Error> {
    let name = name.to_owned();
    set(client, Revoke { name }.to_element()).await
}

async fn set(client: &mut Client, request: Element) -> Result<(), Error> {
    client.iq(Iq::set(None, request)).await.map(drop)
}
