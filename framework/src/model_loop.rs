//! [`ModelLoop`]: a concurrency model at work, as the
//! [`Server`](crate::Server) drives it. An accept loop handing requests to
//! the model ([`AcceptLoop`](crate::accept_loop::AcceptLoop)), or a model
//! that owns its accepts (prefork's supervisor, whose workers each run an
//! accept loop of their own).

use crate::{DrainReport, Error};

/// A model at work: what `serve_forever`, `handle_request` and
/// `server_close` drive. Dropping it stops at once, waiting for nothing:
/// live connections are cut, child processes killed and reaped.
pub(crate) trait ModelLoop: Send {
    /// True until closed.
    fn is_open(&self) -> bool;

    /// Whether serving may start: [`Error::Closed`] once closed, and
    /// [`Error::ForkWithThreads`] for a process model in a process that
    /// has gained threads.
    fn ready(&self) -> Result<(), Error>;

    /// Serves until a shutdown is asked for, then closes and drains.
    fn serve_forever(&mut self) -> Result<DrainReport, Error>;

    /// Waits for one request and serves it or hands it off (Python's
    /// `handle_request`); see `Server::handle_request`.
    fn handle_request(&mut self) -> Result<bool, Error>;

    /// Stops accepting and drains; `None` if it was closed already.
    fn close(&mut self) -> Option<DrainReport>;
}
