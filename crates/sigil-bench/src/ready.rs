//! A target made ready: the prepared accounts read, their TLS settings
//! built once, and client builders for them.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use sigil_client::{Client, Transport};
use sigil_sasl::client::{AllowList, ClientConfig};

use crate::cli::{Target, TransportArg};

/// One account of a prepared directory.
pub(crate) struct Account {
    pub(crate) jid: String,
    /// The account's client certificate, PEM.
    pub(crate) certificate: Vec<u8>,
    /// Trust (the pinned server certificate) and, for EXTERNAL, the
    /// account's client certificate: built once, shared by its connections.
    pub(crate) tls: sigil_client::TlsSettings,
}

/// A target made ready: accounts read, their TLS settings built.
pub(crate) struct Ready {
    pub(crate) address: SocketAddr,
    pub(crate) transport: Transport,
    pub(crate) url: Option<String>,
    pub(crate) accounts: Vec<Account>,
    /// Trust without a client certificate (password logins).
    pub(crate) without_certificate: sigil_client::TlsSettings,
    pub(crate) password: String,
    pub(crate) mechanism: String,
    pub(crate) json: bool,
    pub(crate) cpu_of: Option<u32>,
}

impl Ready {
    pub(crate) fn load(target: &Target) -> Result<Self, String> {
        let pem = read(&target.server_cert)?;
        let der = sigil_x509::pem_certificates(&pem)
            .map_err(|e| format!("{}: {e}", target.server_cert.display()))?
            .into_iter()
            .next()
            .ok_or_else(|| format!("{}: no certificate", target.server_cert.display()))?;
        let pin = sigil_x509::CertificateInfo::from_der(&der)
            .map_err(|e| e.to_string())?
            .sha256;
        let listing = String::from_utf8(read(&target.accounts.join("accounts.txt"))?)
            .map_err(|_| "accounts.txt is not UTF-8".to_owned())?;
        let domain = String::from_utf8(read(&target.accounts.join("domain"))?)
            .map_err(|_| "domain is not UTF-8".to_owned())?;
        let mut accounts = Vec::new();
        let mut password = String::new();
        let tls_error = |e: sigil_client::Error| e.to_string();
        let without_certificate = Client::builder(format!("bench@{}", domain.trim()))
            .pin_sha256(pin)
            .build_tls()
            .map_err(tls_error)?;
        for line in listing.lines().filter(|l| !l.trim().is_empty()) {
            let (name, pw) = line.split_once(' ').unwrap_or((line, ""));
            password = pw.to_owned();
            let certs = target.accounts.join("certs");
            let jid = format!("{name}@{}", domain.trim());
            let certificate = read(&certs.join(format!("{name}.crt")))?;
            let tls = if target.mechanism == "EXTERNAL" {
                Client::builder(jid.clone())
                    .pin_sha256(pin)
                    .client_certificate_pem(
                        &certificate,
                        &read(&certs.join(format!("{name}.key")))?,
                    )
                    .build_tls()
                    .map_err(tls_error)?
            } else {
                without_certificate.clone()
            };
            accounts.push(Account {
                jid,
                certificate,
                tls,
            });
        }
        if accounts.is_empty() {
            return Err("accounts.txt lists no accounts".into());
        }
        let transport = match target.transport {
            TransportArg::Starttls => Transport::StartTls,
            TransportArg::DirectTls => Transport::DirectTls,
            TransportArg::Websocket => Transport::WebSocket,
            TransportArg::Bosh => Transport::Bosh,
        };
        let domain = domain.trim();
        let url = target.url.clone().or_else(|| match transport {
            Transport::WebSocket => Some(format!(
                "wss://{domain}:{}/xmpp-websocket",
                target.address.port()
            )),
            Transport::Bosh => Some(format!(
                "https://{domain}:{}/http-bind",
                target.address.port()
            )),
            _ => None,
        });
        Ok(Self {
            address: target.address,
            transport,
            url,
            accounts,
            without_certificate,
            password,
            mechanism: target.mechanism.clone(),
            json: target.json,
            cpu_of: target.cpu_of,
        })
    }

    /// A builder for account `index` (modulo the number of accounts).
    pub(crate) fn builder(
        &self,
        index: usize,
        source: Option<IpAddr>,
    ) -> sigil_client::ClientBuilder {
        let account = &self.accounts[index % self.accounts.len()];
        let mut builder = Client::builder(account.jid.clone())
            .address(self.address)
            .transport(self.transport)
            .tls(account.tls.clone())
            .timeout(Duration::from_secs(30))
            .resource(format!("b{index}"));
        if let Some(url) = &self.url {
            builder = builder.url(url.clone());
        }
        if let Some(source) = source {
            builder = builder.local_address(source);
        }
        if self.mechanism == "EXTERNAL" {
            builder
        } else {
            builder
                .password(self.password.clone())
                .sasl(ClientConfig::new().allow(AllowList::new().name(self.mechanism.clone())))
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Logs account `index` in.
pub(crate) async fn connect(ready: &Ready, index: usize) -> Result<Client, String> {
    ready
        .builder(index, None)
        .connect()
        .await
        .map_err(|e| format!("account {index}: {e}"))
}
