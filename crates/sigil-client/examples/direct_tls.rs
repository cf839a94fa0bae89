//! Log in over direct TLS (XEP-0368) with a client certificate (SASL
//! EXTERNAL, no password) and list the account's certificates (XEP-0257).
//!
//! ```text
//! cargo run -p sigil-client --example direct_tls -- \
//!     alice@localhost 127.0.0.1:5223 sigil-data/server.crt alice.crt alice.key
//! ```

#![allow(clippy::print_stdout)]

use sigil_client::{Client, Transport, saslcert};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let [jid, address, ca, cert, key] = args::<5>("JID ADDRESS CA_PEM CERT_PEM KEY_PEM")?;
    let mut client = Client::builder(jid)
        .address(address.parse()?)
        .transport(Transport::DirectTls)
        .trust_pem(&std::fs::read(ca)?)
        .client_certificate_pem(&std::fs::read(cert)?, &std::fs::read(key)?)
        .connect()
        .await?;
    println!("{} logged in with {}", client.jid(), client.mechanism());
    for item in saslcert::list(&mut client).await? {
        let state = if item.disabled { "disabled" } else { "active" };
        println!("{}: {state}, online as {:?}", item.name, item.resources);
    }
    client.close().await;
    Ok(())
}

fn args<const N: usize>(usage: &str) -> Result<[String; N], String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.try_into().map_err(|_| format!("usage: {usage}"))
}
