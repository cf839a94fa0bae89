//! `sigil`: the command-line front of Sigil.
//!
//! The server (`sigil serve`, `sigil check`, `sigil user …`,
//! `sigil invite …`), certificate tools (`sigil cert …`, `sigil ca …`),
//! the client (`sigil login`, `sigil send`, `sigil chat`), devices joining
//! by invitation (`sigil device join`) and SASL inspection (`sigil sasl
//! …`).

mod cert;
mod cluster;
mod devices;
mod invite;
mod join;
mod login;
mod migrate;
mod sasl;
mod serve;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use sigil_sasl::{Algorithm, scram};
use sigil_x509::generate::{DEFAULT_CA_DAYS, DEFAULT_DAYS, KeyType};

/// jemalloc instead of the system allocator, for the C code inside (aws-lc,
/// SQLite) too, with its background threads: a server's memory goes back to
/// the operating system some seconds after connections leave, even while its
/// own threads sleep (glibc's per-thread arenas keep it). The options baked
/// in are in `.cargo/config.toml`.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Sigil: XMPP with passwordless logins (TLS client certificates, SASL
/// EXTERNAL, per-device certificates).
#[derive(Debug, Parser)]
#[command(name = "sigil", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server. The first run without --config creates
    /// ./sigil-data/ with sigil.toml, the database and a server
    /// certificate, then listens on 127.0.0.1:5222 (STARTTLS) and
    /// 127.0.0.1:5223 (direct TLS).
    Serve {
        /// The configuration file (default: sigil-data/sigil.toml,
        /// created on first run).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The domain for a first run (default: localhost).
        #[arg(long)]
        domain: Option<String>,
    },
    /// Check a configuration: the file, the certificate and the database.
    Check {
        /// The configuration file.
        #[arg(long, value_name = "FILE", default_value = serve::DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Copy this deployment's SQLite database into an empty PostgreSQL
    /// database (stop the server first), then point `[storage] url` at it.
    Migrate {
        /// The PostgreSQL database: postgres://USER:PASSWORD@HOST:PORT/DATABASE
        /// (`?sslmode=require` for TLS; `[storage] ca` and
        /// `max_connections` apply). From SIGIL_MIGRATE_TO if not given,
        /// which keeps the password out of the process list.
        #[arg(
            long,
            value_name = "URL",
            env = "SIGIL_MIGRATE_TO",
            hide_env_values = true
        )]
        to: String,
        /// The configuration file.
        #[arg(long, value_name = "FILE", default_value = serve::DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// The nodes of a cluster (`[cluster]`).
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Invite new users and new devices (XEP-0401): make, list and
    /// revoke invitations, each a single-use link that lets a device join
    /// without a password.
    #[command(subcommand)]
    Invite(invite::InviteCommand),
    /// Log in to a server and report the transport, TLS version, SASL
    /// mechanism and bound JID. With --cert/--key or --p12 the certificate
    /// is presented and SASL EXTERNAL is preferred; a bare domain logs in
    /// anonymously.
    Login {
        /// The account, user@domain.
        jid: String,
        #[command(flatten)]
        connect: login::ConnectArgs,
    },
    /// Send one chat message.
    Send {
        /// The addressee.
        to: String,
        /// The message text.
        text: String,
        /// The account to send from, user@domain.
        #[arg(long = "as", value_name = "JID", env = "SIGIL_ACCOUNT")]
        account: String,
        #[command(flatten)]
        connect: login::ConnectArgs,
    },
    /// Chat with one contact: the last 20 messages with them come first
    /// from the server's archive (marked "[history TIME]"), then type
    /// lines to send them; messages that arrive are printed, with what
    /// your other devices send to them and receive from them (marked
    /// "(other device)" and "(to other device)"). /quit or end of input
    /// ends it.
    Chat {
        /// The contact.
        peer: String,
        /// The account to chat as, user@domain.
        #[arg(long = "as", value_name = "JID", env = "SIGIL_ACCOUNT")]
        account: String,
        #[command(flatten)]
        connect: login::ConnectArgs,
    },
    /// Make and inspect client certificates.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Make a local certificate authority.
    #[command(subcommand)]
    Ca(CaCommand),
    /// This device and accounts: join one by invitation.
    #[command(subcommand)]
    Device(join::DeviceCommand),
    /// Inspect the SASL layer.
    #[command(subcommand)]
    Sasl(SaslCommand),
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add an account. The password is asked for (or read from
    /// --password-file, or from one line of standard input).
    Add {
        /// The user name, or name@domain.
        jid: String,
        /// Read the password from the first line of this file.
        #[arg(long, value_name = "FILE", conflicts_with = "no_password")]
        password_file: Option<PathBuf>,
        /// No password at all: the account logs in only with a
        /// certificate (`sigil cert new … --register`).
        #[arg(long)]
        no_password: bool,
        /// The configuration file (default: sigil-data/sigil.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Change an account's password; a running server ends the sessions
    /// that logged in with a password (certificate sessions stay).
    Passwd {
        /// The user name, or name@domain.
        jid: String,
        /// Read the password from the first line of this file.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// The configuration file (default: sigil-data/sigil.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Disable an account: no logins, and a running server ends its
    /// sessions at once.
    Disable {
        /// The user name, or name@domain.
        jid: String,
        /// The configuration file (default: sigil-data/sigil.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Enable a disabled account again.
    Enable {
        /// The user name, or name@domain.
        jid: String,
        /// The configuration file (default: sigil-data/sigil.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Delete an account with its roster, offline messages and
    /// certificates; a running server ends its sessions at once. The
    /// certificates it revoked stay revoked if the name is used again.
    Del {
        /// The user name, or name@domain.
        jid: String,
        /// The configuration file (default: sigil-data/sigil.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Add many accounts at once from a file (or standard input): one
    /// `name [password]` per line (no password: a passwordless account;
    /// `#` starts a comment). Accounts that exist are left as they are.
    Import {
        /// The file (default: standard input).
        file: Option<PathBuf>,
        /// The configuration file (default: sigil-data/sigil.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// List the accounts.
    List {
        /// The configuration file (default: sigil-data/sigil.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

/// How `cert new` and `cert renew` make a certificate and its files.
#[derive(Debug, clap::Args)]
struct Making {
    /// Days of validity.
    #[arg(long, default_value_t = DEFAULT_DAYS)]
    days: u32,
    /// The key type.
    #[arg(long, value_enum, default_value_t = Key::P256)]
    key: Key,
    /// Sign with the CA in this directory (ca.crt, ca.key) instead of
    /// self-signing.
    #[arg(long, value_name = "DIR")]
    ca: Option<PathBuf>,
    /// Where to write the files.
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    /// Read the PKCS#12 password from the first line of this file
    /// (default: generate one and print it).
    #[arg(long, value_name = "FILE")]
    p12_password_file: Option<PathBuf>,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

impl Making {
    /// What `cert::new` is asked for: these choices, for `jids`, named
    /// `name`.
    fn request<'a>(
        &'a self,
        jids: &'a [String],
        name: Option<&'a str>,
    ) -> cert::NewCertificate<'a> {
        cert::NewCertificate {
            jids,
            days: self.days,
            key: self.key.into(),
            ca: self.ca.as_deref(),
            out: &self.out,
            name,
            p12_password_file: self.p12_password_file.as_deref(),
            force: self.force,
        }
    }
}

#[derive(Debug, Subcommand)]
enum CertCommand {
    /// Make a client certificate for one or more JIDs: writes NAME.key,
    /// NAME.crt and NAME.p12 (for a browser) and prints the identities and
    /// fingerprint. A full JID (user@domain/resource) pins the resource.
    New {
        /// The JIDs the certificate identifies (id-on-xmppAddr), in order.
        #[arg(required = true, value_name = "JID")]
        jids: Vec<String>,
        /// The file name stem (default: the first JID's local part).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        making: Making,
        /// Also register the certificate with the server (XEP-0257) under
        /// the device name --name (default: the file name), creating the
        /// account without a password if it does not exist.
        #[arg(long)]
        register: bool,
        /// With --register: a session that logs in with this certificate
        /// may list certificates but not change them.
        #[arg(long, requires = "register")]
        no_cert_management: bool,
        /// With --register: the server's configuration file (default:
        /// sigil-data/sigil.toml).
        #[arg(long, value_name = "FILE", requires = "register")]
        config: Option<PathBuf>,
    },
    /// Make a device's next certificate and register it (renewal): it
    /// logs in beside the current one until its first login makes it the
    /// device's. Writes NAME.key, NAME.crt and NAME.p12 as `cert new`
    /// does, for the device to use.
    Renew {
        /// The account (name or name@domain).
        jid: String,
        /// The device whose certificate is renewed.
        device: String,
        /// The file name stem (default: the device name).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        making: Making,
        /// The server's configuration file (default: sigil-data/sigil.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Register an existing certificate (PEM or DER) for an account.
    Import {
        /// The account (name or name@domain).
        jid: String,
        /// The certificate file.
        file: PathBuf,
        /// The device name.
        #[arg(long)]
        name: String,
        /// Sessions that log in with it may not change certificates.
        #[arg(long)]
        no_cert_management: bool,
        /// The configuration file (default: sigil-data/sigil.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// List the certificates registered for an account.
    List {
        /// The account (name or name@domain).
        jid: String,
        /// The configuration file (default: sigil-data/sigil.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Disable a device's certificate: no new logins; live sessions stay.
    Disable {
        /// The account (name or name@domain).
        jid: String,
        /// The device name.
        device: String,
        /// The configuration file (default: sigil-data/sigil.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Enable a disabled device's certificate again.
    Enable {
        /// The account (name or name@domain).
        jid: String,
        /// The device name.
        device: String,
        /// The configuration file (default: sigil-data/sigil.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Revoke a device's certificate for good: it never logs in to the
    /// account again, and a running server ends every session that logged
    /// in with it.
    Revoke {
        /// The account (name or name@domain).
        jid: String,
        /// The device name.
        device: String,
        /// The configuration file (default: sigil-data/sigil.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Forget the revocations of an account's certificates that have
    /// expired (they can never log in again): the account keeps at most
    /// 1,024 revocations and registers no new certificate past that.
    ForgetExpired {
        /// The account (name or name@domain).
        jid: String,
        /// The configuration file (default: sigil-data/sigil.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Trust a CA: its client certificates (with clientAuth and an
    /// xmppAddr naming the account) may log in.
    Trust {
        /// The CA certificate (PEM or DER).
        file: PathBuf,
        /// The name to trust it under (default: the file name).
        #[arg(long)]
        name: Option<String>,
        /// The configuration file (default: sigil-data/sigil.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Stop trusting a CA.
    Untrust {
        /// The name it was trusted under.
        name: String,
        /// The configuration file (default: sigil-data/sigil.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Register a certificate for a new device from a logged-in client
    /// (XEP-0257): the server need not be local.
    Upload {
        /// The certificate file (PEM or DER).
        file: PathBuf,
        /// The device name.
        #[arg(long)]
        name: String,
        /// Sessions that log in with it may not change certificates.
        #[arg(long)]
        no_cert_management: bool,
        /// The account, user@domain.
        #[arg(long = "as", value_name = "JID", env = "SIGIL_ACCOUNT")]
        account: String,
        #[command(flatten)]
        connect: login::ConnectArgs,
    },
    /// List the account's certificates from a logged-in client (XEP-0257).
    RemoteList {
        /// The account, user@domain.
        #[arg(long = "as", value_name = "JID", env = "SIGIL_ACCOUNT")]
        account: String,
        #[command(flatten)]
        connect: login::ConnectArgs,
    },
    /// Disable a device's certificate from a logged-in client (XEP-0257).
    RemoteDisable {
        /// The device name.
        device: String,
        /// The account, user@domain.
        #[arg(long = "as", value_name = "JID", env = "SIGIL_ACCOUNT")]
        account: String,
        #[command(flatten)]
        connect: login::ConnectArgs,
    },
    /// Revoke a device's certificate from a logged-in client (XEP-0257):
    /// its sessions end at once.
    RemoteRevoke {
        /// The device name.
        device: String,
        /// The account, user@domain.
        #[arg(long = "as", value_name = "JID", env = "SIGIL_ACCOUNT")]
        account: String,
        #[command(flatten)]
        connect: login::ConnectArgs,
    },
    /// Print what Sigil reads from a certificate (PEM or DER).
    Show {
        /// The certificate file.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Make a CA: writes DIR/ca.crt and DIR/ca.key.
    New {
        /// The directory (created if missing).
        dir: PathBuf,
        /// The CA's name (its common name).
        #[arg(long, default_value = "Sigil local CA")]
        name: String,
        /// Days of validity.
        #[arg(long, default_value_t = DEFAULT_CA_DAYS)]
        days: u32,
        /// The key type.
        #[arg(long, value_enum, default_value_t = Key::P256)]
        key: Key,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SaslCommand {
    /// List the mechanisms: client priorities, and what the server offers on
    /// each kind of connection.
    Mechanisms,
    /// Derive the SCRAM credentials a server stores for a password (salt,
    /// iteration count, StoredKey, ServerKey; never the password). The
    /// password is read from the first line of standard input.
    Derive {
        /// The SCRAM hash.
        #[arg(long, value_enum, default_value_t = Hash::Sha256)]
        hash: Hash,
        /// The PBKDF2 iteration count (at least 4096).
        #[arg(long, default_value_t = scram::DEFAULT_ITERATIONS)]
        iterations: u32,
        /// The salt, base64 (default: 16 random bytes).
        #[arg(long)]
        salt: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Key {
    P256,
    Rsa2048,
    Rsa4096,
    Ed25519,
}

impl From<Key> for KeyType {
    fn from(key: Key) -> Self {
        match key {
            Key::P256 => Self::P256,
            Key::Rsa2048 => Self::Rsa2048,
            Key::Rsa4096 => Self::Rsa4096,
            Key::Ed25519 => Self::Ed25519,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Hash {
    #[value(name = "sha-1")]
    Sha1,
    #[value(name = "sha-256")]
    Sha256,
    #[value(name = "sha-512")]
    Sha512,
}

impl From<Hash> for Algorithm {
    fn from(hash: Hash) -> Self {
        match hash {
            Hash::Sha1 => Self::Sha1,
            Hash::Sha256 => Self::Sha256,
            Hash::Sha512 => Self::Sha512,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config, domain } => {
            serve::serve(&serve::ConfigLocation::new(config), domain.as_deref())
        }
        Command::Login { jid, connect } => login::login(&jid, &connect),
        Command::Send {
            to,
            text,
            account,
            connect,
        } => login::send(&account, &to, &text, &connect),
        Command::Chat {
            peer,
            account,
            connect,
        } => login::chat(&account, &peer, &connect),
        Command::Cert(CertCommand::Upload {
            file,
            name,
            no_cert_management,
            account,
            connect,
        }) => login::remote(
            &account,
            login::Remote::Upload {
                name: &name,
                file: &file,
                no_cert_management,
            },
            &connect,
        ),
        Command::Cert(CertCommand::RemoteList { account, connect }) => {
            login::remote(&account, login::Remote::List, &connect)
        }
        Command::Cert(CertCommand::RemoteDisable {
            device,
            account,
            connect,
        }) => login::remote(&account, login::Remote::Disable(&device), &connect),
        Command::Cert(CertCommand::RemoteRevoke {
            device,
            account,
            connect,
        }) => login::remote(&account, login::Remote::Revoke(&device), &connect),
        Command::Invite(command) => invite::run(command),
        Command::Check { config } => serve::check(&serve::ConfigLocation::new(Some(config))),
        Command::Cluster(command) => cluster::run(&command),
        Command::Migrate { to, config } => {
            migrate::migrate(&serve::ConfigLocation::new(Some(config)), &to)
        }
        Command::User(command) => {
            let (config, action) = match &command {
                UserCommand::Add {
                    jid,
                    password_file,
                    no_password,
                    config,
                } => (
                    config,
                    serve::UserAction::Add {
                        jid,
                        password_file: password_file.as_deref(),
                        no_password: *no_password,
                    },
                ),
                UserCommand::Passwd {
                    jid,
                    password_file,
                    config,
                } => (
                    config,
                    serve::UserAction::Passwd {
                        jid,
                        password_file: password_file.as_deref(),
                    },
                ),
                UserCommand::Del { jid, config } => (config, serve::UserAction::Delete { jid }),
                UserCommand::Disable { jid, config } => {
                    (config, serve::UserAction::Disable { jid })
                }
                UserCommand::Enable { jid, config } => (config, serve::UserAction::Enable { jid }),
                UserCommand::List { config } => (config, serve::UserAction::List),
                UserCommand::Import { file, config } => (
                    config,
                    serve::UserAction::Import {
                        file: file.as_deref(),
                    },
                ),
            };
            serve::user(&serve::ConfigLocation::new(config.clone()), &action)
        }
        Command::Cert(CertCommand::New {
            jids,
            name,
            making,
            register,
            no_cert_management,
            config,
        }) => cert::new(&making.request(&jids, name.as_deref())).and_then(|(stem, der)| {
            if !register {
                return Ok(());
            }
            devices::run(
                &serve::ConfigLocation::new(config),
                devices::DeviceAction::Register {
                    jid: &jids[0],
                    name: &stem,
                    der,
                    no_cert_management,
                },
            )
        }),
        Command::Cert(CertCommand::Renew {
            jid,
            device,
            name,
            making,
            config,
        }) => {
            let stem = name.unwrap_or_else(|| device.clone());
            devices::run(
                &serve::ConfigLocation::new(config),
                devices::DeviceAction::Renew {
                    jid: &jid,
                    name: &device,
                    make: &|account: &str| {
                        let jids = [account.to_owned()];
                        cert::new(&making.request(&jids, Some(&stem))).map(|(_, der)| der)
                    },
                },
            )
        }
        Command::Cert(CertCommand::Import {
            jid,
            file,
            name,
            no_cert_management,
            config,
        }) => devices::read_certificate(&file).and_then(|der| {
            devices::run(
                &serve::ConfigLocation::new(config),
                devices::DeviceAction::Register {
                    jid: &jid,
                    name: &name,
                    der,
                    no_cert_management,
                },
            )
        }),
        Command::Cert(CertCommand::List { jid, config }) => devices::run(
            &serve::ConfigLocation::new(config),
            devices::DeviceAction::List { jid: &jid },
        ),
        Command::Cert(CertCommand::Disable {
            jid,
            device,
            config,
        }) => devices::run(
            &serve::ConfigLocation::new(config),
            devices::DeviceAction::Disable {
                jid: &jid,
                name: &device,
            },
        ),
        Command::Cert(CertCommand::Enable {
            jid,
            device,
            config,
        }) => devices::run(
            &serve::ConfigLocation::new(config),
            devices::DeviceAction::Enable {
                jid: &jid,
                name: &device,
            },
        ),
        Command::Cert(CertCommand::ForgetExpired { jid, config }) => devices::run(
            &serve::ConfigLocation::new(config),
            devices::DeviceAction::ForgetExpired { jid: &jid },
        ),
        Command::Cert(CertCommand::Revoke {
            jid,
            device,
            config,
        }) => devices::run(
            &serve::ConfigLocation::new(config),
            devices::DeviceAction::Revoke {
                jid: &jid,
                name: &device,
            },
        ),
        Command::Cert(CertCommand::Trust { file, name, config }) => devices::run(
            &serve::ConfigLocation::new(config),
            devices::DeviceAction::Trust {
                file: &file,
                name: name.as_deref(),
            },
        ),
        Command::Cert(CertCommand::Untrust { name, config }) => devices::run(
            &serve::ConfigLocation::new(config),
            devices::DeviceAction::Untrust { name: &name },
        ),
        Command::Cert(CertCommand::Show { file, json }) => cert::show(&file, json),
        Command::Ca(CaCommand::New {
            dir,
            name,
            days,
            key,
            force,
        }) => cert::new_ca(&dir, &name, days, key.into(), force),
        Command::Device(command) => join::run(command),
        Command::Sasl(SaslCommand::Mechanisms) => sasl::mechanisms(&mut io::stdout().lock()),
        Command::Sasl(SaslCommand::Derive {
            hash,
            iterations,
            salt,
        }) => sasl::derive(hash.into(), iterations, salt.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            let _ = writeln!(io::stderr(), "sigil: {message}");
            ExitCode::FAILURE
        }
    }
}
