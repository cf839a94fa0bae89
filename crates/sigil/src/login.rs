//! The client commands: `sigil login`, `sigil send`, `sigil chat`, and
//! `sigil cert upload|remote-list|remote-disable|remote-revoke` (XEP-0257
//! from a logged-in client), and `sigil device add` (an invitation for a
//! new device, by ad-hoc command).

use std::collections::HashSet;
use std::io::{self, BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use sigil_client::renew::Renewal;
use sigil_client::{
    ArchiveQuery, Carbon, CarbonDirection, Client, Incoming, Message, Order, Presence, Stanza,
    Transport, saslcert,
};
use sigil_proto::sid::StanzaId;
use sigil_sasl::client::{AllowList, ClientConfig};

/// How to reach and log in to a server: shared by every client command.
#[derive(Debug, clap::Args)]
pub(crate) struct ConnectArgs {
    /// The server's address (default: DNS SRV for the account's domain,
    /// then the domain itself on port 5222, or 5223 with --direct-tls; for
    /// --websocket/--bosh the URL's host). Give it again for the other
    /// nodes of a cluster: they are tried in order, on every connection.
    #[arg(long)]
    pub(crate) address: Vec<SocketAddr>,
    /// The DNS server for SRV lookups (default: /etc/resolv.conf's).
    #[arg(long, value_name = "ADDRESS:PORT")]
    pub(crate) dns_server: Option<SocketAddr>,
    /// TLS from the first byte (XEP-0368) instead of STARTTLS.
    #[arg(long, conflicts_with_all = ["websocket", "bosh"])]
    pub(crate) direct_tls: bool,
    /// Connect over WebSocket to this URL (wss://host:port/xmpp-websocket).
    #[arg(long, value_name = "URL", conflicts_with = "bosh")]
    pub(crate) websocket: Option<String>,
    /// Connect over BOSH to this URL (https://host:port/http-bind).
    #[arg(long, value_name = "URL")]
    pub(crate) bosh: Option<String>,
    /// Read the password from the first line of this file (default: ask,
    /// when no certificate is given and a terminal is there).
    #[arg(long, value_name = "FILE")]
    pub(crate) password_file: Option<PathBuf>,
    /// Client certificate (PEM).
    #[arg(long, value_name = "FILE", requires = "key", conflicts_with = "p12")]
    pub(crate) cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub(crate) key: Option<PathBuf>,
    /// Do not renew the --cert certificate when less than a third of its
    /// validity is left (by default it is renewed, and --cert and --key
    /// are rewritten with the new one).
    #[arg(long)]
    pub(crate) no_renew: bool,
    /// Client certificate and key as PKCS#12 (.p12).
    #[arg(long, value_name = "FILE")]
    pub(crate) p12: Option<PathBuf>,
    /// The .p12 password, from the first line of this file (default: ask).
    #[arg(long, value_name = "FILE", requires = "p12")]
    pub(crate) p12_password_file: Option<PathBuf>,
    /// Trust the server certificates signed by this CA (or this
    /// self-signed certificate), PEM. Default: sigil-data/server.crt if
    /// it is here, else the system's trusted roots.
    #[arg(long, value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,
    /// Accept exactly the server certificate with this SHA-256
    /// fingerprint (hex).
    #[arg(long, value_name = "SHA256", conflicts_with = "ca")]
    pub(crate) pin: Option<String>,
    /// Allow only these SASL mechanisms (repeatable).
    #[arg(long = "mechanism", value_name = "NAME")]
    pub(crate) mechanisms: Vec<String>,
    /// The resource to ask for (default: the server makes one; with
    /// SASL2 it binds by Bind 2).
    #[arg(long)]
    pub(crate) resource: Option<String>,
    /// Log in by SASL 1 even where the server offers SASL2 (XEP-0388).
    #[arg(long)]
    pub(crate) sasl1: bool,
}

/// How the server's certificate is checked.
enum ServerTrust {
    /// Exactly the certificate with this SHA-256 fingerprint.
    Pin([u8; 32]),
    /// Certificates this CA (or self-signed certificate), PEM, signed.
    Ca(Vec<u8>),
    /// The system's trusted roots.
    System,
}

impl ConnectArgs {
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

    /// How to check the server.
    fn trust(&self) -> Result<ServerTrust, String> {
        match (&self.pin, &self.ca) {
            (Some(pin), _) => Ok(ServerTrust::Pin(parse_pin(pin)?)),
            (None, Some(ca)) => Ok(ServerTrust::Ca(read(ca)?)),
            (None, None) => {
                let default = Path::new("sigil-data/server.crt");
                match default.exists() {
                    true => Ok(ServerTrust::Ca(read(default)?)),
                    false => Ok(ServerTrust::System),
                }
            }
        }
    }

    /// How to reach and check the server, and the options of the
    /// session; no credentials.
    fn base(&self, jid: &str, trust: &ServerTrust) -> sigil_client::ClientBuilder {
        // XEP-0198 where the server offers it: `send` knows the server
        // took the message, `chat` resumes its session after a drop.
        let mut builder = Client::builder(jid)
            .transport(self.transport())
            .stream_management(true);
        if let Some(url) = self.websocket.as_ref().or(self.bosh.as_ref()) {
            builder = builder.url(url.clone());
        }
        builder = builder.addresses(self.address.iter().copied());
        if let Some(server) = self.dns_server {
            builder = builder.dns_server(server);
        }
        match trust {
            ServerTrust::Pin(pin) => builder = builder.pin_sha256(*pin),
            ServerTrust::Ca(ca) => builder = builder.trust_pem(ca),
            ServerTrust::System => {}
        }
        if !self.mechanisms.is_empty() {
            let allow = self
                .mechanisms
                .iter()
                .fold(AllowList::new(), |list, name| list.name(name.clone()));
            builder = builder.sasl(ClientConfig::new().allow(allow));
        }
        if let Some(resource) = &self.resource {
            builder = builder.resource(resource.clone());
        }
        builder.sasl2(!self.sasl1)
    }

    fn builder(&self, jid: &str) -> Result<sigil_client::ClientBuilder, String> {
        let mut builder = self.base(jid, &self.trust()?);
        let mut has_certificate = false;
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            builder = builder.client_certificate_pem(&read(cert)?, &read(key)?);
            has_certificate = true;
        }
        if let Some(p12) = &self.p12 {
            let password = match &self.p12_password_file {
                Some(file) => first_line(file)?,
                None => prompt(&format!("Password for {}: ", p12.display()))?,
            };
            builder = builder.client_certificate_p12(&read(p12)?, &password);
            has_certificate = true;
        }
        let is_anonymous = !jid.contains('@');
        match &self.password_file {
            Some(file) => builder = builder.password(first_line(file)?),
            None if !has_certificate && !is_anonymous && io::stdin().is_terminal() => {
                builder = builder.password(prompt(&format!("Password for {jid}: "))?);
            }
            None => {}
        }
        Ok(builder)
    }

    /// Connects with the --cert certificate, renewing it first when it
    /// is due (or `always`): the new one is written over --cert and
    /// --key ([`replace_credentials`]), then logged in with. A lock file
    /// beside the key keeps two commands from renewing at once; each
    /// reads the files once it holds it.
    async fn connect_renewing(
        &self,
        jid: &str,
        (cert, key): (&Path, &Path),
        always: bool,
    ) -> Result<(Client, Renewal), sigil_client::Error> {
        let config = sigil_client::Error::Config;
        let same = match (std::fs::canonicalize(cert), std::fs::canonicalize(key)) {
            (Ok(cert), Ok(key)) => cert == key,
            _ => false,
        };
        if same {
            return Err(config(
                "--cert and --key are one file: give the certificate and the key in two".into(),
            ));
        }
        let _lock = lock_beside(key).map_err(config)?;
        let trust = self.trust().map_err(config)?;
        let certificate_pem = read(cert).map_err(config)?;
        let key_pem = read(key).map_err(config)?;
        let options = sigil_client::renew::RenewOptions {
            always,
            ..Default::default()
        };
        sigil_client::renew::connect_renewing(
            || self.base(jid, &trust),
            &certificate_pem,
            &key_pem,
            &options,
            |renewed| replace_credentials(cert, key, renewed),
        )
        .await
    }

    /// Connects on a new runtime and runs `then` with the client.
    fn run<F>(&self, jid: &str, then: F) -> Result<(), String>
    where
        F: AsyncFnOnce(&mut Client) -> Result<(), String>,
    {
        let renewing = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) if !self.no_renew => Some((cert.as_path(), key.as_path())),
            _ => None,
        };
        let builder = match renewing {
            Some(_) => None,
            None => Some(self.builder(jid)?),
        };
        let runtime = crate::serve::runtime()?;
        runtime.block_on(async {
            let connected = match (builder, renewing) {
                (Some(builder), _) => builder.connect().await,
                (None, Some(files)) => {
                    self.connect_renewing(jid, files, false)
                        .await
                        .map(|(client, renewal)| {
                            report(&renewal, files);
                            client
                        })
                }
                (None, None) => Err(sigil_client::Error::Config(
                    "nothing to connect with".into(),
                )),
            };
            let mut client = connected.map_err(|e| self.connect_error(e))?;
            let result = then(&mut client).await;
            client.close().await;
            result
        })
    }
}

