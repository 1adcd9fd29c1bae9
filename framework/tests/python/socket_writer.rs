//! `SocketWriterTest`: the handler's [`Stream`] is the accepted connection
//! itself (`test_basics`), and writes reach the client without a flush and
//! whole, even when signals interrupt `send` (`test_write`).

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::pthread::{pthread_kill, pthread_self, Pthread};
use nix::sys::signal::Signal;
use socketserver::{Address, RequestHandler, Stream};

use super::make_server;
use crate::util::{connect, wait_until, FAMILIES, MODELS, TIMEOUT};

/// Python's `test.support.SOCK_MAX_SIZE`: more than the socket buffers of
/// both ends hold, so that a writer of this much blocks in `send` until the
/// client reads.
const SOCK_MAX_SIZE: usize = 16 * 1024 * 1024;

/// What a handler's [`Stream`] says about its connection.
#[derive(Debug, PartialEq, Eq)]
struct StreamFacts {
    peer: Address,
    local: Address,
    /// The address of the socket under the stream, as the socket itself
    /// says (Python's `wfile.fileno() == request.fileno()`: the writer
    /// writes to the request's socket).
    socket_local: Address,
}

/// `SocketWriterTest.test_basics`: the handler's stream is the accepted
/// connection itself: its peer is the client, its local address the
/// server's, and the TCP or Unix socket under it is that same connection.
#[test]
fn socket_writer_basics() {
    #[derive(Clone)]
    struct Handler(Arc<Mutex<Option<StreamFacts>>>);
    impl RequestHandler for Handler {
        fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
            let socket_local = match (stream.as_tcp(), stream.as_unix()) {
                (Some(tcp), None) => Address::Inet(tcp.local_addr()?),
                (None, Some(unix)) => Address::Unix(
                    unix.local_addr()?
                        .as_pathname()
                        .map(std::path::Path::to_path_buf),
                ),
                _ => panic!("a stream is over exactly one kind of socket"),
            };
            *self.0.lock().unwrap() = Some(StreamFacts {
                peer: stream.peer_addr().clone(),
                local: stream.local_addr()?,
                socket_local,
            });
            Ok(())
        }
    }

    for model in MODELS {
        for family in FAMILIES {
            let facts = Arc::new(Mutex::new(None));
            let (builder, _) = make_server(family, model, Handler(Arc::clone(&facts)));
            let mut server = builder.build().expect("build");
            let addr = server.local_addr().clone();
            let stats = server.stats();
            let client = connect(&addr);
            let peer = client.local_address();
            drop(client);
            assert!(server.handle_request().expect("handle_request"));
            wait_until("the handler has run", TIMEOUT, || {
                stats.snapshot().completed == 1
            });
            assert_eq!(
                facts.lock().unwrap().take(),
                Some(StreamFacts {
                    peer,
                    local: addr.clone(),
                    socket_local: addr,
                }),
                "{model:?} {family:?}"
            );
            server.server_close();
        }
    }
}

/// Python's `SocketWriterTest.test_write` handler: writes a line, reads the
/// client's line, writes `SOCK_MAX_SIZE` zeros. It records the thread it
/// runs in, for the client to signal.
#[derive(Clone)]
struct Writer {
    received: Arc<Mutex<Option<String>>>,
    thread: Arc<Mutex<Option<Pthread>>>,
}

impl RequestHandler for Writer {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        *self.thread.lock().unwrap() = Some(pthread_self());
        stream.write_all(b"write data\n")?;
        // No flush: the stream must send the line before this read waits.
        let line = stream.next_line()?;
        *self.received.lock().unwrap() = line;
        stream.write_all(&vec![0; SOCK_MAX_SIZE])
    }
}

/// `SocketWriterTest.test_write`: a write reaches the client without an
/// explicit flush (the stream flushes before a read that waits), and a
/// big write is sent whole even when signals interrupt its `send`: the
/// client reads 100 bytes, then signals the handler's thread (blocked in
/// `send`, the rest being more than the socket buffers hold) with SIGUSR1
/// until the signal's handler has run, then reads the rest: exactly
/// `SOCK_MAX_SIZE - 100` more zeros.
///
/// The signal handler is installed with `signal_hook::flag::register` and
/// the signal sent with `nix`'s `pthread_kill`: no unsafe code. The
/// server's sockets have a send timeout (the idle timeout), so Linux never
/// restarts an interrupted `send` (SA_RESTART notwithstanding): it returns
/// EINTR or a short count, which the stream must handle.
#[test]
fn socket_writer_write() {
    let interrupted = Arc::new(AtomicBool::new(false));
    let signal =
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&interrupted))
            .expect("install a SIGUSR1 handler");

    for model in MODELS {
        for family in FAMILIES {
            let what = format!("{model:?} {family:?}");
            interrupted.store(false, Ordering::SeqCst);
            let writer = Writer {
                received: Arc::new(Mutex::new(None)),
                thread: Arc::new(Mutex::new(None)),
            };
            let (builder, _) = make_server(family, model, writer.clone());
            let mut server = builder.build().expect("build");
            let addr = server.local_addr().clone();
            let stats = server.stats();

            let handler_thread = Arc::clone(&writer.thread);
            let flag = Arc::clone(&interrupted);
            let client = thread::spawn(move || {
                let mut client = connect(&addr);
                let response1 = client.line();
                client.send(b"client response\n");
                let mut first = [1u8; 100];
                client.read_exact(&mut first).expect("read 100 bytes");
                // The handler's thread is now blocked in send(), or about to
                // be: keep signalling until the signal has been handled.
                let tid = handler_thread
                    .lock()
                    .unwrap()
                    .expect("the handler has started");
                let deadline = Instant::now() + TIMEOUT;
                while !flag.load(Ordering::SeqCst) {
                    assert!(Instant::now() < deadline, "SIGUSR1 never handled");
                    pthread_kill(tid, Signal::SIGUSR1).expect("signal the handler's thread");
                    let resend = Instant::now() + Duration::from_secs(1);
                    while !flag.load(Ordering::SeqCst) && Instant::now() < resend {
                        thread::sleep(Duration::from_millis(1));
                    }
                }
                let mut rest = Vec::new();
                client.read_to_end(&mut rest).expect("read the rest");
                (response1, first, rest)
            });

            assert!(server.handle_request().expect("handle_request"), "{what}");
            let (response1, first, rest) = client.join().expect("the client thread");
            wait_until(&format!("{what}: the handler has ended"), TIMEOUT, || {
                stats.snapshot().completed == 1
            });
            assert_eq!(response1, "write data\n", "{what}");
            assert_eq!(
                writer.received.lock().unwrap().as_deref(),
                Some("client response\n"),
                "{what}"
            );
            assert_eq!(first, [0u8; 100], "{what}");
            assert_eq!(rest.len(), SOCK_MAX_SIZE - 100, "{what}");
            assert!(rest.iter().all(|&b| b == 0), "{what}: only zeros");
            let c = stats.snapshot();
            assert_eq!(
                (c.completed, c.failed, c.bytes_read, c.bytes_written),
                (
                    1,
                    0,
                    "client response\n".len() as u64,
                    ("write data\n".len() + SOCK_MAX_SIZE) as u64
                ),
                "{what}: {c:?}"
            );
            server.server_close();
        }
    }
    signal_hook::low_level::unregister(signal);
}
