//! `Model::Pool`: a fixed set of worker threads fed by a bounded queue.

use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use crate::accept_loop::{Dispatch, Gate, Incoming};
use crate::conversation::{Admitted, Runner};
use crate::shared::Shared;

pub(crate) struct Pool {
    queue: Option<Sender<Admitted>>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    pub(crate) fn start(workers: usize, queue: usize, runner: &Runner) -> std::io::Result<Pool> {
        // Room for every connection the limit lets in, so that handing one
        // over never blocks the accept loop: the limit, taken before
        // accept, is what keeps the queue bounded.
        let (sender, receiver) = crossbeam_channel::bounded(workers + queue);
        let mut pool = Pool {
            queue: Some(sender),
            workers: Vec::with_capacity(workers),
        };
        for n in 0..workers {
            let receiver: Receiver<Admitted> = receiver.clone();
            let runner = runner.clone();
            let worker = thread::Builder::new()
                .name(format!("pool worker {n}"))
                .spawn(move || {
                    for admitted in receiver {
                        runner.run(admitted);
                    }
                });
            match worker {
                Ok(worker) => pool.workers.push(worker),
                Err(e) => {
                    pool.close_queue();
                    return Err(e);
                }
            }
        }
        Ok(pool)
    }

    /// Lets the workers end once the queue is empty.
    fn close_queue(&mut self) {
        self.queue = None;
    }
}

impl Dispatch for Pool {
    fn process(&mut self, gate: &mut Gate<'_>, incoming: Incoming) {
        let Some(admitted) = gate.admit(incoming) else {
            return;
        };
        let slot = admitted.slot;
        let sent = match &self.queue {
            Some(queue) => queue.send(admitted).is_ok(),
            None => false,
        };
        if !sent {
            log::error!("the worker pool is closed; connection dropped");
            gate.shared().abandon(slot);
        }
    }

    fn join(&mut self, grace: Duration) -> usize {
        self.close_queue();
        super::join_within(&mut self.workers, grace)
    }

    fn abandon(&mut self, _shared: &Arc<Shared>) {
        self.close_queue();
    }
}
