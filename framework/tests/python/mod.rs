//! CPython's Lib/test/test_socketserver.py, in Rust.
//!
//! Every stream-socket scenario of that file (as of CPython 3.11), under
//! every model of [`MODELS`] and over both families of [`FAMILIES`] where it
//! applies. Each test names the Python test it mirrors.
//!
//! Three scenarios count the process's descriptors or threads
//! (`test_tcpserver_bind_leak`, `test_context_manager`,
//! `test_threads_reaped`): they live in the module `counting`, each run
//! alone in a child process, so that their counts are exact.
//!
//! Not here, on purpose:
//! * the datagram scenarios (`test_UDPServer`, `test_UnixDatagramServer`
//!   and their threading/forking variants): this module covers stream
//!   sockets;
//! * the forking variants (`test_ForkingTCPServer`,
//!   `test_ForkingUnixStreamServer`, `test_forking_handled`,
//!   `test_forking_not_handled`): they are in the module `processes`, each
//!   run alone in a child process;
//! * `MiscTestCase.test_all` (every public name is in `__all__`): Rust's
//!   visibility rules and `#![deny(missing_docs)]` do that job.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::pthread::{pthread_kill, pthread_self, Pthread};
use nix::sys::signal::Signal;
use socketserver::{Address, Failure, Model, RequestHandler, Step, Stream, WhenDraining};

use crate::util::{
    assert_closed, assert_listens_where_asked, bind_with_path, connect, serve, stream_examine,
    wait_until, Chat, Family, LineEcho, BYE, FAMILIES, MODELS, TEST_STR, TIMEOUT,
};

/// Python's `test.support.SOCK_MAX_SIZE`: more than the socket buffers of
/// both ends hold, so that a writer of this much blocks in `send` until the
/// client reads.
const SOCK_MAX_SIZE: usize = 16 * 1024 * 1024;

const SYNC: Model = Model::Sync;
const THREADING: Model = Model::Threading;

/// The pool model of [`MODELS`].
fn pool() -> Model {
    MODELS
        .into_iter()
        .find(|m| matches!(m, Model::Pool { .. }))
        .expect("MODELS has a pool")
}

/// Python's `make_server`: [`bind_with_path`] with the model.
fn make_server<H: RequestHandler>(
    family: Family,
    model: Model,
    handler: H,
) -> (socketserver::Builder<H>, Option<std::path::PathBuf>) {
    let (builder, path) = bind_with_path(family, handler);
    (builder.model(model), path)
}

// ---------------------------------------------------------------------------
// SocketServerTest.run_server + stream_examine
// ---------------------------------------------------------------------------

/// Python's `run_server`: serve in a thread, examine with three clients,
/// shut down from this thread; `serve_forever` returns, the socket is
/// closed (and a Unix socket's file removed), and no handler failed
/// (Python's `MyServer.handle_error` re-raises).
fn run_server(model: Model, family: Family) {
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&failures);
    let (builder, path) = make_server(family, model, LineEcho);
    let builder = builder.handle_error(move |peer, failure| {
        seen.lock().unwrap().push(format!("{peer}: {failure}"));
    });
    let running = serve(builder);
    let addr = running.addr.clone();
    assert_listens_where_asked(&addr, path.as_ref());
    let stats = running.stats.clone();

    for _ in 0..3 {
        stream_examine(&addr);
    }

    let report = running.shutdown();
    assert_eq!(report.cut, 0, "{model:?} {family:?}: {report:?}");
    assert_closed(&addr);
    assert_eq!(*failures.lock().unwrap(), Vec::<String>::new());
    let c = stats.snapshot();
    assert_eq!(
        (
            c.accepted,
            c.completed,
            c.failed,
            c.timed_out,
            c.refused,
            c.active
        ),
        (3, 3, 0, 0, 0, 0),
        "{model:?} {family:?}: {c:?}"
    );
    let bytes = 3 * TEST_STR.len() as u64;
    assert_eq!((c.bytes_read, c.bytes_written), (bytes, bytes));
}

