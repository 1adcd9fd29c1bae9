//! `Stream` on both ends: as the server's handle on a conversation and as a
//! client made with `Stream::connect`. Lines, chunks, exact reads, frames,
//! the sticky-packet cure, buffering and flushing, addresses, timeouts.

use std::io::{self, BufRead, Read};
use std::time::{Duration, Instant};

use socketserver::{Address, LimitExceeded, RequestHandler, Stream};

use crate::util::{
    bind, each_model_and_family, serve, Client, Echo, Family, Running, FAMILIES, TIMEOUT,
};

/// A client `Stream` with both timeouts set.
fn stream_to(addr: &Address) -> Stream {
    let mut stream = match addr {
        Address::Inet(a) => Stream::connect(a).expect("connect"),
        Address::Unix(Some(path)) => Stream::connect_unix(path).expect("connect"),
        other => panic!("cannot connect to {other}"),
    };
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// Sends its chunks one after the other, each in one write, waiting for a
/// line from the client between two chunks; then closes.
#[derive(Clone)]
struct Says(Vec<&'static [u8]>);

impl RequestHandler for Says {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        for (i, chunk) in self.0.iter().enumerate() {
            if i > 0 && stream.next_line()?.is_none() {
                return Ok(());
            }
            stream.write_all(chunk)?;
            stream.flush()?;
        }
        Ok(())
    }
}

/// Runs `test` against a server saying `chunks`, over both families.
fn against_says(chunks: &[&'static [u8]], mut test: impl FnMut(&mut Stream, Family)) {
    for family in FAMILIES {
        let running = serve(bind(family, Says(chunks.to_vec())));
        let mut stream = stream_to(&running.addr);
        test(&mut stream, family);
    }
}

#[test]
fn client_reads_lines_one_by_one_and_a_partial_last_line() {
    // Three lines in one write; the last without its newline.
    against_says(&[b"one\ntwo\nthree"], |stream, family| {
        assert_eq!(
            stream.next_line().unwrap().as_deref(),
            Some("one\n"),
            "{family:?}"
        );
        assert_eq!(stream.next_line().unwrap().as_deref(), Some("two\n"));
        assert_eq!(stream.next_line().unwrap().as_deref(), Some("three"));
        assert_eq!(stream.next_line().unwrap(), None);
        assert_eq!(stream.next_line().unwrap(), None, "end of input stays");
    });
}

/// Answers each line with its number.
#[derive(Clone)]
struct Numbered;

impl RequestHandler for Numbered {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        let mut n = 0;
        while let Some(line) = stream.next_line()? {
            n += 1;
            stream.write_all(format!("{n} {line}").as_bytes())?;
        }
        Ok(())
    }
}

#[test]
fn server_reads_lines_arriving_in_one_write_one_by_one() {
    each_model_and_family(|model, family| {
        let running = serve(bind(family, Numbered).model(model));
        let mut client = running.connect();
        client.send(b"a\nbb\nccc\n");
        client.shutdown_write();
        assert_eq!(client.rest(), b"1 a\n2 bb\n3 ccc\n", "{model:?}/{family:?}");
    });
}

#[test]
fn read_line_into_appends_and_reuses_the_buffer() {
    against_says(&[b"alpha\nbe\ngamma\n"], |stream, _| {
        let mut line = Vec::with_capacity(64);
        let capacity = line.capacity();
        assert_eq!(stream.read_line_into(&mut line).unwrap(), 6);
        assert_eq!(line, b"alpha\n");
        line.clear();
        assert_eq!(stream.read_line_into(&mut line).unwrap(), 3);
        assert_eq!(line, b"be\n");
        // Not cleared: appended.
        assert_eq!(stream.read_line_into(&mut line).unwrap(), 6);
        assert_eq!(line, b"be\ngamma\n");
        assert_eq!(line.capacity(), capacity, "no new allocation");
        assert_eq!(stream.read_line_into(&mut line).unwrap(), 0, "end of input");
        assert_eq!(line, b"be\ngamma\n");
    });
}

#[test]
fn read_until_stops_at_the_delimiter_or_the_limit() {
    against_says(&[b"a;bb;cccc;dd"], |stream, _| {
        let mut buf = Vec::new();
        assert_eq!(stream.read_until_limited(b';', &mut buf, 3).unwrap(), 2);
        assert_eq!(buf, b"a;");
        buf.clear();
        assert_eq!(
            stream.read_until_limited(b';', &mut buf, 3).unwrap(),
            3,
            "exactly the limit"
        );
        assert_eq!(buf, b"bb;");
        buf.clear();
        let error = stream.read_until_limited(b';', &mut buf, 3).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(LimitExceeded::is(&error));
        let inner = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<LimitExceeded>());
        assert_eq!(
            inner,
            Some(&LimitExceeded {
                what: "line",
                limit: 3
            })
        );
        assert_eq!(buf, b"", "nothing of the over-long part is handed out");
    });
    // Input that ends before the delimiter: what there is, then 0.
    against_says(&[b"no delimiter"], |stream, _| {
        let mut buf = Vec::new();
        assert_eq!(stream.read_until_limited(b';', &mut buf, 100).unwrap(), 12);
        assert_eq!(buf, b"no delimiter");
        assert_eq!(stream.read_until_limited(b';', &mut buf, 100).unwrap(), 0);
    });
}

