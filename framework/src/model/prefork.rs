//! `Model::Prefork`: a fixed set of worker processes that all accept on the
//! shared listening socket (Perl's Net::Server::PreFork; Python has none).
//!
//! The parent, a [`Supervisor`], forks the workers and supervises them: it
//! never accepts. Each worker runs an accept loop of its own on the
//! inherited listener, serving one connection at a time ([`Worker`]),
//! tells the parent of each connection's start and end on its pipe, and
//! stops when the parent closes its control socket (or dies). The parent
//! respawns a worker that ends (after `max_requests`, or a crash), with a
//! growing delay when workers die young, so that a crashing handler cannot
//! fork-bomb the machine.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::children::{self, Child, Children, Exit};
use crate::accept_loop::{AcceptLoop, Dispatch, Gate, Incoming, CUT_GRACE};
use crate::child_pipe::{ChildEnd, Notice, ThroughParent};
use crate::conversation::Runner;
use crate::listener::Listener;
use crate::model_loop::ModelLoop;
use crate::per_ip::PeerKey;
use crate::settings::{LoopHooks, LoopSettings};
use crate::shared::Shared;
use crate::stats::Outcome;
use crate::{DrainReport, Error, Refusal};

/// A worker that lives at least this long is healthy: respawn it at once.
const HEALTHY_LIFE: Duration = Duration::from_secs(1);
/// The respawn delay after a young death, doubling up to the maximum.
const FIRST_RESPAWN_DELAY: Duration = Duration::from_millis(100);
const MAX_RESPAWN_DELAY: Duration = Duration::from_secs(10);

/// The parent of the workers: its loop keeps `wanted` of them alive,
/// counts what they tell it, and on shutdown stops them and drains.
pub(crate) struct Supervisor {
    listener: Option<Listener>,
    runner: Runner,
    settings: LoopSettings,
    /// The workers' hooks: each worker's accept loop runs them.
    hooks: LoopHooks,
    wanted: usize,
    max_requests: Option<u64>,
    /// The caller vouched for its threads (`allow_fork_with_threads`).
    fork_with_threads: bool,
    workers: Children<WorkerState>,
    respawn_delay: Option<Duration>,
    respawn_at: Option<Instant>,
    /// Connections in progress when the shutdown began.
    busy_at_shutdown: usize,
}

/// What the parent knows of a worker.
struct WorkerState {
    /// Closing it tells the worker to stop.
    control: Option<UnixStream>,
    born: Instant,
    busy: bool,
    /// The place in the per-address count its conversation holds, granted
    /// when it asked; freed when the conversation ends or the worker dies.
    held: Option<PeerKey>,
}

impl fmt::Display for WorkerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("prefork worker")
    }
}

/// The prefork model's settings.
pub(crate) struct PreforkSettings {
    pub(crate) workers: usize,
    pub(crate) max_requests: Option<u64>,
    pub(crate) fork_with_threads: bool,
}

impl Supervisor {
    pub(crate) fn new(
        listener: Listener,
        runner: Runner,
        settings: LoopSettings,
        hooks: LoopHooks,
        prefork: PreforkSettings,
    ) -> Supervisor {
        Supervisor {
            listener: Some(listener),
            runner,
            settings,
            hooks,
            wanted: prefork.workers,
            max_requests: prefork.max_requests,
            fork_with_threads: prefork.fork_with_threads,
            workers: Children::new(),
            respawn_delay: None,
            respawn_at: None,
            busy_at_shutdown: 0,
        }
    }

    /// How many workers are missing and may be spawned now.
    fn due(&mut self) -> usize {
        if self.respawn_at.is_some_and(|at| Instant::now() < at) {
            return 0;
        }
        self.respawn_at = None;
        self.wanted.saturating_sub(self.workers.len())
    }

