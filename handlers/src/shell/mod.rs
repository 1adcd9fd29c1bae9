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
//! connection's working directory. With a token set, `auth TOKEN` must come
//! first; three failures close the connection.

#![forbid(unsafe_code)]

pub mod client;
pub mod protocol;
mod run;

use std::io::{self, BufRead};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use socketserver::{describe, LimitExceeded, RequestHandler, Stream};

pub use protocol::Status;
use protocol::{Header, HELLO, HELLO_AUTH, HELLO_OK, NO_OUTPUT};
pub use run::End;
use run::Limits;

/// The port `serve --handler shell` listens on by default (the tutorial's
/// 9999 belongs to the chat bot).
pub const DEFAULT_PORT: u16 = 9998;
/// The default time limit of a command.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// The default output limit of a command: 16 MiB.
pub const DEFAULT_MAX_OUTPUT: usize = 16 * 1024 * 1024;
/// The longest command line accepted in line and status modes, newline
/// included.
pub const MAX_LINE: usize = 64 * 1024;
/// The default time a client has to authenticate, when a token is set.
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Failed authentications after which the connection is closed.
pub const MAX_AUTH_FAILURES: u32 = 3;
/// How long the server goes on discarding input after its last reply on a
/// connection it closes, so that the close is orderly.
const LINGER: Duration = Duration::from_secs(2);

/// The remote shell. Cheap to clone: the server clones it per connection.
///
/// ```
/// use std::time::Duration;
/// use socketserver_handlers::Shell;
/// let shell = Shell::default()
///     .command_timeout(Some(Duration::from_secs(5)))
///     .max_output(1 << 20)
///     .token("correct horse battery staple");
/// assert!(shell.requires_token());
/// ```
#[derive(Clone)]
pub struct Shell {
    command_timeout: Option<Duration>,
    max_output: usize,
    token: Option<Arc<[u8]>>,
    login_timeout: Duration,
    dir: Option<Arc<Path>>,
}