/// `SocketServerTest.test_TCPServer`.
#[test]
fn tcp_server() {
    run_server(SYNC, Family::Tcp);
}

/// `SocketServerTest.test_ThreadingTCPServer`.
#[test]
fn threading_tcp_server() {
    run_server(THREADING, Family::Tcp);
}

/// `SocketServerTest.test_TCPServer` with the pool model, which Python
/// lacks.
#[test]
fn pool_tcp_server() {
    run_server(pool(), Family::Tcp);
}

/// `SocketServerTest.test_UnixStreamServer`.
#[test]
fn unix_stream_server() {
    run_server(SYNC, Family::Unix);
}

/// `SocketServerTest.test_ThreadingUnixStreamServer`.
#[test]
fn threading_unix_stream_server() {
    run_server(THREADING, Family::Unix);
}

/// `SocketServerTest.test_UnixStreamServer` with the pool model, which
/// Python lacks.
#[test]
fn pool_unix_stream_server() {
    run_server(pool(), Family::Unix);
}

// ---------------------------------------------------------------------------
// SocketServerTest.test_shutdown, test_close_immediately
// ---------------------------------------------------------------------------

/// `SocketServerTest.test_shutdown` (bpo-2302: `shutdown()` must always
/// make `serve_forever` return): 20 servers, each started in a thread and
/// shut down at once, racing with `serve_forever` starting; every
/// `serve_forever` returns and every socket is closed.
#[test]
fn shutdown() {
    for model in MODELS {
        for family in FAMILIES {
            let servers: Vec<_> = (0..20)
                .map(|_| {
                    let running = serve(make_server(family, model, LineEcho).0);
                    running.stop.shutdown();
                    running
                })
                .collect();
            for running in servers {
                let addr = running.addr.clone();
                let report = running.shutdown();
                assert_eq!(
                    (report.drained, report.cut),
                    (0, 0),
                    "{model:?} {family:?}: no connection was live"
                );
                assert_closed(&addr);
            }
        }
    }
}

/// `SocketServerTest.test_shutdown`, shutting down a server that is
/// serving, several times over: a client has been answered and is still
/// connected, its handler waiting for the next line (in the `Sync` model,
/// in the very thread running `serve_forever`). The handler asked for its
/// waiting reads to end when the server drains
/// ([`WhenDraining::EndWaitingRead`]; by default the conversation would go
/// on, see `shutdown.rs`): `serve_forever` returns, the waiting
/// conversation is ended (the client reads the handler's goodbye, then end
/// of input), nothing is cut, and the socket is closed.
#[test]
fn shutdown_while_serving() {
    for model in MODELS {
        for family in FAMILIES {
            for round in 0..5 {
                let chat = Chat {
                    when_draining: WhenDraining::EndWaitingRead,
                };
                let running = serve(make_server(family, model, chat).0);
                let addr = running.addr.clone();
                let stats = running.stats.clone();
                let mut client = running.connect();
                client.send(TEST_STR);
                assert_eq!(client.line(), "serving: hello world\n");

                let report = running.shutdown();
                assert_eq!(
                    report.cut, 0,
                    "{model:?} {family:?} round {round}: {report:?}"
                );
                assert_eq!(
                    client.rest(),
                    BYE.as_bytes(),
                    "the waiting conversation was ended"
                );
                assert_closed(&addr);
                let c = stats.snapshot();
                assert_eq!(
                    (c.accepted, c.completed, c.failed, c.active),
                    (1, 1, 0, 0),
                    "{model:?} {family:?} round {round}: {c:?}"
                );
            }
        }
    }
}

/// `SocketServerTest.test_close_immediately`: a server built and closed
/// without ever serving.
#[test]
fn close_immediately() {
    #[derive(Clone)]
    struct Nothing;
    impl RequestHandler for Nothing {
        fn handle(&mut self, _: &mut Stream) -> io::Result<()> {
            Ok(())
        }
    }

    for model in MODELS {
        for family in FAMILIES {
            let (builder, path) = make_server(family, model, Nothing);
            let server = builder.build().expect("build");
            let addr = server.local_addr().clone();
            assert_listens_where_asked(&addr, path.as_ref());
            let report = server.server_close();
            assert_eq!((report.drained, report.cut), (0, 0), "{model:?} {family:?}");
            assert_closed(&addr);
        }
    }
}

