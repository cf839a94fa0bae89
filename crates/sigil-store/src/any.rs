//! The store a deployment names by URL: SQLite (embedded, the default)
//! or PostgreSQL (shared by several nodes).

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use crate::postgres::PostgresOptions;
use crate::{PostgresStore, SqliteStore, Store, StoreError};

/// A store opened from a URL: use it as a [`Store`] (through `Deref`),
/// share it with [`AnyStore::shared`], end it with [`AnyStore::close`].
#[derive(Clone, Debug)]
pub enum AnyStore {
    /// `sqlite://PATH`.
    Sqlite(SqliteStore),
    /// `postgres://…` or `postgresql://…`.
    Postgres(PostgresStore),
}

impl AnyStore {
    /// Opens the store `url` names: `sqlite://PATH` (PATH relative to
    /// `base`, the file created if missing) or `postgres://USER:PASSWORD@HOST:PORT/DATABASE`
    /// (libpq's parameters, `sslmode=require` for TLS, `options` passed
    /// through) with `postgres`'s options. The schema is brought up to
    /// date either way.
    pub async fn open(
        url: &str,
        base: &Path,
        postgres: &PostgresOptions,
    ) -> Result<Self, StoreError> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = base.join(path);
            return SqliteStore::open(&path)
                .await
                .map(Self::Sqlite)
                .map_err(|e| {
                    StoreError::Backend(format!("cannot open the database {}: {e}", path.display()))
                });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return PostgresStore::connect_with(url, postgres)
                .await
                .map(Self::Postgres)
                .map_err(|e| {
                    StoreError::Backend(format!("cannot open the PostgreSQL database: {e}"))
                });
        }
        Err(StoreError::Backend(format!(
            "unsupported storage URL {:?}: use sqlite://PATH or postgres://…",
            redact(url)
        )))
    }

    /// The same store, to share between tasks.
    pub fn shared(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(store) => Arc::new(store.clone()),
            Self::Postgres(store) => Arc::new(store.clone()),
        }
    }

    /// Which backend: `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// The schema version of the database.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        match self {
            Self::Sqlite(store) => store.schema_version().await,
            Self::Postgres(store) => store.schema_version().await,
        }
    }

    /// Closes it: pending writes end, later calls fail.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(store) => store.close().await,
            Self::Postgres(store) => store.close().await,
        }
    }
}

impl Deref for AnyStore {
    type Target = dyn Store;

    fn deref(&self) -> &Self::Target {
        match self {
            Self::Sqlite(store) => store,
            Self::Postgres(store) => store,
        }
    }
}

/// `url` without the password it may carry (in its user part or as a
/// `password=` parameter), for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The last `@` ends the user part: a password may hold `/`, `?` or `@`.
    let rest = match rest.rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or_default();
            format!("{user}:…@{}", &rest[at + 1..])
        }
        None => rest.to_owned(),
    };
    let Some((path, query)) = rest.split_once('?') else {
        return format!("{scheme}://{rest}");
    };
    let query: Vec<String> = query
        .split('&')
        .map(|parameter| match parameter.split_once('=') {
            Some((name, _)) if name.eq_ignore_ascii_case("password") => format!("{name}=…"),
            _ => parameter.to_owned(),
        })
        .collect();
    format!("{scheme}://{path}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact("postgres://sigil:s3cret@db.example:5432/sigil?sslmode=require"),
            "postgres://sigil:…@db.example:5432/sigil?sslmode=require"
        );
        assert_eq!(
            redact("postgres://db.example/sigil"),
            "postgres://db.example/sigil"
        );
        assert_eq!(redact("sqlite://sigil.db"), "sqlite://sigil.db");
    }
}
