//! The process models, [`Model::Forking`] (Python's `ForkingMixIn`) and
//! [`Model::Prefork`]: CPython's forking scenarios, and what only processes
//! can get wrong: zombies, descriptors left in the parent, the
//! `max_children` limit, children that crash or are killed, workers that
//! are recycled or die, draining children at shutdown, counters that cross
//! the process boundary.
//!
//! Every test runs alone in a child process of this binary
//! ([`util::isolated`]), for two reasons: `fork` in libtest's
//! multi-threaded process is unsafe (a forked child inherits, held for ever,
//! whatever lock another test thread held at that instant), and the counts
//! of child processes (`/proc/*/stat` with our pid as parent) and of
//! descriptors (`/proc/self/fd`) are then exact.
//!
//! One thing to know when a forking server and its test clients share a
//! process: a child is forked while the test holds its client sockets, so
//! each child holds copies of them. Closing a client socket in the test then
//! does not end the conversation (the child's own copy keeps it open), so
//! clients that must end a conversation shut their sending side down
//! ([`Client::shutdown_write`]), which acts on the socket whatever copies
//! exist, as a remote client's close would.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use socketserver::{
    Address, Builder, Counters, Error, Failure, Model, RequestHandler, Stream, WhenDraining,
};

use crate::util::{
    self, assert_closed, assert_listens_where_asked, child_processes, connect, isolated,
    live_children, open_fds, proc_stat, run, serve, stream_examine, try_connect, wait_until,
    zombies, Chat, Client, Family, LineEcho, StopsServer, BYE, FAMILIES, TEST_STR, TIMEOUT,
};

/// Lets the server fork although this process has other threads: libtest's
/// and the tests' own (each test serves from a thread of its own, and the
/// process models refuse by default, see `forking_refuses_a_process_with_threads`).
fn forking_allowed<H>(builder: Builder<H>) -> Builder<H> {
    // SAFETY: each test runs alone in a child process of its own
    // (`isolated`), where the other threads are libtest's main thread,
    // waiting for the test, and the test's thread, which does socket I/O
    // on its clients and waits on conditions while the server forks; none
    // holds a Rust-level lock that a forked child uses (the children log
    // through `FileLogger`, which takes no lock), and glibc makes malloc
    // fork-safe.
    unsafe { builder.allow_fork_with_threads() }
}

/// A builder for `handler` on a free loopback port or a fresh Unix path,
/// allowed to fork here.
fn bind<H: RequestHandler>(family: Family, handler: H) -> Builder<H> {
    forking_allowed(util::bind(family, handler))
}

/// The same, with the path of a Unix socket.
fn bind_with_path<H: RequestHandler>(family: Family, handler: H) -> (Builder<H>, Option<PathBuf>) {
    let (builder, path) = util::bind_with_path(family, handler);
    (forking_allowed(builder), path)
}

/// Python's `ForkingMixIn` defaults: 40 children at most.
const FORKING: Model = Model::Forking { max_children: 40 };
/// Two workers, never recycled.
const PREFORK: Model = Model::Prefork {
    workers: 2,
    max_requests: None,
};
const PROCESS_MODELS: [Model; 2] = [FORKING, PREFORK];

/// A handler whose first line says what to do, so that one server can be
/// asked to succeed, fail, panic, crash or hang. Every command but the echo
/// first answers with the pid of the process serving it, on a line of its
/// own, sent at once.
///
/// | line | then |
/// |---|---|
/// | `pid` | returns |
/// | `hold` | waits for one more line (or end of input), returns |
/// | `sleep MS` | sleeps MS milliseconds, answers `done`, returns |
/// | `fail` | returns an error |
/// | `panic` | panics (inside `handle`: caught by the life cycle) |
/// | `bomb` | returns; dropping the handler value then panics, outside the handler's steps |
/// | `abort` | calls `std::process::abort` |
/// | `log` | allocates 1 MiB, logs a line about it, returns |
/// | anything else | echoes that line, returns (Python's test handler) |
#[derive(Clone, Default)]
struct Script {
    /// Set by `bomb`: the handler panics when dropped.
    bomb: bool,
}

/// How the `log` command's line reads, for the pid that logged it.
fn logged_line(pid: u32) -> String {
    format!("child {pid} allocated 1048576 bytes (sum 7340032)")
}

