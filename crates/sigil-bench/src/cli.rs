//! The command line: the subcommands and their options.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Load generator for XMPP servers (loopback only).
#[derive(Debug, Parser)]
#[command(name = "sigil-bench", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Make DIR/ca.crt, DIR/certs/NAME.{crt,key} (CA-signed, one
    /// id-on-xmppAddr each) and DIR/accounts.txt (`name password` lines).
    Prepare {
        /// Where to write.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// How many accounts.
        #[arg(long, default_value_t = 100)]
        users: usize,
        /// The accounts' domain.
        #[arg(long, default_value = "localhost")]
        domain: String,
        /// Account names are PREFIX0, PREFIX1…
        #[arg(long, default_value = "bench")]
        prefix: String,
        /// The password of every account.
        #[arg(long, default_value = "bench-password")]
        password: String,
    },
    /// Log in COUNT times (TLS, SASL, bind, initial presence, close), at
    /// most CONCURRENCY at once.
    Login {
        #[command(flatten)]
        target: Target,
        /// How many logins.
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// Logins in flight at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Stop after this many seconds whatever the count.
        #[arg(long, default_value_t = 120)]
        max_seconds: u64,
    },
    /// Log each account's client in once asking for a FAST token
    /// (XEP-0484), then log in COUNT times again, at most CONCURRENCY at
    /// once: first by a full login with the mechanism, then by a full
    /// login with the password mechanism and no certificate (unless that
    /// is the mechanism already), then by the token.
    Reconnect {
        #[command(flatten)]
        target: Target,
        /// The password mechanism of the second kind of full login.
        #[arg(long, default_value = "SCRAM-SHA-256")]
        password_mechanism: String,
        /// How many logins of each kind.
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// Logins in flight at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Stop each kind after this many seconds whatever the count.
        #[arg(long, default_value_t = 60)]
        max_seconds: u64,
    },
    /// Hold SESSIONS authenticated sessions, measure the server's memory,
    /// let them all leave and measure again.
    Idle {
        #[command(flatten)]
        target: Target,
        /// How many sessions.
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        /// Logins in flight at once while opening them.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Spread the connections over 127.0.0.1 … 127.0.0.N (one source
        /// address has about 28,000 ports).
        #[arg(long, default_value_t = 1)]
        sources: u8,
        /// The server's process id, for /proc/PID/status.
        #[arg(long)]
        server_pid: u32,
        /// Seconds to wait before each memory reading.
        #[arg(long, default_value_t = 3)]
        settle_seconds: u64,
        /// Stop opening sessions after this many seconds.
        #[arg(long, default_value_t = 600)]
        max_seconds: u64,
        /// Sessions that connect and leave before the baseline is read.
        #[arg(long, default_value_t = 500)]
        warmup: usize,
        /// The first session's number (its account and resource follow
        /// from it): several generators holding sessions of the same
        /// accounts at once each take their own range.
        #[arg(long, default_value_t = 0)]
        first_session: usize,
        /// Wait for the other generators at two points, with a file each
        /// in DIR: once all have opened their sessions (before the memory
        /// is read) and once all have read it (before the sessions
        /// leave), so that all of them are held at once.
        #[arg(long, value_name = "DIR", requires = "generators")]
        barrier: Option<PathBuf>,
        /// How many generators meet at the barrier.
        #[arg(long, requires = "barrier")]
        generators: Option<usize>,
    },
    /// Registers each account's certificate with the server over XEP-0257
    /// (for servers that accept self-registered certificates rather than a
    /// CA, such as Prosody's mod_client_certs), logging in with the
    /// password.
    RegisterCerts {
        #[command(flatten)]
        target: Target,
    },
    /// PAIRS senders each send to their own receiver; RATE messages/s in
    /// all (0: as fast as WINDOW unanswered messages per pair allow).
    Messaging {
        #[command(flatten)]
        target: Target,
        /// Sender/receiver pairs.
        #[arg(long, default_value_t = 10)]
        pairs: usize,
        /// Offered messages per second, all pairs together; 0 saturates.
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Messages in flight per pair at saturation.
        #[arg(long, default_value_t = 32)]
        window: u64,
        /// How long to send.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// The receivers connect here instead (another node of a
        /// cluster: the messages cross between nodes).
        #[arg(long, value_name = "ADDRESS:PORT")]
        receivers_at: Option<SocketAddr>,
    },
    /// Fills one conversation's message archive (XEP-0313) over the
    /// protocol: SENDERS connections of account FIRST send to account
    /// FIRST+1 at saturation until MESSAGES are delivered or FILL_SECONDS
    /// pass (progress on standard error). Then QUERIES queries, one after
    /// another, for the last MAX messages with FIRST+1 (`with`, `<max/>`,
    /// an empty `<before/>`), each checked to bring MAX results and a
    /// `<fin/>`; their latency percentiles and the archive size reached.
    MamQuery {
        #[command(flatten)]
        target: Target,
        /// The account that queries (FIRST+1 is the other side).
        #[arg(long, default_value_t = 0)]
        first_account: usize,
        /// Messages to fill the conversation with.
        #[arg(long, default_value_t = 10_000)]
        messages: u64,
        /// Stop filling after this many seconds whatever the count.
        #[arg(long, default_value_t = 600)]
        fill_seconds: u64,
        /// Sending connections (resources of account FIRST).
        #[arg(long, default_value_t = 4)]
        senders: usize,
        /// Messages in flight per sending connection.
        #[arg(long, default_value_t = 32)]
        window: u64,
        /// Queries to time.
        #[arg(long, default_value_t = 100)]
        queries: usize,
        /// Messages per query (`<max/>`).
        #[arg(long, default_value_t = 50)]
        max: usize,
    },
    /// XEP-0352: account FIRST with CONTACTS contacts (accounts FIRST+1…,
    /// mutual subscriptions made over the protocol) that change presence
    /// and send chat states RATE times a second each for SECONDS, and send
    /// MESSAGES messages with a body; once with the receiver active
    /// throughout, once inactive. The bytes its stream delivers in each
    /// case (TLS application data, what `<active/>` flushes included),
    /// and the messages' latency. STARTTLS or direct TLS only.
    Csi {
        #[command(flatten)]
        target: Target,
        /// The receiving account; its contacts follow it.
        #[arg(long, default_value_t = 0)]
        first_account: usize,
        /// Contacts.
        #[arg(long, default_value_t = 20)]
        contacts: usize,
        /// Presence changes (each with a chat state) per second per
        /// contact.
        #[arg(long, default_value_t = 0.5)]
        rate: f64,
        /// Length of each of the two phases.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Messages with a body per phase.
        #[arg(long, default_value_t = 5)]
        messages: usize,
        /// Seconds the receiver keeps reading after each phase's load.
        #[arg(long, default_value_t = 2)]
        settle_seconds: u64,
    },
    /// SESSIONS sessions held while CHURN a second leave and are replaced,
    /// each sending itself a message every 5 s, for SECONDS; the server's
    /// RSS growth from the first minute to the last.
    Soak {
        #[command(flatten)]
        target: Target,
        /// Sessions held at once.
        #[arg(long, default_value_t = 2000)]
        sessions: usize,
        /// Sessions that leave (and are replaced) per second.
        #[arg(long, default_value_t = 50)]
        churn: usize,
        /// How long.
        #[arg(long, default_value_t = 1800)]
        seconds: u64,
        /// The server's process id, for /proc/PID/status.
        #[arg(long)]
        server_pid: u32,
        /// Seconds between memory readings.
        #[arg(long, default_value_t = 10)]
        sample: u64,
    },
    /// Hostile clients, all at once (malformed and oversized XML, protocol
    /// tricks, slow and flooding connections), while a probe client (the
    /// first account, on `--address` and `--transport`) sends itself a
    /// message every 20 ms. `--address` must be a STARTTLS listener.
    /// Fails if a hostile client is not answered as the protocol says or
    /// the probe loses a message. Uses 127.0.0.2 and 127.0.0.3 as source
    /// addresses for the slow and the flooding connections.
    Hostile {
        #[command(flatten)]
        target: Target,
        /// The server's direct TLS listener.
        #[arg(long)]
        direct_tls: SocketAddr,
        /// The server's process id, for its memory (/proc/PID/status).
        #[arg(long)]
        server_pid: Option<u32>,
        /// The server's login timeout in seconds (how long slow
        /// connections take to be closed).
        #[arg(long, default_value_t = 30)]
        login_timeout: u64,
        /// Slow connections, from 127.0.0.2.
        #[arg(long, default_value_t = 20)]
        slowloris: usize,
        /// Flooding connections, from 127.0.0.3.
        #[arg(long, default_value_t = 300)]
        flood: usize,
        /// Fail if the probe's p99 round trip is above this many
        /// milliseconds (0: report only).
        #[arg(long, default_value_t = 0.0)]
        max_p99_ms: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TransportArg {
    Starttls,
    DirectTls,
    Websocket,
    Bosh,
}

/// Which server, how, and as whom.
#[derive(Debug, Args)]
pub(crate) struct Target {
    /// The server's address for this transport.
    #[arg(long)]
    pub(crate) address: SocketAddr,
    /// The transport.
    #[arg(long, value_enum, default_value_t = TransportArg::Starttls)]
    pub(crate) transport: TransportArg,
    /// The URL for WebSocket or BOSH (default
    /// wss://DOMAIN:PORT/xmpp-websocket or https://DOMAIN:PORT/http-bind).
    #[arg(long)]
    pub(crate) url: Option<String>,
    /// The server's certificate (PEM); it is pinned.
    #[arg(long, value_name = "FILE")]
    pub(crate) server_cert: PathBuf,
    /// The directory `prepare` wrote.
    #[arg(long, value_name = "DIR")]
    pub(crate) accounts: PathBuf,
    /// EXTERNAL (the account's certificate) or a password mechanism
    /// (SCRAM-SHA-256…).
    #[arg(long, default_value = "EXTERNAL")]
    pub(crate) mechanism: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// The server's process id: its CPU time is reported per login or
    /// message (from /proc/PID/stat).
    #[arg(long = "cpu-of", value_name = "PID")]
    pub(crate) cpu_of: Option<u32>,
}
