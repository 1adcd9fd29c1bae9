//! Shutdown and graceful drain: patient with every conversation up to the
//! drain timeout (busy, or only between messages), prompt with those that
//! asked to be ended while they wait, firm at the deadline; callable from a
//! handler; repeatable.

use std::io::{self, BufRead, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use socketserver::{DrainReport, Model, RequestHandler, Stream, WhenDraining};

use crate::util::{
    bind, each_model_and_family, model_capacity, serve, try_connect, wait_until, Chat, Family,
    LineEcho, StopsServer, BYE, TIMEOUT,
};

/// A drain timeout no test should come near: reaching it is a failure.
const LONG_DRAIN: Duration = Duration::from_secs(30);

fn assert_report(report: DrainReport, drained: usize, cut: usize, case: &str) {
    assert_eq!(
        (report.drained, report.cut),
        (drained, cut),
        "{case}: DrainReport {{ drained, cut }}"
    );
}

/// A handler that knows its safe points ([`WhenDraining::EndWaitingRead`])
/// is ended at once while it waits for the next message: a hundred such
/// conversations, all answered and waiting, end at once with a goodbye, and
/// the server returns promptly however long the drain timeout.
#[test]
fn waiting_reads_that_asked_for_it_end_at_once() {
    each_model_and_family(|model, family| {
        let case = format!("{model:?}/{family:?}");
        // Room for all 100 in the pool; Sync holds one by definition, the
        // other 99 wait in the kernel's backlog.
        let model = match model {
            Model::Pool { .. } => Model::Pool {
                workers: 100,
                queue: 4,
            },
            other => other,
        };
        let live = model_capacity(model).min(100);
        let chat = Chat {
            when_draining: WhenDraining::EndWaitingRead,
        };
        let running = serve(bind(family, chat).model(model).drain_timeout(LONG_DRAIN));
        let mut clients = Vec::new();
        for i in 0..100 {
            let mut client = running.connect();
            if i < live {
                assert_eq!(
                    client.round_trip(&format!("hello {i}\n")),
                    format!("serving: hello {i}\n")
                );
            }
            clients.push(client);
        }
        let stats = running.stats.clone();
        wait_until("every served client is registered", TIMEOUT, || {
            stats.snapshot().active == live as u64
        });

        let started = Instant::now();
        let report = running.shutdown_within(Duration::from_secs(2));
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "{case}: shutdown took {took:?}"
        );
        for client in &mut clients[..live] {
            assert_eq!(client.line(), BYE, "{case}: a goodbye");
            assert!(
                client.closed_within(TIMEOUT),
                "{case}: a waiting client was not closed"
            );
        }
        let counters = stats.snapshot();
        assert_eq!(counters.active, 0);
        assert_eq!(
            counters.completed, live as u64,
            "waiting conversations end cleanly"
        );
        assert_report(report, live, 0, &case);
    });
}

