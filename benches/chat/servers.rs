//! The servers under test: ours in every model, tokio, and Python's
//! ThreadingTCPServer and ForkingTCPServer, all speaking the Echo
//! handler's line mode; how each is started for a workload, and which
//! workloads make sense for it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use socketserver_handlers::echo::{DEFAULT_GREETING, DEFAULT_SUFFIX};

use crate::process::{self, Process};
use crate::workload::Workload;

/// The Python peers: a ThreadingTCPServer or ForkingTCPServer with a
/// StreamRequestHandler speaking the Echo handler's line mode (greeting,
/// then each line answered with line + suffix + "\n"; "q" ends).
/// argv: threading|forking, greeting, suffix, host, port, max_children.
/// ForkingTCPServer's max_children (40 by default) is raised to the
/// workload's connections: past it, the server waits for a child to end
/// before accepting, and persistent connections would never let it.
const PYTHON_SERVER: &str = r#"
import socketserver, sys

MODE, GREETING, SUFFIX = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()

class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(GREETING)
        for line in self.rfile:
            message = line[:-1] if line.endswith(b"\n") else line
            if message.endswith(b"\r"):
                message = message[:-1]
            if message == b"q":
                return
            self.wfile.write(message + SUFFIX + b"\n")

Base = socketserver.ThreadingTCPServer if MODE == "threading" else socketserver.ForkingTCPServer

class Server(Base):
    daemon_threads = True
    allow_reuse_address = True
    max_children = int(sys.argv[6])

with Server((sys.argv[4], int(sys.argv[5])), Echo) as server:
    host, port = server.server_address[:2]
    print(f"serving echo on {host}:{port} (python {MODE})", flush=True)
    server.serve_forever()
"#;

