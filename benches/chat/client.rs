//! The client process (this bench binary re-executed, pinned to CPU 1):
//! runs one workload against one server and reports what it saw.
//!
//! It talks to the bench over its standard streams: it opens what must be
//! open before the measurement and prints `ready` (or `fail REASON`); on
//! `go` it runs the workload and prints `done KEY=VALUE ... error=TEXT`;
//! it keeps its connections open until `close`. The idle workload prints
//! `held greeted=N` once its connections are open, and checks that they
//! still answer on `check`. Every socket has timeouts, every loop a count
//! and a deadline.

use std::io::{self, BufRead, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::protocol::{self, is_wrong};
use crate::workload::{Workload, BURST_THREADS};

/// Set in the client process: the workload (`Workload::encode`).
pub const ROLE_ENV: &str = "CHAT_BENCH_CLIENT";
/// Set in the client process: the server's address.
pub const ADDR_ENV: &str = "CHAT_BENCH_ADDR";
/// Each phase of a workload stops after this long, whatever happens.
const PHASE_LIMIT: Duration = Duration::from_secs(60);

type Control<'a> = io::Lines<io::StdinLock<'a>>;

pub fn main(role: &str) -> ExitCode {
    let result = std::env::var(ADDR_ENV)
        .map_err(|_| format!("{ADDR_ENV} is not set"))
        .and_then(|a| a.parse::<SocketAddr>().map_err(|e| format!("{a}: {e}")))
        .and_then(|addr| {
            let workload = Workload::decode(role).ok_or(format!("unknown workload {role:?}"))?;
            let mut control = io::stdin().lock().lines();
            run(workload, addr, &mut control)
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("fail {}", e.replace('\n', " ")));
            ExitCode::FAILURE
        }
    }
}

fn run(workload: Workload, addr: SocketAddr, control: &mut Control) -> Result<(), String> {
    match workload {
        Workload::RoundTrips { conns, each } => round_trips(addr, conns, each, None, control),
        Workload::ShutdownBusy { conns, talk_ms } => {
            let talk = Duration::from_millis(talk_ms as u64);
            round_trips(addr, conns, usize::MAX, Some(talk), control)
        }
        Workload::Connect { total, threads } => connections(addr, total, threads, control),
        Workload::Idle { conns, threads } => idle(addr, conns, threads, control),
        Workload::Burst { conns } => burst(addr, conns, control),
        Workload::ShutdownIdle { conns } => {
            let open = open_greeted(addr, conns)?;
            say("ready");
            await_line(control, "go")?; // the server has exited by now
            report(
                &Tally {
                    ok: open.len(),
                    ..Tally::default()
                },
                &[],
            );
            await_line(control, "close")
        }
    }
}

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

/// What a workload saw: things done right, wrong bytes (always a
/// failure), things that did not happen (refused, timed out, closed), and
/// the first error met.
#[derive(Default)]
struct Tally {
    ok: usize,
    wrong: usize,
    missing: usize,
    error: Option<String>,
}

impl Tally {
    fn count(&mut self, result: io::Result<()>, what: impl FnOnce() -> String) {
        match result {
            Ok(()) => self.ok += 1,
            Err(e) => {
                if is_wrong(&e) {
                    self.wrong += 1;
                } else {
                    self.missing += 1;
                }
                self.error.get_or_insert_with(|| format!("{}: {e}", what()));
            }
        }
    }

    fn add(&mut self, other: Tally) {
        self.ok += other.ok;
        self.wrong += other.wrong;
        self.missing += other.missing;
        self.error = self.error.take().or(other.error);
    }
}

fn report(tally: &Tally, extra: &[(&str, u128)]) {
    let mut line = format!(
        "done ok={} wrong={} missing={}",
        tally.ok, tally.wrong, tally.missing
    );
    for (key, value) in extra {
        line.push_str(&format!(" {key}={value}"));
    }
    let error = tally.error.clone().unwrap_or_default().replace('\n', " ");
    say(&format!("{line} error={error}"));
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

fn join<T>(handle: thread::JoinHandle<T>) -> Result<T, String> {
    handle
        .join()
        .map_err(|_| "a client thread panicked".to_string())
}

/// Opens `conns` greeted connections one after another, before `ready`.
fn open_greeted(addr: SocketAddr, conns: usize) -> Result<Vec<TcpStream>, String> {
    let deadline = Instant::now() + PHASE_LIMIT;
    let mut open = Vec::with_capacity(conns);
    for i in 0..conns {
        if Instant::now() >= deadline {
            return Err(format!("only {i} connections opened in {PHASE_LIMIT:?}"));
        }
        open.push(protocol::connect(addr).map_err(|e| format!("connection {i}: {e}"))?);
    }
    Ok(open)
}

/// Percentile `p` (0 to 100) of sorted values.
fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) * p).div_ceil(100)]
}

