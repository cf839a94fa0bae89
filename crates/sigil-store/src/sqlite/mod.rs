//! The SQLite backend.
//!
//! One database file in WAL mode with `synchronous = FULL`: every commit is
//! flushed to the write-ahead log before the call returns, so acknowledged
//! data survives a crash or a power loss. Writers take the write lock when
//! their transaction begins (`BEGIN IMMEDIATE`) and wait up to five seconds
//! for it, so concurrent writers queue instead of failing.
//!
//! # Threads
//!
//! Reads run on the calling thread, on a connection taken from a small
//! pool: they are short indexed lookups served from SQLite's page cache
//! (tens of microseconds), and in WAL mode a reader never waits for a
//! writer. Handing each of them to another thread and back cost more than
//! the query itself (a third of a certificate login's CPU, measured).
//! Writes end in an `fsync`, so they run on tokio's blocking pool, one at
//! a time on the one write connection.

mod accounts;
mod archive;
mod blocking;
mod certificates;
mod documents;
mod invites;
mod offline;
mod roster;
mod sessions;
mod tokens;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior};

use crate::StoreError;

/// The newest schema version this code knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// A [`Store`](crate::Store) in an SQLite database.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The database file; `None` in memory, where the one write connection
    /// is the whole database and serves the reads too.
    path: Option<PathBuf>,
    writer: Mutex<Option<Connection>>,
    readers: Mutex<Vec<Connection>>,
    closed: AtomicBool,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Idle read connections kept for reuse: about one per thread that reads
/// at the same time; more are opened when needed and closed after.
const MAX_IDLE_READERS: usize = 16;

