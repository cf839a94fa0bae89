//! XEP-0198: Stream Management (`urn:xmpp:sm:3`): acknowledgements and
//! resumption of a stream.
//!
//! Both sides run it inside their streams: the server in
//! [`crate::server::ServerStream`] (its [`crate::server::StreamManagement`]
//! is what a resumed session carries over), the client in
//! [`crate::client::ClientStream`]. This module names the namespace they
//! share.

/// The XEP-0198 namespace.
pub const NS: &str = "urn:xmpp:sm:3";
