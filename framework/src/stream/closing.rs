//! Ending a [`Stream`]'s conversation from its own side: closing the
//! writing half (TLS's `close_notify` first), and Apache's lingering close.

use std::io;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use super::Stream;

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

    /// Closes the writing half: the peer reads end-of-file once the
    /// buffered output has gone. Flushes first.
    ///
    /// # Errors
    /// Fails if the flush or the shutdown fails.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        self.flush_buffer()?;
        if let Some(tls) = &mut self.tls {
            tls.close_notify(&self.conn.socket)?;
        }
        self.conn.socket.shutdown(Shutdown::Write)
    }
}
