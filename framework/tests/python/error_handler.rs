//! `ErrorHandlerTest`: a handler that fails by an error or by a panic,
//! under `Sync`, `Threading` and the pool; `handle_error` is called exactly
//! once, with the client's address and the failure, and the server goes
//! on.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use socketserver::{Address, Failure, Model, RequestHandler, Step, Stream};

use super::{make_server, pool, SYNC, THREADING};
use crate::util::{connect, wait_until, LineEcho, FAMILIES, TEST_STR, TIMEOUT};

/// A failure as `handle_error` saw it (a [`Failure`] is not `Clone`).
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Error {
        step: Step,
        kind: io::ErrorKind,
        message: String,
    },
    Panic {
        step: Step,
        message: String,
    },
}

impl Seen {
    fn of(failure: &Failure) -> Seen {
        match failure {
            Failure::Error { step, error } => Seen::Error {
                step: *step,
                kind: error.kind(),
                message: error.to_string(),
            },
            Failure::Panic { step, message } => Seen::Panic {
                step: *step,
                message: message.clone(),
            },
            other => panic!("a failure of an unknown kind: {other}"),
        }
    }
}

/// Python's `BadHandler`: counts its calls and fails with "Test error",
/// by an error (Python's `ValueError`) or a panic (Python's `SystemExit`,
/// which is not handled in Python; a panic is, here). After the first
/// call, a panicking handler echoes a line instead, to show that the
/// server and its thread go on.
#[derive(Clone)]
struct BadHandler {
    calls: Arc<AtomicUsize>,
    panics: bool,
}

impl RequestHandler for BadHandler {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        if !self.panics {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "Test error"));
        }
        if call == 0 {
            panic!("Test error");
        }
        LineEcho.handle(stream)
    }
}

/// Python's `BaseErrorTestServer` and `check_result`: a client connects and
/// hangs up; `handle_request` runs once; the handler ran exactly once and
/// `handle_error` was called exactly once, with the client's address and
/// the handler's failure. For a panic, the server then serves the next
/// client normally.
fn error_handler_test(model: Model, panics: bool) {
    for family in FAMILIES {
        let calls = Arc::new(AtomicUsize::new(0));
        let reports = Arc::new(Mutex::new(Vec::<(Address, Seen, usize)>::new()));
        let handler = BadHandler {
            calls: Arc::clone(&calls),
            panics,
        };
        let (hook_reports, hook_calls) = (Arc::clone(&reports), Arc::clone(&calls));
        let (builder, _) = make_server(family, model, handler);
        let mut server = builder
            .handle_error(move |peer, failure| {
                // Python's log: "Handler called" comes before "Error handled".
                let calls_then = hook_calls.load(Ordering::SeqCst);
                hook_reports
                    .lock()
                    .unwrap()
                    .push((peer.clone(), Seen::of(failure), calls_then));
            })
            .build()
            .expect("build");
        let stats = server.stats();
        let what = format!("{model:?} {family:?}");

        let client = connect(server.local_addr());
        let peer = client.local_address();
        drop(client);
        assert!(server.handle_request().expect("handle_request"), "{what}");
        wait_until(&format!("{what}: the failure is counted"), TIMEOUT, || {
            stats.snapshot().failed == 1
        });

        assert_eq!(calls.load(Ordering::SeqCst), 1, "{what}: handler calls");
        let expected = if panics {
            Seen::Panic {
                step: Step::Handle,
                message: "Test error".into(),
            }
        } else {
            Seen::Error {
                step: Step::Handle,
                kind: io::ErrorKind::InvalidData,
                message: "Test error".into(),
            }
        };
        assert_eq!(
            *reports.lock().unwrap(),
            vec![(peer, expected, 1)],
            "{what}"
        );

        if panics {
            // The server goes on: the next client is served as usual.
            let mut client = connect(server.local_addr());
            client.send(TEST_STR);
            assert!(server.handle_request().expect("handle_request"), "{what}");
            assert_eq!(client.line().as_bytes(), TEST_STR, "{what}");
            assert_eq!(client.rest(), b"", "{what}");
            wait_until(&format!("{what}: the second is counted"), TIMEOUT, || {
                stats.snapshot().completed == 1
            });
            assert_eq!(calls.load(Ordering::SeqCst), 2, "{what}: handler calls");
            assert_eq!(reports.lock().unwrap().len(), 1, "{what}: no new failure");
        }

        let report = server.server_close();
        assert_eq!(report.cut, 0, "{what}");
        let c = stats.snapshot();
        let served = 1 + u64::from(panics);
        assert_eq!(
            (c.accepted, c.failed, c.completed, c.refused, c.active),
            (served, 1, served - 1, 0, 0),
            "{what}: {c:?}"
        );
    }
}

/// `ErrorHandlerTest.test_sync_handled`.
#[test]
fn sync_handled() {
    error_handler_test(SYNC, false);
}

/// `ErrorHandlerTest.test_threading_handled`.
#[test]
fn threading_handled() {
    error_handler_test(THREADING, false);
}

/// `ErrorHandlerTest.test_threading_handled` with the pool model.
#[test]
fn pool_handled() {
    error_handler_test(pool(), false);
}

/// `ErrorHandlerTest.test_sync_not_handled`: Python lets `SystemExit` out
/// of `handle_request`; the Rust analogue, a panic, is caught, reported to
/// `handle_error` like an error, and the server goes on.
#[test]
fn sync_not_handled() {
    error_handler_test(SYNC, true);
}

/// `ErrorHandlerTest.test_threading_not_handled`, as `sync_not_handled`.
#[test]
fn threading_not_handled() {
    error_handler_test(THREADING, true);
}

/// `ErrorHandlerTest.test_threading_not_handled` with the pool model, and
/// with a pool of one worker, so that the next client is served by the
/// very worker whose handler panicked.
#[test]
fn pool_not_handled() {
    error_handler_test(pool(), true);
    error_handler_test(
        Model::Pool {
            workers: 1,
            queue: 1,
        },
        true,
    );
}
