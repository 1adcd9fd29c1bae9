//! [`AcceptLoop`]: Python's `serve_forever` and `handle_request`. It waits
//! in `poll` for the listener, the waker, the stop descriptor and the
//! model's own descriptors; accepts a connection (or receives a datagram),
//! verifies it, sets its socket options, and hands it, whole, to the
//! model's [`Dispatch`], which admits it through a [`Gate`] and runs it or
//! hands it on. On shutdown it closes the listener and drains.
//!
//! Every model but prefork's parent serves through one accept loop; each
//! prefork worker runs an accept loop of its own.

mod accept_error;
mod stop_watcher;

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::conversation::{Admitted, Request, Runner};
use crate::listener::Listener;
use crate::model_loop::ModelLoop;
use crate::settings::{LoopHooks, LoopSettings};
use crate::shared::Shared;
use crate::socket::datagram::{DatagramSocket, Packet};
use crate::socket::{Connection, Socket};
use crate::{Address, DrainReport, Error, Refusal, Stream};

use stop_watcher::StopWatcher;

/// After a drain, how long to wait for handler threads to notice that
/// their sockets were cut before leaving them behind.
pub(crate) const CUT_GRACE: Duration = Duration::from_secs(1);
/// Most connections accepted in one turn of the loop, so that the loop
/// still checks for shutdown and runs `service_actions` under a flood.
const ACCEPT_BATCH: usize = 64;

/// What the accept loop asks of a concurrency model.
pub(crate) trait Dispatch: Send {
    /// Takes an accepted, verified request and runs it or hands it on,
    /// after admitting it with `gate` (which refuses it when it must).
    /// Never blocks the loop for long (but under `Model::Sync`, whose
    /// requests run here).
    fn process(&mut self, gate: &mut Gate<'_>, incoming: Incoming);

    /// False while the model can take no more: the loop stops polling the
    /// listener, and clients wait in the backlog.
    fn may_accept(&self) -> bool {
        true
    }

    /// Whether serving may start (a process model refuses to fork from a
    /// process with other threads).
    fn ready(&self) -> Result<(), Error> {
        Ok(())
    }

    /// True if the model's connections are non-blocking (the event
    /// model): the loop makes them so, and sets no socket timeouts.
    fn nonblocking(&self) -> bool {
        false
    }

    /// True if requests run in the loop's own thread, which then cannot
    /// watch the stop descriptor while one runs.
    fn runs_in_loop(&self) -> bool {
        false
    }

    /// True if other processes accept on the same listener (prefork
    /// workers): once it is shut down, this loop is done.
    fn shares_listener(&self) -> bool {
        false
    }

    /// Descriptors the loop should also wait on for the model.
    fn watched(&self) -> Vec<BorrowedFd<'_>> {
        Vec::new()
    }

    /// One of the watched descriptors is ready, or the model's
    /// [deadline](Dispatch::next_deadline) has come.
    fn collect(&mut self, shared: &Arc<Shared>) {
        let _ = shared;
    }

    /// When the loop must call [`Dispatch::collect`] at the latest, even
    /// if no watched descriptor is ready (the event model's timeouts).
    fn next_deadline(&self) -> Option<Instant> {
        None
    }

    /// The next request comes through `handle_request`, so it must run on
    /// after the call returns, without the loop to drive it: the event
    /// model hands it to a loop thread rather than to the accept loop's
    /// own.
    fn serve_next_apart(&mut self) {}

    /// A connection was refused before reaching the model.
    fn refused(&mut self) {}

    /// Lets the live requests end until `deadline`, then cuts the rest.
    fn drain(&mut self, shared: &Arc<Shared>, deadline: Instant) -> DrainReport {
        shared.drain_until(deadline);
        shared.drain_report()
    }

    /// Waits up to `grace` for the model's threads to end; returns how many
    /// were still running and were left behind.
    fn join(&mut self, grace: Duration) -> usize {
        let _ = grace;
        0
    }

    /// Stops at once, waiting for nothing (the server is dropped): queued
    /// work is abandoned, child processes are killed and reaped.
    fn abandon(&mut self, shared: &Arc<Shared>) {
        let _ = shared;
    }
}

/// A request accepted and verified, not yet admitted.
pub(crate) enum Incoming {
    Connection { socket: Socket, peer: Address },
    Datagram(Packet),
}

