//! `sigil serve`, `sigil check` and `sigil user …`.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use sigil_sasl::StoredCredentials;
use sigil_server::accounts::{self, AccountError};
use sigil_server::config::ListenerKind;
use sigil_server::{Config, Server};
use sigil_store::StoreError;

/// The configuration file used when none is named.
pub(crate) const DEFAULT_CONFIG: &str = "sigil-data/sigil.toml";

/// Where the configuration is and whether it may be created.
pub(crate) struct ConfigLocation {
    pub(crate) path: PathBuf,
    /// The default location: a first run creates it.
    pub(crate) default: bool,
}

impl ConfigLocation {
    pub(crate) fn new(path: Option<PathBuf>) -> Self {
        match path {
            Some(path) => Self {
                path,
                default: false,
            },
            None => Self {
                path: PathBuf::from(DEFAULT_CONFIG),
                default: true,
            },
        }
    }

    pub(crate) fn base(&self) -> PathBuf {
        match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// Loads the configuration; on a first run at the default location,
/// creates the data directory and a configuration for `domain`.
fn load_or_create(
    location: &ConfigLocation,
    domain: Option<&str>,
    out: &mut impl Write,
) -> Result<Config, String> {
    if location.path.exists() {
        sigil_server::check_not_root_on_others(&location.base())?;
        let config = Config::load(&location.path).map_err(|e| e.to_string())?;
        if let Some(domain) = domain
            && domain != config.domain
        {
            return Err(format!(
                "--domain {domain} differs from the domain {} in {}; edit the file to change it",
                config.domain,
                location.path.display()
            ));
        }
        return Ok(config);
    }
    if !location.default {
        return Err(format!("{} does not exist", location.path.display()));
    }
    let config = Config::new(domain.unwrap_or("localhost"));
    config.validate().map_err(|e| e.to_string())?;
    let base = location.base();
    sigil_server::create_private_dir(&base)?;
    let text = format!(
        "# Sigil configuration. Paths are relative to this file.\n# See README.md for every key.\n\n{}",
        config.to_toml()
    );
    sigil_server::write_new(&location.path, text.as_bytes())?;
    let _ = writeln!(out, "created {}", location.path.display());
    Ok(config)
}

/// The configuration for commands that manage the server's data (created
/// with its directory on first use at the default location).
pub(crate) fn load_config(location: &ConfigLocation) -> Result<Config, String> {
    load_or_create(location, None, &mut io::stdout().lock())
}

fn ensure_certificate(config: &Config, base: &Path, out: &mut impl Write) -> Result<(), String> {
    let (certificate, key) = sigil_server::certificate_paths(config, base);
    // Files the operator named elsewhere are theirs to provide; the
    // default ones (also when named as such) are made on a first run.
    let mut defaults = config.clone();
    defaults.tls = Default::default();
    if (certificate.clone(), key.clone()) != sigil_server::certificate_paths(&defaults, base) {
        return Ok(());
    }
    if sigil_server::tls::ensure_server_certificate(&config.domain, &certificate, &key)? {
        let _ = writeln!(
            out,
            "created a self-signed server certificate for {} in {}",
            config.domain,
            certificate.display()
        );
    }
    Ok(())
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal, never in a log file.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(io::stderr().is_terminal())
        .with_writer(io::stderr)
        .try_init();
}

/// `sigil serve`.
pub(crate) fn serve(location: &ConfigLocation, domain: Option<&str>) -> Result<(), String> {
    let mut out = io::stdout().lock();
    let config = load_or_create(location, domain, &mut out)?;
    init_logging(&config.log.level);
    let base = location.base();
    ensure_certificate(&config, &base, &mut out)?;
    for problem in permission_problems(&config, &base) {
        tracing::warn!("{problem}");
    }
    runtime()?.block_on(async {
        // Before the listeners open: a SIGTERM that arrives while the
        // server starts must stop it cleanly, not kill it.
        let stop = StopSignal::install();
        let server = Server::start(&config, &base)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(address) = server.metrics_address() {
            let _ = writeln!(out, "listening on {address} (metrics: GET /metrics)");
        }
        for (kind, address) in server.addresses() {
            let what = match kind {
                ListenerKind::Starttls => "STARTTLS",
                ListenerKind::DirectTls => "direct TLS",
                ListenerKind::Https => "HTTPS: WebSocket at /xmpp-websocket, BOSH at /http-bind",
                ListenerKind::Component => "XEP-0114 components",
            };
            let _ = writeln!(out, "listening on {address} ({what}) for {}", config.domain);
            if *kind == ListenerKind::Https {
                let host = if address.ip().is_loopback() {
                    "localhost".to_owned()
                } else {
                    config.domain.clone()
                };
                let _ = writeln!(
                    out,
                    "WebSocket URL: wss://{host}:{}/xmpp-websocket",
                    address.port()
                );
                let _ = writeln!(out, "BOSH URL: https://{host}:{}/http-bind", address.port());
                if sigil_server::web_assets(&config, &base).is_some() {
                    let _ = writeln!(
                        out,
                        "web chat: https://{host}:{}/ (certificate login; /password for passwords)",
                        address.port()
                    );
                } else {
                    let _ = writeln!(
                        out,
                        "web chat: Converse.js not found (set [http] web_assets to a checkout's web/converse)"
                    );
                }
            }
        }
        let accounts = server
            .context()
            .store
            .accounts()
            .await
            .map_err(|e| e.to_string())?;
        if accounts.is_empty() {
            let _ = writeln!(
                out,
                "no accounts yet: add one with `sigil user add NAME{}`, or `sigil cert new NAME@{} --register{}` for a certificate login",
                config_flag(location),
                config.domain,
                config_flag(location)
            );
        } else {
            let _ = writeln!(out, "{} account(s)", accounts.len());
        }
        let _ = out.flush();
        drop(out);
        stop.wait_reloading(|| match server.reload() {
            Ok(()) => tracing::info!(
                "SIGHUP: server certificate, trusted CAs and revocation lists read again"
            ),
            Err(error) => tracing::error!(%error, "SIGHUP: the server certificate in use stays"),
        })
        .await;
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "shutting down");
        server.shutdown().await;
        Ok::<(), String>(())
    })
}

fn config_flag(location: &ConfigLocation) -> String {
    if location.default {
        String::new()
    } else {
        format!(" --config {}", location.path.display())
    }
}

/// SIGTERM or Ctrl-C (SIGINT), and SIGHUP (reload), listened for from
/// the moment it is installed.
struct StopSignal {
    #[cfg(unix)]
    signals: Option<(
        tokio::signal::unix::Signal,
        tokio::signal::unix::Signal,
        tokio::signal::unix::Signal,
    )>,
}

impl StopSignal {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signals = signal(SignalKind::terminate())
                .and_then(|terminate| {
                    Ok((
                        terminate,
                        signal(SignalKind::interrupt())?,
                        signal(SignalKind::hangup())?,
                    ))
                })
                .ok();
            Self { signals }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Waits for a stop, calling `reload` at every SIGHUP meanwhile.
    async fn wait_reloading(self, reload: impl Fn()) {
        #[cfg(unix)]
        if let Some((mut terminate, mut interrupt, mut hangup)) = self.signals {
            loop {
                tokio::select! {
                    _ = terminate.recv() => return,
                    _ = interrupt.recv() => return,
                    _ = hangup.recv() => reload(),
                }
            }
        }
        #[cfg(not(unix))]
        let _ = reload;
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `sigil check`.
/// What is wrong with the permissions of the server's files (the key is
/// restricted on the way).
fn permission_problems(config: &Config, base: &Path) -> Vec<String> {
    let (_, key) = sigil_server::certificate_paths(config, base);
    let trusted = base.join(&config.auth.trusted_cas);
    let crls = base.join(&config.auth.crls);
    sigil_server::check_permissions(base, &key, &[&trusted, &crls])
}

pub(crate) fn check(location: &ConfigLocation) -> Result<(), String> {
    sigil_server::check_not_root_on_others(&location.base())?;
    let config = Config::load(&location.path).map_err(|e| e.to_string())?;
    let base = location.base();
    let mut out = io::stdout().lock();
    let (certificate, key) = sigil_server::certificate_paths(&config, &base);
    sigil_server::tls::ServerIdentity::load(&certificate, &key)?;
    runtime()?.block_on(async {
        let store = sigil_server::open_store(&config.storage, &base)
            .await
            .map_err(|e| e.to_string())?;
        let accounts = sigil_store::AccountStore::accounts(&*store)
            .await
            .map_err(|e| e.to_string())?;
        let _ = writeln!(out, "{}: OK", location.path.display());
        let _ = writeln!(out, "domain: {}", config.domain);
        for listener in &config.listeners {
            let _ = writeln!(
                out,
                "listener: kind = \"{}\", address = \"{}\", client_certificates = \"{}\"",
                listener.kind.as_str(),
                listener.address,
                listener.client_certificates.as_str()
            );
        }
        let _ = writeln!(out, "certificate: {}", certificate.display());
        let _ = writeln!(out, "accounts: {}", accounts.len());
        if !config.admin.jids.is_empty() {
            let _ = writeln!(out, "admins: {}", config.admin.jids.join(", "));
        }
        for problem in permission_problems(&config, &base) {
            let _ = writeln!(out, "warning: {problem}");
        }
        store.close().await;
        Ok(())
    })
}

/// Asks a running server to end the sessions that a change to the
/// account took the right from, and says what happened.
async fn end_sessions(
    socket: &Path,
    jid: &jid::BareJid,
    end: sigil_server::control::End,
    out: &mut impl Write,
) {
    match sigil_server::control::request_end(socket, jid.as_str(), end).await {
        Some(closed) => {
            let _ = writeln!(out, "the running server ended {closed} session(s) of {jid}");
        }
        None => {
            let _ = writeln!(
                out,
                "no running server answered on {}; the change applies from the next login",
                socket.display()
            );
        }
    }
}

/// What `sigil user` does.
pub(crate) enum UserAction<'a> {
    Add {
        jid: &'a str,
        password_file: Option<&'a Path>,
        no_password: bool,
    },
    Passwd {
        jid: &'a str,
        password_file: Option<&'a Path>,
    },
    Delete {
        jid: &'a str,
    },
    Disable {
        jid: &'a str,
    },
    Enable {
        jid: &'a str,
    },
    List,
    /// Many accounts at once: `name [password]` per line of the file (or
    /// of standard input); no password makes a passwordless account.
    Import {
        file: Option<&'a Path>,
    },
}

/// `sigil user …`.
pub(crate) fn user(location: &ConfigLocation, action: &UserAction<'_>) -> Result<(), String> {
    let mut out = io::stdout().lock();
    let config = load_or_create(location, None, &mut out)?;
    let base = location.base();
    runtime()?.block_on(async {
        let store = sigil_server::open_store(&config.storage, &base)
            .await
            .map_err(|e| e.to_string())?;
        let socket = base.join(&config.auth.control_socket);
        let result = run_user(&*store, &config, &socket, action, &mut out).await;
        store.close().await;
        result
    })
}

async fn run_user(
    store: &dyn sigil_store::Store,
    config: &Config,
    socket: &Path,
    action: &UserAction<'_>,
    out: &mut impl Write,
) -> Result<(), String> {
    use sigil_server::control::End;
    match action {
        UserAction::Add {
            jid,
            password_file,
            no_password,
        } => {
            let jid = account(jid, &config.domain)?;
            // A passwordless account logs in only with a registered or
            // CA-signed certificate (SASL EXTERNAL).
            let credentials = if *no_password {
                Vec::new()
            } else {
                credentials(&password(*password_file, true)?)?
            };
            match accounts::add(store, &jid, &credentials).await {
                Ok(()) => {
                    let _ = writeln!(out, "added {jid}");
                    Ok(())
                }
                Err(AccountError::Exists) => Err(format!(
                    "{jid} exists; use `sigil user passwd` to change its password"
                )),
                Err(e) => Err(e.to_string()),
            }
        }
        UserAction::Passwd { jid, password_file } => {
            let jid = account(jid, &config.domain)?;
            let password = password(*password_file, true)?;
            let credentials = credentials(&password)?;
            match store.set_credentials(jid.as_str(), &credentials).await {
                Ok(()) => {
                    let _ = writeln!(out, "changed the password of {jid}");
                    end_sessions(socket, &jid, End::Password, out).await;
                    Ok(())
                }
                Err(StoreError::NotFound) => Err(format!("{jid} does not exist")),
                Err(e) => Err(e.to_string()),
            }
        }
        UserAction::Delete { jid } => {
            let jid = account(jid, &config.domain)?;
            match accounts::delete(store, &jid).await {
                Ok(()) => {
                    let _ = writeln!(out, "deleted {jid}");
                    end_sessions(socket, &jid, End::Deleted, out).await;
                    Ok(())
                }
                Err(AccountError::NotFound) => Err(format!("{jid} does not exist")),
                Err(e) => Err(e.to_string()),
            }
        }
        UserAction::Disable { jid } | UserAction::Enable { jid } => {
            let jid = account(jid, &config.domain)?;
            let disable = matches!(action, UserAction::Disable { .. });
            match accounts::set_disabled(store, &jid, disable).await {
                Ok(()) if disable => {
                    let _ = writeln!(out, "disabled {jid}: it cannot log in");
                    end_sessions(socket, &jid, End::Disabled, out).await;
                    Ok(())
                }
                Ok(()) => {
                    let _ = writeln!(out, "enabled {jid}");
                    Ok(())
                }
                Err(AccountError::NotFound) => Err(format!("{jid} does not exist")),
                Err(e) => Err(e.to_string()),
            }
        }
        UserAction::Import { file } => {
            let text = match file {
                Some(file) => std::fs::read_to_string(file)
                    .map_err(|e| format!("cannot read {}: {e}", file.display()))?,
                None => io::read_to_string(io::stdin())
                    .map_err(|e| format!("cannot read standard input: {e}"))?,
            };
            let (mut added, mut existed) = (0usize, 0usize);
            for (number, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (name, password) = match line.split_once(char::is_whitespace) {
                    Some((name, password)) => (name, password.trim()),
                    None => (line, ""),
                };
                let jid = account(name, &config.domain)
                    .map_err(|e| format!("line {}: {e}", number + 1))?;
                let credentials = if password.is_empty() {
                    Vec::new()
                } else {
                    credentials(password)?
                };
                match accounts::add(store, &jid, &credentials).await {
                    Ok(()) => added += 1,
                    Err(AccountError::Exists) => existed += 1,
                    Err(e) => return Err(format!("line {}: {e}", number + 1)),
                }
            }
            let _ = writeln!(out, "added {added} accounts ({existed} existed already)");
            Ok(())
        }
        UserAction::List => {
            for jid in store.accounts().await.map_err(|e| e.to_string())? {
                let _ = writeln!(out, "{jid}");
            }
            Ok(())
        }
    }
}

/// `name` or `name@domain` → the account's bare JID, normalised.
pub(crate) fn account(text: &str, domain: &str) -> Result<jid::BareJid, String> {
    accounts::account(text, domain).map_err(|e| e.to_string())
}

fn credentials(password: &str) -> Result<Vec<StoredCredentials>, String> {
    accounts::credentials(password).map_err(|e| e.to_string())
}

/// The password: from the file's first line, or asked for twice at the
/// terminal (or read from one line of standard input when it is not one).
fn password(file: Option<&Path>, confirm: bool) -> Result<String, String> {
    let password = match file {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read the password file {}: {e}", file.display()))?;
            text.lines()
                .next()
                .unwrap_or_default()
                .trim_end_matches('\r')
                .to_owned()
        }
        None if io::stdin().is_terminal() => {
            let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
            if confirm {
                let second = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
                if first != second {
                    return Err("the passwords differ".into());
                }
            }
            first
        }
        None => {
            let mut line = String::new();
            io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| e.to_string())?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    Ok(password)
}
