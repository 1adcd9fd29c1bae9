//! The chat benchmark: the Echo handler (the tutorial's chat bot) served by
//! `serve` in every model, side by side with a tokio server
//! (benches/tokio-chat) and Python's ThreadingTCPServer and
//! ForkingTCPServer speaking the same line protocol, on the same
//! workloads, in one run.
//!
//! ```text
//! bash benches/run                    # everything: this bench, FTP, docs/benchmarks.md
//! cargo bench --bench chat            # this bench alone: docs/bench/results.json
//! cargo bench --bench chat -- --smoke # every workload and server, tiny counts, seconds
//! ```
//!
//! Cargo builds `serve` with the bench profile (release) and hands its
//! path over as `CARGO_BIN_EXE_serve`; the bench builds the tokio peer
//! itself (`cargo build --release --manifest-path
//! benches/tokio-chat/Cargo.toml`) unless `CHAT_BENCH_TOKIO` names it.
//!
//! How it runs: each server is started fresh for each workload, pinned to
//! CPU 0 (`taskset -c 0`); the load comes from this binary re-executed as
//! a client pinned to CPU 1 (client.rs). Within a round, the servers take
//! turns on each workload, in an order that rotates from round to round;
//! docs/benchmarks.md shows the median of the rounds. Every socket has
//! timeouts, every loop a count and a deadline, all traffic is on loopback,
//! and every process is ended by its PID. A wrong reply fails the run.
//!
//! `CHAT_BENCH_ROUNDS` (3 to 20, default 3) sets the rounds;
//! `CHAT_BENCH_ONLY=idle,tokio` runs only the workloads and servers named
//! (ids as in results.json), and `CHAT_BENCH_QUIET=0` skips the wait for
//! a quiet machine: both for trying things out, not for the tables.
//!
//! Output: `results.json` in `CHAT_BENCH_OUT` (default docs/bench, or
//! target/bench-smoke for the smoke run); benches/report.py turns it into
//! docs/benchmarks.md and the plots.

mod client;
mod json;
mod measure;
mod proc_stats;
mod process;
mod protocol;
mod servers;
mod workload;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use json::Json;
use measure::Bench;
use servers::{Programs, SERVERS};
use workload::Plan;

fn main() -> ExitCode {
    if let Ok(role) = std::env::var(client::ROLE_ENV) {
        return client::main(&role);
    }
    match orchestrate() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chat bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The repository's root (the bench runs from it under `cargo bench`).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The tokio peer's binary: CHAT_BENCH_TOKIO, or built here in release
/// mode into target/tokio-chat.
fn tokio_peer() -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("CHAT_BENCH_TOKIO") {
        return Ok(PathBuf::from(path));
    }
    let root = root();
    let target = root.join("target/tokio-chat");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("building the tokio peer (cargo build --release --manifest-path benches/tokio-chat/Cargo.toml)");
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "--locked",
            "--manifest-path",
        ])
        .arg(root.join("benches/tokio-chat/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .map_err(|e| format!("cargo build of the tokio peer: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build of the tokio peer: {status}"));
    }
    Ok(target.join("release/tokio-chat"))
}

fn first_line_of(path: &str, prefix: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(prefix))?;
    Some(
        line.split_once(':')
            .map_or(line, |(_, v)| v)
            .trim()
            .to_string(),
    )
}

/// The machine, for the report.
fn machine(pinned: bool) -> Json {
    let out = |program: &str, args: &[&str]| {
        process::output(program, args).map_or(Json::Null, Json::Text)
    };
    Json::object(vec![
        ("nproc", out("nproc", &[])),
        (
            "cpu",
            first_line_of("/proc/cpuinfo", "model name").map_or(Json::Null, Json::Text),
        ),
        (
            "memory",
            first_line_of("/proc/meminfo", "MemTotal").map_or(Json::Null, Json::Text),
        ),
        ("kernel", out("uname", &["-sr"])),
        ("rustc", out("rustc", &["--version"])),
        ("python", out("python3", &["--version"])),
        (
            "load_average_at_start",
            first_line_of("/proc/loadavg", "").map_or(Json::Null, Json::Text),
        ),
        ("pinned", Json::Bool(pinned)),
    ])
}

