//! The control connection: command lines in, replies out.
//!
//! Lines end with LF; one CR before it is dropped; a line (CRLF included)
//! is at most [`MAX_COMMAND_LINE`] bytes. Telnet commands (`IAC` and what
//! follows it, RFC 854) are removed, as RFC 959 asks of a server: clients
//! send `IAC IP IAC DM` before `ABOR`; `IAC IAC` stands for one 0xFF byte.
//!
//! During a transfer the control connection is still read: `ABOR`, `STAT`
//! and `QUIT` act at once, other commands wait until the transfer ends.
//!
//! Replies never hold a CR or LF from the client (a file name, say): names
//! are escaped ([`printable`], `\x0d`, `\u{202e}`), and any control or
//! bidirectional character left in a reply's text is replaced by `?`, so
//! nothing the client names can forge a reply line or rewrite a terminal.

use std::collections::VecDeque;
use std::io;
use std::time::Instant;

use socketserver::{LimitExceeded, Stream, WhenDraining};

use super::config::MAX_COMMAND_LINE;
use super::escape::is_unsafe_char;
pub(crate) use super::escape::printable;

/// What the next command line read was.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A command line, without its line end and Telnet commands.
    Command(Vec<u8>),
    /// The client closed the connection.
    End,
    /// The line is longer than [`MAX_COMMAND_LINE`].
    TooLong(LimitExceeded),
}

/// What the client asked for during a transfer.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Interrupts {
    pub(crate) abort: bool,
    pub(crate) stat: usize,
    pub(crate) quit: bool,
}

/// The reading side of the control connection: the bytes of a line not yet
/// complete, and the commands set aside during a transfer.
#[derive(Debug, Default)]
pub(crate) struct Control {
    pending: Vec<u8>,
    queued: VecDeque<Vec<u8>>,
}

/// What a command line over [`MAX_COMMAND_LINE`] is.
const TOO_LONG: LimitExceeded = LimitExceeded {
    what: "command line",
    limit: MAX_COMMAND_LINE,
};

/// Most commands set aside during one transfer; past that the control
/// connection is not read until the transfer ends.
const MAX_QUEUED: usize = 64;

impl Control {
    /// The next command line: one set aside during a transfer, else one
    /// read from `stream`.
    ///
    /// # Errors
    /// As [`Stream::read_chunk`] (`TimedOut` after the read timeout).
    pub(crate) fn next(&mut self, stream: &mut Stream) -> io::Result<Line> {
        if let Some(line) = self.queued.pop_front() {
            return Ok(Line::Command(line));
        }
        // A command begun must be whole within the stream's message
        // timeout, however it is paced: a deadline for the reads of its
        // rest, lifted (back to any earlier one, the login's) after.
        let usual = stream.deadline();
        let result = self.read_line(stream, usual);
        stream.set_deadline(usual);
        result
    }

    fn read_line(&mut self, stream: &mut Stream, usual: Option<Instant>) -> io::Result<Line> {
        let mut begun = false;
        loop {
            match self.take_line() {
                Some(Ok(line)) => return Ok(Line::Command(line)),
                Some(Err(())) => return Ok(Line::TooLong(TOO_LONG)),
                None if self.pending.len() >= MAX_COMMAND_LINE => {
                    return Ok(Line::TooLong(TOO_LONG))
                }
                None => {}
            }
            if !begun && !self.pending.is_empty() {
                begun = true;
                if let Some(total) = stream.message_timeout() {
                    let whole_by = Instant::now() + total;
                    stream.set_deadline(Some(usual.map_or(whole_by, |u| u.min(whole_by))));
                }
            }
            // Between commands a drain may end the wait (the session then
            // says 421); a transfer's reads of the control connection stay
            // under the default, so that a transfer finishes first.
            stream.set_when_draining(WhenDraining::EndWaitingRead);
            let read = stream.read_chunk().map(|chunk| {
                self.pending.extend_from_slice(chunk);
                chunk.len()
            });
            stream.set_when_draining(WhenDraining::Finish);
            if read? == 0 {
                return Ok(Line::End);
            }
        }
    }

    /// True while reading more during a transfer is useful (the queue of
    /// set-aside commands is not full).
    /// Drops what was received and not yet run (after `AUTH TLS`: bytes
    /// sent in clear must not run as if they had come over TLS). Returns
    /// how many bytes were dropped.
    pub(crate) fn discard_pending(&mut self) -> usize {
        let queued: usize = self.queued.drain(..).map(|line| line.len()).sum();
        let pending = self.pending.len();
        self.pending.clear();
        queued + pending
    }

    pub(crate) fn wants_input(&self) -> bool {
        self.queued.len() < MAX_QUEUED && self.pending.len() < MAX_COMMAND_LINE
    }