impl ConnectArgs {
    fn connect_error(&self, e: sigil_client::Error) -> String {
        match e {
            sigil_client::Error::Tls(_) if self.ca.is_none() && self.pin.is_none() => {
                format!("{e}\n(say how to check the server: --ca FILE or --pin SHA256)")
            }
            e => e.to_string(),
        }
    }
}

/// Holds an exclusive lock on `.KEY.lock` beside `key` (made private)
/// until dropped.
fn lock_beside(key: &Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = key
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = key.with_file_name(format!(".{name}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot open the lock file {}: {e}", path.display()))?;
    file.lock()
        .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
    Ok(file)
}

/// Puts the renewed certificate and key in place of `cert` and `key`:
/// both are written in full beside them first (nothing is replaced if
/// that fails), and the old key stays as `KEY.old` until both are in
/// place, so that a failure in between puts it back.
fn replace_credentials(
    cert: &Path,
    key: &Path,
    renewed: &sigil_client::renew::Renewed,
) -> Result<(), String> {
    let beside = |path: &Path, suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let (new_key, new_cert, old_key) = (
        beside(key, ".new"),
        beside(cert, ".new"),
        beside(key, ".old"),
    );
    let cleanup = || {
        let _ = std::fs::remove_file(&new_key);
        let _ = std::fs::remove_file(&new_cert);
    };
    let written =
        crate::cert::write_file(&new_key, renewed.key_pem.as_bytes(), true).and_then(|()| {
            crate::cert::write_file(&new_cert, renewed.certificate_pem.as_bytes(), false)
        });
    if let Err(error) = written {
        cleanup();
        return Err(error);
    }
    let _ = std::fs::remove_file(&old_key);
    if let Err(error) = std::fs::hard_link(key, &old_key) {
        cleanup();
        return Err(format!(
            "cannot keep {} as {}: {error}",
            key.display(),
            old_key.display()
        ));
    }
    if let Err(error) = std::fs::rename(&new_key, key) {
        cleanup();
        let _ = std::fs::remove_file(&old_key);
        return Err(format!("cannot replace {}: {error}", key.display()));
    }
    if let Err(error) = std::fs::rename(&new_cert, cert) {
        // The old pair again: it still logs in.
        let _ = std::fs::rename(&old_key, key);
        cleanup();
        return Err(format!("cannot replace {}: {error}", cert.display()));
    }
    let _ = std::fs::remove_file(&old_key);
    Ok(())
}

