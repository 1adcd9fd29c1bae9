//! The Shell handler's commands as processes: a command past its time
//! limit, or whose client disconnects, is killed with its whole process
//! group; output past the limit is cut; twenty clients at once, and every
//! model, leave no zombie and no orphan; a server that stops or dies
//! mid-command leaves none running. Processes are looked at in /proc, by the process
//! group ids the commands themselves report. The helpers that start
//! servers and talk to them are in `shell.rs`.

use std::fs;
use std::time::{Duration, Instant};

use crate::shell::*;
use crate::util::*;

/// A process as /proc shows it.
#[derive(Clone, Copy, Debug)]
struct Proc {
    pid: i32,
    state: char,
    ppid: i32,
    pgrp: i32,
}

fn processes() -> Vec<Proc> {
    let mut all = Vec::new();
    for entry in fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // Gone between the listing and the read: skip it.
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parens.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        all.push(Proc {
            pid,
            state: fields[0].chars().next().unwrap_or('?'),
            ppid: fields[1].parse().unwrap_or(0),
            pgrp: fields[2].parse().unwrap_or(0),
        });
    }
    all
}

/// Every process in group `pgid`, zombies included.
fn group(pgid: i32) -> Vec<Proc> {
    processes().into_iter().filter(|p| p.pgrp == pgid).collect()
}

/// Every descendant of `root` (children, grandchildren...).
fn descendants(root: i32) -> Vec<Proc> {
    let all = processes();
    let mut found: Vec<Proc> = Vec::new();
    let mut parents = vec![root];
    while let Some(parent) = parents.pop() {
        for p in all.iter().filter(|p| p.ppid == parent) {
            parents.push(p.pid);
            found.push(*p);
        }
    }
    found
}

/// Asserts that no process (zombie or not) is left in group `pgid`, within
/// the step timeout: for a command whose client hung up, which the server
/// kills and reaps with no one to tell.
fn wait_group_gone(pgid: i32) {
    wait_until(TIMEOUT, &format!("process group {pgid} gone"), || {
        group(pgid).is_empty()
    });
}

/// Asserts that no process (zombie or not) is left in group `pgid` now: the
/// server kills and reaps the whole group, grandchildren included, before
/// it replies. (Were the killed grandchildren not reaped by the server,
/// they would be zombies of PID 1 at this moment.)
fn assert_group_gone(pgid: i32) {
    let left = group(pgid);
    assert!(left.is_empty(), "left in group {pgid}: {left:?}");
}

/// Asserts that the server has no zombie descendants (each of its children,
/// and their children, is reaped by its own parent), within the step
/// timeout.
fn wait_no_zombies(server: &ServerProcess) {
    let pid = server.child.id() as i32;
    wait_until(TIMEOUT, "no zombie under the server", || {
        descendants(pid).iter().all(|p| p.state != 'Z')
    });
}

/// At the time limit the whole process group is killed, the grandchild
/// too (`sleep 100 & sleep 100`): no process of the group is left, not even
/// a zombie, and the reply says it timed out.
#[test]
fn timeout_kills_the_whole_group() {
    let dir = TempDir::new("timeout");
    let server = serve_shell(dir.path(), &["--command-timeout", "1"]);
    let mut raw = Raw::status_mode(&server.addr);
    raw.send(b"echo $$ > pgid; echo started; sleep 100 & sleep 100\n");
    let pgid = wait_for_number(&dir.join("pgid"));
    // The shell and its two sleeps are alive, in the command's group.
    wait_until(TIMEOUT, "the command's processes started", || {
        group(pgid).iter().filter(|p| p.state != 'Z').count() >= 2
    });
    let header = raw.read_line();
    assert!(header.starts_with("8 timeout=1 time="), "{header:?}");
    raw.expect(b"started\n");
    assert_group_gone(pgid);
    wait_no_zombies(&server);

    // Tutorial mode says it in the output.
    let mut raw = Raw::connect(&server.addr);
    raw.tutorial(
        "echo started; sleep 100",
        b"started\n[timed out after 1 s: the command was killed]\n",
    );
}

