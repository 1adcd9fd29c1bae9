//! Child processes of the bench: each ended by its own PID (SIGKILL) and
//! reaped when dropped, at the end of its use and on panic, and read line
//! by line from its standard output with a bounded wait.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long the bench waits for any one line of a child process.
pub const STEP_LIMIT: Duration = Duration::from_secs(90);

/// A child process, killed (by its PID) and reaped when dropped.
pub struct Process {
    pub child: Child,
    pub name: String,
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process is still running, or an error saying how it ended.
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("{} exited: {status}", self.name)),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }

    /// Waits up to `limit` for the process to exit by itself, polling every
    /// millisecond (the shutdown workload times this); true if it did.
    pub fn wait_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            thread::sleep(Duration::from_millis(1));
        }
        false
    }

    /// Sends SIGTERM to this PID only.
    pub fn terminate(&self) -> Result<(), String> {
        let pid = libc::pid_t::try_from(self.pid()).map_err(|e| e.to_string())?;
        // SAFETY: kill(2) with a PID this process started and has not reaped.
        if unsafe { libc::kill(pid, libc::SIGTERM) } == 0 {
            Ok(())
        } else {
            Err(format!(
                "kill -TERM {pid}: {}",
                std::io::Error::last_os_error()
            ))
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill(); // SIGKILL to this PID only
        }
        let _ = self.child.wait();
    }
}

/// Starts `command` with piped stdout; returns it with a channel of its
/// stdout's lines.
pub fn spawn(
    mut command: Command,
    name: &str,
) -> Result<(Process, mpsc::Receiver<String>), String> {
    command.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let process = Process {
        child,
        name: name.to_string(),
    };
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok((process, rx))
}

/// The next line from a child, waited for at most STEP_LIMIT.
pub fn next_line(rx: &mpsc::Receiver<String>, from: &str, what: &str) -> Result<String, String> {
    rx.recv_timeout(STEP_LIMIT).map_err(|e| match e {
        mpsc::RecvTimeoutError::Timeout => format!("{from}: no {what} within {STEP_LIMIT:?}"),
        mpsc::RecvTimeoutError::Disconnected => format!("{from} ended before its {what}"),
    })
}

/// Runs a command to its end; its trimmed stdout if it succeeded.
pub fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
