//! Sockets and TLS, and the four ways to carry a stream (the
//! connection over them is in `connection`).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sigil_sasl::{ChannelBinding, ChannelBindingType};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;

use crate::Error;

/// How the client reaches the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TCP, then STARTTLS (RFC 6120; port 5222).
    StartTls,
    /// TLS from the first byte (XEP-0368; port 5223).
    DirectTls,
    /// WebSocket over TLS (RFC 7395, `wss://`).
    WebSocket,
    /// BOSH over HTTPS (XEP-0124, XEP-0206).
    Bosh,
}

impl Transport {
    /// A short name for people.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StartTls => "TCP with STARTTLS",
            Self::DirectTls => "direct TLS",
            Self::WebSocket => "WebSocket",
            Self::Bosh => "BOSH",
        }
    }

    /// Whether the stream is framed as standalone elements (RFC 7395,
    /// XEP-0206) rather than one XML document.
    pub fn is_http(self) -> bool {
        matches!(self, Self::WebSocket | Self::Bosh)
    }
}

/// How the server's certificate is checked.
#[derive(Clone, Debug)]
pub(crate) enum Trust {
    /// The operating system's trusted roots.
    System,
    /// These CA (or self-signed) certificates, DER.
    Anchors(Vec<CertificateDer<'static>>),
    /// Exactly the certificate with this SHA-256 fingerprint.
    Pinned([u8; 32]),
}

/// An HTTPS endpoint: `wss://host[:port]/path` or `https://host[:port]/path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) scheme: &'static str,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) path: String,
}

impl Endpoint {
    /// Parses a URL for `transport` (only `wss` for WebSocket, only
    /// `https` for BOSH: certificates need TLS).
    pub(crate) fn parse(url: &str, transport: Transport) -> Result<Self, String> {
        let scheme = match transport {
            Transport::WebSocket => "wss",
            Transport::Bosh => "https",
            _ => return Err("a URL is only for WebSocket and BOSH".into()),
        };
        let rest = url
            .strip_prefix(scheme)
            .and_then(|r| r.strip_prefix("://"))
            .ok_or_else(|| format!("{url:?}: the URL must start with {scheme}://"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(format!(
                "{url:?}: user information in the URL is not supported"
            ));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed IPv6 address"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("{url:?}: no host"));
        }
        let port = match port {
            Some(port) => port
                .parse()
                .map_err(|_| format!("{url:?}: bad port {port:?}"))?,
            None => 443,
        };
        if path.contains(char::is_whitespace) || path.contains('#') {
            return Err(format!("{url:?}: bad path"));
        }
        Ok(Self {
            scheme,
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }

    /// The `Host` header value.
    pub(crate) fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 443 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority(), self.path)
    }
}

pub(crate) fn tls_version(connection: &rustls::ClientConnection) -> String {
    connection
        .protocol_version()
        .map(|v| format!("{v:?}"))
        .unwrap_or_default()
}

/// Opens a WebSocket with the `xmpp` subprotocol over an established TLS
/// connection.
pub(crate) async fn websocket(
    tls: TlsStream<TcpStream>,
    endpoint: &Endpoint,
    max_message_bytes: usize,
) -> Result<WebSocketStream<TlsStream<TcpStream>>, Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
    let mut request = endpoint
        .url()
        .into_client_request()
        .map_err(|e| Error::Config(format!("WebSocket URL: {e}")))?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("xmpp"));
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes));
    let (ws, response) = tokio_tungstenite::client_async_with_config(request, tls, Some(config))
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(response) => Error::Protocol(format!(
                "the WebSocket was refused with HTTP {}",
                response.status()
            )),
            other => Error::Protocol(format!("WebSocket handshake: {other}")),
        })?;
    let protocol = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok());
    if protocol != Some("xmpp") {
        return Err(Error::Protocol(
            "the server did not accept the xmpp WebSocket subprotocol".into(),
        ));
    }
    Ok(ws)
}

