//! `serve`'s flags: the server's, then each handler's under its heading.
//! Their defaults are the library's constants (`socketserver::defaults`,
//! each handler's `DEFAULT_*`), shown in `--help` as typed.

use std::fmt;
use std::time::Duration;

use clap::{Args, Parser, ValueEnum};
use socketserver::defaults;
use socketserver_handlers::{echo, ftp, shell};

#[derive(Parser, Debug)]
#[command(
    name = "serve",
    version,
    about = "Serve a socketserver handler: echo (the tutorial's chat bot), shell (its remote shell), ftp (its file transfer, a real FTP server)",
    after_help = "Logs go to standard error; RUST_LOG (e.g. RUST_LOG=debug) overrides -v/-q.\n\
                  SIGINT/SIGTERM stop accepting, let live connections finish within \
                  --drain-timeout, and exit 0; a second SIGINT exits at once."
)]
pub struct Cli {
    /// The handler to serve
    #[arg(long, value_enum)]
    pub handler: HandlerKind,

    /// Where to listen: HOST:PORT, [IPV6]:PORT, HOST alone (the handler's
    /// default port), or unix:PATH [default: 127.0.0.1 and the handler's
    /// port, 9999 for echo, 9998 for shell, 2121 for ftp]
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,

    /// Serve datagrams instead of a stream: UDP, or a Unix datagram socket
    /// with --bind unix:PATH (echo only: each datagram is answered with
    /// itself + the suffix)
    #[arg(long)]
    pub udp: bool,

    /// Concurrency model [default: event; threading with --udp, which the
    /// event model does not serve]
    #[arg(long, value_enum)]
    mode: Option<Mode>,

    /// Worker threads of the pool model [default: 4 per CPU], or worker
    /// processes of the prefork model [default: 1 per CPU]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub workers: Option<u32>,

    /// Event-loop threads of the event model [default: 1 per CPU]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,

    /// Most child processes alive at once in the forking model; more
    /// clients wait in the kernel's backlog
    #[arg(long, value_name = "N", default_value_t = defaults::MAX_CHILDREN as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_children: u32,

    /// Prefork: a worker ends after this many connections and a fresh one
    /// replaces it [default: never]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_requests: Option<u64>,

    /// Most connections served at once; more wait in the kernel's backlog
    #[arg(long, value_name = "N", default_value_t = defaults::MAX_CONNECTIONS as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Most connections at once from one client (an IPv4 address, an IPv6
    /// /64), in every mode; more are refused at once with the handler's
    /// message; 0 turns it off [default: 16 for ftp, none for echo and shell]
    #[arg(long, value_name = "N")]
    pub max_per_ip: Option<u32>,

    /// Close a connection silent (or not reading) for this long; 0 turns it off
    #[arg(long, value_name = "SECS", default_value_t = Seconds(defaults::IDLE_TIMEOUT),
          value_parser = Seconds::parse)]
    pub idle_timeout: Seconds,

    /// A line or frame must arrive whole within this time of its first
    /// bytes, however it is paced; 0 turns it off [default: the idle timeout]
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub message_timeout: Option<Duration>,

    /// Close a connection that has not logged in (ftp) or authenticated
    /// (shell with a token) within this time, however it paces its bytes
    /// [default: 60 for ftp, 10 for shell]
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub login_timeout: Option<Duration>,

    /// On shutdown, how long live connections may take to finish before they are cut
    #[arg(long, value_name = "SECS", default_value_t = Seconds(defaults::DRAIN_TIMEOUT),
          value_parser = Seconds::parse)]
    pub drain_timeout: Seconds,

    /// More log output (-v debug, -vv trace)
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Log errors only
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,

    #[command(flatten)]
    pub echo: EchoOptions,

    #[command(flatten)]
    pub shell: ShellOptions,

    #[command(flatten)]
    pub ftp: FtpOptions,

    #[command(flatten)]
    pub tls: crate::tls::TlsOptions,
}

/// Options of the echo handler.
#[derive(Args, Debug)]
#[command(next_help_heading = "Echo options")]
pub struct EchoOptions {
    /// Sent to each client on connect
    #[arg(long, value_name = "TEXT", default_value = echo::DEFAULT_GREETING)]
    pub greeting: String,

    /// Appended to every answer
    #[arg(long, value_name = "TEXT", default_value = echo::DEFAULT_SUFFIX)]
    pub suffix: String,

    /// Longest line (or message, with no newline) accepted, in bytes; longer ones get an error and the connection closes
    #[arg(long, value_name = "BYTES", default_value_t = defaults::MAX_LINE)]
    pub max_line: usize,
}

