//! [`Stream`]: one conversation's socket, buffered both ways, with the
//! framing helpers that end the tutorial's sticky-packet (粘包) trouble
//! (explained on [`Stream`] itself, where rustdoc shows it).
//!
//! Writes are buffered and go out in as few system calls as possible: the
//! buffer is flushed when it fills, when [`Stream::flush`] is called, when
//! the handler returns, and, so that a request/response handler never
//! deadlocks waiting for an answer to a reply still in its buffer, before
//! every read that has to wait for the socket.

mod closing;
mod connect;
mod framing;
mod limits;
mod tls;

use std::fmt;
use std::io::{self, BufRead, IoSlice, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::read_clock::{seconds, ReadClock};
use crate::socket::{Connection, Socket};
use crate::tls::Tls;
use crate::{Address, ShutdownHandle, WhenDraining};

pub use connect::NotConnected;
pub use framing::LimitExceeded;
pub(crate) use limits::StreamLimits;

/// Size of the read buffer, allocated on the first read.
const READ_BUFFER: usize = 16 * 1024;
/// Size of the write buffer, allocated on the first buffered write.
const WRITE_BUFFER: usize = 16 * 1024;
/// The first step by which a frame's payload buffer grows; then it
/// doubles with the bytes received.
const FRAME_GROWTH: usize = 64 * 1024;

/// One side of a connection: a TCP or Unix-domain stream socket with a read
/// buffer, a write buffer, timeouts and size limits.
///
/// # Boundaries: the sticky-packet (粘包) problem
///
/// TCP is a byte stream: one `send` on one side may arrive as two reads on
/// the other, and two sends as one. The Python tutorial this crate grew
/// from meets it in its remote shell: the server sends a length and then
/// the output, the client reads "the length" and gets part of the output
/// with it. A sleep between the two sends hides it on a quiet machine and
/// not under load; an acknowledgement costs a round trip. The cure is a
/// protocol with boundaries, and `Stream` reads the two usual ones, each
/// with a size limit so a client cannot make the server buffer without
/// end:
///
/// * lines, ended by `\n` ([`Stream::next_line`], [`Stream::read_line_into`])
///   or another byte ([`Stream::read_until_limited`]); [`BufRead`]'s own
///   `read_line`, `read_until`, `lines` and `split` keep the line limit
///   too, so no way of reading a line buffers without end;
/// * length-prefixed frames, a 4-byte big-endian length and then the payload
///   ([`Stream::read_frame`], [`Stream::write_frame`]).
///
/// For protocols that have no boundaries at all (the tutorial's chat, where
/// a message is whatever one `recv` returns) there is [`Stream::read_chunk`].
///
/// Two messages sent in one write, read back one by one:
///
/// ```
/// use std::io::Write;
/// use std::os::unix::net::UnixStream;
/// use socketserver::Stream;
///
/// let (mut peer, ours) = UnixStream::pair()?;
/// peer.write_all(b"ls -l\necho hi\n")?; // one write, "stuck" together
/// let mut stream = Stream::try_from(ours)?;
/// assert_eq!(stream.next_line()?.as_deref(), Some("ls -l\n"));
/// assert_eq!(stream.next_line()?.as_deref(), Some("echo hi\n"));
/// // A frame carries its length: the reader takes exactly that many bytes.
/// let mut writer = Stream::try_from(peer)?;
/// writer.write_frame(b"8 bytes!")?;
/// writer.write_frame(b"and more")?;
/// writer.flush()?;
/// assert_eq!(stream.read_frame()?.as_deref(), Some(&b"8 bytes!"[..]));
/// assert_eq!(stream.read_frame()?.as_deref(), Some(&b"and more"[..]));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// A server hands each handler a `Stream`; a client can make one with
/// [`Stream::connect`] or [`Stream::connect_unix`] and use the same framing.
///
/// `Stream` implements [`Read`], [`BufRead`] and [`Write`]; the most used of
/// their methods are also inherent so that simple handlers need no `use`.
/// Its own line readers have names of their own ([`Stream::next_line`],
/// [`Stream::read_line_into`], [`Stream::read_until_limited`]), so none
/// hides a trait method; `BufRead`'s line readers keep the same limit.
///
/// Dropping a stream sends what is still in its write buffer, a best
/// effort with errors ignored; a stream with no write timeout waits at
/// most 5 seconds in each send for a peer that does not read.
pub struct Stream {
    conn: Arc<Connection>,
    rbuf: Vec<u8>,
    rpos: usize,
    rend: usize,
    wbuf: Vec<u8>,
    max_line: usize,
    max_frame: usize,
    /// The read timeouts: idle, message, deadline.
    clock: ReadClock,
    write_timeout: Option<Duration>,
    bytes_read: u64,
    bytes_written: u64,
    /// Bytes have been received since the handler last wrote: a request is
    /// in progress, so the connection is not idle.
    unanswered: bool,
    /// Whether a drain ends a read that waits for the next message.
    when_draining: WhenDraining,
    /// The TLS layer between the buffers and the socket, once a
    /// handshake has succeeded.
    tls: Option<Box<Tls>>,
    /// The server that accepted the connection; `None` for a client's.
    server: Option<ShutdownHandle>,
}

// Construction and the connection's facts.
impl Stream {
    pub(crate) fn from_connection(conn: Arc<Connection>, limits: &StreamLimits) -> Stream {
        Stream {
            conn,
            rbuf: Vec::new(),
            rpos: 0,
            rend: 0,
            wbuf: Vec::new(),
            max_line: limits.max_line,
            max_frame: limits.max_frame,
            clock: ReadClock::new(
                limits.idle_timeout,
                limits.message_timeout,
                limits.idle_timeout,
            ),
            write_timeout: limits.idle_timeout,
            bytes_read: 0,
            bytes_written: 0,
            unanswered: false,
            when_draining: WhenDraining::Finish,
            tls: None,
            server: None,
        }
    }

    /// Gives the stream the way to the server that accepted it.
    pub(crate) fn attach_server(&mut self, server: ShutdownHandle) {
        self.server = Some(server);
    }

    /// The server that accepted this connection, as Python's handler has
    /// `self.server`: stop it or read its counters from inside a handler
    /// (see [`ShutdownHandle`], also for the process models, and the
    /// example in the [crate docs](crate#hooks)). `None` for a stream made
    /// with [`Stream::connect`] or `TryFrom`, and in
    /// [`RequestHandler::refuse`](crate::RequestHandler::refuse).
    pub fn server(&self) -> Option<&ShutdownHandle> {
        self.server.as_ref()
    }

    /// The address of the other end.
    pub fn peer_addr(&self) -> &Address {
        &self.conn.peer
    }

    /// The address of this end.
    ///
    /// # Errors
    /// Fails if the socket has been closed under the stream.
    pub fn local_addr(&self) -> io::Result<Address> {
        self.conn.socket.local_addr()
    }

    /// Bytes received so far, counting those still in the read buffer.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Bytes sent so far, not counting those still in the write buffer.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// The TCP stream under this one, or `None` for a Unix-domain socket.
    /// For socket options this type does not cover.
    pub fn as_tcp(&self) -> Option<&TcpStream> {
        match &self.conn.socket {
            Socket::Tcp(s) => Some(s),
            Socket::Unix(_) => None,
        }
    }

    /// The Unix-domain stream under this one, or `None` for TCP.
    pub fn as_unix(&self) -> Option<&UnixStream> {
        match &self.conn.socket {
            Socket::Unix(s) => Some(s),
            Socket::Tcp(_) => None,
        }
    }
}

// Options.
impl Stream {
    /// Sets how long a read may wait for data before it fails with
    /// [`io::ErrorKind::TimedOut`]; `None` waits for ever. A server sets it
    /// to its idle timeout.
    ///
    /// # Errors
    /// Fails if the duration is zero, as [`TcpStream::set_read_timeout`].
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.conn.set_read_timeout(timeout)?;
        self.clock.idle = timeout;
        self.clock.socket_set(timeout);
        Ok(())
    }

    /// Sets how long a line or a frame may take to arrive whole, from the
    /// first receive after its first bytes; `None` turns the limit off. A
    /// server sets it to its [message
    /// timeout](crate::Builder::message_timeout). Past it,
    /// the line readers ([`Stream::next_line`], [`Stream::read_line_into`],
    /// [`Stream::read_until_limited`], `BufRead`'s) and
    /// [`Stream::read_frame`] (and [`Stream::read_frame_into`]) fail with
    /// `TimedOut`: the idle timeout alone restarts on every byte, so a
    /// client trickling a byte at a time would never be cut.
    pub fn set_message_timeout(&mut self, timeout: Option<Duration>) {
        self.clock.message = timeout;
    }

    /// The current message timeout.
    pub fn message_timeout(&self) -> Option<Duration> {
        self.clock.message
    }

    /// Sets an instant after which every read that has to wait for the
    /// peer fails with `TimedOut` (bytes already buffered are still
    /// returned); `None` removes it. For a total limit on a phase of the
    /// conversation, such as a login: however the client paces its bytes,
    /// the phase ends by then.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.clock.deadline = deadline;
    }

    /// The current deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.clock.deadline
    }

    /// Sets how long a write may wait for the peer to make room before it
    /// fails with [`io::ErrorKind::TimedOut`]; `None` waits for ever.
    ///
    /// # Errors
    /// Fails if the duration is zero, as [`TcpStream::set_write_timeout`].
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.conn.set_write_timeout(timeout)?;
        self.write_timeout = timeout;
        Ok(())
    }

    /// The current read timeout.
    pub fn read_timeout(&self) -> Option<Duration> {
        self.clock.idle
    }

    /// The current write timeout.
    pub fn write_timeout(&self) -> Option<Duration> {
        self.write_timeout
    }

    /// Turns Nagle's algorithm off (`true`) or on, on TCP; a no-op on Unix
    /// sockets. Servers turn it off by default: replies are already
    /// coalesced by the write buffer, and Nagle would only delay them.
    ///
    /// # Errors
    /// Fails as [`TcpStream::set_nodelay`] does.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        match &self.conn.socket {
            Socket::Tcp(s) => s.set_nodelay(nodelay),
            Socket::Unix(_) => Ok(()),
        }
    }

    /// Sets what this conversation's reads do when the server drains (see
    /// [`WhenDraining`]). It applies to the reads that follow and may
    /// change from read to read, as the protocol moves between safe points
    /// and work in progress. Default: [`WhenDraining::Finish`].
    pub fn set_when_draining(&mut self, policy: WhenDraining) {
        self.when_draining = policy;
    }

    /// What this conversation's reads do when the server drains.
    pub fn when_draining(&self) -> WhenDraining {
        self.when_draining
    }

    /// True once the server has begun to drain (a shutdown was asked for):
    /// lets a handler tell an end of input caused by the drain
    /// ([`WhenDraining::EndWaitingRead`]) from a client's hang-up, and say
    /// goodbye in its protocol's words. In a forked child
    /// ([`Model::Forking`](crate::Model::Forking)) it turns true a moment
    /// after the drain begins, when the parent's word arrives. Always false
    /// for a stream made with [`Stream::connect`] or `TryFrom`.
    pub fn is_draining(&self) -> bool {
        self.conn.is_draining()
    }

    /// The longest line, newline included, that [`Stream::next_line`],
    /// [`Stream::read_line_into`] and `BufRead`'s `read_line` and
    /// `read_until` accept.
    pub fn max_line_len(&self) -> usize {
        self.max_line
    }

    /// Sets the longest line the line readers accept (see
    /// [`Stream::max_line_len`]).
    pub fn set_max_line_len(&mut self, max: usize) {
        self.max_line = max;
    }

    /// The largest payload [`Stream::read_frame`] accepts.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame
    }

    /// Sets the largest payload [`Stream::read_frame`] accepts.
    pub fn set_max_frame_len(&mut self, max: usize) {
        self.max_frame = max;
    }
}

