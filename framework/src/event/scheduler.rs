//! [`Scheduler`]: one event loop. It owns a `mio::Poll` (epoll), the
//! coroutines of the conversations it runs, their deadlines and a pool of
//! stacks, and does one thing in a turn: wait in the poller, then resume
//! each coroutine that has an event or whose deadline has passed, each
//! until it parks again or ends.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult};
use mio::{Events, Poll, Token};

use super::inbox::{Inbox, Mail, Order, WAKER};
use super::park::{self, LoopContext, Park, Wake};
use super::stacks::StackPool;
use crate::conversation::{Admitted, Runner};
use crate::failure::panic_message;
use crate::Address;

/// A coroutine that holds its loop this long without parking is named in
/// the log: it blocked every other conversation of the loop meanwhile.
const HELD_TOO_LONG: Duration = Duration::from_secs(1);

type Conversation = Coroutine<Wake, Park, (), DefaultStack>;

struct Task {
    coroutine: Conversation,
    /// Counts the task's waits, so that the deadline of a wait that has
    /// ended (by an event) is known for stale when it comes.
    wait: u64,
    /// The registry slot, freed here if the coroutine dies unexpectedly.
    slot: u64,
    peer: Address,
}

pub(crate) struct Scheduler {
    poll: Poll,
    events: Events,
    context: Arc<LoopContext>,
    tasks: Vec<Option<Task>>,
    free: Vec<usize>,
    /// Deadlines of parked tasks, nearest first: (when, task, wait).
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    stacks: StackPool,
    runner: Runner,
    /// Reused between turns, so a turn allocates nothing.
    ready: Vec<usize>,
    mail: Mail,
    order: Order,
    /// The thread that runs the live tasks.
    owner: Option<ThreadId>,
}

// SAFETY: a `Coroutine` is not `Send` because its stack may hold values
// that must not change threads (thread-local borrows, `!Send` types). A
// scheduler's coroutines never run, and are never dropped, on another
// thread than the one they started on: a remote loop's scheduler is moved
// into its thread before it runs any; the accept loop's own (loop 0) is
// driven only inside the server's methods, each of which runs its
// coroutines to their end (or drops them) before it returns; and should
// one return early (an error) and the server move, `adopt` and `Drop`
// see that the thread changed and leak the coroutines left, never
// resuming or unwinding them elsewhere.
unsafe impl Send for Scheduler {}

impl Scheduler {
    pub(crate) fn new(runner: Runner, stack_size: usize) -> io::Result<Scheduler> {
        let poll = Poll::new()?;
        let inbox = Arc::new(Inbox::new(poll.registry())?);
        let context = Arc::new(LoopContext {
            registry: poll.registry().try_clone()?,
            inbox,
        });
        Ok(Scheduler {
            poll,
            events: Events::with_capacity(1024),
            context,
            tasks: Vec::new(),
            free: Vec::new(),
            timers: BinaryHeap::new(),
            stacks: StackPool::new(stack_size),
            runner,
            ready: Vec::new(),
            mail: Mail::default(),
            order: Order::Run,
            owner: None,
        })
    }

    /// Makes this thread the one that runs the tasks. Tasks started on
    /// another thread (left by a server method that failed, the server
    /// moved since) are leaked: resuming or unwinding them here could
    /// break what their stacks hold of their thread.
    fn adopt(&mut self) {
        let here = thread::current().id();
        if self.owner == Some(here) {
            return;
        }
        if self.live() > 0 {
            log::error!(
                "{} conversations were left on another thread by a failed server call; \
                 leaking them",
                self.live()
            );
            for task in self.tasks.iter_mut().filter_map(Option::take) {
                std::mem::forget(task);
            }
            self.free = (0..self.tasks.len()).collect();
            self.timers.clear();
        }
        self.owner = Some(here);
    }

    pub(crate) fn inbox(&self) -> Arc<Inbox> {
        Arc::clone(&self.context.inbox)
    }