/// What a model may do with an incoming request while the loop waits:
/// admit it, refuse it, and learn what a forked child must close.
pub(crate) struct Gate<'a> {
    runner: &'a Runner,
    hooks: &'a mut LoopHooks,
    listener: Option<&'a Listener>,
    stop_fd: Option<RawFd>,
}

impl Gate<'_> {
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.runner.shared
    }

    /// Takes a slot in the registry for the request (and, for a
    /// connection, a place in its address's count); refuses it when the
    /// server is full (under `WhenFull::Refuse`) or the address has its
    /// most.
    pub(crate) fn admit(&mut self, incoming: Incoming) -> Option<Admitted> {
        let shared = &self.runner.shared;
        match incoming {
            Incoming::Connection { socket, peer } => match shared.register(socket, peer.clone()) {
                Ok((slot, conn)) => Some(Admitted {
                    slot,
                    request: Request::Conversation(conn),
                }),
                Err((socket, why)) => {
                    self.refuse(socket, peer, why);
                    None
                }
            },
            Incoming::Datagram(packet) => match shared.register_packet() {
                Some(slot) => Some(Admitted {
                    slot,
                    request: Request::Datagram(packet),
                }),
                None => {
                    log::warn!(
                        "{}: datagram refused, {} in progress",
                        packet.peer,
                        shared.stats.snapshot().active
                    );
                    shared.stats.refused();
                    None
                }
            },
        }
    }

    /// Refuses a connection before any handler runs: for the limit (under
    /// `WhenFull::Refuse`) or for its address. The handler's `refuse` (or
    /// the `on_refused` hook, for the limit) says why; then it is closed.
    pub(crate) fn refuse(&mut self, socket: Socket, peer: Address, why: Refusal) {
        let shared = &self.runner.shared;
        shared.stats.refused();
        match why {
            Refusal::PerIp => log::warn!("{peer}: refused: {why}"),
            _ => log::warn!(
                "{peer}: refused ({why}), {} connections already",
                shared.stats.snapshot().active
            ),
        }
        if shared.tls().is_some() {
            // Words in plain text would be garbage to a TLS client, and a
            // handshake has no place on the accept loop: close at once.
            return;
        }
        let conn = Arc::new(Connection::new(socket, peer, None));
        let mut stream = Stream::from_connection(conn, shared.limits());
        match (&mut self.hooks.on_refused, why) {
            (Some(on_refused), Refusal::Full) => on_refused(&mut stream),
            _ => self.runner.refuse(&mut stream, why),
        }
        let _ = stream.flush();
        stream.discard_output();
    }

    /// The descriptors a child forked to serve `incoming` must close: the
    /// waker's and the stop descriptor, and the listener (it would hold
    /// the port after the server closes), except for a datagram, whose
    /// replies go out through it.
    pub(crate) fn close_in_child(&self, incoming: &Incoming) -> Vec<RawFd> {
        let mut close = self.runner.shared.waker.raw_fds().to_vec();
        close.extend(self.stop_fd);
        if let Incoming::Connection { .. } = incoming {
            close.extend(self.listener.map(Listener::raw_fd));
        }
        close
    }
}

/// The loop, its listener and the model it hands requests to.
pub(crate) struct AcceptLoop {
    listener: Option<Listener>,
    runner: Runner,
    model: Box<dyn Dispatch>,
    /// Where a datagram server receives: `max_datagram + 1` bytes, so that
    /// a datagram over the limit shows (and is dropped, never cut).
    datagram_buffer: Vec<u8>,
    settings: LoopSettings,
    hooks: LoopHooks,
    /// A pause to take before the next accept, after an accept error.
    pause: Option<Duration>,
    /// The last such pause, doubled for the next error until an accept
    /// succeeds.
    last_pause: Option<Duration>,
    /// Stopped (drained) or dropped; the listener may go before, when a
    /// stop signal arrives.
    closed: bool,
}