/// Tells what renewal did, on standard error (standard output is the
/// command's own).
fn report(renewal: &Renewal, (cert, key): (&Path, &Path)) {
    let say = |line: &str| {
        let _ = writeln!(io::stderr().lock(), "{line}");
    };
    match renewal {
        Renewal::NotDue => {}
        Renewal::Renewed(renewed) => say(&format!(
            "renewed this device's certificate{}: {} and {} now hold the new one, valid until {}",
            if renewed.signed {
                " (signed by the server's CA)"
            } else {
                ""
            },
            cert.display(),
            key.display(),
            crate::cert::rfc3339(renewed.not_after)
        )),
        Renewal::Failed(error) => say(&format!(
            "this device's certificate is due for renewal, which failed ({error}); the current one still works"
        )),
    }
}

/// `sigil device renew`: renews the --cert certificate now.
pub(crate) fn renew_device(account: &str, args: &ConnectArgs) -> Result<(), String> {
    let (Some(cert), Some(key)) = (&args.cert, &args.key) else {
        return Err("give the device's certificate and key: --cert FILE --key FILE".into());
    };
    let files = (cert.as_path(), key.as_path());
    let runtime = crate::serve::runtime()?;
    runtime.block_on(async {
        let (client, renewal) = args
            .connect_renewing(account, files, true)
            .await
            .map_err(|e| args.connect_error(e))?;
        client.close().await;
        match renewal {
            Renewal::Renewed(renewed) => {
                let _ = writeln!(
                    io::stdout().lock(),
                    "renewed: {} and {} hold the new certificate{}, valid until {}; it logged in, so the old one no longer does",
                    cert.display(),
                    key.display(),
                    if renewed.signed { " (signed by the server's CA)" } else { "" },
                    crate::cert::rfc3339(renewed.not_after)
                );
                Ok(())
            }
            Renewal::Failed(error) => Err(format!("renewal failed: {error}")),
            Renewal::NotDue => Err("renewal was not done".into()),
        }
    })
}

