//! The PostgreSQL backend: the store of record for several Sigil nodes.
//!
//! `tokio-postgres` on a `deadpool` pool: one async connection per query
//! in flight, pipelined prepared statements (cached per connection), and
//! nothing that blocks a runtime thread. TLS to the server is rustls on
//! aws-lc-rs, as everywhere else in Sigil, when the URL asks for it
//! (`sslmode=require`; `prefer` tries it first).
//!
//! The schema is brought up to date on connect, under a transaction-level
//! advisory lock, so nodes that start together migrate once. A database
//! written by a newer Sigil is left alone ([`StoreError::SchemaTooNew`]).
//!
//! # Concurrency
//!
//! Several nodes write at once, so a rule that SQLite's one writer keeps by
//! itself (a quota, "the account must exist") is kept here by locking the
//! owner's `accounts` row (`SELECT … FOR NO KEY UPDATE`, `lock_account`)
//! first in every transaction that writes an account's data: writes to
//! one account queue, writes to different accounts do not wait for each
//! other, and inserts that only check the row exists (foreign keys) do
//! not wait at all. A transaction that locks several accounts locks them
//! in the order of their JIDs, so two cannot deadlock.
//! Transactions run at `READ COMMITTED`; reads that must agree with each
//! other (an account and its credentials) are one statement.

mod accounts;
mod archive;
mod blocking;
mod certificates;
mod documents;
pub mod import;
mod invites;
mod offline;
mod roster;
mod sessions;
pub mod testing;
mod tokens;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::config::SslMode;
use tokio_postgres::{Config, NoTls};

use crate::StoreError;

/// The migrations, in order: (version, SQL). Each runs once, in one
/// transaction with the version's row.
const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    include_str!("../../migrations/postgres/0001_initial.sql"),
)];

/// The newest schema version this code knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// The advisory lock key migrations hold (any constant: "sigil" in ASCII).
const MIGRATION_LOCK: i64 = 0x0073_6967_696c;

/// Session settings every connection gets (unless the URL's `options`
/// set them): how long a transaction may sit idle, a statement wait for a
/// lock, a statement run.
const SESSION_SETTINGS: [(&str, &str); 3] = [
    ("idle_in_transaction_session_timeout", "60s"),
    ("lock_timeout", "30s"),
    ("statement_timeout", "120s"),
];

/// How a [`PostgresStore`] connects, beyond its URL.
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// Connections in the pool at most.
    pub max_connections: usize,
    /// Certificates (PEM) that sign the server's, for TLS; `None`: the
    /// system's trusted roots.
    pub ca_pem: Option<Vec<u8>>,
    /// How long a query waits for a free connection, and a new connection
    /// for the server.
    pub timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            ca_pem: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// A [`Store`](crate::Store) in a PostgreSQL database.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PostgresStore")
            .field("connections", &status.size)
            .field("max_connections", &status.max_size)
            .finish_non_exhaustive()
    }
}

