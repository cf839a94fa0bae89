//! The SQLite backend: the conformance battery on real database files and
//! in memory, then what only SQLite has (files, pragmas, migrations).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use sigil_store::sqlite::SCHEMA_VERSION;
use sigil_store::{AccountStore, CertificateStore, OfflineStore, SqliteStore, Store, StoreError};
use tempfile::TempDir;

sigil_store::conformance_tests!(sqlite_file, fresh_file_store());
sigil_store::conformance_tests!(sqlite_memory, async {
    SqliteStore::in_memory().await.unwrap()
});

#[tokio::test]
async fn offline_message_survives_reopen() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("sigil.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store
        .create_account("juliet@example.com", &[])
        .await
        .unwrap();
    let id = store
        .store_offline(
            "juliet@example.com",
            "romeo@example.net",
            "<message/>",
            7,
            sigil_store::OfflineQuota::messages(10),
        )
        .await
        .unwrap();
    // Dropped without `close`: nothing more than the commit made it durable.
    drop(store);

    let store = SqliteStore::open(&path).await.unwrap();
    let messages = store
        .offline_messages("juliet@example.com", 10)
        .await
        .unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].id, id);
    assert_eq!(messages[0].stanza, "<message/>");
    store.close().await;

    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.offline_count("juliet@example.com").await.unwrap(), 1);
}

#[tokio::test]
async fn reopening_applies_no_migration_twice() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("sigil.db");
    for _ in 0..3 {
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
        store.close().await;
    }
    let connection = rusqlite::Connection::open(&path).unwrap();
    let rows: Vec<i64> = connection
        .prepare("SELECT version FROM schema_version ORDER BY version")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let expected: Vec<i64> = (1..=SCHEMA_VERSION).collect();
    assert_eq!(rows, expected);
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("sigil.db");
    SqliteStore::open(&path).await.unwrap().close().await;
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?, 0)",
            [SCHEMA_VERSION + 1],
        )
        .unwrap();
    drop(connection);

    let error = SqliteStore::open(&path).await.unwrap_err();
    assert_eq!(
        error,
        StoreError::SchemaTooNew {
            found: SCHEMA_VERSION + 1,
            supported: SCHEMA_VERSION,
        }
    );
    assert!(error.to_string().contains("newer"), "{error}");
}

#[tokio::test]
async fn missing_directory_is_an_error() {
    let directory = tempfile::tempdir().unwrap();
    let missing = directory.path().join("missing");
    let path = missing.join("sigil.db");
    let error = SqliteStore::open(&path).await.unwrap_err();
    let StoreError::Backend(message) = &error else {
        panic!("unexpected error {error:?}");
    };
    assert!(message.contains("does not exist"), "{message}");
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
    assert!(!missing.exists());
}

#[tokio::test]
async fn file_is_durable_wal() {
    let (store, directory) = fresh_file_store().await;
    let settings = store.settings().await.unwrap();
    assert_eq!(settings.journal_mode, "wal");
    assert_eq!(settings.synchronous, 2, "synchronous = FULL");
    assert!(settings.foreign_keys);
    assert_eq!(settings.busy_timeout_ms, 5000);
    assert!(directory.path().join("sigil.db").exists());
}

#[tokio::test]
async fn open_url_uses_the_same_settings() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("by-url.db");
    let store = SqliteStore::open_url(&format!("{}?mode=rwc", url(&path)))
        .await
        .unwrap();
    let settings = store.settings().await.unwrap();
    assert_eq!(settings.journal_mode, "wal");
    assert_eq!(settings.synchronous, 2);
    assert!(settings.foreign_keys);
    assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    assert!(path.exists());

    let memory = SqliteStore::open_url("sqlite::memory:").await.unwrap();
    memory
        .create_account("juliet@example.com", &[])
        .await
        .unwrap();
    assert_eq!(memory.accounts().await.unwrap(), ["juliet@example.com"]);

    let error = SqliteStore::open_url("postgres://localhost/sigil")
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
}

