//! Children that end badly and workers that come and go: a child that
//! panics, aborts or is killed takes only its own connection down and is
//! counted as failed; a prefork worker is recycled after `max_requests`
//! connections, and one killed in the middle of a conversation is
//! replaced.

use std::collections::HashMap;

use socketserver::Model;

use super::{ask, bind, settle, KillChildrenOnFailure, Script, PREFORK, PROCESS_MODELS};
use crate::util::kill_9;
use crate::util::{
    child_processes, isolated, live_children, proc_stat, serve, stream_examine, wait_until,
    zombies, Family, TIMEOUT,
};

/// A child that panics (inside the handler, caught by the life cycle; and
/// outside the handler's steps, when the handler value is dropped, which
/// ends the child with status 101), one that calls `abort`, and one killed
/// by SIGKILL: each takes only its own connection down (its client reads
/// end of input), the server serves the next client, and the parent counts
/// each as failed.
#[test]
fn crashing_children_leave_the_server_serving() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if !isolated("processes::lifecycle::crashing_children_leave_the_server_serving") {
        return;
    }
    let _cleanup = KillChildrenOnFailure;
    // No core file for the aborting child.
    let (_, hard) = getrlimit(Resource::RLIMIT_CORE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_CORE, 0, hard).expect("no core dumps");

    for model in PROCESS_MODELS {
        let running = serve(
            bind(Family::Tcp, Script::default())
                .model(model)
                .idle_timeout(Some(TIMEOUT)),
        );
        let stats = running.stats.clone();
        for (n, crash) in ["panic", "bomb", "abort", "kill"].into_iter().enumerate() {
            let case = format!("{model:?}, a child that crashes with {crash}");
            let command = if crash == "kill" { "hold" } else { crash };
            let (mut client, pid) = ask(&running.addr, command);
            if crash == "kill" {
                kill_9(pid);
            }
            assert!(
                client.closed_within(TIMEOUT),
                "{case}: its client reads end of input"
            );
            wait_until(&format!("{case}: counted as failed"), TIMEOUT, || {
                stats.snapshot().failed == n as u64 + 1
            });
            stream_examine(&running.addr);
            wait_until(&format!("{case}: the next one served"), TIMEOUT, || {
                stats.snapshot().completed == n as u64 + 1
            });
            if crash != "panic" {
                // The crashed process is gone, and reaped.
                wait_until(&format!("{case}: {pid} reaped"), TIMEOUT, || {
                    proc_stat(pid).is_none()
                });
            }
        }
        wait_until(&format!("{model:?}: all ended"), TIMEOUT, || {
            stats.snapshot().active == 0
        });
        let c = stats.snapshot();
        assert_eq!(
            (c.accepted, c.active, c.completed, c.failed, c.timed_out),
            (8, 0, 4, 4, 0),
            "{model:?}"
        );
        if model == PREFORK {
            // The workers that died were replaced.
            settle(&format!("{model:?}: two workers again"), (2, 0), || {
                (live_children().len(), zombies().len())
            });
        } else {
            assert_eq!(child_processes(), [], "{model:?}: every child reaped");
        }
        let report = running.shutdown();
        assert_eq!((report.drained, report.cut), (0, 0), "{model:?}");
        assert_eq!(child_processes(), [], "{model:?}");
    }
}

/// `Prefork { workers: 2, max_requests: Some(3) }`: twelve sequential
/// connections are all served, by at least four workers (no worker serves
/// more than three): the ones that reached three were replaced.
#[test]
fn prefork_recycles_workers_after_max_requests() {
    if !isolated("processes::lifecycle::prefork_recycles_workers_after_max_requests") {
        return;
    }
    let _cleanup = KillChildrenOnFailure;
    let running = serve(
        bind(Family::Tcp, Script::default())
            .model(Model::Prefork {
                workers: 2,
                max_requests: Some(3),
            })
            .idle_timeout(Some(TIMEOUT)),
    );
    let mut served: HashMap<u32, usize> = HashMap::new();
    for _ in 0..12 {
        let (mut client, pid) = ask(&running.addr, "pid");
        assert_eq!(client.rest(), b"");
        *served.entry(pid).or_default() += 1;
    }
    assert!(
        served.len() > 2 && served.values().all(|&n| n <= 3),
        "at most three connections per worker, so at least four workers: {served:?}"
    );
    assert!(served.len() >= 4, "{served:?}");
    let stats = running.stats.clone();
    settle(
        "(completed, active, workers, zombies)",
        (12, 0, 2, 0),
        || {
            let c = stats.snapshot();
            (
                c.completed,
                c.active,
                live_children().len(),
                zombies().len(),
            )
        },
    );
    let report = running.shutdown();
    assert_eq!((report.drained, report.cut), (0, 0));
    assert_eq!(child_processes(), []);
}

/// `Prefork` with workers never recycled: a worker killed with SIGKILL in
/// the middle of a conversation is replaced. Both workers are made busy
/// (so their pids are known), one is killed: its client reads end of
/// input, the parent counts the connection as failed and starts a new
/// worker (two children again); the next client is served by that new
/// worker (the other is still busy), and clients keep being served.
#[test]
fn prefork_respawns_a_killed_worker() {
    if !isolated("processes::lifecycle::prefork_respawns_a_killed_worker") {
        return;
    }
    let _cleanup = KillChildrenOnFailure;
    let running = serve(
        bind(Family::Tcp, Script::default())
            .model(PREFORK)
            .idle_timeout(Some(TIMEOUT)),
    );
    let stats = running.stats.clone();
    let (mut first, killed) = ask(&running.addr, "hold");
    let (mut second, survivor) = ask(&running.addr, "hold");
    assert_ne!(killed, survivor, "one connection per worker");
    let mut workers = vec![killed, survivor];
    workers.sort_unstable();
    wait_until("both workers busy", TIMEOUT, || {
        stats.snapshot().active == 2
    });
    assert_eq!(live_children(), workers);

    kill_9(killed);
    assert!(first.closed_within(TIMEOUT), "the killed worker's client");
    wait_until("a new worker replaces the killed one", TIMEOUT, || {
        let live = live_children();
        live.len() == 2 && !live.contains(&killed) && live.contains(&survivor)
    });
    assert_eq!(zombies(), []);
    let c = stats.snapshot();
    assert_eq!((c.accepted, c.failed, c.active), (2, 1, 1));

    let (mut third, new) = ask(&running.addr, "hold");
    assert!(
        new != killed && new != survivor,
        "served by the new worker {new} (killed {killed}, busy {survivor})"
    );
    let mut workers = vec![survivor, new];
    workers.sort_unstable();
    assert_eq!(live_children(), workers);
    for client in [&mut second, &mut third] {
        client.shutdown_write();
        assert_eq!(client.rest(), b"");
    }
    for _ in 0..3 {
        stream_examine(&running.addr);
    }
    wait_until("all ended", TIMEOUT, || {
        let c = stats.snapshot();
        c.completed == 5 && c.active == 0
    });
    let c = stats.snapshot();
    assert_eq!((c.accepted, c.completed, c.failed), (6, 5, 1));
    let report = running.shutdown();
    assert_eq!((report.drained, report.cut), (0, 0));
    assert_eq!(child_processes(), []);
}
