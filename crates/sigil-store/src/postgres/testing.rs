//! A PostgreSQL schema of its own for each test, on the server the test
//! suite uses: compiled into the library, like the conformance battery,
//! so that every crate's tests can run on PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: a failure to set up is a failed test"
)]

use std::path::Path;
use std::process::Command;

/// A URL with the right to create schemas: `SIGIL_TEST_POSTGRES_URL`, or
/// what `scripts/ensure-postgres` finds or starts.
pub fn admin_url() -> String {
    if let Ok(url) = std::env::var("SIGIL_TEST_POSTGRES_URL") {
        return url;
    }
    // The script answers at once when its server runs, and otherwise
    // starts it (one caller at a time).
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ensure-postgres");
    let out = Command::new(script).output().unwrap();
    assert!(
        out.status.success(),
        "scripts/ensure-postgres failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A schema of its own for one test, dropped with it.
pub struct Schema {
    admin: String,
    /// The schema's name.
    pub name: String,
    /// The URL whose connections work in this schema.
    pub url: String,
}

impl Schema {
    /// A new schema on the server at `admin`.
    pub async fn new(admin: String) -> Self {
        let mut random = [0u8; 8];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut random))
            .unwrap();
        let name = format!(
            "sigil_test_{}",
            random
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        execute(&admin, &format!("CREATE SCHEMA {name}")).await;
        let separator = if admin.contains('?') { '&' } else { '?' };
        // Its connections carry its name, so that the drop can end those
        // a test left behind (their runtime may be gone).
        let url =
            format!("{admin}{separator}options=-c%20search_path%3D{name}&application_name={name}");
        Self { admin, name, url }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Its own thread and runtime: a test's runtime may be ending.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(execute(
                    &admin,
                    &format!(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                         WHERE application_name = '{name}';
                         DROP SCHEMA {name} CASCADE"
                    ),
                ));
        })
        .join();
    }
}

/// Runs `sql` on its own connection to `url`.
pub async fn execute(url: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    client.batch_execute(sql).await.unwrap();
    drop(client);
    let _ = driver.await;
}
