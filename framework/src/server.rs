//! [`Server`]: the listening socket, the accept loop and the life cycle of
//! the server itself.

use std::fmt;
use std::io;
use std::net::ToSocketAddrs;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags};

use crate::datagram::socket::{DatagramSocket, Packet};
use crate::listener::Listener;
use crate::model::Dispatcher;
use crate::per_ip::PeerKey;
use crate::service::{Job, Service, Work};
use crate::shared::Shared;
use crate::socket::{Connection, Socket};
use crate::{
    Address, Builder, DatagramHandler, DrainReport, Error, Model, Refusal, RequestHandler,
    ShutdownHandle, Stats, Stream,
};
use std::marker::PhantomData;

mod accept_error;
mod stop_watcher;

use stop_watcher::StopWatcher;

/// After a drain, how long to wait for handler threads to notice that
/// their sockets were cut before leaving them behind.
pub(crate) const CUT_GRACE: Duration = Duration::from_secs(1);
/// Most connections accepted in one turn of the loop, so that the loop
/// still checks for shutdown and runs `service_actions` under a flood.
const ACCEPT_BATCH: usize = 64;

type VerifyHook = Box<dyn FnMut(&Address) -> bool + Send>;
type RefuseHook = Box<dyn FnMut(&mut Stream) + Send>;
type ActionHook = Box<dyn FnMut() + Send>;

/// Hooks that run in the serving thread.
#[derive(Default)]
pub(crate) struct LoopHooks {
    pub(crate) verify_request: Option<VerifyHook>,
    pub(crate) on_refused: Option<RefuseHook>,
    pub(crate) service_actions: Option<ActionHook>,
    pub(crate) handle_timeout: Option<ActionHook>,
}

pub(crate) struct ServerConfig {
    pub(crate) model: Model,
    pub(crate) max_datagram: usize,
    /// The connection limit: `max_connections`, capped by the model.
    pub(crate) limit: usize,
    pub(crate) nodelay: bool,
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) service_interval: Duration,
    /// Readable means "shut down" (a signal's self-pipe).
    pub(crate) stop_fd: Option<std::os::fd::OwnedFd>,
    /// The caller vouched for its threads (`allow_fork_with_threads`).
    pub(crate) fork_with_threads: bool,
}

/// A server: a listening socket, a concurrency [`Model`], and a
/// [`RequestHandler`] cloned for every connection.
///
/// ```no_run
/// use socketserver::{RequestHandler, Server, Stream};
///
/// #[derive(Clone)]
/// struct Upper;
///
/// impl RequestHandler for Upper {
///     fn handle(&mut self, stream: &mut Stream) -> std::io::Result<()> {
///         while let Some(line) = stream.next_line()? {
///             stream.write_all(line.to_uppercase().as_bytes())?;
///         }
///         Ok(())
///     }
/// }
///
/// let mut server = Server::bind("127.0.0.1:9999", Upper)?.threading().build()?;
/// let stop = server.shutdown_handle(); // Send + Clone: stop it from anywhere
/// server.serve_forever()?;
/// # Ok::<(), socketserver::Error>(())
/// ```
///
/// The methods come in three groups, as in Python's `socketserver`: making
/// a server ([`bind`](Server::bind), [`bind_unix`](Server::bind_unix),
/// [`from_listener`](Server::from_listener), then the [`Builder`]); running
/// it ([`serve_forever`](Server::serve_forever),
/// [`handle_request`](Server::handle_request),
/// [`shutdown_handle`](Server::shutdown_handle),
/// [`server_close`](Server::server_close)); and looking at it
/// ([`local_addr`](Server::local_addr), [`stats`](Server::stats)). The
/// hooks a Python subclass would override are closures given to the
/// [`Builder`].
///
/// Dropping a server closes its socket (and removes the file of a Unix
/// socket it bound) and cuts its live connections without waiting; call
/// [`server_close`](Server::server_close) to drain them first.
pub struct Server<H> {
    pub(crate) listener: Option<Listener>,
    pub(crate) local_addr: Address,
    pub(crate) shared: Arc<Shared>,
    /// The handler, wrapped for the models (which know no handler types).
    service: Arc<dyn Service>,
    handler: PhantomData<fn() -> H>,
    pub(crate) dispatcher: Dispatcher,
    /// Where a datagram server receives: `max_datagram + 1` bytes, so that
    /// a datagram over the limit shows (and is dropped, never cut).
    datagram_buffer: Vec<u8>,
    pub(crate) config: ServerConfig,
    hooks: LoopHooks,
    /// A pause to take before the next accept, after an accept error.
    pause: Option<Duration>,
    /// The last such pause, doubled for the next error until an accept
    /// succeeds.
    last_pause: Option<Duration>,
}

