//! [`Builder`]: every setting of a server, with defaults that are safe.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::conversation::{AnyHandler, Runner, StreamPrototype};
use crate::datagram::DatagramPrototype;
use crate::defaults;
use crate::failure::Failure;
use crate::listener::{BindOptions, Listener};
use crate::model_loop::ModelLoop;
use crate::settings::{LoopHooks, LoopSettings};
use crate::shared::{ErrorHook, Shared, SharedConfig};
use crate::stream::StreamLimits;
use crate::{Address, DatagramHandler, Error, Model, RequestHandler, Stream};
use std::marker::PhantomData;

/// The smallest stack the event model accepts: less would overflow in
/// the first handler that formats a log line.
const MIN_STACK: usize = 32 * 1024;

mod tls;

/// What a server does with a new connection when the connection limit is
/// reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WhenFull {
    /// Stop accepting until a connection ends: new clients wait in the
    /// kernel's backlog (their `connect` succeeds, their first reply comes
    /// late). The default: nothing is lost under a burst.
    #[default]
    Wait,
    /// Accept, give the `on_refused` hook a chance to say why, and close.
    /// Clients learn at once that the server is busy.
    Refuse,
}

/// Where to serve. A name that did not resolve is kept as its error,
/// which [`Builder::build`] returns.
enum Target {
    Tcp(Result<Vec<SocketAddr>, Error>),
    Unix(PathBuf),
    Listener(Listener),
    Udp(Result<Vec<SocketAddr>, Error>),
    UnixDatagram(PathBuf),
}

/// A built server's parts, which [`Builder::build`] makes a `Server` of.
pub(crate) struct Started {
    pub(crate) local_addr: Address,
    pub(crate) model: Model,
    pub(crate) shared: Arc<Shared>,
    pub(crate) running: Box<dyn ModelLoop>,
}

