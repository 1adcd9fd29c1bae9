//! Running one command: `sh -c COMMAND` in a process group of its own (and
//! a cgroup v2 of its own where available, see [`super::cgroup`]), with a
//! cleaned environment, a time limit, an output limit, and an eye on the
//! client.
//!
//! The life of a command:
//!
//! 1. **Spawn.** One pipe (close-on-exec, so that no other thread's child
//!    inherits it) is the command's standard output *and* standard error:
//!    the two streams arrive interleaved in the order they were written.
//!    Standard input is `/dev/null`. `process_group(0)` makes the shell the
//!    leader of a new group, whose id is its pid; everything it starts
//!    stays in that group unless it leaves on purpose (`setsid`); where
//!    there is a cgroup, the shell enters it before it execs the command,
//!    and nothing it starts can leave that.
//!    A watcher joins the group: a tiny `sh` that kills the cgroup and the
//!    group if this process dies without cleaning up (see
//!    [`spawn_watcher`]).
//! 2. **Collect.** The output goes to a spool file as it comes (never
//!    whole in memory). The pipe's end is non-blocking, and the handler
//!    waits on it and on the client's socket ([`event::wait`]) until the
//!    pipe's end of file (every process holding it closed it), the time
//!    limit, the output limit, or the client hanging up (`POLLRDHUP`: its
//!    FIN, or `POLLHUP`/`POLLERR`: a reset).
//! 3. **Wait for the leader.** After end of file the shell may still run
//!    (`exec >&-; sleep 5`): its exit is watched, without reaping it, within
//!    the same deadline and with the same eye on the client: a look with
//!    `waitid(WNOHANG)` between pauses that grow to 50 ms (no pidfd: nix
//!    has no safe one, and this module has no `unsafe`; the usual exit is
//!    seen at once, by the pipe's end of file, and this wait is for the
//!    rare shell that closes its output first).
//! 4. **Kill and reap.** The cgroup, if any, is frozen, killed and, after
//!    the group, its adopted orphans reaped and it removed
//!    ([`CommandCgroup`]). `killpg(SIGKILL)` always, while the leader is
//!    still unreaped (so its pid, the group's id, cannot be reused), which
//!    ends whatever the command left running in the background. Then the
//!    whole group is reaped: the leader, and the grandchildren that the
//!    kernel hands to this process because it is a child subreaper
//!    (`PR_SET_CHILD_SUBREAPER`; without it they would go to PID 1, which in
//!    a container may never reap them). `waitid(P_PGID)` reaps only this
//!    process's own children of this one group, so no other command's exit
//!    status, and no other child of the application, is ever stolen.
//!
//! No zombie and no orphan is left, whatever the outcome, in every
//! concurrency model: the reaping happens in the process that spawned the
//! command (the server's, a forked child's, or a prefork worker's).
//!
//! In the event model a conversation shares its thread with the others of
//! its event loop, so nothing here may block that thread: the waits of
//! steps 2 and 3 park the conversation ([`event::wait`] is `poll(2)` in
//! the other models), and step 4, whose `waitid` and cgroup settling may
//! take a moment (or, for a process stuck in the kernel, long), runs
//! through [`event::blocking`] (on the framework's pool in the event
//! model, in place elsewhere). A command that writes without pause yields
//! its loop every few megabytes it reads.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use socketserver::event::{self, Interest};

use super::cgroup::{self, CommandCgroup};
use super::environment;
use super::spool::Spool;

/// How much is read from the pipe at once.
const CHUNK: usize = 64 * 1024;
/// The longest pause between two looks at a shell that closed its output
/// but has not exited yet.
const MAX_EXIT_POLL: Duration = Duration::from_millis(50);
/// How often a client that has sent more while its command runs (its
/// socket stays readable, so it cannot be waited on) is looked at for a
/// hang-up.
const HANG_UP_LOOK: Duration = Duration::from_millis(50);
/// Output read without a pause lets the event loop serve the others every
/// this many bytes.
const YIELD_EVERY: u64 = 4 << 20;

