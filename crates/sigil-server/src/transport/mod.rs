//! The transports: each accepts connections (or HTTP requests), makes a
//! [`Wire`](crate::wire::Wire) of them and runs the one negotiation and
//! session code over it ([`crate::connection`]).
//!
//! - [`tcp`]: STARTTLS and direct TLS (XEP-0368);
//! - [`http`]: the HTTPS listener, routing to `websocket` (RFC 7395),
//!   `bosh` (XEP-0124/0206), [`discovery`] (XEP-0156 host-meta) and the
//!   web chat's pages.

pub(crate) mod bosh;
pub(crate) mod discovery;
pub(crate) mod http;
pub(crate) mod tcp;
mod websocket;
