//! A data connection as the transfer loop drives it: a plain TCP socket,
//! or TLS over one (`PROT P`), non-blocking either way, from its accept
//! or connect to its close.
//!
//! The transfer loop (`transfer.rs`) waits on the data socket together
//! with the control connection, so a data connection must behave like a
//! non-blocking socket: `read` and `write` return `WouldBlock` when the
//! socket is not ready, and [`DataConnection::interest`] says what to
//! wait for. For TLS that takes a little bookkeeping, done here with
//! rustls's state machine driven by hand: encrypted records not yet sent
//! wait inside rustls, and a write is refused (`WouldBlock`) until they
//! are out, so memory stays bounded by one buffer of records.
//!
//! The TLS handshake is done before the transfer starts, within a
//! deadline ([`DataConnection::tls`]): a client that connects and never
//! completes it costs a `425` reply, not a stuck session. It and the
//! lingering close wait through [`socketserver::event::wait`] like the
//! transfer, never on a blocking socket: in the event model a blocking
//! read would hold the conversation's event loop, and every other
//! conversation on it, for as long as the client stays silent.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socketserver::event::Interest;
use socketserver::tls::rustls::{HandshakeKind, ServerConfig, ServerConnection};

use super::data::wait_until;

/// How long a finished download's TLS connection waits for the client's
/// side of the close (its `close_notify`, or its FIN): closing with the
/// client's last bytes unread would send a reset, which can destroy the
/// end of the data before the client has read it.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// One data connection.
pub(crate) enum DataConnection {
    /// `PROT C`: the bytes as they are.
    Plain(TcpStream),
    /// `PROT P`: TLS, its handshake done.
    Tls(Box<TlsData>),
}

/// TLS over a data socket.
pub(crate) struct TlsData {
    tls: ServerConnection,
    socket: TcpStream,
    /// The client closed its TCP side without a TLS `close_notify`.
    unclean_eof: bool,
    /// Our `close_notify` is queued.
    sent_close: bool,
}

/// What the TLS handshake of a data connection says about the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Handshake {
    /// The client resumed a TLS session (the control connection's, for
    /// FileZilla, lftp and curl): no new key exchange.
    Resumed,
    /// A full handshake (Python's ftplib, which cannot reuse the session).
    Full,
}

