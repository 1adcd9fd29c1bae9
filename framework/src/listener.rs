//! Listening sockets: TCP and Unix-domain streams, UDP and Unix-domain
//! datagrams, bound by us or handed to us.

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use socket2::{Domain, Protocol, SockAddr, Type};

use crate::socket::datagram::DatagramSocket;
use crate::socket::Socket;
use crate::Address;

/// Linux's `SOMAXCONN` since 5.4; the kernel caps any backlog at
/// `net.core.somaxconn`, so asking for this much means "as much as allowed".
pub(crate) const DEFAULT_BACKLOG: i32 = 4096;

/// A listening socket for [`Server::from_listener`](crate::Server::from_listener):
/// made from a bound [`TcpListener`] or [`UnixListener`], for instance one
/// inherited from systemd.
///
/// The server puts it in non-blocking mode; it is closed with the server. A
/// Unix socket handed over this way is not removed on close (the server
/// did not create its file); one bound by
/// [`Server::bind_unix`](crate::Server::bind_unix) is.
#[derive(Debug)]
pub struct Listener {
    kind: Kind,
    /// The socket file to remove on close, and its identity (device,
    /// inode), so that we never remove a socket another server has since
    /// bound at the same path.
    owned_file: Option<(PathBuf, u64, u64)>,
}

#[derive(Debug)]
enum Kind {
    Tcp(TcpListener),
    Unix(UnixListener),
    /// A UDP or Unix datagram socket: the server receives on it, and
    /// handlers reply through it, so it is shared.
    Datagram(Arc<DatagramSocket>),
}

impl From<TcpListener> for Listener {
    fn from(listener: TcpListener) -> Self {
        Listener {
            kind: Kind::Tcp(listener),
            owned_file: None,
        }
    }
}

impl From<UnixListener> for Listener {
    fn from(listener: UnixListener) -> Self {
        Listener {
            kind: Kind::Unix(listener),
            owned_file: None,
        }
    }
}

/// Socket options applied before `bind` and `listen`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BindOptions {
    pub(crate) reuse_address: bool,
    pub(crate) reuse_port: bool,
    pub(crate) backlog: i32,
    pub(crate) only_v6: bool,
}

impl Default for BindOptions {
    fn default() -> Self {
        BindOptions {
            reuse_address: true,
            reuse_port: false,
            backlog: DEFAULT_BACKLOG,
            only_v6: false,
        }
    }
}

impl Listener {
    pub(crate) fn bind_tcp(addr: SocketAddr, options: &BindOptions) -> io::Result<Listener> {
        let socket = inet_socket(addr, Type::STREAM, Protocol::TCP, options)?;
        socket.listen(options.backlog)?;
        let listener: TcpListener = socket.into();
        listener.set_nonblocking(true)?;
        Ok(Listener::from(listener))
    }

    pub(crate) fn bind_udp(addr: SocketAddr, options: &BindOptions) -> io::Result<Listener> {
        // No SO_REUSEADDR for UDP: there it does not wait out TIME_WAIT (UDP
        // has none) but lets any other local socket that sets it bind the
        // same port and take the server's datagrams. SO_REUSEPORT stays an
        // explicit opt-in, which Linux limits to sockets of the same user.
        let options = BindOptions {
            reuse_address: false,
            ..*options
        };
        let socket: UdpSocket = inet_socket(addr, Type::DGRAM, Protocol::UDP, &options)?.into();
        socket.set_nonblocking(true)?;
        Ok(Listener {
            kind: Kind::Datagram(Arc::new(DatagramSocket::Udp(socket))),
            owned_file: None,
        })
    }

    pub(crate) fn bind_unix(path: &Path, options: &BindOptions) -> io::Result<Listener> {
        let socket = unix_socket(path, Type::STREAM)?;
        let listener = Listener {
            kind: Kind::Unix(socket.listener.into()),
            owned_file: Some(socket.identity),
        };
        // From here on, dropping `listener` removes the file if listen fails.
        let Kind::Unix(unix) = &listener.kind else {
            unreachable!("just built as Unix")
        };
        socket2::SockRef::from(unix).listen(options.backlog)?;
        unix.set_nonblocking(true)?;
        Ok(listener)
    }

    pub(crate) fn bind_unix_datagram(path: &Path) -> io::Result<Listener> {
        let socket = unix_socket(path, Type::DGRAM)?;
        let datagram: UnixDatagram = socket.listener.into();
        let listener = Listener {
            kind: Kind::Datagram(Arc::new(DatagramSocket::Unix(datagram))),
            owned_file: Some(socket.identity),
        };
        if let Kind::Datagram(socket) = &listener.kind {
            socket.set_nonblocking(true)?;
        }
        Ok(listener)
    }

