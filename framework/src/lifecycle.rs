//! The life of one connection, step by step: Python's
//! `BaseRequestHandler.__init__` (setup, handle, finish in try/finally) and
//! `BaseServer.finish_request`/`shutdown_request`, with panics caught.

use std::any::Any;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use crate::failure::{panic_message, Failure, Step};
use crate::shared::Shared;
use crate::socket::Connection;
use crate::stats::{Ended, Outcome};
use crate::{Address, RequestHandler, Stream};

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
