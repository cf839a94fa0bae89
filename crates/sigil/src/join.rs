//! `sigil device join`: a new device joins an account by invitation, with
//! no password ever made; `sigil device add` makes such an invitation
//! from a device already logged in.
//!
//! It reads the invitation URI (`xmpp:[user@]domain?register;
//! preauth=TOKEN`), makes a key and a self-signed certificate naming the
//! account, connects presenting it, redeems the invitation (which creates
//! the account, or adds the device to it), logs in with SASL EXTERNAL,
//! and writes the credentials as `sigil cert new` does: `NAME.key`
//! (PKCS#8, mode 0600), `NAME.crt` and `NAME.p12` (mode 0600) in `--out`,
//! NAME being the account's local part unless `--file-name` says
//! otherwise. The files are checked before connecting, so an invitation is
//! never spent on credentials that could not be written.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use sigil_client::{Invitation, JoinOptions, Transport};
use sigil_proto::client::ClientError;
use sigil_x509::generate::{DEFAULT_DAYS, Issued};
use sigil_x509::{CertificateInfo, Jid, pkcs12};

use crate::cert;
use crate::login::{parse_pin, read};

/// Devices joining accounts.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum DeviceCommand {
    /// Join an account by invitation: make this device's key and
    /// certificate, redeem the invitation (which creates the account, or
    /// adds this device to it), log in with the certificate, and write
    /// NAME.key, NAME.crt and NAME.p12 as `sigil cert new` does. No
    /// password is ever made.
    Join {
        /// The invitation: xmpp:DOMAIN?register;preauth=TOKEN (you pick the
        /// user name, --user) or xmpp:USER@DOMAIN?register;preauth=TOKEN.
        uri: String,
        /// This device's name (unique among the account's devices).
        #[arg(long)]
        name: String,
        /// The user name to take, for an invitation that lets you choose.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Sessions of this device may list certificates but not change
        /// them.
        #[arg(long)]
        no_cert_management: bool,
        /// Where to write the files.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
        /// The file name stem (default: the user name).
        #[arg(long, value_name = "NAME")]
        file_name: Option<String>,
        /// Days of validity of the certificate.
        #[arg(long, default_value_t = DEFAULT_DAYS)]
        days: u32,
        /// The key type.
        #[arg(long, value_enum, default_value_t = crate::Key::P256)]
        key: crate::Key,
        /// Read the PKCS#12 password from the first line of this file
        /// (default: generate one and print it).
        #[arg(long, value_name = "FILE")]
        p12_password_file: Option<PathBuf>,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Renew this device's certificate now (it is renewed by itself
    /// when less than a third of its validity is left): a new key and
    /// certificate are registered, written over --cert and --key, and
    /// logged in with, after which the old ones no longer log in.
    Renew {
        /// The account, user@domain.
        #[arg(long = "as", value_name = "JID", env = "SIGIL_ACCOUNT")]
        account: String,
        #[command(flatten)]
        connect: crate::login::ConnectArgs,
    },
    /// From a device that is logged in, make a one-time invitation for a
    /// new device of the same account (the server's "Add a device"
    /// command) and print it: the URI, the page with its QR code, the
    /// `sigil device join` line, and the QR code in the terminal.
    Add {
        /// The name suggested for the new device (it may pick another).
        #[arg(long)]
        name: Option<String>,
        /// The account, user@domain.
        #[arg(long = "as", value_name = "JID", env = "SIGIL_ACCOUNT")]
        account: String,
        #[command(flatten)]
        connect: crate::login::ConnectArgs,
    },
}

/// How to reach and trust the server (no credentials: the invitation is
/// the credential).
#[derive(Debug, clap::Args)]
pub(crate) struct ServerArgs {
    /// The server's address (default: DNS SRV for the invitation's
    /// domain, then the domain itself on port 5222, or 5223 with
    /// --direct-tls; for --websocket/--bosh the URL's host). Give it
    /// again for the other nodes of a cluster, tried in order.
    #[arg(long)]
    address: Vec<SocketAddr>,
    /// The DNS server for SRV lookups (default: /etc/resolv.conf's).
    #[arg(long, value_name = "ADDRESS:PORT")]
    dns_server: Option<SocketAddr>,
    /// TLS from the first byte (XEP-0368) instead of STARTTLS.
    #[arg(long, conflicts_with_all = ["websocket", "bosh"])]
    direct_tls: bool,
    /// Connect over WebSocket to this URL (wss://host:port/xmpp-websocket).
    #[arg(long, value_name = "URL", conflicts_with = "bosh")]
    websocket: Option<String>,
    /// Connect over BOSH to this URL (https://host:port/http-bind).
    #[arg(long, value_name = "URL")]
    bosh: Option<String>,
    /// Trust the server certificates signed by this CA (or this
    /// self-signed certificate), PEM. Default: sigil-data/server.crt if
    /// it is here, else the system's trusted roots.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Accept exactly the server certificate with this SHA-256
    /// fingerprint (hex).
    #[arg(long, value_name = "SHA256", conflicts_with = "ca")]
    pin: Option<String>,
    /// The resource to ask for.
    #[arg(long)]
    resource: Option<String>,
}