/// A backend error as [`StoreError::Backend`], with the server's own
/// message when it sent one.
pub(crate) fn backend(error: impl fmt::Display) -> StoreError {
    StoreError::Backend(error.to_string())
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`,
    /// with libpq's `sslmode` and `options` parameters) with the default
    /// [`PostgresOptions`], and brings its schema up to date.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, &PostgresOptions::default()).await
    }

    /// As [`Self::connect`], with `options`.
    pub async fn connect_with(url: &str, options: &PostgresOptions) -> Result<Self, StoreError> {
        let mut config = Config::from_str(url)
            .map_err(|e| StoreError::Backend(format!("invalid PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("sigil");
        }
        // A node cut off in a transaction, or a query stuck behind one,
        // must not hold an account's rows for long; settings the URL's
        // `options` gives win.
        let mut settings = config.get_options().unwrap_or_default().to_owned();
        for (name, value) in SESSION_SETTINGS {
            if !settings.contains(name) {
                settings.push_str(&format!(" -c {name}={value}"));
            }
        }
        config.options(settings.trim());
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match config.get_ssl_mode() {
            SslMode::Disable => Manager::from_config(config, NoTls, manager_config),
            _ => {
                let tls = tls_connector(options.ca_pem.as_deref())?;
                Manager::from_config(config, tls, manager_config)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .wait_timeout(Some(options.timeout))
            .create_timeout(Some(options.timeout))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(backend)?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// A connection from the pool.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(backend)
    }

    /// Brings the schema up to date: every missing migration, in order,
    /// in one transaction that holds the migration lock.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(backend)?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(backend)?;
        transaction
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version BIGINT NOT NULL PRIMARY KEY,
                     applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            )
            .await
            .map_err(backend)?;
        let newest: i64 = transaction
            .query_one(
                "SELECT coalesce(max(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .map_err(backend)?
            .get(0);
        if newest > SCHEMA_VERSION {
            transaction.rollback().await.map_err(backend)?;
            return Err(StoreError::SchemaTooNew {
                found: newest,
                supported: SCHEMA_VERSION,
            });
        }
        for &(version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > newest) {
            transaction.batch_execute(sql).await.map_err(|e| {
                StoreError::Backend(format!("migration {version} failed: {}", detail(&e)))
            })?;
            transaction
                .execute(
                    "INSERT INTO schema_migrations (version) VALUES ($1)",
                    &[&version],
                )
                .await
                .map_err(backend)?;
        }
        transaction.commit().await.map_err(backend)
    }

    /// The schema version of the database.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT coalesce(max(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .map_err(backend)?;
        Ok(row.get(0))
    }

    /// Closes the pool: calls after this fail, and open connections end.
    pub async fn close(&self) {
        self.pool.close();
    }
}

/// Parameters of a statement.
pub(crate) type Params<'p> = &'p [&'p (dyn tokio_postgres::types::ToSql + Sync)];

/// Runs `sql` (prepared once per connection) with `params`: rows changed.
pub(crate) async fn execute(
    client: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<u64, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(backend)?;
    client.execute(&statement, params).await.map_err(backend)
}

/// Runs the query `sql` (prepared once per connection) with `params`.
pub(crate) async fn query(
    client: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<tokio_postgres::Row>, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(backend)?;
    client.query(&statement, params).await.map_err(backend)
}

/// As [`query`], for at most one row.
pub(crate) async fn query_opt(
    client: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<tokio_postgres::Row>, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(backend)?;
    client.query_opt(&statement, params).await.map_err(backend)
}

/// As [`query`], for exactly one row.
pub(crate) async fn query_one(
    client: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<tokio_postgres::Row, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(backend)?;
    client.query_one(&statement, params).await.map_err(backend)
}

/// Locks `jid`'s account row for the rest of the transaction `client` is
/// in; whether there is such an account.
pub(crate) async fn lock_account(
    client: &impl GenericClient,
    jid: &str,
) -> Result<bool, StoreError> {
    let row = query_opt(
        client,
        "SELECT 1 FROM accounts WHERE jid = $1 FOR NO KEY UPDATE",
        &[&jid],
    )
    .await?;
    Ok(row.is_some())
}

/// Now, in Unix seconds.
pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// A stored count or version that must not be negative.
pub(crate) fn to_unsigned(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative {what}: {value}")))
}

/// A count or limit as PostgreSQL's `bigint`, saturating.
pub(crate) fn to_bigint(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The server's message for a database error (with its detail), else the
/// error's own text.
pub(crate) fn detail(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => match db.detail() {
            Some(more) => format!("{}: {more}", db.message()),
            None => db.message().to_owned(),
        },
        None => error.to_string(),
    }
}

/// TLS for the connections: the server's certificate must chain to
/// `ca_pem`, or to the system's roots, and name the host connected to.
fn tls_connector(
    ca_pem: Option<&[u8]>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for certificate in CertificateDer::pem_slice_iter(pem) {
                let certificate = certificate
                    .map_err(|e| StoreError::Backend(format!("the database CA file: {e}")))?;
                roots
                    .add(certificate)
                    .map_err(|e| StoreError::Backend(format!("the database CA file: {e}")))?;
            }
            if roots.is_empty() {
                return Err(StoreError::Backend(
                    "the database CA file holds no certificate".into(),
                ));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for certificate in found.certs {
                // A malformed system root is skipped, as browsers do.
                let _ = roots.add(certificate);
            }
            if roots.is_empty() {
                return Err(StoreError::Backend(
                    "TLS to the database: no trusted roots on this system; give a CA file".into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(backend)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}