/// `sigil login`: connect, authenticate, bind, report, disconnect.
pub(crate) fn login(jid: &str, args: &ConnectArgs) -> Result<(), String> {
    args.run(jid, async |client| {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "transport: {}", client.transport().as_str());
        let _ = writeln!(out, "TLS: {}", client.tls_version());
        let _ = writeln!(out, "mechanism: {}", client.mechanism());
        let _ = writeln!(out, "path: {}", client.login_path());
        let _ = writeln!(out, "bound: {}", client.jid());
        Ok(())
    })
}

fn parse_jid(text: &str) -> Result<jid::Jid, String> {
    jid::Jid::new(text).map_err(|e| format!("{text:?} is not a JID: {e}"))
}

/// `sigil send`: one chat message, then disconnect.
pub(crate) fn send(account: &str, to: &str, text: &str, args: &ConnectArgs) -> Result<(), String> {
    let to = parse_jid(to)?;
    if text.is_empty() {
        return Err("the message is empty".into());
    }
    args.run(account, async |client| {
        client
            .send_message(&Message::chat(to.clone(), text))
            .await
            .map_err(|e| e.to_string())?;
        // With stream management, "sent" means the server has it (stored
        // or delivered); without, that it was written. A confirmation can
        // wait for a recipient whose connection dropped (until it resumes
        // or its session ends): the message is on its way meanwhile.
        match client.wait_acknowledged(ACK_WAIT).await {
            Ok(()) => {
                let _ = writeln!(io::stdout().lock(), "sent to {to}");
            }
            Err(sigil_client::Error::Timeout) => {
                let _ = writeln!(
                    io::stdout().lock(),
                    "sent to {to} (not yet confirmed by the server)"
                );
            }
            Err(error) => return Err(format!("the server did not confirm the message: {error}")),
        }
        Ok(())
    })
}

/// How long `sigil send` waits for the server to confirm a message.
const ACK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// After a connection ended for a reason that may pass (the network, a
/// server restart): reconnects, resuming the session where the server
/// still has it, else binding anew and becoming available again.
async fn recover(client: &mut Client, error: sigil_client::Error) -> Result<(), String> {
    if !error.is_transient() {
        return Err(format!("the connection ended: {error}"));
    }
    say(&format!("connection lost ({error}); reconnecting"));
    client
        .reconnect(sigil_client::Backoff::default())
        .await
        .map_err(|e| format!("could not reconnect: {e}"))?;
    if client.resumed() {
        say("reconnected: the session resumed");
    } else {
        client
            .send_presence(&Presence::available())
            .await
            .map_err(|e| e.to_string())?;
        say(&format!("reconnected as {}", client.jid()));
    }
    Ok(())
}

