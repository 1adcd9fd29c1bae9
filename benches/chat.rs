//! The chat benchmark: the Echo handler (the tutorial's chat bot) served by
//! `serve` in threading and pool mode, side by side with Python's
//! `socketserver.ThreadingTCPServer` speaking the same line protocol.
//!
//! ```text
//! cargo bench --bench chat
//! CHAT_BENCH_ROUNDS=5 cargo bench --bench chat    # more rounds (default 3)
//! ```
//!
//! That one command is all: Cargo builds `serve` with the bench profile
//! (release) before it builds a benchmark, and hands its path over as
//! `CARGO_BIN_EXE_serve`. Needs Linux (`/proc`), `python3` (the Python
//! column stays empty without it), and for pinning `taskset` (util-linux)
//! with two CPUs; without them it runs unpinned and says so. What is
//! measured, and the results of runs, are in `docs/benchmarks.md`.
//!
//! How it runs: each server under test is started fresh for each workload,
//! pinned to CPU 0 (`taskset -c 0`). The load comes from this same binary
//! re-executed as a client process pinned to CPU 1 (`taskset -c 1`, with
//! `CHAT_BENCH_CLIENT` naming the workload). The two talk over pipes: the
//! client connects and prints `ready`; this process waits (at most 60 s)
//! for both CPUs to go quiet, reads the server's CPU time (utime + stime in
//! `/proc/PID/stat`) and RSS (`/proc/PID/status`), and writes `go`; the
//! client runs the workload and prints `done ok=.. failed=.. wall_ns=..`;
//! this process reads the server again and writes `close`. So the figures
//! cover the workload alone, not the server's start or the client's set-up.
//! Rounds run the three servers interleaved; the table gives each cell's
//! median and a second table its spread. Each result line also says what
//! else ran on CPU 0 meanwhile, so a disturbed figure shows.
//!
//! Workloads (each bounded in count and in time, every socket with 5 s
//! read and write timeouts, loopback only, every reply checked byte for
//! byte, a failed run left out of the table and the exit status failing):
//!
//! 1. round trips: 100 connections at once, 1,000 round trips each
//!    (`hello\n` -> `hello好\n`), at most 30 s;
//! 2. connections: 5,000 connections from 4 client threads, each: connect,
//!    greeting, one round trip, close; at most 30 s;
//! 3. idle memory: 2,000 connections opened (each after one round trip)
//!    and left idle; the server's VmRSS then, minus before.
//!
//! Our server runs with `--max-connections 4096` (the default 1024 would
//! leave half of workload 3 waiting in the backlog) and `--quiet`; the
//! pool with `--workers 128` (`--workers 2048` for workload 3: a pool
//! worker holds one conversation, idle or not). The default, 4 workers
//! per CPU, would be 4 under `taskset -c 0`.
//!
//! Every process it starts is ended by its PID (SIGKILL) when done, and on
//! panic, by guards.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use socketserver_handlers::echo::{DEFAULT_GREETING, DEFAULT_SUFFIX};

/// Set in the client process: which workload to run.
const ROLE_ENV: &str = "CHAT_BENCH_CLIENT";
/// Set in the client process: the server's address.
const ADDR_ENV: &str = "CHAT_BENCH_ADDR";

/// Every client socket's read and write timeout.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Each workload stops after this long, whatever happens.
const WORKLOAD_LIMIT: Duration = Duration::from_secs(30);
/// How long this process waits for any one message of a child process.
const STEP_LIMIT: Duration = Duration::from_secs(60);
/// Pause after a workload before the server is measured again, so that
/// the last connections' teardown is counted.
const SETTLE: Duration = Duration::from_millis(300);

/// Workload 1: connections at once, and round trips on each.
const RT_CONNECTIONS: usize = 100;
/// 1,000 each (100,000 in all) keeps the CPU figure well above the
/// clock tick (10 ms) that `/proc/PID/stat` counts in.
const RT_PER_CONNECTION: usize = 1_000;
/// Workload 2: connections in all, and client threads making them.
const CONNECTIONS: usize = 5_000;
const CONNECT_THREADS: usize = 4;
/// Workload 3: idle connections held open, and client threads opening them.
const IDLE_CONNECTIONS: usize = 2_000;
const IDLE_THREADS: usize = 4;

