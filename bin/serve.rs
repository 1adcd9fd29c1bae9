//! `serve`: runs one of the handlers on a socket.
//!
//! ```text
//! serve --handler echo                      # 127.0.0.1:9999, threading
//! serve --handler echo --bind [::]:9999 --mode pool --workers 8
//! ```
//!
//! The first line on standard output is exactly
//! `serving HANDLER on ADDRESS (MODE)`, with the real address, so scripts
//! can bind port 0 and read the port. SIGINT and SIGTERM drain and exit 0;
//! a second SIGINT exits at once. The shell, when it generates its token,
//! prints the token file's path on the second line.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, ValueEnum};
use socketserver::{Builder, DatagramHandler, Model, RequestHandler, Server};
use socketserver_handlers::echo::{self, Echo};
use socketserver_handlers::ftp::{self, Ftp};
use socketserver_handlers::shell::token_file::{self, TokenFile};
use socketserver_handlers::shell::{self, Shell};

#[path = "serve/tls.rs"]
mod tls;

#[derive(Parser, Debug)]
#[command(
    name = "serve",
    version,
    about = "Serve a socketserver handler: echo (the tutorial's chat bot), shell (its remote shell), ftp (its file transfer, a real FTP server)",
    after_help = "Logs go to standard error; RUST_LOG (e.g. RUST_LOG=debug) overrides -v/-q.\n\
                  SIGINT/SIGTERM stop accepting, let live connections finish within \
                  --drain-timeout, and exit 0; a second SIGINT exits at once."
)]
struct Cli {
    /// The handler to serve
    #[arg(long, value_enum)]
    handler: HandlerKind,

    /// Where to listen: HOST:PORT, [IPV6]:PORT, HOST alone (the handler's
    /// default port), or unix:PATH [default: 127.0.0.1 and the handler's
    /// port, 9999 for echo, 9998 for shell, 2121 for ftp]
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,

    /// Serve datagrams instead of a stream: UDP, or a Unix datagram socket
    /// with --bind unix:PATH (echo only: each datagram is answered with
    /// itself + the suffix)
    #[arg(long)]
    udp: bool,

    /// Concurrency model
    #[arg(long, value_enum, default_value_t = Mode::Threading)]
    mode: Mode,

    /// Worker threads of the pool model [default: 4 per CPU], or worker
    /// processes of the prefork model [default: 1 per CPU]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    workers: Option<u32>,

    /// Most child processes alive at once in the forking model; more
    /// clients wait in the kernel's backlog
    #[arg(long, value_name = "N", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    max_children: u32,

    /// Prefork: a worker ends after this many connections and a fresh one
    /// replaces it [default: never]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_requests: Option<u64>,

    /// Most connections served at once; more wait in the kernel's backlog
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,

    /// Most connections at once from one client (an IPv4 address, an IPv6
    /// /64), in every mode; more are refused at once with the handler's
    /// message; 0 turns it off [default: 16 for ftp, none for echo and shell]
    #[arg(long, value_name = "N")]
    max_per_ip: Option<u32>,

    /// Close a connection silent (or not reading) for this long; 0 turns it off
    #[arg(long, value_name = "SECS", default_value = "300", value_parser = parse_seconds)]
    idle_timeout: Duration,

    /// A line or frame must arrive whole within this time of its first
    /// bytes, however it is paced; 0 turns it off [default: the idle timeout]
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    message_timeout: Option<Duration>,

    /// Close a connection that has not logged in (ftp) or authenticated
    /// (shell with a token) within this time, however it paces its bytes
    /// [default: 60 for ftp, 10 for shell]
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    login_timeout: Option<Duration>,

    /// On shutdown, how long live connections may take to finish before they are cut
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_seconds)]
    drain_timeout: Duration,

    /// More log output (-v debug, -vv trace)
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Log errors only
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,

    #[command(flatten)]
    echo: EchoOptions,

    #[command(flatten)]
    shell: ShellOptions,

    #[command(flatten)]
    ftp: FtpOptions,

    #[command(flatten)]
    tls: tls::TlsOptions,
}