impl DataConnection {
    /// A TLS data connection over `socket` (non-blocking): the server's
    /// side of the handshake, done now, given up after `timeout`.
    pub(crate) fn tls(
        socket: TcpStream,
        config: Arc<ServerConfig>,
        timeout: Duration,
    ) -> io::Result<(DataConnection, Handshake)> {
        let mut tls = ServerConnection::new(config).map_err(io::Error::other)?;
        let deadline = Instant::now() + timeout;
        socket.set_nonblocking(true)?;
        let mut socket = socket;
        while tls.is_handshaking() || tls.wants_write() {
            let Some(interest) = handshake_step(&mut tls, &mut socket)? else {
                continue;
            };
            if !wait_until(socket.as_fd(), interest, deadline)? {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the TLS handshake timed out",
                ));
            }
        }
        let kind = match tls.handshake_kind() {
            Some(HandshakeKind::Resumed) => Handshake::Resumed,
            _ => Handshake::Full,
        };
        let data = TlsData {
            tls,
            socket,
            unclean_eof: false,
            sent_close: false,
        };
        Ok((DataConnection::Tls(Box::new(data)), kind))
    }

    /// The TCP socket underneath.
    pub(crate) fn socket(&self) -> &TcpStream {
        match self {
            DataConnection::Plain(socket) => socket,
            DataConnection::Tls(data) => &data.socket,
        }
    }

    /// True if the bytes are encrypted (so `sendfile(2)` cannot send them).
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, DataConnection::Tls(_))
    }

    /// True if an upload ended with the client's TCP close and no TLS
    /// `close_notify` (accepted, as most servers do: some clients never
    /// send one; the `226`'s MD5 is what proves the file whole).
    pub(crate) fn unclean_eof(&self) -> bool {
        matches!(self, DataConnection::Tls(data) if data.unclean_eof)
    }

    pub(crate) fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        self.socket().set_nonblocking(on)
    }

    /// What to wait for before `want` (reading, or writing) can make
    /// progress: TLS may first have records of its own to send.
    pub(crate) fn interest(&self, want: Interest) -> Interest {
        match self {
            DataConnection::Tls(data) if data.tls.wants_write() => match want {
                Interest::Writable => Interest::Writable,
                _ => Interest::ReadableOrWritable,
            },
            _ => want,
        }
    }

    /// Writes some of `buf`; `WouldBlock` if the socket is full.
    pub(crate) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            DataConnection::Plain(socket) => socket.write(buf),
            DataConnection::Tls(data) => data.write(buf),
        }
    }

    /// Reads some bytes; `Ok(0)` at the end of the data; `WouldBlock` if
    /// none is there yet.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            DataConnection::Plain(socket) => socket.read(buf),
            DataConnection::Tls(data) => data.read(buf),
        }
    }

    /// After the last byte of a download: sends what TLS still holds and
    /// its `close_notify`. `Ok(true)` when all is sent, `Ok(false)` when
    /// the socket is full (wait until it is writable and call again).
    pub(crate) fn finish_sending(&mut self) -> io::Result<bool> {
        let DataConnection::Tls(data) = self else {
            return Ok(true);
        };
        data.close_notify_queued();
        match data.flush_records() {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Closes a TLS connection: our `close_notify` goes out (after an
    /// upload too: Python's `ssl` waits for it before it reads the `226`),
    /// the sending side is shut, and the client's last bytes (its own
    /// `close_notify`) are read and dropped for up to [`CLOSE_LINGER`], so
    /// that the close sends no reset that could cut the data short on the
    /// client's side. Best effort, all of it: the transfer's outcome is
    /// already decided.
    pub(crate) fn close(self) {
        let DataConnection::Tls(mut data) = self else {
            return;
        };
        let deadline = Instant::now() + CLOSE_LINGER;
        data.close_notify_queued();
        loop {
            match data.flush_records() {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
            if !matches!(
                wait_until(data.socket.as_fd(), Interest::Writable, deadline),
                Ok(true)
            ) {
                return;
            }
        }
        let socket = data.socket;
        if socket.shutdown(Shutdown::Write).is_err() {
            return;
        }
        let mut scratch = [0u8; 4096];
        loop {
            match (&socket).read(&mut scratch) {
                Ok(0) => return,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
            if !matches!(
                wait_until(socket.as_fd(), Interest::Readable, deadline),
                Ok(true)
            ) {
                return;
            }
        }
    }
}

/// One step of a TLS handshake on a non-blocking socket: sends the
/// records rustls has, or reads and processes the client's. `None` when
/// it made progress (the caller steps again); otherwise what the socket
/// must be ready for before the next step can.
fn handshake_step(
    tls: &mut ServerConnection,
    socket: &mut TcpStream,
) -> io::Result<Option<Interest>> {
    if tls.wants_write() {
        match tls.write_tls(socket) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(None),
            Err(e) => return Err(e),
        }
        if !tls.is_handshaking() {
            // Only the last records are left to send.
            return Ok(Some(Interest::Writable));
        }
    }
    if !tls.wants_read() {
        return Ok(Some(Interest::Writable));
    }
    match tls.read_tls(socket) {
        Ok(0) => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the client closed the data connection during the TLS handshake",
        )),
        Ok(_) => match tls.process_new_packets() {
            Ok(_) => Ok(None),
            Err(e) => {
                // The alert that says why goes out if it can.
                let _ = tls.write_tls(socket);
                Err(io::Error::new(io::ErrorKind::InvalidData, e))
            }
        },
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Some(if tls.wants_write() {
            Interest::ReadableOrWritable
        } else {
            Interest::Readable
        })),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
        Err(e) => Err(e),
    }
}

impl AsFd for DataConnection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket().as_fd()
    }
}

impl TlsData {
    /// Sends the records waiting in rustls; `WouldBlock` if the socket
    /// fills first.
    fn flush_records(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            if self.tls.write_tls(&mut self.socket)? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }

    fn close_notify_queued(&mut self) {
        // Queued once: a second call would send a second alert.
        if !self.sent_close {
            self.tls.send_close_notify();
            self.sent_close = true;
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The records of the previous write go first: new bytes are taken
        // only when nothing waits, which bounds what rustls holds.
        self.flush_records()?;
        let n = self.tls.writer().write(buf)?;
        match self.flush_records() {
            Ok(()) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(n),
            Err(e) => Err(e),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.unclean_eof = true;
                    return Ok(0);
                }
                Err(e) => return Err(e),
            }
            // No plaintext yet: more records from the socket (WouldBlock
            // goes back to the caller, who waits).
            self.tls.read_tls(&mut self.socket)?;
            if let Err(e) = self.tls.process_new_packets() {
                // The alert that says why goes out if it can.
                let _ = self.flush_records();
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            // Records rustls answers with (a key update) go out when they can.
            match self.flush_records() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}