/// Our server's flags common to every run. The default connection limit
/// (1024) is below workload 3's 2,000 idle connections.
const OUR_MAX_CONNECTIONS: &str = "4096";
/// The pool's workers for workloads 1 and 2 (at least 100 at once).
const POOL_WORKERS: usize = 128;
/// The pool's workers for workload 3: a pool worker serves one
/// conversation at a time, idle or not, so holding 2,000 idle connections
/// takes 2,000 workers.
const POOL_WORKERS_IDLE: usize = 2_048;
const _: () = assert!(POOL_WORKERS >= RT_CONNECTIONS && POOL_WORKERS_IDLE >= IDLE_CONNECTIONS);

/// The peer: Python's ThreadingTCPServer with a StreamRequestHandler that
/// speaks the Echo handler's line mode (greeting, then each line answered
/// with line + suffix + "\n"; "q" ends). argv: greeting, suffix, host, port.
const PYTHON_SERVER: &str = r#"
import socketserver, sys

GREETING = sys.argv[1].encode()
SUFFIX = sys.argv[2].encode()

class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(GREETING)
        for line in self.rfile:
            message = line[:-1] if line.endswith(b"\n") else line
            if message.endswith(b"\r"):
                message = message[:-1]
            if message == b"q":
                return
            self.wfile.write(message + SUFFIX + b"\n")

class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

with Server((sys.argv[3], int(sys.argv[4])), Echo) as server:
    host, port = server.server_address[:2]
    print(f"serving echo on {host}:{port} (python threading)", flush=True)
    server.serve_forever()
"#;

