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

/// Fails if other users than this process's and root may change
/// `directory` or any directory above it (a sticky directory such as
/// `/tmp` is fine above one of ours: others cannot rename what is not
/// theirs in it). Whoever can change where trusted CAs or revocation lists
/// are read from chooses who logs in.
pub(crate) fn check_not_changeable(directory: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let canonical = std::fs::canonicalize(directory)
            .map_err(|e| format!("{}: {e}", directory.display()))?;
        let mut first = true;
        for path in canonical.ancestors() {
            let metadata =
                std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let sticky = metadata.mode() & 0o1000 != 0;
            if changeable_by_others(&metadata) && (first || !sticky || !owner_is_trusted(&metadata))
            {
                return Err(format!(
                    "{} may be changed by other users (mode {:o}, owner {})",
                    path.display(),
                    metadata.mode() & 0o7777,
                    user_name(metadata.uid())
                ));
            }
            first = false;
        }
    }
    let _ = directory;
    Ok(())
}

/// Whether a file belongs to root or to this process's user.
#[cfg(unix)]
fn owner_is_trusted(metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    metadata.uid() == 0 || Some(metadata.uid()) == effective_uid()
}

/// The largest trusted CA or revocation list file read.
const MAX_TRUST_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Reads a trusted CA or revocation list file, checking the file that was
/// opened (not the path again) for a regular file that other users may
/// not change.
pub(crate) fn read_unchangeable(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let metadata = file.metadata().map_err(|e| e.to_string())?;
    if !metadata.is_file() {
        return Err("not a regular file".into());
    }
    if changeable_by_others(&metadata) {
        return Err("other users may change it".into());
    }
    if metadata.len() > MAX_TRUST_FILE_BYTES {
        return Err(format!("larger than {MAX_TRUST_FILE_BYTES} bytes"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_TRUST_FILE_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    Ok(bytes)
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
        // A key anyone may read is restricted (a plain file of the
        // server's own); a group-readable one, or one behind a link, may be
        // shared on purpose (the `ssl-cert` group): said, not changed.
        let own_file = std::fs::symlink_metadata(key).is_ok_and(|m| m.file_type().is_file());
        if let Ok(metadata) = std::fs::metadata(key) {
            let mode = metadata.permissions().mode();
            if mode & 0o007 != 0 && own_file {
                match std::fs::set_permissions(key, std::fs::Permissions::from_mode(mode & 0o7770))
                {
                    Ok(()) => problems.push(format!(
                        "{} was readable by every user: no longer (mode {:o})",
                        key.display(),
                        mode & 0o770
                    )),
                    Err(error) => problems.push(format!(
                        "{} is readable by every user and cannot be restricted: {error}",
                        key.display()
                    )),
                }
            } else if mode & 0o077 != 0 {
                problems.push(format!(
                    "{} may be read by other users (mode {:o}): `chmod 600` it unless that is meant",
                    key.display(),
                    mode & 0o777
                ));
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
