//! One measurement: a fresh server, a client process running one
//! workload against it, and the server's CPU time and memory read from
//! /proc around the workload alone (not the server's start, nor the
//! connections the workload opens before `go`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{ChildStdin, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::client::{ADDR_ENV, ROLE_ENV};
use crate::proc_stats::{
    cpu_busy_and_steal, tree_len, tree_pss_kb, tree_switches, tree_ticks, wait_for_quiet,
};
use crate::process::{self, next_line};
use crate::servers::{self, Kind, Programs, Server};
use crate::workload::{Plan, Workload};

/// How long a server may take to exit after SIGTERM before it counts as
/// not exiting (ours drains for at most --drain-timeout, 10 s by default).
const EXIT_LIMIT: Duration = Duration::from_secs(30);

/// What one workload measured on one server.
pub struct Record {
    /// Named figures (see `metrics_of`), in the order the tables use.
    pub metrics: Vec<(&'static str, f64)>,
    /// The run is a failure: a wrong reply, or a shortfall that is not a
    /// figure; its figures are left out.
    pub failed: Option<String>,
    /// How clean the figure is: CPU 0's ticks to others and stolen, how
    /// long it waited for quiet.
    pub notes: String,
}

pub struct Bench {
    pub programs: Programs,
    pub me: PathBuf,
    pub clock_ticks: f64,
}

/// When connecting to `addr` is first refused, trying every 100 µs for
/// at most `limit` (each try that connects is closed at once).
fn refused_within(addr: std::net::SocketAddr, limit: Duration) -> Option<Instant> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Some(Instant::now())
            }
            _ => thread::sleep(Duration::from_micros(100)),
        }
    }
    None
}

/// `done a=1 b=2 error=any text` -> its fields.
fn fields_of(line: &str) -> Option<BTreeMap<String, String>> {
    let rest = line.strip_prefix("done ")?;
    let (head, error) = rest.split_once("error=").unwrap_or((rest, ""));
    let mut fields: BTreeMap<String, String> = head
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    fields.insert("error".into(), error.trim().to_string());
    Some(fields)
}

