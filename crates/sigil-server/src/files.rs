//! Writing files the server creates: never over an existing one, keys
//! readable by the owner only.

use std::io::Write;
use std::path::Path;

/// Writes `data` to a new file (fails if it exists); mode 0600 when
/// `private`.
pub fn write_new(path: &Path, data: &[u8], private: bool) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(data)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
