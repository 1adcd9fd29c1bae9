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

    /// Both descriptors, for a forked child to close.
    pub(crate) fn raw_fds(&self) -> [std::os::fd::RawFd; 2] {
        use std::os::fd::AsRawFd;
        [self.reader.as_raw_fd(), self.writer.as_raw_fd()]
    }
}

/// Waits until one of `fds` is readable (or closed), or `timeout` passes;
/// says which are.
pub(crate) fn poll_readable(
    fds: &[BorrowedFd<'_>],
    timeout: Option<std::time::Duration>,
) -> io::Result<Vec<bool>> {
    use nix::poll::{poll, PollFd, PollFlags};
    let mut set: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect();
    match poll(&mut set, poll_timeout(timeout)) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(set.iter().map(|fd| fd.any().unwrap_or(false)).collect())
}

/// A `poll` timeout from a duration, rounded up to whole milliseconds so
/// that a wait of 0.4 ms does not spin; `None` waits for ever.
pub(crate) fn poll_timeout(timeout: Option<std::time::Duration>) -> nix::poll::PollTimeout {
    use nix::poll::PollTimeout;
    match timeout {
        Some(t) => {
            let ms = t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
        }
        None => PollTimeout::NONE,
    }
}
