//! [`Shell`]: the tutorial's remote shell (使用socket实现简单的SSH工具),
//! with its sticky-packet fix, made safe to run.
//!
//! The wire protocol, byte for byte, is in `docs/protocols.md`. In short,
//! the first bytes a client sends choose one of three modes:
//!
//! * **tutorial mode** (the tutorial's client, which sends no newline):
//!   whatever one read returns is a command. The reply is the body's length
//!   in ASCII digits; then the server waits for the client's acknowledgement
//!   (any bytes) and sends the body, the command's output (the tutorial's
//!   `cmd has no output...` when there is none). That wait is the
//!   tutorial's fix for sticky packets (方式2): the length and the output
//!   can never arrive glued in one read;
//! * **line mode** (nc, scripts): each line is a command; the reply is the
//!   length, a `\n`, and the same body. The newline ends the length, so no
//!   acknowledgement is needed;
//! * **status mode** (`client shell`): the first line is `#shell/1`. Each
//!   line is a command; the reply is a header line, `LEN STATUS time=SECS`,
//!   then exactly the command's output. The status tells how it ended
//!   (`exit=0`, `signal=9`, `timeout=30`, `cut=16777216`, `error`).
//!
//! Each command runs as `sh -c COMMAND` in a process group of its own, with
//! a time limit and an output limit (see [`run`](self) for how it is
//! watched, killed and reaped). `cd DIR` is built in: it changes the
//! connection's working directory.
//!
//! It runs in every model, the event model included, where a conversation
//! shares its thread with the others of its event loop: a running
//! command's output pipe and the client are waited on through
//! [`socketserver::event::wait`], the throttle's delays are
//! [`socketserver::event::sleep`]s, and the kill and reaping go through
//! [`socketserver::event::blocking`]; so a command that runs for minutes
//! holds no other conversation.
//!
//! A shell on a socket is a door into the account that runs it, and
//! loopback is no wall: any local process, and any web page open in a
//! browser here (a `fetch` POST to `127.0.0.1:9998`), can reach it. So the
//! handler enforces its policy itself, whoever serves it
//! ([`Shell::check`]): a token of at least [`MIN_TOKEN_LEN`] bytes, or an
//! explicit [`Shell::allow_no_token`] that then serves loopback peers only;
//! not as root unless [`Shell::allow_root`]; and a connection whose first
//! bytes look like HTTP is closed with nothing run. `auth TOKEN` must come
//! first; three failures close the connection, and each failure waits
//! longer than the last ([`crate::throttle`]).

#![forbid(unsafe_code)]

mod auth;
mod cd;
mod cgroup;
pub mod client;
mod environment;
mod policy;
pub mod protocol;
mod run;
mod spool;
mod token;
pub mod token_file;

use std::io::{self, BufRead};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use socketserver::error::describe;
use socketserver::{LimitExceeded, RequestHandler, Stream};

use crate::throttle::Throttle;
use cd::parse_cd;
pub use cgroup::{containment, Containment};
pub use policy::{running_as_root, PolicyError};
pub use protocol::Status;
use protocol::{Header, HELLO, HELLO_AUTH, HELLO_OK, NO_OUTPUT};
pub use run::End;
use run::Limits;
use spool::Body;
pub use token::{generate as generate_token, same_token, MIN_TOKEN_LEN};

/// The port `serve --handler shell` listens on by default (the tutorial's
/// 9999 belongs to the chat bot).
pub const DEFAULT_PORT: u16 = 9998;
/// The default time limit of a command.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// The default output limit of a command: 16 MiB.
pub const DEFAULT_MAX_OUTPUT: usize = 16 * 1024 * 1024;
/// The default time a client has to authenticate, when a token is set.
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Failed authentications after which the connection is closed.
pub const MAX_AUTH_FAILURES: u32 = 3;
/// How long the server goes on discarding input after its last reply on a
/// connection it closes, so that the close is orderly.
const LINGER: Duration = Duration::from_secs(2);

