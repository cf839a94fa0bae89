//! TLS for the listeners: rustls on the aws-lc-rs provider, passed
//! explicitly, and the client-certificate policy.
//!
//! Per listener, client certificates are `disabled`, `wanted` or `needed`;
//! where they are asked for, [`danger::ProofOfPossessionOnly`] checks only
//! the handshake signature, and there is no TLS session resumption (no
//! cache, no tickets). ALPN is `xmpp-client` on direct TLS (XEP-0368),
//! `http/1.1` on HTTPS, none on STARTTLS. Channel binding offers
//! `tls-exporter` on TLS 1.3 and `tls-server-end-point` from the
//! certificate in use ([`TlsInfo`]). The certificate is handed to each
//! handshake by a resolver, so a [`ServerIdentity::reload`] serves the
//! next handshake.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::server::{NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sigil_sasl::{ChannelBinding, ChannelBindingType};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::config::ClientCertificatePolicy;

/// The server's certificate and key, read from their files at start and
/// again on [`Self::reload`] (`SIGHUP`): a renewed certificate is used by
/// the next handshake, with no restart.
#[derive(Debug)]
pub struct ServerIdentity {
    certificate: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<Loaded>>,
}

#[derive(Debug)]
struct Loaded {
    certified: Arc<CertifiedKey>,
    end_point: Option<Vec<u8>>,
}

/// The ALPN protocol of XMPP client connections over direct TLS
/// (XEP-0368).
pub const ALPN_XMPP_CLIENT: &[u8] = b"xmpp-client";

impl ServerIdentity {
    /// Reads a PEM chain and a PEM private key.
    pub fn load(certificate: &Path, key: &Path) -> Result<Self, String> {
        let loaded = read_identity(certificate, key)?;
        Ok(Self {
            certificate: certificate.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(Arc::new(loaded)),
        })
    }

    /// Reads the files again; on an error the certificate in use stays.
    pub fn reload(&self) -> Result<(), String> {
        let loaded = read_identity(&self.certificate, &self.key)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(loaded);
        Ok(())
    }

    fn current(&self) -> Arc<Loaded> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The rustls configuration for a listener with this client-certificate
    /// policy, offering these ALPN protocols (none: no ALPN).
    pub fn server_config(
        self: &Arc<Self>,
        policy: ClientCertificatePolicy,
        alpn: &[&[u8]],
    ) -> Result<Arc<ServerConfig>, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = match policy {
            ClientCertificatePolicy::Disabled => builder.with_no_client_auth(),
            ClientCertificatePolicy::Wanted | ClientCertificatePolicy::Needed => builder
                .with_client_cert_verifier(Arc::new(danger::ProofOfPossessionOnly::new(
                    provider,
                    policy == ClientCertificatePolicy::Needed,
                ))),
        };
        let mut config = builder.with_cert_resolver(Arc::new(Resolver(self.clone())));
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        if policy != ClientCertificatePolicy::Disabled {
            // rustls hands back the original client chain on resumption
            // without checking it again; a revoked or expired certificate
            // must not ride on an old session, so no resumption here.
            config.session_storage = Arc::new(NoServerSessionStorage {});
            config.send_tls13_tickets = 0;
        }
        Ok(Arc::new(config))
    }

    /// The `tls-server-end-point` binding data of the certificate in use.
    pub fn end_point(&self) -> Option<Vec<u8>> {
        self.current().end_point.clone()
    }

    /// The certificate chain in use (end entity first).
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.current().certified.cert.clone()
    }
}

fn read_identity(certificate: &Path, key: &Path) -> Result<Loaded, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
        .map_err(|e| format!("cannot read {}: {e}", certificate.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", certificate.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no CERTIFICATE block", certificate.display()));
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let end_point = sigil_x509::tls_server_end_point(&chain[0]);
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let certified = CertifiedKey::from_der(chain, private, &provider)
        .map_err(|e| format!("the server certificate and key do not fit together: {e}"))?;
    Ok(Loaded {
        certified: Arc::new(certified),
        end_point,
    })
}

/// Hands every handshake the certificate in use now.
#[derive(Debug)]
struct Resolver(Arc<ServerIdentity>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current().certified.clone())
    }
}