    /// How long the supervisor may sleep before a respawn is due.
    fn next_wake(&self) -> Option<Duration> {
        if self.workers.len() >= self.wanted {
            return None;
        }
        Some(self.respawn_at.map_or(Duration::ZERO, |at| {
            at.saturating_duration_since(Instant::now())
        }))
    }

    fn delay_respawn(&mut self) {
        let delay = self
            .respawn_delay
            .map_or(FIRST_RESPAWN_DELAY, |d| (d * 2).min(MAX_RESPAWN_DELAY));
        log::warn!(
            "prefork workers are dying young; next respawn in {} ms",
            delay.as_millis()
        );
        self.respawn_delay = Some(delay);
        self.respawn_at = Some(Instant::now() + delay);
    }

    /// Waits for the waker, the stop descriptor or a worker's pipe, or
    /// until `timeout` passes; then takes in what the workers said.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let shared = Arc::clone(&self.runner.shared);
        let mut fds = vec![shared.waker.fd()];
        fds.extend(self.settings.stop_fd.as_ref().map(AsFd::as_fd));
        fds.extend(self.workers.watched());
        let ready = crate::waker::poll_readable(&fds, timeout)?;
        let stop = self.settings.stop_fd.is_some() && ready[1];
        drop(fds);
        if ready[0] {
            shared.waker.reset();
        }
        self.collect();
        if stop && !shared.shutdown_requested() {
            log::info!("stop requested (a signal?); draining");
            shared.request_shutdown();
        }
        Ok(())
    }

    /// Reads the workers' notices into the counters, reaps the workers that
    /// are gone, and decides when to respawn them.
    fn collect(&mut self) {
        let shared = Arc::clone(&self.runner.shared);
        let mut shutdown = false;
        let mut gone = Vec::new();
        self.workers.collect(
            &mut |worker, notice| on_notice(worker, notice, &shared, &mut shutdown),
            &mut |worker, exit| gone.push((worker.what.born, on_exit(worker, exit, &shared))),
        );
        for (born, clean) in gone {
            if shared.shutdown_requested() {
                break;
            }
            if clean || born.elapsed() >= HEALTHY_LIFE {
                self.respawn_delay = None;
            } else {
                self.delay_respawn();
            }
        }
        let busy = self.workers.iter().filter(|w| w.what.busy).count();
        shared.stats.set_active(busy);
        if shutdown {
            shared.request_shutdown();
        }
    }

    fn spawn_worker(&mut self) -> io::Result<()> {
        let (control, worker_control) = UnixStream::pair()?;
        // Closed by number in the worker: their owners live on in frames
        // the worker never returns to, so nothing closes them twice.
        let mut close = self.runner.shared.waker.raw_fds().to_vec();
        close.extend(self.settings.stop_fd.as_ref().map(AsRawFd::as_raw_fd));
        close.push(control.as_raw_fd());
        let (pid, pipe) = children::spawn(&close, |to_parent| {
            self.run_worker(worker_control, to_parent)
        })?;
        log::debug!("prefork worker {pid} started");
        self.workers.push(
            pid,
            pipe,
            WorkerState {
                control: Some(control),
                born: Instant::now(),
                busy: false,
                held: None,
            },
        );
        Ok(())
    }

    /// The life of a worker, in the child: an accept loop of its own on
    /// the inherited listener, with its own state, that stops when the
    /// parent closes `control`.
    fn run_worker(&mut self, control: UnixStream, to_parent: ChildEnd) -> i32 {
        let Some(mut listener) = self.listener.take() else {
            return 1;
        };
        listener.disown_file();
        let Ok(state) = self.runner.shared.fresh_for_worker() else {
            return 1;
        };
        let state = Arc::new(state);
        let to_parent = Arc::new(to_parent);
        // The handlers reach the whole server, through the parent.
        let server = ThroughParent::handle(
            Arc::clone(&to_parent),
            state.draining_flag(),
            state.stats.clone(),
        );
        let runner = self.runner.for_worker(Arc::clone(&state));
        let worker = Worker {
            runner: runner.with_server(server),
            to_parent,
            remaining: self.max_requests,
            asks_parent: self.runner.shared.limits_per_ip(),
        };
        // Dropping the parent's bookkeeping closes its ends of the other
        // workers' pipes and control sockets, which this worker must not
        // hold. (The parent's state and stop descriptor are never dropped
        // here: their descriptors were closed by number at the fork.)
        drop(std::mem::replace(&mut self.workers, Children::new()));
        let settings = LoopSettings {
            max_datagram: self.settings.max_datagram,
            nodelay: self.settings.nodelay,
            request_timeout: None,
            service_interval: self.settings.service_interval,
            stop_fd: None,
        };
        let hooks = std::mem::take(&mut self.hooks);
        let stop = runner.server.clone();
        let watcher = std::thread::Builder::new()
            .name("prefork control".into())
            .spawn(move || {
                // Returns when the parent closes its end, or dies.
                let mut byte = [0u8; 1];
                let _ = io::Read::read(&mut &control, &mut byte);
                stop.shutdown();
            });
        if watcher.is_err() {
            return 1;
        }
        let mut accept_loop = AcceptLoop::new(listener, runner, Box::new(worker), settings, hooks);
        log::debug!("prefork worker {} accepting", std::process::id());
        let status = match accept_loop.serve_forever() {
            Ok(_) => 0,
            Err(_) => 1,
        };
        log::debug!("prefork worker {} stopped", std::process::id());
        status
    }

    /// Tells every worker to stop: idle connections end at once, busy ones
    /// get the drain timeout inside the worker.
    fn stop_workers(&mut self) {
        // Take in the notices already sent, so that a connection that
        // started just now is counted as busy.
        self.collect();
        self.busy_at_shutdown = self.workers.iter().filter(|w| w.what.busy).count();
        for worker in self.workers.iter_mut() {
            worker.what.control = None;
        }
    }

    /// Stops listening, stops the workers, and waits for them until
    /// `deadline`, then SIGTERM, then SIGKILL.
    fn stop(&mut self) -> Option<DrainReport> {
        // The workers hold copies of the listener, and a busy one closes
        // its copy only when its conversation ends: stop listening for all
        // of them at once. Closing ours also removes a Unix socket's file.
        let listener = self.listener.take()?;
        self.stop_workers();
        listener.stop_listening();
        drop(listener);
        // The workers enforce the drain timeout themselves; the parent
        // steps in (SIGTERM, then SIGKILL) only if one overstays it.
        let shared = Arc::clone(&self.runner.shared);
        let deadline = Instant::now() + shared.drain_timeout() + CUT_GRACE;
        let mut ignored = false;
        let notices = &mut |worker: &mut Child<WorkerState>, notice| {
            on_notice(worker, notice, &shared, &mut ignored)
        };
        let exits = &mut |worker, exit| {
            on_exit(worker, exit, &shared);
        };
        self.workers.wait_until(deadline, notices, exits);
        let cut = self.workers.iter().filter(|w| w.what.busy).count();
        self.workers.terminate(notices, exits);
        shared.stats.set_active(0);
        Some(DrainReport {
            drained: self.busy_at_shutdown.saturating_sub(cut),
            cut,
        })
    }
}

