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
//!
//! A submodule per concern: `cpython` (CPython's forking scenarios),
//! `lifecycle` (children that crash, workers recycled or respawned),
//! `children` (zombies, descriptors, the `max_children` limit), `shutdown`
//! (draining and cutting children), `fork_safety` (forking with threads,
//! logging and allocating in a child), `counters` (counts across the
//! process boundary). This module holds what they share: the [`Script`]
//! handler, the builders allowed to fork, and the helpers to observe
//! children.

mod children;
mod counters;
mod cpython;
mod fork_safety;
mod lifecycle;
mod shutdown;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use socketserver::{Address, Builder, Counters, Model, RequestHandler, Stream};

use crate::util::{self, connect, forking_allowed, live_children, Client, Family, TIMEOUT};

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

/// The target of the `log` command's line: the module of [`Script`].
const SCRIPT_TARGET: &str = module_path!();

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
