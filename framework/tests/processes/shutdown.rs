//! Shutdown with children still serving: a busy child is drained, a stuck
//! one is cut at the drain timeout, a handler in a child can stop the whole
//! server, each conversation's [`WhenDraining`] is honoured across the
//! process boundary, and the listening socket closes as soon as the
//! shutdown begins.

use std::io;
use std::thread;
use std::time::{Duration, Instant};

use socketserver::WhenDraining;

use super::{ask, bind, KillChildrenOnFailure, Script, PROCESS_MODELS};
use crate::util::{
    assert_closed, child_processes, connect, isolated, proc_stat, serve, wait_until, Chat, Family,
    StopsServer, BYE, FAMILIES, TIMEOUT,
};

/// Shutdown with a busy child drains it: the handler sleeps 300 ms before
/// it replies; the shutdown asked for meanwhile waits for it, the client
/// gets its reply, and the report says one drained, none cut. Under
/// `Prefork` the parent knows which workers are busy (their reports), and
/// counts the same.
#[test]
fn shutdown_drains_a_busy_child() {
    if !isolated("processes::shutdown::shutdown_drains_a_busy_child") {
        return;
    }
    let _cleanup = KillChildrenOnFailure;
    for model in PROCESS_MODELS {
        for family in FAMILIES {
            let case = format!("{model:?} over {family:?}");
            let running = serve(
                bind(family, Script::default())
                    .model(model)
                    .idle_timeout(Some(TIMEOUT))
                    .drain_timeout(TIMEOUT),
            );
            let stats = running.stats.clone();
            let addr = running.addr.clone();
            let (mut client, pid) = ask(&addr, "sleep 300");
            wait_until(&format!("{case}: busy"), TIMEOUT, || {
                stats.snapshot().active == 1
            });
            let report = running.shutdown();
            assert_eq!(
                (report.drained, report.cut),
                (1, 0),
                "{case}: the busy child drained"
            );
            assert_eq!(client.line(), "done\n", "{case}: its reply");
            assert_eq!(client.rest(), b"", "{case}");
            assert_closed(&addr);
            assert_eq!(proc_stat(pid), None, "{case}: the child is reaped");
            assert_eq!(child_processes(), [], "{case}");
            let c = stats.snapshot();
            assert_eq!(
                (c.accepted, c.active, c.completed, c.failed),
                (1, 0, 1, 0),
                "{case}"
            );
        }
    }
}

/// A handler in a child process stops the whole server through its
/// stream ([`Stream::server`]): the child asks the parent on its pipe, and
/// the parent shuts down and drains as if its own handle had been used.
/// There the handle's counters are the child's copy: under `Forking` the
/// parent's as they were at the fork, under `Prefork` the worker's own;
/// both have counted this connection.
#[test]
fn a_handler_in_a_child_process_stops_the_server() {
    if !isolated("processes::shutdown::a_handler_in_a_child_process_stops_the_server") {
        return;
    }
    let _cleanup = KillChildrenOnFailure;
    for model in PROCESS_MODELS {
        for family in FAMILIES {
            let case = format!("{model:?} over {family:?}");
            let running = serve(
                bind(family, StopsServer)
                    .model(model)
                    .drain_timeout(TIMEOUT),
            );
            let addr = running.addr.clone();
            let mut client = connect(&addr);
            assert_eq!(client.round_trip("count\n"), "1\n", "{case}");
            assert_eq!(client.round_trip("stop\n"), "stopping true\n", "{case}");
            assert!(client.closed_within(TIMEOUT), "{case}");
            let report = running.join_within(TIMEOUT);
            assert_eq!(report.cut, 0, "{case}");
            assert_closed(&addr);
            assert_eq!(child_processes(), [], "{case}");
        }
    }
}

/// Shutdown with a stuck child (its handler sleeps 30 s) and a drain timeout
/// of 300 ms: the child is cut (SIGTERM at the deadline; under `Prefork`
/// the worker first cuts the connection itself, and the parent steps in a
/// second later), `serve_forever` returns within 2 s, the report says one
/// cut, and the parent counts the connection as failed.
#[test]
fn shutdown_cuts_a_stuck_child() {
    if !isolated("processes::shutdown::shutdown_cuts_a_stuck_child") {
        return;
    }
    let _cleanup = KillChildrenOnFailure;
    const DRAIN: Duration = Duration::from_millis(300);
    for model in PROCESS_MODELS {
        let running = serve(
            bind(Family::Tcp, Script::default())
                .model(model)
                .idle_timeout(Some(TIMEOUT))
                .drain_timeout(DRAIN),
        );
        let stats = running.stats.clone();
        let (mut client, pid) = ask(&running.addr, "sleep 30000");
        wait_until(&format!("{model:?}: busy"), TIMEOUT, || {
            stats.snapshot().active == 1
        });
        let started = Instant::now();
        let report = running.shutdown_within(Duration::from_secs(2));
        let took = started.elapsed();
        assert!(took >= DRAIN, "{model:?}: the drain timeout was given");
        assert_eq!(
            (report.drained, report.cut),
            (0, 1),
            "{model:?}: the stuck child cut"
        );
        assert!(client.closed_within(TIMEOUT), "{model:?}: its client");
        assert_eq!(proc_stat(pid), None, "{model:?}: the child is reaped");
        assert_eq!(child_processes(), [], "{model:?}");
        let c = stats.snapshot();
        assert_eq!(
            (c.accepted, c.active, c.completed, c.failed),
            (1, 0, 0, 1),
            "{model:?}"
        );
    }
}

