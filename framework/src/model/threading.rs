//! `Model::Threading`: a thread per connection, Python's `ThreadingMixIn`,
//! with the threads of ended conversations kept a while for the next ones.
//!
//! Starting a thread (`clone`, a fresh stack mapped, its guard page, its
//! teardown) is most of what a short conversation costs. So a thread whose
//! conversation ends waits up to [`KEEP_IDLE`] for another before it ends,
//! and a new connection goes to such a waiting thread when there is one,
//! else to a new thread. At most [`MAX_IDLE`] threads wait at once.
//!
//! The hand-over: a waiting thread counts itself in `idle`, then waits on
//! a channel. The accept loop claims a waiting thread by taking one from
//! the count (never below 0), then sends; any waiting thread may take it.
//! A thread whose wait times out leaves by taking itself from the count;
//! if the count is 0, every waiting thread has been claimed, so a
//! conversation is on its way, and it waits for it instead.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::accept_loop::{Dispatch, Gate, Incoming};
use crate::conversation::{Admitted, Runner};

/// Finished threads are joined once this many handles have piled up, so the
/// list stays short however long the server runs (CPython bpo-37193).
const PRUNE_AT: usize = 64;
/// How long a thread whose conversation ended waits for another.
pub(crate) const KEEP_IDLE: Duration = Duration::from_secs(10);
/// Most threads waiting for a conversation at once.
const MAX_IDLE: usize = 64;

pub(crate) struct Threading {
    runner: Runner,
    threads: Vec<JoinHandle<()>>,
    /// Hands a conversation to a waiting thread; dropped to end them all.
    hand_over: Option<Sender<Admitted>>,
    waiting: Receiver<Admitted>,
    idle: Arc<AtomicUsize>,
}

impl Threading {
    pub(crate) fn new(runner: Runner) -> Threading {
        let (hand_over, waiting) = crossbeam_channel::unbounded();
        Threading {
            runner,
            threads: Vec::new(),
            hand_over: Some(hand_over),
            waiting,
            idle: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn prune(&mut self) {
        for thread in std::mem::take(&mut self.threads) {
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                self.threads.push(thread);
            }
        }
    }

    /// Gives the conversation to a waiting thread; back if none waits.
    fn hand_over(&self, admitted: Admitted) -> Result<(), Admitted> {
        let Some(sender) = &self.hand_over else {
            return Err(admitted);
        };
        let claimed = self
            .idle
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if claimed.is_err() {
            return Err(admitted);
        }
        sender.send(admitted).map_err(|e| e.into_inner())
    }

    /// Ends the waiting threads (the ones in a conversation end after it).
    fn close(&mut self) {
        self.hand_over = None;
    }
}

impl Dispatch for Threading {
    fn process(&mut self, gate: &mut Gate<'_>, incoming: Incoming) {
        let Some(admitted) = gate.admit(incoming) else {
            return;
        };
        let Err(admitted) = self.hand_over(admitted) else {
            return;
        };
        if self.threads.len() >= PRUNE_AT {
            self.prune();
        }
        let runner = self.runner.clone();
        let slot = admitted.slot;
        let peer = admitted.request.peer().clone();
        let waiting = self.waiting.clone();
        let idle = Arc::clone(&self.idle);
        let spawned = thread::Builder::new()
            .name("conversation".into())
            .spawn(move || serve(&runner, admitted, &waiting, &idle));
        match spawned {
            Ok(handle) => self.threads.push(handle),
            Err(e) => {
                // The closure, and with it the connection, is dropped.
                log::error!("{peer}: cannot start a thread for the connection: {e}");
                self.runner.shared.abandon(slot);
            }
        }
    }

    fn join(&mut self, grace: Duration) -> usize {
        self.close();
        super::join_within(&mut self.threads, grace)
    }

    fn abandon(&mut self, _shared: &Arc<crate::shared::Shared>) {
        self.close();
    }
}

/// A thread's life: its first conversation, then each one handed over to
/// it while it waits, until none comes within [`KEEP_IDLE`], enough
/// threads wait already, or the server closes. A conversation's slot is
/// freed once its thread counts as waiting, so whoever sees the slot free
/// (the next connection, a test) finds the thread ready for it.
fn serve(runner: &Runner, first: Admitted, waiting: &Receiver<Admitted>, idle: &AtomicUsize) {
    let mut next = Some(first);
    while let Some(admitted) = next.take() {
        let outcome = runner.finish_request(admitted.request);
        runner.shared.stats.count(outcome);
        let joined = idle.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < MAX_IDLE).then_some(n + 1)
        });
        runner.shared.release(admitted.slot);
        if joined.is_err() {
            return;
        }
        next = match waiting.recv_timeout(KEEP_IDLE) {
            Err(RecvTimeoutError::Timeout) => {
                let left =
                    idle.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
                if left.is_ok() {
                    return;
                }
                // Claimed as the wait ended: the conversation is coming.
                waiting.recv().ok()
            }
            other => other.ok(),
        };
    }
}