/// By default ([`WhenDraining::Finish`]) a drain never ends a conversation
/// that is only between messages (a chat answered and waiting): it goes on
/// through the drain, and the handler knows that the server drains; new
/// connections are refused meanwhile; the server returns as soon as the
/// conversation ends, long before the drain timeout. Switching to
/// `EndWaitingRead` in the middle of the drain ends the next wait at once.
#[test]
fn a_conversation_between_messages_goes_on_through_the_drain() {
    each_model_and_family(|model, family| {
        for ending in ["q\n", "polite\n"] {
            let case = format!("{model:?}/{family:?} ended by {ending:?}");
            let chat = Chat {
                when_draining: WhenDraining::Finish,
            };
            let running = serve(bind(family, chat).model(model).drain_timeout(LONG_DRAIN));
            let mut client = running.connect();
            assert_eq!(client.round_trip("one\n"), "serving: one\n", "{case}");
            let stats = running.stats.clone();
            wait_until("the client is registered", TIMEOUT, || {
                stats.snapshot().active == 1
            });

            running.stop.shutdown();
            if model != Model::Sync {
                // In Sync the serving thread is the conversation's: the
                // listener closes when it ends.
                wait_until("the listener is closed", TIMEOUT, || {
                    try_connect(&running.addr).is_err()
                });
            }
            assert_eq!(
                client.round_trip("two\n"),
                "draining: two\n",
                "{case}: answered after the shutdown"
            );
            assert!(!running.is_finished(), "{case}: returned during the chat");
            let last_message = Instant::now();
            client.send(ending.as_bytes());
            if ending == "polite\n" {
                assert_eq!(client.line(), "draining: polite\n", "{case}");
                assert_eq!(client.line(), BYE, "{case}: the next wait ends at once");
            }
            assert!(client.closed_within(TIMEOUT), "{case}: then the end");
            let report = running.join_within(Duration::from_secs(5));
            let took = last_message.elapsed();
            assert!(
                took < Duration::from_secs(5),
                "{case}: returned {took:?} after the conversation ended"
            );
            assert_report(report, 1, 0, &case);
        }
    });
}

/// A conversation that waits through the whole drain is cut at the
/// deadline, and counted as cut; a drain timeout of zero cuts it at once.
#[test]
fn a_waiting_conversation_is_cut_at_the_drain_deadline() {
    each_model_and_family(|model, family| {
        for drain in [Duration::ZERO, Duration::from_millis(300)] {
            let case = format!("{model:?}/{family:?} drain {drain:?}");
            let chat = Chat {
                when_draining: WhenDraining::Finish,
            };
            let running = serve(bind(family, chat).model(model).drain_timeout(drain));
            let mut client = running.connect();
            assert_eq!(client.round_trip("one\n"), "serving: one\n", "{case}");
            let stats = running.stats.clone();
            wait_until("the client is registered", TIMEOUT, || {
                stats.snapshot().active == 1
            });
            let started = Instant::now();
            running.stop.shutdown();
            assert!(
                client.closed_within(TIMEOUT),
                "{case}: the connection is cut"
            );
            let cut_after = started.elapsed();
            let report = running.join_within(TIMEOUT);
            assert!(
                cut_after >= drain && cut_after < drain + Duration::from_secs(2),
                "{case}: cut {cut_after:?} after the shutdown"
            );
            assert_report(report, 0, 1, &case);
        }
    });
}

/// Reads a line, lets the test know, works 300 ms, answers; again until
/// end of input.
#[derive(Clone)]
struct SlowReply {
    requests: Arc<AtomicUsize>,
}

impl RequestHandler for SlowReply {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        while let Some(line) = stream.next_line()? {
            self.requests.fetch_add(1, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(300));
            stream.write_all(format!("done {line}").as_bytes())?;
        }
        Ok(())
    }
}

#[test]
fn busy_handler_finishes_its_reply_during_the_drain() {
    each_model_and_family(|model, family| {
        let case = format!("{model:?}/{family:?}");
        let requests = Arc::new(AtomicUsize::new(0));
        let running = serve(
            bind(
                family,
                SlowReply {
                    requests: Arc::clone(&requests),
                },
            )
            .model(model)
            .drain_timeout(LONG_DRAIN),
        );
        let mut client = running.connect();
        client.send(b"work\n");
        wait_until("the handler is working", TIMEOUT, || {
            requests.load(Ordering::SeqCst) == 1
        });

        let started = Instant::now();
        running.stop.shutdown();
        if model != Model::Sync {
            // The listening socket closes at once, while the drain goes on
            // (in Sync the serving thread is the busy handler's thread).
            wait_until("the listener is closed", TIMEOUT, || {
                try_connect(&running.addr).is_err()
            });
            assert!(
                !running.is_finished(),
                "{case}: returned before the drain ended"
            );
        }
        assert_eq!(client.line(), "done work\n", "{case}: the reply is sent");
        assert!(
            !running.is_finished(),
            "{case}: returned while the client was still connected"
        );
        client.shutdown_write();
        assert!(
            client.closed_within(TIMEOUT),
            "{case}: the client done, the connection ends"
        );
        let report = running.shutdown_within(Duration::from_secs(2));
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "{case}: drain took {took:?}");
        assert_eq!(requests.load(Ordering::SeqCst), 1);
        assert_report(report, 1, 0, &case);
    });
}

