//! `fork(2)` and the child's side of it: the one module with `unsafe` code.
//!
//! A forked child is a copy of the parent frozen at one instant, with one
//! thread: the one that called `fork`. Whatever another thread held at that
//! instant (a mutex, the stderr lock, a half-written buffer) stays held for
//! ever in the child. So the forking models fork only from a process that
//! is otherwise quiet (see `docs/architecture.md`, "Forking"), and the
//! child:
//!
//! * puts the signals a server cares about back to their defaults (a
//!   handler installed by the parent, say by signal-hook for graceful
//!   shutdown, would otherwise make the child ignore SIGTERM) and unblocks
//!   every signal;
//! * closes the descriptors it must not keep (the listening socket, the
//!   parent's waker) by number, never by dropping their owners, whose
//!   destructors belong to the parent (a Unix listener's would remove the
//!   socket file);
//! * runs its work inside `catch_unwind` and ends with `_exit`: no return
//!   into the parent's loop, no destructors, no `atexit` work, no flushing
//!   of buffers inherited from the parent.

use std::os::fd::RawFd;
use std::panic::{self, AssertUnwindSafe};

use nix::sys::signal::{self, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::{ForkResult, Pid};

use crate::Error;

/// Exit status of a child whose work panicked outside the handler's own
/// steps (those are caught and reported by the life cycle).
pub(crate) const EXIT_PANIC: i32 = 101;

/// The signals whose dispositions a child puts back to the default.
const RESET: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Forks. In the child, runs `work` and exits with the status it returns,
/// never returning; in the parent, returns the child's pid.
///
/// `close_in_child` are descriptors the child closes first (by number: their
/// owners are never dropped in the child).
pub(crate) fn spawn(close_in_child: &[RawFd], work: impl FnOnce() -> i32) -> std::io::Result<Pid> {
    // SAFETY: the child below only closes descriptors, resets signal
    // dispositions and runs `work` before `_exit`; it never returns into
    // the caller. The forking models call this from a parent with no other
    // thread that could hold a lock the child needs: checked when the
    // server is built and again when it serves (`ensure_single_threaded`),
    // unless the caller took that promise on with the `unsafe`
    // `Builder::allow_fork_with_threads`.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            reset_signals();
            for &fd in close_in_child {
                let _ = nix::unistd::close(fd);
            }
            let status = panic::catch_unwind(AssertUnwindSafe(work)).unwrap_or(EXIT_PANIC);
            exit_now(status)
        }
    }
}

/// The threads of this process, the caller's included, as
/// `/proc/self/task` lists them; 1 where that cannot be read (not Linux).
pub(crate) fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(1, |tasks| tasks.count())
}

/// Refuses to let `model` fork from a process with other threads, unless
/// the caller vouched for them (`allowed`).
pub(crate) fn ensure_single_threaded(model: &'static str, allowed: bool) -> Result<(), Error> {
    let threads = threads();
    if threads <= 1 {
        return Ok(());
    }
    if allowed {
        log::debug!("the {model} model forks from a process with {threads} threads, as allowed");
        return Ok(());
    }
    Err(Error::ForkWithThreads { model, threads })
}

/// Ends the process at once, as `_exit(2)`.
pub(crate) fn exit_now(status: i32) -> ! {
    // SAFETY: `_exit` takes no pointers and cannot fail; it ends the
    // process without running anything of the parent's (destructors,
    // atexit handlers, stdio flushing), which is the point.
    unsafe { libc::_exit(status) }
}

fn reset_signals() {
    let default = SigAction::new(
        SigHandler::SigDfl,
        signal::SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in RESET {
        // SAFETY: installing SIG_DFL runs no code of ours in a signal
        // context; it only undoes what the parent installed.
        let _ = unsafe { signal::sigaction(sig, &default) };
    }
    let _ = signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}
