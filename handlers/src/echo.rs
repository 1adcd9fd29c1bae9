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
//!      what the client sent in one go is one message, answered as
//!      message + suffix: a read ends a message when it took everything
//!      that had arrived (it returned less than the read buffer holds); a
//!      read that filled the buffer may have left the rest of a long
//!      message in the socket, so the message goes on;
//!    * **line mode** (nc, telnet, scripts), from the first newline on:
//!      each line, without its `\n` or `\r\n`, is a message, answered as
//!      message + suffix + `\n`; a partial line waits for its end.
//!
//! Bytes, not strings: the suffix is appended to the raw bytes and invalid
//! UTF-8 comes back as it came. Over datagrams, each datagram is a message,
//! answered with one datagram (message + suffix). A message-mode read that ends inside a
//! UTF-8 character waits briefly for the rest of it, so a character split
//! across TCP segments is never cut in two. A message, like a line, is at
//! most the line limit long ([`socketserver::defaults::MAX_LINE`], 64 KiB,
//! by default).

use std::io::{self, BufRead};
use std::sync::Arc;
use std::time::Duration;

use socketserver::{
    Address, Datagram, DatagramHandler, LimitExceeded, Refusal, RequestHandler, Stream,
};

/// The port `serve --handler echo` listens on by default: the tutorial's.
pub const DEFAULT_PORT: u16 = 9999;
/// The tutorial's greeting.
pub const DEFAULT_GREETING: &str = "欢迎致电babyshen";
/// The tutorial's suffix: every message comes back followed by "好".
pub const DEFAULT_SUFFIX: &str = "好";
/// How long a message-mode message that may go on (its last read filled
/// the read buffer, or ended inside a UTF-8 character) waits for more.
const CONTINUATION_WAIT: Duration = Duration::from_millis(500);

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
            max_line: socketserver::defaults::MAX_LINE,
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

    /// Sets the longest line accepted in line mode, newline included, and
    /// the longest message in message mode. Default: the framework's
    /// [`MAX_LINE`](socketserver::defaults::MAX_LINE), 64 KiB.
    pub fn max_line(mut self, max: usize) -> Self {
        self.max_line = max;
        self
    }

    /// The suffix, as bytes.
    pub fn suffix_bytes(&self) -> &[u8] {
        &self.suffix
    }

    /// Line mode: each line is a message. `started` holds the start of the
    /// first line when it was taken in message mode (a long line whose
    /// newline came in a later read). Returns when the client sends `q`,
    /// hangs up, or sends a line over the limit.
    fn serve_lines(&self, stream: &mut Stream, started: Vec<u8>) -> io::Result<()> {
        let mut line = started;
        line.reserve(256);
        loop {
            let room = self.max_line.saturating_sub(line.len());
            match stream.read_until_limited(b'\n', &mut line, room) {
                Ok(0) if line.is_empty() => return Ok(()),
                Ok(_) => {}
                Err(e) if LimitExceeded::is(&e) => return self.refuse_too_long(stream, "line"),
                Err(e) => return Err(e),
            }
            let message = strip_line_end(&line);
            if message == b"q" {
                return Ok(());
            }
            stream.write_all(message)?;
            stream.write_all(&self.suffix)?;
            stream.write_all(b"\n")?;
            line.clear();
        }
    }

    /// Message mode: reads one message into `message`. A read that filled
    /// the stream's buffer may have left the rest of a long message in the
    /// socket, and one that ends inside a UTF-8 character was cut by TCP:
    /// either way the message goes on with the next read, waited for
    /// briefly (a message of exactly the buffer's size has no more to
    /// come). A read that took everything that had arrived, ending on a
    /// whole character, ends the message. Looks before taking: bytes that
    /// hold a newline stay in the stream, for line mode.
    fn read_message(&self, stream: &mut Stream, message: &mut Vec<u8>) -> io::Result<Message> {
        let capacity = stream.read_capacity();
        loop {
            let arrived = if message.is_empty() {
                stream.fill_buf()?.len()
            } else {
                match fill_within(stream, CONTINUATION_WAIT)? {
                    Some(arrived) => arrived,
                    None => return Ok(Message::Whole), // no more came
                }
            };
            if arrived == 0 {
                // End of input: the client hung up, maybe after a last
                // message that ended where its read filled the buffer.
                return Ok(if message.is_empty() {
                    Message::HungUp
                } else {
                    Message::Whole
                });
            }
            let available = stream.buffered();
            if available.contains(&b'\n') {
                return Ok(Message::Lines);
            }
            message.extend_from_slice(available);
            stream.consume(arrived);
            if message.len() > self.max_line {
                return Ok(Message::TooLong);
            }
            if arrived < capacity && incomplete_tail(message) == 0 {
                return Ok(Message::Whole);
            }
        }
    }

    /// Answers a message or line over the limit with one error line, then
    /// closes.
    fn refuse_too_long(&self, stream: &mut Stream, what: &'static str) -> io::Result<()> {
        let limit = self.max_line;
        let reply = format!("error: {what} longer than {limit} bytes\n");
        stream.close_over_limit(LimitExceeded { what, limit }, |stream| {
            stream.write_all(reply.as_bytes())
        })
    }
}

