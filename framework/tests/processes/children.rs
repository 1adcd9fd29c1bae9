//! What the parent keeps of its children: after thousands of connections
//! under `Forking` and `Prefork` (workers recycled), no zombie and no
//! descriptor left behind; and `Forking`'s `max_children` limit, never
//! exceeded, sampled from `/proc` and from the `active` counter while 200
//! clients queue for five places.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use socketserver::Model;

use super::{ask, bind, settle, KillChildrenOnFailure, Script};
use crate::util::{
    child_processes, isolated, live_children, open_fds, proc_stat, run, serve, try_connect,
    wait_until, zombies, Client, Family, TIMEOUT,
};

/// 1,000 sequential connections (each served by a child of its own: 1,000
/// distinct pids), then 100 live at once (100 children alive together, and
/// no other child of ours), leave no zombie and no descriptor
/// in the parent: once the counters say every connection ended and none is
/// active, no process of ours has the parent's pid as parent, and the
/// parent holds exactly the descriptors it held before the first
/// connection (and, once shut down, before the server).
#[test]
fn forking_leaves_no_zombie_or_descriptor_behind() {
    if !isolated("processes::children::forking_leaves_no_zombie_or_descriptor_behind") {
        return;
    }
    let _cleanup = KillChildrenOnFailure;
    let fds_before = open_fds();
    let server = bind(Family::Tcp, Script::default())
        .model(Model::Forking { max_children: 100 })
        .idle_timeout(Some(TIMEOUT))
        .build()
        .expect("build");
    let fds_serving = open_fds();
    let running = run(server);
    let stats = running.stats.clone();
    let ended = |n: u64| {
        let stats = stats.clone();
        move || {
            let c = stats.snapshot();
            c.completed == n && c.active == 0
        }
    };

    let mut served = HashSet::new();
    for _ in 0..1000 {
        let (mut client, pid) = ask(&running.addr, "pid");
        assert_eq!(client.rest(), b"");
        served.insert(pid);
    }
    assert_eq!(served.len(), 1000, "each connection in a child of its own");
    wait_until("1000 connections ended", TIMEOUT, ended(1000));
    assert_eq!(zombies(), [], "zombies after 1000 sequential connections");
    assert_eq!(child_processes(), [], "children after 1000 connections");
    assert_eq!(
        open_fds(),
        fds_serving,
        "descriptors after 1000 connections"
    );

    let mut clients = Vec::new();
    let mut pids = Vec::new();
    for _ in 0..100 {
        let (client, pid) = ask(&running.addr, "hold");
        clients.push(client);
        pids.push(pid);
    }
    wait_until("100 children counted", TIMEOUT, || {
        stats.snapshot().active == 100
    });
    pids.sort_unstable();
    assert_eq!(live_children(), pids, "one child per live connection");
    for client in &clients {
        client.shutdown_write();
    }
    for client in &mut clients {
        assert_eq!(client.rest(), b"");
    }
    drop(clients);
    wait_until("1100 connections ended", TIMEOUT, ended(1100));
    assert_eq!(zombies(), [], "zombies after 100 concurrent connections");
    assert_eq!(child_processes(), [], "children after 100 concurrent");
    assert_eq!(open_fds(), fds_serving, "descriptors after 100 concurrent");

    let c = stats.snapshot();
    assert_eq!((c.accepted, c.failed, c.timed_out), (1100, 0, 0));
    let report = running.shutdown();
    assert_eq!((report.drained, report.cut), (0, 0));
    assert_eq!(child_processes(), []);
    assert_eq!(open_fds(), fds_before, "descriptors once shut down");
}

