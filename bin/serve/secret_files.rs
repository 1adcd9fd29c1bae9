//! Files of secrets (a shell token, FTP passwords), which only their
//! owner should read.

/// Warns (a log line naming the file and the fix) when a file of secrets
/// can be read by the group or by others.
pub fn warn_if_readable_by_others(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o044 != 0 {
            log::warn!(
                "{} holds secrets but other users can read it (mode {:o}): chmod 600 {}",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
    }
}