/// `BufRead`'s own line readers, which `use std::io::BufRead` brings in
/// beside the stream's, keep the stream's line limit: no way of reading a
/// line buffers without end.
#[test]
fn bufread_line_readers_keep_the_line_limit() {
    const LONG: &[u8] = b"short\nlonger than the limit\n";
    against_says(&[LONG], |stream, family| {
        stream.set_max_line_len(8);
        let mut text = String::new();
        assert_eq!(BufRead::read_line(stream, &mut text).unwrap(), 6);
        assert_eq!(text, "short\n");
        let error = BufRead::read_line(stream, &mut text).unwrap_err();
        assert!(LimitExceeded::is(&error), "{family:?}: {error}");
        assert_eq!(text, "short\n", "nothing of the long line is handed out");
    });
    // Whatever the delimiter.
    against_says(&[b"a;longer than the limit;"], |stream, family| {
        stream.set_max_line_len(8);
        let mut buf = Vec::new();
        assert_eq!(BufRead::read_until(stream, b';', &mut buf).unwrap(), 2);
        let error = BufRead::read_until(stream, b';', &mut buf).unwrap_err();
        assert!(LimitExceeded::is(&error), "{family:?}: {error}");
    });
    // `lines` and `split` read through them.
    against_says(&[LONG], |stream, family| {
        stream.set_max_line_len(8);
        let mut lines = BufRead::lines(&mut *stream);
        assert_eq!(lines.next().unwrap().unwrap(), "short");
        let error = lines.next().unwrap().unwrap_err();
        assert!(LimitExceeded::is(&error), "{family:?}: {error}");
    });
    against_says(&[LONG], |stream, family| {
        stream.set_max_line_len(8);
        let mut pieces = BufRead::split(&mut *stream, b'\n');
        assert_eq!(pieces.next().unwrap().unwrap(), b"short");
        let error = pieces.next().unwrap().unwrap_err();
        assert!(LimitExceeded::is(&error), "{family:?}: {error}");
    });
}

#[test]
fn read_chunk_returns_each_arrival() {
    against_says(&[b"abc", b"defg"], |stream, family| {
        assert_eq!(stream.read_chunk().unwrap(), b"abc", "{family:?}");
        // Asks for the next chunk; the read flushes the request first.
        stream.write_all(b"next\n").unwrap();
        assert_eq!(stream.read_chunk().unwrap(), b"defg");
        assert_eq!(stream.read_chunk().unwrap(), b"", "end of input");
    });
}

#[test]
fn read_exact_gathers_bytes_across_writes() {
    against_says(&[b"12", b"345", b"6789"], |stream, _| {
        stream.write_all(b"next\n").unwrap();
        let mut five = [0u8; 5];
        stream.read_exact(&mut five).unwrap();
        assert_eq!(&five, b"12345");
        stream.write_all(b"next\n").unwrap();
        let mut four = [0u8; 4];
        stream.read_exact(&mut four).unwrap();
        assert_eq!(&four, b"6789");
        let mut one = [0u8; 1];
        let error = stream.read_exact(&mut one).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    });
}

/// Echoes length-prefixed frames until end of input.
#[derive(Clone)]
struct FrameEcho;

impl RequestHandler for FrameEcho {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        let mut payload = Vec::new();
        while stream.read_frame_into(&mut payload)? {
            stream.write_frame(&payload)?;
        }
        Ok(())
    }
}

