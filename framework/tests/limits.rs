//! Limits against clients: the connection limit (wait or refuse), the idle
//! timeout, line and frame lengths, and the pool's bound.

use std::io::{self, BufRead, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use socketserver::{LimitExceeded, Model, RequestHandler, Stream, WhenFull};

use crate::util::{
    bind, each_model_and_family, is_timeout, model_capacity, serve, Client, Echo, FAMILIES, MODELS,
    TIMEOUT,
};

/// A read that is expected to find nothing: long enough that a reply which
/// was going to come would have, short enough to keep the suite fast.
const EXPECTED_SILENCE: Duration = Duration::from_millis(200);

#[test]
fn connection_limit_with_wait_queues_the_next_client() {
    each_model_and_family(|model, family| {
        // Sync holds one connection whatever the limit says.
        let held = model_capacity(model).min(2);
        let running = serve(
            bind(family, Echo)
                .model(model)
                .max_connections(2)
                .when_full(WhenFull::Wait),
        );
        let mut holders: Vec<Client> = (0..held)
            .map(|i| {
                let mut c = running.connect();
                assert_eq!(c.round_trip(&format!("held {i}\n")), format!("held {i}\n"));
                c
            })
            .collect();

        // Its connect succeeds (the kernel's backlog), its request waits.
        let mut waiting = running.connect();
        waiting.send(b"waiting\n");
        waiting.set_read_timeout(Some(EXPECTED_SILENCE));
        let mut reply = String::new();
        let error = waiting
            .read_line(&mut reply)
            .expect_err("no reply while the limit is reached");
        assert!(is_timeout(&error), "expected a timeout, got {error}");
        assert_eq!(reply, "");
        let counters = running.stats.snapshot();
        assert_eq!(
            counters.accepted, held as u64,
            "the third is not even accepted"
        );
        assert_eq!(counters.active, held as u64);
        assert_eq!(counters.refused, 0);

        // One of the first ones leaves: the third is served.
        waiting.set_read_timeout(Some(TIMEOUT));
        drop(holders.remove(0));
        assert_eq!(waiting.line(), "waiting\n");
        for (i, holder) in holders.iter_mut().enumerate() {
            let line = format!("still {i}\n");
            assert_eq!(holder.round_trip(&line), line);
        }
        let counters = running.stats.snapshot();
        assert_eq!(counters.accepted, held as u64 + 1);
        assert_eq!(counters.refused, 0);
    });
}

#[test]
fn connection_limit_with_refuse_says_busy_and_closes() {
    // Sync serves in the accept loop's own thread: while it serves, nothing
    // is accepted, so nothing can be refused; the limit only waits there.
    for model in MODELS.into_iter().filter(|m| *m != Model::Sync) {
        for family in FAMILIES {
            let case = format!("{model:?}/{family:?}");
            let running = serve(
                bind(family, Echo)
                    .model(model)
                    .max_connections(2)
                    .when_full(WhenFull::Refuse)
                    .on_refused(|stream: &mut Stream| {
                        let _ = stream.write_all(b"busy\n");
                    }),
            );
            let mut holders: Vec<Client> = (0..2)
                .map(|i| {
                    let mut c = running.connect();
                    assert_eq!(c.round_trip(&format!("held {i}\n")), format!("held {i}\n"));
                    c
                })
                .collect();
            let mut third = running.connect();
            assert_eq!(
                third.rest(),
                b"busy\n",
                "{case}: exactly busy, then end of input"
            );
            let counters = running.stats.snapshot();
            assert_eq!(counters.refused, 1, "{case}");
            assert_eq!(counters.accepted, 3, "{case}");
            assert_eq!(counters.active, 2, "{case}");
            for holder in &mut holders {
                assert_eq!(
                    holder.round_trip("on\n"),
                    "on\n",
                    "{case}: the held ones go on"
                );
            }
            // Once one leaves, a new client is served again.
            drop(holders.pop());
            let stats = running.stats.clone();
            crate::util::wait_until("a slot frees", TIMEOUT, || stats.snapshot().active == 1);
            assert_eq!(running.connect().round_trip("again\n"), "again\n", "{case}");
            assert_eq!(running.stats.snapshot().refused, 1, "{case}");
        }
    }
}

#[test]
fn idle_timeout_closes_a_silent_client() {
    const IDLE: Duration = Duration::from_millis(200);
    each_model_and_family(|model, family| {
        let case = format!("{model:?}/{family:?}");
        let running = serve(bind(family, Echo).model(model).idle_timeout(Some(IDLE)));
        let mut client = running.connect();
        assert_eq!(client.round_trip("hello\n"), "hello\n");
        let silent_since = Instant::now();
        assert!(
            client.closed_within(Duration::from_secs(2)),
            "{case}: closed"
        );
        let silent_for = silent_since.elapsed();
        // The handler's read began a little before the client's clock.
        assert!(
            silent_for >= IDLE - Duration::from_millis(50),
            "{case}: closed after {silent_for:?} of silence, idle timeout {IDLE:?}"
        );
        let stats = running.stats.clone();
        crate::util::wait_until("the connection is counted", TIMEOUT, || {
            stats.snapshot().active == 0
        });
        let counters = stats.snapshot();
        assert_eq!(counters.timed_out, 1, "{case}");
        assert_eq!(counters.completed, 0, "{case}");
        assert_eq!(counters.failed, 0, "{case}");
        // The server goes on.
        assert_eq!(running.connect().round_trip("next\n"), "next\n", "{case}");
    });
}

/// Echoes lines, or frames; answers an over-long one with an error line and
/// ends the conversation.
#[derive(Clone)]
struct Guarded {
    frames: bool,
}

impl RequestHandler for Guarded {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        loop {
            let result = if self.frames {
                stream
                    .read_frame()
                    .map(|f| f.map(|payload| (payload, true)))
            } else {
                stream
                    .next_line()
                    .map(|l| l.map(|line| (line.into_bytes(), false)))
            };
            match result {
                Ok(Some((payload, true))) => stream.write_frame(&payload)?,
                Ok(Some((line, false))) => stream.write_all(&line)?,
                Ok(None) => return Ok(()),
                Err(e) if LimitExceeded::is(&e) => {
                    return stream.write_all(b"error: too long\n");
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[test]
fn over_long_line_is_refused_and_the_server_goes_on() {
    each_model_and_family(|model, family| {
        let case = format!("{model:?}/{family:?}");
        let running = serve(
            bind(family, Guarded { frames: false })
                .model(model)
                .max_line_len(1024),
        );
        let mut client = running.connect();
        // 1 MiB without a newline, from another thread: the server stops
        // reading long before the end, so this write may block, then fail.
        let mut writer = client.writer();
        let flood = thread::spawn(move || {
            let _ = writer.write_all(&vec![b'x'; 1 << 20]);
        });
        assert_eq!(client.line(), "error: too long\n", "{case}");
        assert_eq!(client.rest_or_reset(), b"", "{case}: then the end");
        flood.join().unwrap();

        let mut next = running.connect();
        assert_eq!(
            next.round_trip("short\n"),
            "short\n",
            "{case}: the next client is served"
        );
    });
}

#[test]
fn line_limit_counts_the_newline_exactly() {
    each_model_and_family(|model, family| {
        let case = format!("{model:?}/{family:?}");
        let running = serve(
            bind(family, Guarded { frames: false })
                .model(model)
                .max_line_len(1024),
        );
        let mut client = running.connect();
        let fits = format!("{}\n", "a".repeat(1023));
        assert_eq!(
            client.round_trip(&fits),
            fits,
            "{case}: 1024 bytes with the newline"
        );
        let over = format!("{}\n", "b".repeat(1024));
        assert_eq!(
            client.round_trip(&over),
            "error: too long\n",
            "{case}: 1025 bytes"
        );
        assert_eq!(client.rest_or_reset(), b"", "{case}");
    });
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

fn read_frame(client: &mut Client) -> Vec<u8> {
    let mut header = [0u8; 4];
    client.read_exact(&mut header).expect("a frame header");
    let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
    client.read_exact(&mut payload).expect("a frame payload");
    payload
}

#[test]
fn over_long_frame_is_refused_and_the_server_goes_on() {
    each_model_and_family(|model, family| {
        let case = format!("{model:?}/{family:?}");
        let running = serve(
            bind(family, Guarded { frames: true })
                .model(model)
                .max_frame_len(1024),
        );
        let mut client = running.connect();
        let fits = vec![7u8; 1024];
        client.send(&frame(&fits));
        assert_eq!(read_frame(&mut client), fits, "{case}: exactly the limit");
        // A header announcing 1025 bytes: refused before any payload.
        client.send(&1025u32.to_be_bytes());
        assert_eq!(client.line(), "error: too long\n", "{case}");
        assert_eq!(client.rest(), b"", "{case}: then the end");
        // Even a header announcing 4 GiB - 1 is only a header.
        let mut huge = running.connect();
        huge.send(&u32::MAX.to_be_bytes());
        assert_eq!(huge.line(), "error: too long\n", "{case}");

        let mut next = running.connect();
        next.send(&frame(b"next"));
        assert_eq!(
            read_frame(&mut next),
            b"next",
            "{case}: the next client is served"
        );
    });
}

/// Echoes frames, read into one buffer; when the conversation ends, for
/// whatever reason, records how big that buffer ever grew.
#[derive(Clone)]
struct FrameBuffer {
    capacities: Arc<std::sync::Mutex<Vec<usize>>>,
}

impl RequestHandler for FrameBuffer {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        let mut payload = Vec::new();
        let result = loop {
            match stream.read_frame_into(&mut payload) {
                Ok(true) => {
                    if let Err(e) = stream.write_frame(&payload) {
                        break Err(e);
                    }
                }
                Ok(false) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.capacities.lock().unwrap().push(payload.capacity());
        result
    }
}

/// A header announcing a 16 MiB frame costs nothing until the bytes come:
/// the payload buffer grows with what arrives (at most twice it, plus the
/// first 64 KiB step), so connections that announce big frames and send
/// little cannot make the server allocate what they announce.
#[test]
fn a_frame_buffer_grows_with_the_bytes_not_the_header() {
    let capacities = Arc::new(std::sync::Mutex::new(Vec::new()));
    let running = serve(
        bind(
            crate::util::Family::Tcp,
            FrameBuffer {
                capacities: Arc::clone(&capacities),
            },
        )
        .threading(),
    );
    // 16 MiB - 1, within the default limit.
    let announced: u32 = 0x00FF_FFFF;
    // Sixteen clients announce 16 MiB: eight send nothing more, eight send
    // 1,000 bytes; one announces 16 MiB and sends 3 MiB; then all hang up
    // mid-frame.
    let mut sent = Vec::new();
    let mut clients = Vec::new();
    for i in 0..17 {
        let mut client = running.connect();
        let body = match i {
            0..8 => 0,
            16 => 3 << 20,
            _ => 1000,
        };
        client.send(&announced.to_be_bytes());
        client.send(&vec![0xA5; body]);
        sent.push(body);
        clients.push(client);
    }
    drop(clients);
    crate::util::wait_until("every handler has ended", TIMEOUT, || {
        capacities.lock().unwrap().len() == sent.len()
    });
    let mut seen = capacities.lock().unwrap().clone();
    seen.sort_unstable();
    for (capacity, body) in seen.iter().zip({
        let mut sorted = sent.clone();
        sorted.sort_unstable();
        sorted
    }) {
        assert!(
            *capacity <= 2 * body + 64 * 1024,
            "{body} bytes of a {announced}-byte frame received, but the buffer grew to {capacity}"
        );
    }
    // A real 16 MiB frame, the default limit exactly, still arrives whole.
    let big: Vec<u8> = (0..16u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut client = running.connect();
    client.send(&frame(&big));
    assert!(
        read_frame(&mut client) == big,
        "the 16 MiB frame came back whole"
    );
    drop(client);
    running.shutdown();
}

/// Echoes lines; counts the handlers running at once and the most seen.
#[derive(Clone)]
struct Counted {
    running: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

impl RequestHandler for Counted {
    fn setup(&mut self, _: &mut Stream) -> io::Result<()> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        Ok(())
    }

    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        Echo.handle(stream)
    }

    fn finish(&mut self, _: &mut Stream) -> io::Result<()> {
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn pool_never_holds_more_than_workers_plus_queue() {
    const CLIENTS: usize = 20;
    let (workers, queue) = (4, 4);
    for family in FAMILIES {
        let case = format!("{family:?}");
        let handler = Counted {
            running: Arc::new(AtomicUsize::new(0)),
            most: Arc::new(AtomicUsize::new(0)),
        };
        let most = Arc::clone(&handler.most);
        let running = serve(
            bind(family, handler)
                .model(Model::Pool { workers, queue })
                // The default limit (1024) is above the pool's capacity.
                .max_connections(1024),
        );
        let stats = running.stats.clone();

        // Watches `active` for the whole test.
        let done = Arc::new(AtomicBool::new(false));
        let most_active = Arc::new(AtomicU64::new(0));
        let sampler = {
            let (done, most_active, stats) =
                (Arc::clone(&done), Arc::clone(&most_active), stats.clone());
            thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    most_active.fetch_max(stats.snapshot().active, Ordering::SeqCst);
                    thread::sleep(Duration::from_micros(100));
                }
            })
        };

        let clients: Vec<Client> = (0..CLIENTS).map(|_| running.connect()).collect();
        crate::util::wait_until("the pool is full", TIMEOUT, || {
            let c = stats.snapshot();
            most_active.fetch_max(c.active, Ordering::SeqCst);
            c.active == (workers + queue) as u64 && most.load(Ordering::SeqCst) == workers
        });
        let counters = stats.snapshot();
        assert_eq!(
            counters.accepted,
            (workers + queue) as u64,
            "{case}: the rest wait"
        );

        let talkers: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(i, mut client)| {
                thread::spawn(move || {
                    let line = format!("client {i}\n");
                    assert_eq!(client.round_trip(&line), line);
                })
            })
            .collect();
        for talker in talkers {
            talker.join().expect("every client is served");
        }
        crate::util::wait_until("all have ended", TIMEOUT, || {
            let c = stats.snapshot();
            c.completed == CLIENTS as u64 && c.active == 0
        });
        done.store(true, Ordering::SeqCst);
        sampler.join().unwrap();

        let counters = stats.snapshot();
        assert_eq!(counters.accepted, CLIENTS as u64, "{case}");
        assert_eq!(counters.refused, 0, "{case}");
        assert_eq!(
            most_active.load(Ordering::SeqCst),
            (workers + queue) as u64,
            "{case}: most connections held at once"
        );
        assert_eq!(
            most.load(Ordering::SeqCst),
            workers,
            "{case}: most handlers at once"
        );
    }
}

/// The message timeout is a total: a frame (or a line) whose bytes come
/// one at a time, each well within the idle timeout, is cut when the
/// message timeout passes; the connection ends counted as timed out, and
/// the server goes on.
#[test]
fn message_timeout_cuts_a_trickled_frame_or_line() {
    const MESSAGE: Duration = Duration::from_millis(400);
    for frames in [true, false] {
        let running = serve(
            bind(crate::util::Family::Tcp, Guarded { frames })
                .idle_timeout(Some(Duration::from_secs(5)))
                .message_timeout(Some(MESSAGE)),
        );
        let mut client = running.connect();
        let message: &[u8] = if frames {
            &[0, 0, 0, 40, b'a', b'b', b'c', b'd', b'e', b'f', b'g', b'h']
        } else {
            b"a line that never ends"
        };
        let started = Instant::now();
        let mut cut = None;
        for byte in message.iter().cycle().take(200) {
            if client.write_all(&[*byte]).is_err()
                || client.closed_within(Duration::from_millis(50))
            {
                cut = Some(started.elapsed());
                break;
            }
        }
        let cut = cut.expect("still connected after 200 bytes (10 s)");
        assert!(
            cut >= MESSAGE - Duration::from_millis(50) && cut < Duration::from_secs(4),
            "frames {frames}: cut after {cut:?}"
        );
        let stats = running.stats.clone();
        crate::util::wait_until("counted", TIMEOUT, || stats.snapshot().active == 0);
        assert_eq!(stats.snapshot().timed_out, 1, "frames {frames}");
        running.shutdown();
    }
}

/// `Stream::set_deadline`: every read that has to wait fails with
/// `TimedOut` once the instant passes, however the bytes are paced.
#[derive(Clone)]
struct Deadline;

impl RequestHandler for Deadline {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        stream.set_deadline(Some(Instant::now() + Duration::from_millis(300)));
        loop {
            match stream.read_chunk() {
                Ok([]) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return stream.write_all(format!("{e}\n").as_bytes());
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[test]
fn deadline_ends_reads_however_paced() {
    let running = serve(bind(crate::util::Family::Tcp, Deadline));
    let mut client = running.connect();
    let started = Instant::now();
    let mut said = String::new();
    for _ in 0..100 {
        client.send(b"x");
        client.set_read_timeout(Some(Duration::from_millis(50)));
        match client.read_line(&mut said) {
            Ok(_) => break,
            Err(e) if is_timeout(&e) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let took = started.elapsed();
    assert_eq!(said, "the deadline for reading passed\n");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(4),
        "after {took:?}"
    );
    running.shutdown();
}