#[tokio::test]
async fn in_memory_stores_are_separate() {
    let first = SqliteStore::in_memory().await.unwrap();
    let second = SqliteStore::in_memory().await.unwrap();
    first
        .create_account("juliet@example.com", &[])
        .await
        .unwrap();
    assert!(second.accounts().await.unwrap().is_empty());
    assert_eq!(first.settings().await.unwrap().journal_mode, "memory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_dyn_store_across_tasks() {
    let (store, _directory) = fresh_file_store().await;
    let store: Arc<dyn Store> = Arc::new(store);
    store
        .create_account("juliet@example.com", &[])
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for index in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let stanza = format!("<message id='{index}'/>");
            store
                .store_offline(
                    "juliet@example.com",
                    "romeo@example.net",
                    &stanza,
                    index,
                    sigil_store::OfflineQuota::messages(100),
                )
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(store.offline_count("juliet@example.com").await.unwrap(), 8);
}

/// A store in a new file of its own, with the directory that holds it.
async fn fresh_file_store() -> (SqliteStore, TempDir) {
    let directory = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&directory.path().join("sigil.db"))
        .await
        .unwrap();
    (store, directory)
}

fn url(path: &std::path::Path) -> String {
    format!("sqlite://{}", path.display())
}

#[tokio::test]
async fn a_closed_store_refuses_reads_and_writes() {
    let (store, _directory) = fresh_file_store().await;
    store
        .create_account("juliet@example.com", &[])
        .await
        .unwrap();
    let other = store.clone();
    store.close().await;
    for error in [
        other.accounts().await.unwrap_err(),
        other
            .create_account("romeo@example.net", &[])
            .await
            .unwrap_err(),
    ] {
        let StoreError::Backend(message) = &error else {
            panic!("unexpected error {error:?}");
        };
        assert!(message.contains("closed"), "{message}");
    }
}

#[tokio::test]
async fn undecodable_rows_are_reported_as_corrupt() {
    let (store, directory) = fresh_file_store().await;
    store
        .create_account("juliet@example.com", &[])
        .await
        .unwrap();
    // Written behind the store's back, past the schema's checks: a
    // fingerprint of the wrong length and a SCRAM algorithm nobody knows.
    let connection = rusqlite::Connection::open(directory.path().join("sigil.db")).unwrap();
    connection
        .execute_batch(
            "PRAGMA ignore_check_constraints = ON;
             INSERT INTO certificates
                 (owner, name, fingerprint, der, no_cert_management, disabled, added_at)
             VALUES ('juliet@example.com', 'phone', x'0102', x'30', 0, 0, 0);
             INSERT INTO credentials (account, algorithm, salt, iterations, stored_key, server_key)
             VALUES ('juliet@example.com', 'SCRAM-MD5', x'00', 4096, x'00', x'00');",
        )
        .unwrap();
    drop(connection);
    for error in [
        store.certificates("juliet@example.com").await.unwrap_err(),
        store.account("juliet@example.com").await.unwrap_err(),
    ] {
        assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");
    }
}

/// Reads run on the callers' threads on pooled connections while a writer
/// commits: every read sees a whole commit, never a part of one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_beside_writes_see_whole_commits() {
    let (store, _directory) = fresh_file_store().await;
    let store: Arc<dyn Store> = Arc::new(store);
    store
        .create_account("juliet@example.com", &[])
        .await
        .unwrap();
    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for index in 0..50 {
                let item = sigil_store::RosterItem {
                    groups: vec!["Friends".into(), format!("Group {index}")],
                    ..sigil_store::RosterItem::new(format!("friend{index}@example.org"))
                };
                store
                    .put_roster_item("juliet@example.com", &item)
                    .await
                    .unwrap();
            }
        })
    };
    let mut readers = Vec::new();
    for _ in 0..4 {
        let store = Arc::clone(&store);
        readers.push(tokio::spawn(async move {
            let mut last = 0;
            for _ in 0..200 {
                let roster = store.roster("juliet@example.com").await.unwrap();
                // One item and one version per commit, two groups each.
                assert_eq!(u64::try_from(roster.items.len()).unwrap(), roster.version);
                assert!(roster.items.iter().all(|item| item.groups.len() == 2));
                assert!(roster.version >= last, "versions never go back");
                last = roster.version;
                tokio::task::yield_now().await;
            }
        }));
    }
    writer.await.unwrap();
    for reader in readers {
        reader.await.unwrap();
    }
    assert_eq!(
        store.roster("juliet@example.com").await.unwrap().version,
        50
    );
}