/// The remote shell. Cheap to clone: the server clones it per connection,
/// and the clones share the [`Throttle`].
///
/// It serves only once its policy holds ([`Shell::check`]): a default
/// `Shell` has no token and refuses every connection, with the reason,
/// until it is given one or told [`Shell::allow_no_token`].
///
/// ```
/// use std::time::Duration;
/// use socketserver_handlers::Shell;
/// let shell = Shell::default()
///     .command_timeout(Some(Duration::from_secs(5)))
///     .max_output(1 << 20)
///     .token("correct horse battery staple")
///     .allow_root(true);
/// assert!(shell.requires_token());
/// assert_eq!(shell.check(), Ok(()));
/// ```
#[derive(Clone)]
pub struct Shell {
    command_timeout: Option<Duration>,
    max_output: usize,
    token: Option<Arc<[u8]>>,
    allow_no_token: bool,
    allow_root: bool,
    throttle: Throttle,
    login_timeout: Duration,
    dir: Option<Arc<Path>>,
}

impl Default for Shell {
    fn default() -> Self {
        Shell {
            command_timeout: Some(DEFAULT_COMMAND_TIMEOUT),
            max_output: DEFAULT_MAX_OUTPUT,
            token: None,
            allow_no_token: false,
            allow_root: false,
            throttle: Throttle::default(),
            login_timeout: DEFAULT_LOGIN_TIMEOUT,
            dir: None,
        }
    }
}

impl std::fmt::Debug for Shell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shell")
            .field("command_timeout", &self.command_timeout)
            .field("max_output", &self.max_output)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("allow_no_token", &self.allow_no_token)
            .field("allow_root", &self.allow_root)
            .field("throttle", self.throttle.limits())
            .field("login_timeout", &self.login_timeout)
            .field("dir", &self.dir)
            .finish()
    }
}

impl Shell {
    /// Sets the time limit of each command (`None`: no limit). At the
    /// limit the command's whole process group is killed.
    pub fn command_timeout(mut self, limit: Option<Duration>) -> Self {
        self.command_timeout = limit;
        self
    }

    /// Sets the output limit of each command, in bytes. Past it the rest is
    /// discarded and the command's process group killed.
    pub fn max_output(mut self, bytes: usize) -> Self {
        self.max_output = bytes;
        self
    }

    /// Requires `auth TOKEN` before any command. The token must be at
    /// least [`MIN_TOKEN_LEN`] bytes long (see [`Shell::check`]);
    /// [`generate_token`] makes one.
    pub fn token(mut self, token: impl AsRef<[u8]>) -> Self {
        self.token = Some(Arc::from(token.as_ref()));
        self
    }

    /// Serves with no token (the tutorial's client cannot send one), to
    /// loopback and Unix-socket peers only: others are refused. Any local
    /// process can then run commands as this user; use it on a machine
    /// you alone use, for the tutorial.
    pub fn allow_no_token(mut self, allow: bool) -> Self {
        self.allow_no_token = allow;
        self
    }

    /// Runs commands even when the process is root (effective uid 0);
    /// refused by default.
    pub fn allow_root(mut self, allow: bool) -> Self {
        self.allow_root = allow;
        self
    }

    /// Sets the throttle that slows token guessing (default:
    /// [`Throttle::default`], 0.5 s after the first failure, doubling to
    /// 8 s). Pass a clone to share one between handlers.
    pub fn throttle(mut self, throttle: Throttle) -> Self {
        self.throttle = throttle;
        self
    }

    /// Checks the policy: a token of at least [`MIN_TOKEN_LEN`] bytes or
    /// [`Shell::allow_no_token`]; not root, or [`Shell::allow_root`]. A
    /// shell that fails it answers every connection with the reason and
    /// closes it, running nothing; call this before serving to fail at
    /// start instead.
    ///
    /// # Errors
    /// The first rule broken.
    pub fn check(&self) -> Result<(), PolicyError> {
        match &self.token {
            None if !self.allow_no_token => return Err(PolicyError::NoToken),
            Some(token) if token.len() < MIN_TOKEN_LEN => {
                return Err(PolicyError::ShortToken(token.len()))
            }
            _ => {}
        }
        if !self.allow_root && policy::running_as_root() {
            return Err(PolicyError::Root);
        }
        Ok(())
    }

    /// With a token set, how long a client has from connecting to
    /// authenticating (default [`DEFAULT_LOGIN_TIMEOUT`]): a total, however
    /// the client paces its bytes. Past it the client gets one error line
    /// and the connection closes.
    pub fn login_timeout(mut self, timeout: Duration) -> Self {
        self.login_timeout = timeout;
        self
    }

