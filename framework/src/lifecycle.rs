//! The life of one connection, step by step: Python's
//! `BaseRequestHandler.__init__` (setup, handle, finish in try/finally) and
//! `BaseServer.finish_request`/`shutdown_request`, with panics caught.

use std::any::Any;
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use crate::service::{Service, Work};
use crate::shared::Shared;
use crate::socket::Connection;
use crate::stats::Outcome;
use crate::{Address, RequestHandler, Stream};

/// Registered work (a connection or a packet) on its way to a handler.
pub(crate) struct Job {
    pub(crate) id: u64,
    pub(crate) work: Work,
}

/// The step of the life cycle in which a handler failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// [`RequestHandler::setup`].
    Setup,
    /// [`RequestHandler::handle`].
    Handle,
    /// [`RequestHandler::finish`].
    Finish,
    /// Sending the output still buffered after `finish`.
    Flush,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Setup => "setup",
            Step::Handle => "handle",
            Step::Finish => "finish",
            Step::Flush => "flush",
        })
    }
}

/// What went wrong with one connection, as given to the server's
/// `handle_error` hook.
#[derive(Debug)]
#[non_exhaustive]
pub enum Failure {
    /// A step returned an error.
    Error {
        /// The step that failed.
        step: Step,
        /// Its error.
        error: io::Error,
    },
    /// A step panicked; the panic was caught and the server goes on.
    Panic {
        /// The step that panicked.
        step: Step,
        /// The panic's message, when it had one.
        message: String,
    },
}

impl Failure {
    /// The step that failed.
    pub fn step(&self) -> Step {
        match self {
            Failure::Error { step, .. } | Failure::Panic { step, .. } => *step,
        }
    }

    /// True when the idle timeout ended the connection.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Failure::Error { error, .. } if error.kind() == io::ErrorKind::TimedOut)
    }

    /// True when the peer went away (reset, broken pipe, end of input in
    /// the middle of a message): the peer's doing more than the handler's.
    pub fn is_disconnect(&self) -> bool {
        matches!(self, Failure::Error { error, .. } if matches!(
            error.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof
                | io::ErrorKind::NotConnected
        ))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Error { step, error } => {
                write!(f, "{step} failed: {}", crate::describe(error))
            }
            Failure::Panic { step, message } => write!(f, "{step} panicked: {message}"),
        }
    }
}

/// The default `handle_error`: one log line with the peer's address, at a
/// level that fits what happened.
pub fn log_failure(peer: &Address, failure: &Failure) {
    match failure {
        Failure::Panic { .. } => log::error!("{peer}: {failure}"),
        f if f.is_timeout() || f.is_disconnect() => log::info!("{peer}: {failure}"),
        _ => log::warn!("{peer}: {failure}"),
    }
}

/// How a conversation ended, for the counters (and, from a forked child,
/// for the report to its parent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ended {
    pub(crate) outcome: Outcome,
    pub(crate) bytes_read: u64,
    pub(crate) bytes_written: u64,
}

/// Serves one registered connection or packet from start to end, counts
/// it, then releases its slot.
pub(crate) fn serve(shared: &Arc<Shared>, service: &dyn Service, job: Job) -> Ended {
    let Job { id, work } = job;
    let ended = service.run(shared, work);
    shared
        .stats
        .ended(ended.outcome, ended.bytes_read, ended.bytes_written);
    shared.release(id);
    ended
}

/// The conversation itself: setup, handle, finish, flush, each failure
/// reported to `handle_error`. The socket closes when it returns (unless
/// the registry still holds the connection).
pub(crate) fn converse<H: RequestHandler>(
    shared: &Shared,
    mut handler: H,
    conn: Arc<Connection>,
) -> Ended {
    let peer = conn.peer.clone();
    let mut stream = Stream::from_connection(conn, shared.limits());
    log::debug!("{peer}: connected");
    if let Some(config) = shared.tls() {
        if let Err(error) = stream.upgrade_tls(Arc::clone(config)) {
            log_handshake_failure(&peer, &error);
            stream.discard_output();
            return Ended {
                outcome: Outcome::TlsFailed,
                bytes_read: stream.bytes_read(),
                bytes_written: stream.bytes_written(),
            };
        }
        log::debug!(
            "{peer}: TLS {:?}",
            stream
                .tls_version()
                .map_or("?".into(), |v| format!("{v:?}"))
        );
    }

    let mut failures = Vec::new();
    let mut step = Step::Setup;
    let opened = panic::catch_unwind(AssertUnwindSafe(|| {
        handler.setup(&mut stream)?;
        step = Step::Handle;
        handler.handle(&mut stream)
    }));
    record(&mut failures, step, opened);
    let finished = panic::catch_unwind(AssertUnwindSafe(|| handler.finish(&mut stream)));
    record(&mut failures, Step::Finish, finished);
    if failures.is_empty() {
        if let Err(error) = stream.flush().and_then(|()| stream.close_tls()) {
            failures.push(Failure::Error {
                step: Step::Flush,
                error,
            });
        }
    }
    if !failures.is_empty() {
        // Nothing more is sent on a failed connection: in particular, no
        // flush on drop that could wait for a peer who stopped reading.
        stream.discard_output();
    }

    let outcome = match failures.first() {
        None => Outcome::Completed,
        Some(f) if f.is_timeout() => Outcome::TimedOut,
        Some(_) => Outcome::Failed,
    };
    for failure in &failures {
        shared.report(&peer, failure);
    }
    log::debug!(
        "{peer}: closed ({} bytes in, {} out)",
        stream.bytes_read(),
        stream.bytes_written()
    );
    Ended {
        outcome,
        bytes_read: stream.bytes_read(),
        bytes_written: stream.bytes_written(),
    }
}

/// A failed TLS handshake: one line with the peer. A stall or a hang-up
/// is the peer's business (info); anything else, a client that speaks no
/// TLS or TLS the server refuses, is a warning.
fn log_handshake_failure(peer: &Address, error: &io::Error) {
    let what = crate::describe(error);
    if crate::tls::TlsFailure::is(error) {
        log::warn!("{peer}: TLS handshake failed: {what}");
    } else {
        log::info!("{peer}: TLS handshake failed: {what}");
    }
}

fn record(
    failures: &mut Vec<Failure>,
    step: Step,
    result: Result<io::Result<()>, Box<dyn Any + Send>>,
) {
    match result {
        Ok(Ok(())) => {}
        Ok(Err(error)) => failures.push(Failure::Error { step, error }),
        Err(payload) => failures.push(Failure::Panic {
            step,
            message: panic_message(payload.as_ref()),
        }),
    }
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}