/// The drain in child processes honours each conversation's
/// [`WhenDraining`]: a chat only between messages goes on through the
/// drain by default, and its handler knows that the server drains (a
/// forked child is told by its parent on its report pair, a prefork worker
/// by its control socket); one that asked for it
/// ([`WhenDraining::EndWaitingRead`]) is ended at once with a goodbye.
/// Either way the server returns as soon as the conversation ends, long
/// before the drain timeout, and counts it drained.
#[test]
fn drain_in_child_processes_keeps_or_ends_waiting_chats() {
    if !isolated("processes::shutdown::drain_in_child_processes_keeps_or_ends_waiting_chats") {
        return;
    }
    let _cleanup = KillChildrenOnFailure;
    const LONG_DRAIN: Duration = Duration::from_secs(30);
    for model in PROCESS_MODELS {
        for family in FAMILIES {
            for when_draining in [WhenDraining::Finish, WhenDraining::EndWaitingRead] {
                let case = format!("{model:?} over {family:?}, {when_draining:?}");
                let running = serve(
                    bind(family, Chat { when_draining })
                        .model(model)
                        .idle_timeout(Some(LONG_DRAIN))
                        .drain_timeout(LONG_DRAIN),
                );
                let stats = running.stats.clone();
                let mut client = running.connect();
                assert_eq!(client.round_trip("one\n"), "serving: one\n", "{case}");
                wait_until(&format!("{case}: live"), TIMEOUT, || {
                    stats.snapshot().active == 1
                });
                running.stop.shutdown();
                let ended = Instant::now();
                if when_draining == WhenDraining::Finish {
                    // The child learns of the drain from its parent's word,
                    // a moment after the shutdown: the chat goes on
                    // meanwhile and after.
                    let mut round = 0;
                    wait_until(&format!("{case}: the child knows"), TIMEOUT, || {
                        round += 1;
                        let line = format!("round {round}\n");
                        let answer = client.round_trip(&line);
                        assert!(
                            answer == format!("serving: {line}")
                                || answer == format!("draining: {line}"),
                            "{case}: the chat goes on: {answer:?}"
                        );
                        answer.starts_with("draining")
                    });
                    assert!(!running.is_finished(), "{case}: returned during the chat");
                    client.send(b"q\n");
                } else {
                    assert_eq!(client.line(), BYE, "{case}: ended at once");
                }
                assert!(client.closed_within(TIMEOUT), "{case}: then the end");
                let report = running.join_within(Duration::from_secs(5));
                let took = ended.elapsed();
                assert!(
                    took < Duration::from_secs(5),
                    "{case}: returned {took:?} after the chat ended"
                );
                assert_eq!((report.drained, report.cut), (1, 0), "{case}");
                assert_eq!(child_processes(), [], "{case}");
            }
        }
    }
}

/// The listening socket closes as soon as a shutdown begins, while a busy
/// child still drains (`lib.rs`: "Graceful drain: the listening socket
/// closes at once"): a new TCP client is refused, not completed by the
/// kernel into a backlog that nobody will accept from again. A child is
/// busy (its handler sleeps 2 s before it replies); the shutdown is asked
/// for without waiting; within 1 s, while the child still sleeps, a connect
/// is refused. Then the child's reply arrives and it counts as drained.
///
/// `Forking` passes. `Prefork` fails (a framework bug): its parent drops
/// its copy of the listener, but a busy worker keeps its own until its
/// conversation ends, so the port stays open through the drain; a client
/// that connects meanwhile is completed by the kernel and later reset,
/// never served.
#[test]
fn listener_closes_at_once_while_children_drain() {
    if !isolated("processes::shutdown::listener_closes_at_once_while_children_drain") {
        return;
    }
    let _cleanup = KillChildrenOnFailure;
    const BUSY: Duration = Duration::from_secs(2);
    const AT_ONCE: Duration = Duration::from_secs(1);
    for model in PROCESS_MODELS {
        let running = serve(
            bind(Family::Tcp, Script::default())
                .model(model)
                .idle_timeout(Some(TIMEOUT))
                .drain_timeout(TIMEOUT),
        );
        let addr = running.addr.as_inet().expect("a TCP server");
        let stats = running.stats.clone();
        let (mut client, pid) = ask(&running.addr, &format!("sleep {}", BUSY.as_millis()));
        let busy_since = Instant::now();
        wait_until(&format!("{model:?}: busy"), TIMEOUT, || {
            stats.snapshot().active == 1
        });

        running.stop.shutdown();
        let asked = Instant::now();
        // Probes that connect before the listener closes may be served (an
        // idle worker may accept one before it learns of the shutdown), and
        // then count as drained.
        let mut connected = 0;
        let refused = loop {
            match std::net::TcpStream::connect_timeout(&addr, TIMEOUT) {
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => break true,
                // A handshake caught by the close itself is reset: not
                // served either, and the next attempt tells.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("{model:?}: connect to {addr}: {e}"),
                Ok(_) if asked.elapsed() >= AT_ONCE => break false,
                Ok(_) => {
                    connected += 1;
                    thread::sleep(Duration::from_millis(10))
                }
            }
        };
        let during_the_drain = busy_since.elapsed() < BUSY && proc_stat(pid).is_some();
        assert!(
            refused,
            "{model:?}: {AT_ONCE:?} after the shutdown began, {addr} still accepts \
             connections (the busy child {pid} drains meanwhile)"
        );
        assert!(
            during_the_drain,
            "{model:?}: the check ran while the child was busy"
        );

        assert_eq!(client.line(), "done\n", "{model:?}: its reply");
        let report = running.join_within(TIMEOUT);
        assert_eq!(report.cut, 0, "{model:?}: {report:?}");
        assert!(
            (1..=1 + connected).contains(&report.drained),
            "{model:?}: {report:?}, {connected} probes connected"
        );
        assert_eq!(child_processes(), [], "{model:?}");
    }
}