/// Configures a [`Server`](crate::Server); made by [`Server::bind`](crate::Server::bind), [`Server::bind_unix`](crate::Server::bind_unix),
/// [`Server::from_listener`](crate::Server::from_listener), [`Server::bind_udp`](crate::Server::bind_udp) or
/// [`Server::bind_unix_datagram`](crate::Server::bind_unix_datagram), finished by [`Builder::build`].
///
/// Everything has a default; the limits are on by default, because a server
/// on the network should survive its clients:
///
/// | setting | default |
/// |---|---|
/// | [`model`](Builder::model) | [`Model::Threading`] |
/// | [`max_connections`](Builder::max_connections) | 1024, then [`WhenFull::Wait`] |
/// | [`max_per_ip`](Builder::max_per_ip) | none (see there why) |
/// | [`idle_timeout`](Builder::idle_timeout) | 300 s |
/// | [`message_timeout`](Builder::message_timeout) | the idle timeout |
/// | [`max_line_len`](Builder::max_line_len) | 64 KiB |
/// | [`max_frame_len`](Builder::max_frame_len) | 16 MiB |
/// | [`max_datagram_len`](Builder::max_datagram_len) | 65,507 bytes (longer ones are dropped and counted) |
/// | [`drain_timeout`](Builder::drain_timeout) | 10 s |
/// | [`nodelay`](Builder::nodelay) | on |
/// | [`reuse_address`](Builder::reuse_address) | on (TCP; never for UDP) |
/// | [`reuse_port`](Builder::reuse_port) | off |
/// | [`backlog`](Builder::backlog) | 4096 (capped by the kernel's `somaxconn`) |
/// | [`only_v6`](Builder::only_v6) | off: `[::]` serves IPv4 too |
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder<H> {
    target: Target,
    /// The handler, wrapped for the models (which know no handler types).
    handler: Arc<dyn AnyHandler>,
    handler_type: PhantomData<fn() -> H>,
    model: Model,
    max_datagram: usize,
    bind: BindOptions,
    max_connections: usize,
    max_per_ip: Option<usize>,
    when_full: WhenFull,
    limits: StreamLimits,
    /// `None`: follow the idle timeout.
    message_timeout: Option<Option<Duration>>,
    nodelay: bool,
    drain_timeout: Duration,
    request_timeout: Option<Duration>,
    service_interval: Duration,
    handle_error: Option<ErrorHook>,
    hooks: LoopHooks,
    stop_fd: Option<OwnedFd>,
    /// The caller vouched for its threads (`allow_fork_with_threads`).
    fork_with_threads: bool,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl<H: RequestHandler> Builder<H> {
    pub(crate) fn tcp(addr: impl ToSocketAddrs, handler: H) -> Self {
        let target = Target::Tcp(resolve(addr));
        Builder::new(target, Arc::new(StreamPrototype::new(handler)))
    }

    pub(crate) fn unix(path: PathBuf, handler: H) -> Self {
        Builder::new(Target::Unix(path), Arc::new(StreamPrototype::new(handler)))
    }

    pub(crate) fn listener(listener: Listener, handler: H) -> Self {
        let target = Target::Listener(listener);
        Builder::new(target, Arc::new(StreamPrototype::new(handler)))
    }
}

impl<H: DatagramHandler> Builder<H> {
    pub(crate) fn udp(addr: impl ToSocketAddrs, handler: H) -> Self {
        let target = Target::Udp(resolve(addr));
        Builder::new(target, Arc::new(DatagramPrototype::new(handler)))
    }

    pub(crate) fn unix_datagram(path: PathBuf, handler: H) -> Self {
        let target = Target::UnixDatagram(path);
        Builder::new(target, Arc::new(DatagramPrototype::new(handler)))
    }
}

fn resolve(addr: impl ToSocketAddrs) -> Result<Vec<SocketAddr>, Error> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|source| Error::Resolve {
            address: String::new(),
            source,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(Error::Resolve {
            address: String::new(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to bind"),
        });
    }
    Ok(addrs)
}

impl<H> Builder<H> {
    fn new(target: Target, handler: Arc<dyn AnyHandler>) -> Self {
        Builder {
            target,
            handler,
            handler_type: PhantomData,
            model: Model::Threading,
            max_datagram: defaults::MAX_DATAGRAM,
            bind: BindOptions::default(),
            max_connections: defaults::MAX_CONNECTIONS,
            max_per_ip: None,
            when_full: WhenFull::Wait,
            limits: StreamLimits {
                max_line: defaults::MAX_LINE,
                max_frame: defaults::MAX_FRAME,
                idle_timeout: Some(defaults::IDLE_TIMEOUT),
                message_timeout: Some(defaults::IDLE_TIMEOUT),
            },
            message_timeout: None,
            nodelay: true,
            drain_timeout: defaults::DRAIN_TIMEOUT,
            request_timeout: None,
            service_interval: defaults::SERVICE_INTERVAL,
            handle_error: None,
            hooks: LoopHooks::default(),
            stop_fd: None,
            fork_with_threads: false,
            tls: None,
        }
    }
}

// Concurrency.
impl<H> Builder<H> {
    /// Chooses the concurrency model.
    pub fn model(mut self, model: Model) -> Self {
        self.model = model;
        self
    }

    /// One connection at a time: [`Model::Sync`], Python's `TCPServer`.
    pub fn sync(self) -> Self {
        self.model(Model::Sync)
    }

    /// A thread per connection: [`Model::Threading`], Python's
    /// `ThreadingMixIn`. The default.
    pub fn threading(self) -> Self {
        self.model(Model::Threading)
    }

    /// `workers` threads, with as many more connections waiting in a queue:
    /// [`Model::Pool`].
    pub fn pool(self, workers: usize) -> Self {
        self.model(Model::Pool {
            workers,
            queue: workers,
        })
    }

    /// A process per connection, at most 40 at once: [`Model::Forking`],
    /// Python's `ForkingMixIn`.
    pub fn forking(self) -> Self {
        self.model(Model::Forking {
            max_children: defaults::MAX_CHILDREN,
        })
    }

    /// `workers` processes accepting on the shared socket, never recycled:
    /// [`Model::Prefork`].
    pub fn prefork(self, workers: usize) -> Self {
        self.model(Model::Prefork {
            workers,
            max_requests: None,
        })
    }

    /// `threads` event loops running each conversation on a coroutine:
    /// [`Model::Event`] with the default stack size ([`Model::event`]
    /// picks one loop per CPU).
    pub fn event(self, threads: usize) -> Self {
        self.model(Model::Event {
            threads,
            stack_size: crate::event::DEFAULT_STACK_SIZE,
        })
    }

    /// Lets a process model ([`Model::Forking`], [`Model::Prefork`]) fork
    /// from a process that has other threads. Without it, [`build`] and
    /// [`Server::serve_forever`](crate::Server::serve_forever) refuse with [`Error::ForkWithThreads`].
    ///
    /// # Safety
    ///
    /// `fork(2)` copies the process with one thread, the caller's; a lock
    /// that another thread holds at that instant stays held for ever in the
    /// child, and the child deadlocks (or reads half-updated state) as soon
    /// as it needs it. The caller promises that whenever the server forks
    /// (each connection under `Forking`; each worker's start and respawn
    /// under `Prefork`, for as long as the server serves), no other thread
    /// of the process holds, or is in the middle of taking, anything the
    /// child will use: Rust-level locks (`Mutex`, `RwLock`, `OnceLock`
    /// being initialized, the stderr and stdout locks, a logger's), the
    /// state of crates that are not fork-safe, and any lock the handler,
    /// its `Clone` and the server's hooks take. (glibc makes its own malloc
    /// and stdio locks fork-safe; other allocators may not be.) In
    /// practice: the other threads are idle in a system call that holds no
    /// lock (`read`, `poll`, `accept`, `join`) whenever the server forks,
    /// and the child's code touches nothing they share. The framework's own
    /// tests, run by libtest's threads, are such a caller; a server
    /// program should rather fork before it starts any thread, as `serve`
    /// does.
    ///
    /// [`build`]: Builder::build
    /// [`Server::serve_forever`]: crate::Server::serve_forever
    #[must_use = "a builder does nothing until `build` is called"]
    pub unsafe fn allow_fork_with_threads(mut self) -> Self {
        self.fork_with_threads = true;
        self
    }
}

// Limits.
impl<H> Builder<H> {
    /// Most connections served at once (queued ones included); then
    /// [`when_full`](Builder::when_full) decides. The pool model holds at
    /// most `workers + queue` whatever this says. The prefork model runs
    /// at most this many workers (each serves one connection at a time),
    /// and its clients beyond the limit always wait in the backlog: the
    /// workers accept only when free.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// Most conversations at once from one client: an IPv4 address, or an
    /// IPv6 /64 (one host commonly holds a whole /64); an IPv4-mapped IPv6
    /// address counts as its IPv4 address; Unix-domain peers are not
    /// limited. Checked when a connection is accepted, before any handler
    /// runs, in every model: across all threads, all forked children and
    /// all prefork workers (which ask the parent). A connection over the
    /// limit is refused at once, never kept waiting: the handler's
    /// [`refuse`](RequestHandler::refuse) tells the client why
    /// ([`Refusal::PerIp`](crate::Refusal::PerIp)), then it is closed and
    /// counted as refused.
    ///
    /// `None`, the default: the library cannot know whether its clients
    /// come through a proxy or a load balancer, which legitimately sends
    /// every connection from one address. A server facing the Internet
    /// directly should set it (`serve --handler ftp` uses 16), so that one
    /// host cannot take every slot of [`max_connections`](Builder::max_connections).
    pub fn max_per_ip(mut self, max: Option<usize>) -> Self {
        self.max_per_ip = max;
        self
    }

    /// What to do with connections beyond the limit.
    pub fn when_full(mut self, policy: WhenFull) -> Self {
        self.when_full = policy;
        self
    }

    /// How long a connection may be silent while its handler reads, or
    /// stalled while it writes, before the read or write fails with
    /// `TimedOut` and the connection is counted as timed out. `None` turns
    /// the timeout off (not recommended on a network).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.limits.idle_timeout = timeout;
        self
    }

    /// How long a line or a frame may take to arrive whole, counted from
    /// the first receive after its first bytes: past it
    /// the line readers ([`Stream::next_line`] and the others) and
    /// [`Stream::read_frame`] fail with `TimedOut` and the connection is
    /// counted as timed out. The idle timeout restarts on every byte, so
    /// without this a client sending one byte per idle period would hold
    /// its connection for ever. `None` turns it off. Default: the idle
    /// timeout. Costs nothing when a message arrives in one receive.
    pub fn message_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.message_timeout = Some(timeout);
        self
    }

    /// Longest line, newline included, that [`Stream`]'s line readers
    /// accept ([`Stream::max_line_len`]).
    pub fn max_line_len(mut self, max: usize) -> Self {
        self.limits.max_line = max;
        self
    }

    /// Largest datagram a datagram server accepts; a longer one is dropped
    /// (never cut short) and counted in
    /// [`Counters::dropped`](crate::Counters::dropped).
    pub fn max_datagram_len(mut self, max: usize) -> Self {
        self.max_datagram = max;
        self
    }

    /// Largest payload that [`Stream::read_frame`] accepts.
    pub fn max_frame_len(mut self, max: usize) -> Self {
        self.limits.max_frame = max;
        self
    }

    /// How long a shutdown lets the live conversations go on before
    /// cutting them; the server stops as soon as the last one ends, and a
    /// handler may end its own sooner (see [`WhenDraining`]). Zero cuts
    /// them at once.
    ///
    /// [`WhenDraining`]: crate::WhenDraining
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// How long [`Server::handle_request`](crate::Server::handle_request) waits for a connection before
    /// calling the `handle_timeout` hook (Python's `timeout` attribute).
    /// `None`, the default, waits for ever.
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.request_timeout = timeout;
        self
    }
}