impl RequestHandler for Script {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        let mut line = Vec::new();
        if stream.read_line_into(&mut line)? == 0 {
            return Ok(());
        }
        let pid = std::process::id();
        let command = String::from_utf8_lossy(&line).trim_end().to_string();
        if !matches!(
            command.split(' ').next(),
            Some("pid" | "hold" | "sleep" | "fail" | "panic" | "bomb" | "abort" | "log")
        ) {
            return stream.write_all(&line);
        }
        if command == "log" {
            let block = vec![7u8; 1 << 20];
            let sum: u64 = block.iter().map(|&b| u64::from(b)).sum();
            log::info!(
                "child {pid} allocated {} bytes (sum {sum})",
                std::hint::black_box(&block).len()
            );
        }
        stream.write_all(format!("{pid}\n").as_bytes())?;
        stream.flush()?;
        match command.as_str() {
            "hold" => {
                line.clear();
                stream.read_line_into(&mut line)?;
                Ok(())
            }
            "fail" => Err(io::Error::other("failed on purpose")),
            "panic" => panic!("panicked on purpose"),
            "bomb" => {
                self.bomb = true;
                Ok(())
            }
            "abort" => std::process::abort(),
            sleep if sleep.starts_with("sleep ") => {
                let ms = sleep["sleep ".len()..].parse().expect("sleep MS");
                thread::sleep(Duration::from_millis(ms));
                stream.write_all(b"done\n")
            }
            _ => Ok(()),
        }
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        if std::mem::take(&mut self.bomb) {
            panic!("the handler value panicked on purpose when dropped");
        }
    }
}

/// Connects, sends `command` and reads the pid line the [`Script`] handler
/// answers with.
fn ask(addr: &Address, command: &str) -> (Client, u32) {
    let mut client = connect(addr);
    client.send(format!("{command}\n").as_bytes());
    let line = client.line();
    let pid = line
        .trim_end()
        .parse()
        .unwrap_or_else(|_| panic!("{command}: expected a pid line, got {line:?}"));
    assert_ne!(
        pid,
        std::process::id(),
        "{command}: served in a process of its own, not in the server's"
    );
    (client, pid)
}

/// `kill -9 PID`, for a pid that a handler reported: only once it is known
/// to be a child of this process (one of the server's), never anything else.
fn kill_9(pid: u32) {
    assert_eq!(
        proc_stat(pid).map(|(_, ppid)| ppid),
        Some(std::process::id()),
        "{pid} is a child process of the server"
    );
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -9 {pid}: {status}");
}

/// Kills, with SIGKILL, the children of this process still running when a
/// test fails (the server's, found by their parent pid in `/proc`), so that
/// none outlives the failed test: a child left behind would keep the pipes
/// that [`util::isolated`] reads, and the test would hang instead of
/// failing. A passing test leaves none, and this does nothing.
struct KillChildrenOnFailure;

impl Drop for KillChildrenOnFailure {
    fn drop(&mut self) {
        if thread::panicking() {
            for pid in live_children() {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    }
}

/// A fresh path for a file of this test, unique per process.
fn temp_path(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("ss-{}-{n}-{name}", std::process::id()))
}

/// Appends `line` to the file at `path`: one `write` on a file opened for
/// appending, so that lines of several processes never mix.
fn append(path: &Path, line: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the record file");
    file.write_all(line.as_bytes())
        .expect("append to the record file");
}

fn lines_of(path: &Path) -> Vec<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.lines().map(str::to_owned).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("read {}: {e}", path.display()),
    }
}

/// The counters that a test checks, in one tuple for one exact comparison:
/// (accepted, active, refused, completed, timed_out, failed, bytes_read,
/// bytes_written, accept_errors).
fn counts(c: Counters) -> [u64; 9] {
    [
        c.accepted,
        c.active,
        c.refused,
        c.completed,
        c.timed_out,
        c.failed,
        c.bytes_read,
        c.bytes_written,
        c.accept_errors,
    ]
}

/// Waits until `observe` returns `expected`; on the deadline, fails showing
/// the last observation next to the expected one.
fn settle<T: PartialEq + std::fmt::Debug>(what: &str, expected: T, mut observe: impl FnMut() -> T) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let seen = observe();
        if seen == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: after {TIMEOUT:?}, {seen:?}, expected {expected:?}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// `SocketServerTest.test_ForkingTCPServer` and
