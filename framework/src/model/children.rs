//! [`Children`]: the child processes of a process model (forking's
//! conversations, prefork's workers). Each is forked with a pipe to the
//! parent ([`child_pipe`](crate::child_pipe)); the parent reads their
//! notices, reaps them when they are gone (the pipe's end of file says so:
//! no SIGCHLD handler, no polling, and never `waitpid(-1)`: only the
//! children the server spawned are waited for), stops them on a drain
//! (SIGTERM, then SIGKILL), and logs how they ended.

use std::fmt;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::child_pipe::{self, ChildEnd, Notice, ParentEnd};

/// How long children get to end after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(1);

/// One child process, and its owner's bookkeeping `T`, whose `Display`
/// names it in logs ("prefork worker"), before its pid.
pub(crate) struct Child<T> {
    pub(crate) pid: Pid,
    pub(crate) pipe: ParentEnd,
    /// The child has said all it had to say: it is reaped as soon as it
    /// exits, even if a grandchild it forked still holds its pipe open.
    pub(crate) done: bool,
    pub(crate) what: T,
}

impl<T: fmt::Display> fmt::Display for Child<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.what, self.pid)
    }
}

/// How a child ended, as `waitpid` said (`None`: it could not say).
pub(crate) struct Exit(Option<WaitStatus>);

impl Exit {
    /// Exited with status 0.
    pub(crate) fn is_clean(&self) -> bool {
        matches!(self.0, Some(WaitStatus::Exited(_, 0)))
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(WaitStatus::Exited(_, code)) => write!(f, "exited with status {code}"),
            Some(WaitStatus::Signaled(_, signal, core)) => write!(
                f,
                "killed by {signal}{}",
                if core { " (core dumped)" } else { "" }
            ),
            other => write!(f, "ended: {other:?}"),
        }
    }
}

/// Forks a child that runs `work` with its end of a new pipe, and returns
/// its pid and the parent's end. The child first closes `close_in_child`
/// (among them the other children's pipes: see [`fork::spawn`]) and the
/// parent's end of its own pipe.
///
/// [`fork::spawn`]: crate::fork::spawn
pub(crate) fn spawn(
    close_in_child: &[RawFd],
    work: impl FnOnce(ChildEnd) -> i32,
) -> io::Result<(Pid, ParentEnd)> {
    let (parent_end, child_end) = child_pipe::pair()?;
    let mut close = close_in_child.to_vec();
    close.push(parent_end.raw_fd());
    // In the parent the closure is dropped when this returns: the parent's
    // copies of the child's end, and of whatever `work` holds, close.
    let pid = crate::fork::spawn(&close, move || work(child_end))?;
    Ok((pid, parent_end))
}

/// The live children of one server.
pub(crate) struct Children<T> {
    list: Vec<Child<T>>,
}

impl<T: fmt::Display> Children<T> {
    pub(crate) fn new() -> Children<T> {
        Children { list: Vec::new() }
    }

    pub(crate) fn push(&mut self, pid: Pid, pipe: ParentEnd, what: T) {
        self.list.push(Child {
            pid,
            pipe,
            done: false,
            what,
        });
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Child<T>> {
        self.list.iter()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Child<T>> {
        self.list.iter_mut()
    }

    /// The parent's ends of the pipes, to poll.
    pub(crate) fn watched(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.list.iter().map(|c| c.pipe.fd())
    }

    /// The same, by number, for a new child to close.
    pub(crate) fn raw_fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.list.iter().map(|c| c.pipe.raw_fd())
    }

    /// Reads every child's notices into `on_notice`, and reaps the children
    /// that are gone, each with its exit into `on_exit`.
    pub(crate) fn collect<N, E>(&mut self, on_notice: &mut N, on_exit: &mut E)
    where
        N: FnMut(&mut Child<T>, Notice),
        E: FnMut(Child<T>, Exit),
    {
        let mut i = 0;
        while i < self.list.len() {
            let child = &mut self.list[i];
            let (notices, gone) = child.pipe.read_notices();
            for notice in notices {
                on_notice(child, notice);
            }
            // A child that is done may still be held open by a grandchild
            // it forked; look for its exit anyway, without waiting, so that
            // no zombie outlives a turn of the loop.
            let status = if gone {
                Some(waitpid(child.pid, None).ok())
            } else if child.done {
                waitpid(child.pid, Some(WaitPidFlag::WNOHANG))
                    .ok()
                    .filter(|s| *s != WaitStatus::StillAlive)
                    .map(Some)
            } else {
                None
            };
            match status {
                Some(status) => on_exit(self.list.swap_remove(i), Exit(status)),
                None => i += 1,
            }
        }
    }

    /// Collects until every child has ended or `deadline` passes.
    pub(crate) fn wait_until<N, E>(&mut self, deadline: Instant, on_notice: &mut N, on_exit: &mut E)
    where
        N: FnMut(&mut Child<T>, Notice),
        E: FnMut(Child<T>, Exit),
    {
        while !self.list.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            let fds: Vec<BorrowedFd<'_>> = self.watched().collect();
            let _ = crate::waker::poll_readable(&fds, Some(deadline - now));
            self.collect(on_notice, on_exit);
        }
    }

    /// The end of a drain: asks the children still running to end
    /// (SIGTERM), collects for a moment, then kills and reaps the rest.
    pub(crate) fn terminate<N, E>(&mut self, on_notice: &mut N, on_exit: &mut E)
    where
        N: FnMut(&mut Child<T>, Notice),
        E: FnMut(Child<T>, Exit),
    {
        if self.list.is_empty() {
            return;
        }
        for child in &self.list {
            log::warn!("{child} still running at the drain deadline; SIGTERM");
            let _ = kill(child.pid, Signal::SIGTERM);
        }
        self.wait_until(Instant::now() + TERM_GRACE, on_notice, on_exit);
        self.kill_all(on_exit);
    }

    /// Kills and reaps every child, at once.
    pub(crate) fn kill_all<E>(&mut self, on_exit: &mut E)
    where
        E: FnMut(Child<T>, Exit),
    {
        for child in &self.list {
            let _ = kill(child.pid, Signal::SIGKILL);
        }
        for child in std::mem::take(&mut self.list) {
            let status = waitpid(child.pid, None).ok();
            on_exit(child, Exit(status));
        }
    }
}
