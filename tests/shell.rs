//! The Shell handler (the tutorial's remote shell) served by the real
//! `serve` binary: driven by the tutorial's own fixed client, by raw clients
//! in each of its three modes, and by the real `client shell`; binary
//! output, its working directory, its log; and the helpers the other shell
//! tests share (its token and policy are in `shell_auth.rs`, its commands
//! as processes, their limits, kills and reaping in `shell_processes.rs`).

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::util::{
    client_command, run_with_input, serve_command, tutorial_program, wait_exit, wait_until,
    ServerProcess, IO_TIMEOUT, TIMEOUT,
};

/// The tutorial client's prompt.
pub(crate) const PROMPT: &str = ">>：";
/// The reply to an unauthenticated command.
pub(crate) const AUTH_REQUIRED: &str =
    "error: authentication required: send \"auth TOKEN\" first\n";

// ---------------------------------------------------------------- helpers

/// A fresh directory for one test, removed at the end; its path is
/// canonical (the server reports canonical directories).
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "socketserver-shell-{}-{}-{name}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create the test directory");
        TempDir(path.canonicalize().expect("canonical test directory"))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `serve --handler shell --bind 127.0.0.1:0 --no-token ARGS...`, run in
/// `dir`: these tests are about commands, and the tutorial's client cannot
/// send a token. (`--allow-root`: the tests may run as root, in a
/// container; as another user it changes nothing.)
pub(crate) fn serve_shell(dir: &Path, args: &[&str]) -> ServerProcess {
    let mut command = shell_command(dir);
    command.arg("--no-token").args(args);
    ServerProcess::start(command)
}

/// `serve --handler shell --bind 127.0.0.1:0 --allow-root ARGS...`, run in
/// `dir`, with `XDG_RUNTIME_DIR` set to `dir/run` (made 0700), where a
/// generated token's file goes.
pub(crate) fn serve_shell_secured(dir: &Path, args: &[&str]) -> ServerProcess {
    let mut command = shell_command(dir);
    command.args(args).env("XDG_RUNTIME_DIR", runtime_dir(dir));
    ServerProcess::start(command)
}

/// `serve --handler shell --bind 127.0.0.1:0 --allow-root`, run in `dir`.
fn shell_command(dir: &Path) -> Command {
    let mut command = serve_command();
    command
        .args([
            "--handler",
            "shell",
            "--bind",
            "127.0.0.1:0",
            "--allow-root",
        ])
        .current_dir(dir)
        .env("LC_ALL", "C");
    command
}

/// `dir/run`, mode 0700: a private runtime folder, as systemd makes
/// `/run/user/UID`.
pub(crate) fn runtime_dir(dir: &Path) -> PathBuf {
    use std::os::unix::fs::DirBuilderExt;
    let run = dir.join("run");
    match fs::DirBuilder::new().mode(0o700).create(&run) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => panic!("create {}: {e}", run.display()),
    }
    run
}

/// `serve --handler shell --bind 127.0.0.1:0 --allow-root ARGS...` with
/// the server's log (RUST_LOG=info) appended to `log`. `sh` execs
/// `serve`, so the process is still the server itself.
pub(crate) fn serve_shell_logging(dir: &Path, log: &Path, args: &[&str]) -> ServerProcess {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("exec \"$0\" \"$@\" 2>>\"$SHELL_TEST_LOG\"")
        .arg(env!("CARGO_BIN_EXE_serve"))
        .args([
            "--handler",
            "shell",
            "--bind",
            "127.0.0.1:0",
            "--allow-root",
        ])
        .args(args)
        .current_dir(dir)
        .env("XDG_RUNTIME_DIR", runtime_dir(dir))
        .env("SHELL_TEST_LOG", log)
        .env("RUST_LOG", "info")
        .env("LC_ALL", "C");
    ServerProcess::start(command)
}

/// A raw client with read and write timeouts: exact bytes in, exact bytes
/// out.
pub(crate) struct Raw {
    reader: BufReader<TcpStream>,
}

impl Raw {
    pub(crate) fn connect(addr: &str) -> Raw {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Raw {
            reader: BufReader::new(stream),
        }
    }

