//! `Model::Forking`: a process per request, Python's `ForkingMixIn`.
//!
//! The accept loop hands each request to [`Forking`], which forks a child
//! for it; the child converses, tells the parent how it went on its pipe,
//! and `_exit`s. The parent's end of the pipe wakes the accept loop when
//! the child has something to say or is gone ([`Children`]).

use std::fmt;
use std::io::{self, Read};
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use super::children::{self, Child, Children, Exit};
use crate::accept_loop::{Dispatch, Gate, Incoming};
use crate::child_pipe::{ChildEnd, Notice, ThroughParent};
use crate::conversation::{Request, Runner};
use crate::per_ip::PeerKey;
use crate::shared::Shared;
use crate::socket::Connection;
use crate::stats::Outcome;
use crate::{Address, DrainReport, Error, Refusal};

/// The drain watcher of a forked child reads one byte: a small stack will
/// do (the default is 2 MiB of address space).
const DRAIN_WATCHER_STACK: usize = 64 * 1024;

pub(crate) struct Forking {
    runner: Runner,
    limit: usize,
    /// The caller vouched for its threads (`allow_fork_with_threads`).
    fork_with_threads: bool,
    children: Children<Served>,
}

/// What the parent knows of a child: whom it serves.
struct Served {
    peer: Address,
    /// The client's place in the per-address count, freed when the child
    /// is gone.
    key: Option<PeerKey>,
}

impl fmt::Display for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: child", self.peer)
    }
}

impl Forking {
    pub(crate) fn new(runner: Runner, limit: usize, fork_with_threads: bool) -> Forking {
        Forking {
            runner,
            limit,
            fork_with_threads,
            children: Children::new(),
        }
    }

    /// Forks a child to serve `request`, which holds `key` in the
    /// per-address count. The parent's copy of a connection's socket is
    /// closed before this returns.
    fn fork_for(
        &mut self,
        shared: &Shared,
        request: Request,
        key: Option<PeerKey>,
        draining: Arc<AtomicBool>,
        close_in_child: &[RawFd],
    ) {
        let peer = request.peer().clone();
        let mut close = close_in_child.to_vec();
        close.extend(self.children.raw_fds());
        let runner = &self.runner;
        let spawned = children::spawn(&close, move |to_parent| {
            let to_parent = Arc::new(to_parent);
            if let Request::Conversation(conn) = &request {
                watch_for_drain(&to_parent, conn);
            }
            let stats = runner.shared.stats.clone();
            let server = ThroughParent::handle(Arc::clone(&to_parent), draining, stats);
            let outcome = runner.with_server(server).finish_request(request);
            to_parent.send(Notice::Ended(outcome));
            0
        });
        match spawned {
            Ok((pid, pipe)) => {
                log::debug!("{peer}: served by child {pid}");
                self.children.push(pid, pipe, Served { peer, key });
                shared.stats.set_active(self.children.len());
            }
            Err(e) => {
                log::error!("{peer}: cannot fork: {}", crate::describe(&e));
                shared.stats.count(Outcome::LOST);
                if let Some(key) = key {
                    shared.release_peer(key);
                }
            }
        }
    }
}

impl Dispatch for Forking {
    fn process(&mut self, gate: &mut Gate<'_>, incoming: Incoming) {
        let close = gate.close_in_child(&incoming);
        let shared = Arc::clone(gate.shared());
        // The child's own drain flag, set when the parent tells it.
        let draining = Arc::new(AtomicBool::new(false));
        match incoming {
            Incoming::Connection { socket, peer } => {
                // The per-address count is the parent's, taken before the
                // fork; the connection holds no slot in the registry.
                let key = PeerKey::of(&peer).filter(|_| shared.limits_per_ip());
                if key.is_some_and(|key| !shared.take_peer(key)) {
                    gate.refuse(socket, peer, Refusal::PerIp);
                    return;
                }
                let conn = Connection::new(socket, peer, Some(Arc::clone(&draining)));
                let request = Request::Conversation(Arc::new(conn));
                self.fork_for(&shared, request, key, draining, &close);
            }
            Incoming::Datagram(packet) => {
                let request = Request::Datagram(packet);
                self.fork_for(&shared, request, None, draining, &close);
            }
        }
    }

    fn may_accept(&self) -> bool {
        self.children.len() < self.limit
    }

    fn ready(&self) -> Result<(), Error> {
        crate::fork::ensure_single_threaded("forking", self.fork_with_threads)
    }

    fn watched(&self) -> Vec<BorrowedFd<'_>> {
        self.children.watched().collect()
    }

    fn collect(&mut self, shared: &Arc<Shared>) {
        let mut shutdown = false;
        self.children.collect(
            &mut |child, notice| on_notice(child, notice, shared, &mut shutdown),
            &mut |child, exit| on_exit(child, exit, shared),
        );
        shared.stats.set_active(self.children.len());
        if shutdown {
            shared.request_shutdown();
        }
    }

    /// Tells the children that the server drains (each then ends the
    /// waiting read of a conversation that asked for it), waits for them
    /// until `deadline`, then SIGTERM, then SIGKILL.
    fn drain(&mut self, shared: &Arc<Shared>, deadline: Instant) -> DrainReport {
        let at_start = self.children.len();
        for child in self.children.iter() {
            child.pipe.tell_draining();
        }
        let mut ignored = false;
        let notices =
            &mut |child: &mut Child<Served>, notice| on_notice(child, notice, shared, &mut ignored);
        let exits = &mut |child, exit| on_exit(child, exit, shared);
        self.children.wait_until(deadline, notices, exits);
        let cut = self.children.len();
        self.children.terminate(notices, exits);
        shared.stats.set_active(0);
        DrainReport {
            drained: at_start - cut,
            cut,
        }
    }

    fn abandon(&mut self, shared: &Arc<Shared>) {
        for child in self.children.iter() {
            log::warn!("{child}: killing it");
        }
        self.children
            .kill_all(&mut |child, exit| on_exit(child, exit, shared));
        shared.stats.set_active(0);
    }
}

/// A child's notice: how its request ended, or its handler's wish to shut
/// the server down.
fn on_notice(child: &mut Child<Served>, notice: Notice, shared: &Shared, shutdown: &mut bool) {
    match notice {
        Notice::Ended(outcome) => {
            shared.stats.count(outcome);
            child.done = true;
        }
        Notice::ShutdownAsked => *shutdown = true,
        _ => {}
    }
}

/// A child is gone: its client's place is freed; an exit that is not
/// clean is logged, and a request it never reported is counted as failed.
fn on_exit(child: Child<Served>, exit: Exit, shared: &Shared) {
    if let Some(key) = child.what.key {
        shared.release_peer(key);
    }
    let lost = !child.done;
    if exit.is_clean() && !lost {
        return;
    }
    log::error!("{child} {exit}");
    if lost {
        shared.stats.count(Outcome::LOST);
    }
}

/// In a forked child: a thread that waits for the parent's word that the
/// server drains (a byte on the pipe, or the pipe's end: the parent is
/// gone), then begins the drain for the child's connection, as the
/// registry does for a thread's. The child is a fresh process whose one
/// other thread runs the conversation, so starting a thread here is safe;
/// it ends with the process. It holds the connection weakly: the socket
/// still closes when the conversation ends.
fn watch_for_drain(to_parent: &ChildEnd, conn: &Arc<Connection>) {
    let signal = match to_parent.drain_signal() {
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