/// The same for `Prefork`, with workers recycled every 50 connections (so at
/// least 20 workers serve the first 1,000, none more than 50 of them; each
/// recycled one is reaped and replaced): no zombie, and the parent holds the
/// descriptors of an idle server with its two workers (its ends of each
/// worker's report and control socket pairs); once shut down, those of
/// before the server.
#[test]
fn prefork_leaves_no_zombie_or_descriptor_behind() {
    if !isolated("processes::children::prefork_leaves_no_zombie_or_descriptor_behind") {
        return;
    }
    let _cleanup = KillChildrenOnFailure;
    let fds_before = open_fds();
    let server = bind(Family::Tcp, Script::default())
        .model(Model::Prefork {
            workers: 2,
            max_requests: Some(50),
        })
        .idle_timeout(Some(TIMEOUT))
        .build()
        .expect("build");
    // Each worker: the parent's ends of its report pair and control pair.
    let fds_serving = open_fds() + 2 * 2;
    let running = run(server);
    let stats = running.stats.clone();
    // A worker may be in the middle of being replaced when the counters
    // settle; what must hold, once it is, is exact.
    let idle = || {
        let stats = stats.clone();
        move || {
            let c = stats.snapshot();
            (
                c.completed,
                c.active,
                live_children().len(),
                zombies().len(),
                open_fds(),
            )
        }
    };

    let mut served: HashMap<u32, usize> = HashMap::new();
    for _ in 0..1000 {
        let (mut client, pid) = ask(&running.addr, "pid");
        assert_eq!(client.rest(), b"");
        *served.entry(pid).or_default() += 1;
    }
    assert!(
        served.len() >= 20 && served.values().all(|&n| n <= 50),
        "at most 50 connections per worker, so at least 20 workers: {served:?}"
    );
    settle(
        "after 1000 sequential connections: (completed, active, workers, zombies, descriptors)",
        (1000, 0, 2, 0, fds_serving),
        idle(),
    );

    // 100 at once: all connected before the workers take them in turn.
    let mut clients: Vec<Client> = (0..100).map(|_| running.connect()).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client.send(format!("{i}\n").as_bytes());
    }
    for (i, client) in clients.iter_mut().enumerate() {
        assert_eq!(client.line(), format!("{i}\n"));
        assert_eq!(client.rest(), b"");
    }
    drop(clients);
    settle(
        "after 100 concurrent connections: (completed, active, workers, zombies, descriptors)",
        (1100, 0, 2, 0, fds_serving),
        idle(),
    );

    let c = stats.snapshot();
    assert_eq!((c.accepted, c.failed, c.timed_out), (1100, 0, 0));
    let report = running.shutdown();
    assert_eq!((report.drained, report.cut), (0, 0));
    assert_eq!(child_processes(), []);
    assert_eq!(open_fds(), fds_before, "descriptors once shut down");
}

/// How many children of ours were alive at one same instant, at least:
/// the pids of a scan of `/proc` that are still children of ours when read
/// again after the scan. Each was alive from its first reading to its
/// second, and every first reading comes before every second one, so all
/// were alive together in between. (Zombies count: a child not yet reaped
/// still holds its place.) A plain scan could count a child reaped during
/// the scan together with one forked after it.
fn children_alive_together() -> usize {
    let me = std::process::id();
    child_processes()
        .into_iter()
        .filter(|&(pid, _)| proc_stat(pid).is_some_and(|(_, ppid)| ppid == me))
        .count()
}

/// The most children and the most active connections seen.
#[derive(Default)]
struct Peak {
    children: usize,
    active: u64,
    samples: usize,
}

impl Peak {
    fn sample(&mut self, stats: &socketserver::Stats) {
        self.children = self.children.max(children_alive_together());
        self.active = self.active.max(stats.snapshot().active);
        self.samples += 1;
    }
}