impl Default for Shell {
    fn default() -> Self {
        Shell {
            command_timeout: Some(DEFAULT_COMMAND_TIMEOUT),
            max_output: DEFAULT_MAX_OUTPUT,
            token: None,
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

    /// Requires `auth TOKEN` before any command.
    pub fn token(mut self, token: impl AsRef<[u8]>) -> Self {
        self.token = Some(Arc::from(token.as_ref()));
        self
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
    body: Vec<u8>,
    status: Status,
    elapsed: Duration,
    /// Close the connection after this reply.
    close: bool,
}

impl Reply {
    fn done(body: impl Into<Vec<u8>>, status: Status) -> Reply {
        Reply {
            body: body.into(),
            status,
            elapsed: Duration::ZERO,
            close: false,
        }
    }

    /// The body of tutorial and line modes, which carry no status, in two
    /// parts (no copy of the output): the output, or the tutorial's text
    /// for no output; then a note, on a line of its own, when the server
    /// stopped the command.
    fn text_body(&self) -> (&[u8], String) {
        let note = match self.status {
            Status::Timeout(limit) => format!(
                "[timed out after {} s: the command was killed]\n",
                limit.as_secs_f64()
            ),
            Status::Cut(limit) => {
                format!("[output cut at {limit} bytes: the command was stopped]\n")
            }
            _ if self.body.is_empty() => return (NO_OUTPUT.as_bytes(), String::new()),
            _ => return (&self.body, String::new()),
        };
        if self.body.is_empty() || self.body.ends_with(b"\n") {
            (&self.body, note)
        } else {
            (&self.body, format!("\n{note}"))
        }
    }
}

/// One connection's state: where it is, whether it has authenticated.
struct Session<'a> {
    shell: &'a Shell,
    peer: String,
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

    fn auth(&mut self, given: &[u8]) -> Reply {
        let Some(token) = &self.shell.token else {
            return Reply::done("authentication not required\n", Status::Exit(0));
        };
        if self.authenticated {
            return Reply::done("already authenticated\n", Status::Exit(0));
        }
        if same_token(given, token) {
            self.authenticated = true;
            log::info!("{}: authenticated", self.peer);
            return Reply::done("authenticated\n", Status::Exit(0));
        }
        self.refuse("error: wrong token")
    }

    fn refuse(&mut self, why: &str) -> Reply {
        self.failures += 1;
        log::warn!(
            "{}: authentication failed ({} of {MAX_AUTH_FAILURES})",
            self.peer,
            self.failures
        );
        if self.failures >= MAX_AUTH_FAILURES {
            let body = format!("{why} ({MAX_AUTH_FAILURES} failures: closing the connection)\n");
            let mut reply = Reply::done(body, Status::Error);
            reply.close = true;
            reply
        } else {
            Reply::done(format!("{why}\n"), Status::Error)
        }
    }

    fn cd(&mut self, target: Cd<'_>) -> Reply {
        let home = || std::env::var_os("HOME").map(PathBuf::from);
        let (shown, wanted) = match target {
            Cd::Home => ("~".to_string(), home()),
            Cd::Previous => ("-".to_string(), self.previous.clone()),
            Cd::Path(path) => {
                let shown = String::from_utf8_lossy(path).into_owned();
                let wanted = match path.strip_prefix(b"~") {
                    Some(rest) if rest.is_empty() || rest.starts_with(b"/") => {
                        home().map(|h| h.join(bytes_path(rest.strip_prefix(b"/").unwrap_or(rest))))
                    }
                    _ => Some(self.cwd.join(bytes_path(path))),
                };
                (shown, wanted)
            }
        };
        let Some(wanted) = wanted else {
            let what = if matches!(target, Cd::Previous) {
                "OLDPWD"
            } else {
                "HOME"
            };
            return Reply::done(format!("cd: {what} not set\n"), Status::Exit(1));
        };
        let resolved = wanted.canonicalize().and_then(|dir| {
            if dir.is_dir() {
                Ok(dir)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    "not a directory",
                ))
            }
        });
        match resolved {
            Ok(dir) => {
                log::info!("{}: cd {}", self.peer, dir.display());
                self.previous = Some(std::mem::replace(&mut self.cwd, dir));
                let mut body = self.cwd.as_os_str().as_encoded_bytes().to_vec();
                body.push(b'\n');
                Reply::done(body, Status::Exit(0))
            }
            Err(e) => Reply::done(format!("cd: {shown}: {}\n", describe(&e)), Status::Exit(1)),
        }
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
                    body: outcome.output,
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
        stream.set_max_line_len(MAX_LINE);
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
        let mut session = Session {
            shell: self,
            peer: stream.peer_addr().to_string(),
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
                    match stream.read_line_into(&mut line) {
                        Ok(_) => {}
                        Err(e) if LimitExceeded::is(&e) => {
                            log::warn!("{}: {}; closing", session.peer, e);
                            let why = format!("error: line longer than {MAX_LINE} bytes\n");
                            send(stream, mode, &Reply::done(why, Status::Error))?;
                            return stream.lingering_close(LINGER);
                        }
                        Err(e) => return Err(e),
                    }
                    // A line cut short by the end of input is not run: the
                    // client has gone (see the protocol's notes on FIN).
                    match line.strip_suffix(b"\n") {
                        Some(request) => request.strip_suffix(b"\r").unwrap_or(request),
                        None => return Ok(()),
                    }
                }
            };
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

/// Sends one reply in the connection's framing. Returns false if the client
/// left instead of acknowledging (tutorial mode).
fn send(stream: &mut Stream, mode: Mode, reply: &Reply) -> io::Result<bool> {
    match mode {
        Mode::Tutorial => {
            let (body, note) = reply.text_body();
            let len = body.len() + note.len();
            stream.write_all(len.to_string().as_bytes())?;
            stream.flush()?;
            // The tutorial's fix for sticky packets: the output goes only
            // after the client acknowledged the length. Any bytes will do.
            if stream.read_chunk()?.is_empty() {
                return Ok(false);
            }
            stream.write_all(body)?;
            stream.write_all(note.as_bytes())?;
        }
        Mode::Lines => {
            let (body, note) = reply.text_body();
            let len = body.len() + note.len();
            stream.write_all(format!("{len}\n").as_bytes())?;
            stream.write_all(body)?;
            stream.write_all(note.as_bytes())?;
        }
        Mode::Status => {
            let header = Header::line(reply.body.len(), reply.status, reply.elapsed);
            stream.write_all(header.as_bytes())?;
            stream.write_all(&reply.body)?;
        }
    }
    stream.flush()?;
    Ok(true)
}

/// The argument of a `cd` the handler runs itself.
#[derive(Debug, PartialEq, Eq)]
enum Cd<'a> {
    /// `cd` or `cd ~`.
    Home,
    /// `cd -`.
    Previous,
    /// `cd DIR`, `cd 'DIR'`, `cd "DIR"`, `cd ~/DIR`.
    Path(&'a [u8]),
}

/// Recognizes a plain `cd`: the word `cd` and at most one argument, with no
/// shell syntax. A `cd` combined with other commands (`cd src && make`)
/// is not one: it runs in `sh` and its effect ends with that command.
fn parse_cd(command: &[u8]) -> Option<Cd<'_>> {
    let arg = strip_word(command, b"cd")?;
    if arg.is_empty() {
        return Some(Cd::Home);
    }
    for quote in [b'\'', b'"'] {
        if arg.len() >= 2 && arg[0] == quote && arg[arg.len() - 1] == quote {
            let inner = &arg[1..arg.len() - 1];
            if inner.contains(&quote)
                || (quote == b'"' && inner.iter().any(|b| b"$`\\".contains(b)))
            {
                return None;
            }
            return Some(Cd::Path(inner));
        }
    }
    let special = |b: &u8| b.is_ascii_whitespace() || b";&|<>()$`\\*?['\"{}".contains(b);
    if arg.iter().any(special) {
        return None;
    }
    Some(match arg {
        b"-" => Cd::Previous,
        b"~" => Cd::Home,
        _ => Cd::Path(arg),
    })
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

fn bytes_path(bytes: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(bytes))
}