fn main() -> ExitCode {
    match std::env::var(ROLE_ENV) {
        Ok(role) => client::main(&role),
        Err(_) => match orchestrate() {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("chat bench: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

// ---------------------------------------------------------------------------
// The wire protocol, as the clients check it.

fn greeting() -> &'static [u8] {
    DEFAULT_GREETING.as_bytes()
}

const REQUEST: &[u8] = b"hello\n";

fn reply() -> Vec<u8> {
    [b"hello", DEFAULT_SUFFIX.as_bytes(), b"\n"].concat()
}

// ---------------------------------------------------------------------------
// The client process (pinned to CPU 1).

mod client {
    use super::*;

    pub fn main(role: &str) -> ExitCode {
        let result = std::env::var(ADDR_ENV)
            .map_err(|_| format!("{ADDR_ENV} is not set"))
            .and_then(|a| a.parse::<SocketAddr>().map_err(|e| format!("{a}: {e}")))
            .and_then(|addr| {
                let mut control = io::stdin().lock().lines();
                match role {
                    "roundtrips" => round_trips(addr, &mut control),
                    "connections" => connections(addr, &mut control),
                    "idle" => idle(addr, &mut control),
                    other => Err(format!("unknown workload {other:?}")),
                }
            });
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("chat bench client: {e}");
                ExitCode::FAILURE
            }
        }
    }

    type Control<'a> = io::Lines<io::StdinLock<'a>>;

    fn say(line: &str) {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    fn await_line(control: &mut Control, want: &str) -> Result<(), String> {
        match control.next() {
            Some(Ok(line)) if line.trim() == want => Ok(()),
            Some(Ok(line)) => Err(format!("expected {want:?} from the bench, got {line:?}")),
            Some(Err(e)) => Err(format!("reading the bench's {want:?}: {e}")),
            None => Err(format!("the bench hung up before {want:?}")),
        }
    }

    fn report(ok: usize, failed: usize, wall: Duration, error: Option<String>) {
        say(&format!(
            "done ok={ok} failed={failed} wall_ns={} error={}",
            wall.as_nanos(),
            error.unwrap_or_default().replace('\n', " ")
        ));
    }

    /// Reads exactly `want.len()` bytes and checks they are `want`.
    fn expect(stream: &mut TcpStream, want: &[u8], what: &str) -> io::Result<()> {
        let mut buf = [0u8; 256];
        let got = &mut buf[..want.len()];
        stream.read_exact(got)?;
        if got != want {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{what}: expected {:?}, got {:?}",
                    String::from_utf8_lossy(want),
                    String::from_utf8_lossy(got)
                ),
            ));
        }
        Ok(())
    }

    /// Connects with timeouts set and reads the greeting.
    fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        expect(&mut stream, greeting(), "greeting")?;
        Ok(stream)
    }

    fn round_trip(stream: &mut TcpStream, reply: &[u8]) -> io::Result<()> {
        stream.write_all(REQUEST)?;
        expect(stream, reply, "reply")
    }

    /// Thread `i`'s part of `total` split between `threads` threads.
    fn share(total: usize, threads: usize, i: usize) -> usize {
        total / threads + usize::from(i < total % threads)
    }

    fn spawn<T: Send + 'static>(
        name: String,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> thread::JoinHandle<T> {
        thread::Builder::new()
            .name(name)
            .stack_size(256 * 1024)
            .spawn(f)
            .expect("start a client thread")
    }

    /// Workload 1: RT_CONNECTIONS connections, opened before `go`, each
    /// making RT_PER_CONNECTION round trips from its own thread once `go`
    /// comes; connections stay open until `close`.
    fn round_trips(addr: SocketAddr, control: &mut Control) -> Result<(), String> {
        let setup_deadline = Instant::now() + WORKLOAD_LIMIT;
        let mut streams = Vec::with_capacity(RT_CONNECTIONS);
        for i in 0..RT_CONNECTIONS {
            if Instant::now() >= setup_deadline {
                return Err(format!("only {i} connections opened in {WORKLOAD_LIMIT:?}"));
            }
            streams.push(connect(addr).map_err(|e| format!("connection {i}: {e}"))?);
        }
        let start_line = Arc::new(Barrier::new(RT_CONNECTIONS + 1));
        let workers: Vec<_> = streams
            .into_iter()
            .enumerate()
            .map(|(i, mut stream)| {
                let start_line = Arc::clone(&start_line);
                spawn(format!("client {i}"), move || {
                    let reply = reply();
                    start_line.wait();
                    let deadline = Instant::now() + WORKLOAD_LIMIT;
                    let mut done = 0;
                    let mut error = None;
                    while done < RT_PER_CONNECTION {
                        if Instant::now() >= deadline {
                            error = Some(format!("deadline of {WORKLOAD_LIMIT:?} reached"));
                            break;
                        }
                        match round_trip(&mut stream, &reply) {
                            Ok(()) => done += 1,
                            Err(e) => {
                                error = Some(format!("connection {i}: {e}"));
                                break;
                            }
                        }
                    }
                    (stream, done, error)
                })
            })
            .collect();
        say("ready");
        await_line(control, "go")?;
        let start = Instant::now();
        start_line.wait();
        let mut open = Vec::with_capacity(RT_CONNECTIONS);
        let (mut ok, mut first_error) = (0, None);
        for worker in workers {
            let (stream, done, error) = worker.join().map_err(|_| "a client thread panicked")?;
            open.push(stream);
            ok += done;
            first_error = first_error.or(error);
        }
        let wall = start.elapsed();
        report(
            ok,
            RT_CONNECTIONS * RT_PER_CONNECTION - ok,
            wall,
            first_error,
        );
        await_line(control, "close")?;
        drop(open);
        Ok(())
    }

    /// Workload 2: CONNECTIONS connections from CONNECT_THREADS threads,
    /// one after another in each: connect, greeting, one round trip, close.
    fn connections(addr: SocketAddr, control: &mut Control) -> Result<(), String> {
        say("ready");
        await_line(control, "go")?;
        let start = Instant::now();
        let deadline = start + WORKLOAD_LIMIT;
        let workers: Vec<_> = (0..CONNECT_THREADS)
            .map(|t| {
                spawn(format!("client {t}"), move || {
                    let reply = reply();
                    let share = share(CONNECTIONS, CONNECT_THREADS, t);
                    let mut done = 0;
                    while done < share {
                        if Instant::now() >= deadline {
                            return (
                                done,
                                Some(format!("deadline of {WORKLOAD_LIMIT:?} reached")),
                            );
                        }
                        let result = connect(addr).and_then(|mut s| round_trip(&mut s, &reply));
                        match result {
                            Ok(()) => done += 1,
                            Err(e) => return (done, Some(format!("thread {t}: {e}"))),
                        }
                    }
                    (done, None)
                })
            })
            .collect();
        let (mut ok, mut first_error) = (0, None);
        for worker in workers {
            let (done, error) = worker.join().map_err(|_| "a client thread panicked")?;
            ok += done;
            first_error = first_error.or(error);
        }
        report(ok, CONNECTIONS - ok, start.elapsed(), first_error);
        await_line(control, "close")?;
        Ok(())
    }

    /// Workload 3: IDLE_CONNECTIONS connections opened (after `go`) from
    /// IDLE_THREADS threads, each after one round trip, then held idle
    /// until `close`.
    fn idle(addr: SocketAddr, control: &mut Control) -> Result<(), String> {
        say("ready");
        await_line(control, "go")?;
        let start = Instant::now();
        let deadline = start + WORKLOAD_LIMIT;
        let workers: Vec<_> = (0..IDLE_THREADS)
            .map(|t| {
                spawn(format!("client {t}"), move || {
                    let reply = reply();
                    let share = share(IDLE_CONNECTIONS, IDLE_THREADS, t);
                    let mut open = Vec::with_capacity(share);
                    while open.len() < share {
                        if Instant::now() >= deadline {
                            let error = format!("deadline of {WORKLOAD_LIMIT:?} reached");
                            return (open, Some(error));
                        }
                        let opened = connect(addr).and_then(|mut s| {
                            round_trip(&mut s, &reply)?;
                            Ok(s)
                        });
                        match opened {
                            Ok(stream) => open.push(stream),
                            Err(e) => return (open, Some(format!("thread {t}: {e}"))),
                        }
                    }
                    (open, None)
                })
            })
            .collect();
        let mut open = Vec::with_capacity(IDLE_CONNECTIONS);
        let mut first_error = None;
        for worker in workers {
            let (streams, error) = worker.join().map_err(|_| "a client thread panicked")?;
            open.extend(streams);
            first_error = first_error.or(error);
        }
        let ok = open.len();
        report(ok, IDLE_CONNECTIONS - ok, start.elapsed(), first_error);
        await_line(control, "close")?;
        drop(open);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The orchestrating process.

/// A child process, killed (by its PID) and reaped when dropped: at the
/// end of its use and on panic.
struct Process {
    child: Child,
    name: String,
}

impl Process {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process is still running, or an error saying how it ended.
    fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("{} exited: {status}", self.name)),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }

    /// Waits up to `limit` for the process to exit by itself.
    fn wait_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill(); // SIGKILL to this PID only
        }
        let _ = self.child.wait();
    }
}

