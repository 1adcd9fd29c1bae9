//! What contains a command: a cgroup v2 of its own where the system lets
//! the server make one, else only its process group.
//!
//! A process group is left by a single call (`setsid`, `setpgid`), so a
//! command that daemonizes escapes `killpg` and outlives its limits. A
//! cgroup cannot be left without write access to the cgroup tree, and it
//! follows every `fork`: killing the cgroup kills whatever the command
//! started, wherever it went. So, where cgroup v2 is mounted and writable:
//!
//! * each command gets a fresh directory beside the server's own cgroup
//!   (`socketserver-shell-PID-N`), made by the server (no `unsafe`, the
//!   server itself never moves);
//! * the command's shell moves itself in (`echo $$ > cgroup.procs`) before
//!   it execs the user's command, so no child of the command ever starts
//!   outside it (see [`WRAPPER`]);
//! * at the end, the cgroup is frozen (nothing forks any more), its members
//!   are listed, killed (`cgroup.kill`, or `SIGKILL` to each listed member on
//!   kernels before 5.14), and waited for; then the server reaps the
//!   zombies that the kernel handed it as a child subreaper, **exactly those
//!   that were in this cgroup** (`/proc/PID/cgroup` still names it for a
//!   zombie), never with `waitpid(-1)`, which would steal another
//!   command's or the application's exit statuses; and the directory is
//!   removed.
//!
//! The waits of the end (the freeze, the kill, the members' exits) pause
//! with `thread::sleep`: they run inside the command's kill-and-reap,
//! which the event model runs on the framework's pool of threads for
//! blocking work (`run.rs`), never on an event loop.
//!
//! Without cgroup v2 (not mounted, read-only, no permission), commands
//! keep their process group, and one warning at start says that a command
//! that calls `setsid` can escape. A PID namespace (`unshare --pid --fork`)
//! would contain such commands too, but it changes what commands see (`$$`
//! is 1, and `kill $$` is ignored, as for any init), so it is not used.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;

use super::environment;

/// The script that starts a command inside its cgroup: the shell moves
/// itself into the cgroup (`$1`), then becomes `sh -c COMMAND` (`$0`) with
/// the same pid. Nothing of the user's runs before the move.
pub(crate) const WRAPPER: &str = "echo $$ >\"$1/cgroup.procs\" || { echo \"cannot enter the command's cgroup $1\" >&2; exit 126; }; exec sh -c \"$0\"";

/// How long the end of a command waits for its cgroup to freeze, then to
/// empty after the kill. Both take microseconds, except for a process in
/// uninterruptible sleep (a hung NFS read), which must not hang the server.
const SETTLE: Duration = Duration::from_secs(2);
/// The longest pause between two looks at a cgroup that is settling.
const MAX_PAUSE: Duration = Duration::from_millis(10);

/// What [`containment`] found, once it has looked.
static CONTAINMENT: OnceLock<Containment> = OnceLock::new();

/// What contains the commands of this process, decided once (see
/// [`containment`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Containment {
    /// Each command runs in a cgroup v2 of its own, made in this directory
    /// (the server's own cgroup): nothing it starts can leave.
    Cgroup(PathBuf),
    /// Each command runs in a process group of its own; a command that
    /// calls `setsid` can escape it. The text says why no cgroup is used.
    ProcessGroup(String),
}

impl std::fmt::Display for Containment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Containment::Cgroup(dir) => {
                write!(f, "a cgroup v2 per command, under {}", dir.display())
            }
            Containment::ProcessGroup(why) => write!(
                f,
                "a process group per command ({why}): a command that calls setsid() can escape its limits"
            ),
        }
    }
}

/// What contains commands here: probed once per process, at the first
/// call, and logged then (info for a cgroup; a warning for the process
/// group). `serve` calls it at start, so that forked children inherit the
/// answer instead of probing again.
pub fn containment() -> &'static Containment {
    CONTAINMENT.get_or_init(|| {
        let found = match probe() {
            Ok(dir) => Containment::Cgroup(dir),
            Err(why) => Containment::ProcessGroup(why),
        };
        match &found {
            Containment::Cgroup(_) => log::info!("shell commands are contained by {found}"),
            Containment::ProcessGroup(_) => {
                log::warn!("shell commands are contained by {found}")
            }
        }
        found
    })
}