/// Compares a token in time that depends only on the expected token's
/// length, never on where the first difference is, so that timing does not
/// tell an attacker how many leading bytes they guessed right.
///
/// ```
/// use socketserver_handlers::shell::same_token;
/// assert!(same_token(b"s3cret", b"s3cret"));
/// assert!(!same_token(b"s3creT", b"s3cret"));
/// assert!(!same_token(b"s3cre", b"s3cret"));
/// ```
pub fn same_token(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = u8::from(given.len() != expected.len());
    for (i, &e) in expected.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(!e);
        difference |= std::hint::black_box(g ^ e);
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_cds_are_recognized() {
        assert_eq!(parse_cd(b"cd"), Some(Cd::Home));
        assert_eq!(parse_cd(b"cd  ~"), Some(Cd::Home));
        assert_eq!(parse_cd(b"cd -"), Some(Cd::Previous));
        assert_eq!(parse_cd(b"cd /tmp"), Some(Cd::Path(b"/tmp")));
        assert_eq!(parse_cd(b"cd ~/x"), Some(Cd::Path(b"~/x")));
        assert_eq!(parse_cd(b"cd 'my dir'"), Some(Cd::Path(b"my dir")));
        assert_eq!(parse_cd(b"cd \"my dir\""), Some(Cd::Path(b"my dir")));
    }

    #[test]
    fn cds_with_shell_syntax_are_left_to_sh() {
        for command in [
            &b"cd src && make"[..],
            b"cd a b",
            b"cd $HOME",
            b"cd \"$HOME\"",
            b"cd x; ls",
            b"cd *",
            b"cdrom",
            b"echo cd",
            b"cd 'a'b'",
        ] {
            assert_eq!(parse_cd(command), None, "{}", command.escape_ascii());
        }
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token(b"abc", b"abc"));
        assert!(!same_token(b"abd", b"abc"));
        assert!(!same_token(b"ab", b"abc"));
        assert!(!same_token(b"abcd", b"abc"));
        assert!(!same_token(b"", b"abc"));
        assert!(same_token(b"", b""));
        // A missing byte never matches, whatever the expected byte is.
        assert!(!same_token(b"a", b"a\0"));
    }

    #[test]
    fn text_bodies_say_why_the_server_stopped() {
        let whole = |reply: &Reply| {
            let (body, note) = reply.text_body();
            [body, note.as_bytes()].concat()
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
