//! A thread that watches a stop descriptor for a server whose loop cannot:
//! the `Sync` model's, which is inside a handler most of the time.

use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags};

use crate::ShutdownHandle;

/// Watches a stop descriptor from a thread of its own, for the `Sync`
/// model; ends (and is joined) when dropped.
pub(super) struct StopWatcher {
    quit: Option<std::os::unix::net::UnixStream>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StopWatcher {
    pub(super) fn start(
        stop: &std::os::fd::OwnedFd,
        handle: ShutdownHandle,
    ) -> Option<StopWatcher> {
        let stop = stop.try_clone().ok()?;
        let (quit, quit_seen) = std::os::unix::net::UnixStream::pair().ok()?;
        let thread = std::thread::Builder::new()
            .name("stop watcher".into())
            .spawn(move || {
                let mut fds = [
                    PollFd::new(stop.as_fd(), PollFlags::POLLIN),
                    PollFd::new(quit_seen.as_fd(), PollFlags::POLLIN),
                ];
                loop {
                    match poll(&mut fds, crate::waker::poll_timeout(None)) {
                        Err(Errno::EINTR) => continue,
                        Err(_) => return,
                        Ok(_) => break,
                    }
                }
                if fds[0].any().unwrap_or(false) {
                    log::info!("stop requested (a signal?); draining");
                    handle.shutdown();
                }
            })
            .ok()?;
        Some(StopWatcher {
            quit: Some(quit),
            thread: Some(thread),
        })
    }
}

impl Drop for StopWatcher {
    fn drop(&mut self) {
        // Closing our end wakes the thread, which then ends at once.
        self.quit = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