/// Byte `i` of the test pattern: no period shorter than 16 MiB.
fn pattern_at(i: usize) -> u8 {
    (i % 251) as u8 ^ (i >> 16) as u8
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(pattern_at).collect()
}

#[test]
fn frames_round_trip_empty_one_byte_and_one_mib() {
    each_model_and_family(|model, family| {
        let case = format!("{model:?}/{family:?}");
        let running = serve(bind(family, FrameEcho).model(model));
        let mut stream = stream_to(&running.addr);
        for payload in [Vec::new(), vec![42u8], pattern(1 << 20)] {
            // No flush: the read sends what is buffered first.
            stream.write_frame(&payload).unwrap();
            let echoed = stream.read_frame().unwrap();
            assert_eq!(
                echoed.as_deref(),
                Some(&payload[..]),
                "{case}: {} bytes",
                payload.len()
            );
        }
        stream.shutdown_write().unwrap();
        assert_eq!(
            stream.read_frame().unwrap(),
            None,
            "{case}: end between frames"
        );
    });
}

fn raw_client(running: &Running) -> Client {
    let client = running.connect();
    if let Client::Tcp(s) = &client {
        // Every one-byte write its own segment.
        s.get_ref().set_nodelay(true).unwrap();
    }
    client
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

#[test]
fn frame_written_one_byte_at_a_time_arrives_whole() {
    each_model_and_family(|model, family| {
        let case = format!("{model:?}/{family:?}");
        let running = serve(bind(family, FrameEcho).model(model));
        let mut client = raw_client(&running);
        let first = pattern(300);
        let second = b"second frame".to_vec();
        let mut bytes = frame(&first);
        bytes.extend(frame(&second));
        for byte in &bytes {
            client.send(std::slice::from_ref(byte));
        }
        client.shutdown_write();
        // Both frames, whole and apart, then the end.
        assert_eq!(client.rest(), bytes, "{case}");
    });
}

/// Tells how many bytes it holds after the first arrival, then echoes the
/// line that follows, with its length in characters.
#[derive(Clone)]
struct Holds;

impl RequestHandler for Holds {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        let held = stream.fill_buf()?.len();
        stream.write_all(format!("have {held}\n").as_bytes())?;
        stream.flush()?;
        if let Some(line) = stream.next_line()? {
            stream.write_all(format!("{} {line}", line.chars().count()).as_bytes())?;
        }
        Ok(())
    }
}

#[test]
fn utf8_split_across_writes_survives_read_line() {
    let text = "你好\n".as_bytes();
    // Server side: the first byte of 你 alone, then the rest.
    each_model_and_family(|model, family| {
        let case = format!("{model:?}/{family:?}");
        let running = serve(bind(family, Holds).model(model));
        let mut client = running.connect();
        client.send(&text[..1]);
        assert_eq!(
            client.line(),
            "have 1\n",
            "{case}: the server holds half a character"
        );
        client.send(&text[1..]);
        assert_eq!(client.line(), "3 你好\n", "{case}");
    });
    // Client side: the server sends 你 split in its middle.
    against_says(
        &[&[0xe4], &[0xbd, 0xa0, 0xe5, 0xa5, 0xbd, b'\n']],
        |stream, _| {
            assert_eq!(
                stream.fill_buf().unwrap(),
                &[0xe4],
                "half a character so far"
            );
            stream.write_all(b"next\n").unwrap();
            assert_eq!(stream.next_line().unwrap().as_deref(), Some("你好\n"));
        },
    );
}

#[test]
fn writes_are_flushed_before_a_blocking_read() {
    each_model_and_family(|model, family| {
        let case = format!("{model:?}/{family:?}");
        // Echo writes its reply and goes back to reading, without flushing.
        let running = serve(bind(family, Echo).model(model));
        let mut stream = stream_to(&running.addr);
        for round in 0..3 {
            let line = format!("ping {round}\n");
            stream.write_all(line.as_bytes()).unwrap();
            assert_eq!(
                stream.bytes_written(),
                7 * round,
                "{case}: buffered, not sent"
            );
            assert_eq!(stream.next_line().unwrap(), Some(line), "{case}");
            assert_eq!(
                stream.bytes_written(),
                7 * (round + 1),
                "{case}: sent by the read"
            );
            assert_eq!(stream.bytes_read(), 7 * (round + 1), "{case}");
        }
    });
}

