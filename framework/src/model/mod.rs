//! Concurrency models: where a request runs once the accept loop has it.
//!
//! Each model is one file and owns its dispatch: `Sync` runs the request
//! in the loop's own thread (`sync.rs`), `Threading` in a new thread
//! (`threading.rs`), `Pool` in one of a fixed set of threads (`pool.rs`),
//! `Forking` in a child process (`forking.rs`). `Prefork` owns its
//! accepts: the parent supervises worker processes, each running an accept
//! loop of its own on the shared listener (`prefork.rs`). The process
//! models share [`Children`](children::Children). `Event` runs each
//! request on a coroutine of an event loop (`event.rs`, with the machinery
//! in [`crate::event`]).

mod children;
mod event;
mod forking;
mod pool;
mod prefork;
mod sync;
mod threading;

use std::fmt;
use std::time::Duration;

use crate::accept_loop::{AcceptLoop, Dispatch};
use crate::conversation::Runner;
use crate::listener::Listener;
use crate::model_loop::ModelLoop;
use crate::settings::{LoopHooks, LoopSettings};

use prefork::{PreforkSettings, Supervisor};

/// How a server runs its handlers: the axis Python varies with mix-ins.
///
/// | model | Python | a connection runs | good for |
/// |---|---|---|---|
/// | [`Sync`](Model::Sync) | `TCPServer` | in the serving thread, one at a time | short requests, teaching, tests |
/// | [`Threading`](Model::Threading) | `ThreadingMixIn` | in a thread of its own | conversations that wait on clients (chat, shells, FTP) |
/// | [`Pool`](Model::Pool) | (none) | in one of `workers` threads | bounded resources under load |
/// | [`Forking`](Model::Forking) | `ForkingMixIn` | in a child process | handlers that must not share memory, or may crash |
/// | [`Prefork`](Model::Prefork) | (none; Perl's PreFork) | in one of `workers` processes | process isolation at thread-pool cost |
/// | [`Event`](Model::Event) | (none; what tokio does, for blocking-style handlers) | on a coroutine of one of `threads` event loops | many connections, little memory, the fastest |
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
    /// `threads` event loops, each running thousands of conversations on
    /// stackful coroutines: a handler's blocking-style reads and writes
    /// park its coroutine instead of a thread (see [`crate::event`] for
    /// what a handler may and may not block on). Stream servers only.
    Event {
        /// Event-loop threads, at least 1 ([`Model::event`]: one per CPU).
        threads: usize,
        /// The virtual size of each conversation's stack; only the pages
        /// it touches cost memory
        /// ([`event::DEFAULT_STACK_SIZE`](crate::event::DEFAULT_STACK_SIZE)).
        stack_size: usize,
    },
}

impl Model {
    /// The event model with one loop per CPU this process may run on, and
    /// the default stack size.
    pub fn event() -> Model {
        Model::Event {
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            stack_size: crate::event::DEFAULT_STACK_SIZE,
        }
    }

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
            Model::Event { .. } => "event",
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
            Model::Event { .. } => usize::MAX,
        }
    }
}

/// The model's name, lowercase: `sync`, `threading`, `pool`, `forking`,
/// `prefork`, `event` (as in "the forking model"), without its parameters.
impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Starts `model` on `listener`: an accept loop handing requests to the
/// model, or prefork's supervisor. `limit` is the connection limit;
/// `fork_with_threads` says that the caller vouched for its threads.
pub(crate) fn start(
    model: Model,
    limit: usize,
    fork_with_threads: bool,
    listener: Listener,
    runner: Runner,
    settings: LoopSettings,
    hooks: LoopHooks,
) -> std::io::Result<Box<dyn ModelLoop>> {
    let dispatch: Box<dyn Dispatch> = match model {
        Model::Sync => Box::new(sync::Serial::new(runner.clone())),
        Model::Threading => Box::new(threading::Threading::new(runner.clone())),
        Model::Pool { workers, queue } => Box::new(pool::Pool::start(workers, queue, &runner)?),
        Model::Event {
            threads,
            stack_size,
        } => Box::new(event::Event::start(threads, stack_size, &runner)?),
        Model::Forking { .. } => Box::new(forking::Forking::new(
            runner.clone(),
            limit,
            fork_with_threads,
        )),
        Model::Prefork {
            workers,
            max_requests,
        } => {
            let prefork = PreforkSettings {
                workers,
                max_requests,
                fork_with_threads,
            };
            let supervisor = Supervisor::new(listener, runner, settings, hooks, prefork);
            return Ok(Box::new(supervisor));
        }
    };
    Ok(Box::new(AcceptLoop::new(
        listener, runner, dispatch, settings, hooks,
    )))
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
