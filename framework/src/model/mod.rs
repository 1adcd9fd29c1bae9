//! Concurrency models: how the accept loop hands a connection to its
//! handler.
//!
//! The accept loop is the same for every model; a model only decides where
//! [`service::serve`](crate::service::serve) runs. `Sync` runs it in the
//! loop's own thread, `Threading` in a new thread, `Pool` in one of a fixed
//! set of workers, `Forking` in a child process. `Prefork` turns the loop
//! inside out: the parent supervises worker processes, each a `Sync`
//! server of its own on the shared listener.

mod forking;
mod pool;
mod prefork;
mod threading;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::service::{self, Job, Service};
use crate::shared::Shared;

pub(crate) use forking::Forking;
pub(crate) use pool::Pool;
pub(crate) use prefork::{Prefork, Worker};
pub(crate) use threading::Threading;

/// How a server runs its handlers: the axis Python varies with mix-ins.
///
/// | model | Python | a connection runs | good for |
/// |---|---|---|---|
/// | [`Sync`](Model::Sync) | `TCPServer` | in the serving thread, one at a time | short requests, teaching, tests |
/// | [`Threading`](Model::Threading) | `ThreadingMixIn` | in a thread of its own | conversations that wait on clients (chat, shells, FTP) |
/// | [`Pool`](Model::Pool) | (none) | in one of `workers` threads | bounded resources under load |
/// | [`Forking`](Model::Forking) | `ForkingMixIn` | in a child process | handlers that must not share memory, or may crash |
/// | [`Prefork`](Model::Prefork) | (none; Perl's PreFork) | in one of `workers` processes | process isolation at thread-pool cost |
///
/// Every model keeps the connection limit, drains on shutdown and isolates
/// panics the same way. The process models exist on Unix only, and fork:
/// build and serve them from a process with no other threads (else
/// [`Error::ForkWithThreads`](crate::Error::ForkWithThreads); see
/// [`Builder::allow_fork_with_threads`](crate::Builder::allow_fork_with_threads)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Model {
    /// One connection at a time, in the thread that called `serve_forever`.
    /// Others wait in the kernel's backlog.
    Sync,
    /// A new thread for each connection, up to the connection limit.
    Threading,
    /// A fixed set of worker threads. Connections beyond the busy workers
    /// wait in a queue of `queue` places, then in the kernel's backlog.
    Pool {
        /// Worker threads, at least 1.
        workers: usize,
        /// Accepted connections that may wait for a free worker.
        queue: usize,
    },
    /// A child process for each connection, at most `max_children` at
    /// once (then new clients wait in the kernel's backlog). A child that
    /// crashes takes only its own connection down.
    Forking {
        /// Most children alive at once (Python's default: 40).
        max_children: usize,
    },
    /// `workers` processes that all accept on the listening socket, each
    /// serving one connection at a time; the parent respawns any that ends.
    Prefork {
        /// Worker processes, at least 1.
        workers: usize,
        /// A worker ends after this many connections and a fresh one takes
        /// its place (recycling, against slow leaks); `None`: never.
        max_requests: Option<u64>,
    },
}

impl Model {
    /// The model's name in the docs' words, for logs and errors; its
    /// parameters are in `Debug`. A program's own spellings (a command
    /// line's `--mode`) are the program's business.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Model::Sync => "sync",
            Model::Threading => "threading",
            Model::Pool { .. } => "pool",
            Model::Forking { .. } => "forking",
            Model::Prefork { .. } => "prefork",
        }
    }

    /// True for the models that fork processes.
    pub(crate) fn forks(&self) -> bool {
        matches!(self, Model::Forking { .. } | Model::Prefork { .. })
    }

    /// The most connections the model itself can hold at once.
    pub(crate) fn capacity(&self) -> usize {
        match self {
            Model::Sync => 1,
            Model::Threading => usize::MAX,
            Model::Pool { workers, queue } => workers.saturating_add(*queue),
            Model::Forking { max_children } => *max_children,
            Model::Prefork { workers, .. } => *workers,
        }
    }
}

