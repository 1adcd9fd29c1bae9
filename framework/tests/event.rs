//! What the event model promises beyond the suites every model runs:
//! work given to `event::blocking` (and `event::sleep`) leaves the loop
//! serving the others; a handler that holds its loop is named in the log;
//! and thousands of conversations leave nothing behind.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use socketserver::event::{self, DEFAULT_STACK_SIZE};
use socketserver::{Model, RequestHandler, Server, Stream};

use crate::util::{
    self, connect, open_fds, serve, threads, wait_until, Echo, EVENT_ONE_LOOP, TIMEOUT,
};

/// Echoes lines; `block` runs 3 s of blocking work through
/// `event::blocking`, `pause` sleeps 3 s through `event::sleep`, `hold`
/// blocks the loop's thread itself for 1.2 s (what not to do).
#[derive(Clone)]
struct Worker {
    started: Arc<AtomicUsize>,
    done: Arc<AtomicBool>,
}

impl RequestHandler for Worker {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        while let Some(line) = stream.next_line()? {
            match line.as_str() {
                "block\n" => {
                    let (started, done) = (Arc::clone(&self.started), Arc::clone(&self.done));
                    let answer = event::blocking(move || {
                        started.fetch_add(1, Ordering::SeqCst);
                        thread::sleep(Duration::from_secs(3));
                        done.store(true, Ordering::SeqCst);
                        42
                    });
                    writeln!(stream, "{answer}")?;
                }
                "pause\n" => {
                    self.started.fetch_add(1, Ordering::SeqCst);
                    event::sleep(Duration::from_secs(3));
                    self.done.store(true, Ordering::SeqCst);
                    stream.write_all(b"rested\n")?;
                }
                "hold\n" => {
                    thread::sleep(Duration::from_millis(1_200));
                    stream.write_all(b"held\n")?;
                }
                other => stream.write_all(other.as_bytes())?,
            }
        }
        Ok(())
    }
}

fn worker() -> Worker {
    Worker {
        started: Arc::new(AtomicUsize::new(0)),
        done: Arc::new(AtomicBool::new(false)),
    }
}

/// One loop, one conversation waiting on slow work, 100 others answered
/// meanwhile: each within a second, all before the work ends.
#[test]
fn blocking_work_and_sleeps_leave_the_loop_serving_the_others() {
    for (command, answer) in [("block\n", "42\n"), ("pause\n", "rested\n")] {
        let handler = worker();
        let (started, done) = (Arc::clone(&handler.started), Arc::clone(&handler.done));
        let running = serve(Server::bind("127.0.0.1:0", handler).model(EVENT_ONE_LOOP));
        let mut slow = running.connect();
        slow.send(command.as_bytes());
        wait_until("the slow work has begun", TIMEOUT, || {
            started.load(Ordering::SeqCst) == 1
        });
        for n in 0..100 {
            let asked = Instant::now();
            let mut client = running.connect();
            assert_eq!(
                client.round_trip("ping\n"),
                "ping\n",
                "{command} client {n}"
            );
            let took = asked.elapsed();
            assert!(
                took < Duration::from_secs(1),
                "{command} client {n}: answered after {took:?}"
            );
        }
        assert!(
            !done.load(Ordering::SeqCst),
            "{command}: the 100 others were answered only after the slow work"
        );
        assert_eq!(slow.line(), answer);
        drop(slow);
        running.shutdown();
    }
}

/// A logger for the isolated test below: keeps every line.
struct Kept(Mutex<Vec<String>>);

impl log::Log for Kept {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}", record.level(), record.args());
        self.0.lock().unwrap().push(line);
    }
    fn flush(&self) {}
}

#[test]
fn a_handler_that_holds_its_loop_is_named_in_the_log() {
    if !util::isolated("event::a_handler_that_holds_its_loop_is_named_in_the_log") {
        return;
    }
    let kept: &'static Kept = Box::leak(Box::new(Kept(Mutex::new(Vec::new()))));
    log::set_logger(kept).expect("set the logger");
    log::set_max_level(log::LevelFilter::Warn);
    let running = serve(Server::bind("127.0.0.1:0", worker()).model(EVENT_ONE_LOOP));
    let mut client = running.connect();
    assert_eq!(client.round_trip("hold\n"), "held\n");
    let peer = match &client {
        util::Client::Tcp(s) => s.get_ref().local_addr().unwrap(),
        util::Client::Unix(_) => unreachable!("a TCP client"),
    };
    let expected = format!("WARN {peer}: held its event loop for 1.2 s without waiting on it");
    wait_until("the warning is logged", TIMEOUT, || {
        kept.0
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with(&expected))
    });
    drop(client);
    running.shutdown();
}

/// 10,000 conversations, 100 at a time over two loops, each answered:
/// afterwards the descriptors and threads are those of the idle server,
/// every conversation is counted as completed and none is live (a
/// coroutine frees its slot last), and memory grew by less than the stack
/// pools may keep.
#[test]
fn ten_thousand_conversations_leave_nothing_behind() {
    if !util::isolated("event::ten_thousand_conversations_leave_nothing_behind") {
        return;
    }
    let model = Model::Event {
        threads: 2,
        stack_size: DEFAULT_STACK_SIZE,
    };
    let running = serve(Server::bind("127.0.0.1:0", Echo).model(model));
    // The first conversation makes what is kept for good: stacks, buffers.
    assert_eq!(running.connect().round_trip("warm\n"), "warm\n");
    wait_until("the first conversation ends", TIMEOUT, || {
        running.stats.snapshot().active == 0
    });
    let (fds, tasks, rss) = (open_fds(), threads(), rss_kib());

    let addr = running.addr.clone();
    let clients: Vec<_> = (0..100)
        .map(|t| {
            let addr = addr.clone();
            thread::spawn(move || {
                for n in 0..100 {
                    let line = format!("{t} {n}\n");
                    assert_eq!(connect(&addr).round_trip(&line), line);
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a client thread");
    }

    let stats = running.stats.clone();
    wait_until("every conversation has ended", TIMEOUT, || {
        stats.snapshot().active == 0
    });
    assert_eq!(stats.snapshot().completed, 10_001);
    wait_until("the client threads are gone", TIMEOUT, || {
        threads() == tasks
    });
    assert_eq!(open_fds(), fds, "descriptors");
    let grown = rss_kib().saturating_sub(rss);
    // Two loops may keep 256 stacks each, a few pages touched in each.
    assert!(grown < 16 * 1024, "resident memory grew by {grown} KiB");
    running.shutdown();
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}