// Making a server.
impl<H: RequestHandler> Server<H> {
    /// Starts building a TCP server on `addr`: `"127.0.0.1:9999"`,
    /// `"[::]:21"` (IPv6 and IPv4), `("localhost", 0)` (any free port).
    /// The socket is bound by [`Builder::build`].
    ///
    /// # Errors
    /// [`Error::Resolve`] if `addr` names no socket address.
    pub fn bind(addr: impl ToSocketAddrs, handler: H) -> Result<Builder<H>, Error> {
        Builder::tcp(addr, handler)
    }

    /// Starts building a Unix-domain stream server at `path`. The socket
    /// file is removed when the server closes; a stale file left by a
    /// server that died is replaced, a live one is an error.
    pub fn bind_unix(path: impl AsRef<Path>, handler: H) -> Builder<H> {
        Builder::unix(path.as_ref().to_path_buf(), handler)
    }

    /// Starts building a server on a socket that is already bound and
    /// listening, such as one passed by systemd socket activation.
    pub fn from_listener(listener: impl Into<Listener>, handler: H) -> Builder<H> {
        Builder::listener(listener.into(), handler)
    }
}

// Making a datagram server.
impl<H: DatagramHandler> Server<H> {
    /// Starts building a UDP server on `addr` (IPv4 or IPv6; `[::]` serves
    /// both), Python's `UDPServer`. Each datagram is handed, whole, to a
    /// clone of `handler`.
    ///
    /// # Errors
    /// [`Error::Resolve`] if `addr` names no socket address.
    pub fn bind_udp(addr: impl ToSocketAddrs, handler: H) -> Result<Builder<H>, Error> {
        Builder::udp(addr, handler)
    }

    /// Starts building a Unix-domain datagram server at `path`, Python's
    /// `UnixDatagramServer`. The socket file is removed when the server
    /// closes. Clients must bind their own socket to a path to get replies.
    pub fn bind_unix_datagram(path: impl AsRef<Path>, handler: H) -> Builder<H> {
        Builder::unix_datagram(path.as_ref().to_path_buf(), handler)
    }
}

impl<H> Server<H> {
    pub(crate) fn start(
        listener: Listener,
        local_addr: Address,
        shared: Arc<Shared>,
        service: Arc<dyn Service>,
        config: ServerConfig,
        hooks: LoopHooks,
    ) -> Result<Server<H>, Error> {
        let dispatcher =
            Dispatcher::start(config.model, config.limit, &shared, &service).map_err(Error::Io)?;
        let datagram_buffer = match listener.datagram_socket() {
            Some(_) => vec![0; config.max_datagram + 1],
            None => Vec::new(),
        };
        Ok(Server {
            listener: Some(listener),
            local_addr,
            shared,
            service,
            handler: PhantomData,
            dispatcher,
            datagram_buffer,
            config,
            hooks,
            pause: None,
            last_pause: None,
        })
    }
}

// Running it.
impl<H> Server<H> {
    /// Serves connections until a [`ShutdownHandle`] asks it to stop; then
    /// closes the listening socket, drains the live connections (each goes
    /// on until it ends or the drain timeout runs out; see
    /// [`WhenDraining`](crate::WhenDraining)) and returns what happened to
    /// them, as soon as the last one has ended.
    ///
    /// Errors of single connections never end it: they go to the
    /// `handle_error` hook. Accept errors are retried, with a pause that
    /// grows from 5 ms to 1 s when the system is out of descriptors or
    /// memory.
    ///
    /// # Errors
    /// [`Error::Closed`] if the server was already shut down;
    /// [`Error::ForkWithThreads`] for a process model in a process that has
    /// gained other threads since it was built;
    /// [`Error::Io`] if waiting for connections fails (never seen short of
    /// a broken system).
    pub fn serve_forever(&mut self) -> Result<DrainReport, Error> {
        if self.listener.is_none() {
            return Err(Error::Closed);
        }
        self.ensure_fork_safe()?;
        if let Dispatcher::Prefork(_) = self.dispatcher {
            return Ok(self.supervise());
        }
        // In the Sync model the loop is inside a handler most of the time
        // and cannot watch the stop descriptor: a thread does.
        let _watcher = match (&self.dispatcher, &self.config.stop_fd) {
            (Dispatcher::Sync, Some(fd)) => Some(StopWatcher::start(fd, self.shutdown_handle())),
            _ => None,
        };
        if let Dispatcher::Worker(_) = self.dispatcher {
            log::debug!("prefork worker {} accepting", std::process::id());
        } else {
            log::info!("serving on {} ({})", self.local_addr, self.config.model);
        }
        while !self.shared.shutdown_requested() {
            let wait = self
                .hooks
                .service_actions
                .as_ref()
                .map(|_| self.config.service_interval);
            if self.wait_for_connection(wait)? {
                for _ in 0..ACCEPT_BATCH {
                    if self.shared.shutdown_requested() || !self.accept_one() {
                        break;
                    }
                }
            }
            if let Some(action) = &mut self.hooks.service_actions {
                action();
            }
        }
        Ok(self.stop())
    }

