//! Datagram servers: [`DatagramHandler`] answers one packet at a time, as
//! Python's `DatagramRequestHandler` under `UDPServer` and
//! `UnixDatagramServer`.
//!
//! Each packet is a request of its own: the server receives it whole,
//! clones the handler, and calls [`DatagramHandler::handle`] with the
//! packet's bytes and the sender's address, in whatever thread or process
//! the model chooses. Replies go back to the sender through the server's
//! own socket, as many as the handler sends: none is fine (Python sends an
//! empty datagram when the handler writes nothing; we do not).

use std::io;
use std::net::UdpSocket;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use crate::lifecycle::{panic_message, Ended, Failure, Step};
use crate::service::{Service, Work};
use crate::shared::Shared;
use crate::stats::Outcome;
use crate::Address;

/// The largest payload of a UDP datagram over IPv4.
pub const DEFAULT_MAX_DATAGRAM: usize = 65_507;

/// What to do with one datagram: Python's `DatagramRequestHandler`.
///
/// The value given to the server is cloned for each packet.
///
/// ```
/// use socketserver::{Datagram, DatagramHandler};
///
/// /// Answers each datagram in upper case.
/// #[derive(Clone)]
/// struct Upper;
///
/// impl DatagramHandler for Upper {
///     fn handle(&mut self, datagram: &mut Datagram<'_>) -> std::io::Result<()> {
///         let reply = datagram.data().to_ascii_uppercase();
///         datagram.reply(&reply)
///     }
/// }
/// ```
pub trait DatagramHandler: Clone + Send + 'static {
    /// Answers one datagram: read [`Datagram::data`], send any number of
    /// replies with [`Datagram::reply`].
    ///
    /// # Errors
    /// Return any I/O error; the server reports it through its
    /// `handle_error` hook and goes on.
    fn handle(&mut self, datagram: &mut Datagram<'_>) -> io::Result<()>;
}

/// One received datagram, and the way back to its sender.
#[derive(Debug)]
pub struct Datagram<'a> {
    data: &'a [u8],
    peer: &'a Address,
    socket: &'a DatagramSocket,
    bytes_written: u64,
}

impl Datagram<'_> {
    /// The datagram's payload, whole.
    pub fn data(&self) -> &[u8] {
        self.data
    }

    /// The sender's address.
    pub fn peer_addr(&self) -> &Address {
        self.peer
    }

    /// The server's address.
    ///
    /// # Errors
    /// Fails if the server's socket has been closed.
    pub fn local_addr(&self) -> io::Result<Address> {
        self.socket.local_addr()
    }

    /// Sends one datagram back to the sender.
    ///
    /// # Errors
    /// `InvalidInput` for a Unix-domain sender that has no address to
    /// reply to (it did not bind its socket); any error of `sendto`, such
    /// as `EMSGSIZE` for a payload too big for one datagram.
    pub fn reply(&mut self, payload: &[u8]) -> io::Result<()> {
        let sent = self.socket.send_to(payload, self.peer)?;
        self.bytes_written += sent as u64;
        Ok(())
    }
}

/// A bound UDP or Unix datagram socket.
#[derive(Debug)]
pub(crate) enum DatagramSocket {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

impl DatagramSocket {
    pub(crate) fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, Address)> {
        match self {
            DatagramSocket::Udp(s) => s.recv_from(buf).map(|(n, a)| (n, Address::Inet(a))),
            DatagramSocket::Unix(s) => s.recv_from(buf).map(|(n, a)| (n, Address::from_unix(&a))),
        }
    }

    pub(crate) fn send_to(&self, buf: &[u8], peer: &Address) -> io::Result<usize> {
        match (self, peer) {
            (DatagramSocket::Udp(s), Address::Inet(addr)) => s.send_to(buf, addr),
            (DatagramSocket::Unix(s), Address::Unix(Some(path))) => s.send_to(buf, path),
            (DatagramSocket::Unix(_), Address::Unix(None)) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the sender's Unix socket is unnamed: there is no address to reply to",
            )),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the address is not of the socket's family",
            )),
        }
    }

    pub(crate) fn local_addr(&self) -> io::Result<Address> {
        match self {
            DatagramSocket::Udp(s) => s.local_addr().map(Address::Inet),
            DatagramSocket::Unix(s) => s.local_addr().map(|a| Address::from_unix(&a)),
        }
    }

    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            DatagramSocket::Udp(s) => s.set_nonblocking(nonblocking),
            DatagramSocket::Unix(s) => s.set_nonblocking(nonblocking),
        }
    }
}

impl AsFd for DatagramSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            DatagramSocket::Udp(s) => s.as_fd(),
            DatagramSocket::Unix(s) => s.as_fd(),
        }
    }
}

/// A received datagram on its way to a handler.
#[derive(Debug)]
pub(crate) struct Packet {
    pub(crate) data: Vec<u8>,
    pub(crate) peer: Address,
    pub(crate) socket: Arc<DatagramSocket>,
}

/// A datagram handler as the server runs it.
pub(crate) struct Datagrams<H>(Mutex<H>);

impl<H: DatagramHandler> Datagrams<H> {
    pub(crate) fn new(handler: H) -> Self {
        Datagrams(Mutex::new(handler))
    }
}

impl<H: DatagramHandler> Service for Datagrams<H> {
    fn run(&self, shared: &Shared, work: Work) -> Ended {
        let Work::Packet(packet) = work else {
            unreachable!("a datagram server receives packets only")
        };
        let mut handler = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut datagram = Datagram {
            data: &packet.data,
            peer: &packet.peer,
            socket: &packet.socket,
            bytes_written: 0,
        };
        let result = panic::catch_unwind(AssertUnwindSafe(|| handler.handle(&mut datagram)));
        let failure = match result {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(Failure::Error {
                step: Step::Handle,
                error,
            }),
            Err(payload) => Some(Failure::Panic {
                step: Step::Handle,
                message: panic_message(payload.as_ref()),
            }),
        };
        let bytes_written = datagram.bytes_written;
        let outcome = match &failure {
            None => Outcome::Completed,
            Some(failure) => {
                shared.report(&packet.peer, failure);
                Outcome::Failed
            }
        };
        Ended {
            outcome,
            bytes_read: packet.data.len() as u64,
            bytes_written,
        }
    }
}