impl AcceptLoop {
    pub(crate) fn new(
        listener: Listener,
        runner: Runner,
        model: Box<dyn Dispatch>,
        settings: LoopSettings,
        hooks: LoopHooks,
    ) -> AcceptLoop {
        let datagram_buffer = match listener.datagram_socket() {
            Some(_) => vec![0; settings.max_datagram + 1],
            None => Vec::new(),
        };
        AcceptLoop {
            listener: Some(listener),
            runner,
            model,
            datagram_buffer,
            settings,
            hooks,
            pause: None,
            last_pause: None,
            closed: false,
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.runner.shared
    }

    /// Waits until a connection may be accepted, the waker fires, or
    /// `timeout` passes. Returns true if the listener is readable.
    fn wait_for_request(&mut self, timeout: Option<Duration>) -> Result<bool, Error> {
        if self.listener.is_none() {
            return Ok(false);
        }
        if let Some(pause) = self.pause.take() {
            // Out of descriptors or memory: wait before accepting again,
            // still waking at once for a shutdown.
            self.poll(false, Some(timeout.map_or(pause, |t| t.min(pause))))?;
            return Ok(false);
        }
        let listen = self.shared().may_accept() && self.model.may_accept();
        self.poll(listen, timeout)
    }

    fn poll(&mut self, listen: bool, timeout: Option<Duration>) -> Result<bool, Error> {
        let shared = Arc::clone(&self.runner.shared);
        let model_deadline = self.model.next_deadline();
        let timeout = match model_deadline {
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                Some(timeout.map_or(left, |t| t.min(left)))
            }
            None => timeout,
        };
        let mut fds = vec![shared.waker.fd()];
        if let (true, Some(listener)) = (listen, &self.listener) {
            fds.push(listener.fd());
        }
        let listening = fds.len() == 2;
        fds.extend(self.settings.stop_fd.as_ref().map(AsFd::as_fd));
        let first_watched = fds.len();
        fds.extend(self.model.watched());
        let ready = crate::waker::poll_readable(&fds, timeout).map_err(Error::Io)?;
        let readable = listening && ready[1];
        let stop = self.settings.stop_fd.is_some() && ready[first_watched - 1];
        let model_ready = ready[first_watched..].contains(&true);
        drop(fds);
        if ready[0] {
            shared.waker.reset();
        }
        if model_ready || model_deadline.is_some_and(|at| at <= Instant::now()) {
            self.model.collect(&shared);
        }
        if stop && !shared.shutdown_requested() {
            log::info!("stop requested (a signal?); draining");
            // The port refuses first: ending the idle conversations (a
            // system call each) may take a while with thousands of them.
            self.listener = None;
            shared.request_shutdown();
        }
        Ok(readable)
    }

    /// Accepts one connection (or receives one datagram) and hands it on.
    /// Returns false when there was none (or accepting must pause).
    fn accept_one(&mut self) -> bool {
        if !self.shared().may_accept() || !self.model.may_accept() {
            return false;
        }
        let Some(listener) = &self.listener else {
            return false;
        };
        if let Some(socket) = listener.datagram_socket() {
            let socket = Arc::clone(socket);
            return self.receive_one(socket);
        }
        match listener.accept() {
            Ok((socket, peer)) => {
                self.last_pause = None;
                self.take(socket, peer);
                true
            }
            Err(e) => self.accept_failed(e),
        }
    }

    /// Verifies an accepted connection, sets its options, hands it on.
    fn take(&mut self, socket: Socket, peer: Address) {
        self.shared().stats.accepted();
        if let Some(verify) = &mut self.hooks.verify_request {
            if !verify(&peer) {
                log::info!("{peer}: refused by verify_request");
                self.runner.shared.stats.refused();
                self.model.refused();
                return;
            }
        }
        if let Err(e) = self.configure(&socket) {
            log::warn!("{peer}: cannot set socket options: {}", crate::describe(&e));
            self.shared().stats.refused();
            self.model.refused();
            return;
        }
        self.hand_on(Incoming::Connection { socket, peer });
    }

    /// Receives one datagram, verifies it and hands it on, as `take` does
    /// a connection. Returns false when none was waiting.
    fn receive_one(&mut self, socket: Arc<DatagramSocket>) -> bool {
        let (len, peer) = match socket.recv_from(&mut self.datagram_buffer) {
            Ok(received) => received,
            Err(e) => return self.accept_failed(e),
        };
        self.last_pause = None;
        self.shared().stats.accepted();
        if len > self.settings.max_datagram {
            log::warn!(
                "{peer}: datagram longer than {} bytes dropped",
                self.settings.max_datagram
            );
            self.shared().stats.dropped();
            return true;
        }
        if let Some(verify) = &mut self.hooks.verify_request {
            if !verify(&peer) {
                log::info!("{peer}: refused by verify_request");
                self.runner.shared.stats.refused();
                return true;
            }
        }
        let data = self.datagram_buffer[..len].to_vec();
        self.hand_on(Incoming::Datagram(Packet { data, peer, socket }));
        true
    }

