//! `Model::Prefork`: a fixed set of worker processes that all accept on the
//! shared listening socket (Perl's Net::Server::PreFork; Python has none).
//!
//! The parent forks the workers and supervises them: it never accepts. Each
//! worker is a `Sync` server of its own on the inherited listener: it serves
//! one connection at a time, reports each connection's start and end to the
//! parent on a socket pair, and stops when the parent closes its control
//! socket (or dies). The parent respawns a worker that ends (after
//! `max_requests`, or a crash), with a growing delay when workers die young,
//! so that a crashing handler cannot fork-bomb the machine.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::per_ip::PeerKey;
use crate::report::{Event, Reporter, Reports};
use crate::server::CUT_GRACE;
use crate::service::{self, Job, Service};
use crate::shared::Shared;
use crate::stats::{Ended, Outcome};
use crate::{DrainReport, Server};

use super::forking::TERM_GRACE;
use super::Dispatcher;

/// A worker that lives at least this long is healthy: respawn it at once.
const HEALTHY_LIFE: Duration = Duration::from_secs(1);
/// The respawn delay after a young death, doubling up to the maximum.
const FIRST_RESPAWN_DELAY: Duration = Duration::from_millis(100);
const MAX_RESPAWN_DELAY: Duration = Duration::from_secs(10);

/// The parent's view of its workers.
pub(crate) struct Prefork {
    pub(crate) wanted: usize,
    pub(crate) max_requests: Option<u64>,
    workers: Vec<WorkerProcess>,
    respawn_delay: Option<Duration>,
    respawn_at: Option<Instant>,
    /// Connections in progress when the shutdown began.
    busy_at_shutdown: usize,
}

struct WorkerProcess {
    pid: Pid,
    reports: Reports,
    /// Closing it tells the worker to stop.
    control: Option<UnixStream>,
    born: Instant,
    busy: bool,
    /// The place in the per-address count its conversation holds, granted
    /// when it asked; freed when the conversation ends or the worker dies.
    held: Option<PeerKey>,
}

impl Prefork {
    pub(crate) fn new(wanted: usize, max_requests: Option<u64>) -> Prefork {
        Prefork {
            wanted,
            max_requests,
            workers: Vec::new(),
            respawn_delay: None,
            respawn_at: None,
            busy_at_shutdown: 0,
        }
    }

    pub(crate) fn add(&mut self, pid: Pid, reports: Reports, control: UnixStream) {
        self.workers.push(WorkerProcess {
            pid,
            reports,
            control: Some(control),
            born: Instant::now(),
            busy: false,
            held: None,
        });
    }

    /// How many workers are missing and may be spawned now.
    pub(crate) fn due(&mut self) -> usize {
        if self.respawn_at.is_some_and(|at| Instant::now() < at) {
            return 0;
        }
        self.respawn_at = None;
        self.wanted.saturating_sub(self.workers.len())
    }

    /// How long the supervisor may sleep before a respawn is due.
    pub(crate) fn next_wake(&self) -> Option<Duration> {
        if self.workers.len() >= self.wanted {
            return None;
        }
        Some(self.respawn_at.map_or(Duration::ZERO, |at| {
            at.saturating_duration_since(Instant::now())
        }))
    }

    /// A spawn failed: try again later.
    pub(crate) fn spawn_failed(&mut self) {
        self.delay_respawn();
    }

    pub(crate) fn watched(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.workers.iter().map(|w| w.reports.fd())
    }

    /// Reads the workers' reports into the counters and reaps the workers
    /// that are gone.
    pub(crate) fn collect(&mut self, shared: &Shared, draining: bool) {
        let mut i = 0;
        while i < self.workers.len() {
            let worker = &mut self.workers[i];
            let mut answers = Vec::new();
            let gone = worker.reports.drain(|event| match event {
                Event::Ask(key) => {
                    let granted = shared.take_peer(key);
                    if granted {
                        if let Some(old) = worker.held.replace(key) {
                            shared.release_peer(old);
                        }
                    }
                    answers.push(granted);
                }
                Event::Started => {
                    shared.stats.accepted();
                    worker.busy = true;
                }
                Event::Refused => {
                    shared.stats.accepted();
                    shared.stats.refused();
                    if let Some(key) = worker.held.take() {
                        shared.release_peer(key);
                    }
                }
                Event::Ended(Ended {
                    outcome,
                    bytes_read,
                    bytes_written,
                }) => {
                    shared.stats.ended(outcome, bytes_read, bytes_written);
                    worker.busy = false;
                    if let Some(key) = worker.held.take() {
                        shared.release_peer(key);
                    }
                }
            });
            for granted in answers {
                worker.reports.answer(granted);
            }
            if gone {
                let worker = self.workers.swap_remove(i);
                let status = waitpid(worker.pid, None);
                self.worker_ended(&worker, status.ok(), shared, draining);
            } else {
                i += 1;
            }
        }
        let busy = self.workers.iter().filter(|w| w.busy).count();
        shared.stats.set_active(busy);
    }