/// Waits for the first bytes of a line, lets the test know, then reads the
/// line, which the client never finishes.
#[derive(Clone)]
struct Stuck {
    reading: Arc<AtomicUsize>,
    got: Arc<Mutex<Option<io::Result<Option<String>>>>>,
}

impl RequestHandler for Stuck {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        stream.fill_buf()?;
        // From here on the connection is never idle: a line is begun.
        self.reading.fetch_add(1, Ordering::SeqCst);
        let line = stream.next_line();
        let failed = line.as_ref().is_err();
        *self.got.lock().unwrap() = Some(line);
        if failed {
            return Err(io::Error::other("cut"));
        }
        Ok(())
    }
}

#[test]
fn stuck_handler_is_cut_at_the_drain_deadline() {
    const DRAIN: Duration = Duration::from_millis(300);
    each_model_and_family(|model, family| {
        let case = format!("{model:?}/{family:?}");
        let reading = Arc::new(AtomicUsize::new(0));
        let got = Arc::new(Mutex::new(None));
        let running = serve(
            bind(
                family,
                Stuck {
                    reading: Arc::clone(&reading),
                    got: Arc::clone(&got),
                },
            )
            .model(model)
            .drain_timeout(DRAIN),
        );
        let mut client = running.connect();
        client.send(b"partial");
        wait_until("the handler is inside a line", TIMEOUT, || {
            reading.load(Ordering::SeqCst) == 1
        });

        let started = Instant::now();
        running.stop.shutdown();
        assert!(
            client.closed_within(TIMEOUT),
            "{case}: the connection is cut"
        );
        let cut_after = started.elapsed();
        let report = running.shutdown_within(TIMEOUT);
        let took = started.elapsed();
        assert!(
            cut_after >= DRAIN,
            "{case}: cut after {cut_after:?}, before the deadline"
        );
        assert!(
            took >= DRAIN && took < DRAIN + Duration::from_secs(1),
            "{case}: serve_forever returned {took:?} after the shutdown"
        );
        // The handler's read ends at the cut: the partial line, as at end of
        // input.
        let line = got.lock().unwrap().take().expect("the read returned");
        assert_eq!(
            line.expect("read_line after the cut").as_deref(),
            Some("partial")
        );
        assert_report(report, 0, 1, &case);
    });
}

/// A handler stops its server through its stream ([`Stream::server`]),
/// and reads its counters there, in every model.
#[test]
fn shutdown_from_inside_a_handler_does_not_deadlock() {
    each_model_and_family(|model, family| {
        let case = format!("{model:?}/{family:?}");
        let running = serve(
            bind(family, StopsServer)
                .model(model)
                .drain_timeout(LONG_DRAIN),
        );
        let mut client = running.connect();
        assert_eq!(client.round_trip("first\n"), "first\n");
        assert_eq!(client.round_trip("count\n"), "1\n", "{case}: the counters");
        assert_eq!(client.round_trip("stop\n"), "stopping true\n", "{case}");
        assert!(client.closed_within(TIMEOUT), "{case}");
        let report = running.join_within(Duration::from_secs(2));
        // The stopping connection itself ends on its own: never cut. (Whether
        // it counts as drained depends on whether it ended before the drain
        // began, which this test does not pin down.)
        assert_eq!(report.cut, 0, "{case}");
    });
}