/// `conns` connections opened before `go`, then each makes `each` round
/// trips from its own thread, or as many as fit in `talk` followed by `q`
/// (the busy shutdown: there a connection the server cuts is counted as
/// `missing`, and one that ends with its `q` answered by the close, `ok`).
fn round_trips(
    addr: SocketAddr,
    conns: usize,
    each: usize,
    talk: Option<Duration>,
    control: &mut Control,
) -> Result<(), String> {
    let streams = open_greeted(addr, conns)?;
    let start_line = Arc::new(Barrier::new(conns + 1));
    let workers: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, mut stream)| {
            let start_line = Arc::clone(&start_line);
            spawn(format!("client {i}"), move || {
                let reply = protocol::reply();
                let mut tally = Tally::default();
                let mut latencies = Vec::with_capacity(each.min(100_000));
                start_line.wait();
                let start = Instant::now();
                let limit = talk.unwrap_or(PHASE_LIMIT);
                let mut done = 0;
                while done < each && start.elapsed() < limit {
                    let sent = Instant::now();
                    match protocol::round_trip(&mut stream, &reply) {
                        Ok(()) => latencies.push(sent.elapsed().as_nanos() as u64),
                        Err(e) => {
                            tally.count(Err(e), || format!("connection {i}"));
                            return (stream, tally, latencies);
                        }
                    }
                    done += 1;
                }
                if talk.is_some() {
                    tally.count(protocol::quit(&mut stream), || format!("connection {i}, q"));
                } else if done == each {
                    tally.ok += done;
                } else {
                    tally.ok += done;
                    tally.missing += each - done;
                    tally.error = Some(format!(
                        "connection {i}: deadline of {PHASE_LIMIT:?} reached"
                    ));
                }
                (stream, tally, latencies)
            })
        })
        .collect();
    say("ready");
    await_line(control, "go")?;
    let start = Instant::now();
    start_line.wait();
    let mut open = Vec::with_capacity(conns);
    let mut tally = Tally::default();
    let mut latencies = Vec::new();
    let mut round_trips = 0u128;
    for worker in workers {
        let (stream, part, times) = join(worker)?;
        open.push(stream);
        tally.add(part);
        round_trips += times.len() as u128;
        latencies.extend(times);
    }
    let wall = start.elapsed();
    latencies.sort_unstable();
    let p50 = percentile(&latencies, 50) as u128;
    let p99 = percentile(&latencies, 99) as u128;
    report(
        &tally,
        &[
            ("wall_ns", wall.as_nanos()),
            ("round_trips", round_trips),
            ("p50_ns", p50),
            ("p99_ns", p99),
        ],
    );
    await_line(control, "close")?;
    drop(open);
    Ok(())
}

/// `total` connections from `threads` threads, one after another in each:
/// connect, greeting, `q`, the server's close.
fn connections(
    addr: SocketAddr,
    total: usize,
    threads: usize,
    control: &mut Control,
) -> Result<(), String> {
    say("ready");
    await_line(control, "go")?;
    let start = Instant::now();
    let deadline = start + PHASE_LIMIT;
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            spawn(format!("client {t}"), move || {
                let mut tally = Tally::default();
                let mine = share(total, threads, t);
                for _ in 0..mine {
                    if Instant::now() >= deadline {
                        tally.missing = mine - tally.ok - tally.wrong - tally.missing;
                        tally
                            .error
                            .get_or_insert(format!("deadline of {PHASE_LIMIT:?} reached"));
                        break;
                    }
                    let result = protocol::connect(addr).and_then(|mut s| protocol::quit(&mut s));
                    tally.count(result, || format!("thread {t}"));
                }
                tally
            })
        })
        .collect();
    let mut tally = Tally::default();
    for worker in workers {
        tally.add(join(worker)?);
    }
    report(&tally, &[("wall_ns", start.elapsed().as_nanos())]);
    await_line(control, "close")
}

