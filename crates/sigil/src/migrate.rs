//! `sigil migrate`: a deployment's SQLite database copied into PostgreSQL.

use std::io::{self, Write};

use sigil_server::config::Config;

use crate::serve::{ConfigLocation, runtime};

/// Copies the SQLite database `location`'s configuration names into the
/// empty PostgreSQL database at `to`, and says how to switch to it.
pub(crate) fn migrate(location: &ConfigLocation, to: &str) -> Result<(), String> {
    sigil_server::check_not_root_on_others(&location.base())?;
    let config = Config::load(&location.path).map_err(|e| e.to_string())?;
    let base = location.base();
    let Some(source) = config
        .storage
        .url
        .strip_prefix("sqlite://")
        .or_else(|| config.storage.url.strip_prefix("sqlite:"))
    else {
        return Err(format!(
            "{} does not use SQLite ([storage] url = {:?}): nothing to copy",
            location.path.display(),
            sigil_store::redact(&config.storage.url)
        ));
    };
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        return Err(format!(
            "--to takes a PostgreSQL URL, postgres://USER:PASSWORD@HOST:PORT/DATABASE, not {:?}",
            sigil_store::redact(to)
        ));
    }
    let source = base.join(source);
    if !source.is_file() {
        return Err(format!("no database at {}", source.display()));
    }
    let socket = base.join(&config.auth.control_socket);
    let mut out = io::stdout().lock();
    runtime()?.block_on(async {
        // What a running server wrote after the copy began would be lost.
        if tokio::net::UnixStream::connect(&socket).await.is_ok() {
            return Err(format!(
                "a server is running on this configuration (it answers on {}): stop it first, \
                 so that nothing it writes is left behind",
                socket.display()
            ));
        }
        let target = sigil_server::config::StorageConfig {
            url: to.to_owned(),
            ..config.storage.clone()
        };
        let store = sigil_server::open_store(&target, &base)
            .await
            .map_err(|e| e.to_string())?;
        let sigil_store::AnyStore::Postgres(postgres) = &store else {
            return Err("--to must name a PostgreSQL database".into());
        };
        let copied = postgres
            .import_sqlite(&source)
            .await
            .map_err(|e| format!("nothing was copied: {e}"))?;
        store.close().await;
        let _ = writeln!(
            out,
            "copied {} into {}:",
            source.display(),
            sigil_store::redact(to)
        );
        for (table, rows) in copied.iter().filter(|(_, rows)| *rows > 0) {
            let _ = writeln!(out, "  {table}: {rows} row(s)");
        }
        let _ = writeln!(
            out,
            "to run on it, set [storage] url in {} to the URL given with --to \
             (the SQLite database stays where it is)",
            location.path.display()
        );
        Ok(())
    })
}