/// Options of the echo handler.
#[derive(Args, Debug)]
#[command(next_help_heading = "Echo options")]
struct EchoOptions {
    /// Sent to each client on connect
    #[arg(long, value_name = "TEXT", default_value = echo::DEFAULT_GREETING)]
    greeting: String,

    /// Appended to every answer
    #[arg(long, value_name = "TEXT", default_value = echo::DEFAULT_SUFFIX)]
    suffix: String,

    /// Longest line (or message, with no newline) accepted, in bytes; longer ones get an error and the connection closes
    #[arg(long, value_name = "BYTES", default_value_t = echo::DEFAULT_MAX_LINE)]
    max_line: usize,
}

/// Options of the shell handler.
#[derive(Args, Debug)]
#[command(next_help_heading = "Shell options")]
struct ShellOptions {
    /// Kill a command, with every process it started, when it has run this
    /// long; 0 turns the limit off
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_seconds)]
    command_timeout: Duration,

    /// Keep at most this many bytes of a command's output; past it the rest
    /// is discarded and the command killed
    #[arg(long, value_name = "BYTES", default_value_t = shell::DEFAULT_MAX_OUTPUT)]
    max_output: usize,

    /// Require "auth TOKEN" before any command (at least 16 bytes). Other
    /// local users can read it in `ps`: prefer --token-file. [default: a
    /// random token, written to a file only you can read, where `client
    /// shell` finds it]
    #[arg(long, value_name = "TOKEN", conflicts_with_all = ["token_file", "no_token"])]
    token: Option<String>,

    /// Read the token from the first line of FILE (keep it chmod 600)
    #[arg(long, value_name = "FILE", conflicts_with = "no_token")]
    token_file: Option<std::path::PathBuf>,

    /// Serve with no token, loopback only: for the tutorial's client, which
    /// cannot send one. Any local process, and any web page in a browser
    /// here that gets past the HTTP check, can then run commands as you
    #[arg(long)]
    no_token: bool,

    /// Run commands even as root (refused by default)
    #[arg(long)]
    allow_root: bool,
}

/// Options of the ftp handler.
#[derive(Args, Debug)]
#[command(next_help_heading = "Ftp options")]
struct FtpOptions {
    /// The folder served as / (clients cannot leave it)
    #[arg(long, value_name = "DIR", default_value = ".")]
    root: std::path::PathBuf,

    /// A user with read-write access, as NAME:PASSWORD (repeatable). Other
    /// local users can read it in `ps`: prefer --users FILE
    #[arg(long = "user", value_name = "NAME:PASSWORD", value_parser = ftp::parse_user)]
    users: Vec<(String, String)>,

    /// Read users from FILE: one NAME:PASSWORD a line, # for comments
    #[arg(long = "users", value_name = "FILE")]
    users_file: Option<std::path::PathBuf>,

    /// Let "anonymous" (or "ftp") log in with any password, read-only, to
    /// files that everyone may read (o+r, in folders everyone may enter).
    /// [default: on when no user is given and the address is loopback]
    #[arg(long)]
    anonymous: bool,

    /// Make every user read-only
    #[arg(long)]
    read_only: bool,

    /// Let anonymous users in even when --root is /, your home folder, or
    /// a folder that holds it (refused otherwise). Anonymous users get only
    /// files that every local user may read, whatever the folder
    #[arg(long)]
    allow_anonymous_home: bool,

    /// Passive data ports, as MIN-MAX [default: any free port]
    #[arg(long, value_name = "MIN-MAX", value_parser = ftp::parse_port_range)]
    passive_ports: Option<std::ops::RangeInclusive<u16>>,

    /// Refuse active mode (PORT, EPRT); passive mode only
    #[arg(long)]
    no_active: bool,

    /// Allow active mode (PORT, EPRT) for clients on a loopback address.
    /// Off by default: a client behind a local proxy (stunnel, HAProxy,
    /// ssh -L) shows up as 127.0.0.1 and could aim the server at a local
    /// service
    #[arg(long)]
    allow_loopback_active: bool,