/// Output past `--max-output` is discarded and the command stopped at once
/// (`yes` never ends by itself); the reply holds exactly the first bytes
/// and says it was cut.
#[test]
fn output_past_the_limit_is_cut() {
    let dir = TempDir::new("cut");
    let server = serve_shell(dir.path(), &["--max-output", "1000"]);
    let mut raw = Raw::status_mode(&server.addr);
    let started = Instant::now();
    let (status, body) = raw.run("yes");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped at the limit, not at the timeout"
    );
    assert_eq!(status, "cut=1000");
    assert_eq!(body, b"y\n".repeat(500));
    let (status, body) = raw.run("head -c 5000 /dev/zero");
    assert_eq!((status.as_str(), body.len()), ("cut=1000", 1000));
    assert!(body.iter().all(|&b| b == 0));
    // At the limit exactly, nothing is cut.
    assert_eq!(raw.run("head -c 1000 /dev/zero").0, "exit=0");

    let mut raw = Raw::connect(&server.addr);
    let mut expected = b"y\n".repeat(500);
    expected.extend_from_slice(b"[output cut at 1000 bytes: the command was stopped]\n");
    raw.tutorial("yes", &expected);

    let out = client_shell(&server.addr, &[], b"yes\n");
    assert_eq!(out.stdout, b"y\n".repeat(500));
    assert_eq!(
        status_lines(&out.stderr),
        ["[output cut at 1000 bytes: the command was stopped]"]
    );
}

/// A client that hangs up while its command runs gets the command's whole
/// process group killed, long before the time limit (30 s).
#[test]
fn disconnect_mid_command_kills_the_group() {
    let dir = TempDir::new("hangup");
    let server = serve_shell(dir.path(), &[]);
    for (mode, pgid_file) in [("status", "status.pgid"), ("tutorial", "tutorial.pgid")] {
        let mut raw = if mode == "status" {
            Raw::status_mode(&server.addr)
        } else {
            Raw::connect(&server.addr)
        };
        raw.send(format!("echo $$ > {pgid_file}; sleep 100 & sleep 100").as_bytes());
        if mode == "status" {
            raw.send(b"\n");
        }
        let pgid = wait_for_number(&dir.join(pgid_file));
        wait_until(TIMEOUT, "the command's processes started", || {
            group(pgid).iter().filter(|p| p.state != 'Z').count() >= 2
        });
        let hung_up = Instant::now();
        drop(raw);
        wait_group_gone(pgid);
        assert!(
            hung_up.elapsed() < Duration::from_secs(10),
            "{mode}: killed by the hang-up, not the timeout"
        );
    }
    wait_no_zombies(&server);
}

/// Under every model, the four ways a command ends (by itself leaving a
/// process in the background, at the time limit, at the output limit, by
/// the client's hang-up) leave no process of its group and no zombie; the
/// first three before the reply arrives.
#[test]
fn every_model_leaves_no_zombies_and_no_orphans() {
    for mode in ["sync", "threading", "pool", "forking", "prefork", "event"] {
        let dir = TempDir::new(mode);
        let server = serve_shell(
            dir.path(),
            &[
                "--mode",
                mode,
                "--workers",
                "2",
                "--command-timeout",
                "1",
                "--max-output",
                "1000",
            ],
        );
        let mut raw = Raw::status_mode(&server.addr);

        // A background process that outlives the shell is killed with it.
        let (status, body) = raw.run("sleep 100 >/dev/null 2>&1 & echo $$");
        assert_eq!(status, "exit=0", "{mode}");
        let pgid: i32 = String::from_utf8_lossy(&body).trim().parse().unwrap();
        assert_group_gone(pgid);

        // At the time limit.
        let (status, body) = raw.run_within("echo $$; sleep 100 & sleep 100", TIMEOUT);
        assert_eq!(status, "timeout=1", "{mode}");
        let pgid: i32 = String::from_utf8_lossy(&body).trim().parse().unwrap();
        assert_group_gone(pgid);

        // At the output limit.
        let (status, body) = raw.run("echo $$; sleep 100 & yes");
        assert_eq!((status.as_str(), body.len()), ("cut=1000", 1000), "{mode}");
        let first = body.split(|&b| b == b'\n').next().unwrap();
        let pgid: i32 = String::from_utf8_lossy(first).parse().unwrap();
        assert_group_gone(pgid);

        // The client hangs up.
        let pgid_file = dir.join("pgid");
        raw.send(b"echo $$ > pgid; exec sleep 100\n");
        let pgid = wait_for_number(&pgid_file);
        drop(raw);
        wait_group_gone(pgid);

        wait_no_zombies(&server);
        // The server still serves.
        let mut raw = Raw::status_mode(&server.addr);
        assert_eq!(
            raw.run("echo $((6*7))"),
            ("exit=0".into(), b"42\n".to_vec()),
            "{mode}"
        );
    }
}