/// Finds this process's cgroup v2 directory and checks that a command can
/// be put in a child of it: makes one, has a shell move itself in, removes
/// it. The error is why not, as a phrase.
fn probe() -> Result<PathBuf, String> {
    if !cfg!(any(target_os = "linux", target_os = "android")) {
        return Err("cgroups are Linux's".into());
    }
    let base = own_cgroup_dir()?;
    let probe = CommandCgroup::create(&base).map_err(|e| {
        format!(
            "cannot make a cgroup in {}: {}",
            base.display(),
            socketserver::error::describe(&e)
        )
    })?;
    if !probe.dir.join("cgroup.freeze").exists() {
        return Err("the kernel's cgroups cannot freeze (Linux 5.2 or later needed)".into());
    }
    let mut enter = Command::new("sh");
    enter
        .args(["-c", WRAPPER, "true"])
        .arg(&probe.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    environment::clean(&mut enter, Path::new("/"));
    let entered = enter.status().map(|s| s.success());
    if entered.map_err(|e| format!("cannot run sh: {}", socketserver::error::describe(&e)))? {
        Ok(base)
    } else {
        Err(format!(
            "cannot move a process into a cgroup under {}",
            base.display()
        ))
    }
}

/// The directory of this process's cgroup v2: the `0::PATH` line of
/// `/proc/self/cgroup`, under the cgroup2 mount of `/proc/self/mountinfo`.
fn own_cgroup_dir() -> Result<PathBuf, String> {
    let own = own_cgroup_path().ok_or("this process is in no cgroup v2")?;
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    cgroup_dir_in(&mountinfo, &own).ok_or_else(|| "no cgroup v2 is mounted".into())
}

/// The directory of cgroup `own` (a path in the hierarchy) under the first
/// cgroup2 mount of `mountinfo` whose root holds it.
fn cgroup_dir_in(mountinfo: &str, own: &str) -> Option<PathBuf> {
    for line in mountinfo.lines() {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE ...
        let Some((mount, fs)) = line.split_once(" - ") else {
            continue;
        };
        if fs.split(' ').next() != Some("cgroup2") {
            continue;
        }
        let fields: Vec<&str> = mount.split(' ').collect();
        let (Some(root), Some(point)) = (fields.get(3), fields.get(4)) else {
            continue;
        };
        let Some(inside) = own.strip_prefix(root.trim_end_matches('/')) else {
            continue;
        };
        if !(inside.is_empty() || inside.starts_with('/')) {
            continue; // root /a does not hold /ab
        }
        let inside = inside.trim_start_matches('/');
        return Some(if inside.is_empty() {
            PathBuf::from(point)
        } else {
            Path::new(point).join(inside)
        });
    }
    None
}

/// This process's path in the cgroup v2 hierarchy (`/` or `/a/b`).
fn own_cgroup_path() -> Option<String> {
    cgroup_path_of("self")
}

/// The cgroup v2 path of process `pid` (or `self`), as `/proc/PID/cgroup`
/// gives it: still there for a zombie.
fn cgroup_path_of(pid: &str) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(str::to_string)
}

/// One command's cgroup: a directory beside the server's own cgroup,
/// removed when dropped.
#[derive(Debug)]
pub(crate) struct CommandCgroup {
    dir: PathBuf,
    /// Its path in the hierarchy, as `/proc/PID/cgroup` shows it.
    path: String,
}

impl CommandCgroup {
    /// A fresh cgroup for one command, when [`containment`] found cgroups
    /// usable; `None` otherwise.
    pub(crate) fn for_command() -> io::Result<Option<CommandCgroup>> {
        // The first look runs a shell and waits for it: in the event model
        // not on the conversation's loop (`serve` looks at start anyway).
        let found = match CONTAINMENT.get() {
            Some(found) => found,
            None => socketserver::event::blocking(containment),
        };
        match found {
            Containment::Cgroup(base) => CommandCgroup::create(base).map(Some),
            Containment::ProcessGroup(_) => Ok(None),
        }
    }

    fn create(base: &Path) -> io::Result<CommandCgroup> {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "socketserver-shell-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = base.join(&name);
        fs::create_dir(&dir)?;
        let own = own_cgroup_path().unwrap_or_else(|| "/".into());
        let path = format!("{}/{name}", own.trim_end_matches('/'));
        Ok(CommandCgroup { dir, path })
    }