    /// Close a passive data port (PASV, EPSV) that no transfer command
    /// used within this time; also how long a transfer command waits for
    /// the client to connect
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_seconds)]
    passive_timeout: Duration,

    /// Most entries in one listing
    #[arg(long, value_name = "N", default_value_t = ftp::DEFAULT_MAX_LIST_ENTRIES)]
    max_list_entries: usize,

    /// Which transfers are hashed while they stream, for the MD5=<hex> of
    /// their 226 reply: always; auto (every STOR, a RETR unless its MD5 is
    /// cached); off. XMD5, XSHA1, XSHA256 and HASH answer in every mode
    #[arg(long, value_name = "WHEN", default_value = "auto")]
    hash_transfers: ftp::HashTransfers,

    /// Largest file hashed on demand (XMD5, HASH...), e.g. 4G, or
    /// "unlimited"; larger files are refused with 550 unless cached
    #[arg(long, value_name = "SIZE", default_value = "16G", value_parser = ftp::parse_size)]
    hash_max_size: ::std::option::Option<u64>,

    /// Most hash computations on demand at once; more are answered 450
    /// [default: one per CPU]
    #[arg(long, value_name = "N")]
    max_hashes: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum HandlerKind {
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
    fn name(self) -> &'static str {
        match self {
            HandlerKind::Echo => "echo",
            HandlerKind::Shell => "shell",
            HandlerKind::Ftp => "ftp",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            HandlerKind::Echo => 9999,
            HandlerKind::Shell => shell::DEFAULT_PORT,
            HandlerKind::Ftp => ftp::DEFAULT_PORT,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
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
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text:?} is not a duration"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let model = match model(&cli) {
        Ok(model) => model,
        Err(message) => {
            eprintln!("serve: {message}");
            return ExitCode::from(2);
        }
    };
    if cli.udp && cli.handler != HandlerKind::Echo {
        eprintln!(
            "serve: --udp works with --handler echo only; {} is a stream protocol",
            cli.handler.name()
        );
        return ExitCode::from(2);
    }
    if cli.udp && cli.mode == Mode::Prefork {
        eprintln!("serve: --udp serves with --mode sync, threading, pool or forking, not prefork");
        return ExitCode::from(2);
    }
    let tls = match tls::load(&cli.tls, cli.handler.name(), cli.udp) {
        Ok(tls) => tls,
        Err((code, message)) => {
            eprintln!("serve: {message}");
            return ExitCode::from(code);
        }
    };
    match cli.handler {
        HandlerKind::Echo => {
            let echo = Echo::default()
                .greeting(&cli.echo.greeting)
                .suffix(&cli.echo.suffix)
                .max_line(cli.echo.max_line);
            if cli.udp {
                run(
                    &cli,
                    model,
                    tls.clone(),
                    datagram_builder(&cli, echo),
                    no_token_file,
                )
            } else {
                run(
                    &cli,
                    model,
                    tls.clone(),
                    stream_builder(&cli, echo),
                    no_token_file,
                )
            }
        }
        HandlerKind::Shell => match shell_handler(&cli) {
            Ok((shell, generated)) => {
                let exposed = cli
                    .bind
                    .as_deref()
                    .and_then(|b| non_loopback(b, shell::DEFAULT_PORT));
                if let (Some(exposed), None) = (exposed, &tls) {
                    log::warn!(
                        "shell on {exposed} without TLS: the token and every command travel                          in clear; serve with --tls-cert FILE --tls-key FILE"
                    );
                }
                // Probed (and logged) once here, before any fork, so that
                // forked children inherit the answer.
                shell::containment();
                let announce = |address: &socketserver::Address| match generated {
                    Some(token) => TokenFile::create(address, &token).map(Some).map_err(|e| {
                        format!(
                            "cannot write the shell's token file: {}",
                            socketserver::describe(&e)
                        )
                    }),
                    None => Ok(None),
                };
                run(
                    &cli,
                    model,
                    tls.clone(),
                    stream_builder(&cli, shell),
                    announce,
                )
            }
            Err((code, message)) => {
                eprintln!("serve: {message}");
                ExitCode::from(code)
            }
        },
        HandlerKind::Ftp => match ftp_handler(&cli) {
            Ok(ftp) => run(
                &cli,
                model,
                tls.clone(),
                stream_builder(&cli, ftp),
                no_token_file,
            ),
            Err((code, message)) => {
                eprintln!("serve: {message}");
                ExitCode::from(code)
            }
        },
    }
}

