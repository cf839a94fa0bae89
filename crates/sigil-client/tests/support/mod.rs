//! Helpers shared by the client's integration tests: a relay whose
//! connections can be cut, and waiting for messages and for a stream's end.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sigil_client::{Backoff, Client, Stanza};

/// A TCP relay on loopback whose connections can be cut, as a network
/// that drops: neither end closes its stream.
pub(crate) struct Relay {
    pub(crate) address: std::net::SocketAddr,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Relay {
    pub(crate) async fn start(to: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (cut, _) = tokio::sync::watch::channel(0);
        let watch = cut.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut cut = watch.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { address, cut }
    }

    /// Drops every connection through it.
    pub(crate) fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

/// The body of the next message the client gets (within 10 s).
pub(crate) async fn next_body(client: &mut Client) -> String {
    let next = async {
        loop {
            if let Stanza::Message(message) = client.recv_stanza().await.unwrap() {
                return message.body.unwrap_or_default();
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), next)
        .await
        .expect("a message within 10 s")
}

/// Waits until the client sees its connection gone.
pub(crate) async fn until_closed(client: &mut Client) {
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if client.recv().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the connection stayed up");
}

pub(crate) const QUICK: Backoff = Backoff {
    initial: Duration::from_millis(100),
    max: Duration::from_secs(1),
    attempts: 20,
};