    fn worker_ended(
        &mut self,
        worker: &WorkerProcess,
        status: Option<WaitStatus>,
        shared: &Shared,
        draining: bool,
    ) {
        if let Some(key) = worker.held {
            shared.release_peer(key);
        }
        let clean = matches!(status, Some(WaitStatus::Exited(_, 0)));
        if !clean {
            match status {
                Some(WaitStatus::Signaled(_, signal, _)) => {
                    log::error!("prefork worker {} killed by {signal}", worker.pid)
                }
                Some(WaitStatus::Exited(_, code)) => {
                    log::error!("prefork worker {} exited with status {code}", worker.pid)
                }
                other => log::error!("prefork worker {} ended: {other:?}", worker.pid),
            }
        } else {
            log::debug!("prefork worker {} ended", worker.pid);
        }
        if worker.busy {
            // Its connection died with it.
            shared.stats.ended(Outcome::Failed, 0, 0);
        }
        if draining {
            return;
        }
        if clean || worker.born.elapsed() >= HEALTHY_LIFE {
            self.respawn_delay = None;
        } else {
            self.delay_respawn();
        }
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

    /// Tells every worker to stop: idle connections end at once, busy ones
    /// get the drain timeout inside the worker.
    pub(crate) fn stop_workers(&mut self, shared: &Shared) {
        // Take in the reports already sent, so that a connection that
        // started just now is counted as busy.
        self.collect(shared, true);
        self.busy_at_shutdown = self.workers.iter().filter(|w| w.busy).count();
        for worker in &mut self.workers {
            worker.control = None;
        }
    }

    /// Waits for the workers until `deadline`, then SIGTERM, then SIGKILL.
    pub(crate) fn drain(&mut self, shared: &Shared, deadline: Instant) -> DrainReport {
        self.wait_until(shared, deadline);
        let mut cut = self.workers.iter().filter(|w| w.busy).count();
        if !self.workers.is_empty() {
            for worker in &self.workers {
                log::warn!(
                    "prefork worker {} still running at the drain deadline; SIGTERM",
                    worker.pid
                );
                let _ = kill(worker.pid, Signal::SIGTERM);
            }
            self.wait_until(shared, Instant::now() + TERM_GRACE);
            cut = cut.max(self.kill_all(shared));
        }
        DrainReport {
            drained: self.busy_at_shutdown.saturating_sub(cut),
            cut,
        }
    }

    fn wait_until(&mut self, shared: &Shared, deadline: Instant) {
        while !self.workers.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            let fds: Vec<BorrowedFd<'_>> = self.watched().collect();
            let _ = crate::waker::poll_any(&fds, Some(deadline - now));
            self.collect(shared, true);
        }
    }

    /// Kills and reaps every worker; returns how many were busy.
    pub(crate) fn kill_all(&mut self, shared: &Shared) -> usize {
        let busy = self.workers.iter().filter(|w| w.busy).count();
        for worker in &self.workers {
            let _ = kill(worker.pid, Signal::SIGKILL);
        }
        for worker in std::mem::take(&mut self.workers) {
            let status = waitpid(worker.pid, None).ok();
            self.worker_ended(&worker, status, shared, true);
        }
        shared.stats.set_active(0);
        busy
    }
}

/// Inside a worker process: serves each connection in the worker's own
/// thread, reporting to the parent, and stops after `max_requests`.
pub(crate) struct Worker {
    reporter: Reporter,
    remaining: Option<u64>,
    /// The parent counts conversations per address: ask it before each.
    asks_parent: bool,
}

impl Worker {
    pub(crate) fn new(reporter: Reporter, max_requests: Option<u64>, asks_parent: bool) -> Worker {
        Worker {
            reporter,
            remaining: max_requests,
            asks_parent,
        }
    }

    /// Whether the client `key` may have one more conversation, across
    /// all workers: the parent decides. Always true when the server has no
    /// per-address limit.
    pub(crate) fn admit(&mut self, key: PeerKey) -> bool {
        !self.asks_parent || self.reporter.ask(key)
    }