    /// Waits for one connection and serves it (Python's `handle_request`):
    /// in this thread for [`Model::Sync`], handed to the model otherwise.
    ///
    /// Returns `true` once a connection was taken (served, handed off, or
    /// refused), `false` if the [`timeout`](Builder::timeout) passed first
    /// (the `handle_timeout` hook has then run) or a shutdown was asked for.
    ///
    /// # Errors
    /// As [`Server::serve_forever`].
    pub fn handle_request(&mut self) -> Result<bool, Error> {
        if self.listener.is_none() {
            return Err(Error::Closed);
        }
        if let Dispatcher::Prefork(_) = self.dispatcher {
            return Err(Error::Config(
                "a prefork server's workers accept; serve it with serve_forever".into(),
            ));
        }
        self.ensure_fork_safe()?;
        let deadline = self.config.request_timeout.map(|t| Instant::now() + t);
        loop {
            if self.shared.shutdown_requested() {
                return Ok(false);
            }
            let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if wait == Some(Duration::ZERO) {
                if let Some(on_timeout) = &mut self.hooks.handle_timeout {
                    on_timeout();
                }
                return Ok(false);
            }
            if self.wait_for_connection(wait)? && self.accept_one() {
                return Ok(true);
            }
        }
    }

    /// A handle that stops [`serve_forever`](Server::serve_forever) from
    /// any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Closes the server (Python's `server_close`): stops accepting, drains
    /// the live connections within the drain timeout, joins the model's
    /// threads, removes the socket file of a Unix server. Returns what
    /// happened to the connections.
    pub fn server_close(mut self) -> DrainReport {
        self.shared.request_shutdown();
        self.stop()
    }
}

// Looking at it.
impl<H> Server<H> {
    /// The address the server listens on, with the real port when it was
    /// bound to port 0 (Python's `server_address`).
    pub fn local_addr(&self) -> &Address {
        &self.local_addr
    }

    /// The server's counters, live.
    pub fn stats(&self) -> Stats {
        self.shared.stats.clone()
    }

    /// The concurrency model.
    pub fn model(&self) -> Model {
        self.config.model
    }
}

// The accept loop's steps.
impl<H> Server<H> {
    /// fork() in a process with other threads is the classic trap: whatever
    /// lock another thread holds at that instant stays held in the child.
    /// Checked at build time, and again here, since threads may have started
    /// in between.
    fn ensure_fork_safe(&self) -> Result<(), Error> {
        match self.dispatcher {
            Dispatcher::Forking(_) | Dispatcher::Prefork(_) => crate::fork::ensure_single_threaded(
                self.config.model.name(),
                self.config.fork_with_threads,
            ),
            _ => Ok(()),
        }
    }

    /// Waits until a connection may be accepted, the waker fires, or
    /// `timeout` passes. Returns true if the listener is readable.
    fn wait_for_connection(&mut self, timeout: Option<Duration>) -> Result<bool, Error> {
        if self.listener.is_none() {
            return Ok(false);
        }
        if let Some(pause) = self.pause.take() {
            // Out of descriptors or memory: wait before accepting again,
            // still waking at once for a shutdown.
            self.poll(false, Some(timeout.map_or(pause, |t| t.min(pause))))?;
            return Ok(false);
        }
        let listen = self.shared.may_accept() && self.dispatcher.may_accept();
        self.poll(listen, timeout)
    }