    /// The cgroup's directory (for [`WRAPPER`]'s `$1`).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Freezes the cgroup, so that nothing in it forks any more, lists its
    /// members, and kills them all. Returns the members listed.
    pub(crate) fn freeze_and_kill(&self) -> Vec<Pid> {
        if !self.populated() {
            return Vec::new();
        }
        let _ = fs::write(self.dir.join("cgroup.freeze"), "1");
        self.settle("frozen", |events| events.contains("frozen 1"));
        let members = self.members();
        if fs::write(self.dir.join("cgroup.kill"), "1").is_err() {
            // Before Linux 5.14: one by one. The cgroup is frozen, so the
            // list is whole and no pid in it can have been reused.
            for &pid in &members {
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
        members
    }

    /// After [`Self::freeze_and_kill`] (and the reaping of the process
    /// group): waits until the cgroup is empty and every listed member has
    /// exited, so that every orphan is in the hands of its new parent, then
    /// reaps the zombies of this process that were in the cgroup.
    pub(crate) fn reap_orphans(&self, members: &[Pid]) {
        self.settle("empty", |events| events.contains("populated 0"));
        // A task leaves its cgroup before it hands its children over: wait
        // until each listed member is a zombie or gone.
        let deadline = Instant::now() + SETTLE;
        let mut pause = Duration::from_micros(100);
        while members.iter().any(|pid| self.holds_running(*pid)) && Instant::now() < deadline {
            std::thread::sleep(pause);
            pause = (pause * 2).min(MAX_PAUSE);
        }
        let me = std::process::id() as i32;
        for pid in own_children() {
            let Some((state, parent)) = state_and_parent(pid) else {
                continue;
            };
            if state != 'Z' || parent != me || !self.holds(pid) {
                continue;
            }
            // Ours, a zombie, from this command: reaping it cannot block.
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG;
            while waitid(Id::Pid(pid), flags) == Err(Errno::EINTR) {}
        }
    }

    /// Whether `/proc/PID/cgroup` names this cgroup (zombies included).
    fn holds(&self, pid: Pid) -> bool {
        cgroup_path_of(&pid.to_string()).as_deref() == Some(self.path.as_str())
    }

    /// Whether `pid` is a process of this cgroup that has not exited yet.
    fn holds_running(&self, pid: Pid) -> bool {
        matches!(state_and_parent(pid), Some((state, _)) if state != 'Z' && state != 'X')
            && self.holds(pid)
    }

    /// Whether any process is still in the cgroup.
    fn populated(&self) -> bool {
        fs::read_to_string(self.dir.join("cgroup.events"))
            .map(|events| !events.contains("populated 0"))
            .unwrap_or(false)
    }

    /// The pids in `cgroup.procs`.
    fn members(&self) -> Vec<Pid> {
        fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.parse().ok().map(Pid::from_raw))
            .collect()
    }

    /// Waits (at most [`SETTLE`]) until `cgroup.events` satisfies `done`.
    fn settle(&self, what: &str, done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + SETTLE;
        let mut pause = Duration::from_micros(100);
        loop {
            match fs::read_to_string(self.dir.join("cgroup.events")) {
                Ok(events) if !done(&events) => {}
                _ => return,
            }
            if Instant::now() >= deadline {
                log::warn!("cgroup {} not {what} within {SETTLE:?}", self.dir.display());
                return;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }
}

impl Drop for CommandCgroup {
    /// Removes the directory. An empty cgroup is removed at once; one that
    /// is not (a process in uninterruptible sleep outlived the waits) is
    /// left, with a warning.
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir(&self.dir) {
            if e.kind() != io::ErrorKind::NotFound {
                log::warn!(
                    "cannot remove the cgroup {}: {}",
                    self.dir.display(),
                    socketserver::error::describe(&e)
                );
            }
        }
    }
}

/// The state letter and the parent's pid of process `pid`, from
/// `/proc/PID/stat`.
fn state_and_parent(pid: Pid) -> Option<(char, i32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((state, parent))
}

/// The children of every thread of this process (a thread spawns its own
/// commands, and the kernel hands adopted orphans to one of them).
fn own_children() -> Vec<Pid> {
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|children| {
            children
                .split_whitespace()
                .filter_map(|pid| pid.parse().ok().map(Pid::from_raw))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
35 25 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn the_cgroup2_mount_is_found_among_v1_mounts() {
        assert_eq!(
            cgroup_dir_in(HYBRID, "/"),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            cgroup_dir_in(HYBRID, "/system.slice/serve.service"),
            Some(PathBuf::from(
                "/sys/fs/cgroup/unified/system.slice/serve.service"
            ))
        );
    }

    #[test]
    fn a_mount_of_part_of_the_tree_holds_only_its_part() {
        let container = "99 1 0:40 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup_dir_in(container, "/docker/abc/app"),
            Some(PathBuf::from("/sys/fs/cgroup/app"))
        );
        assert_eq!(cgroup_dir_in(container, "/docker/abcd"), None);
        assert_eq!(cgroup_dir_in("", "/"), None);
    }
}
