//! The Shell handler's commands, as `serve` runs them: what a command may
//! see (a cleaned environment), what it may not outlive (its cgroup, even
//! after `setsid`), what its output costs the server (a spool file, not
//! memory), and the limit `client shell` puts on what a server announces.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::thread;
use std::time::Instant;

use crate::shell::{client_shell, md5sum, pseudo_random, serve_shell_logging, Raw, TempDir};
use crate::util::{serve_command, wait_until, ServerProcess, IO_TIMEOUT, TIMEOUT};

/// `serve --handler shell` on an ephemeral loopback port, in `dir`, with
/// `vars` added to its environment.
fn serve_shell_with_env(dir: &TempDir, vars: &[(&str, &str)], args: &[&str]) -> ServerProcess {
    let mut command = serve_command();
    command
        .args(["--handler", "shell", "--bind", "127.0.0.1:0"])
        .args(["--no-token", "--allow-root"])
        .args(args)
        .current_dir(dir.path());
    for (name, value) in vars {
        command.env(name, value);
    }
    ServerProcess::start(command)
}

// ------------------------------------------------------------ environment

/// A command sees a short, fixed list of variables, never the rest of the
/// server's environment (where secrets live): a marker variable given to
/// `serve` does not show in `env`, while `PATH` still finds programs.
#[test]
fn commands_get_a_cleaned_environment() {
    let dir = TempDir::new("environment");
    let server = serve_shell_with_env(
        &dir,
        &[
            ("SHELL_TEST_SECRET", "marker-5d41402a"),
            ("LC_TIME", "C"),
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ],
        &[],
    );
    let mut raw = Raw::status_mode(&server.addr);
    let (status, body) = raw.run("env");
    assert_eq!(status, "exit=0");
    let text = String::from_utf8(body).expect("env prints text");
    assert!(
        !text.contains("marker-5d41402a"),
        "the secret leaked: {text}"
    );
    let vars: BTreeSet<(&str, &str)> = text
        .lines()
        .map(|line| line.split_once('=').expect("NAME=VALUE"))
        .collect();
    let names: BTreeSet<&str> = vars.iter().map(|(name, _)| *name).collect();
    // What the server passes on, plus what `sh` itself may add.
    let allowed = [
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "SHELL", "TERM", "PWD",
        "OLDPWD", "SHLVL", "_",
    ];
    for name in &names {
        assert!(
            allowed.contains(name) || name.starts_with("LC_"),
            "unexpected variable {name} in {text}"
        );
    }
    let dir_text = dir.path().to_str().expect("a UTF-8 temporary directory");
    for expected in [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("TERM", "dumb"),
        ("SHELL", "/bin/sh"),
        ("LC_TIME", "C"),
        ("PWD", dir_text),
    ] {
        assert!(vars.contains(&expected), "{expected:?} missing in {text}");
    }
    // PATH finds programs.
    assert_eq!(
        raw.run("seq 3"),
        ("exit=0".to_string(), b"1\n2\n3\n".to_vec())
    );
}

// ------------------------------------------------- the client's reply limit

/// A fake Shell server for one connection, in a thread: it answers the
/// hello with `greeting`, then each command line with the next of
/// `replies`, then reads until the client closes. Returns its address and
/// the thread, which ends within the test's timeouts whatever the client
/// does.
fn fake_server(greeting: &'static [u8], replies: Vec<Vec<u8>>) -> (String, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake server");
    let addr = listener.local_addr().unwrap().to_string();
    listener.set_nonblocking(true).unwrap();
    let thread = thread::spawn(move || {
        let deadline = Instant::now() + TIMEOUT;
        let stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no client within {TIMEOUT:?}");
                    thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        reader.read_until(b'\n', &mut line).expect("read the hello");
        assert_eq!(line, b"#shell/1\n");
        let _ = reader.get_mut().write_all(greeting);
        for reply in replies {
            line.clear();
            if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                return;
            }
            // The client may close before it has all of it: that is the point.
            let _ = reader.get_mut().write_all(&reply);
        }
        // Until the client closes (or the read times out).
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
    });
    (addr, thread)
}

