//! The Shell protocol's words and headers, shared by the server and by
//! [`super::client::Client`]. `docs/protocols.md` has it byte for byte.

use std::fmt;
use std::time::Duration;

/// The line a client sends first to switch the connection to status mode.
pub const HELLO: &str = "#shell/1";
/// The server's answer to [`HELLO`] when no token is needed.
pub const HELLO_OK: &str = "#shell/1 ok";
/// The server's answer to [`HELLO`] when `auth TOKEN` must come first.
pub const HELLO_AUTH: &str = "#shell/1 ok auth=required";
/// The tutorial's answer to a command with no output (tutorial and line
/// modes).
pub const NO_OUTPUT: &str = "cmd has no output...";

/// How a command (or a built-in) ended, as status mode reports it in its
/// reply header.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Status {
    /// Exited by itself with this status (`exit=N`); `cd` and `auth` reply
    /// `exit=0` or `exit=1` as a shell's built-ins do.
    Exit(i32),
    /// Ended by a signal it did not get from the server (`signal=N`).
    Signal(i32),
    /// Killed, with its whole process group, at the time limit
    /// (`timeout=SECS`).
    Timeout(Duration),
    /// Its output passed the limit: the reply holds the first `N` bytes and
    /// the command was killed (`cut=N`).
    Cut(u64),
    /// Nothing was run: the reply's body says why (`error`).
    Error,
}

impl fmt::Display for Status {
    /// The header's form: `exit=0`, `signal=9`, `timeout=30`, `cut=1000`,
    /// `error`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Exit(code) => write!(f, "exit={code}"),
            Status::Signal(signal) => write!(f, "signal={signal}"),
            Status::Timeout(limit) => write!(f, "timeout={}", limit.as_secs_f64()),
            Status::Cut(limit) => write!(f, "cut={limit}"),
            Status::Error => f.write_str("error"),
        }
    }
}

/// A status-mode reply header: `LEN STATUS time=SECS`, without its `\n`.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// The length of the body that follows the header's `\n`.
    pub len: u64,
    /// The status; `None` if the server sent none the client knows.
    pub status: Option<Status>,
    /// How long the command took, if the server said.
    pub time: Option<Duration>,
}

impl Header {
    /// Formats a header line, `\n` included.
    pub fn line(len: u64, status: Status, time: Duration) -> String {
        format!("{len} {status} time={:.3}\n", time.as_secs_f64())
    }

    /// Parses a header line (without its `\n`). Fields after the length
    /// that the client does not know are skipped, so that a later server
    /// may add some.
    ///
    /// ```
    /// use socketserver_handlers::shell::protocol::{Header, Status};
    /// let header = Header::parse("6 exit=0 time=0.002").unwrap();
    /// assert_eq!(header.len, 6);
    /// assert_eq!(header.status, Some(Status::Exit(0)));
    /// ```
    pub fn parse(line: &str) -> Option<Header> {
        let mut fields = line.split(' ');
        let len = fields.next()?.parse().ok()?;
        let mut header = Header {
            len,
            status: None,
            time: None,
        };
        for field in fields {
            let (key, value) = field.split_once('=').unwrap_or((field, ""));
            let status = match key {
                "exit" => value.parse().ok().map(Status::Exit),
                "signal" => value.parse().ok().map(Status::Signal),
                "timeout" => seconds(value).map(Status::Timeout),
                "cut" => value.parse().ok().map(Status::Cut),
                "error" => Some(Status::Error),
                "time" => {
                    header.time = seconds(value);
                    None
                }
                _ => None,
            };
            if status.is_some() {
                header.status = status;
            }
        }
        Some(header)
    }
}

fn seconds(text: &str) -> Option<Duration> {
    Duration::try_from_secs_f64(text.parse().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        for status in [
            Status::Exit(0),
            Status::Exit(127),
            Status::Signal(9),
            Status::Timeout(Duration::from_millis(500)),
            Status::Timeout(Duration::from_secs(30)),
            Status::Cut(1000),
            Status::Error,
        ] {
            let line = Header::line(42, status, Duration::from_millis(1234));
            let header = Header::parse(line.strip_suffix('\n').unwrap()).unwrap();
            assert_eq!(header.len, 42);
            assert_eq!(header.status, Some(status), "{line}");
            assert_eq!(header.time, Some(Duration::from_millis(1234)));
        }
        assert_eq!(
            Header::line(6, Status::Timeout(Duration::from_secs(30)), Duration::ZERO),
            "6 timeout=30 time=0.000\n"
        );
    }

    #[test]
    fn unknown_fields_are_skipped() {
        let header = Header::parse("3 exit=1 colour=blue time=0.5 later").unwrap();
        assert_eq!(header.status, Some(Status::Exit(1)));
        assert_eq!(header.time, Some(Duration::from_millis(500)));
        assert_eq!(Header::parse("x exit=1"), None);
        assert_eq!(Header::parse("12").unwrap().status, None);
    }
}