    /// During a transfer, with the control connection readable: reads what
    /// came and picks out `ABOR`, `STAT` (without argument) and `QUIT`;
    /// other commands are set aside, in order, for after the transfer.
    ///
    /// # Errors
    /// `UnexpectedEof` if the client closed the control connection; any
    /// error reading it.
    pub(crate) fn during_transfer(&mut self, stream: &mut Stream) -> io::Result<Interrupts> {
        let chunk = stream.read_chunk()?;
        if chunk.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the client closed the control connection",
            ));
        }
        self.pending.extend_from_slice(chunk);
        let mut interrupts = Interrupts::default();
        while let Some(Ok(line)) = self.take_line() {
            let (verb, arg) = split_command(&line);
            match (verb.as_str(), arg.is_empty()) {
                ("ABOR", _) => interrupts.abort = true,
                ("STAT", true) => interrupts.stat += 1,
                ("QUIT", _) => interrupts.quit = true,
                _ => self.queued.push_back(line),
            }
            if self.queued.len() >= MAX_QUEUED {
                break;
            }
        }
        Ok(interrupts)
    }

    /// A complete line from `pending`, cleaned; `Err` if it is too long.
    fn take_line(&mut self) -> Option<Result<Vec<u8>, ()>> {
        let end = self.pending.iter().position(|&b| b == b'\n')?;
        if end + 1 > MAX_COMMAND_LINE {
            return Some(Err(()));
        }
        let raw: Vec<u8> = self.pending.drain(..=end).collect();
        Some(Ok(clean(&raw)))
    }
}

/// A raw line without its LF, one CR before it, and Telnet commands.
pub(crate) fn clean(raw: &[u8]) -> Vec<u8> {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != 0xff {
            out.push(raw[i]);
            i += 1;
            continue;
        }
        match raw.get(i + 1) {
            Some(0xff) => {
                out.push(0xff);
                i += 2;
            }
            // WILL, WONT, DO, DONT take an option byte.
            Some(251..=254) => i += 3,
            Some(_) => i += 2,
            None => i += 1,
        }
    }
    out
}

/// The verb (upper case) and the argument (everything after the first
/// space, as sent).
pub(crate) fn split_command(line: &[u8]) -> (String, &[u8]) {
    let (verb, arg) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &line[line.len()..]),
    };
    (String::from_utf8_lossy(verb).to_ascii_uppercase(), arg)
}

/// Writes the one-line reply `CODE TEXT\r\n` (buffered; it goes out before
/// the next read, or on flush). Names in `text` come escaped
/// ([`printable`]); any unsafe character left becomes `?`.
pub(crate) fn reply(stream: &mut Stream, code: u16, text: &str) -> io::Result<()> {
    let text: String = text
        .chars()
        .map(|c| if is_unsafe_char(c) { '?' } else { c })
        .collect();
    stream.write_all(format!("{code} {text}\r\n").as_bytes())
}

/// Writes a multi-line reply: `CODE-FIRST`, the lines (each with one
/// leading space, so that none can look like a reply's end), `CODE LAST`.
pub(crate) fn reply_lines(
    stream: &mut Stream,
    code: u16,
    first: &str,
    lines: &[String],
    last: &str,
) -> io::Result<()> {
    let mut reply = MultiLineReply::begin(stream, code, first)?;
    for line in lines {
        reply.line(line.as_bytes())?;
    }
    reply.end(last)
}

/// A multi-line reply written a line at a time, as [`reply_lines`] lays
/// it out: one whose lines are made as it goes (`STAT`'s listing of a
/// folder) is never held whole.
pub(crate) struct MultiLineReply<'s> {
    stream: &'s mut Stream,
    code: u16,
}

impl<'s> MultiLineReply<'s> {
    /// Writes the first line, `CODE-FIRST`.
    pub(crate) fn begin(stream: &'s mut Stream, code: u16, first: &str) -> io::Result<Self> {
        stream.write_all(format!("{code}-{}\r\n", printable(first.as_bytes())).as_bytes())?;
        Ok(MultiLineReply { stream, code })
    }

    /// Writes a line of the middle, escaped, after one space.
    pub(crate) fn line(&mut self, line: &[u8]) -> io::Result<()> {
        self.stream
            .write_all(format!(" {}\r\n", printable(line)).as_bytes())
    }

    /// Writes the last line, `CODE LAST`.
    pub(crate) fn end(self, last: &str) -> io::Result<()> {
        let code = self.code;
        self.stream
            .write_all(format!("{code} {}\r\n", printable(last.as_bytes())).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cleaned() {
        assert_eq!(clean(b"NOOP\r\n"), b"NOOP");
        assert_eq!(clean(b"NOOP\n"), b"NOOP");
        assert_eq!(clean(b"NOOP\r\r\n"), b"NOOP\r");
        assert_eq!(clean(b"\xff\xf4\xff\xf2ABOR\r\n"), b"ABOR");
        assert_eq!(clean(b"\xff\xfb\x01USER a\r\n"), b"USER a");
        assert_eq!(clean(b"STOR a\xff\xffb\r\n"), b"STOR a\xffb");
        assert_eq!(clean(b"X\xff"), b"X");
    }

    #[test]
    fn commands_split_at_the_first_space() {
        assert_eq!(
            split_command(b"stor a  b"),
            ("STOR".to_string(), &b"a  b"[..])
        );
        assert_eq!(split_command(b"PWD"), ("PWD".to_string(), &b""[..]));
        assert_eq!(split_command(b"CWD "), ("CWD".to_string(), &b""[..]));
    }

    #[test]
    fn replies_cannot_be_forged() {
        assert_eq!(printable(b"a\r\n200 ok"), "a\\x0d\\x0a200 ok");
        assert_eq!(printable(b"\xff"), "\u{fffd}");
    }
}
