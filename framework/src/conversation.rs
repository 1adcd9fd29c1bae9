//! The life of one request, from the model's hand-off to its end: Python's
//! `finish_request` (a fresh handler for each request) and
//! `BaseRequestHandler.__init__` (setup, handle, finish, in a
//! `try`/`finally`), with panics caught, each failure given to the
//! `handle_error` hook, the request counted and its slot freed.
//!
//! The accept loop and the models move requests around (a connection or a
//! datagram) and hand them to a [`Runner`], which holds the user's handler
//! wrapped once when the server is built ([`AnyHandler`]): so the models
//! know nothing of handler types, and one `Server` serves streams and
//! datagrams alike.

use std::any::Any;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use crate::failure::{panic_message, Failure, Step};
use crate::shared::Shared;
use crate::socket::datagram::Packet;
use crate::socket::Connection;
use crate::stats::{Ending, Outcome};
use crate::{Address, Refusal, RequestHandler, ShutdownHandle, Stream};

/// A request ready for a handler: a conversation on a connection, or one
/// datagram.
#[derive(Debug)]
pub(crate) enum Request {
    Conversation(Arc<Connection>),
    Datagram(Packet),
}

impl Request {
    /// Who the request came from.
    pub(crate) fn peer(&self) -> &Address {
        match self {
            Request::Conversation(conn) => &conn.peer,
            Request::Datagram(packet) => &packet.peer,
        }
    }
}

/// A request that holds a slot in the server's registry, freed when it
/// ends.
pub(crate) struct Admitted {
    pub(crate) slot: u64,
    pub(crate) request: Request,
}

/// Everything a request is run with, cloned into each thread or process
/// that runs requests: the server's state, the handle its handlers reach
/// the server by, and the handler.
#[derive(Clone)]
pub(crate) struct Runner {
    pub(crate) shared: Arc<Shared>,
    pub(crate) server: ShutdownHandle,
    handler: Arc<dyn AnyHandler>,
}

impl Runner {
    pub(crate) fn new(shared: Arc<Shared>, handler: Arc<dyn AnyHandler>) -> Runner {
        Runner {
            server: shared.handle(),
            shared,
            handler,
        }
    }

    /// The same, with another way to the server for the handlers: in a
    /// forked child, the way to the parent.
    pub(crate) fn with_server(&self, server: ShutdownHandle) -> Runner {
        Runner {
            server,
            ..self.clone()
        }
    }

    /// The same handler with a prefork worker's own state.
    pub(crate) fn for_worker(&self, shared: Arc<Shared>) -> Runner {
        Runner::new(shared, Arc::clone(&self.handler))
    }

    /// Runs an admitted request to its end, counts it, then frees its slot.
    pub(crate) fn run(&self, admitted: Admitted) -> Outcome {
        let outcome = self.finish_request(admitted.request);
        self.shared.stats.count(outcome);
        self.shared.release(admitted.slot);
        outcome
    }

    /// Runs a request to its end with a fresh clone of the handler.
    pub(crate) fn finish_request(&self, request: Request) -> Outcome {
        self.handler
            .finish_request(&self.shared, &self.server, request)
    }

    /// Tells a refused client why, in the handler's words.
    pub(crate) fn refuse(&self, stream: &mut Stream, why: Refusal) {
        self.handler.refuse(stream, why);
    }
}

/// Either kind of handler, as the server runs it: the value given to the
/// server, cloned for each request.
pub(crate) trait AnyHandler: Send + Sync + 'static {
    /// Runs one request to its end with a fresh clone of the handler.
    fn finish_request(&self, shared: &Shared, server: &ShutdownHandle, request: Request)
        -> Outcome;

    /// Tells a refused client why, in the handler's words.
    fn refuse(&self, stream: &mut Stream, why: Refusal) {
        let _ = (stream, why);
    }
}

/// A stream handler as the server runs it. The handler need only be
/// `Send`: it sits behind a mutex that is held just long enough to clone it.
pub(crate) struct StreamPrototype<H>(Mutex<H>);

impl<H: RequestHandler> StreamPrototype<H> {
    pub(crate) fn new(handler: H) -> Self {
        StreamPrototype(Mutex::new(handler))
    }

    fn fresh(&self) -> H {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl<H: RequestHandler> AnyHandler for StreamPrototype<H> {
    fn finish_request(
        &self,
        shared: &Shared,
        server: &ShutdownHandle,
        request: Request,
    ) -> Outcome {
        match request {
            Request::Conversation(conn) => converse(shared, server, self.fresh(), conn),
            Request::Datagram(packet) => {
                log::error!("{}: a datagram reached a stream handler", packet.peer);
                Outcome::LOST
            }
        }
    }

    fn refuse(&self, stream: &mut Stream, why: Refusal) {
        let mut handler = self.fresh();
        let peer = stream.peer_addr().clone();
        // User code in the serving thread: a panic must not stop it.
        match panic::catch_unwind(AssertUnwindSafe(|| handler.refuse(stream, why))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::debug!("{peer}: telling it was refused: {}", crate::describe(&e)),
            Err(payload) => log::error!(
                "{peer}: refuse panicked: {}",
                panic_message(payload.as_ref())
            ),
        }
    }
}

/// The conversation itself: the TLS handshake if the server has TLS, then
/// setup, handle, finish, flush, each failure given to `handle_error`. The
/// socket closes when it returns (unless the registry still holds the
/// connection).
fn converse<H: RequestHandler>(
    shared: &Shared,
    server: &ShutdownHandle,
    mut handler: H,
    conn: Arc<Connection>,
) -> Outcome {
    let peer = conn.peer.clone();
    let mut stream = Stream::from_connection(conn, shared.limits());
    stream.attach_server(server.clone());
    log::debug!("{peer}: connected");
    if let Some(config) = shared.tls() {
        if let Err(error) = stream.upgrade_tls(Arc::clone(config)) {
            log_handshake_failure(&peer, &error);
            stream.discard_output();
            return outcome_of(&stream, Ending::TlsFailed);
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

    let ending = match failures.first() {
        None => Ending::Completed,
        Some(f) if f.is_timeout() => Ending::TimedOut,
        Some(_) => Ending::Failed,
    };
    for failure in &failures {
        shared.handle_error(&peer, failure);
    }
    log::debug!(
        "{peer}: closed ({} bytes in, {} out)",
        stream.bytes_read(),
        stream.bytes_written()
    );
    outcome_of(&stream, ending)
}

fn outcome_of(stream: &Stream, ending: Ending) -> Outcome {
    Outcome {
        ending,
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

/// A step's result, caught: nothing, an error or a panic.
pub(crate) type Caught = Result<io::Result<()>, Box<dyn Any + Send>>;

/// Adds a step's failure, if it failed, to `failures`.
pub(crate) fn record(failures: &mut Vec<Failure>, step: Step, result: Caught) {
    match result {
        Ok(Ok(())) => {}
        Ok(Err(error)) => failures.push(Failure::Error { step, error }),
        Err(payload) => failures.push(Failure::Panic {
            step,
            message: panic_message(payload.as_ref()),
        }),
    }
}
