//! Copying an SQLite deployment into PostgreSQL (`sigil migrate`).
//!
//! Table by table, row by row, in one PostgreSQL transaction: the copy is
//! whole or nothing. The two schemas have the same tables and columns
//! (PostgreSQL's with native types), so each column converts by the type
//! PostgreSQL declares for it: integers that SQLite keeps for flags
//! become booleans, `archive_prefs`' one-JID-a-line lists become arrays.
//! Rows travel by binary `COPY`, read from one SQLite read transaction (a
//! consistent snapshot) on a thread of their own, a bounded batch at a
//! time, so an archive of any size streams through in bounded memory.
//!
//! The target must be empty: a copy never merges into, or overwrites, a
//! database that holds data.

use std::path::Path;

use bytes::BytesMut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use super::{PostgresStore, backend, detail};
use crate::StoreError;

/// The tables copied, parents before the tables that refer to them.
pub const TABLES: [&str; 20] = [
    "accounts",
    "credentials",
    "roster_items",
    "roster_groups",
    "offline_messages",
    "certificates",
    "certificate_renewals",
    "certificate_logins",
    "expiry_warnings",
    "revoked_certificates",
    "blocked",
    "saved_sessions",
    "saved_session_messages",
    "archive",
    "archive_prefs",
    "documents",
    "last_activity",
    "invites",
    "fast_tokens",
    "user_agents",
];

/// Rows read from SQLite per batch handed to the writer.
const BATCH: usize = 1_000;

/// One column value on its way from SQLite to PostgreSQL.
#[derive(Debug)]
enum Value {
    Null,
    Bool(bool),
    Int4(i32),
    Int8(i64),
    Text(String),
    Bytes(Vec<u8>),
    TextArray(Vec<String>),
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Self::Null => Ok(IsNull::Yes),
            Self::Bool(v) => v.to_sql(ty, out),
            Self::Int4(v) => v.to_sql(ty, out),
            Self::Int8(v) => v.to_sql(ty, out),
            Self::Text(v) => v.to_sql(ty, out),
            Self::Bytes(v) => v.to_sql(ty, out),
            Self::TextArray(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        [
            Type::BOOL,
            Type::INT4,
            Type::INT8,
            Type::TEXT,
            Type::BYTEA,
            Type::TEXT_ARRAY,
        ]
        .contains(ty)
    }

    to_sql_checked!();
}

/// One column of a target table.
struct Column {
    name: String,
    ty: Type,
}

/// What a batch of rows, or the end of a table, carries to the writer.
type Batch = Result<Vec<Vec<Value>>, StoreError>;

