//! `Model::Threading`: a thread per connection, Python's `ThreadingMixIn`.

use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::service::{self, Job, Service};
use crate::shared::Shared;

/// Finished threads are joined once this many handles have piled up, so the
/// list stays short however long the server runs (CPython bpo-37193).
const PRUNE_AT: usize = 64;

#[derive(Default)]
pub(crate) struct Threading {
    threads: Vec<JoinHandle<()>>,
}

impl Threading {
    pub(crate) fn dispatch(&mut self, shared: &Arc<Shared>, service: &Arc<dyn Service>, job: Job) {
        if self.threads.len() >= PRUNE_AT {
            self.prune();
        }
        let shared_for_thread = Arc::clone(shared);
        let service = Arc::clone(service);
        let id = job.id;
        let peer = job.work.peer().clone();
        let spawned = thread::Builder::new()
            .name(format!("conn {peer}"))
            .spawn(move || {
                service::serve(&shared_for_thread, service.as_ref(), job);
            });
        match spawned {
            Ok(handle) => self.threads.push(handle),
            Err(e) => {
                // The closure, and with it the connection, is dropped.
                log::error!("{peer}: cannot start a thread for the connection: {e}");
                shared.abandon(id);
            }
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

    pub(crate) fn join(&mut self, grace: Duration) -> usize {
        super::join_within(&mut self.threads, grace)
    }
}