/// Options of the shell handler.
#[derive(Args, Debug)]
#[command(next_help_heading = "Shell options")]
pub struct ShellOptions {
    /// Kill a command, with every process it started, when it has run this
    /// long; 0 turns the limit off
    #[arg(long, value_name = "SECS", default_value_t = Seconds(shell::DEFAULT_COMMAND_TIMEOUT),
          value_parser = Seconds::parse)]
    pub command_timeout: Seconds,

    /// Keep at most this many bytes of a command's output; past it the rest
    /// is discarded and the command killed
    #[arg(long, value_name = "BYTES", default_value_t = shell::DEFAULT_MAX_OUTPUT)]
    pub max_output: usize,

    /// Require "auth TOKEN" before any command (at least 16 bytes). Other
    /// local users can read it in `ps`: prefer --token-file. [default: a
    /// random token, written to a file only you can read, where `client
    /// shell` finds it]
    #[arg(long, value_name = "TOKEN", conflicts_with_all = ["token_file", "no_token"])]
    pub token: Option<String>,

    /// Read the token from the first line of FILE (keep it chmod 600)
    #[arg(long, value_name = "FILE", conflicts_with = "no_token")]
    pub token_file: Option<std::path::PathBuf>,

    /// Serve with no token, loopback only: for the tutorial's client, which
    /// cannot send one. Any local process, and any web page in a browser
    /// here that gets past the HTTP check, can then run commands as you
    #[arg(long)]
    pub no_token: bool,

    /// Run commands even as root (refused by default)
    #[arg(long)]
    pub allow_root: bool,
}

/// Options of the ftp handler.
#[derive(Args, Debug)]
#[command(next_help_heading = "Ftp options")]
pub struct FtpOptions {
    /// The folder served as / (clients cannot leave it)
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub root: std::path::PathBuf,

    /// A user with read-write access, as NAME:PASSWORD (repeatable). Other
    /// local users can read it in `ps`: prefer --users FILE
    #[arg(long = "user", value_name = "NAME:PASSWORD", value_parser = ftp::parse_user)]
    pub users: Vec<(String, String)>,

    /// Read users from FILE: one NAME:PASSWORD a line, # for comments
    #[arg(long = "users", value_name = "FILE")]
    pub users_file: Option<std::path::PathBuf>,

    /// Let "anonymous" (or "ftp") log in with any password, read-only, to
    /// files that everyone may read (o+r, in folders everyone may enter).
    /// [default: on when no user is given and the address is loopback]
    #[arg(long)]
    pub anonymous: bool,

    /// Make every user read-only
    #[arg(long)]
    pub read_only: bool,

    /// Let anonymous users in even when --root is /, your home folder, or
    /// a folder that holds it (refused otherwise). Anonymous users get only
    /// files that every local user may read, whatever the folder
    #[arg(long)]
    pub allow_anonymous_home: bool,

    /// Passive data ports, as MIN-MAX [default: any free port]
    #[arg(long, value_name = "MIN-MAX", value_parser = ftp::parse_port_range)]
    pub passive_ports: Option<std::ops::RangeInclusive<u16>>,

    /// Refuse active mode (PORT, EPRT); passive mode only
    #[arg(long)]
    pub no_active: bool,

    /// Allow active mode (PORT, EPRT) for clients on a loopback address.
    /// Off by default: a client behind a local proxy (stunnel, HAProxy,
    /// ssh -L) shows up as 127.0.0.1 and could aim the server at a local
    /// service
    #[arg(long)]
    pub allow_loopback_active: bool,

