//! A [`Stream`] on the client's side: connecting ([`Stream::connect`],
//! [`Stream::connect_unix`]), or wrapping a socket connected elsewhere
//! (`Stream::try_from(tcp)`), which fails with [`NotConnected`] rather than
//! panicking.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;

use super::{Stream, StreamLimits};
use crate::read_clock::ReadClock;
use crate::socket::{Connection, Socket};

impl Stream {
    /// Connects to a TCP server, as a client.
    ///
    /// The stream has no timeouts: set them with
    /// [`Stream::set_read_timeout`] and [`Stream::set_write_timeout`].
    /// Dropping it waits a bounded time for its last output to go (see
    /// [`Stream`]'s `Drop`).
    ///
    /// # Errors
    /// Fails as [`TcpStream::connect`] does.
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<Stream> {
        Stream::from_socket(Socket::Tcp(TcpStream::connect(addr)?))
    }

    /// Connects to a Unix-domain stream server, as a client; as
    /// [`Stream::connect`].
    ///
    /// # Errors
    /// Fails as [`UnixStream::connect`] does.
    pub fn connect_unix(path: impl AsRef<Path>) -> io::Result<Stream> {
        Stream::from_socket(Socket::Unix(UnixStream::connect(path)?))
    }

    /// A stream of a connected socket, keeping the read timeout it has.
    /// Made in a conversation of the event model (an FTP data
    /// connection, say), the socket turns non-blocking, so that its waits
    /// park the conversation as its own connection's do.
    pub(super) fn from_socket(socket: Socket) -> io::Result<Stream> {
        let peer = socket.peer_addr()?;
        let read_timeout = socket.read_timeout()?;
        let conn = Arc::new(Connection::new(socket, peer, None));
        if crate::event::park::in_coroutine() {
            conn.make_nonblocking(read_timeout, None)?;
        }
        let mut stream = Stream::from_connection(conn, &StreamLimits::default());
        stream.clock = ReadClock::new(read_timeout, None, read_timeout);
        stream.write_timeout = None;
        Ok(stream)
    }
}

/// Wraps a TCP stream connected elsewhere (say, by
/// [`TcpStream::connect_timeout`], or an FTP data connection), keeping its
/// read timeout; the stream's limits are the [defaults](crate::defaults).
impl TryFrom<TcpStream> for Stream {
    type Error = NotConnected;

    fn try_from(socket: TcpStream) -> Result<Self, NotConnected> {
        Stream::from_socket(Socket::Tcp(socket)).map_err(|source| NotConnected { source })
    }
}

/// Wraps a connected Unix-domain stream, as `TryFrom<TcpStream>`.
impl TryFrom<UnixStream> for Stream {
    type Error = NotConnected;

    fn try_from(socket: UnixStream) -> Result<Self, NotConnected> {
        Stream::from_socket(Socket::Unix(socket)).map_err(|source| NotConnected { source })
    }
}

/// Why a socket could not become a [`Stream`]: it has no peer (it was
/// never connected, or the peer has already gone and the system has
/// forgotten it), or its options could not be read.
///
/// Turns into an [`io::Error`] of the same kind, so `?` works in a
/// function returning `io::Result`.
#[derive(Debug)]
pub struct NotConnected {
    source: io::Error,
}

impl fmt::Display for NotConnected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the socket cannot be a stream: {}",
            crate::describe(&self.source)
        )
    }
}

impl StdError for NotConnected {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

impl From<NotConnected> for io::Error {
    fn from(error: NotConnected) -> Self {
        io::Error::new(error.source.kind(), error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_connected_socket_becomes_a_stream() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let stream = Stream::try_from(tcp).expect("a connected socket");
        assert_eq!(
            stream.peer_addr().as_inet(),
            Some(listener.local_addr().unwrap())
        );
    }

    #[test]
    fn a_socket_without_a_peer_is_an_error_not_a_panic() {
        // A TCP socket never connected: getpeername fails with ENOTCONN.
        let never = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a socket");
        let error = Stream::try_from(TcpStream::from(never)).expect_err("no peer");
        assert_eq!(error.source.kind(), io::ErrorKind::NotConnected);
        assert!(error
            .to_string()
            .starts_with("the socket cannot be a stream: "));
        let io: io::Error = error.into();
        assert_eq!(io.kind(), io::ErrorKind::NotConnected);
    }
}
