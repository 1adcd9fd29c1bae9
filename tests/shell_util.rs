//! Helpers the Shell tests share: a test folder, `serve --handler shell`
//! in its variants, a raw client in each of the protocol's modes, the
//! tutorial's client and `client shell`.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::util::{
    client_command, run_with_input, serve_command, tutorial_program, wait_until, ServerProcess,
    IO_TIMEOUT, TIMEOUT,
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
    pub(crate) fn expect_silence(&mut self, quiet: Duration) {
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