/// The Shell handler from the flags, after the safety checks: it runs
/// whatever it is sent, so it wants a token (given, or generated when none
/// is: then returned too, for its file), refuses to listen beyond loopback
/// without one, and refuses root unless --allow-root. Errors carry the
/// exit code.
fn shell_handler(cli: &Cli) -> Result<(Shell, Option<String>), (u8, String)> {
    let options = &cli.shell;
    if let Some(path) = &options.token_file {
        warn_if_readable_by_others(path);
    }
    let given = match (&options.token, &options.token_file) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(path)) => Some(token_file::read(path).map_err(|e| {
            let why = socketserver::describe(&e);
            (
                1,
                format!("cannot read the token file {}: {why}", path.display()),
            )
        })?),
        (None, None) => None,
    };
    if let Some(token) = &given {
        if token.len() < shell::MIN_TOKEN_LEN {
            return Err((
                2,
                format!(
                    "the token is {} bytes long: use at least {} (e.g. `head -c 32 /dev/urandom \
                     | base64`), or give no token and one is generated",
                    token.len(),
                    shell::MIN_TOKEN_LEN
                ),
            ));
        }
    }
    if options.no_token {
        if let Some(exposed) = cli
            .bind
            .as_deref()
            .and_then(|b| non_loopback(b, cli.handler.default_port()))
        {
            return Err((
                2,
                format!(
                    "refusing to serve shell on {exposed} without a token: anyone who can \
                     reach it could run commands as this user; bind 127.0.0.1, or drop \
                     --no-token (clients then send \"auth TOKEN\" first)"
                ),
            ));
        }
        log::warn!(
            "shell: no token (--no-token): any local process can run commands as this user; \
             only loopback clients are served"
        );
    }
    if !options.allow_root && shell::running_as_root() {
        return Err((
            2,
            "refusing to serve shell as root: every client would run commands as root; \
             run it as another user, or pass --allow-root if you mean it"
                .to_string(),
        ));
    }
    let generated = match (&given, options.no_token) {
        (None, false) => Some(shell::generate_token().map_err(|e| {
            let why = socketserver::describe(&e);
            (1, format!("cannot generate a token: {why}"))
        })?),
        _ => None,
    };
    let limit = (!options.command_timeout.is_zero()).then_some(options.command_timeout);
    let mut shell = Shell::default()
        .command_timeout(limit)
        .login_timeout(cli.login_timeout.unwrap_or(shell::DEFAULT_LOGIN_TIMEOUT))
        .max_output(options.max_output)
        .allow_no_token(options.no_token)
        .allow_root(options.allow_root);
    if let Some(token) = given.as_ref().or(generated.as_ref()) {
        shell = shell.token(token);
    }
    // The flags were checked above with friendlier words; this is the
    // handler's own check, which must agree.
    shell.check().map_err(|why| (2, why.to_string()))?;
    Ok((shell, generated))
}