// Socket options.
impl<H> Builder<H> {
    /// Disables Nagle's algorithm on accepted TCP connections (default on).
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.nodelay = nodelay;
        self
    }

    /// Sets `SO_REUSEADDR` before binding, so that a restarted server can
    /// bind while old connections linger in `TIME_WAIT` (default on).
    ///
    /// TCP only: a UDP server never sets it, whatever this says, because
    /// on a datagram socket it would let another local socket that sets it
    /// bind the same port and receive the server's datagrams.
    pub fn reuse_address(mut self, reuse: bool) -> Self {
        self.bind.reuse_address = reuse;
        self
    }

    /// Sets `SO_REUSEPORT` before binding, so that several servers can
    /// share one port and the kernel balances connections (default off).
    pub fn reuse_port(mut self, reuse: bool) -> Self {
        self.bind.reuse_port = reuse;
        self
    }

    /// The listen backlog: connections the kernel completes and holds
    /// before they are accepted (Python's `request_queue_size`, which
    /// defaults to 5; here 4096, capped by `net.core.somaxconn`).
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.bind.backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
        self
    }

    /// On an IPv6 address, serve IPv6 only (`true`) or IPv4 too (`false`,
    /// the default, so that `[::]` is a dual-stack server).
    pub fn only_v6(mut self, only: bool) -> Self {
        self.bind.only_v6 = only;
        self
    }
}

