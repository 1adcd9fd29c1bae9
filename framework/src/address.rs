//! Addresses of both socket families behind one type.

use std::fmt;
use std::net;
use std::path::{Path, PathBuf};

/// Where a socket is: an IP address and port, or a Unix-domain socket path.
///
/// Displays the way people type addresses: `127.0.0.1:9999`, `[::1]:9999`,
/// `unix:/run/app.sock`, and `unix:(unnamed)` for the anonymous client end of
/// a Unix connection.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// An IPv4 or IPv6 socket address.
    Inet(net::SocketAddr),
    /// A Unix-domain socket; `None` for an unnamed (client) socket.
    Unix(Option<PathBuf>),
}

impl Address {
    /// The IP socket address, if this is one.
    pub fn as_inet(&self) -> Option<net::SocketAddr> {
        match self {
            Address::Inet(addr) => Some(*addr),
            Address::Unix(_) => None,
        }
    }

    /// The socket file's path, if this is a named Unix-domain socket.
    pub fn as_unix_path(&self) -> Option<&Path> {
        match self {
            Address::Unix(Some(path)) => Some(path),
            _ => None,
        }
    }

    pub(crate) fn from_unix(addr: &std::os::unix::net::SocketAddr) -> Address {
        Address::Unix(addr.as_pathname().map(Path::to_path_buf))
    }
}

impl From<net::SocketAddr> for Address {
    fn from(addr: net::SocketAddr) -> Self {
        Address::Inet(addr)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Inet(addr) => write!(f, "{addr}"),
            Address::Unix(Some(path)) => write!(f, "unix:{}", path.display()),
            Address::Unix(None) => f.write_str("unix:(unnamed)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_typed() {
        let v4: net::SocketAddr = "127.0.0.1:9999".parse().unwrap();
        let v6: net::SocketAddr = "[::1]:21".parse().unwrap();
        assert_eq!(Address::from(v4).to_string(), "127.0.0.1:9999");
        assert_eq!(Address::from(v6).to_string(), "[::1]:21");
        assert_eq!(
            Address::Unix(Some("/tmp/s.sock".into())).to_string(),
            "unix:/tmp/s.sock"
        );
        assert_eq!(Address::Unix(None).to_string(), "unix:(unnamed)");
    }
}
