//! `Model::Event`: each conversation on a stackful coroutine of one of a
//! few event loops (the machinery is [`crate::event`]).
//!
//! The accept loop's own thread is loop 0: the model gives the accept
//! loop its poller's descriptor to wait on beside the listener, and runs
//! its coroutines when that descriptor is ready or a deadline comes. So a
//! server with one loop accepts and converses in one thread, with no
//! hand-off at all. With more loops, connections are dealt round-robin;
//! a loop other than 0 is a thread of its own, reached through its
//! [`Inbox`]. A conversation stays on its loop for its whole life.
//!
//! `handle_request` returns once the request is handed on, and loop 0
//! runs only while the server's methods do: so what it accepts goes to a
//! loop thread (one is started for it if the server has none), as the
//! threading model's would go to a thread.

use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::accept_loop::{Dispatch, Gate, Incoming, CUT_GRACE};
use crate::conversation::{Request, Runner};
use crate::event::inbox::{Inbox, Order};
use crate::event::scheduler::Scheduler;
use crate::shared::Shared;
use crate::{DrainReport, Error};

/// While loop 0 drains and other loops hold conversations too, it looks
/// at the registry at least this often (the others' ends do not wake it).
const DRAIN_LOOK: Duration = Duration::from_millis(5);

pub(crate) struct Event {
    local: Scheduler,
    remotes: Vec<Remote>,
    /// The loop the next connection goes to (0: the local one).
    next: usize,
    /// The next connection goes to a loop thread (`handle_request`).
    apart: bool,
    runner: Runner,
    stack_size: usize,
}

/// A loop in a thread of its own.
struct Remote {
    inbox: Arc<Inbox>,
    thread: JoinHandle<()>,
}

impl Event {
    pub(crate) fn start(
        threads: usize,
        stack_size: usize,
        runner: &Runner,
    ) -> std::io::Result<Event> {
        let mut event = Event {
            local: Scheduler::new(runner.clone(), stack_size)?,
            remotes: Vec::new(),
            next: 0,
            apart: false,
            runner: runner.clone(),
            stack_size,
        };
        for _ in 1..threads.max(1) {
            event.start_remote()?;
        }
        Ok(event)
    }

    /// Starts a loop in a thread of its own.
    fn start_remote(&mut self) -> std::io::Result<()> {
        let mut scheduler = Scheduler::new(self.runner.clone(), self.stack_size)?;
        let inbox = scheduler.inbox();
        let thread = thread::Builder::new()
            .name(format!("event loop {}", self.remotes.len() + 1))
            .spawn(move || run_remote(&mut scheduler))?;
        self.remotes.push(Remote { inbox, thread });
        Ok(())
    }

    /// Runs loop 0 for one turn of at most `timeout`.
    fn turn(&mut self, timeout: Option<Duration>) {
        if let Err(e) = self.local.turn(timeout) {
            log::error!("event loop: {e}");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Dispatch for Event {
    fn process(&mut self, gate: &mut Gate<'_>, incoming: Incoming) {
        let Some(admitted) = gate.admit(incoming) else {
            return;
        };
        let Request::Conversation(conn) = &admitted.request else {
            log::error!(
                "{}: the event model serves stream sockets only",
                admitted.request.peer()
            );
            gate.shared().abandon(admitted.slot);
            return;
        };
        // The accept loop made the socket non-blocking (`nonblocking`).
        let idle = gate.shared().limits().idle_timeout;
        conn.waits_here(idle, idle);
        if std::mem::take(&mut self.apart) {
            if self.remotes.is_empty() {
                if let Err(e) = self.start_remote() {
                    log::error!("cannot start an event loop thread: {e}");
                    gate.shared().abandon(admitted.slot);
                    return;
                }
            }
            self.remotes[0].inbox.deliver(admitted);
            return;
        }
        let target = self.next;
        self.next = (self.next + 1) % (self.remotes.len() + 1);
        match target {
            0 => self.local.spawn(admitted),
            n => self.remotes[n - 1].inbox.deliver(admitted),
        }
    }

    fn ready(&self) -> Result<(), Error> {
        Ok(())
    }

    fn nonblocking(&self) -> bool {
        true
    }

    fn watched(&self) -> Vec<BorrowedFd<'_>> {
        vec![self.local.fd()]
    }

    fn collect(&mut self, _shared: &Arc<Shared>) {
        self.turn(Some(Duration::ZERO));
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.local.next_deadline()
    }

    fn serve_next_apart(&mut self) {
        self.apart = true;
    }

    fn drain(&mut self, shared: &Arc<Shared>, deadline: Instant) -> DrainReport {
        let look = (!self.remotes.is_empty()).then_some(DRAIN_LOOK);
        self.run_while_live(shared, deadline, look);
        // Cut what is left, then let the cut conversations see it.
        shared.drain_until(Instant::now());
        self.run_while_live(shared, Instant::now() + CUT_GRACE, look);
        shared.drain_report()
    }

    fn join(&mut self, grace: Duration) -> usize {
        let mut threads = Vec::new();
        for remote in self.remotes.drain(..) {
            remote.inbox.order(Order::Stop);
            threads.push(remote.thread);
        }
        let left = super::join_within(&mut threads, grace) + self.local.live();
        self.local.drop_all();
        left
    }

    fn abandon(&mut self, _shared: &Arc<Shared>) {
        for remote in self.remotes.drain(..) {
            remote.inbox.order(Order::Abandon);
        }
        // The connections were cut: most conversations end at their next
        // step; give them a moment, then drop what is left.
        let until = Instant::now() + Duration::from_millis(100);
        while self.local.live() > 0 && Instant::now() < until {
            self.turn(Some(Duration::from_millis(10)));
        }
        self.local.drop_all();
    }
}

impl Event {
    /// Drives loop 0 while the server has live conversations, until
    /// `until`; `look` bounds each wait when other loops hold some.
    fn run_while_live(&mut self, shared: &Arc<Shared>, until: Instant, look: Option<Duration>) {
        loop {
            let live = shared.stats.snapshot().active;
            let now = Instant::now();
            if live == 0 || now >= until {
                return;
            }
            let left = until - now;
            self.turn(Some(look.map_or(left, |l| l.min(left))));
        }
    }
}

/// A loop other than 0, in its own thread: turns until told to stop and
/// empty, or to abandon.
fn run_remote(scheduler: &mut Scheduler) {
    loop {
        if let Err(e) = scheduler.turn(None) {
            log::error!("event loop: {e}");
            thread::sleep(Duration::from_millis(10));
        }
        match scheduler.order() {
            Order::Run => {}
            Order::Stop if scheduler.live() > 0 => {}
            Order::Stop | Order::Abandon => break,
        }
    }
    scheduler.drop_all();
}