/// Reads to the end of input, checks it against `pattern`, says how much.
#[derive(Clone)]
struct Verifies;

impl RequestHandler for Verifies {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        let mut at = 0usize;
        let mut bad = None;
        loop {
            let chunk = stream.read_chunk()?;
            if chunk.is_empty() {
                break;
            }
            if bad.is_none() {
                bad = (0..chunk.len())
                    .find(|&j| chunk[j] != pattern_at(at + j))
                    .map(|j| at + j);
            }
            at += chunk.len();
        }
        match bad {
            None => stream.write_all(format!("ok {at}\n").as_bytes()),
            Some(offset) => stream.write_all(format!("differs at {offset}\n").as_bytes()),
        }
    }
}

/// Writes 8 MiB in one call, then closes.
#[derive(Clone)]
struct Blob;

impl RequestHandler for Blob {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        stream.write_all(&pattern(8 << 20))
    }
}

#[test]
fn large_writes_arrive_intact() {
    const SIZE: usize = 8 << 20;
    let data = pattern(SIZE);
    for family in FAMILIES {
        // Client to server: one write_all of 8 MiB.
        let running = serve(bind(family, Verifies));
        let mut stream = stream_to(&running.addr);
        stream.write_all(&data).unwrap();
        stream.shutdown_write().unwrap();
        assert_eq!(
            stream.next_line().unwrap(),
            Some(format!("ok {SIZE}\n")),
            "{family:?}"
        );
        assert_eq!(stream.bytes_written(), SIZE as u64);

        // Server to client: one write_all of 8 MiB.
        let running = serve(bind(family, Blob));
        let mut stream = stream_to(&running.addr);
        let mut received = Vec::with_capacity(SIZE);
        stream.read_to_end(&mut received).unwrap();
        assert_eq!(received.len(), SIZE, "{family:?}");
        assert!(received == data, "{family:?}: the bytes differ");
    }
}

/// Tells the peer and local addresses it sees.
#[derive(Clone)]
struct Addresses;

impl RequestHandler for Addresses {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        let local = stream.local_addr()?;
        let peer = stream.peer_addr().clone();
        stream.write_all(format!("{peer}\n{local}\n").as_bytes())
    }
}

#[test]
fn peer_and_local_addresses_are_right() {
    each_model_and_family(|model, family| {
        let case = format!("{model:?}/{family:?}");
        let running = serve(bind(family, Addresses).model(model));
        let mut stream = stream_to(&running.addr);
        assert_eq!(
            stream.peer_addr(),
            &running.addr,
            "{case}: the client's peer"
        );
        let local = stream.local_addr().unwrap();
        match family {
            Family::Tcp => {
                let a = local.as_inet().expect("an IP address");
                assert!(a.ip().is_loopback() && a.port() != 0, "{case}: {a}");
            }
            Family::Unix => assert_eq!(local, Address::Unix(None), "{case}: unnamed"),
        }
        let seen_peer = stream.next_line().unwrap().unwrap();
        let seen_local = stream.next_line().unwrap().unwrap();
        assert_eq!(
            seen_peer,
            format!("{local}\n"),
            "{case}: the server's peer is us"
        );
        assert_eq!(
            seen_local,
            format!("{}\n", running.addr),
            "{case}: the server's end"
        );
        if family == Family::Unix {
            assert_eq!(seen_peer, "unix:(unnamed)\n");
            assert!(running.addr.as_unix_path().is_some());
        }
    });
}

