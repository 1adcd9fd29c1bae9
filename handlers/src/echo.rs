//! [`Echo`]: the tutorial's chat bot (使用Socket实现聊天机器人).
//!
//! The wire protocol, byte for byte, is in `docs/protocols.md`. In short:
//!
//! 1. On connect the server sends the greeting, as is (no newline: the
//!    tutorial's client reads it with one `recv`).
//! 2. Each message is answered with the message followed by the suffix.
//!    A message `q` ends the conversation: the server closes.
//! 3. What a message is depends on the client, and is decided per
//!    connection:
//!    * **message mode** (the tutorial's client, which sends no newline):
//!      whatever one read returns is one message, answered as
//!      message + suffix;
//!    * **line mode** (nc, telnet, scripts), from the first newline on:
//!      each line, without its `\n` or `\r\n`, is a message, answered as
//!      message + suffix + `\n`; a partial line waits for its end.
//!
//! Bytes, not strings: the suffix is appended to the raw bytes and invalid
//! UTF-8 comes back as it came. Over datagrams, each datagram is a message,
//! answered with one datagram (message + suffix). A message-mode read that ends inside a
//! UTF-8 character waits briefly for the rest of it, so a character split
//! across TCP segments is never cut in two.

use std::io::{self, BufRead};
use std::sync::Arc;
use std::time::Duration;

use socketserver::{Datagram, DatagramHandler, LimitExceeded, Refusal, RequestHandler, Stream};

/// The tutorial's greeting.
pub const DEFAULT_GREETING: &str = "欢迎致电babyshen";
/// The tutorial's suffix: every message comes back followed by "好".
pub const DEFAULT_SUFFIX: &str = "好";
/// The longest line accepted in line mode, newline included.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;
/// How long a message-mode read that ends inside a UTF-8 character waits
/// for the rest of the character.
const CHARACTER_WAIT: Duration = Duration::from_millis(500);
/// How long the server goes on discarding the rest of an over-long line
/// after its error reply, so that the close is orderly.
const LINGER: Duration = Duration::from_secs(2);

/// The chat bot. Cheap to clone: the server clones it per connection.
///
/// ```
/// use socketserver_handlers::Echo;
/// let echo = Echo::default().greeting("hello").suffix("!");
/// assert_eq!(echo.suffix_bytes(), b"!");
/// ```
#[derive(Clone, Debug)]
pub struct Echo {
    greeting: Arc<[u8]>,
    suffix: Arc<[u8]>,
    max_line: usize,
}

impl Default for Echo {
    fn default() -> Self {
        Echo {
            greeting: Arc::from(DEFAULT_GREETING.as_bytes()),
            suffix: Arc::from(DEFAULT_SUFFIX.as_bytes()),
            max_line: DEFAULT_MAX_LINE,
        }
    }
}

impl Echo {
    /// Sets the greeting sent on connect (empty: none).
    pub fn greeting(mut self, greeting: impl AsRef<[u8]>) -> Self {
        self.greeting = Arc::from(greeting.as_ref());
        self
    }

    /// Sets the suffix appended to every answer.
    pub fn suffix(mut self, suffix: impl AsRef<[u8]>) -> Self {
        self.suffix = Arc::from(suffix.as_ref());
        self
    }

    /// Sets the longest line accepted in line mode, newline included.
    pub fn max_line(mut self, max: usize) -> Self {
        self.max_line = max;
        self
    }

    /// The suffix, as bytes.
    pub fn suffix_bytes(&self) -> &[u8] {
        &self.suffix
    }

    /// Line mode: each line is a message. Returns when the client sends
    /// `q`, hangs up, or sends a line over the limit.
    fn serve_lines(&self, stream: &mut Stream) -> io::Result<()> {
        let mut line = Vec::with_capacity(256);
        loop {
            line.clear();
            match stream.read_line_into(&mut line) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if LimitExceeded::is(&e) => {
                    log::warn!("{}: {}; closing", stream.peer_addr(), e);
                    let reply = format!("error: line longer than {} bytes\n", self.max_line);
                    stream.write_all(reply.as_bytes())?;
                    // The rest of the line may still be arriving: a plain
                    // close would reset the connection and could destroy
                    // the error line before the client reads it.
                    return stream.lingering_close(LINGER);
                }
                Err(e) => return Err(e),
            }
            let message = strip_line_end(&line);
            if message == b"q" {
                return Ok(());
            }
            stream.write_all(message)?;
            stream.write_all(&self.suffix)?;
            stream.write_all(b"\n")?;
        }
    }
}

