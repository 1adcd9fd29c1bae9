//! `SocketServerTest`: `run_server` with `stream_examine` under every
//! model and over both families (`test_TCPServer`,
//! `test_ThreadingTCPServer`, `test_UnixStreamServer` and their threading
//! and pool variants), then `test_shutdown` (while starting and while
//! serving) and `test_close_immediately`.

use std::io;
use std::sync::{Arc, Mutex};

use socketserver::{Model, RequestHandler, Stream, WhenDraining};

use super::{make_server, pool, SYNC, THREADING};
use crate::util::{
    assert_closed, assert_listens_where_asked, serve, stream_examine, Chat, Family, LineEcho, BYE,
    FAMILIES, MODELS, TEST_STR,
};

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