/// How a message-mode read ended.
enum Message {
    /// A whole message was taken: answer it.
    Whole,
    /// A newline arrived: line mode from now on. The bytes taken so far
    /// start the first line; the rest is still in the stream.
    Lines,
    /// The message is longer than the limit.
    TooLong,
    /// The client hung up between messages.
    HungUp,
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
            message.clear();
            match self.read_message(stream, &mut message)? {
                Message::Whole => {}
                Message::Lines => return self.serve_lines(stream, message),
                Message::TooLong => return self.refuse_too_long(stream, "message"),
                Message::HungUp => return Ok(()),
            }
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
///
/// Except a datagram that may itself be an answer (see [`not_answered`]):
/// a source address can be forged, and a forged datagram "from" another
/// echo service, or from this server itself, would bounce between the two
/// for ever, growing at each turn. Those are dropped, with a debug line
/// in the log.
impl DatagramHandler for Echo {
    fn handle(&mut self, datagram: &mut Datagram<'_>) -> io::Result<()> {
        let local = datagram.local_addr().ok();
        if let Some(why) = not_answered(datagram.peer_addr(), local.as_ref()) {
            log::debug!("{}: datagram not answered: {why}", datagram.peer_addr());
            return Ok(());
        }
        let mut answer = Vec::with_capacity(datagram.data().len() + self.suffix.len());
        answer.extend_from_slice(datagram.data());
        answer.extend_from_slice(&self.suffix);
        datagram.reply(&answer)
    }
}

/// Why a datagram from `peer`, received on `local`, must not be answered,
/// if it must not:
///
/// * from a port below 1024: those belong to services (echo on 7, chargen
///   on 19, DNS on 53...), which may answer the answer; no client sends
///   from one;
/// * from the server's own address (same IP and port; for a server bound
///   to a wildcard address, the same port on loopback), which would make
///   the server answer itself for ever.
///
/// ```
/// use socketserver::Address;
/// use socketserver_handlers::echo::not_answered;
/// let server = Address::Inet("127.0.0.1:9999".parse().unwrap());
/// let client = Address::Inet("127.0.0.1:40000".parse().unwrap());
/// assert_eq!(not_answered(&client, Some(&server)), None);
/// assert!(not_answered(&server, Some(&server)).is_some());
/// ```
pub fn not_answered(peer: &Address, local: Option<&Address>) -> Option<&'static str> {
    match (peer, local) {
        (Address::Inet(peer), _) if peer.port() < 1024 => {
            Some("its source port is below 1024, a service's, which may answer in turn")
        }
        (Address::Inet(peer), Some(Address::Inet(local)))
            if peer.port() == local.port()
                && (peer.ip().to_canonical() == local.ip().to_canonical()
                    || (local.ip().is_unspecified() && peer.ip().to_canonical().is_loopback())) =>
        {
            Some("it comes from the server's own address")
        }
        (Address::Unix(Some(peer)), Some(Address::Unix(Some(local)))) if peer == local => {
            Some("it comes from the server's own address")
        }
        _ => None,
    }
}

/// `fill_buf` with the read timeout cut to at most `wait`: how many bytes
/// are buffered then (0 at end of input), or `None` if none came in time.
fn fill_within(stream: &mut Stream, wait: Duration) -> io::Result<Option<usize>> {
    let usual = stream.read_timeout();
    stream.set_read_timeout(Some(usual.map_or(wait, |t| t.min(wait))))?;
    let result = match stream.fill_buf() {
        Ok(bytes) => Ok(Some(bytes.len())),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(None),
        Err(e) => Err(e),
    };
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
    fn datagrams_that_may_be_answers_are_not_answered() {
        let inet = |text: &str| Address::Inet(text.parse().unwrap());
        let server = inet("127.0.0.1:9999");
        let wildcard = inet("0.0.0.0:9999");
        let wildcard6 = inet("[::]:9999");
        // Clients.
        for client in ["127.0.0.1:40000", "10.0.0.1:1024", "10.0.0.1:9999"] {
            assert_eq!(not_answered(&inet(client), Some(&server)), None, "{client}");
            assert_eq!(
                not_answered(&inet(client), Some(&wildcard)),
                None,
                "{client}"
            );
        }
        assert_eq!(not_answered(&inet("127.0.0.2:9999"), Some(&server)), None);
        assert_eq!(not_answered(&inet("127.0.0.1:40000"), None), None);
        // Privileged ports, whatever the server's address.
        for service in ["127.0.0.1:7", "10.0.0.1:19", "[::1]:53", "127.0.0.1:1023"] {
            assert!(
                not_answered(&inet(service), Some(&server)).is_some(),
                "{service}"
            );
            assert!(not_answered(&inet(service), None).is_some(), "{service}");
        }
        // The server's own address, also as IPv4-mapped IPv6 and behind
        // a wildcard bind.
        for own in ["127.0.0.1:9999", "[::ffff:127.0.0.1]:9999"] {
            assert!(not_answered(&inet(own), Some(&server)).is_some(), "{own}");
            assert!(not_answered(&inet(own), Some(&wildcard)).is_some(), "{own}");
        }
        // All of 127.0.0.0/8 is this machine's: a wildcard bind owns
        // 127.0.0.2:9999 too.
        assert!(not_answered(&inet("127.0.0.2:9999"), Some(&wildcard)).is_some());
        assert!(not_answered(&inet("[::1]:9999"), Some(&wildcard6)).is_some());
        // Unix datagram sockets: only the server's own path.
        let path = |p: &str| Address::Unix(Some(p.into()));
        let unix = path("/tmp/echo.sock");
        assert!(not_answered(&unix, Some(&unix)).is_some());
        assert_eq!(not_answered(&path("/tmp/client.sock"), Some(&unix)), None);
        assert_eq!(not_answered(&Address::Unix(None), Some(&unix)), None);
    }

    #[test]
    fn strips_one_line_end() {
        assert_eq!(strip_line_end(b"hi\r\n"), b"hi");
        assert_eq!(strip_line_end(b"hi\n"), b"hi");
        assert_eq!(strip_line_end(b"hi"), b"hi");
        assert_eq!(strip_line_end(b"hi\r\r\n"), b"hi\r");
    }
}
