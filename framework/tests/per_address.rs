//! [`Builder::max_per_ip`](socketserver::Builder::max_per_ip): the
//! per-address limit, in every model, told by the handler's
//! [`RequestHandler::refuse`], counted as refused; and in the process
//! models, a place is freed when the process holding it dies.
//!
//! The tests that fork run alone in a child process of this binary
//! ([`util::isolated`]), as in `processes`; their clients end a
//! conversation by shutting their sending side down, which acts whatever
//! copies of the socket a forked child holds.

use std::io;
use std::time::Duration;

use socketserver::{Model, Refusal, RequestHandler, Stream, WhenFull};

use crate::util::{
    self, bind, connect, forking_allowed, isolated, kill_9, live_children, serve, wait_until,
    Family, TIMEOUT,
};

/// Answers `pid` with the pid of the process serving it, then waits for
/// the client to end; says `refused: WHY` to a refused client.
#[derive(Clone)]
struct Hold;

impl RequestHandler for Hold {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        let mut line = Vec::new();
        if stream.read_line_into(&mut line)? == 0 {
            return Ok(());
        }
        stream.write_all(format!("{}\n", std::process::id()).as_bytes())?;
        line.clear();
        stream.read_line_into(&mut line)?;
        Ok(())
    }

    fn refuse(&mut self, stream: &mut Stream, why: Refusal) -> io::Result<()> {
        stream.write_all(format!("refused: {why}\n").as_bytes())
    }
}

/// Connects and is served: returns the client and the serving pid.
fn held(addr: &socketserver::Address) -> (util::Client, u32) {
    let mut client = connect(addr);
    client.send(b"pid\n");
    let line = client.line();
    let pid = line
        .trim_end()
        .parse()
        .unwrap_or_else(|_| panic!("expected a pid line, got {line:?}"));
    (client, pid)
}

const OVER: &[u8] = b"refused: too many connections from this address\n";

/// Two from 127.0.0.1 are served, the third is told why and closed at
/// once (never kept waiting), and counted refused; when one leaves, a
/// new one is served. Models that serve one at a time are left out.
fn limit_holds(model: Model) {
    let running = serve(forking_allowed(
        bind(Family::Tcp, Hold)
            .model(model)
            .max_per_ip(Some(2))
            .idle_timeout(Some(TIMEOUT)),
    ));
    let stats = running.stats.clone();
    let (first, _) = held(&running.addr);
    let (mut second, _) = held(&running.addr);
    let mut third = connect(&running.addr);
    assert_eq!(third.rest(), OVER, "{model}");
    wait_until("counted refused", TIMEOUT, || stats.snapshot().refused == 1);
    first.shutdown_write();
    wait_until("a place frees", TIMEOUT, || {
        let mut again = connect(&running.addr);
        again.send(b"pid\n");
        let line = again.line();
        again.shutdown_write();
        line.trim_end().parse::<u32>().is_ok()
    });
    second.shutdown_write();
    assert_eq!(second.rest(), b"");
    running.shutdown();
}

#[test]
fn per_ip_limit_in_the_thread_models() {
    for model in [
        Model::Threading,
        Model::Pool {
            workers: 4,
            queue: 4,
        },
    ] {
        limit_holds(model);
    }
}

#[test]
fn per_ip_limit_in_the_process_models() {
    if !isolated("per_address::per_ip_limit_in_the_process_models") {
        return;
    }
    for model in [
        Model::Forking { max_children: 40 },
        Model::Prefork {
            workers: 4,
            max_requests: None,
        },
    ] {
        limit_holds(model);
    }
}

/// Unix-domain peers are local: never limited.
#[test]
fn unix_peers_are_not_limited() {
    let running = serve(
        bind(Family::Unix, Hold)
            .max_per_ip(Some(1))
            .idle_timeout(Some(TIMEOUT)),
    );
    let clients: Vec<_> = (0..3).map(|_| held(&running.addr).0).collect();
    for client in &clients {
        client.shutdown_write();
    }
    running.shutdown();
}

/// Under `WhenFull::Refuse` the handler's `refuse` hears `Full`; an
/// `on_refused` hook, if set, speaks instead.
#[test]
fn refuse_hears_full_unless_on_refused_is_set() {
    for (hook, expected) in [
        (false, &b"refused: the server is full\n"[..]),
        (true, b"busy\n"),
    ] {
        let mut builder = bind(Family::Tcp, Hold)
            .max_connections(1)
            .when_full(WhenFull::Refuse)
            .idle_timeout(Some(TIMEOUT));
        if hook {
            builder = builder.on_refused(|stream| {
                let _ = stream.write_all(b"busy\n");
            });
        }
        let running = serve(builder);
        let (first, _) = held(&running.addr);
        let mut second = connect(&running.addr);
        assert_eq!(second.rest(), expected);
        first.shutdown_write();
        running.shutdown();
    }
}

/// A prefork worker killed in the middle of a conversation frees its
/// place in the parent's count, and so does a forked child: with a limit
/// of 1, the next client from the same address is served.
#[test]
fn a_dead_process_frees_its_place() {
    if !isolated("per_address::a_dead_process_frees_its_place") {
        return;
    }
    for model in [
        Model::Forking { max_children: 40 },
        Model::Prefork {
            workers: 2,
            max_requests: None,
        },
    ] {
        let running = serve(forking_allowed(
            bind(Family::Tcp, Hold)
                .model(model)
                .max_per_ip(Some(1))
                .idle_timeout(Some(TIMEOUT)),
        ));
        let (mut first, pid) = held(&running.addr);
        let mut refused = connect(&running.addr);
        assert_eq!(refused.rest(), OVER, "{model}");
        kill_9(pid);
        assert!(
            first.closed_within(TIMEOUT),
            "{model}: the killed one's client"
        );
        wait_until("the place is free again", TIMEOUT, || {
            let mut again = connect(&running.addr);
            again.send(b"pid\n");
            let line = again.line();
            again.shutdown_write();
            line.trim_end().parse::<u32>().is_ok()
        });
        running.shutdown_within(TIMEOUT + Duration::from_secs(5));
        wait_until("no child left", TIMEOUT, || live_children().is_empty());
    }
}