/// What a finished handshake gives the session.
#[derive(Clone, Debug, Default)]
pub struct TlsInfo {
    /// The client's certificate chain, end entity first (empty: none).
    pub peer_certificates: Vec<CertificateDer<'static>>,
    /// Channel binding data the connection can verify.
    pub channel_bindings: Vec<ChannelBinding>,
    /// `TLSv1_3`, …
    pub protocol: String,
}

/// Reads what the handshake established.
pub fn tls_info(stream: &TlsStream<TcpStream>, identity: &ServerIdentity) -> TlsInfo {
    let (_, connection) = stream.get_ref();
    let peer_certificates = connection
        .peer_certificates()
        .map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    let mut channel_bindings = Vec::new();
    let version = connection.protocol_version();
    if version == Some(rustls::ProtocolVersion::TLSv1_3) {
        // RFC 9266: tls-exporter is defined for TLS 1.3 (and for 1.2 only
        // with the extended master secret, which we do not rely on).
        let mut exported = [0u8; 32];
        if connection
            .export_keying_material(&mut exported, b"EXPORTER-Channel-Binding", None)
            .is_ok()
        {
            channel_bindings.push(ChannelBinding::new(
                ChannelBindingType::TlsExporter,
                exported.to_vec(),
            ));
        }
    }
    if let Some(end_point) = identity.end_point() {
        channel_bindings.push(ChannelBinding::new(
            ChannelBindingType::TlsServerEndPoint,
            end_point,
        ));
    }
    TlsInfo {
        peer_certificates,
        channel_bindings,
        protocol: version.map(|v| format!("{v:?}")).unwrap_or_default(),
    }
}

pub mod danger {
    //! Risky TLS choices, named so at the call site.

    use std::sync::Arc;

    use rustls::client::danger::HandshakeSignatureValid;
    use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
    use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
    use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
    use rustls_pki_types::{CertificateDer, UnixTime};

    /// A client-certificate verifier that checks only that the client holds
    /// the key of the certificate it presents (the handshake signature).
    ///
    /// It accepts any issuer (XEP-0257: users register self-signed
    /// certificates) and any validity dates, and keeps nothing: whether the
    /// certificate may log in, as whom, and whether it is expired is decided
    /// at SASL time, where the user gets a precise answer
    /// (`credentials-expired`) and can still log in with a password. A
    /// connection whose certificate is not trusted at SASL time simply
    /// cannot use EXTERNAL.
    #[derive(Debug)]
    pub struct ProofOfPossessionOnly {
        provider: Arc<CryptoProvider>,
        mandatory: bool,
    }

    impl ProofOfPossessionOnly {
        /// With `mandatory`, a handshake without a certificate fails.
        pub fn new(provider: Arc<CryptoProvider>, mandatory: bool) -> Self {
            Self {
                provider,
                mandatory,
            }
        }
    }

    impl ClientCertVerifier for ProofOfPossessionOnly {
        fn offer_client_auth(&self) -> bool {
            true
        }

        fn client_auth_mandatory(&self) -> bool {
            self.mandatory
        }

        fn root_hint_subjects(&self) -> &[DistinguishedName] {
            // No hints: browsers then offer every certificate they hold.
            &[]
        }

        fn verify_client_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _now: UnixTime,
        ) -> Result<ClientCertVerified, Error> {
            Ok(ClientCertVerified::assertion())
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

/// Makes `server.crt` and `server.key` for `domain` (self-signed, P-256,
/// ten years) unless both exist.
pub fn ensure_server_certificate(
    domain: &str,
    certificate: &Path,
    key: &Path,
) -> Result<bool, String> {
    if certificate.exists() && key.exists() {
        return Ok(false);
    }
    let mut options = sigil_x509::generate::Options::new(sigil_x509::OffsetDateTime::now_utc());
    options.days = 3650;
    let issued = sigil_x509::generate::server_certificate(domain, &options, None)
        .map_err(|e| e.to_string())?;
    crate::files::write_new(key, issued.key_pem().as_bytes())?;
    crate::files::write_new(certificate, issued.certificate_pem().as_bytes())?;
    Ok(true)
}