/// Warns (a log line naming the file and the fix) when a file of secrets
/// can be read by the group or by others.
fn warn_if_readable_by_others(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o044 != 0 {
            log::warn!(
                "{} holds secrets but other users can read it (mode {:o}): chmod 600 {}",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
    }
}

/// The Ftp handler from the flags. With no user and no --anonymous,
/// anonymous read-only access is turned on for a loopback address (so the
/// quick start works) and refused elsewhere. Errors carry the exit code.
fn ftp_handler(cli: &Cli) -> Result<Ftp, (u8, String)> {
    let options = &cli.ftp;
    if cli.bind.as_deref().is_some_and(|b| b.starts_with("unix:")) {
        return Err((
            2,
            "ftp needs a TCP address: its data connections are TCP".into(),
        ));
    }
    let mut ftp = Ftp::new(&options.root).map_err(|e| {
        let why = socketserver::describe(&e);
        (1, format!("cannot serve {}: {why}", options.root.display()))
    })?;
    let mut users = options.users.clone();
    if let Some(path) = &options.users_file {
        warn_if_readable_by_others(path);
        let listed = ftp::read_users_file(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => (2, e.to_string()),
            _ => {
                let why = socketserver::describe(&e);
                (1, format!("cannot read {}: {why}", path.display()))
            }
        })?;
        users.extend(listed);
    }
    for (name, password) in &users {
        ftp = ftp.user(name, password);
    }
    let mut anonymous = options.anonymous;
    if users.is_empty() && !anonymous {
        if let Some(exposed) = cli
            .bind
            .as_deref()
            .and_then(|b| non_loopback(b, cli.handler.default_port()))
        {
            return Err((
                2,
                format!(
                    "no one could log in to ftp on {exposed}: give --user NAME:PASSWORD, \
                     --users FILE or --anonymous (anonymous read-only access is on by \
                     default only on loopback)"
                ),
            ));
        }
        anonymous = true;
    }
    if anonymous && !options.allow_anonymous_home {
        let home = std::env::var_os("HOME").and_then(|h| std::fs::canonicalize(h).ok());
        if let Some(what) = private_root(ftp.root(), home.as_deref()) {
            return Err((
                2,
                format!(
                    "refusing to serve {} to anonymous users: it is {what}; choose the \
                     folder to share with --root DIR, or pass --allow-anonymous-home",
                    ftp.root().display()
                ),
            ));
        }
    }
    if anonymous {
        log::info!("ftp: anonymous read-only access is on (files readable by everyone only)");
    }
    log::info!("ftp: serving {}", ftp.root().display());
    ftp = ftp
        .anonymous(anonymous)
        .read_only(options.read_only)
        .active(!options.no_active)
        .allow_loopback_active(options.allow_loopback_active)
        .passive_timeout(options.passive_timeout)
        .login_timeout(cli.login_timeout.unwrap_or(ftp::DEFAULT_LOGIN_TIMEOUT))
        .max_list_entries(options.max_list_entries)
        .hash_transfers(options.hash_transfers)
        .hash_max_size(options.hash_max_size)
        .max_hashes(options.max_hashes.unwrap_or_else(ftp::default_max_hashes));
    if let Some(ports) = &options.passive_ports {
        ftp = ftp.passive_ports(ports.clone());
    }
    Ok(ftp)
}

/// Why `root` (canonical) must not be served to anonymous users without
/// `--allow-anonymous-home`: it is `/`, the home folder `home`, or a
/// folder holding it. `None`: it may be.
fn private_root(root: &std::path::Path, home: Option<&std::path::Path>) -> Option<&'static str> {
    if root.parent().is_none() {
        return Some("the whole file system");
    }
    match home {
        Some(home) if home == root => Some("your home folder"),
        Some(home) if home.starts_with(root) => Some("a folder that holds your home folder"),
        _ => None,
    }
}

/// The first address `bind` resolves to that is not loopback, if any, with
/// the port the handler would listen on. Unix sockets are local; an address
/// that does not resolve is left for the bind to report.
fn non_loopback(bind: &str, default_port: u16) -> Option<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    if bind.starts_with("unix:") {
        return None;
    }
    let addr = with_default_port(bind, default_port);
    addr.to_socket_addrs()
        .ok()?
        .find(|a| !a.ip().to_canonical().is_loopback())
}

fn model(cli: &Cli) -> Result<Model, String> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    match cli.mode {
        Mode::Sync => Ok(Model::Sync),
        Mode::Threading => Ok(Model::Threading),
        Mode::Pool => {
            let workers = cli.workers.map_or(4 * cpus, |n| n as usize);
            Ok(Model::Pool {
                workers,
                queue: workers,
            })
        }
        Mode::Forking => Ok(Model::Forking {
            max_children: cli.max_children as usize,
        }),
        Mode::Prefork => Ok(Model::Prefork {
            workers: cli.workers.map_or(cpus, |n| n as usize),
            max_requests: cli.max_requests,
        }),
    }
}

fn init_logging(cli: &Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
}

/// The address to bind: `--bind`, or loopback and the handler's port.
fn bind_address(cli: &Cli) -> String {
    cli.bind
        .clone()
        .unwrap_or_else(|| format!("127.0.0.1:{}", cli.handler.default_port()))
}