/// `max_children` is never exceeded. With `max_children: 5` and a handler
/// that holds each connection until its client stops sending, five clients
/// take the five places; 195 more connect at once from threads, and while
/// they do the parent accepts none of them (`accepted` stays 5) and five
/// children live. Then the five let go, and the 195 are served, five at a
/// time, each by a child of its own (200 distinct pids). All along, the
/// children alive together (from `/proc`) and `active` are sampled: never
/// more than 5.
#[test]
fn forking_never_exceeds_max_children() {
    const MAX: usize = 5;
    const CLIENTS: usize = 200;
    const WAIT: Duration = Duration::from_secs(30);
    if !isolated("processes::children::forking_never_exceeds_max_children") {
        return;
    }
    let _cleanup = KillChildrenOnFailure;
    let running = serve(
        bind(Family::Tcp, Script::default())
            .model(Model::Forking { max_children: MAX })
            .idle_timeout(Some(WAIT)),
    );
    let stats = running.stats.clone();
    let mut peak = Peak::default();

    let mut holders: Vec<(Client, u32)> = (0..MAX).map(|_| ask(&running.addr, "hold")).collect();
    wait_until("five children", TIMEOUT, || {
        stats.snapshot().active == MAX as u64
    });
    peak.sample(&stats);
    assert_eq!(peak.children, MAX, "five children hold the five places");

    let connected = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS - MAX)
        .map(|i| {
            let addr = running.addr.clone();
            let (connected, finished) = (Arc::clone(&connected), Arc::clone(&finished));
            thread::Builder::new()
                .name(format!("client {i}"))
                .stack_size(128 * 1024)
                .spawn(move || -> Result<u32, String> {
                    let result = (|| {
                        let mut client = try_connect(&addr).map_err(|e| format!("connect: {e}"))?;
                        client.set_read_timeout(Some(WAIT));
                        client
                            .write_all(b"hold\n")
                            .map_err(|e| format!("send: {e}"))?;
                        connected.fetch_add(1, Ordering::SeqCst);
                        let mut line = String::new();
                        io::BufRead::read_line(&mut client, &mut line)
                            .map_err(|e| format!("read the pid: {e}"))?;
                        let pid = line
                            .trim_end()
                            .parse::<u32>()
                            .map_err(|_| format!("expected a pid, got {line:?}"))?;
                        client.shutdown_write();
                        let mut rest = Vec::new();
                        io::Read::read_to_end(&mut client, &mut rest)
                            .map_err(|e| format!("read to the end: {e}"))?;
                        if !rest.is_empty() {
                            return Err(format!("unexpected {rest:?}"));
                        }
                        Ok(pid)
                    })();
                    if result.is_err() {
                        // Count the failures too, so the test stops waiting.
                        connected.fetch_add(1, Ordering::SeqCst);
                    }
                    finished.fetch_add(1, Ordering::SeqCst);
                    result.map_err(|e| format!("client {i}: {e}"))
                })
                .expect("spawn a client thread")
        })
        .collect();

    // While they connect, the parent is full: it accepts none of them.
    let deadline = Instant::now() + WAIT;
    while connected.load(Ordering::SeqCst) < CLIENTS - MAX {
        assert!(Instant::now() < deadline, "195 clients connect");
        peak.sample(&stats);
        thread::sleep(Duration::from_millis(1));
    }
    peak.sample(&stats);
    assert_eq!(
        stats.snapshot().accepted,
        MAX as u64,
        "nothing accepted while full"
    );
    assert_eq!(live_children().len(), MAX);

    // The five let go; the others are served, five at a time.
    for (client, _) in &holders {
        client.shutdown_write();
    }
    for (client, _) in &mut holders {
        assert_eq!(client.rest(), b"");
    }
    while finished.load(Ordering::SeqCst) < CLIENTS - MAX {
        assert!(Instant::now() < deadline, "the 195 clients are served");
        peak.sample(&stats);
        thread::sleep(Duration::from_millis(1));
    }
    let mut pids: HashSet<u32> = holders.iter().map(|&(_, pid)| pid).collect();
    let mut failures = Vec::new();
    for client in clients {
        match client.join().expect("a client thread") {
            Ok(pid) => {
                pids.insert(pid);
            }
            Err(e) => failures.push(e),
        }
    }
    assert_eq!(failures, Vec::<String>::new(), "every client is served");
    assert_eq!(pids.len(), CLIENTS, "each connection in a child of its own");

    wait_until("every connection ended", TIMEOUT, || {
        let c = stats.snapshot();
        c.completed == CLIENTS as u64 && c.active == 0
    });
    peak.sample(&stats);
    assert!(
        peak.children <= MAX && peak.active <= MAX as u64,
        "at most {MAX} children: saw {} children and {} active in {} samples",
        peak.children,
        peak.active,
        peak.samples
    );
    assert_eq!(zombies(), []);
    assert_eq!(child_processes(), []);
    let c = stats.snapshot();
    assert_eq!((c.accepted, c.failed, c.timed_out), (200, 0, 0));
    let report = running.shutdown();
    assert_eq!((report.drained, report.cut), (0, 0));
}
