//! The FTP server drains politely (RFC 959's 421): Python's ftplib, logged
//! in and idle between commands, reads `421 Server shutting down; closing
//! the control connection.` right after SIGTERM, and the server exits at
//! once; a 100 MiB download in progress at SIGTERM completes first (its
//! 226, every byte, the right MD5), then the 421. In every model: forked
//! children and prefork workers are told of the drain too.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::ftp_util::{md5_hex, random_bytes, serve_ftp, TempDir, PASSWORD, USER};
use crate::util::{wait_exit, wait_until, ServerProcess, TIMEOUT};

/// The goodbye of a drain, as ftplib's `error_temp` prints it.
const SHUTTING_DOWN: &str = "421 Server shutting down; closing the control connection.";

/// The models, as `serve` flags.
const MODES: [&[&str]; 4] = [
    &["--mode", "threading"],
    &["--mode", "forking"],
    &["--mode", "prefork", "--workers", "2"],
    &["--mode", "event", "--threads", "2"],
];

/// Logs in, says so, waits for a line on stdin (the test's go), then reads
/// the reply the server sends unasked, and whether the connection ends.
const IDLE: &str = r#"
import ftplib, sys
host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ftp = ftplib.FTP()
ftp.connect(host, port, timeout=10)
ftp.login(user, password)
print("logged in", flush=True)
sys.stdin.readline()
try:
    print("unexpected", ftp.getresp(), flush=True)
except ftplib.error_temp as e:
    print(e, flush=True)
print("end of input" if ftp.sock.recv(1) == b"" else "more", flush=True)
"#;

/// Starts `RETR big.bin`, reads its first bytes, says so, waits for the
/// test's go, reads the rest while hashing it, then prints the count, the
/// MD5, the transfer's reply and the next one.
const DOWNLOAD: &str = r#"
import ftplib, hashlib, sys
host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ftp = ftplib.FTP()
ftp.connect(host, port, timeout=10)
ftp.login(user, password)
ftp.voidcmd("TYPE I")
data = ftp.transfercmd("RETR big.bin")
data.settimeout(10)
md5, count = hashlib.md5(), 0
first = data.recv(65536)
md5.update(first)
count += len(first)
print("transferring", flush=True)
sys.stdin.readline()
while True:
    chunk = data.recv(1 << 20)
    if not chunk:
        break
    md5.update(chunk)
    count += len(chunk)
data.close()
print(count, md5.hexdigest(), flush=True)
print(ftp.voidresp(), flush=True)
try:
    print("unexpected", ftp.getresp(), flush=True)
except ftplib.error_temp as e:
    print(e, flush=True)
"#;

/// A Python script run with the server's address and the test user, its
/// output read line by line with a deadline, its stdin the test's "go".
pub(crate) struct Script {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Script {
    fn start(code: &str, server: &ServerProcess) -> Script {
        Script::start_with(code, server, &[])
    }

    /// As [`Script::start`], with `more` arguments after the user's.
    pub(crate) fn start_with(code: &str, server: &ServerProcess, more: &[&str]) -> Script {
        let (host, port) = server.host_port();
        let mut child = Command::new("python3")
            .args(["-c", code, &host, &port, USER, PASSWORD])
            .args(more)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Script {
            child,
            stdin,
            lines,
        }
    }

    /// The next line the script prints; panics after [`TIMEOUT`].
    pub(crate) fn line(&self) -> String {
        self.lines
            .recv_timeout(TIMEOUT)
            .expect("a line from the Python script")
    }

    pub(crate) fn go(&mut self) {
        let mut stdin = self.stdin.take().expect("go once");
        stdin.write_all(b"go\n").expect("tell the script to go on");
    }

    pub(crate) fn succeeds(mut self) {
        let status = wait_exit(&mut self.child, TIMEOUT);
        assert!(status.success(), "the Python script failed: {status}");
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the server refuses new connections: it has closed its
/// listener, so the drain has begun.
fn wait_until_draining(server: &ServerProcess) {
    wait_until(TIMEOUT, "the listener closes", || {
        std::net::TcpStream::connect(&server.addr).is_err()
    });
}

#[test]
fn ftplib_idle_between_commands_gets_421_at_sigterm() {
    for mode in MODES {
        let case = mode.join(" ");
        let root = TempDir::new("drain-idle");
        let mut server = serve_ftp(root.path(), &[mode, &["--drain-timeout", "10"]].concat());
        let mut script = Script::start(IDLE, &server);
        assert_eq!(script.line(), "logged in", "{case}");
        let signalled = Instant::now();
        server.signal("TERM");
        script.go();
        assert_eq!(script.line(), SHUTTING_DOWN, "{case}: at once");
        assert_eq!(script.line(), "end of input", "{case}");
        let status = server.wait(Duration::from_secs(5));
        assert_eq!(status.code(), Some(0), "{case}: {status}");
        let took = signalled.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "{case}: exited {took:?} after SIGTERM (the drain timeout is 10 s)"
        );
        script.succeeds();
    }
}

#[test]
fn a_download_in_progress_at_sigterm_completes_then_421() {
    let root = TempDir::new("drain-retr");
    let big = random_bytes(100 << 20, 11);
    let md5 = md5_hex(&big);
    std::fs::write(root.join("big.bin"), &big).expect("write big.bin");
    drop(big);
    for mode in MODES {
        let case = mode.join(" ");
        // A drain timeout no loaded machine comes near: the download must
        // end on its own, not be cut.
        let mut server = serve_ftp(root.path(), &[mode, &["--drain-timeout", "120"]].concat());
        let mut script = Script::start(DOWNLOAD, &server);
        assert_eq!(script.line(), "transferring", "{case}");
        server.signal("TERM");
        wait_until_draining(&server);
        script.go();
        assert_eq!(
            script.line(),
            format!("{} {md5}", 100 << 20),
            "{case}: every byte, the right MD5"
        );
        assert_eq!(
            script.line(),
            format!("226 Transfer complete. MD5={md5}"),
            "{case}: the transfer completes"
        );
        let goodbye = Instant::now();
        assert_eq!(script.line(), SHUTTING_DOWN, "{case}: then the 421");
        let status = server.wait(Duration::from_secs(10));
        assert_eq!(status.code(), Some(0), "{case}: {status}");
        let took = goodbye.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "{case}: exited {took:?} after the 421"
        );
        script.succeeds();
    }
}