impl PostgresStore {
    /// Copies every row of the SQLite database at `sqlite` (brought up to
    /// the newest schema first, as the server would) into this database,
    /// which must hold no data; returns the rows copied per table, in
    /// [`TABLES`] order. Nothing is copied if anything fails.
    pub async fn import_sqlite(
        &self,
        sqlite: &Path,
    ) -> Result<Vec<(&'static str, u64)>, StoreError> {
        if !sqlite.is_file() {
            return Err(StoreError::Backend(format!(
                "no SQLite database at {}",
                sqlite.display()
            )));
        }
        // Migrations first, so the columns match this code's.
        crate::SqliteStore::open(sqlite).await?.close().await;
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(backend)?;
        // A large archive takes longer than a query may: no limits for
        // this one transaction.
        transaction
            .batch_execute(
                "SET LOCAL statement_timeout = 0; SET LOCAL idle_in_transaction_session_timeout = 0",
            )
            .await
            .map_err(backend)?;
        for table in TABLES {
            let row = transaction
                .query_opt(&format!("SELECT 1 FROM {table} LIMIT 1"), &[])
                .await
                .map_err(backend)?;
            if row.is_some() {
                return Err(StoreError::Backend(format!(
                    "the PostgreSQL database already holds data (table {table}): \
                     copy into an empty database"
                )));
            }
        }
        let mut columns = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            columns.push(target_columns(&transaction, table).await?);
        }
        let (sender, mut batches) = tokio::sync::mpsc::channel::<Batch>(4);
        let reader = {
            let path = sqlite.to_owned();
            let plan: Vec<(&'static str, Vec<(String, Type)>)> = TABLES
                .iter()
                .zip(&columns)
                .map(|(table, columns)| {
                    (
                        *table,
                        columns
                            .iter()
                            .map(|c| (c.name.clone(), c.ty.clone()))
                            .collect(),
                    )
                })
                .collect();
            std::thread::spawn(move || read_sqlite(&path, &plan, &sender))
        };
        let mut copied = Vec::with_capacity(TABLES.len());
        for (table, columns) in TABLES.iter().zip(&columns) {
            let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
            let types: Vec<Type> = columns.iter().map(|c| c.ty.clone()).collect();
            let sink = transaction
                .copy_in(&format!(
                    "COPY {table} ({}) FROM STDIN (FORMAT binary)",
                    names.join(", ")
                ))
                .await
                .map_err(backend)?;
            let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
            let mut rows = 0u64;
            loop {
                let batch = match batches.recv().await {
                    Some(batch) => batch?,
                    None => {
                        return Err(StoreError::Backend(
                            "the SQLite reader stopped early".into(),
                        ));
                    }
                };
                // An empty batch ends the table.
                if batch.is_empty() {
                    break;
                }
                for row in &batch {
                    let values: Vec<&(dyn ToSql + Sync)> =
                        row.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                    writer.as_mut().write(&values).await.map_err(|e| {
                        StoreError::Backend(format!("copying {table}: {}", detail(&e)))
                    })?;
                }
                rows += batch.len() as u64;
            }
            writer
                .as_mut()
                .finish()
                .await
                .map_err(|e| StoreError::Backend(format!("copying {table}: {}", detail(&e))))?;
            copied.push((*table, rows));
        }
        let next_offline = match batches.recv().await {
            Some(Ok(mut last)) => {
                last.pop()
                    .and_then(|mut row| row.pop())
                    .and_then(|value| match value {
                        Value::Int8(next) => Some(next),
                        _ => None,
                    })
            }
            Some(Err(error)) => return Err(error),
            None => None,
        };
        let _ = reader.join();
        // Offline ids are never reused: the identity goes on from where
        // SQLite's would.
        if let Some(last) = next_offline.filter(|last| *last > 0) {
            transaction
                .execute(
                    "SELECT setval(pg_get_serial_sequence('offline_messages', 'id'), $1)",
                    &[&last],
                )
                .await
                .map_err(backend)?;
        }
        transaction.commit().await.map_err(backend)?;
        Ok(copied)
    }
}

/// The columns of `table` in the current schema, in order.
async fn target_columns(
    client: &deadpool_postgres::Transaction<'_>,
    table: &str,
) -> Result<Vec<Column>, StoreError> {
    let rows = client
        .query(
            "SELECT column_name::text, udt_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1
             ORDER BY ordinal_position",
            &[&table],
        )
        .await
        .map_err(backend)?;
    let mut columns = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.get(0);
        let udt: String = row.get(1);
        let ty = match udt.as_str() {
            "bool" => Type::BOOL,
            "int4" => Type::INT4,
            "int8" => Type::INT8,
            "text" => Type::TEXT,
            "bytea" => Type::BYTEA,
            "_text" => Type::TEXT_ARRAY,
            other => {
                return Err(StoreError::Backend(format!(
                    "{table}.{name}: no copy for the column type {other}"
                )));
            }
        };
        columns.push(Column { name, ty });
    }
    if columns.is_empty() {
        return Err(StoreError::Backend(format!(
            "no table {table} in PostgreSQL"
        )));
    }
    Ok(columns)
}

