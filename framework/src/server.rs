//! [`Server`]: the listening socket, the accept loop and the life cycle of
//! the server itself.

use std::fmt;
use std::io;
use std::net::ToSocketAddrs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::lifecycle::Job;
use crate::listener::Listener;
use crate::model::Dispatcher;
use crate::shared::Shared;
use crate::socket::{Connection, Socket};
use crate::{
    Address, Builder, DrainReport, Error, Model, RequestHandler, ShutdownHandle, Stats, Stream,
};

/// After a drain, how long to wait for handler threads to notice that
/// their sockets were cut before leaving them behind.
const CUT_GRACE: Duration = Duration::from_secs(1);
/// Most connections accepted in one turn of the loop, so that the loop
/// still checks for shutdown and runs `service_actions` under a flood.
const ACCEPT_BATCH: usize = 64;
/// The first and the longest pause after an accept error that retrying at
/// once cannot mend (out of descriptors, of memory).
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

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
    pub(crate) nodelay: bool,
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) service_interval: Duration,
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
///         while let Some(line) = stream.read_line()? {
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
pub struct Server<H: RequestHandler> {
    listener: Option<Listener>,
    local_addr: Address,
    shared: Arc<Shared>,
    handler: H,
    dispatcher: Dispatcher,
    config: ServerConfig,
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

    pub(crate) fn start(
        listener: Listener,
        local_addr: Address,
        shared: Arc<Shared>,
        handler: H,
        config: ServerConfig,
        hooks: LoopHooks,
    ) -> Result<Server<H>, Error> {
        let dispatcher = Dispatcher::start(config.model, &shared, &handler).map_err(Error::Io)?;
        Ok(Server {
            listener: Some(listener),
            local_addr,
            shared,
            handler,
            dispatcher,
            config,
            hooks,
            pause: None,
            last_pause: None,
        })
    }
}