    /// Sets the working directory each connection starts in (default: the
    /// server's current directory when the connection starts).
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(Arc::from(dir.into()));
        self
    }

    /// Whether clients must send `auth TOKEN` first.
    pub fn requires_token(&self) -> bool {
        self.token.is_some()
    }

    fn limits(&self) -> Limits {
        Limits {
            timeout: self.command_timeout,
            max_output: self.max_output,
        }
    }
}

/// How one connection frames its requests and replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Tutorial,
    Lines,
    Status,
}

/// One reply, before framing.
struct Reply {
    body: Body,
    status: Status,
    elapsed: Duration,
    /// Close the connection after this reply.
    close: bool,
}

impl Reply {
    fn done(body: impl Into<Body>, status: Status) -> Reply {
        Reply {
            body: body.into(),
            status,
            elapsed: Duration::ZERO,
            close: false,
        }
    }

    /// The body of tutorial and line modes, which carry no status, in two
    /// parts (no copy of the output): the output, or `None` for the
    /// tutorial's text for no output; then a note, on a line of its own,
    /// when the server stopped the command.
    fn text_body(&self) -> (Option<&Body>, String) {
        let note = match self.status {
            Status::Timeout(limit) => format!(
                "[timed out after {} s: the command was killed]\n",
                limit.as_secs_f64()
            ),
            Status::Cut(limit) => {
                format!("[output cut at {limit} bytes: the command was stopped]\n")
            }
            _ if self.body.is_empty() => return (None, String::new()),
            _ => return (Some(&self.body), String::new()),
        };
        if self.body.is_empty() || self.body.last() == Some(b'\n') {
            (Some(&self.body), note)
        } else {
            (Some(&self.body), format!("\n{note}"))
        }
    }
}

/// One connection's state: where it is, whether it has authenticated.
struct Session<'a> {
    shell: &'a Shell,
    peer: String,
    /// For the throttle; `None` on a Unix socket.
    peer_ip: Option<IpAddr>,
    cwd: PathBuf,
    previous: Option<PathBuf>,
    authenticated: bool,
    failures: u32,
}

impl Session<'_> {
    /// Answers one request: the authentication gate, then a built-in or a
    /// command. `None` when the client left during the command.
    fn answer(&mut self, request: &[u8], client: &Stream) -> Option<Reply> {
        let text = request.trim_ascii();
        if let Some(given) = strip_word(text, b"auth") {
            return Some(self.auth(given));
        }
        if self.shell.token.is_some() && !self.authenticated {
            return Some(self.refuse("error: authentication required: send \"auth TOKEN\" first"));
        }
        if let Some(target) = parse_cd(text) {
            return Some(self.cd(target));
        }
        if text.is_empty() {
            return Some(Reply::done(Vec::new(), Status::Exit(0)));
        }
        self.execute(request, client)
    }

    fn execute(&mut self, command: &[u8], client: &Stream) -> Option<Reply> {
        let shown = String::from_utf8_lossy(command);
        match run::run(command, &self.cwd, self.shell.limits(), client.as_fd()) {
            Ok(outcome) => {
                let status = match outcome.end {
                    End::Exited(code) => Status::Exit(code),
                    End::Signaled(signal) => Status::Signal(signal),
                    End::TimedOut(limit) => Status::Timeout(limit),
                    End::Cut(limit) => Status::Cut(limit as u64),
                    End::ClientGone => {
                        log::info!(
                            "{}: ran {shown:?} in {}: client left, killed after {:.3} s, {} bytes of output",
                            self.peer,
                            self.cwd.display(),
                            outcome.elapsed.as_secs_f64(),
                            outcome.output.len()
                        );
                        return None;
                    }
                };
                log::info!(
                    "{}: ran {shown:?} in {}: {status}, {:.3} s, {} bytes of output",
                    self.peer,
                    self.cwd.display(),
                    outcome.elapsed.as_secs_f64(),
                    outcome.output.len()
                );
                Some(Reply {
                    body: Body::Spooled(outcome.output),
                    status,
                    elapsed: outcome.elapsed,
                    close: false,
                })
            }
            Err(e) => {
                log::warn!(
                    "{}: cannot run {shown:?} in {}: {}",
                    self.peer,
                    self.cwd.display(),
                    describe(&e)
                );
                let body = format!(
                    "error: cannot run the command in {}: {}\n",
                    self.cwd.display(),
                    describe(&e)
                );
                Some(Reply::done(body, Status::Error))
            }
        }
    }
}

