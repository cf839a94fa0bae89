//! The SQLite backend, through sqlx.
//!
//! One database file in WAL mode with `synchronous = FULL`: every commit is
//! flushed to the write-ahead log before the call returns, so acknowledged
//! data survives a crash or a power loss. Writers take the write lock when
//! their transaction begins (`BEGIN IMMEDIATE`) and wait up to five seconds
//! for it, so concurrent writers queue instead of failing.

mod accounts;
mod blocking;
mod certificates;
mod offline;
mod roster;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqliteConnection, Transaction};

use crate::StoreError;

/// The newest schema version this code knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// A [`Store`](crate::Store) in an SQLite database.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens the database file at `path`, creating it if missing, and brings
    /// its schema up to date.
    ///
    /// The directory must exist: a missing directory more likely means a
    /// mistyped path than a wish for a new tree.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let directory = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        // A blocking stat, once at startup: cheaper than pulling in async fs.
        if !directory.is_dir() {
            return Err(StoreError::Backend(format!(
                "cannot open the database {}: the directory {} does not exist",
                path.display(),
                directory.display()
            )));
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        Self::connect(durable(options), false).await
    }

    /// Opens the database named by an sqlx SQLite URL (`sqlite://path`,
    /// `sqlite::memory:`); whether a missing file is created follows the
    /// URL's `mode` parameter (`mode=rwc` creates).
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|error| StoreError::Backend(format!("invalid SQLite URL {url:?}: {error}")))?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        Self::connect(durable(options), in_memory).await
    }

    /// Opens a fresh database that lives in memory and vanishes with the
    /// store: for tests and throwaway servers.
    pub async fn in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(backend)?
            .foreign_keys(true);
        Self::connect(options, true).await
    }

    /// The schema version of the database.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let mut connection = self.pool.acquire().await.map_err(backend)?;
        stored_schema_version(&mut connection).await
    }

    /// The settings a connection of this store runs with, read back from
    /// SQLite: to check that durability is what it should be.
    pub async fn settings(&self) -> Result<SqliteSettings, StoreError> {
        let mut connection = self.pool.acquire().await.map_err(backend)?;
        let journal_mode = pragma(&mut connection, "PRAGMA journal_mode").await?;
        let synchronous = pragma(&mut connection, "PRAGMA synchronous").await?;
        let foreign_keys = pragma(&mut connection, "PRAGMA foreign_keys").await?;
        let busy_timeout = pragma(&mut connection, "PRAGMA busy_timeout").await?;
        let number = |value: String| {
            value
                .parse::<i64>()
                .map_err(|_| StoreError::Corrupt(format!("pragma value {value:?}")))
        };
        Ok(SqliteSettings {
            journal_mode,
            synchronous: number(synchronous)?,
            foreign_keys: number(foreign_keys)? == 1,
            busy_timeout_ms: number(busy_timeout)?,
        })
    }

    /// Closes every connection, checkpointing the write-ahead log; the store
    /// is unusable afterwards.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn connect(options: SqliteConnectOptions, in_memory: bool) -> Result<Self, StoreError> {
        let pool_options = if in_memory {
            // One connection that never closes: the database lives in it.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(4)
        };
        let pool = pool_options.connect_with(options).await.map_err(backend)?;
        migrate(&pool).await?;
        Ok(Self { pool })
    }
}

/// Connection settings as SQLite reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteSettings {
    /// `PRAGMA journal_mode`: `wal` for files, `memory` in memory.
    pub journal_mode: String,
    /// `PRAGMA synchronous`: 2 is `FULL`.
    pub synchronous: i64,
    /// `PRAGMA foreign_keys`.
    pub foreign_keys: bool,
    /// `PRAGMA busy_timeout`, in milliseconds.
    pub busy_timeout_ms: i64,
}

/// The schema scripts, by version: append only, never edit one that shipped.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_initial.sql")),
    (2, include_str!("../../migrations/sqlite/0002_blocking.sql")),
];

/// How long a writer waits for the write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

fn durable(options: SqliteConnectOptions) -> SqliteConnectOptions {
    options
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT)
}

/// Applies every migration newer than the database, each in its own
/// transaction together with its `schema_version` row, so a crash leaves
/// the database at a version boundary.
async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_version (
            version INTEGER NOT NULL PRIMARY KEY,
            applied_at INTEGER NOT NULL
        ) STRICT",
    )
    .execute(pool)
    .await
    .map_err(backend)?;
    for &(version, script) in MIGRATIONS {
        let mut transaction = begin_write(pool).await?;
        // Read under the write lock: another process may be migrating too.
        let current = stored_schema_version(&mut transaction).await?;
        if current > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: current,
                supported: SCHEMA_VERSION,
            });
        }
        if version <= current {
            continue;
        }
        sqlx::raw_sql(script)
            .execute(&mut *transaction)
            .await
            .map_err(backend)?;
        sqlx::query("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)")
            .bind(version)
            .bind(now_unix())
            .execute(&mut *transaction)
            .await
            .map_err(backend)?;
        transaction.commit().await.map_err(backend)?;
    }
    Ok(())
}

async fn stored_schema_version(connection: &mut SqliteConnection) -> Result<i64, StoreError> {
    sqlx::query("SELECT coalesce(max(version), 0) FROM schema_version")
        .fetch_one(connection)
        .await
        .map_err(backend)?
        .try_get(0)
        .map_err(backend)
}

async fn pragma(
    connection: &mut SqliteConnection,
    sql: &'static str,
) -> Result<String, StoreError> {
    let row = sqlx::query(sql)
        .fetch_one(connection)
        .await
        .map_err(backend)?;
    // Some pragmas answer with text, others with integers.
    match row.try_get::<String, _>(0) {
        Ok(text) => Ok(text),
        Err(_) => Ok(row.try_get::<i64, _>(0).map_err(backend)?.to_string()),
    }
}

/// Begins a transaction that holds the write lock from its start: a
/// deferred transaction that reads and then writes fails at once, without
/// waiting, when another connection committed in between.
async fn begin_write(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, StoreError> {
    pool.begin_with("BEGIN IMMEDIATE").await.map_err(backend)
}

/// Converts an sqlx error, keeping apart the cases callers act on.
fn backend(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::Corrupt(error.to_string())
        }
        // Only reachable if a row's owner vanished mid-way; the explicit
        // existence checks answer first otherwise.
        sqlx::Error::Database(database) if database.is_foreign_key_violation() => {
            StoreError::NotFound
        }
        _ => StoreError::Backend(error.to_string()),
    }
}

/// Whether the account `jid` exists, inside `connection`'s transaction.
async fn account_exists(connection: &mut SqliteConnection, jid: &str) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT 1 FROM accounts WHERE jid = ?")
        .bind(jid)
        .fetch_optional(connection)
        .await
        .map_err(backend)?;
    Ok(row.is_some())
}

/// Converts a count or limit to SQLite's integer, saturating (no store holds
/// `i64::MAX` rows).
fn to_sql_integer(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Converts a stored integer that must not be negative.
fn to_unsigned(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative {what}: {value}")))
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        for (index, (version, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version, i64::try_from(index).unwrap() + 1);
        }
    }

    #[tokio::test]
    async fn in_memory_store_is_migrated() {
        let store = SqliteStore::in_memory().await.unwrap();
        assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
        assert!(store.settings().await.unwrap().foreign_keys);
    }
}