// Hooks.
impl<H> Builder<H> {
    /// Decides, before any handler runs, whether to serve a peer (Python's
    /// `verify_request`). A refused connection is closed and counted; the
    /// server goes on. Runs in the serving thread: keep it quick.
    pub fn verify_request(mut self, verify: impl FnMut(&Address) -> bool + Send + 'static) -> Self {
        self.hooks.verify_request = Some(Box::new(verify));
        self
    }

    /// Reports a failed connection (Python's `handle_error`): an error
    /// returned by `setup`, `handle` or `finish`, or a panic in them. The
    /// default, [`Failure::log`], logs one line with the
    /// peer's address. Runs in the connection's thread.
    pub fn handle_error(
        mut self,
        report: impl Fn(&Address, &Failure) + Send + Sync + 'static,
    ) -> Self {
        self.handle_error = Some(Arc::new(report));
        self
    }

    /// Says why to a connection refused for the limit, under
    /// [`WhenFull::Refuse`]: write a message to the stream; it is flushed
    /// and closed after. Runs in the serving thread, on a fresh socket
    /// whose send buffer is empty, so a short message never blocks. Set,
    /// it replaces the handler's [`refuse`](RequestHandler::refuse) for
    /// [`Refusal::Full`](crate::Refusal::Full).
    pub fn on_refused(mut self, refuse: impl FnMut(&mut Stream) + Send + 'static) -> Self {
        self.hooks.on_refused = Some(Box::new(refuse));
        self
    }

