//! The sockets: the connected one under a [`Stream`](crate::Stream),
//! shared with the server so that shutdown can end a conversation from
//! another thread; and (`datagram`) the one a datagram server receives on.

pub(crate) mod datagram;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::event::Interest;
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

    pub(crate) fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.set_nonblocking(on),
            Socket::Unix(s) => s.set_nonblocking(on),
        }
    }
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Socket::Tcp(s) => s.as_fd(),
            Socket::Unix(s) => s.as_fd(),
        }
    }
}

/// The deadline of one receive or send, set at its first wait.
#[derive(Clone, Copy)]
enum Deadline {
    Unset,
    At(Option<Instant>),
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
    /// How receives and sends wait: the socket's own timeouts, or, on a
    /// non-blocking socket (the event model's), here.
    waits: Waits,
}

/// The waits of a connection's socket. A blocking socket waits in the
/// kernel, bounded by its own timeouts (`SO_RCVTIMEO`, `SO_SNDTIMEO`). A
/// non-blocking one waits here, with the same timeouts: in a coroutine
/// of the event model by parking it, elsewhere by `poll(2)`.
#[derive(Debug, Default)]
struct Waits {
    nonblocking: AtomicBool,
    /// Timeouts in nanoseconds, [`NO_TIMEOUT`] for none.
    read: AtomicU64,
    write: AtomicU64,
    /// Registered with the event loop of the coroutine that runs it.
    registered: AtomicBool,
}

const NO_TIMEOUT: u64 = u64::MAX;

fn encode(timeout: Option<Duration>) -> u64 {
    timeout.map_or(NO_TIMEOUT, |t| {
        u64::try_from(t.as_nanos()).unwrap_or(NO_TIMEOUT - 1)
    })
}

fn decode(nanos: u64) -> Option<Duration> {
    (nanos != NO_TIMEOUT).then(|| Duration::from_nanos(nanos))
}

impl Connection {
    pub(crate) fn new(socket: Socket, peer: Address, draining: Option<Arc<AtomicBool>>) -> Self {
        Connection {
            socket,
            peer,
            idle: AtomicBool::new(false),
            draining,
            waits: Waits {
                read: AtomicU64::new(NO_TIMEOUT),
                write: AtomicU64::new(NO_TIMEOUT),
                ..Waits::default()
            },
        }
    }

    /// Makes the socket non-blocking: its receives and sends wait here
    /// (parking in the event model), `read` and `write` at most, until
    /// other timeouts are set.
    pub(crate) fn make_nonblocking(
        &self,
        read: Option<Duration>,
        write: Option<Duration>,
    ) -> io::Result<()> {
        self.socket.set_nonblocking(true)?;
        self.waits_here(read, write);
        Ok(())
    }

    /// Takes note that the socket is non-blocking already (the accept
    /// loop made it so), with these timeouts.
    pub(crate) fn waits_here(&self, read: Option<Duration>, write: Option<Duration>) {
        self.waits.nonblocking.store(true, Ordering::Relaxed);
        self.waits.read.store(encode(read), Ordering::Relaxed);
        self.waits.write.store(encode(write), Ordering::Relaxed);
    }

    /// True if the socket is non-blocking (see [`Waits`]).
    pub(crate) fn is_nonblocking(&self) -> bool {
        self.waits.nonblocking.load(Ordering::Relaxed)
    }

    /// Sets how long a receive may wait; on a blocking socket, the
    /// socket's own timeout.
    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        if !self.is_nonblocking() {
            self.socket.set_read_timeout(timeout)?;
        } else if timeout == Some(Duration::ZERO) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        self.waits.read.store(encode(timeout), Ordering::Relaxed);
        Ok(())
    }

    /// Sets how long a send may wait, as [`Connection::set_read_timeout`].
    pub(crate) fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        if !self.is_nonblocking() {
            self.socket.set_write_timeout(timeout)?;
        } else if timeout == Some(Duration::ZERO) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        self.waits.write.store(encode(timeout), Ordering::Relaxed);
        Ok(())
    }

    /// One receive. A timeout shows as `WouldBlock`, as a blocking
    /// socket's `SO_RCVTIMEO` does.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut deadline = Deadline::Unset;
        loop {
            match self.socket.recv(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && self.is_nonblocking() => {
                    self.wait(Interest::Readable, &mut deadline)?;
                }
                other => return other,
            }
        }
    }

    /// One receive into `buffer`, which the stream lends out while the
    /// receive waits: it is given back to the loop's pool, so a waiting
    /// conversation holds no buffer, and taken again (`len` bytes) to
    /// receive. For a non-blocking socket without TLS.
    pub(crate) fn recv_lending(&self, buffer: &mut Vec<u8>, len: usize) -> io::Result<usize> {
        let mut deadline = Deadline::Unset;
        loop {
            if buffer.is_empty() {
                *buffer = crate::event::buffers::take_read(len);
            }
            match self.socket.recv(buffer) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && self.is_nonblocking() => {
                    crate::event::buffers::give_read(std::mem::take(buffer));
                    self.wait(Interest::Readable, &mut deadline)?;
                }
                other => return other,
            }
        }
    }

    /// One send of at least one byte, or an error; a timeout shows as
    /// `WouldBlock`, as [`Connection::recv`].
    pub(crate) fn send_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let mut deadline = Deadline::Unset;
        loop {
            match self.socket.send_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && self.is_nonblocking() => {
                    self.wait(Interest::Writable, &mut deadline)?;
                }
                other => return other,
            }
        }
    }

    /// Waits until the socket may be ready; `WouldBlock` once the
    /// timeout of this receive or send has passed.
    fn wait(&self, interest: Interest, deadline: &mut Deadline) -> io::Result<()> {
        let at = match *deadline {
            Deadline::At(at) => at,
            Deadline::Unset => {
                let timeout = match interest {
                    Interest::Writable => &self.waits.write,
                    _ => &self.waits.read,
                };
                let at = decode(timeout.load(Ordering::Relaxed)).map(|t| Instant::now() + t);
                *deadline = Deadline::At(at);
                at
            }
        };
        let registered = &self.waits.registered;
        if crate::event::wait_socket(self.socket.as_fd(), interest, at, registered)? {
            Ok(())
        } else {
            Err(io::Error::from(io::ErrorKind::WouldBlock))
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