/// `conns` connections opened (after `go`) from `threads` threads, each
/// greeted, then held; `held` once open; on `check` each makes one round
/// trip from its thread; `done` says how many were greeted and answered.
/// A thread stops opening at its first failure (a server out of room
/// would make every later one wait out its timeout): the rest count as
/// not greeted.
fn idle(
    addr: SocketAddr,
    conns: usize,
    threads: usize,
    control: &mut Control,
) -> Result<(), String> {
    say("ready");
    await_line(control, "go")?;
    let start = Instant::now();
    let deadline = start + PHASE_LIMIT;
    let openers: Vec<_> = (0..threads)
        .map(|t| {
            spawn(format!("client {t}"), move || {
                let mine = share(conns, threads, t);
                let mut open = Vec::with_capacity(mine);
                let mut tally = Tally::default();
                while open.len() < mine {
                    if Instant::now() >= deadline {
                        tally.error = Some(format!("deadline of {PHASE_LIMIT:?} reached"));
                        break;
                    }
                    match protocol::connect(addr) {
                        Ok(stream) => open.push(stream),
                        Err(e) => {
                            tally
                                .count(Err(e), || format!("thread {t}, connection {}", open.len()));
                            break;
                        }
                    }
                }
                tally.missing = mine - open.len() - tally.wrong;
                (open, tally)
            })
        })
        .collect();
    let mut held: Vec<Vec<TcpStream>> = Vec::with_capacity(threads);
    let mut opening = Tally::default();
    for opener in openers {
        let (open, tally) = join(opener)?;
        held.push(open);
        opening.add(tally);
    }
    let opened_in = start.elapsed();
    let greeted: usize = held.iter().map(Vec::len).sum();
    say(&format!("held greeted={greeted}"));
    await_line(control, "check")?;
    let checkers: Vec<_> = held
        .into_iter()
        .enumerate()
        .map(|(t, mut open)| {
            spawn(format!("check {t}"), move || {
                let reply = protocol::reply();
                let mut tally = Tally::default();
                for (i, stream) in open.iter_mut().enumerate() {
                    if Instant::now() >= deadline + PHASE_LIMIT {
                        tally.missing += 1;
                        continue;
                    }
                    tally.count(protocol::round_trip(stream, &reply), || {
                        format!("check {t}.{i}")
                    });
                }
                (open, tally)
            })
        })
        .collect();
    let mut open = Vec::new();
    let mut answering = Tally::default();
    for checker in checkers {
        let (streams, tally) = join(checker)?;
        open.push(streams);
        answering.add(tally);
    }
    let tally = Tally {
        ok: answering.ok,
        wrong: opening.wrong + answering.wrong,
        missing: opening.missing + answering.missing,
        error: opening.error.or(answering.error),
    };
    report(
        &tally,
        &[
            ("greeted", greeted as u128),
            ("answered", answering.ok as u128),
            ("wall_ns", opened_in.as_nanos()),
        ],
    );
    await_line(control, "close")?;
    drop(open);
    Ok(())
}

/// How long a burst may take in all.
const BURST_LIMIT: Duration = Duration::from_secs(30);

/// `conns` clients connecting at once from BURST_THREADS threads (each
/// connects its share back to back, then reads each greeting and says
/// `q`): how many were greeted within [`BURST_LIMIT`], and when the last
/// greeting came.
fn burst(addr: SocketAddr, conns: usize, control: &mut Control) -> Result<(), String> {
    let threads = BURST_THREADS.min(conns);
    let start_line = Arc::new(Barrier::new(threads + 1));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let start_line = Arc::clone(&start_line);
            spawn(format!("burst {t}"), move || {
                let mine = share(conns, threads, t);
                let mut tally = Tally::default();
                let mut last = Duration::ZERO;
                start_line.wait();
                let start = Instant::now();
                // A server that drops connections from a full backlog
                // leaves each one waiting its whole timeout: the burst
                // ends at BURST_LIMIT, what was not greeted by then not
                // counted as greeted.
                let deadline = start + BURST_LIMIT;
                let late = || io::Error::new(io::ErrorKind::TimedOut, "the burst's time is up");
                let mut open = Vec::with_capacity(mine);
                for i in 0..mine {
                    let opened = if Instant::now() < deadline {
                        protocol::open(addr)
                    } else {
                        Err(late())
                    };
                    match opened {
                        Ok(stream) => open.push(stream),
                        Err(e) => tally.count(Err(e), || format!("burst {t}.{i}, connect")),
                    }
                }
                for (i, mut stream) in open.into_iter().enumerate() {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let greeted = if left.is_zero() {
                        Err(late())
                    } else {
                        stream
                            .set_read_timeout(Some(left.min(protocol::IO_TIMEOUT)))
                            .and_then(|()| {
                                protocol::expect(&mut stream, protocol::greeting(), "greeting")
                            })
                    };
                    if greeted.is_ok() {
                        last = last.max(start.elapsed());
                    }
                    let result = greeted.and_then(|()| protocol::quit(&mut stream));
                    tally.count(result, || format!("burst {t}.{i}"));
                }
                (tally, last)
            })
        })
        .collect();
    say("ready");
    await_line(control, "go")?;
    start_line.wait();
    let mut tally = Tally::default();
    let mut last = Duration::ZERO;
    for worker in workers {
        let (part, at) = join(worker)?;
        tally.add(part);
        last = last.max(at);
    }
    report(
        &tally,
        &[
            ("greeted", tally.ok as u128),
            ("last_greeting_ns", last.as_nanos()),
        ],
    );
    await_line(control, "close")
}
