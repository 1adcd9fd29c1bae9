//! Helpers for the end-to-end tests: start a real program, read the address
//! it serves on, run the tutorial's clients against it, stop it by its PID.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long any single step of a test may take before it fails.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// `serve`'s flags for the event model as the tests run it: two event
/// loops, so that conversations are dealt to two threads.
pub const EVENT: &[&str] = &["--mode", "event", "--threads", "2"];

/// `serve`'s flags for the threading model.
pub const THREADING: &[&str] = &["--mode", "threading"];

/// The model that `serve`'s flags `mode` choose, as its first line names
/// it: `--mode`'s value, or the default, event.
pub fn model_name<'a>(mode: &[&'a str]) -> &'a str {
    mode.iter()
        .position(|arg| *arg == "--mode")
        .and_then(|i| mode.get(i + 1))
        .copied()
        .unwrap_or("event")
}

/// Two tests from one body that takes `serve`'s model flags: the first
/// name runs it under the threading model ([`THREADING`]), the second
/// under the event model ([`EVENT`]), each a test of its own (they run in
/// parallel, and a failure names its model).
macro_rules! threads_and_events {
    ($threads:ident, $event:ident, $body:path) => {
        #[test]
        fn $threads() {
            $body(crate::util::THREADING);
        }

        #[test]
        fn $event() {
            $body(crate::util::EVENT);
        }
    };
}

/// One of the tutorial's Python programs, made runnable, in
/// `examples/tutorial/` (each says which section of the tutorial it comes
/// from and how to run it).
pub fn tutorial_program(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/tutorial")
        .join(name);
    assert!(
        path.exists(),
        "the tutorial's program {} is missing",
        path.display()
    );
    path
}

/// A built example program (cargo test builds the examples).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = dir.join("examples").join(name);
    assert!(path.exists(), "example {} is not built", path.display());
    path
}

/// A server process that printed `serving NAME on ADDRESS (MODE)` first.
pub struct ServerProcess {
    pub child: Child,
    pub addr: String,
    pub first_line: String,
    stdout: Option<BufReader<ChildStdout>>,
}

impl ServerProcess {
    /// Starts `command` and waits (up to [`TIMEOUT`]) for its first line.
    pub fn start(command: Command) -> ServerProcess {
        Self::start_with_stderr(command, Stdio::inherit())
    }

    /// As [`ServerProcess::start`], with the server's standard error (its
    /// log) sent line by line to the returned channel, and copied to the
    /// test's.
    pub fn start_logged(command: Command) -> (ServerProcess, mpsc::Receiver<String>) {
        let mut server = Self::start_with_stderr(command, Stdio::piped());
        let stderr = server.child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("{line}");
                let _ = tx.send(line);
            }
        });
        (server, rx)
    }

    fn start_with_stderr(mut command: Command, stderr: Stdio) -> ServerProcess {
        command.stdout(Stdio::piped()).stderr(stderr);
        let mut child = command.spawn().expect("start the server");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let (tx, rx) = mpsc::channel();
        let reader = thread::spawn(move || {
            let mut line = String::new();
            let _ = stdout.read_line(&mut line);
            let _ = tx.send(line);
            stdout
        });
        let first_line = match rx.recv_timeout(TIMEOUT) {
            Ok(line) => line.trim_end().to_string(),
            Err(_) => {
                let _ = child.kill();
                panic!("the server printed nothing within {TIMEOUT:?}");
            }
        };
        let stdout = reader.join().expect("reader thread");
        let addr = first_line
            .split(" on ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("unexpected first line {first_line:?}"))
            .to_string();
        ServerProcess {
            child,
            addr,
            first_line,
            stdout: Some(stdout),
        }
    }

    /// The host and port, separately (for the tutorial's clients).
    pub fn host_port(&self) -> (String, String) {
        let (host, port) = self.addr.rsplit_once(':').expect("host:port");
        (host.trim_matches(['[', ']']).to_string(), port.to_string())
    }

    /// Sends SIGTERM (by PID, to this child only) and waits for the exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        wait_exit(&mut self.child, TIMEOUT)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        drop(self.stdout.take());
    }
}

/// Waits for `child` to exit; kills it and panics after `within`.
pub fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("process {} did not exit within {within:?}", child.id());
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Runs a client to completion with `input` on its stdin; kills it and
/// panics if it takes longer than [`TIMEOUT`].
pub fn run_with_input(mut command: Command, input: &[u8]) -> Output {
    use std::io::Write;
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("start the client");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let status = wait_exit(&mut child, TIMEOUT);
    let _ = writer.join();
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// The `serve` binary, quiet unless something goes wrong (its errors on
/// standard error are printed whatever the log level).
pub fn serve_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_serve"));
    command.env("RUST_LOG", "error");
    command
}

/// The `client` binary.
pub fn client_command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_client"))
}

/// `serve --handler echo --bind 127.0.0.1:0 ARGS...`, started and serving.
pub fn serve(args: &[&str]) -> ServerProcess {
    serve_on("127.0.0.1:0", args)
}

/// `serve --handler echo --bind BIND ARGS...`, started and serving.
pub fn serve_on(bind: &str, args: &[&str]) -> ServerProcess {
    let mut command = serve_command();
    command
        .args(["--handler", "echo", "--bind", bind])
        .args(args);
    ServerProcess::start(command)
}

