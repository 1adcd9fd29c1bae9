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

/// The folder of the tutorial's clients, beside the project.
pub fn seed_client(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/seed/clients")
        .join(name);
    assert!(path.exists(), "the tutorial's client {} is missing", path.display());
    path
}

/// A built example program (cargo test builds the examples).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
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
    pub fn start(mut command: Command) -> ServerProcess {
        command.stdout(Stdio::piped()).stderr(Stdio::inherit());
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