/// The server stops (SIGTERM, then the drain timeout passes) or dies
/// (SIGKILL) while a command runs: the command's group is killed all the
/// same. Threading and event: the drain cuts the connection, and the
/// handler kills and reaps the group. Forking: the busy child is killed by SIGTERM at the
/// drain deadline, and the group's watcher kills the group. SIGKILL: the
/// watcher too. (Processes killed after their reaper died are left to PID 1
/// to reap, so only live processes are looked for in those two cases.)
#[test]
fn a_server_that_stops_or_dies_mid_command_leaves_no_command_running() {
    for (mode, signal) in [
        ("threading", "TERM"),
        ("forking", "TERM"),
        ("threading", "KILL"),
        ("event", "TERM"),
        ("event", "KILL"),
    ] {
        let dir = TempDir::new(&format!("stop-{mode}-{signal}"));
        let mut server = serve_shell(dir.path(), &["--mode", mode, "--drain-timeout", "1"]);
        let mut raw = Raw::status_mode(&server.addr);
        raw.send(b"echo $$ > pgid; sleep 100 & sleep 100\n");
        let pgid = wait_for_number(&dir.join("pgid"));
        wait_until(TIMEOUT, "the command's processes started", || {
            group(pgid).iter().filter(|p| p.state != 'Z').count() >= 3
        });
        server.signal(signal);
        let status = server.wait(TIMEOUT);
        if signal == "TERM" {
            assert!(status.success(), "{mode}: serve exited with {status}");
        }
        if matches!(mode, "threading" | "event") && signal == "TERM" {
            wait_group_gone(pgid);
        } else {
            wait_until(
                TIMEOUT,
                &format!("{mode}/{signal}: group {pgid} dead"),
                || group(pgid).iter().all(|p| p.state == 'Z'),
            );
        }
        // The client got no reply: the connection ended.
        raw.expect_eof();
    }
}

/// 20 clients at once, each with a command that waits until all 20
/// commands run (so they must run side by side), each getting its own
/// output back.
#[test]
fn twenty_concurrent_clients() {
    let dir = TempDir::new("twenty");
    let server = serve_shell(dir.path(), &["--command-timeout", "15"]);
    let addr = server.addr.clone();
    let clients: Vec<_> = (0..20)
        .map(|n| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut raw = Raw::status_mode(&addr);
                let command = format!(
                    "touch started.{n}; i=0; \
                     while [ $(ls | grep -c '^started') -lt 20 ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done; \
                     echo client {n}"
                );
                raw.run_within(&command, TIMEOUT)
            })
        })
        .collect();
    for (n, client) in clients.into_iter().enumerate() {
        let (status, body) = client.join().expect("client thread");
        assert_eq!(status, "exit=0", "client {n}");
        assert_eq!(String::from_utf8_lossy(&body), format!("client {n}\n"));
    }
    wait_no_zombies(&server);
}