    /// Connects and switches to status mode.
    pub(crate) fn status_mode(addr: &str) -> Raw {
        let mut raw = Raw::connect(addr);
        raw.send(b"#shell/1\n");
        raw.expect(b"#shell/1 ok\n");
        raw
    }

    pub(crate) fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    pub(crate) fn set_read_timeout(&self, timeout: Duration) {
        self.stream().set_read_timeout(Some(timeout)).unwrap();
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) {
        self.reader
            .get_mut()
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("send {:?}: {e}", String::from_utf8_lossy(bytes)));
    }

    pub(crate) fn read_exact(&mut self, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        self.reader
            .read_exact(&mut buf)
            .unwrap_or_else(|e| panic!("read {len} bytes: {e}"));
        buf
    }

    pub(crate) fn expect(&mut self, expected: &[u8]) {
        let got = self.read_exact(expected.len());
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected)
        );
    }

    pub(crate) fn read_line(&mut self) -> String {
        let mut line = Vec::new();
        self.reader
            .read_until(b'\n', &mut line)
            .unwrap_or_else(|e| panic!("read a line: {e}"));
        assert_eq!(line.pop(), Some(b'\n'), "end of input inside a line");
        String::from_utf8(line).expect("a UTF-8 line")
    }

    /// The next read is an orderly end of input.
    pub(crate) fn expect_eof(&mut self) {
        let mut buf = [0; 256];
        match self.reader.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!(
                "expected end of input, got {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e) => panic!("expected end of input, got {e}"),
        }
    }

    /// Nothing arrives for `quiet` (the read's timeout is expected to
    /// expire).
    fn expect_silence(&mut self, quiet: Duration) {
        self.set_read_timeout(quiet);
        let mut buf = [0; 256];
        let result = self.reader.read(&mut buf);
        self.set_read_timeout(IO_TIMEOUT);
        match result {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Ok(n) => panic!(
                "expected silence, got {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e) => panic!("expected silence, got {e}"),
        }
    }

    /// Status mode: runs `command`, returns the header's status field (the
    /// second, e.g. `exit=0`) and the body; checks the header's shape
    /// `LEN STATUS time=SECS`. Waits up to `within` for the reply.
    pub(crate) fn run_within(&mut self, command: &str, within: Duration) -> (String, Vec<u8>) {
        self.send(format!("{command}\n").as_bytes());
        self.reply_within(within)
    }

    /// Status mode: the reply to a command sent already, as
    /// [`Raw::run_within`] gives it.
    pub(crate) fn reply_within(&mut self, within: Duration) -> (String, Vec<u8>) {
        self.set_read_timeout(within);
        let header = self.read_line();
        self.set_read_timeout(IO_TIMEOUT);
        let fields: Vec<&str> = header.split(' ').collect();
        assert_eq!(fields.len(), 3, "header {header:?}");
        let len: usize = fields[0]
            .parse()
            .unwrap_or_else(|_| panic!("header {header:?}"));
        let time = fields[2]
            .strip_prefix("time=")
            .unwrap_or_else(|| panic!("header {header:?}"));
        let (whole, millis) = time.split_once('.').expect("time=S.SSS");
        assert!(
            whole.parse::<u64>().is_ok() && millis.len() == 3 && millis.parse::<u32>().is_ok(),
            "header {header:?}"
        );
        let status = fields[1].to_string();
        (status, self.read_exact(len))
    }

    pub(crate) fn run(&mut self, command: &str) -> (String, Vec<u8>) {
        self.run_within(command, IO_TIMEOUT)
    }

    /// Tutorial mode: sends `command`, expects exactly the length of
    /// `body`, acknowledges, expects exactly `body`.
    pub(crate) fn tutorial(&mut self, command: &str, body: &[u8]) {
        self.send(command.as_bytes());
        self.expect(body.len().to_string().as_bytes());
        self.send("准备好接受了，loser可以发了".as_bytes());
        self.expect(body);
    }
}