/// One line for an address that does not resolve or a failed build.
fn bind_failed(bind: &str, error: socketserver::Error) -> ExitCode {
    match error {
        socketserver::Error::Resolve { source, .. } => {
            eprintln!(
                "serve: cannot bind {bind}: {}",
                socketserver::describe(&source)
            )
        }
        other => eprintln!("serve: {other}"),
    }
    ExitCode::from(1)
}

/// A stream server's builder: TCP, or a Unix stream socket.
fn stream_builder<H: RequestHandler>(cli: &Cli, handler: H) -> Result<Builder<H>, ExitCode> {
    let bind = bind_address(cli);
    match bind.strip_prefix("unix:") {
        Some(path) => Ok(Server::bind_unix(path, handler)),
        None => {
            let addr = with_default_port(&bind, cli.handler.default_port());
            Server::bind(addr.as_str(), handler).map_err(|e| bind_failed(&bind, e))
        }
    }
}

/// A datagram server's builder: UDP, or a Unix datagram socket.
fn datagram_builder<H: DatagramHandler>(cli: &Cli, handler: H) -> Result<Builder<H>, ExitCode> {
    let bind = bind_address(cli);
    match bind.strip_prefix("unix:") {
        Some(path) => Ok(Server::bind_unix_datagram(path, handler)),
        None => {
            let addr = with_default_port(&bind, cli.handler.default_port());
            Server::bind_udp(addr.as_str(), handler).map_err(|e| bind_failed(&bind, e))
        }
    }
}

/// For the handlers with no token file.
fn no_token_file(_: &socketserver::Address) -> Result<Option<TokenFile>, String> {
    Ok(None)
}

