//! [`wait`]: `poll(2)` for handlers, which parks the conversation instead
//! of blocking its loop in the event model; and the waits of a
//! connection's non-blocking socket.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags};

use super::park::{self, Interest, Wake};

/// Waits until one of `fds` is ready the way it is asked (or has hung up,
/// or has an error), or `timeout` passes (`None`: no limit); says which
/// are ready, all `false` on timeout.
///
/// In a conversation of the event model the conversation parks and its
/// loop serves the others meanwhile; anywhere else this is `poll(2)`. A
/// handler that watches two sockets at once (FTP: the control connection
/// during a transfer) or a descriptor of its own (a child's pipe) waits
/// here, on non-blocking descriptors.
///
/// # Errors
/// As `poll(2)`, or registering a descriptor with the loop's poller.
///
/// # Examples
/// ```
/// use std::os::fd::AsFd;
/// use socketserver::event::{wait, Interest};
/// let (a, b) = std::os::unix::net::UnixStream::pair()?;
/// std::io::Write::write_all(&mut &b, b"hi")?;
/// let ready = wait(&[(a.as_fd(), Interest::Readable)], None)?;
/// assert_eq!(ready, [true]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn wait(
    fds: &[(BorrowedFd<'_>, Interest)],
    timeout: Option<Duration>,
) -> io::Result<Vec<bool>> {
    if !park::in_coroutine() {
        return poll(fds, timeout);
    }
    let deadline = timeout.map(|t| Instant::now() + t);
    let raw: Vec<_> = fds.iter().map(|(fd, i)| (fd.as_raw_fd(), *i)).collect();
    loop {
        let ready = poll(fds, Some(Duration::ZERO))?;
        if ready.contains(&true) {
            return Ok(ready);
        }
        if park::park_on(&raw, deadline)? == Wake::TimedOut {
            return Ok(vec![false; fds.len()]);
        }
    }
}

/// Waits for a connection's non-blocking socket until `deadline`: parks
/// the coroutine (registering the socket with its loop at the first
/// wait, for good), or polls outside one. Returns false once the deadline
/// has passed; true when the socket may be ready (the caller tries again,
/// and waits again if it was not).
pub(crate) fn wait_socket(
    fd: BorrowedFd<'_>,
    interest: Interest,
    deadline: Option<Instant>,
    registered: &std::sync::atomic::AtomicBool,
) -> io::Result<bool> {
    use std::sync::atomic::Ordering;
    if deadline.is_some_and(|d| d <= Instant::now()) {
        return Ok(false);
    }
    if !park::in_coroutine() {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        poll(&[(fd, interest)], left)?;
        return Ok(true);
    }
    if !registered.swap(true, Ordering::Relaxed) {
        park::register_for_life(fd.as_raw_fd())?;
    }
    park::park(deadline);
    Ok(true)
}

fn poll(fds: &[(BorrowedFd<'_>, Interest)], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    let mut set: Vec<PollFd<'_>> = fds
        .iter()
        .map(|(fd, interest)| {
            let flags = match interest {
                Interest::Readable => PollFlags::POLLIN,
                Interest::Writable => PollFlags::POLLOUT,
                Interest::ReadableOrWritable => PollFlags::POLLIN | PollFlags::POLLOUT,
            };
            PollFd::new(*fd, flags)
        })
        .collect();
    match nix::poll::poll(&mut set, crate::waker::poll_timeout(timeout)) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(set.iter().map(|fd| fd.any().unwrap_or(false)).collect())
}

/// Sleeps for `duration`: in a conversation of the event model the
/// conversation parks and its loop serves the others meanwhile; anywhere
/// else this is [`std::thread::sleep`]. For a handler's deliberate pauses
/// (a throttle before answering a wrong password).
///
/// # Examples
/// ```
/// let start = std::time::Instant::now();
/// socketserver::event::sleep(std::time::Duration::from_millis(5));
/// assert!(start.elapsed() >= std::time::Duration::from_millis(5));
/// ```
pub fn sleep(duration: Duration) {
    if !park::in_coroutine() {
        std::thread::sleep(duration);
        return;
    }
    let until = Instant::now() + duration;
    while Instant::now() < until {
        park::park(Some(until));
    }
}

/// Lets the loop serve its other conversations before this one goes on:
/// in a conversation of the event model it parks until the loop's next
/// turn (after the others that are ready have run); anywhere else it
/// returns at once.
///
/// For a handler that may run long without waiting: one that moves a
/// file over a socket that is always ready (a fast client on a fast
/// network) never parks otherwise, and would hold its loop, and every
/// other conversation on it, until it is done. Called every few
/// megabytes, it costs one loop turn each time.
///
/// # Examples
/// ```
/// for chunk in 0..4 {
///     // ... move a chunk ...
///     socketserver::event::yield_now();
/// #   let _ = chunk;
/// }
/// ```
pub fn yield_now() {
    if park::in_coroutine() {
        park::park(Some(Instant::now()));
    }
}