impl RequestHandler for Echo {
    /// One line saying why, instead of the greeting.
    fn refuse(&mut self, stream: &mut Stream, why: Refusal) -> io::Result<()> {
        stream.write_all(format!("error: {why}\n").as_bytes())
    }

    fn setup(&mut self, stream: &mut Stream) -> io::Result<()> {
        stream.set_max_line_len(self.max_line);
        stream.write_all(&self.greeting)
    }

    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        let mut message = Vec::with_capacity(1024);
        loop {
            // Look before taking: a newline anywhere switches to line
            // mode, with the bytes still in the stream's buffer.
            let available = stream.fill_buf()?;
            if available.is_empty() {
                return Ok(()); // the client hung up
            }
            if available.contains(&b'\n') {
                return self.serve_lines(stream);
            }
            message.clear();
            message.extend_from_slice(available);
            let taken = available.len();
            stream.consume(taken);
            complete_last_character(stream, &mut message)?;
            if message == b"q" {
                return Ok(());
            }
            stream.write_all(&message)?;
            stream.write_all(&self.suffix)?;
        }
    }
}

/// Over datagrams (`serve --handler echo --udp`) there is no conversation:
/// no greeting, no `q`, no framing. Each datagram is one message, answered
/// with one datagram: the message and the suffix.
impl DatagramHandler for Echo {
    fn handle(&mut self, datagram: &mut Datagram<'_>) -> io::Result<()> {
        let mut answer = Vec::with_capacity(datagram.data().len() + self.suffix.len());
        answer.extend_from_slice(datagram.data());
        answer.extend_from_slice(&self.suffix);
        datagram.reply(&answer)
    }
}

/// A message-mode read may end inside a UTF-8 character when TCP split the
/// client's send. Waits (briefly) for the character's remaining bytes, so
/// that the answer never cuts it in two. Bytes that are not UTF-8 at all
/// are left as they are.
fn complete_last_character(stream: &mut Stream, message: &mut Vec<u8>) -> io::Result<()> {
    let missing = incomplete_tail(message);
    if missing == 0 {
        return Ok(());
    }
    let usual = stream.read_timeout();
    stream.set_read_timeout(Some(
        usual.map_or(CHARACTER_WAIT, |t| t.min(CHARACTER_WAIT)),
    ))?;
    let mut rest = vec![0; missing];
    let mut got = 0;
    let result = loop {
        if got == missing {
            break Ok(());
        }
        match io::Read::read(stream, &mut rest[got..]) {
            Ok(0) => break Ok(()),
            Ok(n) => got += n,
            // The rest never came: answer what arrived.
            Err(e) if e.kind() == io::ErrorKind::TimedOut => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    message.extend_from_slice(&rest[..got]);
    stream.set_read_timeout(usual)?;
    result
}

/// How many bytes the last character of `bytes` still lacks, if `bytes`
/// ends with the start of a UTF-8 character; 0 otherwise (complete, ASCII,
/// or not UTF-8 at all).
///
/// ```
/// use socketserver_handlers::echo::incomplete_tail;
/// assert_eq!(incomplete_tail(&"我".as_bytes()[..1]), 2);
/// assert_eq!(incomplete_tail("我".as_bytes()), 0);
/// ```
pub fn incomplete_tail(bytes: &[u8]) -> usize {
    // A character is at most 4 bytes: look at the last 3 for a lead byte.
    for back in 1..=3.min(bytes.len()) {
        let b = bytes[bytes.len() - back];
        let len: usize = match b {
            0x80..=0xBF => continue, // a continuation byte: look further back
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return 0, // ASCII or not UTF-8
        };
        return len.saturating_sub(back);
    }
    0
}

fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_incomplete_characters() {
        let wo = "我".as_bytes(); // e6 88 91
        assert_eq!(incomplete_tail(wo), 0);
        assert_eq!(incomplete_tail(&wo[..1]), 2);
        assert_eq!(incomplete_tail(&wo[..2]), 1);
        assert_eq!(incomplete_tail(b"abc"), 0);
        assert_eq!(incomplete_tail(b""), 0);
        let emoji = "😀".as_bytes();
        assert_eq!(incomplete_tail(&emoji[..3]), 1);
        assert_eq!(incomplete_tail(&[b'a', 0xFF]), 0);
    }

    #[test]
    fn strips_one_line_end() {
        assert_eq!(strip_line_end(b"hi\r\n"), b"hi");
        assert_eq!(strip_line_end(b"hi\n"), b"hi");
        assert_eq!(strip_line_end(b"hi"), b"hi");
        assert_eq!(strip_line_end(b"hi\r\r\n"), b"hi\r");
    }
}