/// Waits until the file `path` holds a number followed by a newline (a
/// command wrote `$$` there) and returns it.
pub(crate) fn wait_for_number(path: &Path) -> i32 {
    let mut number = None;
    wait_until(TIMEOUT, &format!("{} written", path.display()), || {
        number = fs::read_to_string(path)
            .ok()
            .and_then(|text| text.strip_suffix('\n').and_then(|n| n.parse().ok()));
        number.is_some()
    });
    number.unwrap()
}

/// The tutorial's fixed client (方式2), typing `input`; its standard output.
pub(crate) fn tutorial_client(server: &ServerProcess, input: &str) -> String {
    let (host, port) = server.host_port();
    let mut client = Command::new("python3");
    client
        .arg(tutorial_program("shell_client.py"))
        .args([&host, &port])
        .env("PYTHONIOENCODING", "utf-8");
    let out = run_with_input(client, input.as_bytes());
    assert!(
        out.status.success(),
        "shell_client.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    String::from_utf8(out.stdout).expect("the transcript is UTF-8")
}

/// What the tutorial's client prints for one reply of `body`.
pub(crate) fn tutorial_transcript(body: &str) -> String {
    format!(
        "{PROMPT}命令结果大小： b'{len}'\ncmd res receive done.... {len}\n{body}\n",
        len = body.len()
    )
}

/// `client shell ADDR ARGS...` typing `input`, with no token in its
/// environment and no token file to find.
pub(crate) fn client_shell(addr: &str, args: &[&str], input: &[u8]) -> std::process::Output {
    let mut client = client_command();
    client
        .args(["shell", addr])
        .args(args)
        .env_remove("SOCKETSERVER_SHELL_TOKEN")
        .env("XDG_RUNTIME_DIR", "/nonexistent-socketserver-test")
        .env("TMPDIR", "/nonexistent-socketserver-test");
    run_with_input(client, input)
}

/// `client shell`'s status lines on standard error, with the durations
/// (`, 0.003 s`) taken out.
pub(crate) fn status_lines(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(|line| match line.rsplit_once(", ") {
            Some((head, took)) if took.ends_with(" s]") && head.starts_with('[') => {
                format!("{head}]")
            }
            _ => line.to_string(),
        })
        .collect()
}

// ------------------------------------------------------ the tutorial's client

threads_and_events!(
    tutorial_client_prints_the_tutorials_transcript,
    tutorial_client_prints_the_tutorials_transcript_event,
    tutorial_client_prints_the_tutorials_transcript_in
);

/// The tutorial's fixed client, unmodified, typing `echo hello`, `ls`, a
/// command with no output and one whose output is over 1024 bytes (the case
/// the size/ack fix exists for): each reply prints as the tutorial's
/// client prints it, length first, then the whole output.
fn tutorial_client_prints_the_tutorials_transcript_in(mode: &[&str]) {
    let dir = TempDir::new("tutorial");
    fs::write(dir.join("a.txt"), "a").unwrap();
    fs::write(dir.join("b.txt"), "b").unwrap();
    let server = serve_shell(dir.path(), mode);
    let numbers: String = (1..=400).map(|n| format!("{n}\n")).collect();
    assert!(numbers.len() > 1024);
    let transcript = tutorial_client(&server, "echo hello\nls\ntrue\nseq 1 400\n");
    assert_eq!(
        transcript,
        [
            tutorial_transcript("hello\n"),
            tutorial_transcript("a.txt\nb.txt\n"),
            tutorial_transcript("cmd has no output..."),
            tutorial_transcript(&numbers),
            PROMPT.to_string(),
        ]
        .concat()
    );
}

threads_and_events!(
    tutorial_mode_waits_for_the_acknowledgement,
    tutorial_mode_waits_for_the_acknowledgement_event,
    tutorial_mode_waits_for_the_acknowledgement_in
);

/// On the wire, in tutorial mode: the length alone, then nothing until the
/// client acknowledges (the tutorial's 方式2), then exactly the output. The
/// length can never arrive glued to the output.
fn tutorial_mode_waits_for_the_acknowledgement_in(mode: &[&str]) {
    let dir = TempDir::new("ack");
    let server = serve_shell(dir.path(), mode);
    let mut raw = Raw::connect(&server.addr);
    raw.send(b"seq 1 400");
    raw.expect(b"1492");
    raw.expect_silence(Duration::from_millis(300));
    raw.send(b"ok");
    let numbers: String = (1..=400).map(|n| format!("{n}\n")).collect();
    raw.expect(numbers.as_bytes());
    raw.tutorial("printf '%s' 'no newline'", b"no newline");
    raw.tutorial("true", b"cmd has no output...");
}

threads_and_events!(
    line_client_gets_a_length_line_then_the_output,
    line_client_gets_a_length_line_then_the_output_event,
    line_client_gets_a_length_line_then_the_output_in
);

/// Line mode (nc, scripts): each line is a command, answered with its
/// length, a newline and the output; several lines in one write each get
/// their reply, in order; no acknowledgement is waited for.
fn line_client_gets_a_length_line_then_the_output_in(mode: &[&str]) {
    let dir = TempDir::new("lines");
    let server = serve_shell(dir.path(), mode);
    let mut raw = Raw::connect(&server.addr);
    raw.send(b"echo hello\n");
    raw.expect(b"6\nhello\n");
    raw.send(b"true\r\nprintf abc\necho one; echo two >&2\n");
    raw.expect(b"20\ncmd has no output...3\nabc8\none\ntwo\n");
}

// ----------------------------------------------------------- client shell

threads_and_events!(
    client_shell_shows_output_and_exit_status,
    client_shell_shows_output_and_exit_status_event,
    client_shell_shows_output_and_exit_status_in
);

/// `client shell` prints each command's output exactly on standard output
/// and its exit status on standard error, one reply after the other.
fn client_shell_shows_output_and_exit_status_in(mode: &[&str]) {
    let dir = TempDir::new("client");
    let server = serve_shell(dir.path(), mode);
    let out = client_shell(
        &server.addr,
        &[],
        b"echo hello\necho oops >&2; exit 3\nprintf abc\ntrue\nkill -KILL $$\nexit\necho never\n",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\noops\nabc");
    assert_eq!(
        status_lines(&out.stderr),
        [
            "[exit 0]",
            "[exit 3]",
            "[exit 0]",
            "[exit 0]",
            "[killed by signal 9]"
        ]
    );
    assert_eq!(out.status.code(), Some(0));
}

threads_and_events!(
    status_mode_reports_how_each_command_ended,
    status_mode_reports_how_each_command_ended_event,
    status_mode_reports_how_each_command_ended_in
);

/// On the wire, in status mode: the `#shell/1` hello is answered
/// `#shell/1 ok`, and each reply is `LEN STATUS time=SECS` then exactly the
/// output (empty output is empty: no tutorial text).
fn status_mode_reports_how_each_command_ended_in(mode: &[&str]) {
    let dir = TempDir::new("status");
    let server = serve_shell(dir.path(), mode);
    let mut raw = Raw::status_mode(&server.addr);
    assert_eq!(raw.run("echo hi"), ("exit=0".to_string(), b"hi\n".to_vec()));
    assert_eq!(raw.run("exit 7"), ("exit=7".to_string(), Vec::new()));
    assert_eq!(
        raw.run("kill -TERM $$"),
        ("signal=15".to_string(), Vec::new())
    );
    assert_eq!(
        raw.run("echo out; echo err >&2; echo out2"),
        ("exit=0".to_string(), b"out\nerr\nout2\n".to_vec())
    );
    // The hello is only a hello first: later it is a shell comment.
    assert_eq!(raw.run("#shell/1"), ("exit=0".to_string(), Vec::new()));
}

threads_and_events!(
    over_long_line_gets_an_error_then_eof,
    over_long_line_gets_an_error_then_eof_event,
    over_long_line_gets_an_error_then_eof_in
);

/// A line over the limit (64 KiB) gets one error reply, then the server
/// closes in order.
fn over_long_line_gets_an_error_then_eof_in(mode: &[&str]) {
    let dir = TempDir::new("long");
    let server = serve_shell(dir.path(), mode);
    let mut raw = Raw::status_mode(&server.addr);
    raw.send(&vec![b'x'; 70 * 1024]);
    raw.send(b"\n");
    let header = raw.read_line();
    let body = b"error: line longer than 65536 bytes\n";
    assert!(
        header.starts_with(&format!("{} error time=", body.len())),
        "{header:?}"
    );
    raw.expect(body);
    raw.expect_eof();
}

/// `client shell` against the tutorial's own server (方式2): it notices the
/// server speaks only the tutorial's protocol, says so, and still runs
/// commands (without exit statuses).
#[test]
fn client_shell_against_the_tutorials_python_server() {
    let mut python = Command::new("python3");
    python.args(["-c", TUTORIAL_SERVER]);
    let mut server = ServerProcess::start(python);
    let out = client_shell(&server.addr, &[], b"echo hello\nseq 1 400\n");
    let numbers: String = (1..=400).map(|n| format!("{n}\n")).collect();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("hello\n{numbers}")
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "client: {} speaks the tutorial's protocol: no exit statuses\n",
            server.addr
        )
    );
    assert_eq!(out.status.code(), Some(0));
    let status = wait_exit(&mut server.child, TIMEOUT);
    assert!(status.success(), "the tutorial's server: {status}");
}

