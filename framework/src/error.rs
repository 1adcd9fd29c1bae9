//! The errors of building and running a server.

use std::fmt;
use std::io;

/// Why a server could not be built or could not go on serving.
///
/// Errors of single connections never show here: they go to the server's
/// `handle_error` hook, and the server goes on.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The address given to [`Server::bind`](crate::Server::bind) named no
    /// socket address (an unknown host name, a missing port).
    Resolve {
        /// The address as given, when it could be written down.
        address: String,
        /// What the resolver said.
        source: io::Error,
    },
    /// Creating, binding or listening on the socket failed: the address is
    /// in use, the port needs privileges, the folder of a Unix socket is
    /// missing.
    Bind {
        /// The address as given.
        address: String,
        /// What the system said.
        source: io::Error,
    },
    /// The builder's settings contradict each other or are out of range
    /// (zero pool workers, a zero timeout).
    Config(String),
    /// The server was already shut down and its listening socket closed;
    /// build a new one to serve again.
    Closed,
    /// Waiting for connections failed in a way retrying cannot mend.
    Io(io::Error),
    /// The TLS certificate or key could not be read or used
    /// ([`Builder::tls_files`](crate::Builder::tls_files)).
    Tls(io::Error),
    /// A process model ([`Model::Forking`](crate::Model::Forking),
    /// [`Model::Prefork`](crate::Model::Prefork)) would fork from a process
    /// with other threads. A forked child has one thread, the caller's, and
    /// inherits, held for ever, whatever lock another thread held at that
    /// instant (the allocator's, stderr's, a logger's, any `Mutex`): the
    /// child may deadlock, or worse. Build and serve the server before
    /// starting threads; a caller that can vouch for its threads opts in
    /// with the `unsafe`
    /// [`Builder::allow_fork_with_threads`](crate::Builder::allow_fork_with_threads).
    ForkWithThreads {
        /// The model, as [`Model`](crate::Model)'s `Display` writes it.
        model: &'static str,
        /// The threads of the process, the caller's included.
        threads: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Resolve { address, source } if address.is_empty() => {
                write!(f, "cannot resolve the address: {}", describe(source))
            }
            Error::Resolve { address, source } => {
                write!(f, "cannot resolve {address}: {}", describe(source))
            }
            Error::Bind { address, source } => {
                write!(f, "cannot bind {address}: {}", describe(source))
            }
            Error::Config(what) => write!(f, "invalid server configuration: {what}"),
            Error::Closed => f.write_str("the server is shut down and its socket closed"),
            Error::Io(source) => write!(f, "cannot wait for connections: {}", describe(source)),
            Error::Tls(source) => write!(f, "TLS: {}", describe(source)),
            Error::ForkWithThreads { model, threads } => write!(
                f,
                "the {model} model forks, and this process has {threads} threads: a child \
                 would inherit for ever any lock another thread holds as it forks; build and \
                 serve the server before starting threads (or see \
                 Builder::allow_fork_with_threads)"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Resolve { source, .. }
            | Error::Bind { source, .. }
            | Error::Io(source)
            | Error::Tls(source) => Some(source),
            Error::Config(_) | Error::Closed | Error::ForkWithThreads { .. } => None,
        }
    }
}

impl From<Error> for io::Error {
    /// Keeps the kind of the system error inside, so that `?` in a
    /// function returning `io::Result` loses nothing.
    fn from(error: Error) -> Self {
        let kind = match &error {
            Error::Resolve { source, .. }
            | Error::Bind { source, .. }
            | Error::Io(source)
            | Error::Tls(source) => source.kind(),
            Error::Config(_) => io::ErrorKind::InvalidInput,
            Error::Closed => io::ErrorKind::NotConnected,
            Error::ForkWithThreads { .. } => io::ErrorKind::Unsupported,
        };
        io::Error::new(kind, error)
    }
}

/// An I/O error as a person reads it: "address already in use", not
/// "Address already in use (os error 98)".
pub fn describe(error: &io::Error) -> String {
    let text = error.to_string();
    let text = match text.find(" (os error ") {
        Some(i) if text.ends_with(')') => &text[..i],
        _ => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_error_reads_as_one_line() {
        let e = Error::Bind {
            address: "127.0.0.1:9999".into(),
            source: io::Error::from_raw_os_error(98),
        };
        assert_eq!(
            e.to_string(),
            "cannot bind 127.0.0.1:9999: address already in use"
        );
    }

    #[test]
    fn converts_to_io_error_keeping_kind() {
        let e = Error::Bind {
            address: "127.0.0.1:9999".into(),
            source: io::Error::from_raw_os_error(98),
        };
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(
            io.to_string(),
            "cannot bind 127.0.0.1:9999: address already in use"
        );
    }
}