/// How many messages of the conversation `sigil chat` shows when it opens.
const HISTORY: usize = 20;

/// `sigil chat`: shows the end of the conversation with `peer` from the
/// archive, then lines typed go to `peer` and messages that arrive are
/// printed, with what the account's other devices send to and receive
/// from `peer` (carbons). `/quit` or end of input ends it. A connection
/// lost to the network or a server restart is taken up again.
pub(crate) fn chat(account: &str, peer: &str, args: &ConnectArgs) -> Result<(), String> {
    let peer = parse_jid(peer)?;
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    // Standard input is read on its own thread: it blocks.
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    args.run(account, async |client| {
        say(&format!(
            "logged in as {} ({}, {}); talking to {peer}. /quit ends.",
            client.jid(),
            client.transport().as_str(),
            client.mechanism()
        ));
        let mut conversation = Conversation::new(client, &peer);
        // Before the presence, which brings what was stored meanwhile
        // (also in the archive, and then shown once).
        conversation.history(client).await?;
        match client.enable_carbons().await {
            Ok(()) => {}
            Err(sigil_client::Error::Iq(_)) => {
                say("(the server does not copy what your other devices send and receive)");
            }
            Err(error) => return Err(error.to_string()),
        }
        client
            .send_presence(&Presence::available())
            .await
            .map_err(|e| e.to_string())?;
        loop {
            loop {
                match client.try_recv().await {
                    Ok(Some(element)) => {
                        if let Some(incoming) = client.incoming(element) {
                            conversation.show(incoming);
                        }
                    }
                    Ok(None) => break,
                    Err(error) => recover(client, error).await?,
                }
            }
            tokio::select! {
                line = lines.recv() => {
                    let Some(line) = line else { return Ok(()) };
                    let line = line.trim_end_matches('\r');
                    if line == "/quit" {
                        return Ok(());
                    }
                    if line.is_empty() {
                        continue;
                    }
                    let mut message = Message::chat(peer.clone(), line);
                    // Its id is its origin id: a copy sent again after a
                    // reconnection is known as the same message.
                    message.id = sigil_client::random_id();
                    let before = client.unacknowledged();
                    if let Err(error) = client.send_message(&message).await {
                        // Sent once connected again: by the reconnection
                        // itself if it was queued for acknowledgement.
                        let queued = client.unacknowledged() > before;
                        recover(client, error).await?;
                        if !queued {
                            client.send_message(&message).await.map_err(|e| e.to_string())?;
                        }
                    }
                }
                ready = client.readable() => {
                    if let Err(error) = ready {
                        recover(client, error).await?;
                    }
                }
            }
        }
    })
}

fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// What `sigil chat` shows of one conversation.
struct Conversation {
    own: jid::BareJid,
    peer: jid::BareJid,
    /// The archive ids of the messages shown as history: the same
    /// messages delivered afterwards (stored while the account was away)
    /// are not shown twice.
    shown: HashSet<String>,
}

impl Conversation {
    fn new(client: &Client, peer: &jid::Jid) -> Self {
        Self {
            own: client.full_jid().to_bare(),
            peer: peer.to_bare(),
            shown: HashSet::new(),
        }
    }

    /// The last messages of the conversation from the archive, oldest
    /// first, each with its time. A server without an archive shows none.
    async fn history(&mut self, client: &mut Client) -> Result<(), String> {
        let query = ArchiveQuery::new(HISTORY)
            .with(jid::Jid::from(self.peer.clone()))
            .order(Order::NewestFirst);
        let page = match client.archive(query).next_page(client).await {
            Ok(Some(page)) => page,
            Ok(None) | Err(sigil_client::Error::Iq(_)) => return Ok(()),
            Err(error) => return Err(format!("cannot read the history: {error}")),
        };
        for archived in page.messages {
            let Some(body) = &archived.message.body else {
                continue;
            };
            say(&format!(
                "[history {}] <{}> {body}",
                time(&archived.stamp),
                bare(archived.message.from.as_ref())
            ));
            self.shown.insert(archived.id);
        }
        Ok(())
    }