/// Starts `command` with piped stdout and returns it with a channel of its
/// stdout's lines.
fn spawn_process(
    mut command: Command,
    name: &str,
) -> Result<(Process, mpsc::Receiver<String>), String> {
    command.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let process = Process {
        child,
        name: name.to_string(),
    };
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok((process, rx))
}

fn next_line(rx: &mpsc::Receiver<String>, from: &str, what: &str) -> Result<String, String> {
    rx.recv_timeout(STEP_LIMIT).map_err(|e| match e {
        mpsc::RecvTimeoutError::Timeout => format!("{from}: no {what} within {STEP_LIMIT:?}"),
        mpsc::RecvTimeoutError::Disconnected => format!("{from} ended before its {what}"),
    })
}

/// The servers under test.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Peer {
    OursThreading,
    OursPool,
    Python,
}

const PEERS: [Peer; 3] = [Peer::OursThreading, Peer::OursPool, Peer::Python];

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::OursThreading => "ours (threading)",
            Peer::OursPool => "ours (pool)",
            Peer::Python => "python threading",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Workload {
    RoundTrips,
    Connections,
    Idle,
}

const WORKLOADS: [Workload; 3] = [Workload::RoundTrips, Workload::Connections, Workload::Idle];

impl Workload {
    fn role(self) -> &'static str {
        match self {
            Workload::RoundTrips => "roundtrips",
            Workload::Connections => "connections",
            Workload::Idle => "idle",
        }
    }
}

/// What the machine offers, found once.
struct Setup {
    serve: PathBuf,
    python: Option<PathBuf>,
    pinned: bool,
    clock_ticks: f64,
    me: PathBuf,
}