// ---------------------------------------------------------------------------
// ErrorHandlerTest
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// SocketWriterTest
// ---------------------------------------------------------------------------

/// What a handler's [`Stream`] says about its connection.
#[derive(Debug, PartialEq, Eq)]
struct StreamFacts {
    peer: Address,
    local: Address,
    /// The address of the socket under the stream, as the socket itself
    /// says (Python's `wfile.fileno() == request.fileno()`: the writer
    /// writes to the request's socket).
    socket_local: Address,
}

/// `SocketWriterTest.test_basics`: the handler's stream is the accepted
/// connection itself: its peer is the client, its local address the
/// server's, and the TCP or Unix socket under it is that same connection.
#[test]
fn socket_writer_basics() {
    #[derive(Clone)]
    struct Handler(Arc<Mutex<Option<StreamFacts>>>);
    impl RequestHandler for Handler {
        fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
            let socket_local = match (stream.as_tcp(), stream.as_unix()) {
                (Some(tcp), None) => Address::Inet(tcp.local_addr()?),
                (None, Some(unix)) => Address::Unix(
                    unix.local_addr()?
                        .as_pathname()
                        .map(std::path::Path::to_path_buf),
                ),
                _ => panic!("a stream is over exactly one kind of socket"),
            };
            *self.0.lock().unwrap() = Some(StreamFacts {
                peer: stream.peer_addr().clone(),
                local: stream.local_addr()?,
                socket_local,
            });
            Ok(())
        }
    }

    for model in MODELS {
        for family in FAMILIES {
            let facts = Arc::new(Mutex::new(None));
            let (builder, _) = make_server(family, model, Handler(Arc::clone(&facts)));
            let mut server = builder.build().expect("build");
            let addr = server.local_addr().clone();
            let stats = server.stats();
            let client = connect(&addr);
            let peer = client.local_address();
            drop(client);
            assert!(server.handle_request().expect("handle_request"));
            wait_until("the handler has run", TIMEOUT, || {
                stats.snapshot().completed == 1
            });
            assert_eq!(
                facts.lock().unwrap().take(),
                Some(StreamFacts {
                    peer,
                    local: addr.clone(),
                    socket_local: addr,
                }),
                "{model:?} {family:?}"
            );
            server.server_close();
        }
    }
}

/// Python's `SocketWriterTest.test_write` handler: writes a line, reads the
/// client's line, writes `SOCK_MAX_SIZE` zeros. It records the thread it
/// runs in, for the client to signal.
#[derive(Clone)]
struct Writer {
    received: Arc<Mutex<Option<String>>>,
    thread: Arc<Mutex<Option<Pthread>>>,
}

impl RequestHandler for Writer {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        *self.thread.lock().unwrap() = Some(pthread_self());
        stream.write_all(b"write data\n")?;
        // No flush: the stream must send the line before this read waits.
        let line = stream.next_line()?;
        *self.received.lock().unwrap() = line;
        stream.write_all(&vec![0; SOCK_MAX_SIZE])
    }
}

