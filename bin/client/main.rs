//! `client`: talks to the handlers that `serve` runs.
//!
//! ```text
//! client echo                     # the chat, against 127.0.0.1:9999
//! printf 'hi\nq\n' | client echo  # piped: no prompt, one reply per line
//! client shell                    # a remote shell, against 127.0.0.1:9998
//! client ftp --user alice:secret put big.bin   # FTP, against 127.0.0.1:2121
//! ```

// The options' doc comments are clap's --help text, written for a terminal:
// `[IPV6]:PORT` and `<hex>` there are words, not rustdoc links or HTML.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::io::{self, BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use socketserver::error::describe;
use socketserver::Stream;
use socketserver_handlers::echo::incomplete_tail;
use socketserver_handlers::shell::{self, client::TOKEN_ENV, token_file};

mod ftp;
mod tls;

#[derive(Parser, Debug)]
#[command(
    name = "client",
    version,
    about = "Talk to the servers that `serve` runs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Give up when the server sends nothing for this long
    #[arg(long, global = true, value_name = "SECS", default_value_t = 30.0)]
    timeout: f64,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Chat with the echo handler (or the tutorial's Python chat server):
    /// prints the greeting, sends each line you type, prints each answer;
    /// "q" or end of input quits
    Echo {
        /// HOST:PORT, [IPV6]:PORT or unix:PATH
        #[arg(default_value = "127.0.0.1:9999")]
        addr: String,

        /// Talk to `serve --handler echo --udp`: each line is one datagram,
        /// each answer one datagram
        #[arg(long, conflicts_with = "tls")]
        udp: bool,

        #[command(flatten)]
        tls: tls::TlsArgs,
    },
    /// A remote shell on the shell handler: sends each line you type as a
    /// command, prints its output, then its exit status on standard error;
    /// "exit" or end of input quits. A reply is waited for as long as the
    /// server lets the command run (--timeout covers the rest). Also speaks
    /// to the tutorial's server
    Shell {
        /// HOST:PORT, [IPV6]:PORT or unix:PATH
        #[arg(default_value = "127.0.0.1:9998")]
        addr: String,

        /// The server's token, sent first as "auth TOKEN" [default: the
        /// SOCKETSERVER_SHELL_TOKEN environment variable, else, for a
        /// server on this machine that asks for one, the token file that
        /// `serve` wrote for its port]
        #[arg(long, value_name = "TOKEN")]
        token: Option<String>,

        /// Refuse a reply announced longer than this (none of it is read):
        /// the server's default limit; raise it for a server started with
        /// a larger --max-output
        #[arg(long, value_name = "BYTES", default_value_t = shell::DEFAULT_MAX_OUTPUT as u64)]
        max_output: u64,

        #[command(flatten)]
        tls: tls::TlsArgs,
    },
    /// An FTP client for the ftp handler (or any FTP server): ls, get,
    /// put, mkdir, rm, with resume and a progress bar; every transfer's
    /// MD5 is checked against the server's ("md5 ok <hex>")
    Ftp(ftp::FtpArgs),
}

/// A one-line error for standard error; the exit code is 1.
struct Failure(String);

/// What the user types: lines from a terminal, each after a prompt on
/// standard error, or from a pipe, without one.
struct Input {
    lines: io::StdinLock<'static>,
    prompt: Option<String>,
    line: String,
}

impl Input {
    fn new(prompt: impl Into<String>) -> Input {
        let stdin = io::stdin();
        let prompt = stdin.is_terminal().then(|| prompt.into());
        Input {
            lines: stdin.lock(),
            prompt,
            line: String::new(),
        }
    }