impl Setup {
    /// `program args...`, under `taskset -c CPU` when pinning.
    fn command(&self, cpu: u32, program: &std::path::Path) -> Command {
        if self.pinned {
            let mut command = Command::new("taskset");
            command.arg("-c").arg(cpu.to_string()).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn server_command(&self, peer: Peer, workload: Workload) -> Option<Command> {
        let ours = |mode: &str| {
            let mut command = self.command(0, &self.serve);
            command.args([
                "--handler",
                "echo",
                "--bind",
                "127.0.0.1:0",
                "--mode",
                mode,
                "--max-connections",
                OUR_MAX_CONNECTIONS,
                "--quiet", // errors only: no `serving on` log line per start
            ]);
            command
        };
        match peer {
            Peer::OursThreading => Some(ours("threading")),
            Peer::OursPool => {
                let workers = match workload {
                    Workload::Idle => POOL_WORKERS_IDLE,
                    _ => POOL_WORKERS,
                };
                let mut command = ours("pool");
                command.args(["--workers", &workers.to_string()]);
                Some(command)
            }
            Peer::Python => {
                let mut command = self.command(0, self.python.as_ref()?);
                command.args([
                    "-c",
                    PYTHON_SERVER,
                    DEFAULT_GREETING,
                    DEFAULT_SUFFIX,
                    "127.0.0.1",
                    "0",
                ]);
                Some(command)
            }
        }
    }
}

/// A server under test: its process, PID and address.
struct Server {
    process: Process,
    addr: SocketAddr,
}

fn start_server(setup: &Setup, peer: Peer, workload: Workload) -> Result<Server, String> {
    let mut command = setup
        .server_command(peer, workload)
        .ok_or_else(|| format!("{}: python3 not found", peer.name()))?;
    command.stdin(Stdio::null());
    let (process, lines) = spawn_process(command, peer.name())?;
    let first = next_line(&lines, peer.name(), "`serving ... on ADDR` line")?;
    let addr = first
        .split(" on ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .ok_or_else(|| format!("{}: unexpected first line {first:?}", peer.name()))?;
    // taskset execs the server, so the PID is the server's own.
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", process.pid()))
        .map_err(|e| format!("{}: /proc: {e}", peer.name()))?;
    if comm.trim() == "taskset" {
        return Err(format!(
            "{}: PID {} is still taskset",
            peer.name(),
            process.pid()
        ));
    }
    Ok(Server { process, addr })
}

/// CPU time of a process (all its threads, live and ended), in clock
/// ticks: (utime, stime) from /proc/PID/stat.
fn cpu_ticks(pid: u32) -> Result<(u64, u64), String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or("/proc/PID/stat without a command name")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Result<u64, String> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("/proc/{pid}/stat: no field {n}"))
    };
    Ok((field(14)?, field(15)?))
}

/// A `Key: N kB` line of /proc/PID/status, in kB (or the plain number).
fn status_field(pid: u32, key: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("/proc/{pid}/status: no {key}"))
}

/// The busy and stolen clock ticks of one CPU, from /proc/stat.
fn cpu_busy_and_steal(cpu: u32) -> Result<(u64, u64), String> {
    let stat = std::fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
    let name = format!("cpu{cpu}");
    let ticks: Vec<u64> = stat
        .lines()
        .find_map(|l| l.strip_prefix(&name)?.strip_prefix(' '))
        .ok_or_else(|| format!("/proc/stat: no {name}"))?
        .split_whitespace()
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let at = |i: usize| ticks.get(i).copied().unwrap_or(0);
    Ok((at(0) + at(1) + at(2) + at(5) + at(6), at(7)))
}

/// Before each measurement, waits (at most QUIET_LIMIT) until the CPUs
/// were nearly idle for QUIET_WINDOW: on a shared machine other work
/// comes in bursts, and a figure taken during one is worth little.
/// Returns how long it waited, or None if the machine never went quiet.
fn wait_for_quiet() -> Result<Option<Duration>, String> {
    const QUIET_WINDOW: Duration = Duration::from_millis(500);
    const QUIET_LIMIT: Duration = Duration::from_secs(60);
    // Busy ticks allowed in the window, on both CPUs together (of 100).
    const QUIET_TICKS: u64 = 2;
    let start = Instant::now();
    while start.elapsed() < QUIET_LIMIT {
        let before = (cpu_busy_and_steal(0)?.0, cpu_busy_and_steal(1)?.0);
        thread::sleep(QUIET_WINDOW);
        let after = (cpu_busy_and_steal(0)?.0, cpu_busy_and_steal(1)?.0);
        if (after.0 - before.0) + (after.1 - before.1) <= QUIET_TICKS {
            return Ok(Some(start.elapsed()));
        }
    }
    Ok(None)
}

/// What one workload measured on one server.
#[derive(Default)]
struct Measurement {
    ok: usize,
    failed: usize,
    wall: Duration,
    cpu_ticks: u64,
    system_ticks: u64,
    rss_before_kb: u64,
    rss_after_kb: u64,
    threads_after: u64,
    /// Ticks CPU 0 was busy with anything but the server, and stolen by
    /// the hypervisor, during the workload: how clean the figure is.
    others_on_cpu0: u64,
    steal_on_cpu0: u64,
    /// How long it waited for the machine to go quiet; None: it never did.
    waited: Option<Duration>,
    error: Option<String>,
}