fn orchestrate() -> Result<bool, String> {
    let smoke = std::env::args().any(|a| a == "--smoke")
        || std::env::var("BENCH_SMOKE").is_ok_and(|v| v == "1");
    let plan = if smoke {
        Plan::smoke()
    } else {
        let rounds = match std::env::var("CHAT_BENCH_ROUNDS") {
            Ok(n) => n
                .parse::<usize>()
                .ok()
                .filter(|n| (3..=20).contains(n))
                .ok_or_else(|| format!("CHAT_BENCH_ROUNDS={n}: expected 3 to 20"))?,
            Err(_) => 3,
        };
        let mut plan = Plan::full(rounds);
        // CHAT_BENCH_QUIET=0: no waiting for the machine to go quiet (for
        // trying the full sizes on a busy machine; the figures are noise).
        plan.wait_for_quiet = std::env::var("CHAT_BENCH_QUIET").map_or(true, |v| v != "0");
        plan
    };
    let out_dir = std::env::var("CHAT_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            root().join(if smoke {
                "target/bench-smoke"
            } else {
                "docs/bench"
            })
        });
    let serve = PathBuf::from(env!("CARGO_BIN_EXE_serve"));
    let python =
        process::output("python3", &["-c", "import sys; print(sys.executable)"]).map(PathBuf::from);
    let pinned = process::output("taskset", &["-c", "0", "true"]).is_some()
        && process::output("taskset", &["-c", "1", "true"]).is_some();
    let programs = Programs {
        serve,
        tokio: tokio_peer()?,
        python,
        pinned,
    };
    let open_files = proc_stats::raise_open_files(plan.open_files_needed())?;
    let bench = Bench {
        programs,
        me: std::env::current_exe().map_err(|e| format!("the bench's own path: {e}"))?,
        clock_ticks: proc_stats::clock_ticks(),
    };
    let machine = machine(pinned);
    println!(
        "chat bench{}: {}",
        if smoke { " (smoke)" } else { "" },
        machine.render().replace('\n', " ")
    );
    println!(
        "open files: {open_files}; rounds: {}; results to {}",
        plan.rounds,
        out_dir.display()
    );
    if !pinned {
        println!("pinning: OFF (taskset missing or fewer than two CPUs): figures are noisier");
    }

    // CHAT_BENCH_ONLY=ID,ID...: only these workloads and/or servers (for
    // rerunning one cell while working on it; the tables want all).
    let only: Vec<String> = std::env::var("CHAT_BENCH_ONLY")
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let wanted = |id: &str, all: &[String]| -> bool {
        let named: Vec<&String> = only.iter().filter(|o| all.contains(o)).collect();
        named.is_empty() || named.iter().any(|o| *o == id)
    };
    let workload_ids: Vec<String> = plan.workloads.iter().map(|w| w.id()).collect();
    let server_ids: Vec<String> = SERVERS.iter().map(|s| s.id.to_string()).collect();
    let mut runs = Vec::new();
    let (mut passed, mut failed) = (0usize, 0usize);
    for round in 1..=plan.rounds {
        for &workload in &plan.workloads {
            // The servers take turns; the first of each round rotates.
            let mut order: Vec<_> = SERVERS
                .iter()
                .copied()
                .filter(|s| s.runs(workload))
                .collect();
            let turn = (round - 1) % order.len().max(1);
            order.rotate_left(turn);
            for server in order {
                if !wanted(&workload.id(), &workload_ids) || !wanted(server.id, &server_ids) {
                    continue;
                }
                if bench.programs.python.is_none()
                    && matches!(server.kind, servers::Kind::Python(_))
                {
                    continue;
                }
                let label = format!("{round}. {:<16} {:<17}", workload.id(), server.label);
                let (record, error) = match bench.run(&plan, server, workload) {
                    Ok(record) => {
                        let error = record.failed.clone();
                        (Some(record), error)
                    }
                    Err(e) => (None, Some(e)),
                };
                let figures = record.as_ref().map_or(String::new(), |r| {
                    r.metrics
                        .iter()
                        .map(|(k, v)| format!("{k}={v:.2}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                });
                let notes = record.as_ref().map_or("", |r| r.notes.as_str());
                match &error {
                    None => println!("{label} {figures} ({notes})"),
                    Some(e) => println!("{label} FAILED: {e} ({notes})"),
                }
                if error.is_none() {
                    passed += 1;
                } else {
                    failed += 1;
                }
                let metrics = record
                    .as_ref()
                    .filter(|_| error.is_none())
                    .map(|r| {
                        r.metrics
                            .iter()
                            .map(|(k, v)| (k.to_string(), Json::Number(*v)))
                            .collect()
                    })
                    .unwrap_or_default();
                runs.push(Json::object(vec![
                    ("round", Json::Number(round as f64)),
                    ("workload", Json::text(workload.id())),
                    ("server", Json::text(server.id)),
                    ("error", error.map_or(Json::Null, Json::Text)),
                    ("metrics", Json::Object(metrics)),
                    ("notes", Json::text(notes)),
                ]));
            }
        }
    }
    let results = Json::object(vec![
        ("smoke", Json::Bool(smoke)),
        (
            "date",
            process::output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).map_or(Json::Null, Json::Text),
        ),
        (
            "commit",
            process::output("git", &["rev-parse", "--short", "HEAD"])
                .map_or(Json::Null, Json::Text),
        ),
        ("rounds", Json::Number(plan.rounds as f64)),
        ("machine", machine),
        (
            "workloads",
            Json::List(plan.workloads.iter().map(|w| workload_json(*w)).collect()),
        ),
        (
            "servers",
            Json::List(
                SERVERS
                    .iter()
                    .map(|s| server_json(&bench, *s, &plan))
                    .collect(),
            ),
        ),
        ("runs", Json::List(runs)),
    ]);
    write(&out_dir.join("results.json"), &results.render())?;
    println!(
        "\nchat bench: results in {}",
        out_dir.join("results.json").display()
    );
    // The plain closing line CI reads.
    println!("chat: {passed} passed, {failed} failed");
    Ok(failed == 0)
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn workload_json(w: workload::Workload) -> Json {
    Json::object(vec![
        ("id", Json::text(w.id())),
        ("client", Json::text(w.encode())),
        ("held", Json::Number(w.held() as f64)),
    ])
}

/// A server's id, label, the workloads it runs, and its command line (as
/// started for the largest round-trip workload it runs).
fn server_json(bench: &Bench, server: servers::Server, plan: &Plan) -> Json {
    let example = plan
        .workloads
        .iter()
        .rev()
        .copied()
        .find(|w| w.id().starts_with("roundtrips") && server.runs(*w));
    let command = example
        .and_then(|w| bench.programs.command(server, w))
        .map_or(Json::Null, |c| Json::Text(servers::describe(&c)));
    let runs = plan
        .workloads
        .iter()
        .filter(|w| server.runs(**w))
        .map(|w| Json::text(w.id()))
        .collect();
    Json::object(vec![
        ("id", Json::text(server.id)),
        ("label", Json::text(server.label)),
        ("command", command),
        ("workloads", Json::List(runs)),
    ])
}
