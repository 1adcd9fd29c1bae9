//! The client side of the Shell protocol, for `client shell` and for
//! programs: status mode against this server, the tutorial's protocol
//! (length, acknowledgement, output) against the tutorial's own server.
//!
//! ```no_run
//! use socketserver::Stream;
//! use socketserver_handlers::shell::{client::Client, Status};
//!
//! let mut shell = Client::start(Stream::connect("127.0.0.1:9998")?)?;
//! let reply = shell.run("uname -s")?;
//! assert_eq!(reply.status, Some(Status::Exit(0)));
//! print!("{}", String::from_utf8_lossy(&reply.output));
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::io::{self, BufRead, Read};
use std::time::Duration;

use socketserver::Stream;

use super::protocol::{Header, Status, HELLO, HELLO_OK};
use super::DEFAULT_MAX_OUTPUT;

/// The environment variable `client shell` reads the token from when
/// `--token` is not given.
pub const TOKEN_ENV: &str = "SOCKETSERVER_SHELL_TOKEN";
/// The acknowledgement sent in the tutorial's protocol (any bytes do).
const ACK: &[u8] = "准备好接受了".as_bytes();
/// The longest header line accepted.
const MAX_HEADER: usize = 1024;

/// The error inside the `io::Error` (kind `InvalidData`) that
/// [`Client::run`] returns when the server announces a reply longer than
/// the client's limit: the client reads none of it, so a server cannot make
/// it hold more than the limit (a malicious one could announce 2^63 bytes).
///
/// ```
/// use socketserver_handlers::shell::client::ReplyTooLong;
/// let e = std::io::Error::new(std::io::ErrorKind::InvalidData, ReplyTooLong { announced: 11, limit: 10 });
/// let inner = e.get_ref().and_then(|e| e.downcast_ref::<ReplyTooLong>());
/// assert_eq!(inner, Some(&ReplyTooLong { announced: 11, limit: 10 }));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyTooLong {
    /// The length the server announced.
    pub announced: u64,
    /// The client's limit.
    pub limit: u64,
}

impl fmt::Display for ReplyTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the server announced a reply of {} bytes, over the limit of {} bytes",
            self.announced, self.limit
        )
    }
}

impl std::error::Error for ReplyTooLong {}

/// One command's reply.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// The command's output, exactly (in the tutorial's protocol, the body
    /// as the server sent it).
    pub output: Vec<u8>,
    /// How it ended; `None` from a server that speaks only the tutorial's
    /// protocol.
    pub status: Option<Status>,
    /// How long it took, if the server said.
    pub time: Option<Duration>,
}

/// A conversation with a Shell server.
#[derive(Debug)]
pub struct Client {
    stream: Stream,
    tutorial: bool,
    auth_required: bool,
    reply_timeout: Option<Duration>,
    max_output: u64,
}

impl Client {
    /// Starts the conversation: sends the `#shell/1` hello and reads the
    /// answer. A server that answers with a length instead (the tutorial's
    /// server, which ran the hello as a shell comment) is spoken to in the
    /// tutorial's protocol from then on.
    ///
    /// Replies longer than the server's default output limit (16 MiB) are
    /// refused; [`Client::start_with_limit`] sets another limit.
    ///
    /// # Errors
    /// Fails if the server closes the connection, answers something else,
    /// or as the stream does.
    pub fn start(stream: Stream) -> io::Result<Client> {
        Client::start_with_limit(stream, DEFAULT_MAX_OUTPUT as u64)
    }

    /// As [`Client::start`], refusing any reply whose body is announced
    /// longer than `max_output` bytes (a [`ReplyTooLong`] error): the body
    /// is never read, and never allocated.
    ///
    /// # Errors
    /// As [`Client::start`].
    pub fn start_with_limit(mut stream: Stream, max_output: u64) -> io::Result<Client> {
        stream.write_all(HELLO.as_bytes())?;
        stream.write_all(b"\n")?;
        stream.flush()?;
        let first = stream.fill_buf()?;
        if first.is_empty() {
            return Err(closed());
        }
        if first[0].is_ascii_digit() {
            let mut client = Client {
                stream,
                tutorial: true,
                auth_required: false,
                reply_timeout: None,
                max_output,
            };
            client.tutorial_reply()?;
            return Ok(client);
        }
        let line = read_header_line(&mut stream)?;
        if line != HELLO_OK && !line.starts_with(&format!("{HELLO_OK} ")) {
            return Err(invalid(format!("unexpected greeting {line:?}")));
        }
        let auth_required = line.split(' ').any(|field| field == "auth=required");
        Ok(Client {
            stream,
            tutorial: false,
            auth_required,
            reply_timeout: None,
            max_output,
        })
    }