fn run_workload(setup: &Setup, peer: Peer, workload: Workload) -> Result<Measurement, String> {
    let mut server = start_server(setup, peer, workload)?;
    let pid = server.process.pid();
    thread::sleep(Duration::from_millis(200)); // let the server settle after start
    let mut command = setup.command(1, &setup.me);
    command
        .env(ROLE_ENV, workload.role())
        .env(ADDR_ENV, server.addr.to_string())
        .stdin(Stdio::piped());
    let client_name = format!("client for {}", peer.name());
    let (mut client, lines) = spawn_process(command, &client_name)?;
    let mut control: ChildStdin = client.child.stdin.take().expect("piped stdin");
    let mut tell = |word: &str| {
        writeln!(control, "{word}")
            .and_then(|_| control.flush())
            .map_err(|e| format!("{client_name}: {e}"))
    };

    let ready = next_line(&lines, &client_name, "`ready`")?;
    if ready != "ready" {
        return Err(format!("{client_name}: expected `ready`, got {ready:?}"));
    }
    let waited = wait_for_quiet()?;
    let rss_before_kb = status_field(pid, "VmRSS")?;
    let ticks_before = cpu_ticks(pid)?;
    let cpu0_before = cpu_busy_and_steal(0)?;
    tell("go")?;
    let done = next_line(&lines, &client_name, "`done` line")?;
    thread::sleep(SETTLE);
    let ticks_after = cpu_ticks(pid)?;
    let cpu0_after = cpu_busy_and_steal(0)?;
    let rss_after_kb = status_field(pid, "VmRSS")?;
    let threads_after = status_field(pid, "Threads")?;
    server.process.check_alive()?;
    tell("close")?;
    if !client.wait_within(Duration::from_secs(10)) {
        eprintln!("chat bench: {client_name} did not exit within 10 s; killing it");
    }
    drop(client);
    drop(server);

    let fields = parse_done(&done).ok_or_else(|| format!("{client_name}: bad line {done:?}"))?;
    let number = |key: &str| -> Result<u128, String> {
        fields
            .get(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{client_name}: no {key} in {done:?}"))
    };
    let error = fields.get("error").filter(|e| !e.is_empty()).cloned();
    Ok(Measurement {
        ok: number("ok")? as usize,
        failed: number("failed")? as usize,
        wall: Duration::from_nanos(number("wall_ns")? as u64),
        cpu_ticks: (ticks_after.0 + ticks_after.1).saturating_sub(ticks_before.0 + ticks_before.1),
        system_ticks: ticks_after.1.saturating_sub(ticks_before.1),
        others_on_cpu0: (cpu0_after.0.saturating_sub(cpu0_before.0)).saturating_sub(
            (ticks_after.0 + ticks_after.1).saturating_sub(ticks_before.0 + ticks_before.1),
        ),
        steal_on_cpu0: cpu0_after.1.saturating_sub(cpu0_before.1),
        waited,
        rss_before_kb,
        rss_after_kb,
        threads_after,
        error,
    })
}

/// `done ok=1 failed=0 wall_ns=5 error=any text` -> its fields.
fn parse_done(line: &str) -> Option<HashMap<String, String>> {
    let rest = line.strip_prefix("done ")?;
    let (head, error) = rest.split_once("error=").unwrap_or((rest, ""));
    let mut fields: HashMap<String, String> = head
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    fields.insert("error".into(), error.trim().to_string());
    Some(fields)
}

/// Which way is better for a row.
#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
}

/// The table's rows, in order: the workload that fills each, its label,
/// and which way is better.
fn row_specs() -> Vec<(Workload, String, Better)> {
    use Better::{Higher, Lower};
    use Workload::{Connections, Idle, RoundTrips};
    [
        (RoundTrips, "round trips/s (wall clock)".to_string(), Higher),
        (RoundTrips, "server CPU µs per round trip".into(), Lower),
        (RoundTrips, "… of which user space".into(), Lower),
        (Connections, "connections/s (wall clock)".into(), Higher),
        (Connections, "server CPU µs per connection".into(), Lower),
        (Connections, "… of which user space".into(), Lower),
        (
            Idle,
            format!("RSS growth with {IDLE_CONNECTIONS} idle connections, MiB"),
            Lower,
        ),
        (Idle, "RSS total with them, MiB".into(), Lower),
    ]
    .into()
}

/// The values of one workload's rows, in `row_specs` order.
fn values_of(workload: Workload, m: &Measurement, clock_ticks: f64) -> Vec<f64> {
    let per = |ticks: u64| ticks as f64 / clock_ticks / m.ok.max(1) as f64 * 1e6;
    let rate = m.ok as f64 / m.wall.as_secs_f64().max(1e-9);
    let user_ticks = m.cpu_ticks.saturating_sub(m.system_ticks);
    match workload {
        Workload::RoundTrips | Workload::Connections => {
            vec![rate, per(m.cpu_ticks), per(user_ticks)]
        }
        Workload::Idle => vec![
            m.rss_after_kb.saturating_sub(m.rss_before_kb) as f64 / 1024.0,
            m.rss_after_kb as f64 / 1024.0,
        ],
    }
}