impl RequestHandler for Shell {
    /// One line saying why, before any framing is chosen.
    fn refuse(&mut self, stream: &mut Stream, why: socketserver::Refusal) -> io::Result<()> {
        stream.write_all(format!("error: {why}\n").as_bytes())
    }

    fn setup(&mut self, stream: &mut Stream) -> io::Result<()> {
        // The protocol's limit, whatever the server's setting.
        stream.set_max_line_len(socketserver::defaults::MAX_LINE);
        Ok(())
    }

    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        if self.token.is_none() {
            return self.converse(stream);
        }
        stream.set_deadline(Some(std::time::Instant::now() + self.login_timeout));
        let result = self.converse(stream);
        if let (Err(e), Some(_)) = (&result, stream.deadline()) {
            if e.kind() == io::ErrorKind::TimedOut {
                // The failure itself is logged with the peer by the server.
                log::debug!("{}: not authenticated in time", stream.peer_addr());
                let why = format!(
                    "error: authentication timed out: send \"auth TOKEN\" within {} s\n",
                    self.login_timeout.as_secs_f64()
                );
                // Said before the error ends the connection, which sends
                // nothing more.
                stream.write_all(why.as_bytes())?;
                stream.flush()?;
            }
        }
        result
    }
}

impl Shell {
    /// The conversation, after the login deadline is set.
    fn converse(&mut self, stream: &mut Stream) -> io::Result<()> {
        let cwd = match &self.dir {
            Some(dir) => dir.to_path_buf(),
            None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        };
        if let Err(why) = self.check() {
            log::error!("{}: refused: {why}", stream.peer_addr());
            return refuse_connection(stream, &format!("error: {why}\n"));
        }
        if self.token.is_none() && !policy::is_local(stream.peer_addr()) {
            log::warn!(
                "{}: refused: no token is set, so only local peers are served",
                stream.peer_addr()
            );
            return refuse_connection(
                stream,
                "error: this shell serves local clients only (it has no token)\n",
            );
        }
        let mut session = Session {
            shell: self,
            peer: stream.peer_addr().to_string(),
            peer_ip: stream.peer_addr().as_inet().map(|a| a.ip().to_canonical()),
            cwd,
            previous: None,
            authenticated: false,
            failures: 0,
        };
        // The first bytes choose the mode; they stay in the stream's buffer.
        let first = stream.fill_buf()?;
        if first.is_empty() {
            return Ok(());
        }
        if policy::looks_like_http(first) {
            return refuse_http(stream, &session.peer);
        }
        let mode = if !first.contains(&b'\n') {
            Mode::Tutorial
        } else if first.starts_with(format!("{HELLO}\n").as_bytes())
            || first.starts_with(format!("{HELLO}\r\n").as_bytes())
        {
            let hello_len = first.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
            stream.consume(hello_len);
            let hello = if self.token.is_some() {
                HELLO_AUTH
            } else {
                HELLO_OK
            };
            stream.write_all(hello.as_bytes())?;
            stream.write_all(b"\n")?;
            Mode::Status
        } else {
            Mode::Lines
        };
        log::debug!("{}: {mode:?} mode", session.peer);
        let mut line = Vec::with_capacity(256);
        loop {
            let request: &[u8] = match mode {
                Mode::Tutorial => {
                    let chunk = stream.read_chunk()?;
                    if chunk.is_empty() {
                        return Ok(());
                    }
                    line.clear();
                    line.extend_from_slice(chunk);
                    &line
                }
                Mode::Lines | Mode::Status => {
                    line.clear();
                    if let Err(e) = stream.read_line_into(&mut line) {
                        let Some(exceeded) = LimitExceeded::from_error(&e) else {
                            return Err(e);
                        };
                        let why = format!("error: line longer than {} bytes\n", exceeded.limit);
                        let reply = Reply::done(why, Status::Error);
                        return stream.close_over_limit(exceeded, |stream| {
                            send(stream, mode, &reply).map(drop)
                        });
                    }
                    // A line cut short by the end of input is not run: the
                    // client has gone (see the protocol's notes on FIN).
                    match line.strip_suffix(b"\n") {
                        Some(request) => request.strip_suffix(b"\r").unwrap_or(request),
                        None => return Ok(()),
                    }
                }
            };
            if policy::looks_like_http(request) {
                return refuse_http(stream, &session.peer);
            }
            let Some(reply) = session.answer(request, stream) else {
                return Ok(()); // the client left during the command
            };
            if session.authenticated {
                stream.set_deadline(None);
            }
            if !send(stream, mode, &reply)? {
                return Ok(());
            }
            if reply.close {
                return stream.lingering_close(LINGER);
            }
        }
    }
}