    fn show(&self, incoming: Incoming) {
        match incoming {
            Incoming::Stanza(Stanza::Message(message)) => {
                if self.was_shown(&message) {
                    return;
                }
                let from = bare(message.from.as_ref());
                if let Some(body) = message.body {
                    say(&format!("<{from}> {body}"));
                } else if message.kind == sigil_client::MessageType::Error {
                    say(&format!("! message to {from} failed"));
                }
            }
            Incoming::Stanza(Stanza::Presence(presence)) => {
                if let Some(from) = presence.from {
                    let state = match presence.kind {
                        sigil_client::PresenceType::Available => {
                            presence.show.clone().unwrap_or_else(|| "online".into())
                        }
                        sigil_client::PresenceType::Unavailable => "offline".into(),
                        other => format!("{other:?}").to_lowercase(),
                    };
                    say(&format!("* {from} is {state}"));
                }
            }
            // What another device of the account sent to or received from
            // the peer.
            Incoming::Carbon(Carbon { direction, message }) => {
                let Some(body) = message.body else { return };
                let (other, line) = match direction {
                    CarbonDirection::Sent => (
                        message.to.as_ref(),
                        format!("<{}> (other device) {body}", self.own),
                    ),
                    CarbonDirection::Received => (
                        message.from.as_ref(),
                        format!("<{}> (to other device) {body}", self.peer),
                    ),
                };
                if other.is_some_and(|jid| jid.to_bare() == self.peer) {
                    say(&line);
                }
            }
            Incoming::Stanza(Stanza::Iq(_)) => {}
        }
    }

    /// Whether `message` is one shown as history (known by the id the
    /// account's archive gave it).
    fn was_shown(&self, message: &Message) -> bool {
        let Some(element) = &message.element else {
            return false;
        };
        StanzaId::all_of(element)
            .any(|id| id.by.to_bare() == self.own && self.shown.contains(&id.id))
    }
}

fn bare(jid: Option<&jid::Jid>) -> String {
    jid.map(|j| j.to_bare().to_string()).unwrap_or_default()
}

/// An XEP-0082 time as `2024-05-01 12:00:00 UTC` when it is one in UTC,
/// else as it is.
fn time(stamp: &str) -> String {
    match (stamp.get(..10), stamp.get(11..19)) {
        (Some(date), Some(clock)) if stamp.ends_with('Z') && stamp.get(10..11) == Some("T") => {
            format!("{date} {clock} UTC")
        }
        _ => stamp.to_owned(),
    }
}