/// One row of the table: each server's values, one per round.
struct Row {
    label: String,
    better: Better,
    values: [Vec<f64>; 3],
}

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

fn describe(workload: Workload, m: &Measurement, clock_ticks: f64) -> String {
    let cpu_s = m.cpu_ticks as f64 / clock_ticks;
    let mut text = match workload {
        Workload::RoundTrips | Workload::Connections => format!(
            "{} ok, {} failed in {:.3} s; server CPU {:.2} s ({} ticks, {} in the kernel)",
            m.ok,
            m.failed,
            m.wall.as_secs_f64(),
            cpu_s,
            m.cpu_ticks,
            m.system_ticks
        ),
        Workload::Idle => format!(
            "{} idle ({} failed), opened in {:.3} s; VmRSS {} kB -> {} kB, {} threads",
            m.ok,
            m.failed,
            m.wall.as_secs_f64(),
            m.rss_before_kb,
            m.rss_after_kb,
            m.threads_after
        ),
    };
    if workload != Workload::Idle {
        let _ = write!(
            text,
            "; CPU 0 meanwhile: {} ticks to others, {} stolen",
            m.others_on_cpu0, m.steal_on_cpu0
        );
    }
    match m.waited {
        Some(w) if w > Duration::from_secs(1) => {
            let _ = write!(text, "; waited {:.0} s for quiet", w.as_secs_f64());
        }
        Some(_) => {}
        None => text.push_str("; the machine never went quiet: measured anyway"),
    }
    if let Some(error) = &m.error {
        let _ = write!(text, "; first error: {error}");
    }
    text
}

fn machine() -> String {
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} CPUs, {model}")
}

fn command_succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Makes sure this process (and so every process it starts) may open
/// enough descriptors for the idle workload: raises the soft limit with
/// `prlimit` if needed and allowed.
fn check_open_files() -> Result<(), String> {
    let need = (IDLE_CONNECTIONS + 512) as u64;
    let limits = std::fs::read_to_string("/proc/self/limits").map_err(|e| e.to_string())?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .ok_or("no `Max open files` in /proc/self/limits")?;
    let numbers: Vec<&str> = line["Max open files".len()..].split_whitespace().collect();
    let soft: u64 = numbers.first().and_then(|n| n.parse().ok()).unwrap_or(0);
    let hard: u64 = match numbers.get(1) {
        Some(&"unlimited") => u64::MAX,
        other => other.and_then(|n| n.parse().ok()).unwrap_or(0),
    };
    println!("open files: soft limit {soft}, hard {hard}; {need} needed");
    if soft >= need {
        return Ok(());
    }
    if hard < need {
        return Err(format!(
            "the open-files limit (soft {soft}, hard {hard}) is below the {need} the idle \
             workload needs; raise it (ulimit -n {need}) and run again"
        ));
    }
    let pid = std::process::id().to_string();
    let setting = format!("--nofile={need}:");
    if command_succeeds("prlimit", &["--pid", &pid, &setting]) {
        println!("open files: soft limit raised to {need} with prlimit");
        Ok(())
    } else {
        Err(format!(
            "the open-files soft limit is {soft} and `prlimit --pid {pid} {setting}` failed; \
             run `ulimit -n {need}` first"
        ))
    }
}