/// The tutorial's SSH server with its fix (方式2: length, wait for the
/// acknowledgement, output), on a free port, ending after its one client.
/// It prints the line `serve` prints so that ServerProcess can read the
/// port.
const TUTORIAL_SERVER: &str = r#"
import socket
import os
server = socket.socket()
server.bind(('127.0.0.1', 0))
server.listen(5)
print("serving tutorial on 127.0.0.1:%d (sync)" % server.getsockname()[1], flush=True)

conn, addr = server.accept()
while True:
    data = conn.recv(1024)
    if not data:
        break
    cmd_res = os.popen(data.decode()).read()
    if len(cmd_res) == 0:
        cmd_res = "cmd has no output..."
    conn.send(str(len(cmd_res.encode())).encode("utf-8"))
    client_ack = conn.recv(1024)
    conn.send(cmd_res.encode("utf-8"))
server.close()
"#;

// ------------------------------------------------------------------ limits

threads_and_events!(
    binary_output_arrives_intact,
    binary_output_arrives_intact_event,
    binary_output_arrives_intact_in
);

/// 10 MiB of binary output (every byte value) comes through byte for byte:
/// through `client shell` to a pipe, and raw in status mode; the MD5 sums
/// (md5sum's) agree with the file's.
fn binary_output_arrives_intact_in(mode: &[&str]) {
    let dir = TempDir::new("binary");
    let blob = pseudo_random(10 * 1024 * 1024);
    fs::write(dir.join("blob"), &blob).unwrap();
    let server = serve_shell(dir.path(), mode);

    let out = client_shell(&server.addr, &[], b"cat blob\n");
    assert_eq!(status_lines(&out.stderr), ["[exit 0]"]);
    assert_eq!(md5sum(&out.stdout), md5sum(&blob));
    assert!(out.stdout == blob, "the bytes differ");

    let mut raw = Raw::status_mode(&server.addr);
    let (status, body) = raw.run("cat blob");
    assert_eq!(status, "exit=0");
    assert_eq!(md5sum(&body), md5sum(&blob));
    assert!(body == blob, "the bytes differ");
}