/// Closes a connection whose bytes look like an HTTP request (a web page
/// can make a browser send one to any local port): nothing is run, the
/// client gets one line, and the server reads what is left for a moment
/// so that the close is orderly.
fn refuse_http(stream: &mut Stream, peer: &str) -> io::Result<()> {
    log::warn!("{peer}: an HTTP request on the shell's port: closed, nothing run");
    refuse_connection(
        stream,
        "error: this is a remote shell, not an HTTP server: nothing was run\n",
    )
}

/// Sends `why` and closes the connection in order.
fn refuse_connection(stream: &mut Stream, why: &str) -> io::Result<()> {
    stream.write_all(why.as_bytes())?;
    stream.flush()?;
    stream.lingering_close(LINGER)
}

/// Sends one reply in the connection's framing. Returns false if the client
/// left instead of acknowledging (tutorial mode).
fn send(stream: &mut Stream, mode: Mode, reply: &Reply) -> io::Result<bool> {
    match mode {
        Mode::Tutorial => {
            let (body, note) = reply.text_body();
            stream.write_all(text_len(body, &note).to_string().as_bytes())?;
            stream.flush()?;
            // The tutorial's fix for sticky packets: the output goes only
            // after the client acknowledged the length. Any bytes will do.
            if stream.read_chunk()?.is_empty() {
                return Ok(false);
            }
            write_text(stream, body, &note)?;
        }
        Mode::Lines => {
            let (body, note) = reply.text_body();
            stream.write_all(format!("{}\n", text_len(body, &note)).as_bytes())?;
            write_text(stream, body, &note)?;
        }
        Mode::Status => {
            let header = Header::line(reply.body.len(), reply.status, reply.elapsed);
            stream.write_all(header.as_bytes())?;
            reply.body.write_to(stream)?;
        }
    }
    stream.flush()?;
    Ok(true)
}

/// The length of a text body (see [`Reply::text_body`]).
fn text_len(body: Option<&Body>, note: &str) -> u64 {
    body.map_or(NO_OUTPUT.len() as u64, Body::len) + note.len() as u64
}

/// Writes a text body (see [`Reply::text_body`]).
fn write_text(stream: &mut Stream, body: Option<&Body>, note: &str) -> io::Result<()> {
    match body {
        Some(body) => body.write_to(stream)?,
        None => stream.write_all(NO_OUTPUT.as_bytes())?,
    }
    stream.write_all(note.as_bytes())
}

/// `word` alone or followed by whitespace: the rest, trimmed.
fn strip_word<'a>(text: &'a [u8], word: &[u8]) -> Option<&'a [u8]> {
    let rest = text.strip_prefix(word)?;
    if rest.is_empty() {
        return Some(rest);
    }
    if !rest[0].is_ascii_whitespace() {
        return None;
    }
    Some(rest.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_bodies_say_why_the_server_stopped() {
        let whole = |reply: &Reply| {
            let (body, note) = reply.text_body();
            let mut bytes = Vec::new();
            match body {
                Some(body) => body.write_to(&mut bytes).unwrap(),
                None => bytes.extend_from_slice(NO_OUTPUT.as_bytes()),
            }
            bytes.extend_from_slice(note.as_bytes());
            bytes
        };
        let reply = Reply::done("part", Status::Timeout(Duration::from_secs(1)));
        assert_eq!(
            whole(&reply),
            b"part\n[timed out after 1 s: the command was killed]\n"
        );
        let reply = Reply::done("", Status::Exit(0));
        assert_eq!(whole(&reply), NO_OUTPUT.as_bytes());
        let reply = Reply::done("x\n", Status::Cut(2));
        assert_eq!(
            whole(&reply),
            b"x\n[output cut at 2 bytes: the command was stopped]\n"
        );
        let reply = Reply::done("", Status::Timeout(Duration::from_millis(500)));
        assert_eq!(
            whole(&reply),
            b"[timed out after 0.5 s: the command was killed]\n"
        );
    }
}
