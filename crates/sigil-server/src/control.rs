//! The control socket: how the command line reaches a running server.
//!
//! A Unix socket next to the configuration, mode 0600 from the moment it
//! exists (it is bound inside a private directory, then moved into place),
//! answering only processes of the server's own user (or root, checked
//! with `SO_PEERCRED`). One request per line, one answer per line:
//!
//! ```text
//! revoke alice@example.org 3f7a…(64 hex digits)   →   ok 2
//! end alice@example.org deleted                     →   ok 3
//! end alice@example.org disabled                    →   ok 3
//! end alice@example.org password                    →   ok 1
//! ```
//!
//! The store is the source of truth: the command line changes it first
//! (deletes the certificate or the account, disables it, changes the
//! password), then asks the server to end the sessions that no longer
//! have the right to exist: those of the certificate, every session of
//! the account (parked ones included), or those that logged in with a
//! password. Without a running server nothing needs ending: the next
//! login reads the store.
//!
//! Ending is a flag on each session's handle
//! ([`crate::router::SessionHandle::end`]), not a queued message: it
//! overtakes the backlog, and a write stuck on a client that stopped
//! reading gets a short grace instead of the write timeout, so an ended
//! session is gone within seconds. Logins under way are fenced off
//! ([`crate::context::Fences`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jid::BareJid;
use sigil_proto::error::{StreamCondition, StreamError};
use tokio::io::{AsyncBufReadExt, AsyncReadExt as _, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::watch;

use crate::context::Context;
use crate::router::Closing;

/// Which sessions of an account to end, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The account was deleted: every session.
    Deleted,
    /// The account was disabled: every session.
    Disabled,
    /// The password changed: the sessions that logged in with it.
    Password,
}

impl End {
    fn as_str(self) -> &'static str {
        match self {
            Self::Deleted => "deleted",
            Self::Disabled => "disabled",
            Self::Password => "password",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        match word {
            "deleted" => Some(Self::Deleted),
            "disabled" => Some(Self::Disabled),
            "password" => Some(Self::Password),
            _ => None,
        }
    }

    /// The stream error the ended sessions get.
    pub fn error(self) -> StreamError {
        let text = match self {
            Self::Deleted => "This account has been deleted.",
            Self::Disabled => "This account has been disabled.",
            Self::Password => "The password of this account has been changed.",
        };
        StreamError::with_text(StreamCondition::NotAuthorized, text)
    }
}

/// Ends the sessions of `owner` that `end` names; returns how many.
pub fn end_sessions(context: &Context, owner: &BareJid, end: End) -> usize {
    let error = end.error();
    match end {
        End::Deleted => {
            // A new account of the same name starts with the defaults.
            context.archive.forget(owner);
            context.close_sessions(owner, &Closing::Every, &error)
        }
        End::Disabled => context.close_sessions(owner, &Closing::Every, &error),
        End::Password => context.close_sessions(owner, &Closing::Password { except: None }, &error),
    }
}

/// The longest request line accepted.
const MAX_LINE: usize = 512;

/// How long one request may take to arrive.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Listens on `path` until shutdown; the file is removed at the end.
///
/// A socket left at `path` by a server that did not stop cleanly is
/// replaced; any other kind of file there is an error (never deleted),
/// and so is a socket a running server still answers on.
pub(crate) fn start(
    path: &Path,
    context: Arc<Context>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    clear_stale(path)?;
    let listener = bind_private(path)?;
    let owner = own_uid()?;
    let path: PathBuf = path.to_path_buf();
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    match stream.peer_cred() {
                        Ok(peer) if peer.uid() == owner || peer.uid() == 0 => {}
                        Ok(peer) => {
                            tracing::warn!(uid = peer.uid(), "control socket: refused a process of another user");
                            continue;
                        }
                        Err(error) => {
                            tracing::warn!(%error, "control socket: no peer credentials");
                            continue;
                        }
                    }
                    let context = context.clone();
                    tokio::spawn(async move {
                        let (read, mut write) = stream.into_split();
                        let mut lines = BufReader::new(read.take(MAX_LINE as u64 * 16)).lines();
                        while let Ok(Ok(Some(line))) =
                            tokio::time::timeout(REQUEST_TIMEOUT, lines.next_line()).await
                        {
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

/// Removes a socket left by a server that did not stop cleanly.
fn clear_stale(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(format!("cannot check {}: {error}", path.display())),
    };
    if !metadata.file_type().is_socket() {
        return Err(format!(
            "{} exists and is not a socket; move it away or set [auth] control_socket",
            path.display()
        ));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(format!(
            "another server answers on {}: is `sigil serve` already running with this configuration?",
            path.display()
        ));
    }
    std::fs::remove_file(path).map_err(|e| format!("cannot remove the old {}: {e}", path.display()))
}

/// Binds the socket inside a new directory only this user may enter,
/// makes it 0600, then moves it into place: no moment where another user
/// could connect.
fn bind_private(path: &Path) -> Result<UnixListener, String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| format!("no randomness: {e}"))?;
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let private = parent.join(format!(".sigil-control-{suffix}"));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(|e| format!("cannot create {}: {e}", private.display()))?;
    let result = (|| {
        let temporary = private.join("socket");
        let listener = UnixListener::bind(&temporary)
            .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
        std::fs::rename(&temporary, path)
            .map_err(|e| format!("cannot move the socket to {}: {e}", path.display()))?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&private);
    result
}

/// The effective user of this process, as the kernel reports it for its
/// sockets: the credentials of one end of a socket pair made here, the
/// same check `SO_PEERCRED` makes of every client.
fn own_uid() -> Result<u32, String> {
    let (one, _other) =
        tokio::net::UnixStream::pair().map_err(|e| format!("cannot make a socket pair: {e}"))?;
    one.peer_cred()
        .map(|credentials| credentials.uid())
        .map_err(|e| format!("cannot read this process's credentials: {e}"))
}

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
        ["end", owner, which] => {
            let Ok(owner) = BareJid::new(owner) else {
                return "error bad account".into();
            };
            let Some(end) = End::parse(which) else {
                return "error unknown reason".into();
            };
            let closed = end_sessions(context, &owner, end);
            tracing::info!(account = %owner, reason = end.as_str(), closed, "sessions ended");
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
    let hex: String = fingerprint.iter().map(|b| format!("{b:02x}")).collect();
    request_count(socket, &format!("revoke {owner} {hex}")).await
}

/// Asks a running server to end the sessions of `owner` that `end`
/// names; returns how many it ended, or `None` when no server answers.
pub async fn request_end(socket: &Path, owner: &str, end: End) -> Option<usize> {
    request_count(socket, &format!("end {owner} {}", end.as_str())).await
}

async fn request_count(socket: &Path, request: &str) -> Option<usize> {
    let stream = tokio::net::UnixStream::connect(socket).await.ok()?;
    let (read, mut write) = stream.into_split();
    write
        .write_all(format!("{request}\n").as_bytes())
        .await
        .ok()?;
    let mut lines = BufReader::new(read).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(5), lines.next_line())
        .await
        .ok()?
        .ok()??;
    line.strip_prefix("ok ")?.parse().ok()
}