/// `test_ForkingUnixStreamServer`, wrapped in CPython's `simple_subprocess`:
/// before the server starts, the test forks a child of its own, which exits
/// with status 72 at once; three clients each get `hello world\n` back;
/// the server shuts down, its socket is closed and a Unix socket's file is
/// gone; then the test's own child is still there to be reaped, with its
/// status 72: the server waited only for its own children, never with
/// `waitpid(-1)`. Under `Prefork` too (whose parent reaps its workers).
#[test]
fn forking_servers_python_scenarios() {
    if !isolated("processes::forking_servers_python_scenarios") {
        return;
    }
    let _cleanup = KillChildrenOnFailure;
    for model in PROCESS_MODELS {
        for family in FAMILIES {
            let case = format!("{model:?} over {family:?}");
            let mut own = Command::new("sh")
                .args(["-c", "exit 72"])
                .spawn()
                .expect("spawn sh");
            let own_pid = own.id();
            // Exited and unreaped before the server starts: a server that
            // reaped any child would take its status.
            wait_until(
                &format!("{case}: the test's own child has exited"),
                TIMEOUT,
                || proc_stat(own_pid).is_some_and(|(state, _)| state == 'Z'),
            );

            let (builder, path) = bind_with_path(family, LineEcho);
            let running = serve(builder.model(model));
            assert_listens_where_asked(&running.addr, path.as_ref());
            for _ in 0..3 {
                stream_examine(&running.addr);
            }
            let stats = running.stats.clone();
            wait_until(&format!("{case}: three served"), TIMEOUT, || {
                let c = stats.snapshot();
                c.completed == 3 && c.active == 0
            });
            let addr = running.addr.clone();
            let report = running.shutdown();
            assert_eq!((report.drained, report.cut), (0, 0), "{case}");
            assert_closed(&addr);
            if let Some(path) = &path {
                assert!(!path.exists(), "{case}: {} removed", path.display());
            }
            assert_eq!(
                child_processes(),
                [(own_pid, 'Z')],
                "{case}: the server's children are all reaped, the test's own is not"
            );
            let status = own
                .wait()
                .unwrap_or_else(|e| panic!("{case}: the test's own child was reaped: {e}"));
            assert_eq!(status.code(), Some(72), "{case}: its exit status");
            assert_eq!(child_processes(), [], "{case}");
        }
    }
}

/// `ErrorHandlerTest.test_forking_handled` and `test_forking_not_handled`:
/// the `handle_error` hook runs in the process that served the connection
/// (a forked child, a prefork worker), exactly once per failure, for a
/// handler that returns an error and for one that panics. The hook records
/// each call by appending a line to a file, since the child's memory is its
/// own. After each failure the server goes on serving.
#[test]
fn handle_error_runs_in_the_child_once_per_failure() {
    if !isolated("processes::handle_error_runs_in_the_child_once_per_failure") {
        return;
    }
    let _cleanup = KillChildrenOnFailure;
    for model in PROCESS_MODELS {
        for family in FAMILIES {
            let case = format!("{model:?} over {family:?}");
            let record = temp_path("handle-error.log");
            let file = record.clone();
            let running = serve(
                bind(family, Script::default())
                    .model(model)
                    .idle_timeout(Some(TIMEOUT))
                    .handle_error(move |_peer, failure: &Failure| {
                        let kind = match failure {
                            Failure::Panic { .. } => "panic",
                            _ => "error",
                        };
                        append(&file, &format!("{} {kind} {failure}\n", std::process::id()));
                    }),
            );
            let mut expected = Vec::new();
            let failures = [
                ("fail", "error handle failed: failed on purpose"),
                ("panic", "panic handle panicked: panicked on purpose"),
            ];
            for (n, (command, line)) in failures.iter().cycle().take(4).enumerate() {
                let (mut client, pid) = ask(&running.addr, command);
                assert_eq!(client.rest(), b"", "{case} {command}: then closed");
                let stats = running.stats.clone();
                // The child runs the hook before it reports the failure.
                wait_until(&format!("{case} {command}: counted"), TIMEOUT, || {
                    stats.snapshot().failed == n as u64 + 1
                });
                expected.push(format!("{pid} {line}"));
                assert_eq!(lines_of(&record), expected, "{case}: after {command}");
                // The server goes on.
                stream_examine(&running.addr);
            }
            let stats = running.stats.clone();
            wait_until(&format!("{case}: all ended"), TIMEOUT, || {
                let c = stats.snapshot();
                c.completed == 4 && c.active == 0
            });
            let c = stats.snapshot();
            assert_eq!(
                (c.accepted, c.completed, c.failed, c.timed_out),
                (8, 4, 4, 0),
                "{case}"
            );
            let report = running.shutdown();
            assert_eq!((report.drained, report.cut), (0, 0), "{case}");
            assert_eq!(lines_of(&record), expected, "{case}: no more calls");
            assert_eq!(child_processes(), [], "{case}");
            std::fs::remove_file(&record).expect("remove the record");
        }
    }
}

