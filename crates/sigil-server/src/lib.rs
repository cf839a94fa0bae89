//! Sigil's XMPP server.
//!
//! [`Server::start`] opens the store, loads the server certificate and
//! listens on the configured listeners: STARTTLS, direct TLS, and HTTPS
//! (WebSocket, BOSH, the web chat, invitations' pages), and external
//! components (XEP-0114, `component`). Each client connection runs
//! [`sigil_proto::server::ServerStream`] under a tokio task over a
//! `Wire`; once a resource is bound, the session registers in the
//! [`router::Router`], and its stanzas go through [`session`] (messages
//! with offline storage and [`archive`]s, presence and subscriptions)
//! and the feature table (`features`: roster, blocking, XEP-0257, disco,
//! ping, version, registration, carbons, archive queries).
//!
//! TLS is rustls on the aws-lc-rs provider. Client certificates are asked
//! for per listener; [`tls::danger::ProofOfPossessionOnly`] checks only
//! that the client holds the certificate's key, and whether a certificate
//! may log in is decided at SASL time.

pub mod accounts;
pub mod adhoc;
mod admin;
pub mod archive;
pub mod auth;
pub mod blocking;
mod blocklists;
pub mod cluster;
mod component;
pub mod config;
mod connection;
pub mod context;
pub mod control;
pub mod csi;
mod devices_page;
mod enroll;
pub mod expiry;
pub mod fast;
pub mod fastkey;
pub(crate) mod features;
mod files;
mod formkey;
pub mod invites;
mod issuing;
pub mod limits;
mod login;
pub mod metrics;
pub mod profiles;
pub mod resumption;
pub mod roster;
pub mod router;
pub mod saslcert;
mod server;
pub mod session;
pub mod state;
pub mod tls;
mod transport;
pub mod trust;
mod web;
mod wire;

pub use config::Config;
pub use files::{
    check_not_root_on_others, check_permissions, create_private_dir, effective_uid, write_new,
};
pub use server::{Server, StartError, certificate_paths, open_store, sasl_config, web_assets};