// Running it.
impl<H: RequestHandler> Server<H> {
    /// Serves connections until a [`ShutdownHandle`] asks it to stop; then
    /// closes the listening socket, drains the live connections (idle ones
    /// end at once, busy ones get the drain timeout) and returns what
    /// happened to them.
    ///
    /// Errors of single connections never end it: they go to the
    /// `handle_error` hook. Accept errors are retried, with a pause that
    /// grows from 5 ms to 1 s when the system is out of descriptors or
    /// memory.
    ///
    /// # Errors
    /// [`Error::Closed`] if the server was already shut down;
    /// [`Error::Io`] if waiting for connections fails (never seen short of
    /// a broken system).
    pub fn serve_forever(&mut self) -> Result<DrainReport, Error> {
        if self.listener.is_none() {
            return Err(Error::Closed);
        }
        log::info!("serving on {} ({})", self.local_addr, self.config.model);
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
impl<H: RequestHandler> Server<H> {
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
impl<H: RequestHandler> Server<H> {
    /// Waits until a connection may be accepted, the waker fires, or
    /// `timeout` passes. Returns true if the listener is readable.
    fn wait_for_connection(&mut self, timeout: Option<Duration>) -> Result<bool, Error> {
        let Some(listener) = &self.listener else {
            return Ok(false);
        };
        if let Some(pause) = self.pause.take() {
            // Out of descriptors or memory: wait before accepting again,
            // still waking at once for a shutdown.
            self.poll(None, Some(timeout.map_or(pause, |t| t.min(pause))))?;
            return Ok(false);
        }
        let listen = self.shared.may_accept().then(|| listener.fd());
        let readable = self.poll(listen, timeout)?;
        Ok(readable)
    }

    fn poll(
        &self,
        listener: Option<std::os::fd::BorrowedFd<'_>>,
        timeout: Option<Duration>,
    ) -> Result<bool, Error> {
        let mut fds = vec![PollFd::new(self.shared.waker.fd(), PollFlags::POLLIN)];
        if let Some(fd) = listener {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        let timeout = match timeout {
            // Rounded up, so that a wait of 0.4 ms does not spin.
            Some(t) => {
                let ms = t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            }
            None => PollTimeout::NONE,
        };
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::Io(e.into())),
        }
        if fds[0].any().unwrap_or(false) {
            self.shared.waker.reset();
        }
        Ok(fds.get(1).and_then(PollFd::any).unwrap_or(false))
    }

    /// Accepts one connection and hands it on. Returns false when there was
    /// none to accept (or accepting must pause).
    fn accept_one(&mut self) -> bool {
        if !self.shared.may_accept() {
            return false;
        }
        let Some(listener) = &self.listener else {
            return false;
        };
        match listener.accept() {
            Ok((socket, peer)) => {
                self.last_pause = None;
                self.take(socket, peer);
                true
            }
            Err(e) => self.accept_failed(e),
        }
    }

    /// Classifies an accept error; returns true if accepting again at once
    /// makes sense.
    fn accept_failed(&mut self, e: io::Error) -> bool {
        let errno = e.raw_os_error().map(Errno::from_raw);
        match (e.kind(), errno) {
            (io::ErrorKind::WouldBlock, _) => false,
            // A client that gave up between the kernel's handshake and our
            // accept, or a signal: nothing is wrong with us.
            (io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted, _) => true,
            (
                _,
                Some(
                    Errno::EPROTO
                    | Errno::ENETDOWN
                    | Errno::ENOPROTOOPT
                    | Errno::EHOSTDOWN
                    | Errno::ENONET
                    | Errno::EHOSTUNREACH
                    | Errno::EOPNOTSUPP
                    | Errno::ENETUNREACH,
                ),
            ) => {
                // Linux passes pending network errors of the new socket to
                // accept; they concern that client only.
                log::debug!("accept: {}", crate::describe(&e));
                true
            }
            _ => {
                self.shared.stats.accept_error();
                let pause = self.next_backoff();
                let resources = matches!(
                    errno,
                    Some(Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM)
                );
                let what = if resources {
                    "out of resources"
                } else {
                    "unexpected error"
                };
                log::error!(
                    "accept failed ({what}): {}; pausing {} ms before accepting again",
                    crate::describe(&e),
                    pause.as_millis()
                );
                false
            }
        }
    }

    fn next_backoff(&mut self) -> Duration {
        let pause = self
            .last_pause
            .map_or(FIRST_BACKOFF, |last| (last * 2).min(MAX_BACKOFF));
        self.last_pause = Some(pause);
        self.pause = Some(pause);
        pause
    }

    /// Verifies, registers and dispatches an accepted connection.
    fn take(&mut self, socket: Socket, peer: Address) {
        self.shared.stats.accepted();
        if let Some(verify) = &mut self.hooks.verify_request {
            if !verify(&peer) {
                log::info!("{peer}: refused by verify_request");
                self.shared.stats.refused();
                return;
            }
        }
        if let Err(e) = self.configure(&socket) {
            log::warn!("{peer}: cannot set socket options: {}", crate::describe(&e));
            self.shared.stats.refused();
            return;
        }
        match self.shared.register(socket, peer) {
            Ok((id, conn)) => {
                let job = Job { id, conn };
                self.dispatcher.dispatch(&self.shared, &self.handler, job);
            }
            Err(socket) => self.refuse(socket),
        }
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

    /// Refuses a connection for the limit (under `WhenFull::Refuse`).
    fn refuse(&mut self, socket: Socket) {
        self.shared.stats.refused();
        let Ok(peer) = socket.peer_addr() else {
            return;
        };
        log::warn!(
            "{peer}: refused, {} connections already",
            self.shared.stats.snapshot().active
        );
        if let Some(on_refused) = &mut self.hooks.on_refused {
            let conn = Arc::new(Connection::new(socket, peer, None));
            let mut stream = Stream::from_connection(conn, self.shared.limits());
            on_refused(&mut stream);
            let _ = stream.flush();
            stream.discard_output();
        }
    }

    /// Closes the listener, drains, and stops the model.
    fn stop(&mut self) -> DrainReport {
        if self.listener.take().is_none() {
            return DrainReport::default();
        }
        let deadline = Instant::now() + self.shared.drain_timeout();
        self.shared.drain_until(deadline);
        let report = self.shared.drain_report();
        if report.cut > 0 && !self.shared.wait_empty(CUT_GRACE) {
            log::warn!(
                "some handlers did not end after their connections were cut; leaving them behind"
            );
        }
        let left = self.dispatcher.stop(CUT_GRACE);
        if left > 0 {
            log::warn!("{left} handler threads still running after the drain; leaving them behind");
        }
        log::info!(
            "stopped serving on {}: {} connections drained, {} cut",
            self.local_addr,
            report.drained,
            report.cut
        );
        report
    }
}

impl<H: RequestHandler> Drop for Server<H> {
    fn drop(&mut self) {
        if self.listener.take().is_some() {
            self.shared.cut_all();
            self.dispatcher.detach();
        }
    }
}

impl<H: RequestHandler> fmt::Debug for Server<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("model", &self.config.model)
            .field("open", &self.listener.is_some())
            .finish_non_exhaustive()
    }
}
