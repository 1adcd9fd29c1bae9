//! Ending a [`Stream`]'s conversation from its own side: closing the
//! writing half (TLS's `close_notify` first), Apache's lingering close, the
//! usual end after input over a limit, and the last flush when a stream is
//! dropped, bounded in time.

use std::io;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use super::{LimitExceeded, Stream};

/// How long [`Stream::close_over_limit`] goes on discarding the rest of
/// the over-long input.
const OVER_LIMIT_LINGER: Duration = Duration::from_secs(2);

/// The longest a dropped stream that has no write timeout waits, in each
/// send of its last output, for a peer that does not read.
const DROP_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

impl Stream {
    /// Closes the connection without losing the last reply, as Apache's
    /// lingering close: flushes, closes the writing half, then reads and
    /// discards whatever the peer still sends until it closes, or until
    /// `max_wait` passes (or 1 MiB has been discarded).
    ///
    /// Why: closing a TCP socket that still has unread input makes the
    /// kernel send a reset instead of an orderly end, and a reset can
    /// destroy the reply (an error message, say) before the client reads
    /// it. Use it when the server hangs up while the client may still be
    /// sending, as after refusing an over-long request.
    ///
    /// # Errors
    /// Fails if the flush or the shutdown fails; reading errors end the
    /// discarding quietly.
    pub fn lingering_close(&mut self, max_wait: Duration) -> io::Result<()> {
        self.shutdown_write()?;
        let usual = self.clock.idle;
        // Discarding is bounded by `max_wait` alone: a login deadline
        // that passed must not end it early.
        let usual_deadline = self.clock.deadline.take();
        let deadline = Instant::now() + max_wait;
        let mut discarded = 0usize;
        self.rpos = self.rend;
        while discarded < 1024 * 1024 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.set_read_timeout(Some(left)).is_err() {
                break;
            }
            match self.fill() {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    discarded += n;
                    self.rpos = self.rend;
                }
            }
        }
        let _ = self.set_read_timeout(usual);
        self.clock.deadline = usual_deadline;
        Ok(())
    }

    /// Ends the conversation after input over a limit (a [`LimitExceeded`]
    /// from a line or frame reader, or the handler's own), the usual way:
    /// logs it (a warning with the peer's address), lets `reply` tell the
    /// client in the protocol's words (an error line, FTP's `500`), then
    /// closes with a [lingering close](Stream::lingering_close) of 2
    /// seconds. The rest of the over-long input may still be arriving:
    /// a plain close would reset the connection, and the reset could
    /// destroy the reply before the client reads it.
    ///
    /// ```
    /// # fn f(stream: &mut socketserver::Stream) -> std::io::Result<()> {
    /// use socketserver::LimitExceeded;
    /// let mut line = Vec::new();
    /// loop {
    ///     line.clear();
    ///     match stream.read_line_into(&mut line) {
    ///         Ok(0) => return Ok(()),
    ///         Ok(_) => stream.write_all(&line)?,
    ///         Err(e) => {
    ///             let Some(exceeded) = LimitExceeded::from_error(&e) else {
    ///                 return Err(e);
    ///             };
    ///             let why = format!("error: {exceeded}\n");
    ///             return stream.close_over_limit(exceeded, |s| s.write_all(why.as_bytes()));
    ///         }
    ///     }
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    /// Fails if `reply` fails, or as [`Stream::lingering_close`].
    pub fn close_over_limit(
        &mut self,
        exceeded: LimitExceeded,
        reply: impl FnOnce(&mut Stream) -> io::Result<()>,
    ) -> io::Result<()> {
        log::warn!("{}: {exceeded}; closing", self.peer_addr());
        reply(self)?;
        self.lingering_close(OVER_LIMIT_LINGER)
    }

    /// Closes the writing half: the peer reads end-of-file once the
    /// buffered output has gone. Flushes first.
    ///
    /// # Errors
    /// Fails if the flush or the shutdown fails.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        self.flush_buffer()?;
        if let Some(tls) = &mut self.tls {
            tls.close_notify(&self.conn)?;
        }
        self.conn.socket.shutdown(Shutdown::Write)
    }
}

/// Sends what is still buffered, as `BufWriter` does: a best effort,
/// errors ignored. A stream with no write timeout (a client's, by default)
/// gets one of 5 seconds first: a peer that never reads cannot hold the
/// dropping thread for ever.
impl Drop for Stream {
    fn drop(&mut self) {
        let tls_pending = self
            .tls
            .as_ref()
            .is_some_and(|tls| tls.state().wants_write());
        if self.wbuf.is_empty() && !tls_pending {
            return;
        }
        if self.write_timeout.is_none() {
            let _ = self.set_write_timeout(Some(DROP_FLUSH_TIMEOUT));
        }
        let _ = self.flush_buffer();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::mpsc;

    /// A client stream (no write timeout) with output buffered, to a peer
    /// that never reads: dropping it returns within the bound.
    #[test]
    fn drop_does_not_wait_for_ever_on_a_peer_that_never_reads() {
        // Small buffers, fixed (no autotuning), so that they stay full.
        let listener =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        listener.set_recv_buffer_size(4096).unwrap();
        listener
            .bind(
                &"127.0.0.1:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .unwrap();
        listener.listen(1).unwrap();
        let listener = TcpListener::from(listener);
        let mut stream = Stream::connect(listener.local_addr().unwrap()).unwrap();
        socket2::SockRef::from(stream.as_tcp().unwrap())
            .set_send_buffer_size(4096)
            .unwrap();
        // Kept open, never read, until the end of the test.
        let (_peer, _) = listener.accept().unwrap();
        // Fill the kernel's buffers on both sides, until a flush times out
        // with output left in the stream's own buffer.
        stream
            .set_write_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        loop {
            let _ = stream.write_all(&[0; 4096]);
            match stream.flush() {
                Ok(()) => continue,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(!stream.wbuf.is_empty());
        stream.set_write_timeout(None).unwrap();

        let started = Instant::now();
        let (dropped, done) = mpsc::channel();
        std::thread::spawn(move || {
            drop(stream);
            let _ = dropped.send(());
        });
        let waited = done.recv_timeout(DROP_FLUSH_TIMEOUT + Duration::from_secs(10));
        let elapsed = started.elapsed();
        assert!(waited.is_ok(), "drop still blocked after {elapsed:?}");
        assert!(
            elapsed >= Duration::from_secs(1),
            "drop returned after {elapsed:?}: did it try to send?"
        );
    }
}
