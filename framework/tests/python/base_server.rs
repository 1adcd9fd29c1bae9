//! `BaseServer`'s one-request path: `MiscTestCase`'s
//! `test_shutdown_request_called_if_verify_request_false` (a connection
//! that `verify_request` refuses is closed and never handled), and
//! `handle_request` with and without a `timeout` (`handle_timeout`).

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use socketserver::{RequestHandler, Stream};

use super::make_server;
use crate::util::{connect, LineEcho, FAMILIES, MODELS, TEST_STR};

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
