//! An async XMPP client whose SASL layer is Strophe.js's, in Rust:
//! pluggable, prioritised, allow-listed mechanisms from [`sigil_sasl`],
//! EXTERNAL with a TLS client certificate first whenever one is given.
//!
//! One client speaks all four transports: TCP with STARTTLS, direct TLS
//! (XEP-0368), WebSocket (RFC 7395) and BOSH (XEP-0124/0206), each with an
//! optional client certificate. The negotiation is
//! [`sigil_proto::client::ClientStream`]; this crate adds sockets, TLS,
//! HTTP, timeouts, IQ tracking and reconnection.
//!
//! For one account on several devices: XEP-0280 carbons
//! ([`Client::enable_carbons`], read as [`Incoming::Carbon`] by
//! [`Client::recv_incoming`]), the XEP-0313 archive page by page
//! ([`Client::archive`]) and XEP-0352 client state
//! ([`Client::set_active`]).
//!
//! A new device joins by invitation in one call, [`join()`]: a fresh key
//! and certificate, the invitation redeemed and the device registered
//! before login (XEP-0401, XEP-0445, XEP-0077, XEP-0257), then SASL
//! EXTERNAL; never a password.
//!
//! ```no_run
//! # async fn run() -> Result<(), sigil_client::Error> {
//! use sigil_client::{Client, Message, Transport};
//! let mut client = Client::builder("juliet@example.org")
//!     .address("127.0.0.1:5222".parse().unwrap())
//!     .transport(Transport::StartTls)
//!     .password("r0m30")
//!     .connect()
//!     .await?;
//! println!("bound {} with {}", client.jid(), client.mechanism());
//! client.send_presence(&sigil_client::Presence::available()).await?;
//! client.send_message(&Message::chat("romeo@example.net".parse().unwrap(), "hi")).await?;
//! client.close().await;
//! # Ok(()) }
//! ```

mod bosh;
mod builder;
mod client;
pub mod commands;
mod connection;
mod error;
mod join;
mod login;
pub mod renew;
pub mod saslcert;
mod srv;
mod transport;

pub use builder::{ClientBuilder, FastToken, TlsSettings};
pub use client::archive::{
    Archive, ArchivePage, ArchiveQuery, ArchivedMessage, MAX_PAGE_SIZE, Order,
};
pub use client::carbons::{Carbon, CarbonDirection, Incoming};
pub use client::{Backoff, Client};
pub use error::Error;
pub use join::{JoinOptions, Joined, join};
pub use sigil_proto::client::{JoinRequest, LoginPath};
pub use sigil_proto::error::StanzaCondition;
pub use sigil_proto::invite::{Invitation, InvitationError, InvitationKind};
pub use sigil_proto::random_id;
pub use sigil_proto::sasl2::new_uuid;
pub use sigil_proto::stanza::{Iq, IqType, Message, MessageType, Presence, PresenceType, Stanza};
pub use sigil_x509::generate::KeyType;
pub use transport::Transport;