    /// The next line that is not blank, without its line end; `None` at
    /// end of input.
    fn next_line(&mut self) -> Result<Option<&str>, Failure> {
        loop {
            if let Some(prompt) = &self.prompt {
                eprint!("{prompt}");
            }
            self.line.clear();
            match self.lines.read_line(&mut self.line) {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(e) => {
                    return Err(Failure(format!(
                        "cannot read standard input: {}",
                        describe(&e)
                    )))
                }
            }
            if !self.line.trim().is_empty() {
                return Ok(Some(self.line.trim_end_matches(['\n', '\r'])));
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let timeout = Duration::try_from_secs_f64(cli.timeout)
        .ok()
        .filter(|t| !t.is_zero());
    let result = match &cli.command {
        Command::Echo {
            addr,
            udp: false,
            tls,
        } => echo(addr, tls, timeout),
        Command::Echo {
            addr, udp: true, ..
        } => echo_datagrams(addr, timeout),
        Command::Shell {
            addr,
            token,
            max_output,
            tls,
        } => remote_shell(addr, token.clone(), *max_output, tls, timeout),
        Command::Ftp(args) => ftp::run(args, timeout),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("client: {message}");
            ExitCode::from(1)
        }
    }
}

/// Connects, with the timeout, then runs the TLS handshake if asked.
fn connect(addr: &str, tls: &tls::TlsArgs, timeout: Option<Duration>) -> Result<Stream, Failure> {
    let stream = match addr.strip_prefix("unix:") {
        Some(path) => Stream::connect_unix(path),
        None => Stream::connect(addr),
    };
    let mut stream =
        stream.map_err(|e| Failure(format!("cannot connect to {addr}: {}", describe(&e))))?;
    stream
        .set_read_timeout(timeout)
        .map_err(|e| Failure(format!("cannot set a timeout: {}", describe(&e))))?;
    tls::start(&mut stream, addr, tls)?;
    Ok(stream)
}

/// The tutorial's chat client, done right. Each message goes out without a
/// newline, as the tutorial's client sends it, so the same client talks to
/// the tutorial's Python server too; each answer is read whole before the
/// next message is sent, so answers never mix.
fn echo(addr: &str, tls: &tls::TlsArgs, timeout: Option<Duration>) -> Result<(), Failure> {
    let mut stream = connect(addr, tls, timeout)?;
    let lost = |e: io::Error| Failure(format!("connection to {addr} lost: {}", describe(&e)));
    let greeting = stream.read_chunk().map_err(lost)?.to_vec();
    if greeting.is_empty() {
        return Err(Failure(format!(
            "{addr} closed the connection without a greeting"
        )));
    }
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{}", String::from_utf8_lossy(&greeting));
    let _ = out.flush();

    let mut input = Input::new("> ");
    while let Some(message) = input.next_line()? {
        stream.write_all(message.as_bytes()).map_err(lost)?;
        stream.flush().map_err(lost)?;
        if message == "q" {
            return Ok(());
        }
        let answer = read_answer(&mut stream, message.len()).map_err(lost)?;
        if answer.is_empty() {
            return Err(Failure(format!("{addr} closed the connection")));
        }
        let _ = writeln!(out, "{}", String::from_utf8_lossy(&answer));
        let _ = out.flush();
    }
    Ok(())
}

/// A datagram socket to talk from: UDP on the server's address family, or
/// a Unix datagram socket bound to a path of its own (the server needs one
/// to reply to), removed when done.
enum DatagramClient {
    Udp(std::net::UdpSocket),
    Unix(std::os::unix::net::UnixDatagram, std::path::PathBuf),
}

impl DatagramClient {
    fn connect(addr: &str, timeout: Option<Duration>) -> io::Result<DatagramClient> {
        let client = match addr.strip_prefix("unix:") {
            Some(path) => {
                let own =
                    std::env::temp_dir().join(format!("client-echo-{}.sock", std::process::id()));
                let _ = std::fs::remove_file(&own);
                let socket = std::os::unix::net::UnixDatagram::bind(&own)?;
                let client = DatagramClient::Unix(socket, own);
                if let DatagramClient::Unix(socket, _) = &client {
                    socket.connect(path)?;
                    socket.set_read_timeout(timeout)?;
                }
                client
            }
            None => {
                use std::net::ToSocketAddrs;
                let server = addr
                    .to_socket_addrs()?
                    .next()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address"))?;
                let any: std::net::SocketAddr = if server.is_ipv6() {
                    "[::]:0".parse().expect("an address")
                } else {
                    "0.0.0.0:0".parse().expect("an address")
                };
                let socket = std::net::UdpSocket::bind(any)?;
                socket.connect(server)?;
                socket.set_read_timeout(timeout)?;
                DatagramClient::Udp(socket)
            }
        };
        Ok(client)
    }

    fn send(&self, message: &[u8]) -> io::Result<usize> {
        match self {
            DatagramClient::Udp(s) => s.send(message),
            DatagramClient::Unix(s, _) => s.send(message),
        }
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            DatagramClient::Udp(s) => s.recv(buf),
            DatagramClient::Unix(s, _) => s.recv(buf),
        }
    }
}

impl Drop for DatagramClient {
    fn drop(&mut self) {
        if let DatagramClient::Unix(_, own) = self {
            let _ = std::fs::remove_file(own);
        }
    }
}

/// `client echo --udp`: each line goes out as one datagram, and the answer
/// (one datagram) is printed. No greeting: datagrams have no conversation.
/// "q" or end of input quits.
fn echo_datagrams(addr: &str, timeout: Option<Duration>) -> Result<(), Failure> {
    let client = DatagramClient::connect(addr, timeout)
        .map_err(|e| Failure(format!("cannot reach {addr}: {}", describe(&e))))?;
    let mut out = io::stdout().lock();
    let mut answer = vec![0u8; 65_536];
    let mut input = Input::new("> ");
    while let Some(message) = input.next_line()? {
        if message == "q" {
            return Ok(());
        }
        client
            .send(message.as_bytes())
            .map_err(|e| Failure(format!("cannot send to {addr}: {}", describe(&e))))?;
        let n = client.recv(&mut answer).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                Failure(format!("no answer from {addr}"))
            }
            _ => Failure(format!("no answer from {addr}: {}", describe(&e))),
        })?;
        let _ = writeln!(out, "{}", String::from_utf8_lossy(&answer[..n]));
        let _ = out.flush();
    }
    Ok(())
}