/// Reads every table of `plan` from the SQLite database at `path` in one
/// read transaction, sending its rows in batches, an empty batch after
/// each table, and last the highest offline message id ever given.
fn read_sqlite(
    path: &Path,
    plan: &[(&'static str, Vec<(String, Type)>)],
    sender: &tokio::sync::mpsc::Sender<Batch>,
) {
    let result = (|| -> Result<(), StoreError> {
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut connection = rusqlite::Connection::open_with_flags(path, flags)
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
        let transaction = connection.transaction().map_err(sqlite_error)?;
        for (table, columns) in plan {
            let names: Vec<&str> = columns
                .iter()
                .map(|(name, _)| source_column(table, name))
                .collect();
            let mut statement = transaction
                .prepare(&format!("SELECT {} FROM {table}", names.join(", ")))
                .map_err(|e| StoreError::Backend(format!("reading {table} from SQLite: {e}")))?;
            let mut rows = statement.query([]).map_err(sqlite_error)?;
            let mut batch = Vec::with_capacity(BATCH);
            while let Some(row) = rows.next().map_err(sqlite_error)? {
                let mut values = Vec::with_capacity(columns.len());
                for (index, (name, ty)) in columns.iter().enumerate() {
                    let value = row.get_ref(index).map_err(sqlite_error)?;
                    values
                        .push(convert(value, ty).map_err(|why| {
                            StoreError::Corrupt(format!("{table}.{name}: {why}"))
                        })?);
                }
                batch.push(values);
                if batch.len() == BATCH
                    && sender
                        .blocking_send(Ok(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))))
                        .is_err()
                {
                    return Ok(());
                }
            }
            if !batch.is_empty() && sender.blocking_send(Ok(batch)).is_err() {
                return Ok(());
            }
            if sender.blocking_send(Ok(Vec::new())).is_err() {
                return Ok(());
            }
        }
        let highest: i64 = transaction
            .query_row(
                "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'offline_messages'), 0)",
                [],
                |row| row.get(0),
            )
            .map_err(sqlite_error)?;
        let _ = sender.blocking_send(Ok(vec![vec![Value::Int8(highest)]]));
        Ok(())
    })();
    if let Err(error) = result {
        let _ = sender.blocking_send(Err(error));
    }
}

/// What SQLite holds in the place of a PostgreSQL column: the column of
/// the same name, except where SQLite's order of insertion (`rowid`)
/// stands for an explicit position.
fn source_column<'a>(table: &str, column: &'a str) -> &'a str {
    match (table, column) {
        ("saved_session_messages", "position") => {
            "row_number() OVER (PARTITION BY session ORDER BY rowid)"
        }
        _ => column,
    }
}

fn sqlite_error(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("reading SQLite: {error}"))
}

/// Converts one SQLite value to the PostgreSQL column type `ty`.
fn convert(value: rusqlite::types::ValueRef<'_>, ty: &Type) -> Result<Value, String> {
    use rusqlite::types::ValueRef;
    Ok(match (value, ty) {
        (ValueRef::Null, _) => Value::Null,
        (ValueRef::Integer(v), t) if *t == Type::BOOL => Value::Bool(v != 0),
        (ValueRef::Integer(v), t) if *t == Type::INT8 => Value::Int8(v),
        (ValueRef::Integer(v), t) if *t == Type::INT4 => {
            Value::Int4(i32::try_from(v).map_err(|_| format!("{v} is out of range"))?)
        }
        (ValueRef::Text(text), t) if *t == Type::TEXT => Value::Text(utf8(text)?),
        (ValueRef::Text(text), t) if *t == Type::TEXT_ARRAY => Value::TextArray(
            utf8(text)?
                .lines()
                .filter(|line| !line.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        (ValueRef::Blob(bytes), t) if *t == Type::BYTEA => Value::Bytes(bytes.to_vec()),
        (value, ty) => {
            return Err(format!(
                "a {:?} value where PostgreSQL has {ty}",
                value.data_type()
            ));
        }
    })
}

fn utf8(text: &[u8]) -> Result<String, String> {
    String::from_utf8(text.to_vec()).map_err(|_| "text that is not UTF-8".to_owned())
}