/// Runs a `sigil device` command.
pub(crate) fn run(command: DeviceCommand) -> Result<(), String> {
    match command {
        DeviceCommand::Add {
            name,
            account,
            connect,
        } => crate::login::add_device(&account, name.as_deref(), &connect),
        DeviceCommand::Renew { account, connect } => crate::login::renew_device(&account, &connect),
        DeviceCommand::Join {
            uri,
            name,
            user,
            no_cert_management,
            out,
            file_name,
            days,
            key,
            p12_password_file,
            force,
            server,
        } => {
            let options = JoinOptions {
                device: name,
                username: user,
                no_cert_management,
                key: key.into(),
                days,
                credentials: None,
            };
            join(
                &uri,
                options,
                &Files {
                    out: &out,
                    file_name: file_name.as_deref(),
                    p12_password_file: p12_password_file.as_deref(),
                    force,
                },
                &server,
            )
        }
    }
}

/// Where the credentials go.
struct Files<'a> {
    out: &'a Path,
    file_name: Option<&'a str>,
    p12_password_file: Option<&'a Path>,
    force: bool,
}

fn join(
    uri: &str,
    options: JoinOptions,
    files: &Files<'_>,
    server: &ServerArgs,
) -> Result<(), String> {
    let invitation = Invitation::parse(uri).map_err(|e| format!("the invitation: {e}"))?;
    // The account, to name the files before anything is spent; the
    // library checks it again.
    let account = match (&options.username, invitation.account()) {
        (Some(user), _) => format!("{user}@{}", invitation.domain()),
        (None, Some(account)) => account.to_string(),
        (None, None) => {
            return Err(format!(
                "this invitation lets you choose your user name on {}: give --user NAME",
                invitation.domain()
            ));
        }
    };
    let jid = Jid::new(&account).map_err(|e| format!("{account:?} is not a valid account: {e}"))?;
    let stem = match files.file_name {
        Some(name) if name.is_empty() || name.starts_with('.') || name.contains(['/', '\0']) => {
            return Err(format!(
                "--file-name {name:?}: use a plain file name without '/'"
            ));
        }
        Some(name) => name.to_owned(),
        None => cert::default_name(&jid),
    };
    let key_path = files.out.join(format!("{stem}.key"));
    let certificate_path = files.out.join(format!("{stem}.crt"));
    let bundle_path = files.out.join(format!("{stem}.p12"));
    cert::refuse_to_overwrite(&[&key_path, &certificate_path, &bundle_path], files.force)?;
    let password = match files.p12_password_file {
        Some(file) => cert::read_password(file)?,
        None => cert::fresh_password()?,
    };
    std::fs::create_dir_all(files.out)
        .map_err(|e| format!("cannot create {}: {e}", files.out.display()))?;

    // The device's key and certificate are on disk before the invitation
    // is spent: a login that fails after the registration loses nothing.
    let made = sigil_x509::generate::client_certificate(
        std::slice::from_ref(&jid),
        &sigil_x509::generate::Options {
            days: options.days,
            key: options.key,
            now: time::OffsetDateTime::now_utc(),
        },
        None,
    )
    .map_err(|e| format!("the device's certificate: {e}"))?;
    cert::write_file(&key_path, made.key_pem().as_bytes(), true)?;
    cert::write_file(&certificate_path, made.certificate_pem().as_bytes(), false)?;
    let options = JoinOptions {
        credentials: Some((made.certificate_pem(), made.key_pem())),
        ..options
    };

    let configure = server.configure()?;
    let runtime = crate::serve::runtime()?;
    let joined = runtime.block_on(sigil_client::join(uri, options, configure));
    let joined = match joined {
        Ok(joined) => joined,
        Err(error) => {
            let spent = !matches!(
                &error,
                sigil_client::Error::Config(_)
                    | sigil_client::Error::Tls(_)
                    | sigil_client::Error::Stream(
                        ClientError::TokenRefused(_)
                            | ClientError::RegistrationRefused(_)
                            | ClientError::RegistrationUnavailable
                    )
            );
            let hint = match &error {
                sigil_client::Error::Tls(_) if server.ca.is_none() && server.pin.is_none() => {
                    "\n(say how to check the server: --ca FILE or --pin SHA256)"
                }
                _ => "",
            };
            if spent {
                // The device may have joined before the failure: its key
                // stays where it was written.
                return Err(format!(
                    "joining failed: {error}{hint}\nThe device may have joined before that: its \
                     key and certificate are in {} and {}; try `sigil login {account} --cert {} \
                     --key {}`, and remove them if it cannot log in.",
                    key_path.display(),
                    certificate_path.display(),
                    certificate_path.display(),
                    key_path.display()
                ));
            }
            // Refused before anything was registered: nothing to keep.
            let _ = std::fs::remove_file(&key_path);
            let _ = std::fs::remove_file(&certificate_path);
            return Err(format!("joining failed: {error}{hint}"));
        }
    };
    let bound = joined.client.jid();
    let mechanism = joined.client.mechanism().to_owned();

    let issued = Issued::from_pem(&joined.certificate_pem, &joined.key_pem)
        .map_err(|e| format!("the new certificate: {e}"))?;
    let bundle = pkcs12::bundle(&issued, &[], &stem, &password).map_err(|e| e.to_string())?;
    // The key is on disk already; a certificate the server signed
    // replaces the device's own.
    let written = cert::write_file(&certificate_path, joined.certificate_pem.as_bytes(), false)
        .and_then(|()| cert::write_file(&bundle_path, &bundle, true));
    let device = joined.device.clone();
    let account = joined.account.to_string();
    let joined_signed = joined.signed;
    runtime.block_on(joined.client.close());
    if let Err(error) = written {
        // The device is registered with this certificate: it goes to the
        // terminal rather than nowhere (the key is in its file).
        return Err(format!(
            "{error}\nThe device joined, but its certificate could not be saved. Keep it \
             (its key is in {}):\n{}",
            key_path.display(),
            issued.certificate_pem()
        ));
    }

    let info = CertificateInfo::from_der(&issued.certificate_der).map_err(|e| e.to_string())?;
    let mut text = String::new();
    let _ = writeln!(text, "Joined {account} as device {device:?}");
    let _ = writeln!(text, "  logged in as {bound} with {mechanism}");
    if joined_signed {
        let _ = writeln!(
            text,
            "  certificate signed by the server's CA ({})",
            info.issuer
        );
    }
    let _ = writeln!(text, "  SHA-256 fingerprint: {}", info.sha256_fingerprint());
    let _ = writeln!(text, "  valid until {}", cert::rfc3339(info.not_after));
    cert::written(
        &mut text,
        &key_path,
        &certificate_path,
        &bundle_path,
        files
            .p12_password_file
            .is_none()
            .then_some(password.as_str()),
    );
    let _ = writeln!(text, "Log in with:");
    let _ = writeln!(
        text,
        "  sigil login {account} --cert {} --key {}{}",
        certificate_path.display(),
        key_path.display(),
        server.repeat()
    );
    cert::print(&text)
}

