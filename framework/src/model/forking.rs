//! `Model::Forking`: a process per connection, Python's `ForkingMixIn`.
//!
//! The accept loop forks a child for each connection; the child converses,
//! reports how it went on a socket pair, and `_exit`s. The parent keeps one
//! end of each pair: its end-of-file says that the child is gone, which
//! wakes the accept loop (no SIGCHLD handler, no polling), and the parent
//! then reaps that child by its pid. Only the children the server spawned
//! are ever waited for, never `waitpid(-1)`.

use std::io::{self, Read};
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::fork;
use crate::per_ip::PeerKey;
use crate::report::{self, Event, Reporter, Reports};
use crate::service::{Service, Work};
use crate::shared::Shared;
use crate::socket::Connection;
use crate::stats::{Ended, Outcome};
use crate::{Address, DrainReport};

/// How long children get to end after SIGTERM before SIGKILL.
pub(crate) const TERM_GRACE: Duration = Duration::from_secs(1);
/// The drain watcher of a forked child reads one byte: a small stack will
/// do (the default is 2 MiB of address space).
const DRAIN_WATCHER_STACK: usize = 64 * 1024;

pub(crate) struct Forking {
    limit: usize,
    children: Vec<Child>,
}

struct Child {
    pid: Pid,
    peer: Address,
    reports: Reports,
    /// The child has reported the end of its conversation.
    reported: bool,
    /// The client's place in the per-address count, freed when the child
    /// is gone.
    key: Option<PeerKey>,
}

impl Forking {
    pub(crate) fn new(limit: usize) -> Forking {
        Forking {
            limit,
            children: Vec::new(),
        }
    }

    pub(crate) fn may_accept(&self) -> bool {
        self.children.len() < self.limit
    }

    /// The parent's ends of the children's report pairs, to poll.
    pub(crate) fn watched(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.children.iter().map(|c| c.reports.fd())
    }

    /// Forks a child to serve `work` (a connection, or a datagram), which
    /// holds `key` in the per-address count. The parent's copy of a
    /// connection's socket is closed before this returns.
    pub(crate) fn fork_for(
        &mut self,
        shared: &Shared,
        service: &Arc<dyn Service>,
        work: Work,
        key: Option<PeerKey>,
        close_in_child: &[RawFd],
    ) {
        let peer = work.peer().clone();
        let (reports, mut reporter) = match report::pair() {
            Ok(pair) => pair,
            Err(e) => {
                log::error!(
                    "{peer}: cannot make a report pair for a child: {}",
                    crate::describe(&e)
                );
                shared.stats.ended(Outcome::Failed, 0, 0);
                if let Some(key) = key {
                    shared.release_peer(key);
                }
                return;
            }
        };
        let mut close: Vec<RawFd> = close_in_child.to_vec();
        close.extend(self.children.iter().map(|c| c.reports.raw_fd()));
        close.push(reports.raw_fd());
        let spawned = fork::spawn(&close, move || {
            if let Work::Conversation(conn) = &work {
                watch_for_drain(&reporter, conn);
            }
            let ended = service.run(shared, work);
            reporter.send(Event::Ended(ended));
            0
        });
        // Here, in the parent, the closure is gone: the parent's copies of
        // the connection and of the child's end of the pair are closed.
        match spawned {
            Ok(pid) => {
                log::debug!("{peer}: served by child {pid}");
                self.children.push(Child {
                    pid,
                    peer,
                    reports,
                    reported: false,
                    key,
                });
                shared.stats.set_active(self.children.len());
            }
            Err(e) => {
                log::error!("{peer}: cannot fork: {}", crate::describe(&e));
                shared.stats.ended(Outcome::Failed, 0, 0);
                if let Some(key) = key {
                    shared.release_peer(key);
                }
            }
        }
    }

    /// Reads the children's reports and reaps the children that are gone.
    pub(crate) fn collect(&mut self, shared: &Shared) {
        let mut i = 0;
        while i < self.children.len() {
            let child = &mut self.children[i];
            let gone = child.reports.drain(|event| {
                if let Event::Ended(Ended {
                    outcome,
                    bytes_read,
                    bytes_written,
                }) = event
                {
                    shared.stats.ended(outcome, bytes_read, bytes_written);
                    child.reported = true;
                }
            });
            // A child that reported may still be held open by a
            // grandchild it forked; look for its exit anyway, without
            // waiting, so that no zombie outlives a turn of the loop.
            let status = if gone {
                waitpid(child.pid, None).ok()
            } else if child.reported {
                waitpid(child.pid, Some(WaitPidFlag::WNOHANG))
                    .ok()
                    .filter(|s| *s != WaitStatus::StillAlive)
            } else {
                None
            };
            match status {
                Some(status) => {
                    let child = self.children.swap_remove(i);
                    if let Some(key) = child.key {
                        shared.release_peer(key);
                    }
                    log_exit(&child, status, shared);
                }
                None => i += 1,
            }
        }
        shared.stats.set_active(self.children.len());
    }

