//! What the accept loop does with an accept error: classify it, and pause
//! accepting (doubling from 5 ms to 1 s) when retrying at once cannot
//! mend it. The loop never ends on an accept error.

use std::io;
use std::time::Duration;

use nix::errno::Errno;

use super::AcceptLoop;

/// The first and the longest pause after an accept error that retrying at
/// once cannot mend (out of descriptors, of memory).
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl AcceptLoop {
    /// Classifies an accept error; returns true if accepting again at once
    /// makes sense.
    pub(super) fn accept_failed(&mut self, e: io::Error) -> bool {
        let errno = e.raw_os_error().map(Errno::from_raw);
        match (e.kind(), errno) {
            (io::ErrorKind::WouldBlock, _) => false,
            // A prefork worker's listener was shut down by the parent: it
            // will never accept again, so this worker is done.
            (_, Some(Errno::EINVAL)) if self.model.shares_listener() => {
                log::debug!("the listening socket was shut down; stopping");
                self.runner.shared.request_shutdown();
                false
            }
            // A client that gave up between the kernel's handshake and our
            // accept, or a signal: nothing is wrong with us.
            (io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted, _) => true,
            (
                _,
                Some(
                    Errno::EPROTO
                    | Errno::ENETDOWN
                    | Errno::ENOPROTOOPT
                    | Errno::EHOSTDOWN
                    | Errno::ENONET
                    | Errno::EHOSTUNREACH
                    | Errno::EOPNOTSUPP
                    | Errno::ENETUNREACH,
                ),
            ) => {
                // Linux passes pending network errors of the new socket to
                // accept; they concern that client only.
                log::debug!("accept: {}", crate::describe(&e));
                true
            }
            _ => {
                self.runner.shared.stats.accept_error();
                let pause = self.next_backoff();
                let resources = matches!(
                    errno,
                    Some(Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM)
                );
                let what = if resources {
                    "out of resources"
                } else {
                    "unexpected error"
                };
                log::error!(
                    "accept failed ({what}): {}; pausing {} ms before accepting again",
                    crate::describe(&e),
                    pause.as_millis()
                );
                false
            }
        }
    }

    fn next_backoff(&mut self) -> Duration {
        let pause = self
            .last_pause
            .map_or(FIRST_BACKOFF, |last| (last * 2).min(MAX_BACKOFF));
        self.last_pause = Some(pause);
        self.pause = Some(pause);
        pause
    }
}