impl ServerProcess {
    /// Sends `signal` (a name such as "INT" or "TERM") to this child only,
    /// by its PID.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(
            status.success(),
            "kill -{signal} {} failed",
            self.child.id()
        );
    }

    /// Waits for the exit; kills the process and panics after `within`.
    pub fn wait(&mut self, within: Duration) -> std::process::ExitStatus {
        wait_exit(&mut self.child, within)
    }

    /// Connects a raw TCP client to the address the server printed.
    pub fn connect(&self) -> Peer {
        Peer::connect(&self.addr)
    }
}

/// How long a raw client waits for any one read or write.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The greeting of the echo handler, as bytes.
pub const GREETING: &str = "欢迎致电babyshen";

/// A raw client: a TCP or Unix stream with read and write timeouts, and
/// exact expectations on what it reads.
pub struct Peer {
    stream: PeerStream,
}

enum PeerStream {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl Peer {
    /// Connects over TCP, with Nagle off (each write is its own segment).
    pub fn connect(addr: &str) -> Peer {
        let stream =
            std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Peer {
            stream: PeerStream::Tcp(stream),
        }
    }

    /// Connects to a Unix socket.
    pub fn connect_unix(path: &Path) -> Peer {
        let stream = std::os::unix::net::UnixStream::connect(path)
            .unwrap_or_else(|e| panic!("connect to {}: {e}", path.display()));
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        Peer {
            stream: PeerStream::Unix(stream),
        }
    }

    /// Connects and reads the default greeting.
    pub fn greeted(addr: &str) -> Peer {
        let mut peer = Peer::connect(addr);
        peer.expect(GREETING.as_bytes());
        peer
    }

    fn set_read_timeout(&self, timeout: Duration) {
        match &self.stream {
            PeerStream::Tcp(s) => s.set_read_timeout(Some(timeout)),
            PeerStream::Unix(s) => s.set_read_timeout(Some(timeout)),
        }
        .expect("set the read timeout");
    }

    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match &mut self.stream {
            PeerStream::Tcp(s) => s.read(buf),
            PeerStream::Unix(s) => s.read(buf),
        }
    }

    /// Writes all of `bytes` (one `write` call on a fresh socket buffer,
    /// so with Nagle off it leaves as its own segment).
    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        match &mut self.stream {
            PeerStream::Tcp(s) => s.write_all(bytes),
            PeerStream::Unix(s) => s.write_all(bytes),
        }
        .unwrap_or_else(|e| panic!("send {:?}: {e}", String::from_utf8_lossy(bytes)));
    }

    /// Closes the writing half: the server reads end of input.
    pub fn shutdown_write(&self) {
        match &self.stream {
            PeerStream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            PeerStream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        }
        .expect("shutdown(Write)");
    }

    /// Reads exactly `expected.len()` bytes and checks they are `expected`.
    pub fn expect(&mut self, expected: &[u8]) {
        let mut got = Vec::with_capacity(expected.len());
        let mut buf = vec![0; expected.len().max(1)];
        while got.len() < expected.len() {
            let want = expected.len() - got.len();
            match self.read(&mut buf[..want]) {
                Ok(0) => panic!(
                    "end of input after {:?}, expected {:?}",
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(expected)
                ),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!(
                    "read failed ({e}) after {:?}, expected {:?}",
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(expected)
                ),
            }
        }
        assert_eq!(
            got,
            expected,
            "got {:?}, expected {:?}",
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected)
        );
    }

    /// The next read is an orderly end of input (not data, not an error
    /// such as a connection reset, not a timeout).
    pub fn expect_eof(&mut self) {
        let mut buf = [0; 256];
        match self.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!(
                "expected end of input, got {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e) => panic!("expected end of input, got an error: {e} ({:?})", e.kind()),
        }
    }

    /// Nothing arrives for `quiet`: the read times out (this timeout is
    /// expected to expire).
    pub fn expect_silence(&mut self, quiet: Duration) {
        self.set_read_timeout(quiet);
        let mut buf = [0; 256];
        let result = self.read(&mut buf);
        self.set_read_timeout(IO_TIMEOUT);
        match result {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Ok(0) => panic!("expected silence, got end of input"),
            Ok(n) => panic!(
                "expected silence, got {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e) => panic!("expected silence, got an error: {e}"),
        }
    }
}

/// A port on 127.0.0.1 that nothing listens on (bound, then let go).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// Waits (up to [`TIMEOUT`]) for a line of `log` that satisfies `matches`,
/// and returns it; panics with `what` if none comes.
pub fn wait_for_line(
    log: &mpsc::Receiver<String>,
    what: &str,
    matches: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match log.recv_timeout(left) {
            Ok(line) if matches(&line) => return line,
            Ok(_) => {}
            Err(_) => panic!("{what}: no such line within {TIMEOUT:?}"),
        }
    }
}

/// Calls `check` every few milliseconds until it returns true; panics with
/// `what` after `within`.
pub fn wait_until(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        thread::sleep(Duration::from_millis(5));
    }
}

impl ServerProcess {
    /// The next line the server prints on standard output after its first
    /// (the shell's token file), without its newline; panics after
    /// [`TIMEOUT`].
    pub fn next_stdout_line(&mut self) -> String {
        let mut stdout = self.stdout.take().expect("standard output");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = stdout.read_line(&mut line);
            let _ = tx.send((line, stdout));
        });
        let (line, stdout) = rx
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| panic!("the server printed no further line within {TIMEOUT:?}"));
        self.stdout = Some(stdout);
        line.trim_end_matches('\n').to_string()
    }
}