/// What `sigil cert upload|remote-*` does on the server.
pub(crate) enum Remote<'a> {
    Upload {
        name: &'a str,
        file: &'a Path,
        no_cert_management: bool,
    },
    List,
    Disable(&'a str),
    Revoke(&'a str),
}

/// XEP-0257 from a logged-in client.
pub(crate) fn remote(account: &str, action: Remote<'_>, args: &ConnectArgs) -> Result<(), String> {
    let der = match &action {
        Remote::Upload { file, .. } => Some(crate::devices::read_certificate(file)?),
        _ => None,
    };
    args.run(account, async |client| {
        let result = match action {
            Remote::Upload {
                name,
                no_cert_management,
                ..
            } => {
                let der = der.unwrap_or_default();
                saslcert::append(client, name, &der, no_cert_management)
                    .await
                    .map(|()| format!("registered {name} for {}", client.full_jid().to_bare()))
            }
            Remote::List => saslcert::list(client).await.map(|items| {
                if items.is_empty() {
                    return "no certificates".into();
                }
                items
                    .iter()
                    .map(|item| {
                        let fingerprint = sigil_x509::CertificateInfo::from_der(&item.der)
                            .map(|info| hex(&info.sha256))
                            .unwrap_or_else(|_| "(unreadable)".into());
                        let mut line = format!("{}  sha256:{fingerprint}", item.name);
                        if item.disabled {
                            line.push_str("  disabled");
                        }
                        if item.no_cert_management {
                            line.push_str("  no-cert-management");
                        }
                        if !item.resources.is_empty() {
                            line.push_str("  online: ");
                            line.push_str(&item.resources.join(", "));
                        }
                        line
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            }),
            Remote::Disable(name) => saslcert::disable(client, name)
                .await
                .map(|()| format!("disabled {name}")),
            Remote::Revoke(name) => saslcert::revoke(client, name)
                .await
                .map(|()| format!("revoked {name}")),
        };
        let text = result.map_err(|e| e.to_string())?;
        let _ = writeln!(io::stdout().lock(), "{text}");
        Ok(())
    })
}

/// `sigil device add`: the server's "Add a device" command, run from a
/// logged-in client, and the invitation it makes, printed.
pub(crate) fn add_device(
    account: &str,
    name: Option<&str>,
    args: &ConnectArgs,
) -> Result<(), String> {
    use sigil_client::commands::{self, Action, DataForm, Field, FieldType, FormType, NoteType};
    use std::fmt::Write as _;
    const NODE: &str = "urn:sigil:devices#add";
    args.run(account, async |client| {
        let server = jid::Jid::new(client.full_jid().domain().as_str())
            .map_err(|e| format!("the server's address: {e}"))?;
        let refused = |e: sigil_client::Error| match &e {
            sigil_client::Error::Iq(error)
                if error.condition == sigil_proto::error::StanzaCondition::Forbidden =>
            {
                "the server refused: this device may not manage devices, or invitations are off"
                    .to_owned()
            }
            _ => format!("adding a device failed: {e}"),
        };
        let stage = commands::execute(client, &server, NODE)
            .await
            .map_err(refused)?;
        let mut form = DataForm::typed(FormType::Submit, "urn:sigil:devices");
        form.fields
            .push(Field::new("name", FieldType::TextSingle).value(name.unwrap_or_default()));
        let done = commands::submit(client, &server, &stage, Action::Complete, form)
            .await
            .map_err(refused)?;
        if let Some(error) = done.notes.iter().find(|note| note.kind == NoteType::Error) {
            return Err(error.text.clone());
        }
        let form = done
            .form
            .ok_or("the server answered without an invitation")?;
        let uri = form
            .value("uri")
            .ok_or("the server answered without an invitation")?;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "invitation for a new device of {} (once, until {})",
            client.full_jid().to_bare(),
            form.value("expires").unwrap_or("?")
        );
        let _ = writeln!(out, "uri: {uri}");
        if let Some(page) = form.value("page") {
            let _ = writeln!(out, "page: {page}");
        }
        if let Some(command) = form.value("command") {
            let _ = writeln!(out, "join with Sigil: {command}");
        }
        if let Some(id) = form.value("id") {
            let _ = writeln!(out, "id: {id}");
        }
        if let Some(code) = sigil_server::invites::qr::terminal(uri) {
            let _ = writeln!(out);
            let _ = write!(out, "{code}");
        }
        let _ = io::stdout().lock().write_all(out.as_bytes());
        Ok(())
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn first_line(file: &Path) -> Result<String, String> {
    let text =
        String::from_utf8(read(file)?).map_err(|_| format!("{} is not UTF-8", file.display()))?;
    Ok(text
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end_matches('\r')
        .to_owned())
}

fn prompt(text: &str) -> Result<String, String> {
    rpassword::prompt_password(text).map_err(|e| format!("cannot read the password: {e}"))
}

pub(crate) fn parse_pin(text: &str) -> Result<[u8; 32], String> {
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return Err("--pin takes the 64 hex digits of a SHA-256 fingerprint".into());
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = hex
            .get(2 * i..2 * i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or("--pin takes the 64 hex digits of a SHA-256 fingerprint")?;
    }
    Ok(out)
}
