//! [`blocking`]: work that may block on something other than a socket
//! (a slow disk, `waitpid`, DNS, a library's own blocking call), run on a
//! small pool of threads while the conversation's coroutine parks, so its
//! loop goes on serving the others.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::park;

/// Most threads the pool runs at once; more work waits in its queue.
const MAX_THREADS: usize = 16;
/// A thread with no work for this long ends.
const IDLE_END: Duration = Duration::from_secs(30);

type Job = Box<dyn FnOnce() + Send>;

/// Runs `work` so that it blocks no event loop, and returns its result.
///
/// In a conversation of the event model ([`Model::Event`]), the work runs
/// on a small shared pool of threads (at most 16) while the conversation
/// waits, parked, and its loop serves the others; a panic in the work is
/// resumed in the conversation, as if the work had run there. Anywhere
/// else (the other models, a client) it simply runs `work` here.
///
/// A handler of the event model calls through it whatever may wait on
/// something other than its [`Stream`](crate::Stream)s and
/// [`wait`](super::wait): file I/O on a slow disk, `waitpid`, a DNS lookup,
/// a database driver's blocking call. Such a call made directly holds the
/// loop, and every conversation on it, until it returns (the log names
/// the connection that held its loop for more than a second).
///
/// [`Model::Event`]: crate::Model::Event
///
/// # Examples
/// ```
/// let size = socketserver::event::blocking(|| {
///     std::fs::metadata("Cargo.toml").map(|m| m.len())
/// });
/// assert!(size.is_ok());
/// ```
pub fn blocking<R, F>(work: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let Some((inbox, token)) = park::waker() else {
        return work();
    };
    let done: Arc<Mutex<Option<thread::Result<R>>>> = Arc::new(Mutex::new(None));
    let result = Arc::clone(&done);
    pool().submit(Box::new(move || {
        let outcome = panic::catch_unwind(AssertUnwindSafe(work));
        *result.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
        inbox.wake_task(token);
    }));
    loop {
        if let Some(outcome) = done.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return match outcome {
                Ok(value) => value,
                Err(payload) => panic::resume_unwind(payload),
            };
        }
        park::park(None);
    }
}

struct Pool {
    jobs: Sender<Job>,
    queue: Receiver<Job>,
    threads: AtomicUsize,
    idle: AtomicUsize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let (jobs, queue) = crossbeam_channel::unbounded();
        Pool {
            jobs,
            queue,
            threads: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
        }
    })
}

impl Pool {
    fn submit(&'static self, job: Job) {
        if self.jobs.send(job).is_err() {
            return;
        }
        if self.idle.load(Ordering::SeqCst) > 0 {
            return;
        }
        let started = self
            .threads
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < MAX_THREADS).then_some(n + 1)
            });
        if started.is_ok() {
            let spawned = thread::Builder::new()
                .name("blocking".into())
                .spawn(move || self.work());
            if let Err(e) = spawned {
                self.threads.fetch_sub(1, Ordering::SeqCst);
                log::error!("cannot start a thread for blocking work: {e}");
            }
        }
    }

    fn work(&self) {
        loop {
            self.idle.fetch_add(1, Ordering::SeqCst);
            let job = self.queue.recv_timeout(IDLE_END);
            self.idle.fetch_sub(1, Ordering::SeqCst);
            match job {
                Ok(job) => job(),
                Err(_) => break,
            }
        }
        self.threads.fetch_sub(1, Ordering::SeqCst);
        // A job may have arrived as this thread decided to end.
        if !self.queue.is_empty() && self.idle.load(Ordering::SeqCst) == 0 {
            if let Ok(job) = self.queue.try_recv() {
                job();
            }
        }
    }
}
