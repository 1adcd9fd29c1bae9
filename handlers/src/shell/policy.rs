//! What the shell refuses before it runs anything: serving with no token
//! unless told to (and then loopback peers only), running as root unless
//! told to, a token too short to be a secret, and HTTP requests (a web page
//! can make the operator's browser send one to any local port).

use std::fmt;

use socketserver::Address;

use super::token::MIN_TOKEN_LEN;

/// Why a [`Shell`](super::Shell) refuses to serve, as [`Shell::check`]
/// reports it (and each connection is told, before it is closed).
///
/// [`Shell::check`]: super::Shell::check
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// No token, and [`Shell::allow_no_token`](super::Shell::allow_no_token)
    /// was not called.
    NoToken,
    /// The token is shorter than [`MIN_TOKEN_LEN`] bytes (its length).
    ShortToken(usize),
    /// The process runs as root (effective uid 0), and
    /// [`Shell::allow_root`](super::Shell::allow_root) was not called.
    Root,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::NoToken => f.write_str(
                "no token is set: any local process, and any web page open in a browser here, \
                 could run commands; set a token (or allow no token explicitly)",
            ),
            PolicyError::ShortToken(len) => write!(
                f,
                "the token is {len} bytes long: at least {MIN_TOKEN_LEN} are needed"
            ),
            PolicyError::Root => {
                f.write_str("refusing to run commands as root (allow it explicitly if you mean it)")
            }
        }
    }
}

impl std::error::Error for PolicyError {}

/// Whether this process runs as root (effective uid 0).
pub fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A peer on this machine: loopback, or a Unix socket.
pub(crate) fn is_local(peer: &Address) -> bool {
    match peer.as_inet() {
        Some(addr) => addr.ip().to_canonical().is_loopback(),
        None => true,
    }
}

/// The methods a browser (or curl) can start a request with.
const HTTP_METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"OPTIONS ",
    b"DELETE ",
    b"CONNECT ",
    b"PATCH ",
    b"TRACE ",
];

/// True if `bytes` (a connection's first bytes, or one request) look like
/// HTTP: they start with a method and a space, or one of their lines
/// starts with `Host:` (any case), as Redis checks. No shell command
/// starts with `Host:`, and a request line cut from its headers by the
/// network is caught by its headers, which then come as the next request.
pub(crate) fn looks_like_http(bytes: &[u8]) -> bool {
    HTTP_METHODS.iter().any(|method| bytes.starts_with(method))
        || bytes.split(|&b| b == b'\n').any(|line| {
            line.get(..5)
                .is_some_and(|start| start.eq_ignore_ascii_case(b"host:"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_is_recognized() {
        for request in [
            &b"POST / HTTP/1.1\r\nHost: 127.0.0.1:9998\r\n\r\ntouch x\n"[..],
            b"GET / HTTP/1.1\r\n",
            b"OPTIONS * HTTP/1.1\r\n",
            b"T / HTTP/1.1\r\nhost: x\r\n",
            b"HOST:x",
        ] {
            assert!(looks_like_http(request), "{}", request.escape_ascii());
        }
        for command in [
            &b"ls -l\n"[..],
            b"echo GET / HTTP",
            b"get x",
            b"hostname\n",
            b"",
        ] {
            assert!(!looks_like_http(command), "{}", command.escape_ascii());
        }
    }
}
