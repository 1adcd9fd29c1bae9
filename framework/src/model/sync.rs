//! `Model::Sync`: one request at a time, in the loop's own thread,
//! Python's `TCPServer`.

use crate::accept_loop::{Dispatch, Gate, Incoming};
use crate::conversation::Runner;

pub(crate) struct Serial {
    runner: Runner,
}

impl Serial {
    pub(crate) fn new(runner: Runner) -> Serial {
        Serial { runner }
    }
}

impl Dispatch for Serial {
    fn process(&mut self, gate: &mut Gate<'_>, incoming: Incoming) {
        if let Some(admitted) = gate.admit(incoming) {
            self.runner.run(admitted);
        }
    }

    fn runs_in_loop(&self) -> bool {
        true
    }
}
