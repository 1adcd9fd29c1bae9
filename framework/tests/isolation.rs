//! Isolation: what goes wrong with one connection stays with it. Panics and
//! errors are caught and reported, `finish` always runs, a panicking hook
//! harms nothing, and the counters say exactly what happened.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socketserver::{Address, Failure, RequestHandler, Step, Stream};

use crate::util::{bind, each_model_and_family, serve, wait_until, Echo, Running, TIMEOUT};

/// Reads one line and obeys it: "panic" panics, "err" fails, anything else
/// is echoed. Counts its steps.
#[derive(Clone, Default)]
struct Scripted {
    setup_fails: bool,
    setups: Arc<AtomicUsize>,
    handles: Arc<AtomicUsize>,
    finishes: Arc<AtomicUsize>,
}

impl RequestHandler for Scripted {
    fn setup(&mut self, _: &mut Stream) -> io::Result<()> {
        self.setups.fetch_add(1, Ordering::SeqCst);
        if self.setup_fails {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "setup refused",
            ));
        }
        Ok(())
    }

    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        self.handles.fetch_add(1, Ordering::SeqCst);
        let Some(line) = stream.next_line()? else {
            return Ok(());
        };
        match line.as_str() {
            "panic\n" => panic!("boom: asked to panic"),
            "err\n" => Err(io::Error::other("asked to fail")),
            _ => stream.write_all(line.as_bytes()),
        }
    }

    fn finish(&mut self, _: &mut Stream) -> io::Result<()> {
        self.finishes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// What `handle_error` was given, kept for the test to look at.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Panic {
        peer: Address,
        step: Step,
        message: String,
    },
    Error {
        peer: Address,
        step: Step,
        kind: io::ErrorKind,
        text: String,
    },
}

type Reports = Arc<Mutex<Vec<Seen>>>;

fn recorder(reports: &Reports) -> impl Fn(&Address, &Failure) + Send + Sync + 'static {
    let reports = Arc::clone(reports);
    move |peer: &Address, failure: &Failure| {
        let seen = match failure {
            Failure::Panic { step, message } => Seen::Panic {
                peer: peer.clone(),
                step: *step,
                message: message.clone(),
            },
            Failure::Error { step, error } => Seen::Error {
                peer: peer.clone(),
                step: *step,
                kind: error.kind(),
                text: error.to_string(),
            },
            other => panic!("a failure of a new kind: {other}"),
        };
        reports.lock().unwrap().push(seen);
    }
}

/// Waits until `n` connections have ended (in any way).
fn wait_ended(running: &Running, n: u64) {
    let stats = running.stats.clone();
    wait_until(&format!("{n} connections have ended"), TIMEOUT, || {
        let c = stats.snapshot();
        c.completed + c.failed + c.timed_out + c.refused == n && c.active == 0
    });
}

#[test]
fn panicking_handler_leaves_the_server_serving() {
    each_model_and_family(|model, family| {
        let case = format!("{model:?}/{family:?}");
        let reports = Reports::default();
        let running = serve(
            bind(family, Scripted::default())
                .model(model)
                .handle_error(recorder(&reports)),
        );
        let mut client = running.connect();
        let peer = client.local_address();
        client.send(b"panic\n");
        assert_eq!(
            client.rest(),
            b"",
            "{case}: the panicking connection is closed"
        );
        wait_ended(&running, 1);

        let mut next = running.connect();
        assert_eq!(next.round_trip("still here\n"), "still here\n", "{case}");
        wait_ended(&running, 2);

        assert_eq!(
            *reports.lock().unwrap(),
            vec![Seen::Panic {
                peer,
                step: Step::Handle,
                message: "boom: asked to panic".into(),
            }],
            "{case}"
        );
        let counters = running.stats.snapshot();
        assert_eq!((counters.failed, counters.completed), (1, 1), "{case}");
    });
}

#[test]
fn finish_runs_even_when_handle_fails_or_panics() {
    each_model_and_family(|model, family| {
        let case = format!("{model:?}/{family:?}");
        let reports = Reports::default();
        let handler = Scripted::default();
        let (handles, finishes) = (Arc::clone(&handler.handles), Arc::clone(&handler.finishes));
        let running = serve(
            bind(family, handler)
                .model(model)
                .handle_error(recorder(&reports)),
        );

        let mut ok = running.connect();
        assert_eq!(ok.round_trip("fine\n"), "fine\n");
        drop(ok);
        wait_ended(&running, 1);
        let mut failing = running.connect();
        let failing_peer = failing.local_address();
        failing.send(b"err\n");
        assert_eq!(failing.rest(), b"", "{case}");
        wait_ended(&running, 2);
        let mut panicking = running.connect();
        let panicking_peer = panicking.local_address();
        panicking.send(b"panic\n");
        assert_eq!(panicking.rest(), b"", "{case}");
        wait_ended(&running, 3);

        assert_eq!(handles.load(Ordering::SeqCst), 3, "{case}");
        assert_eq!(
            finishes.load(Ordering::SeqCst),
            3,
            "{case}: finish after each"
        );
        assert_eq!(
            *reports.lock().unwrap(),
            vec![
                Seen::Error {
                    peer: failing_peer,
                    step: Step::Handle,
                    kind: io::ErrorKind::Other,
                    text: "asked to fail".into(),
                },
                Seen::Panic {
                    peer: panicking_peer,
                    step: Step::Handle,
                    message: "boom: asked to panic".into(),
                },
            ],
            "{case}"
        );
        let counters = running.stats.snapshot();
        assert_eq!((counters.completed, counters.failed), (1, 2), "{case}");
    });
}

