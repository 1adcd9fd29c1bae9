//! Helpers shared by the scenario tests: start a server in a thread, connect
//! clients with timeouts, wait on conditions with deadlines.

#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socketserver::{
    Address, Builder, DrainReport, Error, Model, RequestHandler, Server, ShutdownHandle, Stats,
    Stream,
};

/// Every client read and write in the tests gives up after this long, so a
/// bug fails the test instead of hanging CI.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The models every scenario runs under.
pub const MODELS: [Model; 3] = [
    Model::Sync,
    Model::Threading,
    Model::Pool {
        workers: 4,
        queue: 4,
    },
];

/// The socket families every scenario runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Tcp,
    Unix,
}

pub const FAMILIES: [Family; 2] = [Family::Tcp, Family::Unix];

/// A fresh path for a Unix socket, unique per test and process.
pub fn socket_path(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("ss-{}-{n}-{name}.sock", std::process::id()))
}

/// A builder for `handler` on a free loopback port or a fresh Unix path.
pub fn bind<H: RequestHandler>(family: Family, handler: H) -> Builder<H> {
    match family {
        Family::Tcp => Server::bind("127.0.0.1:0", handler).expect("resolve 127.0.0.1:0"),
        Family::Unix => Server::bind_unix(socket_path("srv"), handler),
    }
}

/// A server running `serve_forever` in a thread of its own.
pub struct Running {
    pub addr: Address,
    pub stop: ShutdownHandle,
    pub stats: Stats,
    thread: Option<JoinHandle<Result<DrainReport, Error>>>,
}

/// Builds the server and starts `serve_forever` in a thread.
pub fn serve<H: RequestHandler>(builder: Builder<H>) -> Running {
    let mut server = builder.build().expect("build the server");
    let addr = server.local_addr().clone();
    let stop = server.shutdown_handle();
    let stats = server.stats();
    let thread = thread::Builder::new()
        .name("serve_forever".into())
        .spawn(move || server.serve_forever())
        .expect("spawn the serving thread");
    Running {
        addr,
        stop,
        stats,
        thread: Some(thread),
    }
}

impl Running {
    /// Asks for shutdown and waits (up to `within`) for `serve_forever` to
    /// return; panics if it does not.
    pub fn shutdown_within(mut self, within: Duration) -> DrainReport {
        self.stop.shutdown();
        let thread = self.thread.take().expect("not yet joined");
        wait_until("serve_forever returns", within, || thread.is_finished());
        thread
            .join()
            .expect("the serving thread did not panic")
            .expect("serve_forever returned Ok")
    }

    /// Shuts down and waits up to 10 s.
    pub fn shutdown(self) -> DrainReport {
        self.shutdown_within(TIMEOUT)
    }

    pub fn connect(&self) -> Client {
        connect(&self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed test must not leave a serving thread behind.
        self.stop.shutdown();
    }
}

/// A test client over TCP or a Unix socket, with read and write timeouts.
pub enum Client {
    Tcp(BufReader<TcpStream>),
    Unix(BufReader<UnixStream>),
}

/// Connects to `addr` with both timeouts set to [`TIMEOUT`].
pub fn connect(addr: &Address) -> Client {
    try_connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
}

pub fn try_connect(addr: &Address) -> io::Result<Client> {
    match addr {
        Address::Inet(a) => {
            let s = TcpStream::connect_timeout(a, TIMEOUT)?;
            s.set_read_timeout(Some(TIMEOUT))?;
            s.set_write_timeout(Some(TIMEOUT))?;
            Ok(Client::Tcp(BufReader::new(s)))
        }
        Address::Unix(Some(path)) => {
            let s = UnixStream::connect(path)?;
            s.set_read_timeout(Some(TIMEOUT))?;
            s.set_write_timeout(Some(TIMEOUT))?;
            Ok(Client::Unix(BufReader::new(s)))
        }
        Address::Unix(None) => panic!("cannot connect to an unnamed socket"),
    }
}

impl Client {
    /// Reads one line, newline included; empty at end of input.
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.read_line(&mut line).expect("read a line");
        line
    }

    /// Reads until the server closes; fails on timeout.
    pub fn rest(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        self.read_to_end(&mut all).expect("read to end of input");
        all
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.write_all(bytes).expect("send");
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) {
        match self {
            Client::Tcp(s) => s.get_ref().set_read_timeout(timeout).unwrap(),
            Client::Unix(s) => s.get_ref().set_read_timeout(timeout).unwrap(),
        }
    }

    pub fn shutdown_write(&self) {
        let _ = match self {
            Client::Tcp(s) => s.get_ref().shutdown(std::net::Shutdown::Write),
            Client::Unix(s) => s.get_ref().shutdown(std::net::Shutdown::Write),
        };
    }
}

impl Read for Client {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Client::Tcp(s) => s.read(buf),
            Client::Unix(s) => s.read(buf),
        }
    }
}

impl BufRead for Client {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            Client::Tcp(s) => s.fill_buf(),
            Client::Unix(s) => s.fill_buf(),
        }
    }
    fn consume(&mut self, n: usize) {
        match self {
            Client::Tcp(s) => s.consume(n),
            Client::Unix(s) => s.consume(n),
        }
    }
}

impl Write for Client {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Client::Tcp(s) => s.get_mut().write(buf),
            Client::Unix(s) => s.get_mut().write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Polls `condition` every millisecond until it holds; panics, naming
/// `what`, if `within` passes first.
pub fn wait_until(what: &str, within: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting until {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("read /proc/self/fd").count()
}

/// Python's `StreamRequestHandler` test handler: reads one line, writes it
/// back.
#[derive(Clone)]
pub struct LineEcho;

impl RequestHandler for LineEcho {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        let mut line = Vec::new();
        stream.read_line_into(&mut line)?;
        stream.write_all(&line)
    }
}

/// Echoes every line until the client hangs up.
#[derive(Clone)]
pub struct Echo;

impl RequestHandler for Echo {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        let mut line = Vec::new();
        while stream.read_line_into(&mut line)? > 0 {
            stream.write_all(&line)?;
            line.clear();
        }
        Ok(())
    }
}