impl ModelLoop for Supervisor {
    fn is_open(&self) -> bool {
        self.listener.is_some()
    }

    fn ready(&self) -> Result<(), Error> {
        if self.listener.is_none() {
            return Err(Error::Closed);
        }
        crate::fork::ensure_single_threaded("prefork", self.fork_with_threads)
    }

    fn serve_forever(&mut self) -> Result<DrainReport, Error> {
        self.ready()?;
        while !self.runner.shared.shutdown_requested() {
            for _ in 0..self.due() {
                if let Err(e) = self.spawn_worker() {
                    log::error!("cannot start a prefork worker: {}", crate::describe(&e));
                    self.delay_respawn();
                    break;
                }
            }
            if let Err(e) = self.wait(self.next_wake()) {
                log::error!("{e}");
            }
        }
        Ok(self.stop().unwrap_or_default())
    }

    fn handle_request(&mut self) -> Result<bool, Error> {
        if self.listener.is_none() {
            return Err(Error::Closed);
        }
        Err(Error::Config(
            "a prefork server's workers accept; serve it with serve_forever".into(),
        ))
    }

    fn close(&mut self) -> Option<DrainReport> {
        self.runner.shared.request_shutdown();
        self.stop()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if self.listener.take().is_some() {
            let shared = Arc::clone(&self.runner.shared);
            shared.cut_all();
            self.workers.kill_all(&mut |worker, exit| {
                on_exit(worker, exit, &shared);
            });
            shared.stats.set_active(0);
        }
    }
}