    /// Close a passive data port (PASV, EPSV) that no transfer command
    /// used within this time; also how long a transfer command waits for
    /// the client to connect
    #[arg(long, value_name = "SECS", default_value_t = Seconds(ftp::DATA_CONNECT_TIMEOUT),
          value_parser = Seconds::parse)]
    pub passive_timeout: Seconds,

    /// Most entries in one listing
    #[arg(long, value_name = "N", default_value_t = ftp::DEFAULT_MAX_LIST_ENTRIES)]
    pub max_list_entries: usize,

    /// Which transfers are hashed while they stream, for the MD5=<hex> of
    /// their 226 reply: always; auto (every STOR, a RETR unless its MD5 is
    /// cached); off. XMD5, XSHA1, XSHA256 and HASH answer in every mode
    #[arg(long, value_name = "WHEN", default_value = "auto")]
    pub hash_transfers: ftp::HashTransfers,

    /// Largest file hashed on demand (XMD5, HASH...), e.g. 4G, or
    /// "unlimited"; larger files are refused with 550 unless cached
    #[arg(long, value_name = "SIZE", default_value_t = Size(Some(ftp::DEFAULT_HASH_MAX_SIZE)),
          value_parser = Size::parse)]
    pub hash_max_size: Size,

    /// Most hash computations on demand at once; more are answered 450
    /// [default: one per CPU]
    #[arg(long, value_name = "N")]
    pub max_hashes: Option<usize>,

    /// FTPS: refuse logins before AUTH TLS (530) and transfers before
    /// PROT P (521), so no password and no file crosses in clear
    /// (--tls-required=false to allow both). [default: true with
    /// --tls-cert on an address that is not loopback]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true",
          requires = "tls_cert")]
    pub tls_required: Option<bool>,

    /// FTPS: also serve implicit FTPS (TLS from the first byte, as port
    /// 990 does) on this address, beside the explicit FTPS of --bind;
    /// needs --tls-cert
    #[arg(long, value_name = "ADDR", requires = "tls_cert")]
    pub implicit_tls_bind: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HandlerKind {
    /// The tutorial's chat bot: greets, answers each message + "好", "q" ends
    Echo,
    /// The tutorial's remote shell: runs each command, replies with the
    /// output's length, then the output (a token is generated into a
    /// private file unless one is given; --no-token: loopback only)
    Shell,
    /// The tutorial's file transfer as a real FTP server (curl, ftplib,
    /// lftp, FileZilla); port 2121, the current folder, read-only
    Ftp,
}

impl HandlerKind {
    pub fn name(self) -> &'static str {
        match self {
            HandlerKind::Echo => "echo",
            HandlerKind::Shell => "shell",
            HandlerKind::Ftp => "ftp",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            HandlerKind::Echo => echo::DEFAULT_PORT,
            HandlerKind::Shell => shell::DEFAULT_PORT,
            HandlerKind::Ftp => ftp::DEFAULT_PORT,
        }
    }
}

impl Cli {
    /// The concurrency model: `--mode`, or the event model (threading for
    /// `--udp`: the event model serves stream sockets only).
    pub fn mode(&self) -> Mode {
        match (self.mode, self.udp) {
            (Some(mode), _) => mode,
            (None, false) => Mode::Event,
            (None, true) => Mode::Threading,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// One connection at a time
    Sync,
    /// A thread per connection
    Threading,
    /// A fixed pool of worker threads (--workers)
    Pool,
    /// A process per connection (--max-children)
    Forking,
    /// A fixed set of worker processes (--workers, --max-requests)
    Prefork,
    /// Event loops running each connection on a coroutine (--threads)
    Event,
}

/// The mode as `--mode` spells it (the first line, `serving echo on ...
/// (event)`, says it so).
impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.to_possible_value().expect("no mode is hidden");
        f.write_str(value.get_name())
    }
}

/// A duration given in seconds (`300`, `0.5`), shown the same way: so that
/// a default from the library reads in `--help` as a user would type it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl Seconds {
    fn parse(text: &str) -> Result<Seconds, String> {
        parse_seconds(text).map(Seconds)
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_secs_f64())
    }
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text:?} is not a duration"))
}

/// A size in bytes as `--hash-max-size` takes it (`4G`, `512M`,
/// `unlimited`: `None`), shown the same way in `--help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub Option<u64>);

impl Size {
    fn parse(text: &str) -> Result<Size, String> {
        ftp::parse_size(text).map(Size)
    }
}

impl fmt::Display for Size {
    /// In the largest unit that divides it exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(bytes) = self.0 else {
            return f.write_str("unlimited");
        };
        let units = [(40, "T"), (30, "G"), (20, "M"), (10, "K")];
        match units
            .iter()
            .find(|(shift, _)| bytes != 0 && bytes % (1 << shift) == 0)
        {
            Some((shift, unit)) => write!(f, "{}{unit}", bytes >> shift),
            None => write!(f, "{bytes}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_show_as_typed_and_read_back() {
        for (text, duration) in [("300", 300.0), ("0.5", 0.5), ("0", 0.0)] {
            let seconds = Seconds(Duration::from_secs_f64(duration));
            assert_eq!(seconds.to_string(), text);
            assert_eq!(Seconds::parse(text), Ok(seconds));
        }
        for (text, bytes) in [
            ("16G", Some(16 << 30)),
            ("1536K", Some(1536 << 10)),
            ("1000", Some(1000)),
            ("0", Some(0)),
            ("unlimited", None),
        ] {
            assert_eq!(Size(bytes).to_string(), text);
            assert_eq!(Size::parse(text), Ok(Size(bytes)));
        }
    }
}
