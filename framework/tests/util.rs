//! Helpers shared by every module of the suite: start a server in a thread,
//! connect clients with timeouts, wait on conditions with deadlines, run a
//! test alone in a child process ([`isolated`]).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socketserver::{
    Address, Builder, DrainReport, Error, Model, RequestHandler, Server, ShutdownHandle, Stats,
    Stream, WhenDraining,
};

/// Every client read and write in the tests gives up after this long, so a
/// bug fails the test instead of hanging CI.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The models every scenario runs under: the thread models and the
/// event model (two loops, so that conversations are handed between
/// threads too).
pub const MODELS: [Model; 4] = [
    Model::Sync,
    Model::Threading,
    Model::Pool {
        workers: 4,
        queue: 4,
    },
    EVENT,
];

/// The event model as the scenarios run it.
pub const EVENT: Model = Model::Event {
    threads: 2,
    stack_size: socketserver::event::DEFAULT_STACK_SIZE,
};

/// The event model with one loop: a conversation that waits must hold
/// nothing but its coroutine, or the loop's others would wait with it.
pub const EVENT_ONE_LOOP: Model = Model::Event {
    threads: 1,
    stack_size: socketserver::event::DEFAULT_STACK_SIZE,
};

/// The models a datagram server runs under (the event model serves
/// stream sockets only).
pub const DATAGRAM_MODELS: [Model; 3] = [MODELS[0], MODELS[1], MODELS[2]];

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
        Family::Tcp => Server::bind("127.0.0.1:0", handler),
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
pub fn serve<H: 'static>(builder: Builder<H>) -> Running {
    run(builder.build().expect("build the server"))
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

/// Connects to `addr` with both timeouts set to [`TIMEOUT`], or says why
/// not (a closed server refuses: see [`no_child_starting`]).
pub fn try_connect(addr: &Address) -> io::Result<Client> {
    let _no_child_starting = no_child_starting();
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
        other => panic!("cannot connect to {other}"),
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
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting until {what}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
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

/// Reaches its server from inside the handler ([`Stream::server`]): on
/// `count`, answers how many connections the server has accepted; on
/// `stop`, shuts the server down and answers `stopping` and whether the
/// handle now says so; echoes anything else.
#[derive(Clone)]
pub struct StopsServer;

impl RequestHandler for StopsServer {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        while let Some(line) = stream.next_line()? {
            let server = stream
                .server()
                .expect("a served stream has its server")
                .clone();
            match line.as_str() {
                "count\n" => {
                    let accepted = server.stats().snapshot().accepted;
                    stream.write_all(format!("{accepted}\n").as_bytes())?;
                }
                "stop\n" => {
                    server.shutdown();
                    let reply = format!("stopping {}\n", server.is_shutdown());
                    return stream.write_all(reply.as_bytes());
                }
                _ => stream.write_all(line.as_bytes())?,
            }
        }
        Ok(())
    }
}

/// What [`Chat`] says when a drain ended its wait for the next line.
pub const BYE: &str = "bye: the server is draining\n";

/// A chat whose request boundaries the framework cannot know: answers each
/// line with `serving: LINE`, or `draining: LINE` once the server drains
/// ([`Stream::is_draining`]); `q` ends it; `polite` switches it to
/// [`WhenDraining::EndWaitingRead`]. When a drain ends its wait it says
/// [`BYE`].
#[derive(Clone)]
pub struct Chat {
    pub when_draining: WhenDraining,
}

