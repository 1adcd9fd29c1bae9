//! [`Server`]: the life cycle a user sees. Making a server (`bind` and its
//! kin, then [`Builder::build`]), running it (`serve_forever`,
//! `handle_request`, a [`ShutdownHandle`], `server_close`) and looking at
//! it. What runs in between is the model's: an accept loop
//! ([`accept_loop`](crate::accept_loop)) handing requests to the model, or
//! prefork's supervisor ([`model`](crate::model)).

use std::fmt;
use std::net::ToSocketAddrs;
use std::path::Path;
use std::sync::Arc;

use crate::builder::Started;
use crate::listener::Listener;
use crate::model_loop::ModelLoop;
use crate::shared::Shared;
use crate::{
    Address, Builder, DatagramHandler, DrainReport, Error, Model, RequestHandler, ShutdownHandle,
    Stats,
};

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
/// let mut server = Server::bind("127.0.0.1:9999", Upper).threading().build()?;
/// let stop = server.shutdown_handle(); // Send + Clone: stop it from anywhere
/// server.serve_forever()?;
/// # Ok::<(), socketserver::Error>(())
/// ```
///
/// The methods come in three groups, as in Python's `socketserver`: making
/// a server ([`bind`](Server::bind), [`bind_unix`](Server::bind_unix),
/// [`from_listener`](Server::from_listener), then the [`Builder`] and its
/// [`build`](Builder::build)); running it
/// ([`serve_forever`](Server::serve_forever),
/// [`handle_request`](Server::handle_request),
/// [`shutdown_handle`](Server::shutdown_handle),
/// [`server_close`](Server::server_close)); and looking at it
/// ([`local_addr`](Server::local_addr), [`stats`](Server::stats)). The
/// hooks a Python subclass would override are closures given to the
/// [`Builder`]; a handler reaches its server with
/// [`Stream::server`](crate::Stream::server).
///
/// Dropping a server closes its socket (and removes the file of a Unix
/// socket it bound) and cuts its live connections without waiting; call
/// [`server_close`](Server::server_close) to drain them first.
pub struct Server {
    local_addr: Address,
    model: Model,
    shared: Arc<Shared>,
    /// The model at work: an accept loop, or prefork's supervisor.
    running: Box<dyn ModelLoop>,
}

// Making a server.
impl Server {
    /// Starts building a TCP server on `addr`: `"127.0.0.1:9999"`,
    /// `"[::]:21"` (IPv6 and IPv4), `("localhost", 0)` (any free port).
    /// The name is resolved now; an error in it, and the socket's binding,
    /// come from [`Builder::build`] ([`Error::Resolve`], [`Error::Bind`]).
    pub fn bind<H: RequestHandler>(addr: impl ToSocketAddrs, handler: H) -> Builder<H> {
        Builder::tcp(addr, handler)
    }

    /// Starts building a Unix-domain stream server at `path`. The socket
    /// file is removed when the server closes; a stale file left by a
    /// server that died is replaced, a live one is an error.
    pub fn bind_unix<H: RequestHandler>(path: impl AsRef<Path>, handler: H) -> Builder<H> {
        Builder::unix(path.as_ref().to_path_buf(), handler)
    }

    /// Starts building a server on a socket that is already bound and
    /// listening, such as one passed by systemd socket activation.
    pub fn from_listener<H: RequestHandler>(
        listener: impl Into<Listener>,
        handler: H,
    ) -> Builder<H> {
        Builder::listener(listener.into(), handler)
    }

    /// Starts building a UDP server on `addr` (IPv4 or IPv6; `[::]` serves
    /// both), Python's `UDPServer`. Each datagram is handed, whole, to a
    /// clone of `handler`. As with [`bind`](Server::bind), an error in the
    /// address comes from [`Builder::build`].
    pub fn bind_udp<H: DatagramHandler>(addr: impl ToSocketAddrs, handler: H) -> Builder<H> {
        Builder::udp(addr, handler)
    }

    /// Starts building a Unix-domain datagram server at `path`, Python's
    /// `UnixDatagramServer`. The socket file is removed when the server
    /// closes. Clients must bind their own socket to a path to get replies.
    pub fn bind_unix_datagram<H: DatagramHandler>(
        path: impl AsRef<Path>,
        handler: H,
    ) -> Builder<H> {
        Builder::unix_datagram(path.as_ref().to_path_buf(), handler)
    }
}

impl<H> Builder<H> {
    /// Resolves the address, binds the listening socket and starts the
    /// model's threads: the server is ready to serve.
    ///
    /// # Errors
    /// [`Error::Config`] for a setting out of range (no pool workers, a
    /// zero limit or timeout); [`Error::Resolve`] if the address given to
    /// [`Server::bind`] or [`Server::bind_udp`] names no socket address;
    /// [`Error::Bind`] when the socket cannot be bound (the address is in
    /// use, the port is privileged, the folder of a Unix socket is
    /// missing); [`Error::ForkWithThreads`] for a process model
    /// ([`Model::Forking`], [`Model::Prefork`]) in a process that has
    /// other threads (see
    /// [`allow_fork_with_threads`](Builder::allow_fork_with_threads)).
    pub fn build(self) -> Result<Server, Error> {
        let Started {
            local_addr,
            model,
            shared,
            running,
        } = self.start()?;
        Ok(Server {
            local_addr,
            model,
            shared,
            running,
        })
    }
}

// Running it.
impl Server {
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
        // fork() in a process with other threads is the classic trap:
        // whatever lock another thread holds at that instant stays held in
        // the child. Checked at build time, and again here, since threads
        // may have started in between.
        self.running.ready()?;
        log::info!("serving on {} ({})", self.local_addr, self.model);
        let report = self.running.serve_forever()?;
        self.log_stopped(&report);
        Ok(report)
    }

    /// Waits for one connection and serves it (Python's `handle_request`):
    /// in this thread for [`Model::Sync`], handed to the model otherwise.
    ///
    /// Returns `true` once a connection was taken (served, handed off, or
    /// refused), `false` if the [`timeout`](Builder::timeout) passed first
    /// (the `handle_timeout` hook has then run) or a shutdown was asked for.
    ///
    /// # Errors
    /// As [`Server::serve_forever`]; and [`Error::Config`] for a
    /// [`Model::Prefork`] server, whose workers accept.
    pub fn handle_request(&mut self) -> Result<bool, Error> {
        self.running.handle_request()
    }

    /// A handle that stops [`serve_forever`](Server::serve_forever) from
    /// any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shared.handle()
    }

    /// Closes the server (Python's `server_close`): stops accepting, drains
    /// the live connections within the drain timeout, joins the model's
    /// threads, removes the socket file of a Unix server. Returns what
    /// happened to the connections.
    pub fn server_close(mut self) -> DrainReport {
        let report = self.running.close();
        if let Some(report) = &report {
            self.log_stopped(report);
        }
        report.unwrap_or_default()
    }

    fn log_stopped(&self, report: &DrainReport) {
        log::info!(
            "stopped serving on {}: {} connections drained, {} cut",
            self.local_addr,
            report.drained,
            report.cut
        );
    }
}

// Looking at it.
impl Server {
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
        self.model
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("model", &self.model)
            .field("open", &self.running.is_open())
            .finish_non_exhaustive()
    }
}