/// The model's name, lowercase: `sync`, `threading`, `pool`, `forking`,
/// `prefork` (as in "the forking model"), without its parameters.
impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A model at work: owns what the model needs (threads, queues, child
/// processes).
pub(crate) enum Dispatcher {
    Sync,
    Threading(Threading),
    Pool(Pool),
    Forking(Forking),
    /// The parent of prefork workers.
    Prefork(Prefork),
    /// Inside a prefork worker.
    Worker(Worker),
}

impl Dispatcher {
    pub(crate) fn start(
        model: Model,
        limit: usize,
        shared: &Arc<Shared>,
        service: &Arc<dyn Service>,
    ) -> std::io::Result<Self> {
        Ok(match model {
            Model::Sync => Dispatcher::Sync,
            Model::Threading => Dispatcher::Threading(Threading::default()),
            Model::Pool { workers, queue } => {
                Dispatcher::Pool(Pool::start(workers, queue, shared, service)?)
            }
            Model::Forking { .. } => Dispatcher::Forking(Forking::new(limit)),
            Model::Prefork {
                workers,
                max_requests,
            } => Dispatcher::Prefork(Prefork::new(workers, max_requests)),
        })
    }

    /// Runs or hands off one registered connection or packet.
    pub(crate) fn dispatch(&mut self, shared: &Arc<Shared>, service: &Arc<dyn Service>, job: Job) {
        match self {
            Dispatcher::Sync => {
                service::serve(shared, service.as_ref(), job);
            }
            Dispatcher::Threading(t) => t.dispatch(shared, service, job),
            Dispatcher::Pool(p) => p.dispatch(shared, job),
            Dispatcher::Worker(w) => w.dispatch(shared, service, job),
            // Connections reach these models without being registered.
            Dispatcher::Forking(_) | Dispatcher::Prefork(_) => {
                unreachable!("process models take connections before registration")
            }
        }
    }

    /// False while the model cannot take another connection.
    pub(crate) fn may_accept(&self) -> bool {
        match self {
            Dispatcher::Forking(f) => f.may_accept(),
            Dispatcher::Prefork(_) => false,
            _ => true,
        }
    }

    /// Descriptors the accept loop should wait on for the model.
    pub(crate) fn watched(&self) -> Vec<std::os::fd::BorrowedFd<'_>> {
        match self {
            Dispatcher::Forking(f) => f.watched().collect(),
            Dispatcher::Prefork(p) => p.watched().collect(),
            _ => Vec::new(),
        }
    }

    /// Called when one of the watched descriptors is ready.
    pub(crate) fn collect(&mut self, shared: &Shared) {
        match self {
            Dispatcher::Forking(f) => f.collect(shared),
            Dispatcher::Prefork(p) => p.collect(shared, shared.shutdown_requested()),
            _ => {}
        }
    }

    /// A connection was refused before reaching the model.
    pub(crate) fn refused(&mut self) {
        if let Dispatcher::Worker(w) = self {
            w.refused();
        }
    }

    /// Stops taking work and waits up to `grace` for the model's threads
    /// to end; returns how many were still running and were left behind.
    pub(crate) fn stop(&mut self, grace: Duration) -> usize {
        match self {
            Dispatcher::Threading(t) => t.join(grace),
            Dispatcher::Pool(p) => p.stop(grace),
            _ => 0,
        }
    }

    /// Stops at once, waiting for nothing (dropping the server): queued
    /// work is abandoned, child processes are killed and reaped.
    pub(crate) fn detach(&mut self, shared: &Shared) {
        match self {
            Dispatcher::Pool(p) => p.close_queue(),
            Dispatcher::Forking(f) => f.kill_all(shared),
            Dispatcher::Prefork(p) => {
                p.kill_all(shared);
            }
            _ => {}
        }
    }
}

/// Joins the threads that have ended, waiting up to `grace` in all; the
/// rest are left to end on their own. Returns how many were left.
pub(crate) fn join_within(
    threads: &mut Vec<std::thread::JoinHandle<()>>,
    grace: Duration,
) -> usize {
    let deadline = std::time::Instant::now() + grace;
    loop {
        for thread in std::mem::take(threads) {
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                threads.push(thread);
            }
        }
        if threads.is_empty() || std::time::Instant::now() >= deadline {
            break;
        }
        // The connections have ended by now (the drain saw to that); what
        // is left is thread teardown, a matter of microseconds.
        std::thread::sleep(Duration::from_millis(1));
    }
    let left = threads.len();
    threads.clear();
    left
}