/// Builds and serves until a signal, over TLS with `tls`; the first line
/// names the transport when it is not a plain stream ("tls", "udp",
/// "datagram"). `announce` runs once the
/// address is known, before the first line: it writes the shell's
/// generated token file, whose path is printed on the second line and
/// which is removed when the server stops.
fn run<H: 'static>(
    cli: &Cli,
    model: Model,
    tls: Option<std::sync::Arc<socketserver::tls::rustls::ServerConfig>>,
    builder: Result<Builder<H>, ExitCode>,
    announce: impl FnOnce(&socketserver::Address) -> Result<Option<TokenFile>, String>,
) -> ExitCode {
    let name = cli.handler.name();
    let builder = match builder {
        Ok(builder) => builder,
        Err(code) => return code,
    };
    let idle = (!cli.idle_timeout.is_zero()).then_some(cli.idle_timeout);
    let message = cli
        .message_timeout
        .map_or(idle, |t| (!t.is_zero()).then_some(t));
    let per_ip = match cli.max_per_ip {
        Some(0) => None,
        Some(n) => Some(n as usize),
        None => (cli.handler == HandlerKind::Ftp).then_some(ftp::DEFAULT_MAX_PER_IP),
    };
    let signals = match stop_on_signals() {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("serve: cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let builder = match tls {
        Some(config) => builder.tls(config),
        None => builder,
    };
    let built = builder
        .stop_when_readable(signals)
        .model(model)
        .max_connections(cli.max_connections as usize)
        .max_per_ip(per_ip)
        .idle_timeout(idle)
        .message_timeout(message)
        .drain_timeout(cli.drain_timeout)
        .build();
    let mut server = match built {
        Ok(server) => server,
        Err(e) => {
            eprintln!("serve: {e}");
            return ExitCode::from(1);
        }
    };
    let transport = match (cli.udp, server.local_addr()) {
        (false, _) if cli.tls.tls_cert.is_some() => ", tls",
        (false, _) => "",
        (true, socketserver::Address::Inet(_)) => ", udp",
        (true, socketserver::Address::Unix(_)) => ", datagram",
    };
    let token_file = match announce(server.local_addr()) {
        Ok(file) => file,
        Err(message) => {
            eprintln!("serve: {message}");
            return ExitCode::from(1);
        }
    };
    println!(
        "serving {name} on {} ({}{transport})",
        server.local_addr(),
        model.name()
    );
    if let Some(file) = &token_file {
        println!(
            "token in {} (client shell reads it from there)",
            file.path().display()
        );
    }
    match server.serve_forever() {
        Ok(report) => {
            log::info!(
                "shut down: {} connections drained, {} cut",
                report.drained,
                report.cut
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("serve: {e}");
            ExitCode::from(1)
        }
    }
}

/// `localhost` -> `localhost:PORT`; `::1` -> `[::1]:PORT`; anything with a
/// port stays as it is.
fn with_default_port(addr: &str, port: u16) -> String {
    if addr.parse::<std::net::SocketAddr>().is_ok() {
        return addr.to_string();
    }
    if let Ok(ip) = addr.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        return std::net::SocketAddr::new(ip, port).to_string();
    }
    if addr.contains(':') {
        addr.to_string()
    } else {
        format!("{addr}:{port}")
    }
}

/// The first SIGINT or SIGTERM starts a graceful shutdown; a second SIGINT
/// (an impatient Ctrl-C) exits at once, with status 130.
///
/// No thread waits for signals: the handlers write to a socket pair whose
/// other end the server polls, so the process stays single-threaded, as the
/// forking models want. Returns that other end.
fn stop_on_signals() -> std::io::Result<std::os::unix::net::UnixStream> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::{flag, low_level::pipe};
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    let (stop, signalled) = std::os::unix::net::UnixStream::pair()?;
    let interrupted = Arc::new(AtomicBool::new(false));
    // Order matters: on a second SIGINT the flag is already set, and the
    // process exits before anything else runs.
    flag::register_conditional_shutdown(SIGINT, 130, Arc::clone(&interrupted))?;
    flag::register(SIGINT, interrupted)?;
    pipe::register(SIGINT, signalled.try_clone()?)?;
    pipe::register(SIGTERM, signalled)?;
    Ok(stop)
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
    fn default_ports() {
        assert_eq!(with_default_port("127.0.0.1:80", 9), "127.0.0.1:80");
        assert_eq!(with_default_port("127.0.0.1", 9), "127.0.0.1:9");
        assert_eq!(with_default_port("::1", 9), "[::1]:9");
        assert_eq!(with_default_port("[::1]", 9), "[::1]:9");
        assert_eq!(with_default_port("[::1]:21", 9), "[::1]:21");
        assert_eq!(with_default_port("localhost", 9), "localhost:9");
        assert_eq!(with_default_port("localhost:8", 9), "localhost:8");
    }

    #[test]
    fn private_roots() {
        use std::path::Path;
        let home = Some(Path::new("/home/alice"));
        assert_eq!(
            private_root(Path::new("/"), home),
            Some("the whole file system")
        );
        assert_eq!(
            private_root(Path::new("/"), None),
            Some("the whole file system")
        );
        assert_eq!(
            private_root(Path::new("/home/alice"), home),
            Some("your home folder")
        );
        assert!(private_root(Path::new("/home"), home).is_some());
        assert_eq!(private_root(Path::new("/home/alice/pub"), home), None);
        assert_eq!(private_root(Path::new("/home/alicia"), home), None);
        assert_eq!(private_root(Path::new("/srv/ftp"), None), None);
    }

    #[test]
    fn only_loopback_is_safe_for_the_shell() {
        let shell = shell::DEFAULT_PORT;
        assert_eq!(non_loopback("127.0.0.1:0", shell), None);
        assert_eq!(non_loopback("[::1]:0", shell), None);
        assert_eq!(non_loopback("localhost", shell), None);
        assert_eq!(non_loopback("unix:/tmp/x.sock", shell), None);
        assert_eq!(non_loopback("[::ffff:127.0.0.1]:1", shell), None);
        assert_eq!(
            non_loopback("0.0.0.0", shell),
            Some("0.0.0.0:9998".parse().unwrap())
        );
        assert_eq!(
            non_loopback("0.0.0.0", ftp::DEFAULT_PORT),
            Some("0.0.0.0:2121".parse().unwrap())
        );
        assert_eq!(
            non_loopback("[::]:22", shell),
            Some("[::]:22".parse().unwrap())
        );
        assert_eq!(
            non_loopback("10.1.2.3:80", shell),
            Some("10.1.2.3:80".parse().unwrap())
        );
    }
}