fn orchestrate() -> Result<bool, String> {
    let serve = PathBuf::from(env!("CARGO_BIN_EXE_serve"));
    if !serve.exists() {
        return Err(format!(
            "{} is missing: run `cargo build --release --bin serve`",
            serve.display()
        ));
    }
    let me = std::env::current_exe().map_err(|e| format!("the bench's own path: {e}"))?;
    // The interpreter itself, not a shim (pyenv's is a script that execs it).
    let python =
        command_output("python3", &["-c", "import sys; print(sys.executable)"]).map(PathBuf::from);
    let python_version = command_output("python3", &["--version"]);
    let pinned = command_succeeds("taskset", &["-c", "0", "true"])
        && command_succeeds("taskset", &["-c", "1", "true"]);
    let clock_ticks = command_output("getconf", &["CLK_TCK"])
        .and_then(|t| t.parse::<f64>().ok())
        .unwrap_or_else(|| {
            println!("getconf CLK_TCK failed; assuming 100 ticks per second");
            100.0
        });

    println!("chat bench: {}", machine());
    println!("serve: {}", serve.display());
    match (&python, &python_version) {
        (Some(path), Some(version)) => println!("python: {version} ({})", path.display()),
        _ => println!("python3 not found: the python column stays empty"),
    }
    if pinned {
        println!("pinning: servers on CPU 0, clients on CPU 1 (taskset)");
    } else {
        println!(
            "pinning: OFF (taskset missing or fewer than two CPUs): servers and clients \
             share the CPUs, figures are noisier"
        );
    }
    println!("clock ticks: {clock_ticks} per second (CPU time resolution)");
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!(
            "load average: {} (should be near 0 for clean figures)",
            load.trim()
        );
    }
    check_open_files()?;
    println!();

    let rounds = match std::env::var("CHAT_BENCH_ROUNDS") {
        Ok(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=20).contains(n))
            .ok_or_else(|| format!("CHAT_BENCH_ROUNDS={n}: expected 1 to 20"))?,
        Err(_) => 3,
    };
    println!("rounds: {rounds} (CHAT_BENCH_ROUNDS); the table shows each cell's median");
    println!();

    let setup = Setup {
        serve,
        python,
        pinned,
        clock_ticks,
        me,
    };
    let specs = row_specs();
    let mut rows: Vec<Row> = specs
        .iter()
        .map(|(_, label, better)| Row {
            label: label.clone(),
            better: *better,
            values: Default::default(),
        })
        .collect();
    let mut all_ok = true;
    for round in 1..=rounds {
        for workload in WORKLOADS {
            let first_row = specs
                .iter()
                .position(|(w, _, _)| *w == workload)
                .expect("every workload has rows");
            for (column, peer) in PEERS.into_iter().enumerate() {
                if peer == Peer::Python && setup.python.is_none() {
                    continue;
                }
                let label = format!("{round}. {:<11} {:<17}", workload.role(), peer.name());
                match run_workload(&setup, peer, workload) {
                    Ok(m) => {
                        println!("{label} {}", describe(workload, &m, setup.clock_ticks));
                        if m.failed > 0 || m.error.is_some() {
                            all_ok = false;
                            continue; // a figure from a failed run is no figure
                        }
                        let values = values_of(workload, &m, setup.clock_ticks);
                        for (i, value) in values.into_iter().enumerate() {
                            rows[first_row + i].values[column].push(value);
                        }
                    }
                    Err(e) => {
                        all_ok = false;
                        println!("{label} FAILED: {e}");
                    }
                }
            }
        }
    }
    println!();
    print_table(&rows);
    if !all_ok {
        println!("\nSome runs failed (see above); they are left out of the table.");
    }
    Ok(all_ok)
}

fn print_table(rows: &[Row]) {
    let number = |v: f64| {
        if v >= 100.0 {
            format!("{v:.0}")
        } else if v >= 10.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.2}")
        }
    };
    let cell = |v: Option<f64>| v.map_or_else(|| "—".into(), number);
    // How many times better ours is than Python: > 1 means ours wins.
    let ratio = |ours: Option<f64>, python: Option<f64>, better: Better| match (ours, python) {
        (Some(o), Some(p)) if o > 0.0 && p > 0.0 => {
            let r = match better {
                Better::Higher => o / p,
                Better::Lower => p / o,
            };
            format!("{r:.2}×")
        }
        _ => "—".into(),
    };
    println!(
        "| workload | ours (threading) | ours (pool) | python threading \
         | vs python: threading | vs python: pool |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for row in rows {
        let [threading, pool, python] = [0, 1, 2].map(|i| median(&row.values[i]));
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            row.label,
            cell(threading),
            cell(pool),
            cell(python),
            ratio(threading, python, row.better),
            ratio(pool, python, row.better)
        );
    }
    println!(
        "\nMedians of each cell's rounds. \"vs python\": how many times better ours is \
         (python/ours for CPU time and memory, ours/python for rates); above 1× ours wins, \
         below 1× python wins. Spread over the rounds (min–max):\n"
    );
    println!("| workload | ours (threading) | ours (pool) | python threading |");
    println!("|---|---:|---:|---:|");
    for row in rows {
        let spread = |values: &[f64]| {
            let min = values.iter().copied().reduce(f64::min);
            let max = values.iter().copied().reduce(f64::max);
            match (min, max) {
                (Some(min), Some(max)) => format!("{}–{}", number(min), number(max)),
                _ => "—".into(),
            }
        };
        println!(
            "| {} | {} | {} | {} |",
            row.label,
            spread(&row.values[0]),
            spread(&row.values[1]),
            spread(&row.values[2])
        );
    }
}