/// How a server is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `serve --mode MODE`.
    Ours(&'static str),
    /// benches/tokio-chat, `#[tokio::main]`'s multi-thread runtime.
    Tokio,
    /// Python's socketserver: "threading" or "forking".
    Python(&'static str),
}

/// One column of the tables.
#[derive(Clone, Copy, Debug)]
pub struct Server {
    pub id: &'static str,
    pub label: &'static str,
    pub kind: Kind,
}

/// Every server, in the tables' order.
pub const SERVERS: [Server; 9] = [
    Server {
        id: "ours-sync",
        label: "ours (sync)",
        kind: Kind::Ours("sync"),
    },
    Server {
        id: "ours-threading",
        label: "ours (threading)",
        kind: Kind::Ours("threading"),
    },
    Server {
        id: "ours-pool",
        label: "ours (pool)",
        kind: Kind::Ours("pool"),
    },
    Server {
        id: "ours-forking",
        label: "ours (forking)",
        kind: Kind::Ours("forking"),
    },
    Server {
        id: "ours-prefork",
        label: "ours (prefork)",
        kind: Kind::Ours("prefork"),
    },
    Server {
        id: "ours-event",
        label: "ours (event)",
        kind: Kind::Ours("event"),
    },
    Server {
        id: "tokio",
        label: "tokio",
        kind: Kind::Tokio,
    },
    Server {
        id: "python-threading",
        label: "python threading",
        kind: Kind::Python("threading"),
    },
    Server {
        id: "python-forking",
        label: "python forking",
        kind: Kind::Python("forking"),
    },
];

impl Server {
    /// A process per connection: 10,000 idle connections would be 10,000
    /// processes, which is not how anyone runs these models.
    fn process_per_connection(self) -> bool {
        matches!(
            self.kind,
            Kind::Ours("forking") | Kind::Ours("prefork") | Kind::Python("forking")
        )
    }

    /// Whether the workload makes sense for this server. The sync model
    /// serves one connection at a time: round trips at C = 1, the
    /// connection rate and the burst (each client says `q` after its
    /// greeting) make sense; many connections held at once do not.
    pub fn runs(self, workload: Workload) -> bool {
        if self.kind == Kind::Ours("sync") {
            return matches!(
                workload,
                Workload::RoundTrips { conns: 1, .. }
                    | Workload::Connect { .. }
                    | Workload::Burst { .. }
            );
        }
        let many_held = matches!(
            workload,
            Workload::Idle { .. } | Workload::ShutdownIdle { .. }
        );
        !(many_held && self.process_per_connection())
    }
}

/// Where the programs are.
pub struct Programs {
    pub serve: PathBuf,
    pub tokio: PathBuf,
    pub python: Option<PathBuf>,
    pub pinned: bool,
}

impl Programs {
    /// `program`, under `taskset -c CPU` when pinning (taskset execs it,
    /// so the PID is the program's own).
    pub fn pinned_command(&self, cpu: u32, program: &Path) -> Command {
        if self.pinned {
            let mut command = Command::new("taskset");
            command.arg("-c").arg(cpu.to_string()).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    /// The command line that starts `server` for `workload`, pinned to
    /// CPU 0; None if the program is missing (python3).
    pub fn command(&self, server: Server, workload: Workload) -> Option<Command> {
        let held = workload.held();
        Some(match server.kind {
            Kind::Ours(mode) => {
                let mut command = self.pinned_command(0, &self.serve);
                // The default limit (1024) would leave connections beyond
                // it waiting in the backlog; --quiet: no log line at start.
                let max_connections = (held + 64).max(1_024).to_string();
                command.args(["--handler", "echo", "--bind", "127.0.0.1:0", "--mode", mode]);
                command.args(["--max-connections", &max_connections, "--quiet"]);
                // A pool worker or a prefork worker holds one conversation
                // from connect to close, idle or not: as many as the
                // workload holds at once (the defaults, 4 threads or 1
                // process per CPU, would be 4 and 1 under taskset -c 0).
                match mode {
                    "pool" | "prefork" => {
                        command.args(["--workers", &held.max(4).to_string()]);
                    }
                    "forking" => {
                        command.args(["--max-children", &held.max(40).to_string()]);
                    }
                    _ => {}
                }
                if matches!(workload, Workload::ShutdownIdle { .. }) {
                    command.args(["--drain-timeout", "0"]);
                }
                command
            }
            Kind::Tokio => {
                let mut command = self.pinned_command(0, &self.tokio);
                command.args(["--bind", "127.0.0.1:0"]);
                command
            }
            Kind::Python(mode) => {
                let mut command = self.pinned_command(0, self.python.as_ref()?);
                let max_children = held.max(40).to_string();
                command.args(["-c", PYTHON_SERVER, mode, DEFAULT_GREETING, DEFAULT_SUFFIX]);
                command.args(["127.0.0.1", "0", &max_children]);
                command
            }
        })
    }
}

/// The command as a line for the report (the Python script shown by name).
/// Paths are shown relative to the repository (`target/release/serve`),
/// the interpreter as `python3`: the same on every machine.
pub fn describe(command: &Command) -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/");
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    for arg in command.get_args() {
        let arg = arg.to_string_lossy();
        let arg = match arg.strip_prefix(root) {
            Some(relative) => relative.to_string().into(),
            None if arg.starts_with('/') && arg.contains("python") => "python3".into(),
            None => arg,
        };
        if arg.contains('\n') {
            words.push("PYTHON_SERVER".into());
        } else if arg.is_empty() || arg.contains(' ') {
            words.push(format!("'{arg}'"));
        } else {
            words.push(arg.into_owned());
        }
    }
    words.join(" ")
}

/// A started server: its process and address.
pub struct Running {
    pub process: Process,
    pub addr: std::net::SocketAddr,
}

/// Starts a server and reads its address from its first line
/// (`serving echo on ADDR (...)`).
pub fn start(programs: &Programs, server: Server, workload: Workload) -> Result<Running, String> {
    let mut command = programs
        .command(server, workload)
        .ok_or_else(|| format!("{}: python3 not found", server.label))?;
    command.stdin(Stdio::null());
    let (process, lines) = process::spawn(command, server.label)?;
    let first = process::next_line(&lines, server.label, "`serving ... on ADDR` line")?;
    let addr = first
        .split(" on ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("{}: unexpected first line {first:?}", server.label))?;
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", process.pid()))
        .map_err(|e| format!("{}: /proc: {e}", server.label))?;
    if comm.trim() == "taskset" {
        return Err(format!(
            "{}: PID {} is still taskset",
            server.label,
            process.pid()
        ));
    }
    Ok(Running { process, addr })
}