/// `client shell` refuses a reply announced longer than its limit (the
/// server's default 16 MiB, or `--max-output`) before reading any of it: a
/// malicious server announcing 2^63 bytes, then sending more than the
/// limit, gets a one-line error and exit status 1, in status mode and in
/// the tutorial's protocol; a reply at the limit exactly comes through.
#[test]
fn client_shell_refuses_a_reply_longer_than_its_limit() {
    let huge = 1u64 << 63;
    let mut reply = format!("{huge} exit=0 time=0.001\n").into_bytes();
    reply.resize(reply.len() + 17 * 1024 * 1024, b'x');
    let (addr, server) = fake_server(b"#shell/1 ok\n", vec![reply]);
    let out = client_shell(&addr, &[], b"echo hi\n");
    server.join().expect("the fake server");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "client: {addr} announced a reply of {huge} bytes, over the limit of 16777216 bytes (--max-output)\n"
        )
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stdout, b"");

    // The tutorial's protocol: the answer to the hello is already a length.
    let (addr, server) = fake_server(b"9223372036854775808", vec![]);
    let out = client_shell(&addr, &[], b"echo hi\n");
    server.join().expect("the fake server");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "client: {addr} announced a reply of {huge} bytes, over the limit of 16777216 bytes (--max-output)\n"
        )
    );
    assert_eq!(out.status.code(), Some(1));

    // --max-output sets the limit; at the limit exactly, the reply is whole.
    let replies = vec![
        b"10 exit=0 time=0.001\n0123456789".to_vec(),
        b"11 exit=0 time=0.001\nhello world".to_vec(),
    ];
    let (addr, server) = fake_server(b"#shell/1 ok\n", replies);
    let out = client_shell(
        &addr,
        &["--max-output", "10"],
        b"seq 0 9\necho hello world\n",
    );
    server.join().expect("the fake server");
    assert_eq!(out.stdout, b"0123456789");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "[exit 0, 0.001 s]\nclient: {addr} announced a reply of 11 bytes, over the limit of 10 bytes (--max-output)\n"
        )
    );
    assert_eq!(out.status.code(), Some(1));
}

// ------------------------------------------------------------ containment

/// Starts `serve --handler shell --mode MODE ARGS...` logging to `log`, and
/// returns it with whether its commands are contained by cgroups, as its
/// log says at start (else by process groups, with a warning).
fn serve_contained(dir: &TempDir, log: &Path, mode: &str, args: &[&str]) -> (ServerProcess, bool) {
    let mut all = vec!["--no-token", "--mode", mode];
    all.extend_from_slice(args);
    let server = serve_shell_logging(dir.path(), log, &all);
    let mut cgroup = None;
    wait_until(TIMEOUT, "the containment logged", || {
        let text = fs::read_to_string(log).unwrap_or_default();
        if text.contains("shell commands are contained by a cgroup v2 per command") {
            cgroup = Some(true);
        } else if text.contains("WARN")
            && text.contains("shell commands are contained by a process group per command")
            && text.contains("a command that calls setsid() can escape its limits")
        {
            cgroup = Some(false);
        }
        cgroup.is_some()
    });
    (server, cgroup.unwrap())
}

/// The start time of process `pid` (field 22 of /proc/PID/stat), to tell
/// it from a later process with the same pid; `None` once it is reaped.
fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// A daemon a command started, by the pid it printed: killed (by that
/// pid, if it is still that process) when dropped, so that a failing test
/// leaves nothing running.
struct Daemon {
    pid: i32,
    started: Option<u64>,
}

impl Daemon {
    /// The daemon whose pid `text` holds (digits and a newline).
    fn from_pid_text(text: &[u8]) -> Daemon {
        let text = String::from_utf8_lossy(text);
        let pid = text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("not a pid: {text:?}"));
        Daemon {
            pid,
            started: start_time(pid),
        }
    }

    /// Whether it is still that process, and not a zombie.
    fn running(&self) -> bool {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        start_time(self.pid) == self.started && !matches!(state, None | Some('Z') | Some('X'))
    }

    /// Waits until it is reaped, not merely killed (a zombie still has its
    /// /proc entry; a later process may have its pid).
    fn wait_reaped(&self) {
        wait_until(TIMEOUT, &format!("process {} reaped", self.pid), || {
            let now = start_time(self.pid);
            now.is_none() || now != self.started
        });
    }

    /// Waits until it is killed (reaped, or a zombie of whoever adopted
    /// it).
    fn wait_dead(&self) {
        wait_until(TIMEOUT, &format!("process {} dead", self.pid), || {
            !self.running()
        });
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.running() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status();
        }
    }
}