/// Deterministic bytes in which every value occurs (xorshift).
pub(crate) fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut bytes: Vec<u8> = (0..=255).collect();
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// The MD5 of `bytes`, by md5sum.
pub(crate) fn md5sum(bytes: &[u8]) -> String {
    let mut md5 = Command::new("md5sum");
    md5.stdin(Stdio::piped());
    let out = run_with_input(md5, bytes);
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

// --------------------------------------------------------------------- cd

threads_and_events!(
    cd_persists_within_a_connection_only,
    cd_persists_within_a_connection_only_event,
    cd_persists_within_a_connection_only_in
);

/// `cd` changes the connection's directory for its later commands, and
/// replies with the new directory or the error; another connection starts
/// where the server started; a `cd` inside a compound command lasts for
/// that command only.
fn cd_persists_within_a_connection_only_in(mode: &[&str]) {
    let dir = TempDir::new("cd");
    fs::create_dir(dir.join("sub")).unwrap();
    fs::create_dir(dir.join("my dir")).unwrap();
    let server = serve_shell(dir.path(), mode);
    let top = format!("{}\n", dir.path().display());
    let sub = format!("{}/sub\n", dir.path().display());

    let mut one = Raw::status_mode(&server.addr);
    assert_eq!(
        one.run("cd sub"),
        ("exit=0".into(), sub.clone().into_bytes())
    );
    assert_eq!(one.run("pwd"), ("exit=0".into(), sub.clone().into_bytes()));
    assert_eq!(
        one.run("cd nope"),
        (
            "exit=1".into(),
            b"cd: nope: no such file or directory\n".to_vec()
        )
    );
    assert_eq!(one.run("pwd"), ("exit=0".into(), sub.clone().into_bytes()));
    assert_eq!(
        one.run("cd .."),
        ("exit=0".into(), top.clone().into_bytes())
    );
    assert_eq!(one.run("cd -"), ("exit=0".into(), sub.clone().into_bytes()));
    assert_eq!(
        one.run("cd '../my dir'"),
        (
            "exit=0".into(),
            format!("{}/my dir\n", dir.path().display()).into_bytes()
        )
    );
    assert_eq!(
        one.run("cd ../sub && pwd"),
        ("exit=0".into(), sub.clone().into_bytes())
    );
    assert_eq!(
        one.run("pwd"),
        (
            "exit=0".into(),
            format!("{}/my dir\n", dir.path().display()).into_bytes()
        )
    );

    let mut two = Raw::status_mode(&server.addr);
    assert_eq!(two.run("pwd"), ("exit=0".into(), top.clone().into_bytes()));

    // The tutorial's client sees the new directory as the output.
    let transcript = tutorial_client(&server, "cd sub\npwd\n");
    assert_eq!(
        transcript,
        [
            tutorial_transcript(&sub),
            tutorial_transcript(&sub),
            PROMPT.to_string()
        ]
        .concat()
    );
}

// ------------------------------------------------- concurrency and models

// -------------------------------------------------------------------- log

threads_and_events!(
    every_command_is_logged,
    every_command_is_logged_event,
    every_command_is_logged_in
);

/// Every command is logged with the peer's address, how it ended, how long
/// it took and how much output it gave.
fn every_command_is_logged_in(mode: &[&str]) {
    let dir = TempDir::new("log");
    let log = dir.join("serve.log");
    let server = serve_shell_logging(dir.path(), &log, &[mode, &["--no-token"]].concat());
    let mut raw = Raw::status_mode(&server.addr);
    let peer = raw.stream().local_addr().unwrap();
    raw.run("echo hello");
    raw.run("exit 4");
    let wanted = [
        format!(
            "{peer}: ran \"echo hello\" in {}: exit=0, ",
            dir.path().display()
        ),
        format!(
            "{peer}: ran \"exit 4\" in {}: exit=4, ",
            dir.path().display()
        ),
    ];
    let mut text = String::new();
    wait_until(TIMEOUT, "the log lines", || {
        text = fs::read_to_string(&log).unwrap_or_default();
        wanted.iter().all(|w| text.contains(w.as_str()))
    });
    for (w, bytes) in wanted
        .iter()
        .zip(["6 bytes of output", "0 bytes of output"])
    {
        let line = text.lines().find(|l| l.contains(w.as_str())).unwrap();
        let rest = &line[line.find(w.as_str()).unwrap() + w.len()..];
        // "0.002 s, 6 bytes of output"
        let (took, size) = rest
            .split_once(" s, ")
            .unwrap_or_else(|| panic!("{line:?}"));
        assert!(took.parse::<f64>().is_ok(), "{line:?}");
        assert_eq!(size, bytes, "{line:?}");
    }
}

// --------------------------------------------------------------- shutdown