impl ServerArgs {
    fn transport(&self) -> Transport {
        if self.websocket.is_some() {
            Transport::WebSocket
        } else if self.bosh.is_some() {
            Transport::Bosh
        } else if self.direct_tls {
            Transport::DirectTls
        } else {
            Transport::StartTls
        }
    }

    /// What the join's client builder is given: reach and trust.
    fn configure(
        &self,
    ) -> Result<impl Fn(sigil_client::ClientBuilder) -> sigil_client::ClientBuilder + use<>, String>
    {
        let pin = self.pin.as_deref().map(parse_pin).transpose()?;
        let ca = match (&self.pin, &self.ca) {
            (Some(_), _) => None,
            (None, Some(ca)) => Some(read(ca)?),
            (None, None) => {
                let default = Path::new("sigil-data/server.crt");
                default.exists().then(|| read(default)).transpose()?
            }
        };
        let transport = self.transport();
        let url = self.websocket.clone().or_else(|| self.bosh.clone());
        let addresses = self.address.clone();
        let dns_server = self.dns_server;
        let resource = self.resource.clone();
        Ok(move |mut builder: sigil_client::ClientBuilder| {
            builder = builder.transport(transport);
            if let Some(url) = &url {
                builder = builder.url(url.clone());
            }
            builder = builder.addresses(addresses.iter().copied());
            if let Some(server) = dns_server {
                builder = builder.dns_server(server);
            }
            if let Some(pin) = pin {
                builder = builder.pin_sha256(pin);
            }
            if let Some(ca) = &ca {
                builder = builder.trust_pem(ca);
            }
            if let Some(resource) = &resource {
                builder = builder.resource(resource.clone());
            }
            builder
        })
    }

    /// The options to give `sigil login` again.
    fn repeat(&self) -> String {
        let mut options = String::new();
        for address in &self.address {
            let _ = write!(options, " --address {address}");
        }
        if self.direct_tls {
            options.push_str(" --direct-tls");
        }
        if let Some(url) = &self.websocket {
            let _ = write!(options, " --websocket {url}");
        }
        if let Some(url) = &self.bosh {
            let _ = write!(options, " --bosh {url}");
        }
        if let Some(ca) = &self.ca {
            let _ = write!(options, " --ca {}", ca.display());
        }
        if let Some(pin) = &self.pin {
            let _ = write!(options, " --pin {pin}");
        }
        options
    }
}