    pub(crate) fn prepare(&self) -> io::Result<()> {
        match &self.kind {
            Kind::Tcp(l) => l.set_nonblocking(true),
            Kind::Unix(l) => l.set_nonblocking(true),
            Kind::Datagram(s) => s.set_nonblocking(true),
        }
    }

    /// The shared datagram socket, for a datagram server.
    pub(crate) fn datagram_socket(&self) -> Option<&Arc<DatagramSocket>> {
        match &self.kind {
            Kind::Datagram(socket) => Some(socket),
            _ => None,
        }
    }

    /// Accepts one connection; `WouldBlock` when none is waiting.
    pub(crate) fn accept(&self) -> io::Result<(Socket, Address)> {
        match &self.kind {
            Kind::Tcp(l) => {
                let (stream, peer) = l.accept()?;
                // Linux's accept4 never passes O_NONBLOCK on; other systems do.
                #[cfg(not(target_os = "linux"))]
                stream.set_nonblocking(false)?;
                Ok((Socket::Tcp(stream), Address::Inet(peer)))
            }
            Kind::Unix(l) => {
                let (stream, peer) = l.accept()?;
                #[cfg(not(target_os = "linux"))]
                stream.set_nonblocking(false)?;
                Ok((Socket::Unix(stream), Address::from_unix(&peer)))
            }
            Kind::Datagram(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a datagram socket has no connections to accept",
            )),
        }
    }

    pub(crate) fn local_addr(&self) -> io::Result<Address> {
        match &self.kind {
            Kind::Tcp(l) => l.local_addr().map(Address::Inet),
            Kind::Unix(l) => l.local_addr().map(|a| Address::from_unix(&a)),
            Kind::Datagram(s) => s.local_addr(),
        }
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd().as_raw_fd()
    }

    /// Stops listening for every process that shares this socket (prefork
    /// workers hold copies, which closing ours would not close): on Linux,
    /// shutting down a listening socket's read side takes it out of the
    /// LISTEN state, so new clients are refused at once.
    pub(crate) fn stop_listening(&self) {
        if let Kind::Tcp(l) = &self.kind {
            let _ = socket2::SockRef::from(l).shutdown(std::net::Shutdown::Read);
        }
    }

    /// Forgets the socket file, so that closing this copy of the listener
    /// (in a prefork worker) leaves it to the parent to remove.
    pub(crate) fn disown_file(&mut self) {
        self.owned_file = None;
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        match &self.kind {
            Kind::Tcp(l) => l.as_fd(),
            Kind::Unix(l) => l.as_fd(),
            Kind::Datagram(s) => s.as_fd(),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some((path, dev, ino)) = &self.owned_file {
            if let Ok(meta) = fs::symlink_metadata(path) {
                if meta.dev() == *dev && meta.ino() == *ino {
                    let _ = fs::remove_file(path);
                }
            }
        }
    }
}

/// An IPv4 or IPv6 socket with the options set and bound.
fn inet_socket(
    addr: SocketAddr,
    kind: Type,
    protocol: Protocol,
    options: &BindOptions,
) -> io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(Domain::for_address(addr), kind, Some(protocol))?;
    if options.reuse_address {
        socket.set_reuse_address(true)?;
    }
    if options.reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        // `[::]` serves IPv4 too unless asked not to, whatever the
        // system's `bindv6only` default says.
        socket.set_only_v6(options.only_v6)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket)
}

struct BoundUnix {
    listener: socket2::Socket,
    identity: (PathBuf, u64, u64),
}

/// A Unix-domain socket bound at `path`, replacing a stale socket file.
fn unix_socket(path: &Path, kind: Type) -> io::Result<BoundUnix> {
    remove_stale_socket(path, kind)?;
    let socket = socket2::Socket::new(Domain::UNIX, kind, None)?;
    socket.bind(&SockAddr::unix(path)?)?;
    let meta = fs::metadata(path)?;
    Ok(BoundUnix {
        listener: socket,
        identity: (path.to_path_buf(), meta.dev(), meta.ino()),
    })
}

/// A socket file left by a server that died cannot be bound again. Remove
/// it when nothing answers on it; refuse when something does, or when the
/// file is not a socket at all.
fn remove_stale_socket(path: &Path, kind: Type) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "a file that is not a socket is in the way",
        ));
    }
    let probe = if kind == Type::DGRAM {
        UnixDatagram::unbound().and_then(|s| s.connect(path))
    } else {
        UnixStream::connect(path).map(drop)
    };
    match probe {
        Ok(()) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another server is listening on this socket",
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => fs::remove_file(path),
        Err(e) => Err(e),
    }
}
