//! Counters a server keeps while it runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A live view of a server's counters; cheap to clone and send to another
/// thread (a metrics exporter, a test).
///
/// ```
/// # use socketserver::{RequestHandler, Server, Stream};
/// # #[derive(Clone)] struct Quiet;
/// # impl RequestHandler for Quiet { fn handle(&mut self, _: &mut Stream) -> std::io::Result<()> { Ok(()) } }
/// let server = Server::bind("127.0.0.1:0", Quiet).build()?;
/// let stats = server.stats();
/// assert_eq!(stats.snapshot().accepted, 0);
/// # Ok::<(), socketserver::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Stats {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    accepted: AtomicU64,
    refused: AtomicU64,
    completed: AtomicU64,
    timed_out: AtomicU64,
    failed: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    active: AtomicU64,
    accept_errors: AtomicU64,
    dropped: AtomicU64,
    tls_failures: AtomicU64,
}

/// The counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Connections accepted from the listening socket, refused ones included.
    pub accepted: u64,
    /// Connections being served now (queued for a worker included).
    pub active: u64,
    /// Connections closed without being served: `verify_request` said no,
    /// or the connection limit was reached with [`WhenFull::Refuse`](crate::WhenFull::Refuse).
    pub refused: u64,
    /// Connections whose handler returned without error.
    pub completed: u64,
    /// Connections ended by the idle timeout.
    pub timed_out: u64,
    /// Connections whose handler returned another error or panicked.
    pub failed: u64,
    /// Bytes received on all connections that have ended.
    pub bytes_read: u64,
    /// Bytes sent on all connections that have ended.
    pub bytes_written: u64,
    /// Accept errors that paused accepting (out of descriptors or memory,
    /// or unknown); the ones retried at once are not counted.
    pub accept_errors: u64,
    /// Datagrams dropped for being longer than the server's maximum.
    pub dropped: u64,
    /// Connections whose TLS handshake failed ([`Builder::tls`](crate::Builder::tls)):
    /// not TLS, refused TLS, stalled, or closed in the middle. Their
    /// handler never ran; they count in no other outcome.
    pub tls_failures: u64,
}

impl Stats {
    /// Reads every counter.
    pub fn snapshot(&self) -> Counters {
        let i = &self.inner;
        Counters {
            accepted: i.accepted.load(Ordering::Relaxed),
            active: i.active.load(Ordering::Relaxed),
            refused: i.refused.load(Ordering::Relaxed),
            completed: i.completed.load(Ordering::Relaxed),
            timed_out: i.timed_out.load(Ordering::Relaxed),
            failed: i.failed.load(Ordering::Relaxed),
            bytes_read: i.bytes_read.load(Ordering::Relaxed),
            bytes_written: i.bytes_written.load(Ordering::Relaxed),
            accept_errors: i.accept_errors.load(Ordering::Relaxed),
            dropped: i.dropped.load(Ordering::Relaxed),
            tls_failures: i.tls_failures.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn accepted(&self) {
        self.inner.accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn accept_error(&self) {
        self.inner.accept_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dropped(&self) {
        self.inner.dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refused(&self) {
        self.inner.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_active(&self, active: usize) {
        self.inner.active.store(active as u64, Ordering::Relaxed);
    }

    /// Counts a request that has ended.
    pub(crate) fn count(&self, outcome: Outcome) {
        let i = &self.inner;
        let counter = match outcome.ending {
            Ending::Completed => &i.completed,
            Ending::TimedOut => &i.timed_out,
            Ending::Failed => &i.failed,
            Ending::TlsFailed => &i.tls_failures,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        i.bytes_read
            .fetch_add(outcome.bytes_read, Ordering::Relaxed);
        i.bytes_written
            .fetch_add(outcome.bytes_written, Ordering::Relaxed);
    }
}

/// How one request ended, for the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    Completed,
    TimedOut,
    Failed,
    /// The TLS handshake failed: the handler never ran.
    TlsFailed,
}

/// What came of one request: how it ended and the bytes it moved; counted
/// by [`Stats::count`], and sent by a forked process to its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) ending: Ending,
    pub(crate) bytes_read: u64,
    pub(crate) bytes_written: u64,
}

impl Outcome {
    /// A request lost before its handler could say how it went: it never
    /// reached a handler, or the process serving it died.
    pub(crate) const LOST: Outcome = Outcome {
        ending: Ending::Failed,
        bytes_read: 0,
        bytes_written: 0,
    };
}