/// The limits of one command.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// At this age the command's process group is killed; `None`: no limit.
    pub timeout: Option<Duration>,
    /// Output past this many bytes is discarded and the command stopped.
    pub max_output: usize,
}

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// It exited by itself with this status.
    Exited(i32),
    /// A signal it did not get from us ended it (its number).
    Signaled(i32),
    /// It ran out of time: its process group was killed.
    TimedOut(Duration),
    /// Its output passed this many bytes: the rest was discarded and its
    /// process group killed.
    Cut(usize),
    /// The client hung up: its process group was killed.
    ClientGone,
}

/// What running a command gave.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Standard output and standard error, interleaved as written (at most
    /// the output limit), spooled to an anonymous file as they came.
    pub output: Spool,
    pub end: End,
    pub elapsed: Duration,
}

/// Why collecting stopped.
enum Stop {
    EndOfOutput,
    Deadline,
    Full,
    ClientGone,
}

/// Runs `sh -c COMMAND` in `dir` within `limits`, watching `client` (the
/// connection's socket) for a hang-up.
///
/// # Errors
/// Fails if the command cannot be started (no such directory, no `sh`, out
/// of processes), or if `poll` or reading the pipe fails; in the latter
/// case the process group has been killed and reaped first.
pub(crate) fn run(
    command: &[u8],
    dir: &Path,
    limits: Limits,
    client: BorrowedFd<'_>,
) -> io::Result<Outcome> {
    let started = Instant::now();
    let deadline = limits.timeout.map(|t| started + t);
    become_subreaper();
    let mut output = Spool::new()?;
    let cgroup = CommandCgroup::for_command()?;
    let (reader, writer) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    // Ours only: the command's end (another open file) stays blocking.
    fcntl(&reader, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    let child = {
        // The writer's two copies live in `sh`, and in `command` until it
        // is dropped at the end of this block: only then can the reader see
        // end of file.
        let mut sh = Command::new("sh");
        match &cgroup {
            // `sh -c WRAPPER COMMAND DIR`: the shell enters the cgroup,
            // then execs `sh -c COMMAND`.
            Some(cgroup) => sh
                .args(["-c", cgroup::WRAPPER])
                .arg(OsStr::from_bytes(command))
                .arg(cgroup.dir()),
            None => sh.arg("-c").arg(OsStr::from_bytes(command)),
        };
        sh.current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(writer.try_clone()?))
            .stderr(Stdio::from(writer))
            .process_group(0);
        environment::clean(&mut sh, dir);
        sh.spawn()?
    };
    let leader = Pid::from_raw(i32::try_from(child.id()).expect("a pid fits in an i32"));
    let watched = cgroup.as_ref().map(|c| c.dir().to_path_buf());
    let mut group = Group {
        leader,
        reaped: false,
        guard: None,
        cgroup,
    };
    group.guard = Some(spawn_watcher(leader, watched.as_deref())?);

    let mut pipe = File::from(reader);
    let mut client = Client::new(client);
    let stop = match collect(
        &mut pipe,
        &mut client,
        deadline,
        limits.max_output,
        &mut output,
    ) {
        Ok(stop) => stop,
        Err(e) => {
            group.kill_and_reap();
            return Err(e);
        }
    };
    drop(pipe);
    let stop = match stop {
        Stop::EndOfOutput => match group.wait_for_leader(&mut client, deadline) {
            Ok(stop) => stop,
            Err(e) => {
                group.kill_and_reap();
                return Err(e);
            }
        },
        other => other,
    };
    let status = group.kill_and_reap();
    let end = match stop {
        Stop::EndOfOutput => match status {
            Some(WaitStatus::Exited(_, code)) => End::Exited(code),
            Some(WaitStatus::Signaled(_, signal, _)) => End::Signaled(signal as i32),
            // Reaped by someone else, which only a careless application
            // can do; report it as a failure of the command.
            _ => End::Exited(-1),
        },
        Stop::Deadline => End::TimedOut(limits.timeout.unwrap_or_default()),
        Stop::Full => End::Cut(limits.max_output),
        Stop::ClientGone => End::ClientGone,
    };
    Ok(Outcome {
        output,
        end,
        elapsed: started.elapsed(),
    })
}

