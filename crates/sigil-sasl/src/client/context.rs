//! What the application supplied for a login.

use core::fmt;

use crate::channel_binding::{self, ChannelBinding, ChannelBindingType};
use crate::scram;

/// What the application supplied for a login, and what the connection knows.
///
/// Built with the `with_*` methods; mechanisms read it through the accessors.
#[derive(Clone, Default)]
pub struct ClientContext {
    authcid: Option<String>,
    authzid: Option<String>,
    password: Option<String>,
    client_certificate: bool,
    bearer_token: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    anonymous_trace: Option<String>,
    encrypted: bool,
    channel_bindings: Vec<ChannelBinding>,
    server_channel_binding_types: Option<Vec<ChannelBindingType>>,
    max_iterations: Option<u32>,
    fast_token: Option<(String, String)>,
    advertised: Option<crate::ssdp::Advertised>,
    pub(super) offered: Vec<String>,
}

impl ClientContext {
    /// An empty context: no identity, no credentials, an unencrypted stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// The authentication identity (for XMPP, the localpart of the JID).
    pub fn with_authcid(mut self, authcid: impl Into<String>) -> Self {
        self.authcid = Some(authcid.into());
        self
    }

    /// The authorization identity to request, if different from the
    /// authentication identity.
    pub fn with_authzid(mut self, authzid: impl Into<String>) -> Self {
        self.authzid = Some(authzid.into());
        self
    }

    /// The password.
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Whether the connection presents a client certificate in its TLS
    /// handshake (this is what lets `EXTERNAL` run).
    pub fn with_client_certificate(mut self, presented: bool) -> Self {
        self.client_certificate = presented;
        self
    }

    /// An OAuth 2.0 bearer token for `OAUTHBEARER`.
    pub fn with_bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// The host and port the client connected to (sent by `OAUTHBEARER`).
    pub fn with_host(mut self, host: impl Into<String>, port: Option<u16>) -> Self {
        self.host = Some(host.into());
        self.port = port;
        self
    }

    /// The trace information `ANONYMOUS` sends (RFC 4505), if any.
    pub fn with_anonymous_trace(mut self, trace: impl Into<String>) -> Self {
        self.anonymous_trace = Some(trace.into());
        self
    }

    /// Whether the stream is encrypted (TLS). `PLAIN` runs only if it is.
    pub fn with_encrypted(mut self, encrypted: bool) -> Self {
        self.encrypted = encrypted;
        self
    }

    /// Channel binding data of this connection (for the `-PLUS` mechanisms).
    pub fn with_channel_binding(mut self, binding: ChannelBinding) -> Self {
        self.channel_bindings.retain(|b| b.kind != binding.kind);
        self.channel_bindings.push(binding);
        self
    }

    /// The channel binding types the server advertised (XEP-0440). Without
    /// this, any type is assumed acceptable.
    pub fn with_server_channel_binding_types(mut self, types: Vec<ChannelBindingType>) -> Self {
        self.server_channel_binding_types = Some(types);
        self
    }

    /// The highest SCRAM iteration count to accept from a server (default
    /// [`scram::DEFAULT_MAX_ITERATIONS`]).
    pub fn with_max_iterations(mut self, max: u32) -> Self {
        self.max_iterations = Some(max);
        self
    }

    /// A token the server issued for an HT mechanism (XEP-0484 FAST): the
    /// mechanism's name and the token.
    pub fn with_fast_token(
        mut self,
        mechanism: impl Into<String>,
        token: impl Into<String>,
    ) -> Self {
        self.fast_token = Some((mechanism.into(), token.into()));
        self
    }

    /// What the server advertised, as received, for SCRAM's XEP-0474
    /// downgrade check.
    pub fn with_advertised(mut self, advertised: crate::ssdp::Advertised) -> Self {
        self.advertised = Some(advertised);
        self
    }

    /// What the server advertised, if the application said.
    pub fn advertised(&self) -> Option<&crate::ssdp::Advertised> {
        self.advertised.as_ref()
    }

    /// The FAST token: its mechanism and the token.
    pub fn fast_token(&self) -> Option<(&str, &str)> {
        self.fast_token
            .as_ref()
            .map(|(mechanism, token)| (mechanism.as_str(), token.as_str()))
    }

    /// This connection's channel binding data of `kind`, whatever the
    /// server advertised.
    pub fn channel_binding_of(&self, kind: ChannelBindingType) -> Option<&ChannelBinding> {
        self.channel_bindings.iter().find(|b| b.kind == kind)
    }

    /// The authentication identity.
    pub fn authcid(&self) -> Option<&str> {
        self.authcid.as_deref()
    }

    /// The authorization identity.
    pub fn authzid(&self) -> Option<&str> {
        self.authzid.as_deref()
    }

    /// The password.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// Whether a client certificate is presented.
    pub fn client_certificate(&self) -> bool {
        self.client_certificate
    }

    /// The bearer token.
    pub fn bearer_token(&self) -> Option<&str> {
        self.bearer_token.as_deref()
    }

    /// The host the client connected to.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// The port the client connected to.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The `ANONYMOUS` trace information.
    pub fn anonymous_trace(&self) -> Option<&str> {
        self.anonymous_trace.as_deref()
    }

    /// Whether the stream is encrypted.
    pub fn encrypted(&self) -> bool {
        self.encrypted
    }

    /// The channel binding to use: the most preferred type we have that the
    /// server accepts.
    pub fn channel_binding(&self) -> Option<&ChannelBinding> {
        channel_binding::choose(
            &self.channel_bindings,
            self.server_channel_binding_types.as_deref(),
        )
    }

    /// The highest SCRAM iteration count accepted.
    pub fn max_iterations(&self) -> u32 {
        self.max_iterations.unwrap_or(scram::DEFAULT_MAX_ITERATIONS)
    }

    /// The mechanisms the server offered (set by [`ClientConfig::select`](super::ClientConfig::select)).
    pub fn offered(&self) -> &[String] {
        &self.offered
    }

    /// Whether the server offered `name`.
    pub fn server_offers(&self, name: &str) -> bool {
        self.offered.iter().any(|offered| offered == name)
    }
}

impl fmt::Debug for ClientContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientContext")
            .field("authcid", &self.authcid)
            .field("authzid", &self.authzid)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .field("client_certificate", &self.client_certificate)
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "…"))
            .field("fast_token", &self.fast_token.as_ref().map(|(m, _)| m))
            .field("encrypted", &self.encrypted)
            .field("channel_bindings", &self.channel_bindings)
            .field("offered", &self.offered)
            .finish_non_exhaustive()
    }
}