#[test]
fn read_timeout_fails_with_timed_out() {
    const WAIT: Duration = Duration::from_millis(200);
    for family in FAMILIES {
        // Echo waits for a line: nothing comes from it.
        let running = serve(bind(family, Echo));
        let mut stream = stream_to(&running.addr);
        stream.set_read_timeout(Some(WAIT)).unwrap();
        assert_eq!(stream.read_timeout(), Some(WAIT));
        let started = Instant::now();
        let error = stream.next_line().unwrap_err();
        let waited = started.elapsed();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{family:?}: {error}");
        assert!(
            waited >= WAIT && waited < WAIT + Duration::from_secs(1),
            "{family:?}: waited {waited:?}"
        );
        assert_eq!(error.to_string(), "no data from the peer for 0.200 s");
        // The stream still works after a timeout.
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.write_all(b"after\n").unwrap();
        assert_eq!(
            stream.next_line().unwrap().as_deref(),
            Some("after\n"),
            "{family:?}"
        );
        // And the other read methods time out the same way.
        stream.set_read_timeout(Some(WAIT)).unwrap();
        assert_eq!(
            stream.read_chunk().unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        assert_eq!(
            stream.read_frame().unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        let mut byte = [0u8; 1];
        let error = Read::read_exact(&mut stream, &mut byte).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}

/// Reads a line, waits with `event::wait` on the stream's own socket for
/// the next, reads it, and then waits by reading for a third that comes
/// later: the socket must still wake the conversation after the wait (in
/// the event model, the socket is registered with its loop for life at
/// its first wait, and `wait` must not undo that).
#[derive(Clone)]
struct WaitsOnItsOwnSocket;

impl RequestHandler for WaitsOnItsOwnSocket {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        use socketserver::event::{wait, Interest};
        use std::os::fd::AsFd;
        let first = stream.next_line()?.unwrap_or_default();
        stream.write_all(first.as_bytes())?;
        stream.flush()?;
        let ready = wait(&[(stream.as_fd(), Interest::Readable)], Some(TIMEOUT))?;
        stream.write_all(format!("ready {ready:?}\n").as_bytes())?;
        stream.flush()?;
        let second = stream.next_line()?.unwrap_or_default();
        stream.write_all(second.as_bytes())?;
        stream.flush()?;
        let third = stream.next_line()?.unwrap_or_default();
        stream.write_all(third.as_bytes())?;
        Ok(())
    }
}

#[test]
fn a_stream_waited_on_with_event_wait_still_wakes_its_reads() {
    each_model_and_family(|model, family| {
        let running = serve(
            bind(family, WaitsOnItsOwnSocket)
                .model(model)
                .idle_timeout(Some(TIMEOUT)),
        );
        let mut client = running.connect();
        // The pauses let the handler wait before each line comes (the
        // case under test), whichever way the race goes it passes if the
        // server is right.
        std::thread::sleep(Duration::from_millis(50));
        client.send(b"one\n");
        assert_eq!(client.line(), "one\n", "{model:?} {family:?}");
        std::thread::sleep(Duration::from_millis(50));
        client.send(b"two\n");
        assert_eq!(client.line(), "ready [true]\n", "{model:?} {family:?}");
        assert_eq!(client.line(), "two\n", "{model:?} {family:?}");
        std::thread::sleep(Duration::from_millis(50));
        let asked = Instant::now();
        client.send(b"three\n");
        assert_eq!(client.line(), "three\n", "{model:?} {family:?}");
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "{model:?} {family:?}"
        );
    });
}

/// On `spin`, runs for half a second without waiting, yielding to its
/// loop every millisecond; echoes any other line.
#[derive(Clone)]
struct SpinsYielding;

impl RequestHandler for SpinsYielding {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        while let Some(line) = stream.next_line()? {
            if line == "spin\n" {
                let started = Instant::now();
                while started.elapsed() < Duration::from_millis(500) {
                    let slice = Instant::now();
                    while slice.elapsed() < Duration::from_millis(1) {}
                    socketserver::event::yield_now();
                }
            }
            stream.write_all(line.as_bytes())?;
            stream.flush()?;
        }
        Ok(())
    }
}

#[test]
fn a_conversation_that_yields_lets_the_others_of_its_loop_run() {
    // One loop: both conversations share its thread.
    let model = socketserver::Model::Event {
        threads: 1,
        stack_size: socketserver::event::DEFAULT_STACK_SIZE,
    };
    let running = serve(bind(Family::Tcp, SpinsYielding).model(model));
    let mut spinner = running.connect();
    let mut other = running.connect();
    other.send(b"warm\n");
    assert_eq!(other.line(), "warm\n");
    spinner.send(b"spin\n");
    // The pings come while the spin runs (it lasts 500 ms; they take a
    // few): without the yields, the first would wait for its end.
    for n in 0..20 {
        let asked = Instant::now();
        other.send(format!("ping {n}\n").as_bytes());
        assert_eq!(other.line(), format!("ping {n}\n"));
        assert!(
            asked.elapsed() < Duration::from_millis(100),
            "ping {n} waited {:?} behind the spinning conversation",
            asked.elapsed()
        );
    }
    assert_eq!(spinner.line(), "spin\n");
}
