//! How a connection's bytes travel: the [`Wire`] seam under the one
//! negotiation and session code ([`crate::connection`]), and the listener
//! settings each connection gets. The transports that implement it are in
//! [`crate::transport`].

use std::io;
use std::sync::Arc;

use sigil_proto::frame::Frame;
use sigil_proto::server::ServerStreamConfig;
use sigil_sasl::server::ConnectionInfo;
use tokio_rustls::TlsAcceptor;

use crate::config::ListenerKind;
use crate::tls::{ServerIdentity, TlsInfo};

/// What a listener gives each of its connections.
pub(crate) struct Listener {
    /// STARTTLS or direct TLS.
    pub(crate) kind: ListenerKind,
    /// The TLS acceptor with this listener's client-certificate policy.
    pub(crate) acceptor: TlsAcceptor,
    /// The server certificate (for channel binding).
    pub(crate) identity: Arc<ServerIdentity>,
    /// Negotiation settings.
    pub(crate) stream: Arc<ServerStreamConfig>,
}

/// What a wire delivers: bytes of a stream, or one standalone element.
pub(crate) enum Input {
    /// Bytes of an RFC 6120 stream.
    Bytes(Vec<u8>),
    /// One element of a standalone framing (a WebSocket frame), and the
    /// bytes it took on the wire.
    Element(sigil_xml::Element, usize),
    /// A frame that is not one well-formed element.
    Invalid(sigil_xml::FramerError),
    /// Bytes that carried no element (a BOSH request without payload, a
    /// WebSocket ping), charged to the read budget all the same.
    Charge(usize),
}

/// How a connection's bytes travel: TCP (with STARTTLS or direct TLS), or a
/// WebSocket. Everything above it (negotiation, session) is the same.
pub(crate) trait Wire: Send {
    /// Whether XEP-0198 acknowledgements may be used on this wire (not on
    /// BOSH).
    const ACKS: bool = true;
    /// The transport's name, as metrics label sessions.
    const TRANSPORT: &'static str;
    /// The next input, `None` at the end of the connection.
    fn read(&mut self) -> impl Future<Output = Option<Input>> + Send;
    /// Queues one frame ([`sigil_proto::server::Action::Send`]), to be
    /// written in the wire's framing.
    fn queue(&mut self, frame: Frame);
    /// Writes what is queued.
    fn flush(&mut self) -> impl Future<Output = io::Result<()>> + Send;
    /// Ends the connection.
    fn shutdown(&mut self) -> impl Future<Output = ()> + Send;
    /// Lets the connection go (closed, buffers freed) while the task lives
    /// on, as a session waiting to be resumed does.
    fn release(&mut self) {}
    /// Upgrades to TLS after `<proceed/>` (only TCP can).
    fn start_tls(&mut self, _listener: &Listener) -> impl Future<Output = Option<TlsInfo>> + Send {
        async { None }
    }
}

/// What the negotiation knows of a TLS connection.
pub(crate) fn connection_info(info: &TlsInfo) -> ConnectionInfo {
    ConnectionInfo {
        encrypted: true,
        client_certificate: !info.peer_certificates.is_empty(),
        channel_bindings: info.channel_bindings.clone(),
    }
}