/// A command that leaves its process group (`setsid`) and starts a daemon
/// does not outlive its reply, under the threading, forking and event models:
/// whether the command ends by itself (the daemon is killed when its
/// shell exits) or at the time limit, the daemon is killed and reaped
/// (not left a zombie of the server, which adopts it as a child
/// subreaper). So is a child that exited early, after its `setsid` parent
/// had already died. Where cgroup v2 is not available the test checks
/// the warning the server logs instead, and says so.
#[test]
fn a_command_that_calls_setsid_does_not_outlive_its_reply() {
    for mode in ["threading", "forking", "event"] {
        let dir = TempDir::new("setsid");
        let log = dir.join("serve.log");
        let (server, cgroup) = serve_contained(&dir, &log, mode, &["--command-timeout", "2"]);
        if !cgroup {
            eprintln!("{mode}: no cgroup v2 here: checked the server's warning only");
            continue;
        }
        eprintln!("{mode}: contained by a cgroup v2 per command");
        let mut raw = Raw::status_mode(&server.addr);

        // Ends by itself, leaving a daemon behind.
        let (status, body) = raw.run("setsid sh -c 'sleep 1000 >/dev/null 2>&1 & echo $!'");
        let daemon = Daemon::from_pid_text(&body);
        assert_eq!(status, "exit=0", "{mode}");
        daemon.wait_reaped();

        // Killed at the time limit, with a daemon behind.
        let (status, _) = raw.run_within(
            "setsid sh -c 'sleep 1000 >/dev/null 2>&1 & echo $! > daemon'; sleep 100",
            TIMEOUT,
        );
        let daemon = Daemon::from_pid_text(&fs::read(dir.join("daemon")).unwrap());
        assert_eq!(status, "timeout=2", "{mode}");
        daemon.wait_reaped();

        // A child that exits after its parent left the group and died: the
        // server adopts it, and must reap it.
        let (status, body) = raw.run("setsid sh -c 'true & echo $!'; sleep 0.2");
        let orphan = Daemon::from_pid_text(&body);
        assert_eq!(status, "exit=0", "{mode}");
        orphan.wait_reaped();

        // No cgroup is left behind.
        let (status, _) = raw.run("true");
        assert_eq!(status, "exit=0");
        drop(raw);
        let pid = server.child.id();
        let terminated = server.terminate();
        assert!(terminated.success(), "{mode}: {terminated:?}");
        let leftovers: Vec<String> = cgroup_dirs()
            .into_iter()
            .filter(|name| name.starts_with(&format!("socketserver-shell-{pid}-")))
            .collect();
        assert!(leftovers.is_empty(), "{mode}: cgroups left: {leftovers:?}");
    }
}

/// A server that dies mid-command (SIGKILL; or, forking, a child killed at
/// the drain deadline) leaves no daemon of the command running: the
/// command's watcher kills its cgroup, and removes it. In the event model
/// the drain deadline cuts the conversation, which kills and removes the
/// cgroup itself, off its event loop.
#[test]
fn a_server_that_dies_leaves_no_daemon_of_a_command() {
    for (mode, signal) in [
        ("threading", "KILL"),
        ("forking", "TERM"),
        ("event", "TERM"),
    ] {
        let dir = TempDir::new("setsid-dies");
        let log = dir.join("serve.log");
        let args = ["--drain-timeout", "1"];
        let (mut server, cgroup) = serve_contained(&dir, &log, mode, &args);
        if !cgroup {
            eprintln!("{mode}/{signal}: no cgroup v2 here: checked the server's warning only");
            continue;
        }
        let pid = server.child.id();
        let mut raw = Raw::status_mode(&server.addr);
        raw.send(b"setsid sh -c 'sleep 1000 >/dev/null 2>&1 & echo $! > daemon'; sleep 100\n");
        let mut daemon_pid = None;
        wait_until(TIMEOUT, "the daemon's pid written", || {
            daemon_pid = fs::read(dir.join("daemon"))
                .ok()
                .filter(|text| text.ends_with(b"\n"));
            daemon_pid.is_some()
        });
        let daemon = Daemon::from_pid_text(&daemon_pid.unwrap());
        assert!(daemon.running(), "{mode}/{signal}: the daemon runs");
        server.signal(signal);
        server.wait(TIMEOUT);
        daemon.wait_dead();
        wait_until(
            TIMEOUT,
            &format!("{mode}/{signal}: cgroups removed"),
            || {
                !cgroup_dirs()
                    .iter()
                    .any(|name| name.starts_with(&format!("socketserver-shell-{pid}-")))
            },
        );
        raw.expect_eof();
    }
}

