//! `Model::Pool`: a fixed set of worker threads fed by a bounded queue.

use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use crate::service::{self, Job, Service};
use crate::shared::Shared;

pub(crate) struct Pool {
    queue: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    pub(crate) fn start(
        workers: usize,
        queue: usize,
        shared: &Arc<Shared>,
        service: &Arc<dyn Service>,
    ) -> std::io::Result<Pool> {
        // Room for every connection the limit lets in, so that handing one
        // over never blocks the accept loop: the limit, taken before
        // accept, is what keeps the queue bounded.
        let (sender, receiver) = crossbeam_channel::bounded(workers + queue);
        let mut pool = Pool {
            queue: Some(sender),
            workers: Vec::with_capacity(workers),
        };
        for n in 0..workers {
            let receiver: Receiver<Job> = receiver.clone();
            let shared = Arc::clone(shared);
            let service = Arc::clone(service);
            let worker = thread::Builder::new()
                .name(format!("pool worker {n}"))
                .spawn(move || {
                    for job in receiver {
                        service::serve(&shared, service.as_ref(), job);
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

    pub(crate) fn dispatch(&mut self, shared: &Arc<Shared>, job: Job) {
        let id = job.id;
        let sent = match &self.queue {
            Some(queue) => queue.send(job).is_ok(),
            None => false,
        };
        if !sent {
            log::error!("the worker pool is closed; connection dropped");
            shared.abandon(id);
        }
    }

    /// Lets the workers end once the queue is empty.
    pub(crate) fn close_queue(&mut self) {
        self.queue = None;
    }

    pub(crate) fn stop(&mut self, grace: Duration) -> usize {
        self.close_queue();
        super::join_within(&mut self.workers, grace)
    }
}