    /// The poller's descriptor: readable when a turn has work.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.poll.registry().as_fd()
    }

    /// Conversations alive on this loop.
    pub(crate) fn live(&self) -> usize {
        self.tasks.len() - self.free.len()
    }

    /// What the loop was last told by other threads.
    pub(crate) fn order(&self) -> Order {
        self.order
    }

    /// The nearest deadline of a parked task.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Starts a conversation: a coroutine that runs the request, resumed
    /// at once until it first waits.
    pub(crate) fn spawn(&mut self, admitted: Admitted) {
        self.adopt();
        let stack = match self.stacks.take() {
            Ok(stack) => stack,
            Err(e) => {
                log::error!(
                    "{}: no stack for the conversation: {e}",
                    admitted.request.peer()
                );
                self.runner.shared.abandon(admitted.slot);
                return;
            }
        };
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.tasks.push(None);
                self.tasks.len() - 1
            }
        };
        let slot = admitted.slot;
        let peer = admitted.request.peer().clone();
        let runner = self.runner.clone();
        let context = Arc::clone(&self.context);
        let coroutine = Conversation::with_stack(stack, move |yielder, _first: Wake| {
            park::enter(yielder, Token(index), &context);
            runner.run(admitted);
            park::leave();
        });
        self.tasks[index] = Some(Task {
            coroutine,
            wait: 0,
            slot,
            peer,
        });
        self.resume(index, Wake::Event);
    }

    /// One turn: waits for events up to `timeout` (and the nearest
    /// deadline), then resumes every task that has one.
    pub(crate) fn turn(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.adopt();
        let timeout = match self.next_deadline() {
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                Some(timeout.map_or(left, |t| t.min(left)))
            }
            None => timeout,
        };
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        ready.extend(self.events.iter().map(|event| event.token().0));
        for &token in &ready {
            if Token(token) == WAKER {
                self.read_mail();
            } else {
                self.resume(token, Wake::Event);
            }
        }
        self.ready = ready;
        self.expire();
        Ok(())
    }

    /// Takes what other threads sent: new conversations, wake-ups, orders.
    fn read_mail(&mut self) {
        let mut mail = std::mem::take(&mut self.mail);
        self.order = self.context.inbox.take(&mut mail);
        for admitted in mail.arrived.drain(..) {
            self.spawn(admitted);
        }
        for token in mail.woken.drain(..) {
            self.resume(token.0, Wake::Event);
        }
        self.mail = mail;
    }

    /// Resumes the tasks whose deadline has passed.
    fn expire(&mut self) {
        if self.timers.is_empty() {
            return;
        }
        let now = Instant::now();
        while let Some(&Reverse((at, index, wait))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let current = self.tasks.get(index).and_then(Option::as_ref);
            if current.is_some_and(|task| task.wait == wait) {
                self.resume(index, Wake::TimedOut);
            }
        }
        // Each wait that ended by an event left its deadline behind: drop
        // them when they outnumber the live ones, so the heap stays the
        // size of the loop's conversations however busy they are.
        if self.timers.len() > 2 * self.live() + 64 {
            let tasks = &self.tasks;
            self.timers.retain(|Reverse((_, index, wait))| {
                tasks[*index]
                    .as_ref()
                    .is_some_and(|task| task.wait == *wait)
            });
        }
    }

    /// Runs a task until it parks or ends.
    fn resume(&mut self, index: usize, wake: Wake) {
        let Some(task) = self.tasks.get_mut(index).and_then(Option::as_mut) else {
            // An event for a task that has ended (its socket was shared).
            return;
        };
        let started = Instant::now();
        let result = panic::catch_unwind(AssertUnwindSafe(|| task.coroutine.resume(wake)));
        // A panic may leave the record of the running coroutine behind.
        park::leave();
        let held = started.elapsed();
        if held >= HELD_TOO_LONG {
            log::warn!(
                "{}: held its event loop for {:.1} s without waiting on it (a blocking call \
                 outside socketserver::event::blocking?): the loop's other conversations \
                 waited as long",
                task.peer,
                held.as_secs_f64()
            );
        }
        match result {
            Ok(CoroutineResult::Yield(deadline)) => {
                task.wait += 1;
                if let Some(at) = deadline {
                    self.timers.push(Reverse((at, index, task.wait)));
                }
            }
            Ok(CoroutineResult::Return(())) => self.end(index),
            Err(payload) => {
                log::error!(
                    "{}: the conversation's coroutine panicked: {}",
                    task.peer,
                    panic_message(payload.as_ref())
                );
                let slot = task.slot;
                self.runner.shared.abandon(slot);
                self.end(index);
            }
        }
    }

    fn end(&mut self, index: usize) {
        if let Some(task) = self.tasks[index].take() {
            if task.coroutine.done() {
                self.stacks.give(task.coroutine.into_stack());
            }
            self.free.push(index);
        }
    }

    /// Drops every task left, unwinding their stacks (the server was
    /// dropped, or they outlived the drain and its grace).
    pub(crate) fn drop_all(&mut self) {
        self.adopt();
        for index in 0..self.tasks.len() {
            if let Some(task) = self.tasks[index].take() {
                log::warn!("{}: conversation abandoned", task.peer);
                drop(task);
                self.free.push(index);
            }
        }
        self.timers.clear();
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.drop_all();
    }
}
