//! [`ShutdownHandle`]: the way to a running server from anywhere, its own
//! handlers included.

use std::sync::Arc;

use crate::Stats;

/// Stops a running server, and reads its counters, from any thread: a
/// signal handler's, another part of the program, or the server's own
/// handlers, which reach it with [`Stream::server`](crate::Stream::server)
/// (or [`Datagram::server`](crate::Datagram::server)), as a Python handler
/// reaches `self.server`.
///
/// [`shutdown`](ShutdownHandle::shutdown) never blocks (so a handler may
/// call it without deadlock, unlike Python's `shutdown()`): `serve_forever`
/// wakes at once, closes the listening socket, lets the live conversations
/// go on until they end or the drain timeout runs out (ending at once the
/// waiting reads of those that asked for it with
/// [`WhenDraining::EndWaitingRead`](crate::WhenDraining::EndWaitingRead)),
/// and returns as soon as the last one has ended.
///
/// ```
/// # use socketserver::{RequestHandler, Server, Stream};
/// # #[derive(Clone)] struct Quiet;
/// # impl RequestHandler for Quiet { fn handle(&mut self, _: &mut Stream) -> std::io::Result<()> { Ok(()) } }
/// let mut server = Server::bind("127.0.0.1:0", Quiet).build()?;
/// let stop = server.shutdown_handle();
/// std::thread::spawn(move || stop.shutdown());
/// let report = server.serve_forever()?; // returns once stopped
/// assert_eq!(report.cut, 0);
/// # Ok::<(), socketserver::Error>(())
/// ```
///
/// # In the process models
///
/// A handler of a [`Forking`](crate::Model::Forking) child or a
/// [`Prefork`](crate::Model::Prefork) worker runs in another process than
/// the server. Its handle asks the parent, over the pipe each child has to
/// it, and the parent shuts the whole server down as if its own handle had
/// been used: every conversation drains, the asking one included.
/// [`is_shutdown`](ShutdownHandle::is_shutdown) there is true once this
/// process asked, or once the parent told it that the server drains. The
/// parent's counters live in the parent: [`stats`](ShutdownHandle::stats)
/// there gives this process's copy, which in a forked child holds the
/// counts as they were when the child was forked and in a prefork worker
/// counts that worker's own connections.
#[derive(Clone)]
pub struct ShutdownHandle {
    control: Arc<dyn Control>,
}

/// What a [`ShutdownHandle`] acts on: the server's state in this process,
/// or, in a forked child, the way to its parent.
pub(crate) trait Control: Send + Sync {
    /// Starts a shutdown; never blocks.
    fn shutdown(self: Arc<Self>);
    fn is_shutdown(&self) -> bool;
    fn stats(&self) -> Stats;
}

impl ShutdownHandle {
    pub(crate) fn new(control: Arc<dyn Control>) -> ShutdownHandle {
        ShutdownHandle { control }
    }

    /// Asks the server to stop; returns at once. Calling it again, or after
    /// the server has stopped, does nothing.
    pub fn shutdown(&self) {
        Arc::clone(&self.control).shutdown();
    }

    /// True once a shutdown has been asked for.
    pub fn is_shutdown(&self) -> bool {
        self.control.is_shutdown()
    }

    /// The server's counters, live (in a process model's child, see
    /// [above](ShutdownHandle#in-the-process-models)).
    pub fn stats(&self) -> Stats {
        self.control.stats()
    }
}

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("shutdown", &self.is_shutdown())
            .finish()
    }
}