/// Without a writable cgroup v2 the server falls back to process groups
/// and says so at start, as a warning naming the risk; commands still run
/// and their groups are still killed. The cgroup2 mount is made read-only
/// in a mount namespace of the server's own (`unshare -m`); where there is
/// no cgroup2 mount the server is started as it is, and where namespaces
/// are not available the test says so and checks nothing more.
#[test]
fn without_cgroups_the_server_warns_and_uses_process_groups() {
    let dir = TempDir::new("no-cgroup");
    let log = dir.join("serve.log");
    let script = match cgroup2_mount() {
        Some(mount) => {
            let probe = std::process::Command::new("unshare")
                .args(["-m", "sh", "-c", "mount -o remount,bind,ro \"$0\""])
                .arg(&mount)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
            if !probe.is_ok_and(|status| status.success()) {
                eprintln!(
                    "no mount namespace here: cannot hide cgroup v2 from the server; skipped"
                );
                return;
            }
            eprintln!("cgroup v2 made read-only in the server's mount namespace");
            format!(
                "mount -o remount,bind,ro '{mount}' && exec \"$0\" \"$@\" 2>>\"$SHELL_TEST_LOG\""
            )
        }
        None => {
            eprintln!("no cgroup v2 mounted here");
            "exec \"$0\" \"$@\" 2>>\"$SHELL_TEST_LOG\"".to_string()
        }
    };
    let mut command = std::process::Command::new("unshare");
    command
        .args(["-m", "sh", "-c", &script])
        .arg(env!("CARGO_BIN_EXE_serve"))
        .args(["--handler", "shell", "--bind", "127.0.0.1:0"])
        .args(["--no-token", "--allow-root"])
        .current_dir(dir.path())
        .env("SHELL_TEST_LOG", &log)
        .env("RUST_LOG", "info");
    let server = ServerProcess::start(command);
    wait_until(TIMEOUT, "the warning logged", || {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .any(|line| {
                line.contains("WARN")
                    && line
                        .contains("shell commands are contained by a process group per command (")
                    && line.ends_with("): a command that calls setsid() can escape its limits")
            })
    });
    let mut raw = Raw::status_mode(&server.addr);
    let (status, body) = raw.run("echo $$; sleep 100 >/dev/null 2>&1 &");
    assert_eq!(status, "exit=0");
    let pgid: i32 = String::from_utf8(body).unwrap().trim().parse().unwrap();
    wait_until(TIMEOUT, "the group's background job killed", || {
        group_members(pgid) == 0
    });
}

/// Where cgroup v2 is mounted, if it is.
fn cgroup2_mount() -> Option<String> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo
        .lines()
        .find(|l| {
            l.split_once(" - ")
                .is_some_and(|(_, fs)| fs.starts_with("cgroup2 "))
        })
        .and_then(|l| l.split(' ').nth(4))
        .map(str::to_string)
}

/// How many processes (zombies included) are in process group `pgid`.
fn group_members(pgid: i32) -> usize {
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|entry| fs::read_to_string(entry.path().join("stat")).ok())
        .filter(|stat| {
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.split_whitespace().nth(2)?.parse::<i32>().ok())
                == Some(pgid)
        })
        .count()
}

/// The names of the directories beside this process's cgroup v2 (where the
/// server, started by this process, makes its commands' cgroups).
fn cgroup_dirs() -> Vec<String> {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap();
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap()
        .to_string();
    let point = cgroup2_mount().expect("a cgroup2 mount");
    let dir = Path::new(&point).join(own.trim_start_matches('/'));
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

// ------------------------------------------------------------------ spool

/// A line of /proc/PID/status, in KiB (`VmHWM`: the peak resident size).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().strip_suffix(" kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// A command's output waits for its reply in a spool file, not in the
/// server's memory: 12 MiB of output (under the 16 MiB limit) arrive whole
/// (same MD5) in status mode and in line mode, while the server's peak
/// resident size (VmHWM) grows by less than 2 MiB (holding the output
/// would take 12 MiB or more).
#[test]
fn output_is_spooled_not_held_in_memory() {
    let dir = TempDir::new("spool");
    let blob = pseudo_random(12 * 1024 * 1024);
    fs::write(dir.join("blob"), &blob).unwrap();
    let server = serve_shell_with_env(&dir, &[], &[]);
    let pid = server.child.id();
    let mut raw = Raw::status_mode(&server.addr);
    // What any command costs (buffers, a thread's stack) is counted before.
    assert_eq!(raw.run("head -c 200000 blob").0, "exit=0");
    let before = status_kib(pid, "VmHWM");

    let (status, body) = raw.run("cat blob");
    assert_eq!(status, "exit=0");
    assert_eq!(md5sum(&body), md5sum(&blob));
    let mut line = Raw::connect(&server.addr);
    line.send(b"cat blob\n");
    assert_eq!(line.read_line(), blob.len().to_string());
    let body = line.read_exact(blob.len());
    assert_eq!(md5sum(&body), md5sum(&blob));

    let after = status_kib(pid, "VmHWM");
    eprintln!("VmHWM {before} KiB before, {after} KiB after 2 x 12 MiB of output");
    assert!(
        after.saturating_sub(before) < 2048,
        "the server's peak memory grew from {before} KiB to {after} KiB"
    );
}
