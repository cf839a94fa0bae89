//! Log in over WebSocket (RFC 7395) with only the SASL mechanisms the
//! application allows, then echo every chat message back for a minute.
//!
//! ```text
//! SIGIL_PASSWORD=secret cargo run -p sigil-client --example websocket -- \
//!     bob@localhost wss://localhost:5281/xmpp-websocket 127.0.0.1:5281 sigil-data/server.crt
//! ```

#![allow(clippy::print_stdout)]

use std::time::Duration;

use sigil_client::{Client, Message, MessageType, Presence, Stanza, Transport};
use sigil_sasl::client::{AllowList, ClientConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let [jid, url, address, ca] = args::<4>("JID WSS_URL ADDRESS CA_PEM")?;
    let mut client = Client::builder(jid)
        .transport(Transport::WebSocket)
        .url(url)
        .address(address.parse()?)
        .trust_pem(&std::fs::read(ca)?)
        .password(std::env::var("SIGIL_PASSWORD")?)
        .sasl(
            ClientConfig::new().allow(
                AllowList::new()
                    .name("SCRAM-SHA-256-PLUS")
                    .name("SCRAM-SHA-256"),
            ),
        )
        .connect()
        .await?;
    println!("{} logged in with {}", client.jid(), client.mechanism());
    client.send_presence(&Presence::available()).await?;
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Ok(stanza) = tokio::time::timeout_at(until, client.recv_stanza()).await {
        if let Stanza::Message(message) = stanza?
            && let (Some(from), Some(body), MessageType::Chat) =
                (message.from, message.body, message.kind)
        {
            let echo = Message::chat(from, format!("echo: {body}"));
            client.send_message(&echo).await?;
        }
    }
    client.close().await;
    Ok(())
}

fn args<const N: usize>(usage: &str) -> Result<[String; N], String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.try_into().map_err(|_| format!("usage: {usage}"))
}
