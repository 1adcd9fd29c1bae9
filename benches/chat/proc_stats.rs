//! What /proc says about a server: the CPU time and memory of its whole
//! process tree (the forking and prefork models' children count), what
//! else ran on CPU 0, and whether the machine is quiet.

use std::thread;
use std::time::{Duration, Instant};

/// A server's process tree: the server and every live descendant.
fn tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut at = 0;
    // Bounded: a tree of more than 100,000 processes is not measured whole.
    while at < all.len() && all.len() < 100_000 {
        let parent = all[at];
        at += 1;
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{parent}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let path = task.path().join("children");
            if let Ok(children) = std::fs::read_to_string(path) {
                all.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
    }
    all
}

/// How many processes a server's tree has now.
pub fn tree_len(pid: u32) -> usize {
    tree(pid).len()
}

/// (utime, stime, cutime, cstime) of one process, in clock ticks.
fn ticks_of(pid: u32) -> Option<[u64; 4]> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at 3.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse().ok());
    Some([field(14)?, field(15)?, field(16)?, field(17)?])
}

/// Nanoseconds on a CPU of every live thread of a process
/// (/proc/PID/task/*/schedstat, first field: exact, not in clock ticks).
fn on_cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// CPU time of a server's tree in clock ticks: (user, user + system).
///
/// The server itself: its utime and stime (which keep its ended threads'
/// time) plus cutime and cstime (its reaped children's). Its live
/// descendants: their time on a CPU from schedstat, in nanoseconds. Not
/// their utime and stime: those are whole clock ticks per process, and a
/// forking server's 1,000 children each using a few milliseconds would
/// all read 0. So the total is exact for every model; the user-space part
/// is only a lower bound for live children (their utime, in whole ticks).
pub fn tree_ticks(pid: u32, clock_ticks: f64) -> Result<(f64, f64), String> {
    let mut user = 0.0;
    let mut total = 0.0;
    for (i, p) in tree(pid).into_iter().enumerate() {
        match ticks_of(p) {
            Some([u, s, cu, cs]) if i == 0 => {
                user += (u + cu) as f64;
                total += (u + s + cu + cs) as f64;
            }
            Some([u, _, cu, cs]) => {
                user += (u + cu) as f64;
                total += on_cpu_ns(p) as f64 * clock_ticks / 1e9 + (cu + cs) as f64;
            }
            None if i == 0 => return Err(format!("/proc/{pid}/stat: unreadable")),
            None => {} // a child that ended meanwhile
        }
    }
    Ok((user, total))
}

/// Context switches of every live thread of a server's tree, voluntary
/// (the thread waited: for a socket, a lock) and not (it was preempted),
/// from /proc/PID/task/*/status. Threads that ended are not counted: the
/// figure is exact only where the workload's threads all live to its end
/// (round trips over held connections).
pub fn tree_switches(pid: u32) -> u64 {
    let mut total = 0;
    for p in tree(pid) {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
                continue;
            };
            total += status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    total
}

/// Memory of a server's tree in kB: the sum of each process's PSS (its
/// private pages plus its share of shared ones), so that forked children
/// sharing their parent's pages are not counted twice. For one process
/// PSS is close to RSS.
pub fn tree_pss_kb(pid: u32) -> Result<u64, String> {
    let mut total = 0;
    for (i, p) in tree(pid).into_iter().enumerate() {
        let rollup = std::fs::read_to_string(format!("/proc/{p}/smaps_rollup"));
        let pss = rollup.ok().and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        });
        match pss {
            Some(kb) => total += kb,
            None if i == 0 => return Err(format!("/proc/{pid}/smaps_rollup: unreadable")),
            None => {}
        }
    }
    Ok(total)
}

/// The busy and stolen clock ticks of one CPU, from /proc/stat.
pub fn cpu_busy_and_steal(cpu: u32) -> Result<(u64, u64), String> {
    let stat = std::fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
    let name = format!("cpu{cpu}");
    let ticks: Vec<u64> = stat
        .lines()
        .find_map(|l| l.strip_prefix(&name)?.strip_prefix(' '))
        .ok_or_else(|| format!("/proc/stat: no {name}"))?
        .split_whitespace()
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let at = |i: usize| ticks.get(i).copied().unwrap_or(0);
    Ok((at(0) + at(1) + at(2) + at(5) + at(6), at(7)))
}

/// Waits (at most 60 s) until both CPUs were nearly idle for half a
/// second: on a shared machine other work comes in bursts, and a figure
/// taken during one is worth little. How long it waited, or None if the
/// machine never went quiet (measured anyway, and said so).
pub fn wait_for_quiet() -> Result<Option<Duration>, String> {
    const WINDOW: Duration = Duration::from_millis(500);
    const LIMIT: Duration = Duration::from_secs(60);
    // Busy ticks allowed in the window, both CPUs together (of 100).
    const QUIET_TICKS: u64 = 2;
    let start = Instant::now();
    while start.elapsed() < LIMIT {
        let before = (cpu_busy_and_steal(0)?.0, cpu_busy_and_steal(1)?.0);
        thread::sleep(WINDOW);
        let after = (cpu_busy_and_steal(0)?.0, cpu_busy_and_steal(1)?.0);
        if (after.0 - before.0) + (after.1 - before.1) <= QUIET_TICKS {
            return Ok(Some(start.elapsed()));
        }
    }
    Ok(None)
}

/// Clock ticks per second of /proc's CPU times (`getconf CLK_TCK`).
pub fn clock_ticks() -> f64 {
    crate::process::output("getconf", &["CLK_TCK"])
        .and_then(|t| t.parse().ok())
        .unwrap_or(100.0)
}

/// Raises this process's open-files limit (inherited by the servers and
/// clients it starts) to `need`: the soft limit up to the hard one, and
/// the hard one too when allowed (root). The idle workload holds 10,000
/// connections, each a descriptor in the client and one in the server.
pub fn raise_open_files(need: u64) -> Result<u64, String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit with a valid pointer to an rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
    }
    if limit.rlim_cur >= need {
        return Ok(limit.rlim_cur);
    }
    let wanted = libc::rlimit {
        rlim_cur: need,
        rlim_max: limit.rlim_max.max(need),
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0 {
        return Ok(need);
    }
    let soft = libc::rlimit {
        rlim_cur: need.min(limit.rlim_max),
        rlim_max: limit.rlim_max,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft) } == 0 && soft.rlim_cur >= need {
        return Ok(soft.rlim_cur);
    }
    Err(format!(
        "the open-files limit (soft {}, hard {}) is below the {need} needed and cannot be raised; \
         run as root or `ulimit -n {need}` first",
        limit.rlim_cur, limit.rlim_max
    ))
}