/// Prepared statements kept per connection: every statement of this
/// backend, so none is parsed twice.
const STATEMENT_CACHE: usize = 64;

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
        if !directory.is_dir() {
            return Err(StoreError::Backend(format!(
                "cannot open the database {}: the directory {} does not exist",
                path.display(),
                directory.display()
            )));
        }
        Self::open_file(path.to_owned(), true).await
    }

    /// Opens the database named by a SQLite URL: `sqlite://PATH` or
    /// `sqlite:PATH`, with an optional `?mode=` of `rwc` (create a missing
    /// file), `rw` (the default: the file must exist) or `memory`; and
    /// `sqlite::memory:` for a fresh database in memory.
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        let invalid = |why: &str| StoreError::Backend(format!("invalid SQLite URL {url:?}: {why}"));
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| invalid("it must start with sqlite:"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut mode = "rw";
        for parameter in query.split('&').filter(|p| !p.is_empty()) {
            match parameter.split_once('=') {
                Some(("mode", value)) => mode = value,
                _ => return Err(invalid(&format!("unknown parameter {parameter:?}"))),
            }
        }
        if path == ":memory:" || mode == "memory" {
            return Self::in_memory().await;
        }
        if path.is_empty() {
            return Err(invalid("no path"));
        }
        match mode {
            "rwc" => Self::open(Path::new(path)).await,
            "rw" => Self::open_file(PathBuf::from(path), false).await,
            other => Err(invalid(&format!("unsupported mode {other:?}"))),
        }
    }

    /// Opens a fresh database that lives in memory and vanishes with the
    /// store: for tests and throwaway servers.
    pub async fn in_memory() -> Result<Self, StoreError> {
        blocking(|| {
            let connection = Connection::open_in_memory().map_err(backend)?;
            configure(&connection, false)?;
            Self::start(None, connection)
        })
        .await
    }

    async fn open_file(path: PathBuf, create: bool) -> Result<Self, StoreError> {
        blocking(move || {
            make_private(&path, create)?;
            let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI;
            if create {
                flags |= OpenFlags::SQLITE_OPEN_CREATE;
            }
            let connection = Connection::open_with_flags(&path, flags).map_err(|error| {
                StoreError::Backend(format!(
                    "cannot open the database {}: {error}",
                    path.display()
                ))
            })?;
            configure(&connection, true)?;
            // The write connection's page cache holds the pages a burst
            // of inserts touches (the ends of the archive's indexes, the
            // accounts looked up) between commits; SQLite's default of
            // 2 MiB spilled them and read them back from the file.
            connection.execute_batch(WRITER_CACHE).map_err(backend)?;
            Self::start(Some(path), connection)
        })
        .await
    }

    fn start(path: Option<PathBuf>, mut writer: Connection) -> Result<Self, StoreError> {
        migrate(&mut writer)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(Some(writer)),
                readers: Mutex::new(Vec::new()),
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// The schema version of the database.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        self.read(stored_schema_version)
    }

    /// The settings a connection of this store runs with, read back from
    /// SQLite: to check that durability is what it should be.
    pub async fn settings(&self) -> Result<SqliteSettings, StoreError> {
        self.read(|connection| {
            let text = |sql: &str| -> Result<String, StoreError> {
                connection
                    .query_row(sql, [], |row| row.get(0))
                    .map_err(backend)
            };
            let number = |sql: &str| -> Result<i64, StoreError> {
                connection
                    .query_row(sql, [], |row| row.get(0))
                    .map_err(backend)
            };
            Ok(SqliteSettings {
                journal_mode: text("PRAGMA journal_mode")?,
                synchronous: number("PRAGMA synchronous")?,
                foreign_keys: number("PRAGMA foreign_keys")? == 1,
                busy_timeout_ms: number("PRAGMA busy_timeout")?,
            })
        })
    }

    /// Closes every connection, checkpointing the write-ahead log; the store
    /// is unusable afterwards.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        lock(&self.inner.readers).clear();
        let writer = lock(&self.inner.writer).take();
        if let Some(writer) = writer {
            // The last connection to close checkpoints the log: file I/O.
            let _ = blocking(move || {
                drop(writer);
                Ok(())
            })
            .await;
        }
    }

    /// Runs a read on this thread, on a pooled connection (the write
    /// connection in memory). `read` sees one snapshot only if it opens a
    /// transaction itself ([`snapshot`]).
    fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        let Some(path) = &self.inner.path else {
            let writer = lock(&self.inner.writer);
            return read(writer.as_ref().ok_or_else(closed)?);
        };
        let pooled = lock(&self.inner.readers).pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => open_reader(path)?,
        };
        let result = read(&connection);
        let mut readers = lock(&self.inner.readers);
        if readers.len() < MAX_IDLE_READERS && !self.inner.closed.load(Ordering::Acquire) {
            readers.push(connection);
        }
        result
    }

    /// Runs a read that may take a while (it may scan many rows) on the
    /// blocking pool, so that it holds no async worker meanwhile.
    async fn read_blocking<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        blocking(move || store.read(read)).await
    }

    /// Runs `write` in one `BEGIN IMMEDIATE` transaction on the write
    /// connection, on the blocking pool; commits when it returns `Ok`,
    /// rolls back otherwise.
    async fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            if inner.closed.load(Ordering::Acquire) {
                return Err(closed());
            }
            let mut writer = lock(&inner.writer);
            let connection = writer.as_mut().ok_or_else(closed)?;
            let transaction = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let value = write(&transaction)?;
            // With `synchronous = FULL` the commit returns only once the
            // write-ahead log is on disk.
            transaction.commit().map_err(backend)?;
            Ok(value)
        })
        .await
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
    (
        3,
        include_str!("../../migrations/sqlite/0003_saved_sessions.sql"),
    ),
    (
        4,
        include_str!("../../migrations/sqlite/0004_revocations.sql"),
    ),
    (5, include_str!("../../migrations/sqlite/0005_archive.sql")),
    (
        6,
        include_str!("../../migrations/sqlite/0006_documents.sql"),
    ),
    (
        7,
        include_str!("../../migrations/sqlite/0007_archive_ids.sql"),
    ),
    (8, include_str!("../../migrations/sqlite/0008_invites.sql")),
    (
        9,
        include_str!("../../migrations/sqlite/0009_expiry_warnings.sql"),
    ),
    (
        10,
        include_str!("../../migrations/sqlite/0010_certificate_renewals.sql"),
    ),
    (
        11,
        include_str!("../../migrations/sqlite/0011_certificate_logins.sql"),
    ),
    (
        12,
        include_str!("../../migrations/sqlite/0012_fast_tokens.sql"),
    ),
];