    /// Tells the children that the server drains (each then ends the
    /// waiting read of a conversation that asked for it), waits for them
    /// until `deadline`, then SIGTERM, then SIGKILL.
    pub(crate) fn drain(&mut self, shared: &Shared, deadline: Instant) -> DrainReport {
        let at_start = self.children.len();
        for child in &self.children {
            child.reports.tell_draining();
        }
        self.wait_until(shared, deadline);
        let cut = self.children.len();
        if cut > 0 {
            for child in &self.children {
                log::warn!(
                    "{}: child {} still busy at the drain deadline; SIGTERM",
                    child.peer,
                    child.pid
                );
                let _ = kill(child.pid, Signal::SIGTERM);
            }
            self.wait_until(shared, Instant::now() + TERM_GRACE);
            self.kill_all(shared);
        }
        DrainReport {
            drained: at_start - cut,
            cut,
        }
    }

    fn wait_until(&mut self, shared: &Shared, deadline: Instant) {
        while !self.children.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            let fds: Vec<BorrowedFd<'_>> = self.watched().collect();
            let _ = crate::waker::poll_any(&fds, Some(deadline - now));
            self.collect(shared);
        }
    }

    /// Kills and reaps every child, at once (dropping the server).
    pub(crate) fn kill_all(&mut self, shared: &Shared) {
        for child in &self.children {
            log::warn!("{}: killing child {}", child.peer, child.pid);
            let _ = kill(child.pid, Signal::SIGKILL);
        }
        for child in std::mem::take(&mut self.children) {
            if let Some(key) = child.key {
                shared.release_peer(key);
            }
            if let Ok(status) = waitpid(child.pid, None) {
                log_exit(&child, status, shared);
            }
        }
        shared.stats.set_active(0);
    }
}

/// In a forked child: a thread that waits for the parent's word that the
/// server drains (a byte on the report pair, or the pair's end: the parent
/// is gone), then begins the drain for the child's connection, as the
/// registry does for a thread's. The child is a fresh process whose one
/// other thread runs the conversation, so starting a thread here is safe;
/// it ends with the process. It holds the connection weakly: the socket
/// still closes when the conversation ends.
fn watch_for_drain(reporter: &Reporter, conn: &Arc<Connection>) {
    let signal = match reporter.drain_signal() {
        Ok(signal) => signal,
        Err(e) => {
            log::warn!(
                "{}: cannot watch for the drain: {}",
                conn.peer,
                crate::describe(&e)
            );
            return;
        }
    };
    let conn = Arc::downgrade(conn);
    let watcher = std::thread::Builder::new()
        .name("drain watcher".into())
        .stack_size(DRAIN_WATCHER_STACK)
        .spawn(move || {
            let mut byte = [0u8; 1];
            while let Err(e) = (&signal).read(&mut byte) {
                if e.kind() != io::ErrorKind::Interrupted {
                    break;
                }
            }
            if let Some(conn) = conn.upgrade() {
                conn.begin_drain();
            }
        });
    if let Err(e) = watcher {
        log::warn!(
            "cannot start a thread to watch for the drain: {}",
            crate::describe(&e)
        );
    }
}

fn log_exit(child: &Child, status: WaitStatus, shared: &Shared) {
    let lost = !child.reported;
    match status {
        WaitStatus::Exited(_, 0) if !lost => return,
        WaitStatus::Exited(_, code) => {
            log::error!(
                "{}: child {} exited with status {code}",
                child.peer,
                child.pid
            )
        }
        WaitStatus::Signaled(_, signal, core) => log::error!(
            "{}: child {} killed by {signal}{}",
            child.peer,
            child.pid,
            if core { " (core dumped)" } else { "" }
        ),
        other => log::error!("{}: child {} ended: {other:?}", child.peer, child.pid),
    }
    if lost {
        shared.stats.ended(Outcome::Failed, 0, 0);
    }
}