/// `SocketWriterTest.test_write`: a write reaches the client without an
/// explicit flush (the stream flushes before a read that waits), and a
/// big write is sent whole even when signals interrupt its `send`: the
/// client reads 100 bytes, then signals the handler's thread (blocked in
/// `send`, the rest being more than the socket buffers hold) with SIGUSR1
/// until the signal's handler has run, then reads the rest: exactly
/// `SOCK_MAX_SIZE - 100` more zeros.
///
/// The signal handler is installed with `signal_hook::flag::register` and
/// the signal sent with `nix`'s `pthread_kill`: no unsafe code. The
/// server's sockets have a send timeout (the idle timeout), so Linux never
/// restarts an interrupted `send` (SA_RESTART notwithstanding): it returns
/// EINTR or a short count, which the stream must handle.
#[test]
fn socket_writer_write() {
    let interrupted = Arc::new(AtomicBool::new(false));
    let signal =
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&interrupted))
            .expect("install a SIGUSR1 handler");

    for model in MODELS {
        for family in FAMILIES {
            let what = format!("{model:?} {family:?}");
            interrupted.store(false, Ordering::SeqCst);
            let writer = Writer {
                received: Arc::new(Mutex::new(None)),
                thread: Arc::new(Mutex::new(None)),
            };
            let (builder, _) = make_server(family, model, writer.clone());
            let mut server = builder.build().expect("build");
            let addr = server.local_addr().clone();
            let stats = server.stats();

            let handler_thread = Arc::clone(&writer.thread);
            let flag = Arc::clone(&interrupted);
            let client = thread::spawn(move || {
                let mut client = connect(&addr);
                let response1 = client.line();
                client.send(b"client response\n");
                let mut first = [1u8; 100];
                client.read_exact(&mut first).expect("read 100 bytes");
                // The handler's thread is now blocked in send(), or about to
                // be: keep signalling until the signal has been handled.
                let tid = handler_thread
                    .lock()
                    .unwrap()
                    .expect("the handler has started");
                let deadline = Instant::now() + TIMEOUT;
                while !flag.load(Ordering::SeqCst) {
                    assert!(Instant::now() < deadline, "SIGUSR1 never handled");
                    pthread_kill(tid, Signal::SIGUSR1).expect("signal the handler's thread");
                    let resend = Instant::now() + Duration::from_secs(1);
                    while !flag.load(Ordering::SeqCst) && Instant::now() < resend {
                        thread::sleep(Duration::from_millis(1));
                    }
                }
                let mut rest = Vec::new();
                client.read_to_end(&mut rest).expect("read the rest");
                (response1, first, rest)
            });

            assert!(server.handle_request().expect("handle_request"), "{what}");
            let (response1, first, rest) = client.join().expect("the client thread");
            wait_until(&format!("{what}: the handler has ended"), TIMEOUT, || {
                stats.snapshot().completed == 1
            });
            assert_eq!(response1, "write data\n", "{what}");
            assert_eq!(
                writer.received.lock().unwrap().as_deref(),
                Some("client response\n"),
                "{what}"
            );
            assert_eq!(first, [0u8; 100], "{what}");
            assert_eq!(rest.len(), SOCK_MAX_SIZE - 100, "{what}");
            assert!(rest.iter().all(|&b| b == 0), "{what}: only zeros");
            let c = stats.snapshot();
            assert_eq!(
                (c.completed, c.failed, c.bytes_read, c.bytes_written),
                (
                    1,
                    0,
                    "client response\n".len() as u64,
                    ("write data\n".len() + SOCK_MAX_SIZE) as u64
                ),
                "{what}: {c:?}"
            );
            server.server_close();
        }
    }
    signal_hook::low_level::unregister(signal);
}

// ---------------------------------------------------------------------------
// MiscTestCase
// ---------------------------------------------------------------------------

