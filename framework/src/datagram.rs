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

pub(crate) mod socket;

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex;

use crate::failure::{panic_message, Failure, Step};
use crate::service::{Service, Work};
use crate::shared::Shared;
use crate::stats::{Ended, Outcome};
use crate::Address;

use socket::DatagramSocket;

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