/// A worker's notice, into the counters and the per-address count.
fn on_notice(
    worker: &mut Child<WorkerState>,
    notice: Notice,
    shared: &Shared,
    shutdown: &mut bool,
) {
    let state = &mut worker.what;
    match notice {
        Notice::MayServe(key) => {
            let granted = shared.take_peer(key);
            if granted {
                if let Some(old) = state.held.replace(key) {
                    shared.release_peer(old);
                }
            }
            worker.pipe.answer(granted);
        }
        Notice::Started => {
            shared.stats.accepted();
            state.busy = true;
        }
        Notice::Refused => {
            shared.stats.accepted();
            shared.stats.refused();
            if let Some(key) = state.held.take() {
                shared.release_peer(key);
            }
        }
        Notice::Ended(outcome) => {
            shared.stats.count(outcome);
            state.busy = false;
            if let Some(key) = state.held.take() {
                shared.release_peer(key);
            }
        }
        Notice::ShutdownAsked => *shutdown = true,
    }
}

/// A worker is gone: its client's place is freed, its exit logged, and a
/// conversation it was serving counted as failed. Returns whether it
/// exited cleanly.
fn on_exit(worker: Child<WorkerState>, exit: Exit, shared: &Shared) -> bool {
    if let Some(key) = worker.what.held {
        shared.release_peer(key);
    }
    let clean = exit.is_clean();
    if clean {
        log::debug!("{worker} ended");
    } else {
        log::error!("{worker} {exit}");
    }
    if worker.what.busy {
        // Its connection died with it.
        shared.stats.count(Outcome::LOST);
    }
    clean
}

/// Inside a worker process: serves each connection in the worker's own
/// thread, telling the parent, and stops after `max_requests`.
struct Worker {
    runner: Runner,
    to_parent: Arc<ChildEnd>,
    remaining: Option<u64>,
    /// The parent counts conversations per address: ask it before each.
    asks_parent: bool,
}

impl Dispatch for Worker {
    fn process(&mut self, gate: &mut Gate<'_>, incoming: Incoming) {
        let Incoming::Connection { socket, peer } = incoming else {
            unreachable!("prefork serves stream sockets only, checked when built")
        };
        // The workers' parent counts per address for all of them.
        let key = PeerKey::of(&peer).filter(|_| self.asks_parent);
        if key.is_some_and(|key| !self.to_parent.may_serve(key)) {
            self.to_parent.send(Notice::Refused);
            gate.refuse(socket, peer, Refusal::PerIp);
            return;
        }
        let Some(admitted) = gate.admit(Incoming::Connection { socket, peer }) else {
            return;
        };
        self.to_parent.send(Notice::Started);
        let outcome = self.runner.run(admitted);
        self.to_parent.send(Notice::Ended(outcome));
        if let Some(remaining) = &mut self.remaining {
            *remaining = remaining.saturating_sub(1);
            if *remaining == 0 {
                // Recycled: the parent starts a fresh worker in our place.
                gate.shared().request_shutdown();
            }
        }
    }

    fn shares_listener(&self) -> bool {
        true
    }

    fn refused(&mut self) {
        self.to_parent.send(Notice::Refused);
    }
}