#[test]
fn setup_error_skips_handle_but_finish_runs() {
    each_model_and_family(|model, family| {
        let case = format!("{model:?}/{family:?}");
        let reports = Reports::default();
        let handler = Scripted {
            setup_fails: true,
            ..Scripted::default()
        };
        let (setups, handles, finishes) = (
            Arc::clone(&handler.setups),
            Arc::clone(&handler.handles),
            Arc::clone(&handler.finishes),
        );
        let running = serve(
            bind(family, handler)
                .model(model)
                .handle_error(recorder(&reports)),
        );

        let mut client = running.connect();
        let peer = client.local_address();
        assert_eq!(client.rest(), b"", "{case}: closed without a word");
        wait_ended(&running, 1);

        assert_eq!(setups.load(Ordering::SeqCst), 1, "{case}");
        assert_eq!(handles.load(Ordering::SeqCst), 0, "{case}: handle skipped");
        assert_eq!(finishes.load(Ordering::SeqCst), 1, "{case}: finish ran");
        assert_eq!(
            *reports.lock().unwrap(),
            vec![Seen::Error {
                peer,
                step: Step::Setup,
                kind: io::ErrorKind::PermissionDenied,
                text: "setup refused".into(),
            }],
            "{case}"
        );
        let counters = running.stats.snapshot();
        assert_eq!((counters.completed, counters.failed), (0, 1), "{case}");
    });
}

#[test]
fn panic_in_the_handle_error_hook_harms_nothing() {
    each_model_and_family(|model, family| {
        let case = format!("{model:?}/{family:?}");
        let hook_calls = Arc::new(AtomicUsize::new(0));
        let calls = Arc::clone(&hook_calls);
        let running = serve(bind(family, Scripted::default()).model(model).handle_error(
            move |_: &Address, _: &Failure| {
                calls.fetch_add(1, Ordering::SeqCst);
                panic!("the hook itself panics");
            },
        ));
        // More failures than the pool has workers: if a panicking hook
        // took its thread down, the last ones would never be served.
        for i in 0..6 {
            let mut client = running.connect();
            client.send(if i % 2 == 0 { b"err\n" } else { b"panic\n" });
            assert_eq!(client.rest(), b"", "{case}: failure {i}");
            wait_ended(&running, i + 1);
        }
        assert_eq!(hook_calls.load(Ordering::SeqCst), 6, "{case}");
        let mut client = running.connect();
        assert_eq!(client.round_trip("alive\n"), "alive\n", "{case}");
        drop(client);
        wait_ended(&running, 7);
        let counters = running.stats.snapshot();
        assert_eq!((counters.completed, counters.failed), (1, 6), "{case}");
        let report = running.shutdown_within(Duration::from_secs(2));
        assert_eq!((report.drained, report.cut), (0, 0), "{case}");
    });
}

#[test]
fn counters_are_exact_after_a_known_sequence() {
    each_model_and_family(|model, family| {
        let case = format!("{model:?}/{family:?}");
        let refuse_next = Arc::new(AtomicBool::new(false));
        let refuse = Arc::clone(&refuse_next);
        let running = serve(
            bind(family, Scripted::default())
                .model(model)
                .idle_timeout(Some(Duration::from_millis(200)))
                .handle_error(|_: &Address, _: &Failure| {})
                .verify_request(move |_: &Address| !refuse.swap(false, Ordering::SeqCst)),
        );

        // Two served: 3 + 6 bytes each way.
        assert_eq!(running.connect().round_trip("ok\n"), "ok\n");
        wait_ended(&running, 1);
        assert_eq!(running.connect().round_trip("hello\n"), "hello\n");
        wait_ended(&running, 2);
        // Two failed: 4 and 6 bytes in, nothing out.
        let mut client = running.connect();
        client.send(b"err\n");
        assert_eq!(client.rest(), b"");
        wait_ended(&running, 3);
        let mut client = running.connect();
        client.send(b"panic\n");
        assert_eq!(client.rest(), b"");
        wait_ended(&running, 4);
        // One silent past the idle timeout.
        let mut client = running.connect();
        assert!(client.closed_within(TIMEOUT), "{case}: timed out");
        wait_ended(&running, 5);
        // One refused by verify_request.
        refuse_next.store(true, Ordering::SeqCst);
        let mut client = running.connect();
        assert!(client.closed_within(TIMEOUT), "{case}: refused");
        wait_ended(&running, 6);

        let c = running.stats.snapshot();
        assert_eq!(
            (
                c.accepted,
                c.active,
                c.completed,
                c.failed,
                c.timed_out,
                c.refused
            ),
            (6, 0, 2, 2, 1, 1),
            "{case}: (accepted, active, completed, failed, timed_out, refused)"
        );
        assert_eq!(c.bytes_read, 3 + 6 + 4 + 6, "{case}: bytes read");
        assert_eq!(c.bytes_written, 3 + 6, "{case}: bytes written");
    });
}

#[test]
fn byte_counters_are_exact_under_load() {
    each_model_and_family(|model, family| {
        let case = format!("{model:?}/{family:?}");
        let running = serve(bind(family, Echo).model(model));
        let mut sent = 0u64;
        for c in 0..3 {
            let mut client = running.connect();
            let mut batch = String::new();
            for i in 0..1000 {
                batch.push_str(&format!("client {c} line {i} {}\n", "z".repeat(i % 50)));
            }
            client.send(batch.as_bytes());
            client.shutdown_write();
            assert_eq!(client.rest(), batch.as_bytes(), "{case}");
            sent += batch.len() as u64;
            wait_ended(&running, c + 1);
        }
        let counters = running.stats.snapshot();
        assert_eq!(counters.completed, 3, "{case}");
        assert_eq!(
            (counters.bytes_read, counters.bytes_written),
            (sent, sent),
            "{case}"
        );
    });
}