    /// Runs once per turn of the accept loop, and at least every
    /// [`service_interval`](Builder::service_interval) while no connection
    /// arrives (Python's `service_actions`).
    pub fn service_actions(mut self, action: impl FnMut() + Send + 'static) -> Self {
        self.hooks.service_actions = Some(Box::new(action));
        self
    }

    /// The longest the accept loop waits before calling `service_actions`
    /// again (Python's `poll_interval`; the loop never polls otherwise).
    pub fn service_interval(mut self, interval: Duration) -> Self {
        self.service_interval = interval;
        self
    }

    /// Shuts the server down (gracefully, as
    /// [`ShutdownHandle::shutdown`](crate::ShutdownHandle::shutdown)) when
    /// `fd` becomes readable or is closed: typically one end of a socket
    /// pair whose other end a signal handler writes to
    /// (`signal_hook::low_level::pipe::register`). Unlike a thread that
    /// waits for signals, this keeps the process single-threaded, which
    /// the forking models want.
    pub fn stop_when_readable(mut self, fd: impl Into<OwnedFd>) -> Self {
        self.stop_fd = Some(fd.into());
        self
    }

    /// Runs when [`Server::handle_request`](crate::Server::handle_request) waited its
    /// [`timeout`](Builder::timeout) and no connection came (Python's
    /// `handle_timeout`).
    pub fn handle_timeout(mut self, on_timeout: impl FnMut() + Send + 'static) -> Self {
        self.hooks.handle_timeout = Some(Box::new(on_timeout));
        self
    }
}

impl<H> Builder<H> {
    /// Checks the settings, binds the listening socket and starts the
    /// model: what [`Builder::build`] makes a `Server` of.
    pub(crate) fn start(mut self) -> Result<Started, Error> {
        self.check()?;
        self.limits.message_timeout = self.message_timeout.unwrap_or(self.limits.idle_timeout);
        self.cap_prefork_workers();
        if self.model.forks() {
            let model = match self.model {
                Model::Forking { .. } => "forking",
                _ => "prefork",
            };
            crate::fork::ensure_single_threaded(model, self.fork_with_threads)?;
        }
        let listener = match self.target {
            Target::Tcp(addrs) => bind_first(&addrs?, &self.bind, Listener::bind_tcp)?,
            Target::Udp(addrs) => bind_first(&addrs?, &self.bind, Listener::bind_udp)?,
            Target::UnixDatagram(path) => {
                Listener::bind_unix_datagram(&path).map_err(|source| Error::Bind {
                    address: format!("unix:{}", path.display()),
                    source,
                })?
            }
            Target::Unix(path) => {
                Listener::bind_unix(&path, &self.bind).map_err(|source| Error::Bind {
                    address: format!("unix:{}", path.display()),
                    source,
                })?
            }
            Target::Listener(listener) => {
                listener.prepare().map_err(Error::Io)?;
                listener
            }
        };
        let local_addr = listener.local_addr().map_err(Error::Io)?;
        let limit = self.max_connections.min(self.model.capacity());
        let shared = Shared::new(SharedConfig {
            limit,
            wait_when_full: self.when_full == WhenFull::Wait,
            limits: self.limits,
            drain_timeout: self.drain_timeout,
            needs_watchdog: self.model == Model::Sync,
            handle_error: self
                .handle_error
                .unwrap_or_else(|| Arc::new(|peer: &Address, failure: &Failure| failure.log(peer))),
            max_per_ip: self.max_per_ip,
            tls: self.tls,
        })
        .map_err(Error::Io)?;
        let shared = Arc::new(shared);
        let settings = LoopSettings {
            max_datagram: self.max_datagram,
            nodelay: self.nodelay,
            request_timeout: self.request_timeout,
            service_interval: self.service_interval,
            stop_fd: self.stop_fd,
        };
        let running = crate::model::start(
            self.model,
            limit,
            self.fork_with_threads,
            listener,
            Runner::new(Arc::clone(&shared), self.handler),
            settings,
            self.hooks,
        )
        .map_err(Error::Io)?;
        Ok(Started {
            local_addr,
            model: self.model,
            shared,
            running,
        })
    }

