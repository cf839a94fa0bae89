//! Sockets and TLS.

use std::io;
use std::sync::Arc;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sigil_sasl::{ChannelBinding, ChannelBindingType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::Trust;

/// How the client reaches the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TCP, then STARTTLS (RFC 6120; port 5222).
    StartTls,
    /// TLS from the first byte (XEP-0368; port 5223).
    DirectTls,
}

impl Transport {
    /// A short name for people.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StartTls => "TCP with STARTTLS",
            Self::DirectTls => "direct TLS",
        }
    }
}

pub(crate) enum Wire {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Gone,
}

impl Wire {
    pub(crate) async fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buffer).await,
            Self::Tls(s) => s.read(buffer).await,
            Self::Gone => Ok(0),
        }
    }

    pub(crate) async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Self::Plain(s) => s.write_all(data).await,
            Self::Tls(s) => s.write_all(data).await,
            Self::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(s) => s.flush().await,
            Self::Tls(s) => s.flush().await,
            Self::Gone => Ok(()),
        }
    }

    pub(crate) async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(s) => s.shutdown().await,
            Self::Tls(s) => s.shutdown().await,
            Self::Gone => Ok(()),
        }
    }

    pub(crate) fn tls_version(&self) -> String {
        match self {
            Self::Tls(s) => s
                .get_ref()
                .1
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default(),
            Self::Plain(_) | Self::Gone => String::new(),
        }
    }
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
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match trust {
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
    let config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("the client certificate and key do not fit together: {e}"))?,
        None => builder.with_no_client_auth(),
    };
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