/// The database and its WAL are readable by their owner only; an older
/// database that others could read is restricted when opened.
#[cfg(unix)]
#[tokio::test]
async fn the_database_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("sigil.db");
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let store = SqliteStore::open(&path).await.unwrap();
    store
        .create_account("juliet@example.com", &[])
        .await
        .unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&directory.path().join("sigil.db-wal")), 0o600);
    store.close().await;

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(mode(&path), 0o600);
    store.close().await;
}

/// A database written by schema 6 (archive ids of any form, with a
/// unique index of them) opens at the newest schema with its archive
/// whole: the old ids are still found, and new ones are added beside
/// them.
#[tokio::test]
async fn archives_of_schema_6_migrate_with_their_ids() {
    use sigil_store::{ArchiveQuery, ArchiveStore, ArchivedMessage};
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("sigil.db");
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection
            .execute_batch(
                "CREATE TABLE schema_version (
                    version INTEGER NOT NULL PRIMARY KEY,
                    applied_at INTEGER NOT NULL
                ) STRICT",
            )
            .unwrap();
        for (version, script) in [
            include_str!("../migrations/sqlite/0001_initial.sql"),
            include_str!("../migrations/sqlite/0002_blocking.sql"),
            include_str!("../migrations/sqlite/0003_saved_sessions.sql"),
            include_str!("../migrations/sqlite/0004_revocations.sql"),
            include_str!("../migrations/sqlite/0005_archive.sql"),
            include_str!("../migrations/sqlite/0006_documents.sql"),
        ]
        .into_iter()
        .enumerate()
        {
            connection.execute_batch(script).unwrap();
            connection
                .execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?, 0)",
                    [i64::try_from(version).unwrap() + 1],
                )
                .unwrap();
        }
        connection
            .execute_batch(
                "INSERT INTO accounts (jid, created_at) VALUES ('juliet@example.com', 0);
                 INSERT INTO archive (seq, owner, id, with_bare, with_resource, stanza) VALUES
                   (10, 'juliet@example.com', '0123456789abcdef0123456789abcdef', 'romeo@example.net', '', '<a/>'),
                   (20, 'juliet@example.com', 'second', 'romeo@example.net', 'balcony', '<b/>');",
            )
            .unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    let new = ArchivedMessage {
        id: sigil_store::archive_id(30, &[5; 12]),
        owner: "juliet@example.com".into(),
        with: "romeo@example.net".into(),
        at: 30,
        stanza: "<c/>".into(),
    };
    assert_eq!(store.archive(vec![new.clone()]).await.unwrap(), 1);
    let query = |after: &str| ArchiveQuery {
        after_id: Some(after.into()),
        max: 10,
        ..ArchiveQuery::default()
    };
    let after_first = store
        .archive_query(
            "juliet@example.com",
            &query("0123456789abcdef0123456789abcdef"),
        )
        .await
        .unwrap();
    let ids: Vec<&str> = after_first.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["second", new.id.as_str()]);
    assert_eq!(after_first.messages[0].with, "romeo@example.net/balcony");
    let after_second = store
        .archive_query("juliet@example.com", &query("second"))
        .await
        .unwrap();
    assert_eq!(after_second.messages.len(), 1);
    // An old id is still refused twice.
    let again = ArchivedMessage {
        id: "second".into(),
        ..new
    };
    assert_eq!(
        store.archive(vec![again]).await,
        Err(StoreError::Conflict("id".into()))
    );
}