/// Reads the pipe into the `output` spool until end of file, the deadline,
/// the output limit or the client's hang-up. Memory holds one chunk at a
/// time, whatever the output's size.
fn collect(
    pipe: &mut File,
    client: &mut Client<'_>,
    deadline: Option<Instant>,
    max_output: usize,
    output: &mut Spool,
) -> io::Result<Stop> {
    let mut chunk = vec![0; CHUNK];
    let mut yielded = 0;
    loop {
        let Some(timeout) = time_left(deadline) else {
            return Ok(Stop::Deadline);
        };
        // Ready at once while the command writes: no pause then.
        let (readable, gone) = client.wait(Some(pipe.as_fd()), timeout)?;
        if gone {
            return Ok(Stop::ClientGone);
        }
        if !readable {
            continue; // the wait timed out: the loop checks the deadline
        }
        let n = match pipe.read(&mut chunk) {
            Ok(0) => return Ok(Stop::EndOfOutput),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let room = (max_output as u64).saturating_sub(output.len());
        if n as u64 > room {
            output.append(&chunk[..room as usize])?;
            return Ok(Stop::Full);
        }
        output.append(&chunk[..n])?;
        if output.len() - yielded >= YIELD_EVERY {
            yielded = output.len();
            event::yield_now();
        }
    }
}

/// The client's socket, watched for a hang-up while its command runs.
struct Client<'a> {
    fd: BorrowedFd<'a>,
    /// The client has sent more (its next request): its socket stays
    /// readable, so it is no longer waited on, only looked at for a
    /// hang-up every [`HANG_UP_LOOK`].
    talks: bool,
}

impl<'a> Client<'a> {
    fn new(fd: BorrowedFd<'a>) -> Self {
        Client { fd, talks: false }
    }

    /// Waits until `pipe` (if any) is readable, the client hangs up, or
    /// `timeout` (`None`: no limit) passes; says whether the pipe is
    /// readable and whether the client is gone. In the event model the
    /// conversation parks meanwhile.
    fn wait(
        &mut self,
        pipe: Option<BorrowedFd<'_>>,
        timeout: Option<Duration>,
    ) -> io::Result<(bool, bool)> {
        let mut fds = Vec::with_capacity(2);
        fds.extend(pipe.map(|pipe| (pipe, Interest::Readable)));
        let timeout = if self.talks {
            Some(timeout.map_or(HANG_UP_LOOK, |t| t.min(HANG_UP_LOOK)))
        } else {
            fds.push((self.fd, Interest::Readable));
            timeout
        };
        let ready = event::wait(&fds, timeout)?;
        let readable = pipe.is_some() && ready[0];
        // Readable: a hang-up, or bytes of the next request.
        let spoke = !self.talks && ready.last() == Some(&true);
        if spoke || self.talks {
            if self.hung_up() {
                return Ok((readable, true));
            }
            self.talks = true;
        }
        Ok((readable, false))
    }

    /// Whether the client has hung up, looked at without waiting.
    fn hung_up(&self) -> bool {
        let mut fds = [PollFd::new(self.fd, hang_up_events())];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(_) => client_gone(&fds[0]),
            Err(_) => false,
        }
    }
}

/// The events on the client's socket that mean it is gone: its end of
/// input (`POLLRDHUP`, Linux), or a hang-up or an error (always reported).
fn hang_up_events() -> PollFlags {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        PollFlags::from_bits_retain(libc::POLLRDHUP)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        PollFlags::empty()
    }
}

/// Whether the client's entry in a poll set reports it gone. Only the
/// hang-up events were asked for, so any event at all means gone; nix does
/// not know `POLLRDHUP` and then reports the events as `None`.
fn client_gone(fd: &PollFd<'_>) -> bool {
    fd.any().unwrap_or(true)
}

/// The time left before `deadline` (`Some(None)`: there is none); `None`
/// once it has passed.
fn time_left(deadline: Option<Instant>) -> Option<Option<Duration>> {
    let Some(deadline) = deadline else {
        return Some(None);
    };
    let left = deadline.saturating_duration_since(Instant::now());
    (!left.is_zero()).then_some(Some(left))
}

