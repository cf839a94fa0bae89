//! Log in over BOSH (XEP-0124/0206) and fetch the roster with an IQ that
//! times out after five seconds. A bare domain as the JID logs in with
//! SASL ANONYMOUS where the server allows it.
//!
//! ```text
//! SIGIL_PASSWORD=secret cargo run -p sigil-client --example bosh -- \
//!     alice@localhost https://localhost:5281/http-bind 127.0.0.1:5281 sigil-data/server.crt
//! ```

#![allow(clippy::print_stdout)]

use std::time::Duration;

use sigil_client::{Client, Iq, Transport};
use sigil_xml::Element;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let [jid, url, address, ca] = args::<4>("JID HTTPS_URL ADDRESS CA_PEM")?;
    let mut builder = Client::builder(jid)
        .transport(Transport::Bosh)
        .url(url)
        .address(address.parse()?)
        .trust_pem(&std::fs::read(ca)?);
    if let Ok(password) = std::env::var("SIGIL_PASSWORD") {
        builder = builder.password(password);
    }
    let mut client = builder.connect().await?;
    println!("{} logged in with {}", client.jid(), client.mechanism());
    let roster = client
        .iq_with_timeout(
            Iq::get(None, Element::new("query", "jabber:iq:roster")),
            Duration::from_secs(5),
        )
        .await?;
    for item in roster.payload.iter().flat_map(|query| query.children()) {
        println!("{}", item.attribute("jid").unwrap_or_default());
    }
    client.close().await;
    Ok(())
}

fn args<const N: usize>(usage: &str) -> Result<[String; N], String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.try_into().map_err(|_| format!("usage: {usage}"))
}
