//! A self-pipe that wakes the accept loop from any thread.
//!
//! std retries `accept` on EINTR, so neither a signal nor closing the
//! listener from another thread reliably wakes a blocked accept. The loop
//! therefore waits in `poll` on the listener and on one end of a socket
//! pair; writing a byte to the other end wakes it at once, at the cost of
//! one extra descriptor in each poll.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;

#[derive(Debug)]
pub(crate) struct Waker {
    reader: UnixStream,
    writer: UnixStream,
}

impl Waker {
    pub(crate) fn new() -> io::Result<Waker> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        Ok(Waker { reader, writer })
    }

    /// Wakes the poller. Never blocks: when the pair is full a wake-up is
    /// already pending, which is all we need.
    pub(crate) fn wake(&self) {
        let _ = (&self.writer).write(&[1]);
    }

    /// Empties the pair after a wake-up so the next poll waits again.
    pub(crate) fn reset(&self) {
        let mut sink = [0u8; 64];
        while let Ok(n) = (&self.reader).read(&mut sink) {
            if n < sink.len() {
                break;
            }
        }
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.reader.as_fd()
    }
}
