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
use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex;

use crate::conversation::{record, AnyHandler, Request};
use crate::failure::Step;
use crate::shared::Shared;
use crate::stats::{Ending, Outcome};
use crate::{Address, ShutdownHandle};

use crate::socket::datagram::DatagramSocket;

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
    server: &'a ShutdownHandle,
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

    /// The server this datagram came to: shut it down, or read its
    /// counters (see [`ShutdownHandle`], also for the process models).
    pub fn server(&self) -> &ShutdownHandle {
        self.server
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
pub(crate) struct DatagramPrototype<H>(Mutex<H>);

impl<H: DatagramHandler> DatagramPrototype<H> {
    pub(crate) fn new(handler: H) -> Self {
        DatagramPrototype(Mutex::new(handler))
    }
}

impl<H: DatagramHandler> AnyHandler for DatagramPrototype<H> {
    fn finish_request(
        &self,
        shared: &Shared,
        server: &ShutdownHandle,
        request: Request,
    ) -> Outcome {
        let Request::Datagram(packet) = request else {
            unreachable!("a datagram server receives datagrams only")
        };
        let mut handler = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut datagram = Datagram {
            data: &packet.data,
            peer: &packet.peer,
            socket: &packet.socket,
            server,
            bytes_written: 0,
        };
        let mut failures = Vec::new();
        let handled = panic::catch_unwind(AssertUnwindSafe(|| handler.handle(&mut datagram)));
        record(&mut failures, Step::Handle, handled);
        for failure in &failures {
            shared.handle_error(&packet.peer, failure);
        }
        Outcome {
            ending: match failures.is_empty() {
                true => Ending::Completed,
                false => Ending::Failed,
            },
            bytes_read: packet.data.len() as u64,
            bytes_written: datagram.bytes_written,
        }
    }
}