    pub(crate) fn poll(&mut self, listen: bool, timeout: Option<Duration>) -> Result<bool, Error> {
        let mut fds = vec![PollFd::new(self.shared.waker.fd(), PollFlags::POLLIN)];
        if let (true, Some(listener)) = (listen, &self.listener) {
            fds.push(PollFd::new(listener.fd(), PollFlags::POLLIN));
        }
        let listening = fds.len() == 2;
        if let Some(stop) = &self.config.stop_fd {
            fds.push(PollFd::new(stop.as_fd(), PollFlags::POLLIN));
        }
        let first_watched = fds.len();
        fds.extend(
            self.dispatcher
                .watched()
                .into_iter()
                .map(|fd| PollFd::new(fd, PollFlags::POLLIN)),
        );
        match poll(&mut fds, crate::waker::poll_timeout(timeout)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::Io(e.into())),
        }
        let ready = |fd: &PollFd<'_>| fd.any().unwrap_or(false);
        let woken = ready(&fds[0]);
        let readable = listening && ready(&fds[1]);
        let stop = self.config.stop_fd.is_some() && ready(&fds[first_watched - 1]);
        let model_ready = fds[first_watched..].iter().any(ready);
        drop(fds);
        if woken {
            self.shared.waker.reset();
        }
        if model_ready {
            self.dispatcher.collect(&self.shared);
        }
        if stop && !self.shared.shutdown_requested() {
            log::info!("stop requested (a signal?); draining");
            self.shared.request_shutdown();
        }
        Ok(readable)
    }

    /// Accepts one connection and hands it on. Returns false when there was
    /// none to accept (or accepting must pause).
    fn accept_one(&mut self) -> bool {
        if !self.shared.may_accept() || !self.dispatcher.may_accept() {
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

    /// Verifies, registers and dispatches an accepted connection.
    fn take(&mut self, socket: Socket, peer: Address) {
        self.shared.stats.accepted();
        if let Some(verify) = &mut self.hooks.verify_request {
            if !verify(&peer) {
                log::info!("{peer}: refused by verify_request");
                self.shared.stats.refused();
                self.dispatcher.refused();
                return;
            }
        }
        if let Err(e) = self.configure(&socket) {
            log::warn!("{peer}: cannot set socket options: {}", crate::describe(&e));
            self.shared.stats.refused();
            self.dispatcher.refused();
            return;
        }
        if let Dispatcher::Forking(forking) = &mut self.dispatcher {
            // The per-address count is the parent's, taken before the fork.
            let key = PeerKey::of(&peer).filter(|_| self.shared.limits_per_ip());
            if key.is_some_and(|key| !self.shared.take_peer(key)) {
                self.refuse(socket, peer, Refusal::PerIp);
                return;
            }
            // The child must not keep the listener (it would hold the port
            // after the server closes) nor the parent's waker.
            let mut close = self.shared.waker.raw_fds().to_vec();
            close.extend(self.listener.as_ref().map(Listener::raw_fd));
            close.extend(self.config.stop_fd.as_ref().map(AsRawFd::as_raw_fd));
            // The child's own drain flag, set when the parent tells it.
            let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let conn = Arc::new(Connection::new(socket, peer, Some(draining)));
            forking.fork_for(
                &self.shared,
                &self.service,
                Work::Conversation(conn),
                key,
                &close,
            );
            return;
        }
        if let Dispatcher::Worker(worker) = &mut self.dispatcher {
            // The workers' parent counts per address for all of them.
            if PeerKey::of(&peer).is_some_and(|key| !worker.admit(key)) {
                self.dispatcher.refused();
                self.refuse(socket, peer, Refusal::PerIp);
                return;
            }
        }
        let peer_for_refusal = peer.clone();
        match self.shared.register(socket, peer) {
            Ok((id, conn)) => {
                let job = Job {
                    id,
                    work: Work::Conversation(conn),
                };
                self.dispatcher.dispatch(&self.shared, &self.service, job);
            }
            Err((socket, why)) => self.refuse(socket, peer_for_refusal, why),
        }
    }

    /// Receives one datagram and hands it on, as `accept_one` does a
    /// connection. Returns false when none was waiting.
    fn receive_one(&mut self, socket: Arc<DatagramSocket>) -> bool {
        let (len, peer) = match socket.recv_from(&mut self.datagram_buffer) {
            Ok(received) => received,
            Err(e) => return self.accept_failed(e),
        };
        self.last_pause = None;
        self.shared.stats.accepted();
        if len > self.config.max_datagram {
            log::warn!(
                "{peer}: datagram longer than {} bytes dropped",
                self.config.max_datagram
            );
            self.shared.stats.dropped();
            return true;
        }
        if let Some(verify) = &mut self.hooks.verify_request {
            if !verify(&peer) {
                log::info!("{peer}: refused by verify_request");
                self.shared.stats.refused();
                return true;
            }
        }
        let packet = Packet {
            data: self.datagram_buffer[..len].to_vec(),
            peer,
            socket,
        };
        if let Dispatcher::Forking(forking) = &mut self.dispatcher {
            // The child replies through the server's socket: it keeps it.
            let mut close = self.shared.waker.raw_fds().to_vec();
            close.extend(self.config.stop_fd.as_ref().map(AsRawFd::as_raw_fd));
            forking.fork_for(
                &self.shared,
                &self.service,
                Work::Packet(packet),
                None,
                &close,
            );
            return true;
        }
        match self.shared.register_packet() {
            Some(id) => {
                let job = Job {
                    id,
                    work: Work::Packet(packet),
                };
                self.dispatcher.dispatch(&self.shared, &self.service, job);
            }
            None => {
                log::warn!(
                    "{}: datagram refused, {} in progress",
                    packet.peer,
                    self.shared.stats.snapshot().active
                );
                self.shared.stats.refused();
            }
        }
        true
    }

    fn configure(&self, socket: &Socket) -> io::Result<()> {
        if let Socket::Tcp(tcp) = socket {
            if self.config.nodelay {
                tcp.set_nodelay(true)?;
            }
        }
        let timeout = self.shared.limits().idle_timeout;
        if timeout.is_some() {
            socket.set_read_timeout(timeout)?;
            socket.set_write_timeout(timeout)?;
        }
        Ok(())
    }

    /// Refuses a connection before any handler runs: for the limit (under
    /// `WhenFull::Refuse`) or for its address. The handler's `refuse` (or
    /// the `on_refused` hook, for the limit) says why; then it is closed.
    fn refuse(&mut self, socket: Socket, peer: Address, why: Refusal) {
        self.shared.stats.refused();
        match why {
            Refusal::PerIp => log::warn!("{peer}: refused: {why}"),
            _ => log::warn!(
                "{peer}: refused ({why}), {} connections already",
                self.shared.stats.snapshot().active
            ),
        }
        if self.shared.tls().is_some() {
            // Words in plain text would be garbage to a TLS client, and a
            // handshake has no place on the accept loop: close at once.
            return;
        }
        let conn = Arc::new(Connection::new(socket, peer, None));
        let mut stream = Stream::from_connection(conn, self.shared.limits());
        match (&mut self.hooks.on_refused, why) {
            (Some(on_refused), Refusal::Full) => on_refused(&mut stream),
            _ => self.service.refuse(&mut stream, why),
        }
        let _ = stream.flush();
        stream.discard_output();
    }

    /// Closes the listener, drains, and stops the model.
    fn stop(&mut self) -> DrainReport {
        if self.listener.take().is_none() {
            return DrainReport::default();
        }
        let deadline = Instant::now() + self.shared.drain_timeout();
        let report = match &mut self.dispatcher {
            Dispatcher::Forking(forking) => forking.drain(&self.shared, deadline),
            _ => {
                self.shared.drain_until(deadline);
                self.shared.drain_report()
            }
        };
        if report.cut > 0 && !self.shared.wait_empty(CUT_GRACE) {
            log::warn!(
                "some handlers did not end after their connections were cut; leaving them behind"
            );
        }
        let left = self.dispatcher.stop(CUT_GRACE);
        if left > 0 {
            log::warn!("{left} handler threads still running after the drain; leaving them behind");
        }
        if let Dispatcher::Worker(_) = self.dispatcher {
            log::debug!("prefork worker {} stopped", std::process::id());
        } else {
            log::info!(
                "stopped serving on {}: {} connections drained, {} cut",
                self.local_addr,
                report.drained,
                report.cut
            );
        }
        report
    }
}

impl<H> Drop for Server<H> {
    fn drop(&mut self) {
        if self.listener.take().is_some() {
            self.shared.cut_all();
            self.dispatcher.detach(&self.shared);
        }
    }
}

impl<H> fmt::Debug for Server<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("model", &self.config.model)
            .field("open", &self.listener.is_some())
            .finish_non_exhaustive()
    }
}
