//! The PostgreSQL backend against a real server: the one
//! `scripts/ensure-postgres` finds or starts on loopback, or
//! `SIGIL_TEST_POSTGRES_URL`; each test in a schema of its own, dropped
//! after. The conformance battery first, then what only PostgreSQL has
//! (migrations shared by nodes, TLS settings).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use sigil_store::postgres::testing::{Schema, admin_url, execute};
use sigil_store::postgres::{PostgresOptions, SCHEMA_VERSION};
use sigil_store::{AccountStore, PostgresStore, StoreError};

/// A fresh store in a schema of its own, with the schema's guard.
async fn fresh_store() -> (PostgresStore, Schema) {
    let schema = Schema::new(admin_url()).await;
    let options = PostgresOptions {
        max_connections: 4,
        ..PostgresOptions::default()
    };
    let store = PostgresStore::connect_with(&schema.url, &options)
        .await
        .unwrap();
    (store, schema)
}

sigil_store::conformance_tests!(postgres, fresh_store());

#[tokio::test]
async fn migrations_run_once_and_bring_the_schema_up_to_date() {
    let admin = admin_url();
    let schema = Schema::new(admin).await;
    for _ in 0..3 {
        let store = PostgresStore::connect(&schema.url).await.unwrap();
        assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
        store.close().await;
    }
    // Each version once, in this schema and not elsewhere.
    let (client, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap();
    let versions: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
            &[&schema.name],
        )
        .await
        .unwrap()
        .get(0);
    assert!(tables > 10, "{tables} tables");
}

#[tokio::test]
async fn nodes_starting_together_migrate_once() {
    let admin = admin_url();
    let schema = Schema::new(admin).await;
    let mut starting = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let url = schema.url.clone();
        starting.spawn(async move { PostgresStore::connect(&url).await });
    }
    while let Some(started) = starting.join_next().await {
        let store = started.unwrap().unwrap();
        assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    }
}

#[tokio::test]
async fn a_newer_schema_is_left_alone() {
    let admin = admin_url();
    let schema = Schema::new(admin).await;
    PostgresStore::connect(&schema.url)
        .await
        .unwrap()
        .close()
        .await;
    execute(
        &schema.url,
        &format!(
            "INSERT INTO schema_migrations (version) VALUES ({})",
            SCHEMA_VERSION + 1
        ),
    )
    .await;
    let refused = PostgresStore::connect(&schema.url).await.unwrap_err();
    assert_eq!(
        refused,
        StoreError::SchemaTooNew {
            found: SCHEMA_VERSION + 1,
            supported: SCHEMA_VERSION
        }
    );
}

#[tokio::test]
async fn bad_urls_and_refused_tls_are_clear_errors() {
    let invalid = PostgresStore::connect("postgres://[::1").await.unwrap_err();
    assert!(
        matches!(&invalid, StoreError::Backend(text) if text.contains("invalid PostgreSQL URL")),
        "{invalid:?}"
    );
    let admin = admin_url();
    // The test server speaks no TLS: asking for it fails, with no
    // fallback to plain text.
    let separator = if admin.contains('?') { '&' } else { '?' };
    let options = PostgresOptions {
        ca_pem: Some(b"not a certificate".to_vec()),
        ..PostgresOptions::default()
    };
    let bad_ca =
        PostgresStore::connect_with(&format!("{admin}{separator}sslmode=require"), &options)
            .await
            .unwrap_err();
    assert!(
        matches!(&bad_ca, StoreError::Backend(text) if text.contains("CA file")),
        "{bad_ca:?}"
    );
    let refused = PostgresStore::connect(&format!("{admin}{separator}sslmode=require"))
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::Backend(_)), "{refused:?}");
}

#[tokio::test]
async fn an_sqlite_deployment_copies_over_whole_into_an_empty_database_only() {
    use sigil_store::conformance::dataset;
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("sigil.db");
    let sqlite = sigil_store::SqliteStore::open(&path).await.unwrap();
    dataset::fill(&sqlite).await;
    sqlite.close().await;
    let (store, _schema) = fresh_store().await;
    let copied = store.import_sqlite(&path).await.unwrap();
    assert_eq!(copied.len(), sigil_store::postgres::import::TABLES.len());
    let rows = |table: &str| copied.iter().find(|(t, _)| *t == table).unwrap().1;
    assert_eq!(rows("accounts"), 4);
    assert_eq!(rows("archive"), 26);
    assert_eq!(rows("offline_messages"), 1);
    assert!(
        copied.iter().all(|(_, n)| *n > 0),
        "a table left empty: {copied:?}"
    );
    dataset::check(&store).await;
    // The same reads pass on the original.
    let sqlite = sigil_store::SqliteStore::open(&path).await.unwrap();
    dataset::check(&sqlite).await;
    sqlite.close().await;
    // A database that holds data is never merged into, and is left as
    // it was.
    let error = store.import_sqlite(&path).await.unwrap_err();
    assert!(error.to_string().contains("already holds data"), "{error}");
    assert_eq!(store.accounts().await.unwrap().len(), 5);
    let missing = directory.path().join("missing.db");
    let error = store.import_sqlite(&missing).await.unwrap_err();
    assert!(error.to_string().contains("no SQLite database"), "{error}");
    assert!(!missing.exists(), "a missing source is not created");
}
