//! Listening sockets: TCP and Unix-domain, bound by us or handed to us.

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use socket2::{Domain, Protocol, SockAddr, Type};

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
}

#[derive(Debug)]
enum Kind {
    Tcp(TcpListener),
    Unix {
        listener: UnixListener,
        /// The file to remove on close, and its identity (device, inode),
        /// so that we never remove a socket another server has since bound
        /// at the same path.
        owned_file: Option<(PathBuf, u64, u64)>,
    },
}

impl From<TcpListener> for Listener {
    fn from(listener: TcpListener) -> Self {
        Listener {
            kind: Kind::Tcp(listener),
        }
    }
}

impl From<UnixListener> for Listener {
    fn from(listener: UnixListener) -> Self {
        Listener {
            kind: Kind::Unix {
                listener,
                owned_file: None,
            },
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
        let socket =
            socket2::Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
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
        socket.listen(options.backlog)?;
        let listener: TcpListener = socket.into();
        listener.set_nonblocking(true)?;
        Ok(Listener::from(listener))
    }

    pub(crate) fn bind_unix(path: &Path, options: &BindOptions) -> io::Result<Listener> {
        remove_stale_socket(path)?;
        let socket = socket2::Socket::new(Domain::UNIX, Type::STREAM, None)?;
        socket.bind(&SockAddr::unix(path)?)?;
        let meta = fs::metadata(path)?;
        let listener: UnixListener = socket.into();
        let owned = Listener {
            kind: Kind::Unix {
                listener,
                owned_file: Some((path.to_path_buf(), meta.dev(), meta.ino())),
            },
        };
        // From here on, dropping `owned` removes the file if listen fails.
        let Kind::Unix { listener, .. } = &owned.kind else {
            unreachable!("just built as Unix")
        };
        socket2::SockRef::from(listener).listen(options.backlog)?;
        listener.set_nonblocking(true)?;
        Ok(owned)
    }

    pub(crate) fn prepare(&self) -> io::Result<()> {
        match &self.kind {
            Kind::Tcp(l) => l.set_nonblocking(true),
            Kind::Unix { listener, .. } => listener.set_nonblocking(true),
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
            Kind::Unix { listener, .. } => {
                let (stream, peer) = listener.accept()?;
                #[cfg(not(target_os = "linux"))]
                stream.set_nonblocking(false)?;
                Ok((Socket::Unix(stream), Address::from_unix(&peer)))
            }
        }
    }

    pub(crate) fn local_addr(&self) -> io::Result<Address> {
        match &self.kind {
            Kind::Tcp(l) => l.local_addr().map(Address::Inet),
            Kind::Unix { listener, .. } => listener.local_addr().map(|a| Address::from_unix(&a)),
        }
    }

    pub(crate) fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.fd().as_raw_fd()
    }

    /// Forgets the socket file, so that closing this copy of the listener
    /// (in a prefork worker) leaves it to the parent to remove.
    pub(crate) fn disown_file(&mut self) {
        if let Kind::Unix { owned_file, .. } = &mut self.kind {
            *owned_file = None;
        }
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        match &self.kind {
            Kind::Tcp(l) => l.as_fd(),
            Kind::Unix { listener, .. } => listener.as_fd(),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Kind::Unix {
            owned_file: Some((path, dev, ino)),
            ..
        } = &self.kind
        {
            if let Ok(meta) = fs::symlink_metadata(path) {
                if meta.dev() == *dev && meta.ino() == *ino {
                    let _ = fs::remove_file(path);
                }
            }
        }
    }
}

/// A socket file left by a server that died cannot be bound again. Remove
/// it when nothing answers on it; refuse when something does, or when the
/// file is not a socket at all.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
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
    match UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another server is listening on this socket",
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => fs::remove_file(path),
        Err(e) => Err(e),
    }
}