/// Connects TCP, from `local` if given, with Nagle off.
pub(crate) async fn connect_tcp(
    address: SocketAddr,
    local: Option<std::net::IpAddr>,
) -> io::Result<TcpStream> {
    let tcp = match local {
        Some(local) => {
            let socket = if address.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket.bind(SocketAddr::new(local, 0))?;
            socket.connect(address).await?
        }
        None => TcpStream::connect(address).await?,
    };
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// Connects TCP and runs the TLS handshake.
pub(crate) async fn connect_tls(
    address: SocketAddr,
    local: Option<std::net::IpAddr>,
    connector: &tokio_rustls::TlsConnector,
    name: rustls_pki_types::ServerName<'static>,
) -> Result<TlsStream<TcpStream>, Error> {
    let tcp = connect_tcp(address, local).await.map_err(Error::Io)?;
    handshake(tcp, connector, name).await
}

/// Runs the TLS handshake on a connected socket.
pub(crate) async fn handshake(
    tcp: TcpStream,
    connector: &tokio_rustls::TlsConnector,
    name: rustls_pki_types::ServerName<'static>,
) -> Result<TlsStream<TcpStream>, Error> {
    connector.connect(name, tcp).await.map_err(|e| {
        // rustls reports its refusals (a certificate, a protocol alert)
        // as `InvalidData`; any other kind is the connection failing
        // under the handshake, which trying again may cure.
        if e.kind() == io::ErrorKind::InvalidData {
            Error::Tls(e.to_string())
        } else {
            Error::Io(e)
        }
    })
}

/// `tls-exporter` channel binding data (TLS 1.3 only, RFC 9266).
pub(crate) fn channel_binding(connection: &rustls::ClientConnection) -> Option<ChannelBinding> {
    if connection.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
        return None;
    }
    let mut exported = [0u8; 32];
    connection
        .export_keying_material(&mut exported, b"EXPORTER-Channel-Binding", None)
        .ok()?;
    Some(ChannelBinding::new(
        ChannelBindingType::TlsExporter,
        exported.to_vec(),
    ))
}

pub(crate) fn tls_config(
    trust: Trust,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    // AES-128-GCM with SHA-256 first, as browsers order them: SHA-256 runs
    // on the CPU's SHA extensions where SHA-384 has none, which made the
    // TLS 1.3 key schedule a tenth of a login's CPU on both sides.
    provider
        .cipher_suites
        .sort_by_key(|suite| suite.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let provider = Arc::new(provider);
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match trust {
        Trust::System => {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(match found.errors.first() {
                    Some(error) => format!("no system trust roots: {error}"),
                    None => "no system trust roots (install ca-certificates, or trust a CA or pin the server certificate)".into(),
                });
            }
            builder.with_root_certificates(roots)
        }
        Trust::Anchors(anchors) => {
            let mut roots = rustls::RootCertStore::empty();
            for anchor in anchors {
                roots
                    .add(anchor)
                    .map_err(|e| format!("unusable trusted certificate: {e}"))?;
            }
            builder.with_root_certificates(roots)
        }
        Trust::Pinned(fingerprint) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(danger::Pinned::new(fingerprint, provider))),
    };
    let mut config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("the client certificate and key do not fit together: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    // Every connection runs a full handshake: a resumed TLS 1.3 session
    // carries no client certificate, and whether a server still lets it
    // log in with EXTERNAL differs between servers. Predictable beats a
    // round trip saved on a reconnect.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

mod danger {
    //! Accepting a server certificate by its fingerprint alone.

    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
    use rustls::{DigitallySignedStruct, Error, SignatureScheme};
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
    use sha2::{Digest, Sha256};

    /// Accepts exactly one server certificate, named by its SHA-256
    /// fingerprint, whatever its issuer, names or dates; the handshake
    /// signature is still checked.
    #[derive(Debug)]
    pub(super) struct Pinned {
        fingerprint: [u8; 32],
        provider: Arc<CryptoProvider>,
    }

    impl Pinned {
        pub(super) fn new(fingerprint: [u8; 32], provider: Arc<CryptoProvider>) -> Self {
            Self {
                fingerprint,
                provider,
            }
        }
    }

    impl ServerCertVerifier for Pinned {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, Error> {
            let seen: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
            if seen == self.fingerprint {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(Error::General(
                    "the server certificate is not the pinned one".into(),
                ))
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn aes_128_gcm_with_sha_256_is_offered_first_and_resumption_is_off() {
        let config = tls_config(Trust::Pinned([0; 32]), None).unwrap();
        let suites = &config.crypto_provider().cipher_suites;
        assert_eq!(
            suites[0].suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        );
        // Nothing dropped, only reordered.
        assert_eq!(
            suites.len(),
            rustls::crypto::aws_lc_rs::default_provider()
                .cipher_suites
                .len()
        );
        assert!(
            format!("{:?}", config.resumption).contains("Disabled"),
            "{:?}",
            config.resumption
        );
    }

    #[test]
    fn endpoints_parse() {
        let e = Endpoint::parse(
            "wss://chat.example.org:5281/xmpp-websocket",
            Transport::WebSocket,
        )
        .unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("chat.example.org", 5281, "/xmpp-websocket")
        );
        assert_eq!(e.authority(), "chat.example.org:5281");
        let e = Endpoint::parse("https://[::1]/http-bind", Transport::Bosh).unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 443));
        assert_eq!(e.url(), "https://[::1]/http-bind");
        let e = Endpoint::parse("wss://example.org", Transport::WebSocket).unwrap();
        assert_eq!(e.path, "/");
        for bad in [
            "ws://example.org/",
            "wss://:5281/",
            "wss://example.org:http/",
            "wss://user@example.org/",
            "wss://[::1/",
        ] {
            assert!(Endpoint::parse(bad, Transport::WebSocket).is_err(), "{bad}");
        }
    }
}