/// The database holds password verifiers, messages and rosters: it is
/// created mode 0600 (SQLite gives its `-wal` and `-shm` files the mode
/// of the database), and an existing one that others may read is
/// restricted to its owner, with those files.
fn make_private(path: &Path, create: bool) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let failed = |what: &Path, error: std::io::Error| {
            StoreError::Backend(format!("cannot restrict {}: {error}", what.display()))
        };
        if create && !path.exists() {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
            {
                Ok(_) => {}
                // Made by someone else meanwhile: restricted below.
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(error) => return Err(failed(path, error)),
            }
        }
        let mut names = vec![path.to_path_buf()];
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            names.push(PathBuf::from(name));
        }
        for name in names {
            let Ok(metadata) = std::fs::metadata(&name) else {
                continue;
            };
            if metadata.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(&name, std::fs::Permissions::from_mode(0o600))
                    .map_err(|error| failed(&name, error))?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, create);
    Ok(())
}

/// How long a connection waits for a lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The write connection's page cache, at most 32 MiB (SQLite allocates
/// it as pages are used), and a checkpoint every 8,192 pages of log
/// (32 MiB) instead of 1,000: the pages at the ends of the indexes, which
/// every commit rewrites, are copied into the database once per
/// checkpoint, and a burst of messages stalls on fewer checkpoints.
const WRITER_CACHE: &str = "PRAGMA cache_size = -32768; PRAGMA wal_autocheckpoint = 8192;";

/// Runs blocking database work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| StoreError::Backend(format!("database task failed: {error}")))?
}

/// The settings every connection runs with.
fn configure(connection: &Connection, file: bool) -> Result<(), StoreError> {
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    connection.busy_timeout(BUSY_TIMEOUT).map_err(backend)?;
    let mut pragmas = String::from("PRAGMA foreign_keys = ON; ");
    if file {
        // The journal mode is kept in the file; `synchronous` is per
        // connection.
        pragmas.push_str("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;");
    }
    connection.execute_batch(&pragmas).map_err(backend)
}

/// A read connection to the database file.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(backend)?;
    configure(&connection, true)?;
    // Read-write so that it may take part in WAL recovery, but it never
    // writes: the write path is the single write connection.
    connection
        .execute_batch("PRAGMA query_only = ON;")
        .map_err(backend)?;
    Ok(connection)
}

/// Applies every migration newer than the database, each in its own
/// transaction together with its `schema_version` row, so a crash leaves
/// the database at a version boundary.
fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    connection
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_version (
                version INTEGER NOT NULL PRIMARY KEY,
                applied_at INTEGER NOT NULL
            ) STRICT",
        )
        .map_err(backend)?;
    for &(version, script) in MIGRATIONS {
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        // Read under the write lock: another process may be migrating too.
        let current = stored_schema_version(&transaction)?;
        if current > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: current,
                supported: SCHEMA_VERSION,
            });
        }
        if version <= current {
            continue;
        }
        transaction.execute_batch(script).map_err(backend)?;
        transaction
            .execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                (version, now_unix()),
            )
            .map_err(backend)?;
        transaction.commit().map_err(backend)?;
    }
    Ok(())
}

fn stored_schema_version(connection: &Connection) -> Result<i64, StoreError> {
    connection
        .query_row(
            "SELECT coalesce(max(version), 0) FROM schema_version",
            [],
            |row| row.get(0),
        )
        .map_err(backend)
}

/// Runs `read` in one read transaction, so that its queries see one
/// snapshot of the database.
fn snapshot<T>(
    connection: &Connection,
    read: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let transaction = connection.unchecked_transaction().map_err(backend)?;
    let value = read(&transaction)?;
    // Nothing to commit; ending the transaction releases the snapshot.
    transaction.commit().map_err(backend)?;
    Ok(value)
}

fn closed() -> StoreError {
    StoreError::Backend("the store is closed".into())
}

/// Locks a mutex; a panic in another holder leaves a connection SQLite
/// keeps consistent itself (an open transaction rolls back on drop), so
/// poisoning is ignored.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Converts an SQLite error, keeping apart the cases callers act on.
fn backend(error: rusqlite::Error) -> StoreError {
    match &error {
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::Corrupt(error.to_string()),
        // Only reachable if a row's owner vanished mid-way; the explicit
        // existence checks answer first otherwise.
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
        {
            StoreError::NotFound
        }
        _ => StoreError::Backend(error.to_string()),
    }
}

/// Whether the account `jid` exists, inside `connection`'s transaction.
fn account_exists(connection: &Connection, jid: &str) -> Result<bool, StoreError> {
    let row = connection
        .prepare_cached("SELECT 1 FROM accounts WHERE jid = ?")
        .map_err(backend)?
        .query_row([jid], |_| Ok(()))
        .optional()
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
