//! The sockets: the connected one under a [`Stream`](crate::Stream),
//! shared with the server so that shutdown can end a conversation from
//! another thread; and (`datagram`) the one a datagram server receives on.

pub(crate) mod datagram;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::Address;

/// A connected TCP or Unix-domain stream socket.
#[derive(Debug)]
pub(crate) enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Socket {
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => (&*s).read(buf),
            Socket::Unix(s) => (&*s).read(buf),
        }
    }

    pub(crate) fn send_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => (&*s).write_vectored(bufs),
            Socket::Unix(s) => (&*s).write_vectored(bufs),
        }
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.shutdown(how),
            Socket::Unix(s) => s.shutdown(how),
        }
    }

    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.set_read_timeout(timeout),
            Socket::Unix(s) => s.set_read_timeout(timeout),
        }
    }

    pub(crate) fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.set_write_timeout(timeout),
            Socket::Unix(s) => s.set_write_timeout(timeout),
        }
    }

    pub(crate) fn read_timeout(&self) -> io::Result<Option<Duration>> {
        match self {
            Socket::Tcp(s) => s.read_timeout(),
            Socket::Unix(s) => s.read_timeout(),
        }
    }

    pub(crate) fn peer_addr(&self) -> io::Result<Address> {
        match self {
            Socket::Tcp(s) => s.peer_addr().map(Address::Inet),
            Socket::Unix(s) => s.peer_addr().map(|a| Address::from_unix(&a)),
        }
    }

    pub(crate) fn local_addr(&self) -> io::Result<Address> {
        match self {
            Socket::Tcp(s) => s.local_addr().map(Address::Inet),
            Socket::Unix(s) => s.local_addr().map(|a| Address::from_unix(&a)),
        }
    }
}

/// One live connection as both its handler and the server see it.
///
/// The handler's [`Stream`](crate::Stream) reads and writes through it; the
/// server keeps a second reference in its registry so that a shutdown can
/// end, at once, the reads of conversations that asked for it
/// ([`WhenDraining::EndWaitingRead`](crate::WhenDraining)), and cut the
/// rest at the drain deadline.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) socket: Socket,
    pub(crate) peer: Address,
    /// True while the handler waits for a new message with nothing buffered,
    /// and has asked to be ended then by a drain: the moment at which a
    /// graceful shutdown may end the conversation without cutting a request
    /// in half.
    idle: AtomicBool,
    /// The server's "draining" flag (in a forked child, the child's own,
    /// set when the parent says so); `None` for a stream made by hand.
    draining: Option<Arc<AtomicBool>>,
}

impl Connection {
    pub(crate) fn new(socket: Socket, peer: Address, draining: Option<Arc<AtomicBool>>) -> Self {
        Connection {
            socket,
            peer,
            idle: AtomicBool::new(false),
            draining,
        }
    }

    /// Marks the connection idle for the duration of a blocking read.
    ///
    /// Returns false, without marking, when the server is already draining:
    /// the caller then treats the conversation as ended by the server. The
    /// store-then-load here pairs with the load-then-store of
    /// [`Connection::close_if_idle`] (both sequentially consistent), so a
    /// reader either sees the drain or is seen idle by it, never neither.
    pub(crate) fn enter_idle(&self) -> bool {
        let Some(draining) = &self.draining else {
            return true;
        };
        self.idle.store(true, Ordering::SeqCst);
        if draining.load(Ordering::SeqCst) {
            self.idle.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// True once the server serving this connection has begun to drain.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining
            .as_ref()
            .is_some_and(|draining| draining.load(Ordering::SeqCst))
    }

    /// Begins the drain for this connection alone: sets its drain flag,
    /// then ends a read waiting on it, as a shutdown does for the
    /// connections in its registry. For a forked child, told by its parent.
    pub(crate) fn begin_drain(&self) {
        if let Some(draining) = &self.draining {
            draining.store(true, Ordering::SeqCst);
            self.close_if_idle();
        }
    }

    pub(crate) fn leave_idle(&self) {
        if self.draining.is_some() {
            self.idle.store(false, Ordering::SeqCst);
        }
    }

    /// Ends the conversation's read if its handler is waiting there for a
    /// new message and asked to be ended then: the read returns end of
    /// input, as if the client had hung up, while anything the handler
    /// still writes goes out. Called after the drain flag is set.
    pub(crate) fn close_if_idle(&self) -> bool {
        if self.idle.load(Ordering::SeqCst) {
            let _ = self.socket.shutdown(Shutdown::Read);
            true
        } else {
            false
        }
    }

    /// Cuts the connection in both directions: the handler's next read or
    /// write fails at once. Used at the drain deadline and on drop.
    pub(crate) fn cut(&self) {
        let _ = self.socket.shutdown(Shutdown::Both);
    }
}
