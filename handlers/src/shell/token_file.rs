//! Where `serve --handler shell` keeps the token it generates, and where
//! `client shell` finds it: a file only its user can read, named after the
//! server's port, in a folder only that user can enter:
//!
//! * `$XDG_RUNTIME_DIR/socketserver/shell-PORT.token` when
//!   `XDG_RUNTIME_DIR` is set (the per-user runtime folder of systemd
//!   systems, `/run/user/UID`, already private);
//! * else `TMPDIR/socketserver-UID/shell-PORT.token` (`/tmp` by default).
//!
//! The folder is created with mode 0700; one that exists must be a real
//! folder (not a link), belong to this user and be closed to others, or
//! nothing is written to or read from it: another user who made it first
//! could read the token, or plant one. A Unix socket's token is named
//! after the socket's absolute path (`shell-unix-_tmp_s.sock.token`).

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use socketserver::Address;

/// The folders a token file may be in, the server's choice first.
pub fn folders() -> Vec<PathBuf> {
    let mut folders = Vec::new();
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        if runtime.is_absolute() && runtime.is_dir() {
            folders.push(runtime.join("socketserver"));
        }
    }
    let uid = nix::unistd::geteuid();
    folders.push(std::env::temp_dir().join(format!("socketserver-{uid}")));
    folders
}

/// The token file's name for a server on `address`.
pub fn file_name(address: &Address) -> String {
    match (address.as_inet(), address.as_unix_path()) {
        (Some(inet), _) => format!("shell-{}.token", inet.port()),
        (None, Some(path)) => {
            let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
            let name: String = absolute
                .to_string_lossy()
                .chars()
                .map(|c| match c {
                    'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' => c,
                    _ => '_',
                })
                .collect();
            format!("shell-unix-{name}.token")
        }
        (None, None) => "shell.token".to_string(),
    }
}

/// Checks that `folder` is a folder (not a link), this user's, and closed
/// to group and others.
///
/// # Errors
/// `PermissionDenied` saying which of those fails, or as `lstat` does.
pub fn check_private(folder: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(folder)?;
    let refuse = |why: String| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} {why}", folder.display()),
        ))
    };
    if !meta.is_dir() {
        return refuse("is not a folder".into());
    }
    let uid = nix::unistd::geteuid().as_raw();
    if meta.uid() != uid {
        return refuse(format!(
            "belongs to uid {}, not to this user ({uid})",
            meta.uid()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return refuse(format!(
            "is open to other users (mode {:o}); it must be 0700",
            meta.mode() & 0o777
        ));
    }
    Ok(())
}

/// A token file this process wrote; removed on drop if it still holds
/// this token (a newer server on the same port may have replaced it).
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    token: String,
}

impl TokenFile {
    /// Writes `token` for a server on `address` into the first of
    /// [`folders`], created 0700 if missing, as a 0600 file (written
    /// under a temporary name, then renamed over any stale one).
    ///
    /// # Errors
    /// If the folder is not private (see [`check_private`]) or cannot be
    /// made, or the file cannot be written.
    pub fn create(address: &Address, token: &str) -> io::Result<TokenFile> {
        let folder = folders().remove(0);
        match DirBuilder::new().mode(0o700).create(&folder) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        check_private(&folder)?;
        let path = folder.join(file_name(address));
        let temporary = folder.join(format!(".{}.{}", file_name(address), std::process::id()));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        let written = file
            .write_all(format!("{token}\n").as_bytes())
            .and_then(|()| fs::rename(&temporary, &path));
        if let Err(e) = written {
            let _ = fs::remove_file(&temporary);
            return Err(e);
        }
        Ok(TokenFile {
            path,
            token: token.to_string(),
        })
    }

    /// Where the token is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        if read(&self.path).is_ok_and(|token| token == self.token) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Reads a token file: its first line, trimmed.
///
/// # Errors
/// As reading the file.
pub fn read(path: &Path) -> io::Result<String> {
    let text = fs::read_to_string(path)?;
    Ok(text.lines().next().unwrap_or("").trim().to_string())
}

/// The token file of the server at `addr` as a client names it
/// (`HOST:PORT` or `unix:PATH`), if there is one in a private folder.
/// Only for a server on this machine (a loopback address or a Unix
/// socket): a local token is never sent elsewhere.
pub fn find(addr: &str) -> Option<PathBuf> {
    let address = match addr.strip_prefix("unix:") {
        Some(path) => Address::Unix(Some(PathBuf::from(path))),
        None => {
            use std::net::ToSocketAddrs;
            let resolved: Vec<_> = addr.to_socket_addrs().ok()?.collect();
            let first = *resolved.first()?;
            if !resolved.iter().all(|a| a.ip().to_canonical().is_loopback()) {
                return None;
            }
            Address::Inet(first)
        }
    };
    let name = file_name(&address);
    folders()
        .into_iter()
        .filter(|folder| check_private(folder).is_ok())
        .map(|folder| folder.join(&name))
        .find(|path| path.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_port_or_the_socket_path() {
        let inet = Address::Inet("127.0.0.1:9998".parse().unwrap());
        assert_eq!(file_name(&inet), "shell-9998.token");
        let unix = Address::Unix(Some(PathBuf::from("/tmp/my shell.sock")));
        assert_eq!(file_name(&unix), "shell-unix-_tmp_my_shell.sock.token");
    }

    #[test]
    fn remote_servers_never_get_a_local_token() {
        assert_eq!(find("192.0.2.1:9998"), None);
    }
}