/// Reads one answer: at least as many bytes as the message had (the answer
/// is the message and a suffix), never stopping inside a UTF-8 character.
fn read_answer(stream: &mut Stream, at_least: usize) -> io::Result<Vec<u8>> {
    let mut answer = Vec::new();
    loop {
        let chunk = stream.read_chunk()?;
        if chunk.is_empty() {
            return Ok(answer);
        }
        answer.extend_from_slice(chunk);
        if answer.len() >= at_least && incomplete_tail(&answer) == 0 {
            return Ok(answer);
        }
    }
}

/// The remote shell: the command's output goes to standard output as it
/// came (bytes, not text), its status to standard error, so that
/// `client shell > file` keeps the output exact.
fn remote_shell(
    addr: &str,
    token: Option<String>,
    max_output: u64,
    tls: &tls::TlsArgs,
    timeout: Option<Duration>,
) -> Result<(), Failure> {
    use shell::client::{Client, ReplyTooLong};
    use shell::Status;

    let lost = |e: io::Error| match e.get_ref().and_then(|e| e.downcast_ref::<ReplyTooLong>()) {
        Some(too_long) => Failure(format!(
            "{addr} announced a reply of {} bytes, over the limit of {} bytes (--max-output)",
            too_long.announced, too_long.limit
        )),
        None => Failure(format!("connection to {addr} lost: {}", describe(&e))),
    };
    let mut client =
        Client::start_with_limit(connect(addr, tls, timeout)?, max_output).map_err(lost)?;
    if client.is_tutorial() {
        eprintln!("client: {addr} speaks the tutorial's protocol: no exit statuses");
    }
    let given = token.or_else(|| std::env::var(TOKEN_ENV).ok());
    // The token file is read only when the server asks for a token, so a
    // local token never goes to a server that did not ask.
    let found = match &given {
        None if client.auth_required() => token_file::find(addr),
        _ => None,
    };
    let token = match (given, &found) {
        (Some(token), _) => Some(token),
        (None, Some(path)) => Some(token_file::read(path).map_err(|e| {
            Failure(format!(
                "cannot read the token file {}: {}",
                path.display(),
                describe(&e)
            ))
        })?),
        (None, None) => None,
    };
    match token {
        Some(token) => {
            let reply = client.auth(&token).map_err(lost)?;
            if matches!(reply.status, Some(Status::Error)) {
                let why = String::from_utf8_lossy(&reply.output);
                let from = found.map_or(String::new(), |path| {
                    format!(" (read from {})", path.display())
                });
                return Err(Failure(format!(
                    "{addr} refused the token{from}: {}",
                    why.trim_end()
                )));
            }
        }
        None if client.auth_required() => {
            return Err(Failure(format!(
                "{addr} requires a token: give --token TOKEN or set {TOKEN_ENV} (no token \
                 file for it was found: `serve` writes one when it generates the token)"
            )))
        }
        None => {}
    }

    let stdout_is_terminal = io::stdout().is_terminal();
    let mut input = Input::new(format!("{addr}$ "));
    while let Some(command) = input.next_line()? {
        if command.trim() == "exit" {
            return Ok(());
        }
        let reply = client.run(command).map_err(lost)?;
        if reply.status == Some(Status::Error) {
            // Not the command's output: the server's reason for not running it.
            eprint!("{}", String::from_utf8_lossy(&reply.output));
            continue;
        }
        let mut out = io::stdout().lock();
        let _ = out.write_all(&reply.output);
        if stdout_is_terminal && !reply.output.is_empty() && !reply.output.ends_with(b"\n") {
            let _ = out.write_all(b"\n");
        }
        let _ = out.flush();
        if let Some(status) = reply.status {
            eprintln!("[{}]", describe_status(status, reply.time));
        }
    }
    Ok(())
}

/// `exit 0, 0.002 s`, `timed out after 30 s: the command was killed`...
fn describe_status(status: socketserver_handlers::shell::Status, time: Option<Duration>) -> String {
    use socketserver_handlers::shell::Status;
    let took = time.map_or(String::new(), |t| format!(", {:.3} s", t.as_secs_f64()));
    match status {
        Status::Exit(code) => format!("exit {code}{took}"),
        Status::Signal(signal) => format!("killed by signal {signal}{took}"),
        Status::Timeout(limit) => format!(
            "timed out after {} s: the command was killed",
            limit.as_secs_f64()
        ),
        Status::Cut(limit) => format!("output cut at {limit} bytes: the command was stopped"),
        Status::Error => "error".to_string(),
    }
}
