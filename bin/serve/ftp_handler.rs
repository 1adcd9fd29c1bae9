//! The Ftp handler from the flags, after its safety checks.

use std::sync::Arc;

use socketserver::tls::rustls::ServerConfig;
use socketserver_handlers::ftp::{self, Ftp};

use crate::address::exposed;
use crate::cli::Cli;
use crate::secret_files::warn_if_readable_by_others;

/// The Ftp handler from the flags. With no user and no --anonymous,
/// anonymous read-only access is turned on for a loopback address (so the
/// quick start works) and refused elsewhere. Errors carry the exit code.
pub fn ftp_handler(cli: &Cli, tls: Option<Arc<ServerConfig>>) -> Result<Ftp, (u8, String)> {
    let options = &cli.ftp;
    if cli.bind.as_deref().is_some_and(|b| b.starts_with("unix:")) {
        return Err((
            2,
            "ftp needs a TCP address: its data connections are TCP".into(),
        ));
    }
    let mut ftp = Ftp::new(&options.root).map_err(|e| {
        let why = socketserver::error::describe(&e);
        (1, format!("cannot serve {}: {why}", options.root.display()))
    })?;
    let mut users = options.users.clone();
    if let Some(path) = &options.users_file {
        warn_if_readable_by_others(path);
        let listed = ftp::read_users_file(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => (2, e.to_string()),
            _ => {
                let why = socketserver::error::describe(&e);
                (1, format!("cannot read {}: {why}", path.display()))
            }
        })?;
        users.extend(listed);
    }
    for (name, password) in &users {
        ftp = ftp.user(name, password);
    }
    let mut anonymous = options.anonymous;
    if users.is_empty() && !anonymous {
        if let Some(exposed) = exposed(cli) {
            return Err((
                2,
                format!(
                    "no one could log in to ftp on {exposed}: give --user NAME:PASSWORD, \
                     --users FILE or --anonymous (anonymous read-only access is on by \
                     default only on loopback)"
                ),
            ));
        }
        anonymous = true;
    }
    if anonymous && !options.allow_anonymous_home {
        let home = std::env::var_os("HOME").and_then(|h| std::fs::canonicalize(h).ok());
        if let Some(what) = private_root(ftp.root(), home.as_deref()) {
            return Err((
                2,
                format!(
                    "refusing to serve {} to anonymous users: it is {what}; choose the \
                     folder to share with --root DIR, or pass --allow-anonymous-home",
                    ftp.root().display()
                ),
            ));
        }
    }
    if anonymous {
        log::info!("ftp: anonymous read-only access is on (files readable by everyone only)");
    }
    log::info!("ftp: serving {}", ftp.root().display());
    ftp = ftp
        .anonymous(anonymous)
        .read_only(options.read_only)
        .active(!options.no_active)
        .allow_loopback_active(options.allow_loopback_active)
        .passive_timeout(options.passive_timeout.0)
        .login_timeout(cli.login_timeout.unwrap_or(ftp::DEFAULT_LOGIN_TIMEOUT))
        .max_list_entries(options.max_list_entries)
        .hash_transfers(options.hash_transfers)
        .hash_max_size(options.hash_max_size.0)
        .max_hashes(options.max_hashes.unwrap_or_else(ftp::default_max_hashes));
    if let Some(ports) = &options.passive_ports {
        ftp = ftp.passive_ports(ports.clone());
    }
    Ok(ftps(cli, ftp, tls))
}

/// FTPS from the flags: the certificate, and whether TLS is required
/// (by default, unless the address is loopback: elsewhere a password in
/// clear can be read on the way).
fn ftps(cli: &Cli, ftp: Ftp, tls: Option<Arc<ServerConfig>>) -> Ftp {
    let Some(config) = tls else {
        return ftp;
    };
    let exposed = exposed(cli).is_some();
    let required = cli.ftp.tls_required.unwrap_or(exposed);
    if required {
        log::info!("ftp: TLS required (no login before AUTH TLS, no transfer before PROT P)");
    } else {
        log::info!("ftp: FTPS offered (AUTH TLS), not required");
    }
    ftp.tls(config).tls_required(required)
}

/// Why `root` (canonical) must not be served to anonymous users without
/// `--allow-anonymous-home`: it is `/`, the home folder `home`, or a
/// folder holding it. `None`: it may be.
fn private_root(root: &std::path::Path, home: Option<&std::path::Path>) -> Option<&'static str> {
    if root.parent().is_none() {
        return Some("the whole file system");
    }
    match home {
        Some(home) if home == root => Some("your home folder"),
        Some(home) if home.starts_with(root) => Some("a folder that holds your home folder"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_roots() {
        use std::path::Path;
        let home = Some(Path::new("/home/alice"));
        assert_eq!(
            private_root(Path::new("/"), home),
            Some("the whole file system")
        );
        assert_eq!(
            private_root(Path::new("/"), None),
            Some("the whole file system")
        );
        assert_eq!(
            private_root(Path::new("/home/alice"), home),
            Some("your home folder")
        );
        assert!(private_root(Path::new("/home"), home).is_some());
        assert_eq!(private_root(Path::new("/home/alice/pub"), home), None);
        assert_eq!(private_root(Path::new("/home/alicia"), home), None);
        assert_eq!(private_root(Path::new("/srv/ftp"), None), None);
    }
}
