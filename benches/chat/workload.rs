//! The workloads, their sizes in a full run and in the smoke run, and how
//! one is named to the client process (an environment variable holding
//! `KIND N M`).

use std::time::Duration;

/// One workload, with its sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// `conns` connections opened and greeted before `go`, then each makes
    /// `each` round trips (`hello\n` -> `hello好\n`) from its own thread.
    RoundTrips { conns: usize, each: usize },
    /// `total` connections from `threads` threads, one after another in
    /// each: connect, greeting, `q`, the server's close.
    Connect { total: usize, threads: usize },
    /// `conns` connections opened from `threads` threads and held idle
    /// (each greeted); then each makes one round trip: does it still answer?
    Idle { conns: usize, threads: usize },
    /// `conns` clients connecting at once, each reading its greeting then
    /// sending `q`: all greeted? when was the last greeting?
    Burst { conns: usize },
    /// `conns` idle connections held, then SIGTERM: how long until the
    /// port refuses connections, and until the server has exited (ours
    /// with `--drain-timeout 0`)?
    ShutdownIdle { conns: usize },
    /// `conns` connections making round trips for `talk_ms`, then `q`;
    /// SIGTERM a quarter of the way in: how long until the server has
    /// exited, and how many conversations ended whole?
    ShutdownBusy { conns: usize, talk_ms: usize },
}

/// Threads the burst's clients connect from (all start on one barrier).
pub const BURST_THREADS: usize = 50;

impl Workload {
    /// The name in results.json and the tables.
    pub fn id(self) -> String {
        match self {
            Workload::RoundTrips { conns, .. } => format!("roundtrips_c{conns}"),
            Workload::Connect { .. } => "connect".into(),
            Workload::Idle { .. } => "idle".into(),
            Workload::Burst { .. } => "burst".into(),
            Workload::ShutdownIdle { .. } => "shutdown_idle".into(),
            Workload::ShutdownBusy { .. } => "shutdown_busy".into(),
        }
    }

    /// Connections open at once: what a pool or prefork server must hold.
    pub fn held(self) -> usize {
        match self {
            Workload::RoundTrips { conns, .. }
            | Workload::Idle { conns, .. }
            | Workload::Burst { conns }
            | Workload::ShutdownIdle { conns }
            | Workload::ShutdownBusy { conns, .. } => conns,
            Workload::Connect { threads, .. } => threads,
        }
    }

    /// Encoded for the client process.
    pub fn encode(self) -> String {
        match self {
            Workload::RoundTrips { conns, each } => format!("roundtrips {conns} {each}"),
            Workload::Connect { total, threads } => format!("connect {total} {threads}"),
            Workload::Idle { conns, threads } => format!("idle {conns} {threads}"),
            Workload::Burst { conns } => format!("burst {conns} 0"),
            Workload::ShutdownIdle { conns } => format!("shutdown_idle {conns} 0"),
            Workload::ShutdownBusy { conns, talk_ms } => format!("shutdown_busy {conns} {talk_ms}"),
        }
    }

    pub fn decode(text: &str) -> Option<Workload> {
        let mut parts = text.split_whitespace();
        let kind = parts.next()?;
        let a: usize = parts.next()?.parse().ok()?;
        let b: usize = parts.next()?.parse().ok()?;
        Some(match kind {
            "roundtrips" => Workload::RoundTrips { conns: a, each: b },
            "connect" => Workload::Connect {
                total: a,
                threads: b,
            },
            "idle" => Workload::Idle {
                conns: a,
                threads: b,
            },
            "burst" => Workload::Burst { conns: a },
            "shutdown_idle" => Workload::ShutdownIdle { conns: a },
            "shutdown_busy" => Workload::ShutdownBusy {
                conns: a,
                talk_ms: b,
            },
            _ => return None,
        })
    }

    pub fn is_shutdown(self) -> bool {
        matches!(
            self,
            Workload::ShutdownIdle { .. } | Workload::ShutdownBusy { .. }
        )
    }

    /// Workloads whose shortfall (connections not greeted or not
    /// answering) is a figure of the server, not a failed run: a server
    /// may hold fewer than 10,000 idle connections, or greet fewer than all
    /// of a burst (Python's listen backlog is 5: a burst overflows it even
    /// in the smoke run), and a shutdown cuts conversations. The smoke run
    /// still fails on a shortfall of idle connections (it holds only 50).
    pub fn shortfall_is_a_figure(self) -> bool {
        matches!(self, Workload::Idle { .. } | Workload::Burst { .. }) || self.is_shutdown()
    }
}

/// What one run of the bench does: the workloads in order, the rounds,
/// and the pacing.
pub struct Plan {
    pub smoke: bool,
    pub rounds: usize,
    pub workloads: Vec<Workload>,
    /// Whether to wait for the CPUs to go quiet before each measurement.
    pub wait_for_quiet: bool,
    /// Pause after a server starts, and after a workload before the
    /// server is measured again (the last connections' teardown counts).
    pub settle: Duration,
}

impl Plan {
    /// The full run: the sizes. Round trips total about 100,000 at
    /// each C (fewer at C = 1, which is slower per round trip), so that
    /// the CPU figure is well above the 10 ms clock tick of /proc/PID/stat.
    pub fn full(rounds: usize) -> Plan {
        Plan {
            smoke: false,
            rounds,
            workloads: vec![
                Workload::RoundTrips {
                    conns: 1,
                    each: 20_000,
                },
                Workload::RoundTrips {
                    conns: 10,
                    each: 5_000,
                },
                Workload::RoundTrips {
                    conns: 100,
                    each: 1_000,
                },
                Workload::RoundTrips {
                    conns: 1_000,
                    each: 100,
                },
                Workload::Connect {
                    total: 5_000,
                    threads: 4,
                },
                Workload::Idle {
                    conns: 10_000,
                    threads: 8,
                },
                Workload::Burst { conns: 1_000 },
                Workload::ShutdownIdle { conns: 10_000 },
                Workload::ShutdownBusy {
                    conns: 100,
                    talk_ms: 1_000,
                },
            ],
            wait_for_quiet: true,
            settle: Duration::from_millis(300),
        }
    }

    /// The smoke run: every workload, tiny counts, one round, no waiting
    /// for quiet; it checks replies, never speed.
    pub fn smoke() -> Plan {
        Plan {
            smoke: true,
            rounds: 1,
            workloads: vec![
                Workload::RoundTrips { conns: 1, each: 20 },
                Workload::RoundTrips { conns: 3, each: 10 },
                Workload::RoundTrips { conns: 10, each: 5 },
                Workload::RoundTrips { conns: 30, each: 2 },
                Workload::Connect {
                    total: 40,
                    threads: 2,
                },
                Workload::Idle {
                    conns: 50,
                    threads: 2,
                },
                Workload::Burst { conns: 60 },
                Workload::ShutdownIdle { conns: 5 },
                Workload::ShutdownBusy {
                    conns: 5,
                    talk_ms: 200,
                },
            ],
            wait_for_quiet: false,
            settle: Duration::from_millis(50),
        }
    }

    /// Descriptors one process may need at once: the idle workload's
    /// connections (the server holds one end, the client process the
    /// other, each under its own limit), plus room.
    pub fn open_files_needed(&self) -> u64 {
        let most = self.workloads.iter().map(|w| w.held()).max().unwrap_or(0);
        (most + 1_024) as u64
    }
}