    /// A prefork worker serves one conversation at a time, so the number
    /// of workers is the number of conversations: more workers than
    /// `max_connections` would break the limit. They are capped, and
    /// clients beyond the limit wait in the backlog until a worker is free.
    fn cap_prefork_workers(&mut self) {
        if let Model::Prefork {
            workers,
            max_requests,
        } = self.model
        {
            if workers > self.max_connections {
                log::info!(
                    "prefork: {} workers instead of {workers}, the connection limit",
                    self.max_connections
                );
                self.model = Model::Prefork {
                    workers: self.max_connections,
                    max_requests,
                };
            }
        }
    }

    fn check(&self) -> Result<(), Error> {
        let zero = Duration::ZERO;
        match self.model {
            Model::Pool { workers: 0, .. } => {
                return Err(Error::Config("a pool needs at least one worker".into()))
            }
            Model::Forking { max_children: 0 } => {
                return Err(Error::Config(
                    "forking needs max_children of at least 1".into(),
                ))
            }
            Model::Prefork { workers: 0, .. } => {
                return Err(Error::Config("prefork needs at least one worker".into()))
            }
            Model::Prefork {
                max_requests: Some(0),
                ..
            } => {
                return Err(Error::Config(
                    "max_requests of 0 would recycle workers before they serve".into(),
                ))
            }
            Model::Event { threads: 0, .. } => {
                return Err(Error::Config(
                    "the event model needs at least one loop thread".into(),
                ))
            }
            Model::Event { stack_size, .. } if stack_size < MIN_STACK => {
                return Err(Error::Config(format!(
                    "an event model stack of {stack_size} bytes is too small; at least {MIN_STACK}"
                )))
            }
            _ => {}
        }
        let datagrams = matches!(self.target, Target::Udp(_) | Target::UnixDatagram(_));
        if datagrams && self.tls.is_some() {
            return Err(Error::Config(
                "TLS serves stream sockets only (DTLS is not supported)".into(),
            ));
        }
        if datagrams && matches!(self.model, Model::Prefork { .. } | Model::Event { .. }) {
            return Err(Error::Config(format!(
                "{} serves stream sockets only; use another model for datagrams",
                self.model
            )));
        }
        if self.max_datagram == 0 {
            return Err(Error::Config("max_datagram_len must be at least 1".into()));
        }
        if self.max_per_ip == Some(0) {
            return Err(Error::Config(
                "max_per_ip of 0 would refuse everyone; use None to turn it off".into(),
            ));
        }
        if self.max_connections == 0 {
            return Err(Error::Config("max_connections must be at least 1".into()));
        }
        if self.limits.idle_timeout == Some(zero) {
            return Err(Error::Config(
                "a zero idle timeout; use None to turn it off".into(),
            ));
        }
        if self.message_timeout == Some(Some(zero)) {
            return Err(Error::Config(
                "a zero message timeout; use None to turn it off".into(),
            ));
        }
        if self.request_timeout == Some(zero) {
            return Err(Error::Config(
                "a zero request timeout; use None to wait for ever".into(),
            ));
        }
        if self.service_interval == zero {
            return Err(Error::Config("a zero service interval would spin".into()));
        }
        Ok(())
    }
}

fn bind_first(
    addrs: &[SocketAddr],
    options: &BindOptions,
    bind: fn(SocketAddr, &BindOptions) -> std::io::Result<Listener>,
) -> Result<Listener, Error> {
    let mut last = None;
    for addr in addrs {
        match bind(*addr, options) {
            Ok(listener) => return Ok(listener),
            Err(source) => last = Some((addr, source)),
        }
    }
    let (addr, source) = last.expect("at least one address, checked when resolving");
    Err(Error::Bind {
        address: addr.to_string(),
        source,
    })
}

impl<H> fmt::Debug for Builder<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("model", &self.model)
            .field("max_connections", &self.max_connections)
            .field("max_per_ip", &self.max_per_ip)
            .field("when_full", &self.when_full)
            .field("idle_timeout", &self.limits.idle_timeout)
            .field("message_timeout", &self.message_timeout)
            .field("drain_timeout", &self.drain_timeout)
            .finish_non_exhaustive()
    }
}