    pub(crate) fn dispatch(&mut self, shared: &Arc<Shared>, service: &Arc<dyn Service>, job: Job) {
        self.reporter.send(Event::Started);
        let ended = service::serve(shared, service.as_ref(), job);
        self.reporter.send(Event::Ended(ended));
        if let Some(remaining) = &mut self.remaining {
            *remaining = remaining.saturating_sub(1);
            if *remaining == 0 {
                // Recycled: the parent starts a fresh worker in our place.
                shared.request_shutdown();
            }
        }
    }

    pub(crate) fn refused(&mut self) {
        self.reporter.send(Event::Refused);
    }
}

// The prefork model: the parent supervises, the workers serve.
impl<H> Server<H> {
    /// The prefork parent's loop: keeps `workers` processes alive, counts
    /// what they report, and on shutdown stops them and drains.
    pub(crate) fn supervise(&mut self) -> DrainReport {
        log::info!("serving on {} ({})", self.local_addr, self.config.model);
        while !self.shared.shutdown_requested() {
            let due = match &mut self.dispatcher {
                Dispatcher::Prefork(prefork) => prefork.due(),
                _ => 0,
            };
            for _ in 0..due {
                if let Err(e) = self.spawn_worker() {
                    log::error!("cannot start a prefork worker: {}", crate::describe(&e));
                    if let Dispatcher::Prefork(prefork) = &mut self.dispatcher {
                        prefork.spawn_failed();
                    }
                    break;
                }
            }
            let wake = match &self.dispatcher {
                Dispatcher::Prefork(prefork) => prefork.next_wake(),
                _ => None,
            };
            if let Err(e) = self.poll(false, wake) {
                log::error!("{e}");
            }
        }
        // The workers hold copies of the listener, and a busy one closes its
        // copy only when its conversation ends: stop listening for all of
        // them at once. Closing ours also removes a Unix socket's file.
        if let Dispatcher::Prefork(prefork) = &mut self.dispatcher {
            prefork.stop_workers(&self.shared);
        }
        if let Some(listener) = self.listener.take() {
            listener.stop_listening();
        }
        // The workers enforce the drain timeout themselves; the parent
        // steps in (SIGTERM, then SIGKILL) only if one overstays it.
        let deadline = Instant::now() + self.shared.drain_timeout() + CUT_GRACE;
        let report = match &mut self.dispatcher {
            Dispatcher::Prefork(prefork) => prefork.drain(&self.shared, deadline),
            _ => DrainReport::default(),
        };
        log::info!(
            "stopped serving on {}: {} connections drained, {} cut",
            self.local_addr,
            report.drained,
            report.cut
        );
        report
    }

    fn spawn_worker(&mut self) -> io::Result<()> {
        let (reports, reporter) = crate::report::pair()?;
        let (control, worker_control) = std::os::unix::net::UnixStream::pair()?;
        // Closed by number in the worker: their owners live on in frames
        // the worker never returns to, so nothing closes them twice.
        let mut close = self.shared.waker.raw_fds().to_vec();
        close.extend(self.config.stop_fd.as_ref().map(AsRawFd::as_raw_fd));
        close.push(reports.raw_fd());
        close.push(control.as_raw_fd());
        let max_requests = match &self.dispatcher {
            Dispatcher::Prefork(prefork) => prefork.max_requests,
            _ => None,
        };
        let pid = crate::fork::spawn(&close, || {
            self.run_worker(worker_control, reporter, max_requests)
        })?;
        if let Dispatcher::Prefork(prefork) = &mut self.dispatcher {
            log::debug!("prefork worker {pid} started");
            prefork.add(pid, reports, control);
        }
        Ok(())
    }

    /// The life of a prefork worker, in the child: this server's copy
    /// becomes a one-at-a-time server on the inherited listener, with its
    /// own state, that stops when the parent closes `control`.
    fn run_worker(
        &mut self,
        control: std::os::unix::net::UnixStream,
        reporter: crate::report::Reporter,
        max_requests: Option<u64>,
    ) -> i32 {
        if let Some(listener) = &mut self.listener {
            listener.disown_file();
        }
        let Ok(fresh) = self.shared.fresh_for_worker() else {
            return 1;
        };
        let asks_parent = self.shared.limits_per_ip();
        // The parent's state and stop descriptor are never dropped here:
        // their descriptors were closed by number when the worker was
        // forked.
        std::mem::forget(std::mem::replace(&mut self.shared, Arc::new(fresh)));
        std::mem::forget(self.config.stop_fd.take());
        // Dropping the parent's bookkeeping closes its ends of the other
        // workers' sockets, which this worker must not hold.
        self.dispatcher = Dispatcher::Worker(Worker::new(reporter, max_requests, asks_parent));
        let stop = self.shutdown_handle();
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
        match self.serve_forever() {
            Ok(_) => 0,
            Err(_) => 1,
        }
    }
}
