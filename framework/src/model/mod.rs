//! Concurrency models: how the accept loop hands a connection to its
//! handler.
//!
//! The accept loop is the same for every model; a model only decides where
//! [`lifecycle::serve`](crate::lifecycle::serve) runs. `Sync` runs it in the
//! loop's own thread, `Threading` in a new thread, `Pool` in one of a fixed
//! set of workers. Forking and prefork models join here, behind the same
//! [`Dispatcher`].

mod pool;
mod threading;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::lifecycle::{self, Job};
use crate::shared::Shared;
use crate::RequestHandler;

pub(crate) use pool::Pool;
pub(crate) use threading::Threading;

/// How a server runs its handlers: the axis Python varies with mix-ins.
///
/// | model | Python | a connection runs | good for |
/// |---|---|---|---|
/// | [`Sync`](Model::Sync) | `TCPServer` | in the serving thread, one at a time | short requests, teaching, tests |
/// | [`Threading`](Model::Threading) | `ThreadingMixIn` | in a thread of its own | conversations that wait on clients (chat, shells, FTP) |
/// | [`Pool`](Model::Pool) | (none) | in one of `workers` threads | bounded resources under load |
///
/// Every model keeps the connection limit, drains on shutdown and isolates
/// panics the same way.
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
}

impl Model {
    /// The model's name as the `serve` binary spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Model::Sync => "sync",
            Model::Threading => "threading",
            Model::Pool { .. } => "pool",
        }
    }

    /// The most connections the model itself can hold at once.
    pub(crate) fn capacity(&self) -> usize {
        match self {
            Model::Sync => 1,
            Model::Threading => usize::MAX,
            Model::Pool { workers, queue } => workers.saturating_add(*queue),
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A model at work: owns what the model needs (threads, queues).
pub(crate) enum Dispatcher {
    Sync,
    Threading(Threading),
    Pool(Pool),
}

impl Dispatcher {
    pub(crate) fn start<H: RequestHandler>(
        model: Model,
        shared: &Arc<Shared>,
        handler: &H,
    ) -> std::io::Result<Self> {
        Ok(match model {
            Model::Sync => Dispatcher::Sync,
            Model::Threading => Dispatcher::Threading(Threading::default()),
            Model::Pool { workers, queue } => {
                Dispatcher::Pool(Pool::start(workers, queue, shared, handler)?)
            }
        })
    }

    /// Runs or hands off one registered connection.
    pub(crate) fn dispatch<H: RequestHandler>(
        &mut self,
        shared: &Arc<Shared>,
        handler: &H,
        job: Job,
    ) {
        match self {
            Dispatcher::Sync => lifecycle::serve(shared, handler.clone(), job),
            Dispatcher::Threading(t) => t.dispatch(shared, handler, job),
            Dispatcher::Pool(p) => p.dispatch(shared, job),
        }
    }

    /// Stops taking work and waits up to `grace` for the model's threads
    /// to end; returns how many were still running and were left behind.
    pub(crate) fn stop(&mut self, grace: Duration) -> usize {
        match self {
            Dispatcher::Sync => 0,
            Dispatcher::Threading(t) => t.join(grace),
            Dispatcher::Pool(p) => p.stop(grace),
        }
    }

    /// Stops taking work without waiting for anything.
    pub(crate) fn detach(&mut self) {
        if let Dispatcher::Pool(p) = self {
            p.close_queue();
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