// Reading.
impl Stream {
    /// The bytes received and not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.rbuf[self.rpos..self.rend]
    }

    /// The most bytes one receive takes: the size of the read buffer. A
    /// [`BufRead::fill_buf`] on an empty buffer that returns this many may
    /// have left more of the peer's bytes waiting in the socket; one that
    /// returns fewer took everything that had arrived.
    pub fn read_capacity(&self) -> usize {
        READ_BUFFER
    }

    /// Reads whatever the peer has sent: the buffered bytes if there are
    /// any, otherwise the result of one receive. An empty slice means end of
    /// input.
    ///
    /// This is the tutorial's `recv(1024)` for protocols without boundaries;
    /// the slice is valid until the next call on the stream.
    ///
    /// # Errors
    /// `TimedOut` when the read timeout passes with no data, or any error of
    /// the socket.
    pub fn read_chunk(&mut self) -> io::Result<&[u8]> {
        if self.rpos == self.rend {
            self.fill()?;
        }
        let chunk = &self.rbuf[self.rpos..self.rend];
        self.rpos = self.rend;
        Ok(chunk)
    }

    /// Reads exactly `buf.len()` bytes.
    ///
    /// # Errors
    /// `UnexpectedEof` if the input ends first; `TimedOut`, or any error of
    /// the socket.
    pub fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        Read::read_exact(self, buf)
    }

    /// Receives into the empty read buffer.
    fn fill(&mut self) -> io::Result<usize> {
        // Every caller has consumed the buffer first, so the whole of it
        // is free: no compaction, no growth.
        debug_assert_eq!(self.rpos, self.rend, "fill with unread bytes");
        self.rpos = 0;
        self.rend = 0;
        if self.conn.is_nonblocking() && self.tls.is_none() {
            // The event model: the buffer is lent while the receive waits.
            let n = self.receive(|conn, _, rbuf| conn.recv_lending(rbuf, READ_BUFFER))?;
            self.rend = n;
            return Ok(n);
        }
        if self.rbuf.is_empty() {
            self.rbuf = vec![0; READ_BUFFER];
        }
        let n = self.receive(|conn, tls, rbuf| recv(conn, tls, rbuf))?;
        self.rend = n;
        Ok(n)
    }

    /// One receive, by `recv` into either the read buffer or the caller's
    /// buffer, with what every receive needs around it:
    ///
    /// * the write buffer is flushed first, so the peer has every reply
    ///   before we wait for its next request;
    /// * if the handler asked for [`WhenDraining::EndWaitingRead`] and
    ///   everything received so far has been answered (written after), the
    ///   connection is idle while we wait: between requests, where a
    ///   graceful shutdown may end it as if the client had hung up. A
    ///   request received in part is never idle, whatever method reads it;
    /// * a timeout becomes a `TimedOut` error that says how long it was.
    fn receive(
        &mut self,
        mut recv: impl FnMut(&Connection, &mut Option<Box<Tls>>, &mut Vec<u8>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.flush_buffer()?;
        if self.conn.is_nonblocking() && self.wbuf.capacity() > 0 {
            // Nothing is left to send: a conversation that waits holds no
            // write buffer (the event model's loop lends one when needed).
            crate::event::buffers::give_write(std::mem::take(&mut self.wbuf));
        }
        let conn = &self.conn;
        self.clock
            .before_receive(|timeout| conn.set_read_timeout(timeout))?;
        let idle = !self.unanswered && self.when_draining == WhenDraining::EndWaitingRead;
        if idle && !self.conn.enter_idle() {
            return Ok(0);
        }
        let result = loop {
            match recv(&self.conn, &mut self.tls, &mut self.rbuf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        if idle {
            self.conn.leave_idle();
        }
        match result {
            Ok(n) => {
                self.bytes_read += n as u64;
                self.unanswered |= n > 0;
                Ok(n)
            }
            Err(e) if is_timeout(&e) => Err(self.clock.timed_out()),
            Err(e) => Err(e),
        }
    }

    /// Drops whatever is buffered for writing; for the server, after a
    /// write failed, so that nothing retries it.
    pub(crate) fn discard_output(&mut self) {
        self.wbuf.clear();
    }
}

// Writing.
impl Stream {
    /// Writes all of `buf`, buffered: it goes out when the buffer fills,
    /// on [`Stream::flush`], before the next read that has to wait, and when
    /// the handler returns.
    ///
    /// # Errors
    /// `TimedOut` when the write timeout passes with the peer not reading;
    /// `BrokenPipe` or `ConnectionReset` when the peer has gone.
    pub fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        Write::write_all(self, buf)
    }

    /// Sends everything buffered.
    ///
    /// # Errors
    /// As [`Stream::write_all`].
    pub fn flush(&mut self) -> io::Result<()> {
        self.flush_buffer()
    }

    fn flush_buffer(&mut self) -> io::Result<()> {
        let mut sent = 0;
        while sent < self.wbuf.len() {
            match self.send_from_buffer(sent) {
                Ok(n) => {
                    sent += n;
                    self.bytes_written += n as u64;
                }
                Err(e) => {
                    self.wbuf.drain(..sent);
                    return Err(e);
                }
            }
        }
        self.wbuf.clear();
        // Records encrypted but not yet sent (a send cut short) go too.
        if let Some(tls) = &mut self.tls {
            tls.send_pending(&self.conn)
                .map_err(|e| write_error(e, self.write_timeout))?;
        }
        Ok(())
    }

    fn send_from_buffer(&mut self, from: usize) -> io::Result<usize> {
        let bufs = [IoSlice::new(&self.wbuf[from..])];
        send(&self.conn, &mut self.tls, self.write_timeout, &bufs)
    }

    fn send(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        send(&self.conn, &mut self.tls, self.write_timeout, bufs)
    }
}

/// One receive through the TLS layer if there is one, else from the socket.
fn recv(conn: &Connection, tls: &mut Option<Box<Tls>>, buf: &mut [u8]) -> io::Result<usize> {
    match tls {
        Some(tls) => tls.recv(conn, buf),
        None => conn.recv(buf),
    }
}

/// One send, through the TLS layer if there is one: the bytes of `bufs`
/// taken, at least one.
fn send(
    conn: &Connection,
    tls: &mut Option<Box<Tls>>,
    write_timeout: Option<Duration>,
    bufs: &[IoSlice<'_>],
) -> io::Result<usize> {
    loop {
        let sent = match tls {
            Some(tls) => tls.send(conn, bufs),
            None => conn.send_vectored(bufs),
        };
        match sent {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the peer accepts no more data",
                ))
            }
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(write_error(e, write_timeout)),
        }
    }
}

