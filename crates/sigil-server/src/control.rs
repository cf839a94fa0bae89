//! The control socket: how `sigil cert revoke` reaches a running server.
//!
//! A Unix socket next to the configuration (mode 0600: only the server's
//! user may connect). One request per line, one answer per line:
//!
//! ```text
//! revoke alice@example.org 3f7a…(64 hex digits)   →   ok 2
//! ```
//!
//! The store is the source of truth: the command line deletes the
//! certificate there first, then asks the server to end the sessions that
//! logged in with it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jid::BareJid;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::watch;

use crate::context::Context;

/// The longest request line accepted.
const MAX_LINE: usize = 512;

/// Listens on `path` until shutdown; the file is removed at the end.
pub(crate) fn start(
    path: &Path,
    context: Arc<Context>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    if path.exists() {
        // A socket left by a server that did not stop cleanly.
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove the old {}: {e}", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
    }
    let path: PathBuf = path.to_path_buf();
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let context = context.clone();
                    tokio::spawn(async move {
                        let (read, mut write) = stream.into_split();
                        let mut lines = BufReader::new(read.take(MAX_LINE as u64 * 16)).lines();
                        while let Ok(Some(line)) = lines.next_line().await {
                            let answer = answer(&context, &line);
                            if write.write_all(format!("{answer}\n").as_bytes()).await.is_err() {
                                break;
                            }
                        }
                    });
                }
                _ = shutdown.changed() => break,
            }
        }
        let _ = std::fs::remove_file(&path);
    }))
}

use tokio::io::AsyncReadExt as _;

fn answer(context: &Context, line: &str) -> String {
    if line.len() > MAX_LINE {
        return "error line too long".into();
    }
    let parts: Vec<&str> = line.split_whitespace().collect();
    match parts.as_slice() {
        ["revoke", owner, fingerprint] => {
            let Ok(owner) = BareJid::new(owner) else {
                return "error bad account".into();
            };
            let Some(fingerprint) = parse_hex(fingerprint) else {
                return "error bad fingerprint".into();
            };
            let closed = crate::saslcert::close_sessions(context, &owner, &fingerprint);
            format!("ok {closed}")
        }
        ["ping"] => "ok".into(),
        _ => "error unknown request".into(),
    }
}

fn parse_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.replace(':', "");
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Asks a running server to end the sessions of a revoked certificate;
/// returns how many it ended, or `None` when no server answers.
pub async fn request_revoke(socket: &Path, owner: &str, fingerprint: &[u8; 32]) -> Option<usize> {
    let stream = tokio::net::UnixStream::connect(socket).await.ok()?;
    let (read, mut write) = stream.into_split();
    let hex: String = fingerprint.iter().map(|b| format!("{b:02x}")).collect();
    write
        .write_all(format!("revoke {owner} {hex}\n").as_bytes())
        .await
        .ok()?;
    let mut lines = BufReader::new(read).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(5), lines.next_line())
        .await
        .ok()?
        .ok()??;
    line.strip_prefix("ok ")?.parse().ok()
}
