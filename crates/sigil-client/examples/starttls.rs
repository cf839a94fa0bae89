//! Log in over TCP with STARTTLS with a password and send one message.
//!
//! ```text
//! SIGIL_PASSWORD=secret cargo run -p sigil-client --example starttls -- \
//!     alice@localhost 127.0.0.1:5222 sigil-data/server.crt bob@localhost "hello"
//! ```

#![allow(clippy::print_stdout)]

use sigil_client::{Client, Message, Transport};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let [jid, address, ca, to, text] = args::<5>("JID ADDRESS CA_PEM TO TEXT")?;
    let mut client = Client::builder(jid)
        .address(address.parse()?)
        .transport(Transport::StartTls)
        .trust_pem(&std::fs::read(ca)?)
        .password(std::env::var("SIGIL_PASSWORD")?)
        .connect()
        .await?;
    println!("{} logged in with {}", client.jid(), client.mechanism());
    client
        .send_message(&Message::chat(to.parse()?, text))
        .await?;
    client.close().await;
    Ok(())
}

fn args<const N: usize>(usage: &str) -> Result<[String; N], String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.try_into().map_err(|_| format!("usage: {usage}"))
}