/// `MiscTestCase.test_shutdown_request_called_if_verify_request_false`
/// (bpo-26309): a connection that `verify_request` refuses is closed by the
/// server (the client reads end of input), counted as refused, and never
/// reaches the handler.
#[test]
fn shutdown_request_called_if_verify_request_false() {
    #[derive(Clone)]
    struct Counted(Arc<AtomicUsize>);
    impl RequestHandler for Counted {
        fn handle(&mut self, _: &mut Stream) -> io::Result<()> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    for model in MODELS {
        for family in FAMILIES {
            let what = format!("{model:?} {family:?}");
            let calls = Arc::new(AtomicUsize::new(0));
            let asked = Arc::new(Mutex::new(Vec::new()));
            let log = Arc::clone(&asked);
            let (builder, _) = make_server(family, model, Counted(Arc::clone(&calls)));
            let mut server = builder
                .verify_request(move |peer| {
                    log.lock().unwrap().push(peer.clone());
                    false
                })
                .build()
                .expect("build");
            let stats = server.stats();

            let mut client = connect(server.local_addr());
            let peer = client.local_address();
            assert!(server.handle_request().expect("handle_request"), "{what}");
            assert_eq!(
                client.rest(),
                b"",
                "{what}: the server closed the connection"
            );

            assert_eq!(*asked.lock().unwrap(), vec![peer], "{what}");
            let c = stats.snapshot();
            assert_eq!(
                (c.accepted, c.refused, c.active, c.completed, c.failed),
                (1, 1, 0, 0, 0),
                "{what}: {c:?}"
            );
            server.server_close();
            assert_eq!(
                calls.load(Ordering::SeqCst),
                0,
                "{what}: the handler never ran"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// BaseServer.handle_request, timeout, handle_timeout
// ---------------------------------------------------------------------------

/// `BaseServer.handle_request` with `timeout` set (used by CPython's
/// test_socketserver through `handle_request`; its semantics are those of
/// `BaseServer.timeout` and `handle_timeout`): when no client comes within
/// the timeout, `handle_timeout` runs once and `handle_request` returns
/// false; when one is waiting, it is served and `handle_request` returns
/// true without calling `handle_timeout`; after a shutdown request it
/// returns false at once, without calling `handle_timeout` either.
#[test]
fn handle_request_timeout() {
    let timeout = Duration::from_millis(100);
    for model in MODELS {
        for family in FAMILIES {
            let what = format!("{model:?} {family:?}");
            let timeouts = Arc::new(AtomicUsize::new(0));
            let count = Arc::clone(&timeouts);
            let (builder, _) = make_server(family, model, LineEcho);
            let mut server = builder
                .timeout(Some(timeout))
                .handle_timeout(move || {
                    count.fetch_add(1, Ordering::SeqCst);
                })
                .build()
                .expect("build");
            let stats = server.stats();

            let start = Instant::now();
            assert!(!server.handle_request().expect("handle_request"), "{what}");
            assert!(
                start.elapsed() >= timeout,
                "{what}: returned after {:?}",
                start.elapsed()
            );
            assert_eq!(timeouts.load(Ordering::SeqCst), 1, "{what}");
            assert_eq!(stats.snapshot().accepted, 0, "{what}");

            let mut client = connect(server.local_addr());
            client.send(TEST_STR);
            assert!(server.handle_request().expect("handle_request"), "{what}");
            assert_eq!(client.line().as_bytes(), TEST_STR, "{what}");
            assert_eq!(timeouts.load(Ordering::SeqCst), 1, "{what}");

            server.shutdown_handle().shutdown();
            assert!(!server.handle_request().expect("handle_request"), "{what}");
            assert_eq!(timeouts.load(Ordering::SeqCst), 1, "{what}");
            server.server_close();
        }
    }
}

/// `BaseServer.handle_request` without a timeout (Python's default,
/// `timeout = None`): it waits for a client as long as it takes, and
/// returns true once it is served.
#[test]
fn handle_request_without_timeout() {
    for model in MODELS {
        for family in FAMILIES {
            let what = format!("{model:?} {family:?}");
            let (builder, _) = make_server(family, model, LineEcho);
            let mut server = builder.build().expect("build");
            let addr = server.local_addr().clone();
            // The client comes a while later, so that handle_request has
            // to wait for it (nothing depends on how long).
            let client = thread::spawn(move || {
                thread::sleep(Duration::from_millis(200));
                let mut client = connect(&addr);
                client.send(TEST_STR);
                (client.line(), client.rest())
            });
            assert!(server.handle_request().expect("handle_request"), "{what}");
            let (line, rest) = client.join().expect("the client thread");
            assert_eq!(line.as_bytes(), TEST_STR, "{what}");
            assert_eq!(rest, b"", "{what}");
            server.server_close();
        }
    }
}