impl RequestHandler for Chat {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        stream.set_when_draining(self.when_draining);
        while let Some(line) = stream.next_line()? {
            if line == "q\n" {
                return Ok(());
            }
            if line == "polite\n" {
                stream.set_when_draining(WhenDraining::EndWaitingRead);
            }
            let state = if stream.is_draining() {
                "draining"
            } else {
                "serving"
            };
            stream.write_all(format!("{state}: {line}").as_bytes())?;
        }
        if stream.is_draining() {
            stream.write_all(BYE.as_bytes())?;
        }
        Ok(())
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

// ---------------------------------------------------------------------------
// Added for the modules beyond CPython's suite (shutdown, limits, isolation,
// stream, resources).

/// Starts `serve_forever` in a thread on a server already built, for tests
/// that need the server's handles before it runs.
pub fn run(mut server: Server) -> Running {
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
    /// Waits (up to `within`) for `serve_forever` to return on its own, for
    /// tests where something else than this handle stopped the server.
    pub fn join_within(mut self, within: Duration) -> DrainReport {
        let thread = self.thread.take().expect("not yet joined");
        wait_until("serve_forever returns", within, || thread.is_finished());
        thread
            .join()
            .expect("the serving thread did not panic")
            .expect("serve_forever returned Ok")
    }

    /// True once `serve_forever` has returned.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Client {
    /// A second handle on the same socket, for writing from another thread
    /// while this one reads.
    pub fn writer(&self) -> Box<dyn Write + Send> {
        match self {
            Client::Tcp(s) => Box::new(s.get_ref().try_clone().expect("clone the socket")),
            Client::Unix(s) => Box::new(s.get_ref().try_clone().expect("clone the socket")),
        }
    }

    /// Sends `line` and reads one line back.
    pub fn round_trip(&mut self, line: &str) -> String {
        self.send(line.as_bytes());
        self.line()
    }

    /// Reads until end of input, accepting a reset after the data as the end
    /// too (a server that closes with unread input sends RST, not FIN).
    pub fn rest_or_reset(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.read(&mut buf) {
                Ok(0) => return all,
                Ok(n) => all.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return all,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("read to end of input: {e}"),
            }
        }
    }

    /// Waits for the server to close the connection: true if the next read
    /// sees end of input (or a reset) before `within`.
    pub fn closed_within(&mut self, within: Duration) -> bool {
        self.set_read_timeout(Some(within));
        let mut buf = [0u8; 1];
        let closed = match self.read(&mut buf) {
            Ok(0) => true,
            Ok(_) => panic!("expected end of input, got data"),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => true,
            Err(e) if is_timeout(&e) => false,
            Err(e) => panic!("expected end of input: {e}"),
        };
        self.set_read_timeout(Some(TIMEOUT));
        closed
    }
}

/// A socket timeout shows as `WouldBlock` on Linux, `TimedOut` elsewhere.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The most connections `model` holds at once, as documented on
/// [`Model`]: one for `Sync`, `workers + queue` for `Pool`.
pub fn model_capacity(model: Model) -> usize {
    match model {
        Model::Sync => 1,
        Model::Pool { workers, queue } => workers + queue,
        _ => usize::MAX,
    }
}

/// Runs `test` for every model and family; runs every case even when one
/// fails, then fails naming each case that failed and why.
pub fn each_model_and_family(mut test: impl FnMut(Model, Family)) {
    let mut failed = Vec::new();
    for model in MODELS {
        for family in FAMILIES {
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(model, family)));
            if let Err(payload) = result {
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failed.push(format!("{model:?} over {family:?}: {message}"));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}",
        failed.len(),
        MODELS.len() * FAMILIES.len(),
        failed.join("\n")
    );
}