impl Bench {
    pub fn run(&self, plan: &Plan, server: Server, workload: Workload) -> Result<Record, String> {
        let mut running = servers::start(&self.programs, server, workload)?;
        let pid = running.process.pid();
        thread::sleep(plan.settle);
        if server.kind == Kind::Ours("prefork") {
            // The parent prints its address before it has forked every
            // worker; 1,000 take a while, and a burst meanwhile would
            // measure the forking. Wait (at most 60 s) for all of them.
            let want = workload.held().max(4) + 1;
            let deadline = Instant::now() + Duration::from_secs(60);
            while tree_len(pid) < want && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
        }
        let mut command = self.programs.pinned_command(1, &self.me);
        command
            .env(ROLE_ENV, workload.encode())
            .env(ADDR_ENV, running.addr.to_string())
            .stdin(Stdio::piped());
        let client_name = format!("client for {}", server.label);
        let (mut client, lines) = process::spawn(command, &client_name)?;
        let mut control: ChildStdin = client.child.stdin.take().expect("piped stdin");
        let mut tell = |word: &str| {
            writeln!(control, "{word}")
                .and_then(|_| control.flush())
                .map_err(|e| format!("{client_name}: {e}"))
        };
        let ready = next_line(&lines, &client_name, "`ready`")?;
        if ready != "ready" {
            return Err(format!("{client_name}: {ready}"));
        }
        let waited = if plan.wait_for_quiet {
            wait_for_quiet()?
        } else {
            Some(Duration::ZERO)
        };
        let ticks_before = tree_ticks(pid, self.clock_ticks)?;
        let switches_before = tree_switches(pid);
        let cpu0_before = cpu_busy_and_steal(0)?;
        let pss_before = tree_pss_kb(pid)?;
        let mut pss_held = None;
        let mut exit_after = None;
        let mut refused_after = None;
        match workload {
            Workload::ShutdownIdle { .. } => {
                let sent = Instant::now();
                running.process.terminate()?;
                refused_after = refused_within(running.addr, EXIT_LIMIT).map(|at| at - sent);
                exit_after = running
                    .process
                    .wait_within(EXIT_LIMIT)
                    .then(|| sent.elapsed());
                tell("go")?;
            }
            Workload::ShutdownBusy { talk_ms, .. } => {
                tell("go")?;
                thread::sleep(Duration::from_millis(talk_ms as u64 / 4));
                let sent = Instant::now();
                running.process.terminate()?;
                exit_after = running
                    .process
                    .wait_within(EXIT_LIMIT)
                    .then(|| sent.elapsed());
            }
            Workload::Idle { .. } => {
                tell("go")?;
                let held = next_line(&lines, &client_name, "`held` line")?;
                if !held.starts_with("held ") {
                    return Err(format!("{client_name}: {held}"));
                }
                thread::sleep(plan.settle);
                pss_held = Some(tree_pss_kb(pid)?);
                tell("check")?;
            }
            _ => tell("go")?,
        }
        let done = next_line(&lines, &client_name, "`done` line")?;
        let fields = fields_of(&done).ok_or_else(|| format!("{client_name}: {done}"))?;
        let mut cpu = None;
        let mut switches = 0.0;
        if !workload.is_shutdown() {
            thread::sleep(plan.settle);
            let after = tree_ticks(pid, self.clock_ticks)?;
            switches = tree_switches(pid).saturating_sub(switches_before) as f64;
            let cpu0_after = cpu_busy_and_steal(0)?;
            running.process.check_alive()?;
            let (user, total) = (after.0 - ticks_before.0, after.1 - ticks_before.1);
            let others = (cpu0_after.0 - cpu0_before.0) as f64 - total;
            cpu = Some((user, total, others.max(0.0), cpu0_after.1 - cpu0_before.1));
        }
        tell("close")?;
        if !client.wait_within(Duration::from_secs(10)) {
            eprintln!("chat bench: {client_name} did not exit within 10 s; killing it");
        }
        drop(client);
        drop(running);

        let number = |key: &str| {
            fields
                .get(key)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let (ok, wrong, missing) = (number("ok"), number("wrong"), number("missing"));
        let error = fields.get("error").filter(|e| !e.is_empty()).cloned();
        let ticks = |t: f64| t / self.clock_ticks;
        let mut metrics: Vec<(&'static str, f64)> = Vec::new();
        match workload {
            Workload::RoundTrips { .. } | Workload::Connect { .. } => {
                let (user, total, _, _) = cpu.unwrap_or_default();
                let wall = number("wall_ns") / 1e9;
                let rate = ok / wall.max(1e-9);
                metrics.push(("per_s", rate));
                if matches!(workload, Workload::RoundTrips { .. }) {
                    metrics.push(("p50_us", number("p50_ns") / 1e3));
                    metrics.push(("p99_us", number("p99_ns") / 1e3));
                }
                metrics.push(("cpu_us", ticks(total) / ok.max(1.0) * 1e6));
                metrics.push(("user_us", ticks(user) / ok.max(1.0) * 1e6));
                if matches!(workload, Workload::RoundTrips { .. }) {
                    metrics.push(("switches", switches / ok.max(1.0)));
                }
            }
            Workload::Idle { .. } => {
                let greeted = number("greeted");
                let held_kb = pss_held.unwrap_or(pss_before);
                metrics.push(("greeted", greeted));
                metrics.push(("answered", number("answered")));
                let growth = held_kb.saturating_sub(pss_before) as f64;
                metrics.push(("kib_per_conn", growth / greeted.max(1.0)));
                metrics.push(("total_mib", held_kb as f64 / 1024.0));
            }
            Workload::Burst { .. } => {
                metrics.push(("greeted", number("greeted")));
                metrics.push(("last_greeting_ms", number("last_greeting_ns") / 1e6));
            }
            Workload::ShutdownIdle { .. } | Workload::ShutdownBusy { .. } => {
                let exit_ms = exit_after.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
                metrics.push(("exit_ms", exit_ms));
                if matches!(workload, Workload::ShutdownIdle { .. }) {
                    let refused_ms = refused_after.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
                    metrics.push(("refused_ms", refused_ms));
                }
                if matches!(workload, Workload::ShutdownBusy { .. }) {
                    metrics.push(("completed", ok));
                    metrics.push(("cut", missing));
                }
            }
        }
        let failed = if wrong > 0.0 {
            Some(format!(
                "{wrong} wrong replies; first error: {}",
                error.clone().unwrap_or_default()
            ))
        } else if workload.is_shutdown() && exit_after.is_none() {
            Some(format!(
                "the server did not exit within {EXIT_LIMIT:?} of SIGTERM"
            ))
        } else if missing > 0.0 && !workload.shortfall_is_a_figure() {
            Some(format!(
                "{missing} missing; first error: {}",
                error.clone().unwrap_or_default()
            ))
        } else if plan.smoke && ok == 0.0 && !matches!(workload, Workload::ShutdownBusy { .. }) {
            // The smoke run's counts are tiny: a server that did none of it is broken.
            Some(format!(
                "none done; first error: {}",
                error.clone().unwrap_or_default()
            ))
        } else if missing > 0.0 && plan.smoke && matches!(workload, Workload::Idle { .. }) {
            Some(format!(
                "{missing} missing; first error: {}",
                error.clone().unwrap_or_default()
            ))
        } else {
            None
        };
        let mut notes = format!("ok={ok} wrong={wrong} missing={missing}");
        if let Some((_, _, others, steal)) = cpu {
            notes.push_str(&format!(
                "; CPU 0 meanwhile: {others:.0} ticks to others, {steal} stolen"
            ));
        }
        match waited {
            Some(w) if w > Duration::from_secs(1) => {
                notes.push_str(&format!("; waited {:.0} s for quiet", w.as_secs_f64()))
            }
            Some(_) => {}
            None => notes.push_str("; the machine never went quiet: measured anyway"),
        }
        if let (None, Some(e)) = (&failed, &error) {
            notes.push_str(&format!("; first error: {e}"));
        }
        Ok(Record {
            metrics,
            failed,
            notes,
        })
    }
}