    /// Gives a request to the model.
    fn hand_on(&mut self, incoming: Incoming) {
        let mut gate = Gate {
            runner: &self.runner,
            hooks: &mut self.hooks,
            listener: self.listener.as_ref(),
            stop_fd: self.settings.stop_fd.as_ref().map(AsRawFd::as_raw_fd),
        };
        self.model.process(&mut gate, incoming);
    }

    fn configure(&self, socket: &Socket) -> io::Result<()> {
        if let Socket::Tcp(tcp) = socket {
            if self.settings.nodelay {
                tcp.set_nodelay(true)?;
            }
        }
        if self.model.nonblocking() {
            // The model waits itself, with the timeouts its `Connection`
            // keeps: the socket's own would be two system calls for
            // nothing.
            return socket.set_nonblocking(true);
        }
        let timeout = self.shared().limits().idle_timeout;
        if timeout.is_some() {
            socket.set_read_timeout(timeout)?;
            socket.set_write_timeout(timeout)?;
        }
        Ok(())
    }

    /// Closes the listener, drains, and stops the model; `None` if the
    /// listener was closed already.
    fn stop(&mut self) -> Option<DrainReport> {
        if self.closed {
            return None;
        }
        self.closed = true;
        self.listener = None;
        let shared = Arc::clone(self.shared());
        let deadline = Instant::now() + shared.drain_timeout();
        let report = self.model.drain(&shared, deadline);
        if report.cut > 0 && !shared.wait_empty(CUT_GRACE) {
            log::warn!(
                "some handlers did not end after their connections were cut; leaving them behind"
            );
        }
        let left = self.model.join(CUT_GRACE);
        if left > 0 {
            log::warn!("{left} handler threads still running after the drain; leaving them behind");
        }
        Some(report)
    }
}

impl ModelLoop for AcceptLoop {
    fn is_open(&self) -> bool {
        !self.closed
    }

    fn ready(&self) -> Result<(), Error> {
        if self.closed {
            return Err(Error::Closed);
        }
        self.model.ready()
    }

    fn serve_forever(&mut self) -> Result<DrainReport, Error> {
        self.ready()?;
        // When requests run in the loop's thread, the loop cannot watch
        // the stop descriptor while one runs: a thread does.
        let _watcher = match (&self.settings.stop_fd, self.model.runs_in_loop()) {
            (Some(fd), true) => StopWatcher::start(fd, self.runner.server.clone()),
            _ => None,
        };
        while !self.shared().shutdown_requested() {
            let wait = self
                .hooks
                .service_actions
                .as_ref()
                .map(|_| self.settings.service_interval);
            if self.wait_for_request(wait)? {
                for _ in 0..ACCEPT_BATCH {
                    if self.shared().shutdown_requested() || !self.accept_one() {
                        break;
                    }
                }
            }
            if let Some(action) = &mut self.hooks.service_actions {
                action();
            }
        }
        Ok(self.stop().unwrap_or_default())
    }

    fn handle_request(&mut self) -> Result<bool, Error> {
        self.ready()?;
        let deadline = self.settings.request_timeout.map(|t| Instant::now() + t);
        loop {
            if self.shared().shutdown_requested() {
                return Ok(false);
            }
            let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if wait == Some(Duration::ZERO) {
                if let Some(on_timeout) = &mut self.hooks.handle_timeout {
                    on_timeout();
                }
                return Ok(false);
            }
            self.model.serve_next_apart();
            if self.wait_for_request(wait)? && self.accept_one() {
                return Ok(true);
            }
        }
    }

    fn close(&mut self) -> Option<DrainReport> {
        self.shared().request_shutdown();
        self.stop()
    }
}

impl Drop for AcceptLoop {
    fn drop(&mut self) {
        if !self.closed {
            self.closed = true;
            self.listener = None;
            let shared = Arc::clone(self.shared());
            shared.cut_all();
            self.model.abandon(&shared);
        }
    }
}
