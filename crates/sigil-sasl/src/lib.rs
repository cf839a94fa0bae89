//! Sans-IO SASL for XMPP, client and server side.
//!
//! This crate does no I/O and reads no clock: bytes go in, bytes and requests
//! come out. The only thing it asks of the operating system is randomness,
//! for nonces and salts.
//!
//! - [`client`]: the mechanism trait with Strophe.js's shape (name,
//!   client-first flag, priority, `test()`), a registry that applications
//!   extend with their own mechanisms, an allow-list, and selection.
//! - [`server`]: mechanisms as state machines that *ask* for what they need
//!   (stored SCRAM credentials, an EXTERNAL decision) instead of calling
//!   back, a registry with an allow-list, and per-connection availability.
//! - [`scram`]: SCRAM-SHA-1/256/512 and `-PLUS` with `tls-exporter` and
//!   `tls-server-end-point` channel binding; [`StoredCredentials`] derives
//!   what a server stores (salt, iterations, StoredKey, ServerKey), never the
//!   password.
//! - [`ht`]: the HT mechanisms of XEP-0484 FAST tokens.
//! - [`ssdp`]: XEP-0474 SCRAM downgrade protection.
//! - [`xmpp`]: the base64 encoding of SASL data in XMPP elements.
//!
//! Mechanisms: `EXTERNAL`, `SCRAM-SHA-1`, `SCRAM-SHA-256`, `SCRAM-SHA-512`
//! and their `-PLUS` variants, `PLAIN` and `ANONYMOUS` on both sides;
//! `OAUTHBEARER` (RFC 7628) on the client side. `DIGEST-MD5` is not
//! implemented: RFC 6331 moved it to Historic, and Strophe.js removed it too.
//!
//! # A custom mechanism
//!
//! The Strophe.js documentation's joke mechanism `FOO`: PLAIN with the
//! password "encrypted" by ROT13 twice. Register it, give it the highest
//! priority, and allow only it and SCRAM-SHA-256:
//!
//! ```
//! use sigil_sasl::client::{
//!     AllowList, ClientConfig, ClientContext, ClientError, ClientMechanism, ScramSha256,
//! };
//!
//! #[derive(Default)]
//! struct Foo;
//!
//! fn double_rot13(text: &str) -> String {
//!     let rot13 = |c: char| match c {
//!         'a'..='z' => (((c as u8 - b'a') + 13) % 26 + b'a') as char,
//!         'A'..='Z' => (((c as u8 - b'A') + 13) % 26 + b'A') as char,
//!         _ => c,
//!     };
//!     text.chars().map(rot13).map(rot13).collect()
//! }
//!
//! impl ClientMechanism for Foo {
//!     fn name(&self) -> &str { "FOO" }
//!     fn client_first(&self) -> bool { true }
//!     fn priority(&self) -> u16 { 200 }
//!     fn test(&self, context: &ClientContext) -> bool {
//!         context.authcid().is_some() && context.password().is_some()
//!     }
//!     fn initial_response(&mut self, context: &ClientContext)
//!         -> Result<Option<Vec<u8>>, ClientError>
//!     {
//!         let authcid = context.authcid().ok_or(ClientError::MissingCredentials("user"))?;
//!         let password = context.password().ok_or(ClientError::MissingCredentials("password"))?;
//!         let message = format!(
//!             "{}\0{authcid}\0{}",
//!             context.authzid().unwrap_or_default(),
//!             double_rot13(password),
//!         );
//!         Ok(Some(message.into_bytes()))
//!     }
//!     fn challenge(&mut self, _: &ClientContext, _: &[u8]) -> Result<Vec<u8>, ClientError> {
//!         Err(ClientError::InvalidServerMessage("FOO takes no challenge"))
//!     }
//! }
//!
//! let config = ClientConfig::new()
//!     .register::<Foo>()
//!     .allow(AllowList::new().name("FOO").mechanism::<ScramSha256>());
//! let context = ClientContext::new().with_authcid("juliet").with_password("r0m30");
//!
//! // FOO is chosen when offered...
//! let mut session = config.select(context.clone(), &["SCRAM-SHA-256", "FOO", "PLAIN"])?;
//! assert_eq!(session.mechanism_name(), "FOO");
//! assert_eq!(session.start()?, Some(b"\0juliet\0r0m30".to_vec()));
//!
//! // ...SCRAM-SHA-256 otherwise, and never PLAIN or SCRAM-SHA-1: not allowed.
//! let session = config.select(context.clone(), &["SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"])?;
//! assert_eq!(session.mechanism_name(), "SCRAM-SHA-256");
//! assert_eq!(
//!     config.select(context, &["SCRAM-SHA-1", "PLAIN"]).unwrap_err(),
//!     ClientError::NoMechanism,
//! );
//! # Ok::<(), ClientError>(())
//! ```

pub mod channel_binding;
pub mod client;
mod failure;
pub mod ht;
pub mod random;
pub mod saslprep;
pub mod scram;
#[cfg(test)]
mod scram_vectors;
pub mod server;
pub mod ssdp;
pub mod xmpp;

pub use channel_binding::{ChannelBinding, ChannelBindingType};
pub use failure::{Failure, UnknownFailure};
pub use scram::{Algorithm, StoredCredentials};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
