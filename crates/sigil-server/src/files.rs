//! Writing files the server creates: never over an existing one, each
//! readable by the server's user only (its data holds keys, password
//! verifiers, messages and rosters).

use std::io::Write;
use std::path::Path;

/// Writes `data` to a new file (fails if it exists), mode 0600.
pub fn write_new(path: &Path, data: &[u8]) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(data)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Creates a directory (and its missing parents) that only the server's
/// user may enter: mode 0700.
pub fn create_private_dir(path: &Path) -> Result<(), String> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// The effective user of this process: the owner Linux gives
/// `/proc/self`. `None` where that cannot be read.
pub fn effective_uid() -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").ok().map(|m| m.uid())
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The name of a user, from `/etc/passwd`, or the number.
pub(crate) fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let id: u32 = fields.nth(1)?.parse().ok()?;
                (id == uid).then(|| name.to_owned())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

/// Refuses root on a data directory that belongs to another user: the
/// files it would write there (the database's journal, keys, trusted
/// CAs) would belong to root, and the server, running as that user,
/// could not read them.
pub fn check_not_root_on_others(base: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(metadata) = std::fs::metadata(base) else {
            return Ok(());
        };
        if effective_uid() == Some(0) && metadata.uid() != 0 {
            let name = user_name(metadata.uid());
            return Err(format!(
                "{} belongs to {name}: run this as that user (for example `sudo -u {name} sigil …`), \
                 so that what it writes stays readable by the server",
                base.display()
            ));
        }
    }
    Ok(())
}

/// Whether others than the owner (and root) may change a file or
/// directory: writable by group or others, or owned by another user.
pub(crate) fn changeable_by_others(metadata: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let owner = metadata.uid();
        metadata.mode() & 0o022 != 0 || (owner != 0 && Some(owner) != effective_uid())
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        false
    }
}

/// What is wrong with the permissions of the server's data: a data
/// directory others may enter, a server key others may read (restricted
/// to its owner at once, as the database is), trust anchors or
/// revocation lists others may change (such anchors are not used). One
/// line each, for the log.
pub fn check_permissions(base: &Path, key: &Path, trust: &[&Path]) -> Vec<String> {
    let mut problems = Vec::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(metadata) = std::fs::metadata(base)
            && metadata.permissions().mode() & 0o077 != 0
        {
            problems.push(format!(
                "{} may be entered by other users (mode {:o}): `chmod 700 {}`",
                base.display(),
                metadata.permissions().mode() & 0o7777,
                base.display()
            ));
        }
        if let Ok(metadata) = std::fs::metadata(key)
            && metadata.permissions().mode() & 0o077 != 0
        {
            match std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)) {
                Ok(()) => problems.push(format!(
                    "{} was readable by other users: restricted to its owner (mode 600)",
                    key.display()
                )),
                Err(error) => problems.push(format!(
                    "{} is readable by other users and cannot be restricted: {error}",
                    key.display()
                )),
            }
        }
        for directory in trust {
            let mut paths = vec![directory.to_path_buf()];
            if let Ok(entries) = std::fs::read_dir(directory) {
                paths.extend(entries.flatten().take(4096).map(|e| e.path()));
            }
            for path in paths {
                if let Ok(metadata) = std::fs::metadata(&path)
                    && changeable_by_others(&metadata)
                {
                    problems.push(format!(
                        "{} may be changed by other users, who could then choose which certificates log in: \
                         make it the server user's own and `chmod go-w` it",
                        path.display()
                    ));
                }
            }
        }
    }
    let _ = (base, key, trust);
    problems
}