    /// Sets how long [`Client::run`] waits for a reply to begin. The
    /// default, `None`, waits as long as the server lets the command run
    /// (its own time limit bounds it); the stream's read timeout applies to
    /// everything else.
    pub fn set_reply_timeout(&mut self, timeout: Option<Duration>) {
        self.reply_timeout = timeout;
    }

    /// Whether the server speaks only the tutorial's protocol (no exit
    /// statuses).
    pub fn is_tutorial(&self) -> bool {
        self.tutorial
    }

    /// Whether the server said it wants `auth TOKEN` first.
    pub fn auth_required(&self) -> bool {
        self.auth_required
    }

    /// Sends `auth TOKEN`. The reply's status is `Exit(0)` when it was
    /// accepted, `Error` when not.
    ///
    /// # Errors
    /// As [`Client::run`].
    pub fn auth(&mut self, token: &str) -> io::Result<Reply> {
        self.run(&format!("auth {token}"))
    }

    /// Runs one command and reads its whole reply. The wait for the reply
    /// to begin is bounded by [`Client::set_reply_timeout`].
    ///
    /// # Errors
    /// `InvalidInput` for a command with a newline (status mode has one
    /// command per line); `UnexpectedEof` if the server closes the
    /// connection; `InvalidData` for a malformed reply, or one announced
    /// longer than the limit (holding a [`ReplyTooLong`]); or as the stream
    /// does.
    pub fn run(&mut self, command: &str) -> io::Result<Reply> {
        if self.tutorial {
            self.stream.write_all(command.as_bytes())?;
            self.stream.flush()?;
            return self.tutorial_reply();
        }
        if command.contains('\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a command cannot hold a newline",
            ));
        }
        self.stream.write_all(command.as_bytes())?;
        self.stream.write_all(b"\n")?;
        self.stream.flush()?;
        let line = self.wait_for_reply(read_header_line)?;
        let header = Header::parse(&line)
            .ok_or_else(|| invalid(format!("malformed reply header {line:?}")))?;
        let output = self.read_body(header.len)?;
        Ok(Reply {
            output,
            status: header.status,
            time: header.time,
        })
    }

    /// Reads a reply in the tutorial's protocol: the length (all digits, in
    /// one read, as the tutorial's client takes it), the acknowledgement,
    /// the body.
    fn tutorial_reply(&mut self) -> io::Result<Reply> {
        let digits = self.wait_for_reply(|stream| Ok(stream.read_chunk()?.to_vec()))?;
        if digits.is_empty() {
            return Err(closed());
        }
        let len: u64 = std::str::from_utf8(&digits)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .ok_or_else(|| {
                invalid(format!(
                    "expected a length, got {:?}",
                    String::from_utf8_lossy(&digits)
                ))
            })?;
        self.check_length(len)?;
        self.stream.write_all(ACK)?;
        self.stream.flush()?;
        Ok(Reply {
            output: self.read_body(len)?,
            status: None,
            time: None,
        })
    }

    /// Refuses a reply announced longer than the limit, before reading any
    /// of it.
    fn check_length(&self, len: u64) -> io::Result<()> {
        if len > self.max_output {
            let too_long = ReplyTooLong {
                announced: len,
                limit: self.max_output,
            };
            return Err(io::Error::new(io::ErrorKind::InvalidData, too_long));
        }
        Ok(())
    }

    /// Reads a body of `len` bytes, which must be within the limit. The
    /// buffer grows as bytes arrive: an announced length is a claim, not
    /// an allocation.
    fn read_body(&mut self, len: u64) -> io::Result<Vec<u8>> {
        self.check_length(len)?;
        let mut body = Vec::with_capacity(len.min(1 << 20) as usize);
        (&mut self.stream).take(len).read_to_end(&mut body)?;
        if (body.len() as u64) < len {
            return Err(closed());
        }
        Ok(body)
    }

    /// Waits for the first bytes of a reply with the reply timeout (the
    /// command may run as long as the server allows), then restores the
    /// stream's.
    fn wait_for_reply<T>(
        &mut self,
        read: impl FnOnce(&mut Stream) -> io::Result<T>,
    ) -> io::Result<T> {
        let usual = self.stream.read_timeout();
        self.stream.set_read_timeout(self.reply_timeout)?;
        let result = read(&mut self.stream);
        self.stream.set_read_timeout(usual)?;
        result
    }
}

fn read_header_line(stream: &mut Stream) -> io::Result<String> {
    let mut line = Vec::new();
    stream.read_until_limited(b'\n', &mut line, MAX_HEADER)?;
    if line.pop() != Some(b'\n') {
        return Err(closed());
    }
    String::from_utf8(line).map_err(|_| invalid("reply header is not UTF-8".into()))
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the server closed the connection",
    )
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}