/// Asks the kernel to hand this process the orphans of its descendants
/// (the command's grandchildren, when the shell dies), so that they are
/// reaped here rather than left as zombies of PID 1. Not inherited across
/// `fork`, so it is asked for in the process that runs the command, each
/// time (one cheap system call). Linux only; elsewhere PID 1 reaps them.
fn become_subreaper() {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        log::debug!("cannot become a child subreaper: {e}");
    }
}

/// The watcher's script: wait for the guard pipe's end of file; then kill
/// the command's cgroup (`$1`, when there is one; freezing it and killing
/// its members one by one before Linux 5.14) and remove it (the watcher is
/// not in it), and kill the process group, itself included.
const WATCHER: &str = "read -r line; \
    if [ -n \"$1\" ]; then \
      echo 1 >\"$1/cgroup.kill\" 2>/dev/null \
        || { echo 1 >\"$1/cgroup.freeze\"; kill -KILL $(cat \"$1/cgroup.procs\"); } 2>/dev/null; \
      n=0; while [ $n -lt 100 ] && ! rmdir \"$1\" 2>/dev/null; do sleep 0.01; n=$((n+1)); done; \
    fi; \
    kill -KILL 0";

/// Starts the command's watcher, a second member of its process group (but
/// outside its cgroup), and returns the write end of its guard pipe. The
/// watcher ([`WATCHER`]) reads the pipe, in which nothing is ever written:
/// its read ends only when every copy of the write end is closed, that is
/// when this process is gone without having cleaned up (killed by a
/// signal, as a forked server's child is at the drain deadline, or
/// crashed). It then kills the command's cgroup and the whole group, itself
/// included, so that a command never outlives the server that runs it.
/// Normally it is killed with the rest of the group by
/// [`Group::kill_and_reap`].
fn spawn_watcher(leader: Pid, cgroup: Option<&Path>) -> io::Result<OwnedFd> {
    let (guard_read, guard_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let mut watcher = Command::new("sh");
    watcher
        .args(["-c", WATCHER, "sh"])
        .arg(cgroup.unwrap_or(Path::new("")))
        .current_dir("/")
        .stdin(Stdio::from(guard_read))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(leader.as_raw());
    environment::clean(&mut watcher, Path::new("/"));
    watcher.spawn()?;
    Ok(guard_write)
}

/// A command's process group, led by the shell.
struct Group {
    leader: Pid,
    reaped: bool,
    /// The write end of the watcher's guard pipe: held until the group is
    /// reaped.
    guard: Option<OwnedFd>,
    /// The command's cgroup, where there is one: removed once reaped.
    cgroup: Option<CommandCgroup>,
}

impl Group {
    /// After end of output: waits (without reaping) for the leader to exit,
    /// within the deadline and while the client stays.
    fn wait_for_leader(
        &self,
        client: &mut Client<'_>,
        deadline: Option<Instant>,
    ) -> io::Result<Stop> {
        let mut pause = Duration::from_millis(1);
        loop {
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            match waitid(Id::Pid(self.leader), flags) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(_) => return Ok(Stop::EndOfOutput),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let Some(left) = time_left(deadline) else {
                return Ok(Stop::Deadline);
            };
            let wait = left.map_or(pause, |left| left.min(pause));
            if client.wait(None, Some(wait))?.1 {
                return Ok(Stop::ClientGone);
            }
            pause = (pause * 2).min(MAX_EXIT_POLL);
        }
    }

    /// Kills the whole group and reaps the leader and every member handed
    /// to this process. Returns the leader's status. Through
    /// [`event::blocking`] (see the module's docs), except while a panic
    /// unwinds, when a conversation must not park.
    fn kill_and_reap(&mut self) -> Option<WaitStatus> {
        if self.reaped {
            return None;
        }
        self.reaped = true;
        let mut group = Group {
            leader: self.leader,
            reaped: false,
            guard: self.guard.take(),
            cgroup: self.cgroup.take(),
        };
        if std::thread::panicking() {
            return group.reap_here();
        }
        event::blocking(move || group.reap_here())
    }

    /// [`Group::kill_and_reap`]'s work, done on this thread.
    fn reap_here(&mut self) -> Option<WaitStatus> {
        if self.reaped {
            return None;
        }
        self.reaped = true;
        // First the cgroup, frozen then killed: it holds whatever left the
        // group (`setsid`).
        let members = self
            .cgroup
            .as_ref()
            .map(CommandCgroup::freeze_and_kill)
            .unwrap_or_default();
        // The leader is not reaped yet, so the group id is still its own:
        // the signal cannot reach anyone else. ESRCH (nobody left) is fine.
        let _ = killpg(self.leader, Signal::SIGKILL);
        let mut leader_status = None;
        loop {
            match waitid(Id::PGid(self.leader), WaitPidFlag::WEXITED) {
                Ok(status) => {
                    if status.pid() == Some(self.leader) {
                        leader_status = Some(status);
                    }
                }
                Err(Errno::EINTR) => {}
                // ECHILD: no child of ours is left in the group.
                Err(_) => {
                    if let Some(cgroup) = self.cgroup.take() {
                        // The orphans that left the group, then the
                        // cgroup's directory (when `cgroup` is dropped).
                        cgroup.reap_orphans(&members);
                    }
                    self.guard = None;
                    return leader_status;
                }
            }
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::spool::Body;
    use std::os::unix::net::UnixStream;

    fn limits(timeout_ms: u64, max_output: usize) -> Limits {
        Limits {
            timeout: Some(Duration::from_millis(timeout_ms)),
            max_output,
        }
    }

    fn run_sh(command: &str, limits: Limits) -> (Outcome, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let outcome = run(command.as_bytes(), Path::new("/"), limits, ours.as_fd()).unwrap();
        (outcome, theirs)
    }

    /// The spooled output, read back.
    fn bytes(outcome: Outcome) -> Vec<u8> {
        let mut bytes = Vec::new();
        Body::Spooled(outcome.output).write_to(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn output_and_errors_interleave_in_order() {
        let (outcome, _peer) = run_sh(
            "echo one; echo two >&2; echo three; exit 3",
            limits(10_000, 1000),
        );
        assert_eq!(outcome.end, End::Exited(3));
        assert_eq!(bytes(outcome), b"one\ntwo\nthree\n");
    }

    #[test]
    fn a_signal_is_reported() {
        let (outcome, _peer) = run_sh("kill -TERM $$", limits(10_000, 1000));
        assert_eq!(outcome.end, End::Signaled(15));
    }

    #[test]
    fn output_past_the_limit_is_cut() {
        let (outcome, _peer) = run_sh("yes", limits(10_000, 100_000));
        assert_eq!(outcome.end, End::Cut(100_000));
        let output = bytes(outcome);
        assert_eq!(output.len(), 100_000);
        assert!(output.chunks(2).all(|c| c == b"y\n"));
    }

    #[test]
    fn a_shell_that_closed_its_output_is_waited_for() {
        let (outcome, _peer) = run_sh("exec >&- 2>&-; sleep 0.2; exit 4", limits(10_000, 1000));
        assert_eq!(outcome.end, End::Exited(4));
        assert!(outcome.elapsed >= Duration::from_millis(200));
    }

    #[test]
    fn the_time_limit_kills_the_group() {
        let started = Instant::now();
        let (outcome, _peer) = run_sh("echo start; sleep 100 & sleep 100", limits(300, 1000));
        assert_eq!(outcome.end, End::TimedOut(Duration::from_millis(300)));
        assert_eq!(bytes(outcome), b"start\n");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_client_hang_up_kills_the_group() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(theirs);
        let outcome = run(
            b"sleep 100",
            Path::new("/"),
            limits(20_000, 1000),
            ours.as_fd(),
        )
        .unwrap();
        assert_eq!(outcome.end, End::ClientGone);
        assert!(outcome.elapsed < Duration::from_secs(10));
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let (ours, _theirs) = UnixStream::pair().unwrap();
        let result = run(
            b"true",
            Path::new("/no/such/dir"),
            limits(1000, 10),
            ours.as_fd(),
        );
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