#[test]
fn listening_socket_refuses_connections_after_shutdown() {
    each_model_and_family(|model, family| {
        let case = format!("{model:?}/{family:?}");
        let running = serve(bind(family, LineEcho).model(model));
        let addr = running.addr.clone();
        assert_eq!(running.connect().round_trip("one\n"), "one\n");
        running.shutdown_within(Duration::from_secs(2));
        let error = match try_connect(&addr) {
            Ok(_) => panic!("{case}: connected to {addr} after shutdown"),
            Err(e) => e,
        };
        let expected = match family {
            Family::Tcp => io::ErrorKind::ConnectionRefused,
            // The socket file went with the listener.
            Family::Unix => io::ErrorKind::NotFound,
        };
        assert_eq!(error.kind(), expected, "{case}: {error}");
    });
}

#[test]
fn shutdown_repeated_20_times() {
    each_model_and_family(|model, family| {
        for round in 0..20 {
            let case = format!("{model:?}/{family:?} round {round}");
            let running = serve(bind(family, LineEcho).model(model));
            let line = format!("round {round}\n");
            assert_eq!(running.connect().round_trip(&line), line, "{case}");
            let stats = running.stats.clone();
            wait_until("the connection ends", TIMEOUT, || {
                let c = stats.snapshot();
                c.completed == 1 && c.active == 0
            });
            let report = running.shutdown_within(Duration::from_secs(2));
            assert_report(report, 0, 0, &case);
        }
    });
}

/// Echoes length-prefixed frames; waits for the first bytes of each and
/// lets the test know before reading it.
#[derive(Clone)]
struct FrameEcho {
    started: Arc<AtomicUsize>,
    when_draining: WhenDraining,
}

impl RequestHandler for FrameEcho {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        stream.set_when_draining(self.when_draining);
        loop {
            if stream.fill_buf()?.is_empty() {
                return Ok(());
            }
            self.started.fetch_add(1, Ordering::SeqCst);
            match stream.read_frame()? {
                Some(frame) => stream.write_frame(&frame)?,
                None => return Ok(()),
            }
        }
    }
}

/// A frame half received is a request in progress: the drain must let the
/// client finish it and get its answer (a shutdown never cuts a request in
/// half), even when the handler asked for its waiting reads to end
/// ([`WhenDraining::EndWaitingRead`]), which then ends the wait for the
/// next frame at once; by default the conversation goes on until the
/// client is done.
#[test]
fn request_half_received_is_not_idle_during_the_drain() {
    each_model_and_family(|model, family| {
        for when_draining in [WhenDraining::Finish, WhenDraining::EndWaitingRead] {
            let case = format!("{model:?}/{family:?} {when_draining:?}");
            let started = Arc::new(AtomicUsize::new(0));
            let running = serve(
                bind(
                    family,
                    FrameEcho {
                        started: Arc::clone(&started),
                        when_draining,
                    },
                )
                .model(model)
                .drain_timeout(LONG_DRAIN),
            );
            let mut client = running.connect();
            // Header (10 bytes follow) and the first 4 of them.
            client.send(&[0, 0, 0, 10, b'0', b'1', b'2', b'3']);
            wait_until("the handler has begun the frame", TIMEOUT, || {
                started.load(Ordering::SeqCst) == 1
            });
            running.stop.shutdown();
            // May fail when the server has wrongly ended the conversation;
            // the assertion below then says why.
            let _ = client.write_all(b"456789");
            let mut reply = Vec::new();
            let _ = client.read_until(b'9', &mut reply);
            assert_eq!(
                reply, b"\0\0\0\x0a0123456789",
                "{case}: the frame begun before the shutdown is answered"
            );
            if when_draining == WhenDraining::Finish {
                assert!(!running.is_finished(), "{case}: returned during the chat");
                client.shutdown_write();
            }
            assert!(client.closed_within(TIMEOUT), "{case}: then the end");
            let report = running.shutdown_within(Duration::from_secs(2));
            assert_report(report, 1, 0, &case);
        }
    });
}