/// A child that panics (inside the handler, caught by the life cycle; and
/// outside the handler's steps, when the handler value is dropped, which
/// ends the child with status 101), one that calls `abort`, and one killed
/// by SIGKILL: each takes only its own connection down (its client reads
/// end of input), the server serves the next client, and the parent counts
/// each as failed.
#[test]
fn crashing_children_leave_the_server_serving() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if !isolated("processes::crashing_children_leave_the_server_serving") {
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

/// 1,000 sequential connections (each served by a child of its own: 1,000
/// distinct pids), then 100 live at once (100 children alive together, and
/// no other child of ours), leave no zombie and no descriptor
/// in the parent: once the counters say every connection ended and none is
/// active, no process of ours has the parent's pid as parent, and the
/// parent holds exactly the descriptors it held before the first
/// connection (and, once shut down, before the server).
#[test]
fn forking_leaves_no_zombie_or_descriptor_behind() {
    if !isolated("processes::forking_leaves_no_zombie_or_descriptor_behind") {
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
    if !isolated("processes::prefork_leaves_no_zombie_or_descriptor_behind") {
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
    if !isolated("processes::forking_never_exceeds_max_children") {
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

/// `Prefork { workers: 2, max_requests: Some(3) }`: twelve sequential
/// connections are all served, by at least four workers (no worker serves
/// more than three): the ones that reached three were replaced.
#[test]
fn prefork_recycles_workers_after_max_requests() {
    if !isolated("processes::prefork_recycles_workers_after_max_requests") {
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
    if !isolated("processes::prefork_respawns_a_killed_worker") {
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

/// Shutdown with a busy child drains it: the handler sleeps 300 ms before
/// it replies; the shutdown asked for meanwhile waits for it, the client
/// gets its reply, and the report says one drained, none cut. Under
/// `Prefork` the parent knows which workers are busy (their reports), and
/// counts the same.
#[test]
fn shutdown_drains_a_busy_child() {
    if !isolated("processes::shutdown_drains_a_busy_child") {
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
    if !isolated("processes::a_handler_in_a_child_process_stops_the_server") {
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
    if !isolated("processes::shutdown_cuts_a_stuck_child") {
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

/// A process model refuses to fork from a process with other threads: a
/// forked child would inherit, held for ever, any lock another thread held
/// at that instant. `build` says so with `Error::ForkWithThreads` (how many
/// threads, and what to do); with the `unsafe` opt-out it builds and
/// serves.
#[test]
fn forking_refuses_a_process_with_threads() {
    if !isolated("processes::forking_refuses_a_process_with_threads") {
        return;
    }
    let _cleanup = KillChildrenOnFailure;
    // A second thread for certain, whatever libtest does with its own.
    let (stop, parked) = std::sync::mpsc::channel::<()>();
    let other = thread::spawn(move || {
        let _ = parked.recv();
    });
    for model in PROCESS_MODELS {
        let refused = util::bind(Family::Tcp, LineEcho).model(model).build();
        match refused {
            Err(Error::ForkWithThreads {
                model: name,
                threads,
            }) => {
                assert_eq!(name, model.to_string(), "{model:?}");
                assert!(threads >= 2, "{model:?}: {threads} threads");
                let message = Error::ForkWithThreads {
                    model: name,
                    threads,
                }
                .to_string();
                assert!(
                    message.contains(&format!("this process has {threads} threads"))
                        && message.contains("allow_fork_with_threads"),
                    "{model:?}: {message}"
                );
            }
            other => panic!("{model:?}: built a forking server with threads: {other:?}"),
        }
        let running = serve(bind(Family::Tcp, LineEcho).model(model));
        let mut client = running.connect();
        assert_eq!(client.round_trip("hello\n"), "hello\n", "{model:?}");
        drop(client);
        running.shutdown();
        assert_eq!(child_processes(), [], "{model:?}");
    }
    drop(stop);
    other.join().expect("the parked thread");
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
    if !isolated("processes::drain_in_child_processes_keeps_or_ends_waiting_chats") {
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
    if !isolated("processes::listener_closes_at_once_while_children_drain") {
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

/// A logger that appends each record, with the pid of the process that
/// logged it, to a file: one `write` per record, no lock, so that it works
/// the same in forked children.
struct FileLogger {
    path: PathBuf,
}

impl log::Log for FileLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            append(
                &self.path,
                &format!(
                    "{} {} {}: {}\n",
                    std::process::id(),
                    record.level(),
                    record.target(),
                    record.args()
                ),
            );
        }
    }

    fn flush(&self) {}
}

/// A handler in a forked child (and in a prefork worker) can log through
/// the logger the application installed, and allocate: it fills 1 MiB and
/// logs its sum; the log file has that line from the child's pid, once,
/// next to the parent's own lines.
#[test]
fn a_child_can_log_and_allocate() {
    if !isolated("processes::a_child_can_log_and_allocate") {
        return;
    }
    let _cleanup = KillChildrenOnFailure;
    let path = temp_path("log.txt");
    log::set_boxed_logger(Box::new(FileLogger { path: path.clone() })).expect("set the logger");
    log::set_max_level(log::LevelFilter::Info);
    let me = std::process::id();
    for model in PROCESS_MODELS {
        let running = serve(
            bind(Family::Tcp, Script::default())
                .model(model)
                .idle_timeout(Some(TIMEOUT)),
        );
        let (mut client, pid) = ask(&running.addr, "log");
        assert_eq!(client.rest(), b"");
        // The child logs before it answers.
        let expected = format!("{pid} INFO {}: {}", module_path!(), logged_line(pid));
        let lines = lines_of(&path);
        assert_eq!(
            lines.iter().filter(|l| **l == expected).count(),
            1,
            "{model:?}: {expected:?} in {lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{me} INFO socketserver"))
                    && l.contains(&format!("serving on {}", running.addr))),
            "{model:?}: the parent's own line in {lines:#?}"
        );
        let stats = running.stats.clone();
        wait_until(&format!("{model:?}: ended"), TIMEOUT, || {
            let c = stats.snapshot();
            c.completed == 1 && c.active == 0
        });
        let report = running.shutdown();
        assert_eq!((report.drained, report.cut), (0, 0), "{model:?}");
    }
    std::fs::remove_file(&path).expect("remove the log");
}

/// The counters are whole in the parent, for connections served in other
/// processes: after two echoes of `hello world\n`, a handler that fails
/// (having sent its pid) and a client that stays silent past the idle
/// timeout of 200 ms (which applies inside the child: the client reads end
/// of input, no sooner than 200 ms), the parent counts exactly 4 accepted,
/// 2 completed, 1 failed, 1 timed out, none active, and the bytes each way.
#[test]
fn counters_in_the_parent_after_a_known_sequence() {
    if !isolated("processes::counters_in_the_parent_after_a_known_sequence") {
        return;
    }
    let _cleanup = KillChildrenOnFailure;
    const IDLE: Duration = Duration::from_millis(200);
    for model in PROCESS_MODELS {
        let running = serve(
            bind(Family::Tcp, Script::default())
                .model(model)
                .idle_timeout(Some(IDLE)),
        );
        let stats = running.stats.clone();
        stream_examine(&running.addr);
        stream_examine(&running.addr);
        let (mut client, pid) = ask(&running.addr, "fail");
        assert_eq!(client.rest(), b"");
        let pid_line = format!("{pid}\n").len() as u64;

        let mut silent = running.connect();
        let connected = Instant::now();
        assert!(
            silent.closed_within(TIMEOUT),
            "{model:?}: the idle timeout ends it"
        );
        assert!(
            connected.elapsed() >= IDLE,
            "{model:?}: not before the idle timeout"
        );
        wait_until(&format!("{model:?}: all counted"), TIMEOUT, || {
            let c = stats.snapshot();
            c.completed + c.failed + c.timed_out == 4 && c.active == 0
        });
        let test_str = TEST_STR.len() as u64;
        assert_eq!(
            counts(stats.snapshot()),
            // accepted, active, refused, completed, timed_out, failed,
            // bytes_read, bytes_written, accept_errors
            [
                4,
                0,
                0,
                2,
                1,
                1,
                2 * test_str + "fail\n".len() as u64,
                2 * test_str + pid_line,
                0
            ],
            "{model:?}"
        );
        let report = running.shutdown();
        assert_eq!((report.drained, report.cut), (0, 0), "{model:?}");
        assert_eq!(child_processes(), [], "{model:?}");
    }
}

/// Answers each datagram with itself, and a line naming the pid that
/// served it.
#[derive(Clone)]
struct DatagramEcho;

impl socketserver::DatagramHandler for DatagramEcho {
    fn handle(&mut self, datagram: &mut socketserver::Datagram<'_>) -> io::Result<()> {
        let data = datagram.data().to_vec();
        datagram.reply(&data)?;
        datagram.reply(format!("pid {}", std::process::id()).as_bytes())
    }
}

/// CPython's `test_ForkingUDPServer` and `test_ForkingUnixDatagramServer`:
/// three datagrams each come back exactly, each from a child of its own;
/// then shutdown, the socket closed (the UDP port free, the Unix file
/// gone), every child reaped, and the test's own child left to be reaped
/// with its status 72.
#[test]
fn forking_datagram_servers_python_scenarios() {
    use std::net::UdpSocket;
    use std::os::unix::net::UnixDatagram;

    if !isolated("processes::forking_datagram_servers_python_scenarios") {
        return;
    }
    let _cleanup = KillChildrenOnFailure;
    for family in FAMILIES {
        let case = format!("forking datagrams over {family:?}");
        let mut own = Command::new("sh")
            .args(["-c", "exit 72"])
            .spawn()
            .expect("spawn sh");
        let own_pid = own.id();
        wait_until(&format!("{case}: own child exited"), TIMEOUT, || {
            proc_stat(own_pid).is_some_and(|(state, _)| state == 'Z')
        });
        let builder = match family {
            Family::Tcp => socketserver::Server::bind_udp("127.0.0.1:0", DatagramEcho),
            Family::Unix => socketserver::Server::bind_unix_datagram(
                util::socket_path("fork-dgram"),
                DatagramEcho,
            ),
        };
        let running = serve(forking_allowed(builder).model(FORKING));
        let addr = running.addr.clone();
        let client_path = util::socket_path("fork-dgram-client");
        let mut pids = HashSet::new();
        for _ in 0..3 {
            let mut buf = [0u8; 100];
            let (echo, pid_line) = match &addr {
                Address::Inet(server) => {
                    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
                    client.set_read_timeout(Some(TIMEOUT)).unwrap();
                    client.send_to(TEST_STR, server).unwrap();
                    let n = client.recv(&mut buf).unwrap();
                    let echo = buf[..n].to_vec();
                    let n = client.recv(&mut buf).unwrap();
                    (echo, buf[..n].to_vec())
                }
                Address::Unix(Some(server)) => {
                    let _ = std::fs::remove_file(&client_path);
                    let client = UnixDatagram::bind(&client_path).unwrap();
                    client.set_read_timeout(Some(TIMEOUT)).unwrap();
                    client.send_to(TEST_STR, server).unwrap();
                    let n = client.recv(&mut buf).unwrap();
                    let echo = buf[..n].to_vec();
                    let n = client.recv(&mut buf).unwrap();
                    (echo, buf[..n].to_vec())
                }
                other => unreachable!("{other}"),
            };
            assert_eq!(echo, TEST_STR, "{case}");
            let pid: u32 = String::from_utf8(pid_line).unwrap()["pid ".len()..]
                .parse()
                .unwrap();
            assert_ne!(pid, std::process::id(), "{case}: served by a child");
            pids.insert(pid);
        }
        let _ = std::fs::remove_file(&client_path);
        assert_eq!(pids.len(), 3, "{case}: a child per datagram");
        let stats = running.stats.clone();
        wait_until(&format!("{case}: three served"), TIMEOUT, || {
            let c = stats.snapshot();
            c.completed == 3 && c.active == 0
        });
        let report = running.shutdown();
        assert_eq!((report.drained, report.cut), (0, 0), "{case}");
        match &addr {
            Address::Inet(a) => {
                UdpSocket::bind(a).expect("the port is free again");
            }
            Address::Unix(Some(path)) => assert!(!path.exists(), "{case}: file removed"),
            other => unreachable!("{other}"),
        }
        assert_eq!(child_processes(), [(own_pid, 'Z')], "{case}");
        assert_eq!(own.wait().unwrap().code(), Some(72), "{case}");
    }
}
