//! `Model::Threading`: a thread per connection, Python's `ThreadingMixIn`.

use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::accept_loop::{Dispatch, Gate, Incoming};
use crate::conversation::Runner;

/// Finished threads are joined once this many handles have piled up, so the
/// list stays short however long the server runs (CPython bpo-37193).
const PRUNE_AT: usize = 64;

pub(crate) struct Threading {
    runner: Runner,
    threads: Vec<JoinHandle<()>>,
}

impl Threading {
    pub(crate) fn new(runner: Runner) -> Threading {
        Threading {
            runner,
            threads: Vec::new(),
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
}

impl Dispatch for Threading {
    fn process(&mut self, gate: &mut Gate<'_>, incoming: Incoming) {
        let Some(admitted) = gate.admit(incoming) else {
            return;
        };
        if self.threads.len() >= PRUNE_AT {
            self.prune();
        }
        let runner = self.runner.clone();
        let slot = admitted.slot;
        let peer = admitted.request.peer().clone();
        let spawned = thread::Builder::new()
            .name(format!("conn {peer}"))
            .spawn(move || {
                runner.run(admitted);
            });
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
        super::join_within(&mut self.threads, grace)
    }
}