impl Client {
    /// The client's own address, as the server sees it as its peer.
    pub fn local_address(&self) -> Address {
        match self {
            Client::Tcp(s) => Address::Inet(s.get_ref().local_addr().unwrap()),
            Client::Unix(s) => {
                let a = s.get_ref().local_addr().unwrap();
                Address::Unix(a.as_pathname().map(|p| p.to_path_buf()))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Added for the `python` module (CPython's test_socketserver.py).

/// Threads of this process now.
pub fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("read /proc/self/task")
        .count()
}

/// The environment variable that tells a child test process which test it
/// runs alone (see [`isolated`]).
const ISOLATED: &str = "SOCKETSERVER_SCENARIO_ISOLATED";

/// Held for writing while [`isolated`] starts a child; see
/// [`no_child_starting`].
static STARTING_A_CHILD: RwLock<()> = RwLock::new(());

/// Waits until no child of [`isolated`] is starting, and keeps any from
/// starting while the guard lives. Between `fork` and `exec` (about a
/// millisecond) a starting child holds a copy of every descriptor of this
/// process, so a listening socket that a test has just closed would still
/// accept connections until that `exec`. A test that checks from outside
/// that a socket it closed is gone holds this guard while it looks: a
/// child that started before the close has exec'd by then, and one that
/// starts after it holds no copy.
pub fn no_child_starting() -> RwLockReadGuard<'static, ()> {
    STARTING_A_CHILD
        .read()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Runs the test `name` (its full path in this binary, module included,
/// e.g. `counting::context_manager`) alone in a child process of this test
/// binary, so that it can count the process's file descriptors, threads and
/// child processes exactly, or fork, while the other tests of this binary
/// run in parallel here (libtest's own test threads come and go).
///
/// Starting a child copies every descriptor of this process into it until
/// its `exec`: the tests that check that a socket is closed wait until no
/// child is starting ([`no_child_starting`]).
///
/// In the child, returns true: the caller runs its body. In the parent,
/// runs the child (`NAME --exact --test-threads=1`), asserts that exactly
/// that one test ran and passed, and returns false: the caller returns.
///
/// ```ignore
/// #[test]
/// fn counts_fds() {
///     if !util::isolated("counting::counts_fds") {
///         return;
///     }
///     // ... exact counting here
/// }
/// ```
pub fn isolated(name: &str) -> bool {
    if std::env::var_os(ISOLATED).is_some_and(|v| v == name) {
        return true;
    }
    // libtest names each test's thread after the test: a name that is not
    // the caller's own would run another test in the child, or none.
    let caller = thread::current();
    assert_eq!(
        caller.name(),
        Some(name),
        "isolated({name:?}) called from another test"
    );
    let exe = std::env::current_exe().expect("path of the test binary");
    let mut child = {
        let _starting = STARTING_A_CHILD
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        std::process::Command::new(exe)
            .args([name, "--exact", "--test-threads=1", "--nocapture"])
            .env(ISOLATED, name)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the test binary for an isolated test")
    };
    // Read both pipes in threads, so a chatty child never blocks on a full
    // pipe while we wait for it.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let limit = Duration::from_secs(120);
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the isolated test") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("isolated test {name} still running after {limit:?}; killed");
        }
        thread::sleep(Duration::from_millis(5));
    };
    let out = out.join().expect("stdout reader");
    let err = err.join().expect("stderr reader");
    assert!(
        status.success() && out.contains("test result: ok. 1 passed"),
        "isolated test {name} failed ({status}):\n--- stdout\n{out}\n--- stderr\n{err}"
    );
    false
}

/// Lets a process model fork although this process has other threads:
/// libtest's and the test's own (each test serves from a thread of its
/// own, and the process models refuse by default, see
/// `processes::fork_safety::forking_refuses_a_process_with_threads`). Only
/// for a test that runs alone in a child process ([`isolated`]).
pub fn forking_allowed<H>(builder: Builder<H>) -> Builder<H> {
    // SAFETY: each test that forks runs alone in a child process of its own
    // (`isolated`), where the other threads are libtest's main thread,
    // waiting for the test, and the test's thread, which does socket I/O
    // on its clients and waits on conditions while the server forks; none
    // holds a Rust-level lock that a forked child uses (the children that
    // log do so through `processes`' `FileLogger`, which takes no lock),
    // and glibc makes malloc fork-safe.
    unsafe { builder.allow_fork_with_threads() }
}

/// Python's `TEST_STR`, the line its stream scenarios send and expect back.
pub const TEST_STR: &[u8] = b"hello world\n";

/// Python's `pickaddr`: a builder on a free loopback port or a fresh Unix
/// path, with that path, so a test can check that the server listens there
/// and removes the file when it closes.
pub fn bind_with_path<H: RequestHandler>(
    family: Family,
    handler: H,
) -> (Builder<H>, Option<PathBuf>) {
    match family {
        Family::Tcp => (bind(Family::Tcp, handler), None),
        Family::Unix => {
            let path = socket_path("py");
            (Server::bind_unix(&path, handler), Some(path))
        }
    }
}

/// Python's `server.server_address == server.socket.getsockname()`: the
/// server reports where it really listens (the real port of port 0 on
/// 127.0.0.1, or the path it was given, where a socket file now is).
pub fn assert_listens_where_asked(addr: &Address, path: Option<&PathBuf>) {
    use std::os::unix::fs::FileTypeExt;
    match (addr, path) {
        (Address::Inet(a), None) => {
            assert_eq!(a.ip(), std::net::Ipv4Addr::LOCALHOST);
            assert_ne!(a.port(), 0, "the real port, not 0");
        }
        (Address::Unix(Some(p)), Some(asked)) => {
            assert_eq!(p, asked);
            let meta = std::fs::symlink_metadata(p).expect("the socket file exists");
            assert!(meta.file_type().is_socket(), "{} is a socket", p.display());
        }
        (addr, path) => panic!("server on {addr}, asked for {path:?}"),
    }
}

/// Python's `self.assertEqual(-1, server.socket.fileno())`, seen from
/// outside: nothing listens at `addr` any more (a TCP connect is refused),
/// and a Unix server's socket file is gone.
pub fn assert_closed(addr: &Address) {
    let _no_child_starting = no_child_starting();
    match addr {
        Address::Inet(a) => {
            let e = TcpStream::connect_timeout(a, TIMEOUT)
                .expect_err(&format!("the listening socket {a} should be closed"));
            assert_eq!(
                e.kind(),
                io::ErrorKind::ConnectionRefused,
                "connect to {a}: {e}"
            );
        }
        Address::Unix(Some(path)) => {
            assert!(
                !path.exists(),
                "{} should have been removed",
                path.display()
            );
            let e = UnixStream::connect(path)
                .expect_err(&format!("{} should be closed", path.display()));
            assert_eq!(
                e.kind(),
                io::ErrorKind::NotFound,
                "connect to {}: {e}",
                path.display()
            );
        }
        other => panic!("a server never listens on {other}"),
    }
}

/// Python's `stream_examine`: one client sends [`TEST_STR`] and gets it
/// back exactly; then the server hangs up (the [`LineEcho`] handler).
pub fn stream_examine(addr: &Address) {
    let mut client = connect(addr);
    client.send(TEST_STR);
    assert_eq!(client.line().as_bytes(), TEST_STR);
    assert_eq!(client.rest(), b"", "the server hangs up after one line");
}

// ---------------------------------------------------------------------------
// Added for the `processes` module (the `Forking` and `Prefork` models).

/// The state letter (`R`, `S`, `Z`...) and the parent's pid of process
/// `pid`, from `/proc/PID/stat`; `None` once it is gone (reaped).
pub fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Every process whose parent is this process, with its state letter,
/// zombies included, in pid order.
pub fn child_processes() -> Vec<(u32, char)> {
    let me = std::process::id();
    let mut children: Vec<(u32, char)> = std::fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| match proc_stat(pid)? {
            (state, ppid) if ppid == me => Some((pid, state)),
            _ => None,
        })
        .collect();
    children.sort_unstable();
    children
}

/// Children of this process that have ended and were never reaped.
pub fn zombies() -> Vec<u32> {
    child_processes()
        .into_iter()
        .filter(|&(_, state)| state == 'Z')
        .map(|(pid, _)| pid)
        .collect()
}

/// Children of this process that are still running (not zombies).
pub fn live_children() -> Vec<u32> {
    child_processes()
        .into_iter()
        .filter(|&(_, state)| state != 'Z')
        .map(|(pid, _)| pid)
        .collect()
}

/// `kill -9 PID`, for a pid that a handler reported: only once it is known
/// to be a child of this process (one of the server's), never anything else.
pub fn kill_9(pid: u32) {
    assert_eq!(
        proc_stat(pid).map(|(_, ppid)| ppid),
        Some(std::process::id()),
        "{pid} is a child process of the server"
    );
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -9 {pid}: {status}");
}