/// A send's error, a timeout saying how long it was.
fn write_error(e: io::Error, write_timeout: Option<Duration>) -> io::Error {
    if !is_timeout(&e) {
        return e;
    }
    io::Error::new(
        io::ErrorKind::TimedOut,
        match write_timeout {
            Some(t) => format!("the peer read nothing for {}", seconds(t)),
            None => "write timed out".to_string(),
        },
    )
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // A large read with nothing buffered goes straight into the
        // caller's buffer: file transfers should not pay for a copy.
        if self.rpos == self.rend && buf.len() >= READ_BUFFER {
            return self.receive(|conn, tls, _| recv(conn, tls, buf));
        }
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// `read_line` and `read_until` (and so `lines` and `split`, which use
/// them) keep the line limit, [`Stream::max_line_len`], whatever the
/// delimiter: past it they fail as [`Stream::read_line_into`] does, with a
/// [`LimitExceeded`] inside, and the bytes of the over-long line are
/// dropped. They run on the message clock too.
impl BufRead for Stream {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.rpos == self.rend {
            self.fill()?;
        }
        Ok(&self.rbuf[self.rpos..self.rend])
    }

    fn consume(&mut self, amount: usize) {
        self.rpos = (self.rpos + amount).min(self.rend);
    }

    fn read_until(&mut self, delimiter: u8, buf: &mut Vec<u8>) -> io::Result<usize> {
        let max = self.max_line;
        self.read_delimited(delimiter, buf, max)
    }

    fn read_line(&mut self, buf: &mut String) -> io::Result<usize> {
        self.read_line_string(buf)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !buf.is_empty() {
            self.unanswered = false;
        }
        if self.wbuf.len() + buf.len() <= WRITE_BUFFER {
            if self.wbuf.capacity() == 0 {
                self.wbuf = if self.conn.is_nonblocking() {
                    crate::event::buffers::take_write(WRITE_BUFFER)
                } else {
                    Vec::with_capacity(WRITE_BUFFER)
                };
            }
            self.wbuf.extend_from_slice(buf);
            return Ok(buf.len());
        }
        if self.wbuf.is_empty() {
            let n = self.send(&[IoSlice::new(buf)])?;
            self.bytes_written += n as u64;
            return Ok(n);
        }
        // Too big for the buffer: send what is buffered and the new bytes
        // together, in one system call.
        let buffered = self.wbuf.len();
        let n = send(
            &self.conn,
            &mut self.tls,
            self.write_timeout,
            &[IoSlice::new(&self.wbuf), IoSlice::new(buf)],
        )?;
        self.bytes_written += n as u64;
        if n > buffered {
            self.wbuf.clear();
            return Ok(n - buffered);
        }
        // Not even the buffer went out whole: keep its rest first in line,
        // then try the new bytes again (never answer Ok(0), which
        // `write_all` would take for a dead peer).
        self.wbuf.drain(..n);
        self.flush_buffer()?;
        self.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_buffer()
    }
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("peer", &self.conn.peer)
            .field("buffered_in", &(self.rend - self.rpos))
            .field("buffered_out", &self.wbuf.len())
            .finish()
    }
}

impl std::os::fd::AsFd for Stream {
    /// The socket's descriptor, to `poll` it beside others (say, a data
    /// connection). Data already in the read buffer does not show there:
    /// look at [`Stream::buffered`] first. Under TLS every byte decrypted
    /// is moved to that buffer as it arrives (up to its
    /// [capacity](Stream::read_capacity)), so the same holds; but a
    /// readable socket may hold only part of a record, or a TLS message
    /// that carries no data: the read that follows may then wait for the
    /// rest, bounded by the read timeout.
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match &self.conn.socket {
            Socket::Tcp(s) => s.as_fd(),
            Socket::Unix(s) => s.as_fd(),
        }
    }
}

/// A socket timeout shows as EAGAIN (`WouldBlock`) on Unix.
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
