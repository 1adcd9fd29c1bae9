//! The framing helpers of [`Stream`]: lines and length-prefixed frames,
//! each with its size limit ([`LimitExceeded`]) and the message clock.

use std::error::Error as StdError;
use std::fmt;
use std::io::{self, Read};

use super::{Stream, FRAME_GROWTH};

/// The error inside an [`io::Error`] of kind `InvalidData` when a line or a
/// frame is longer than its limit.
///
/// The bytes read so far are discarded; the conversation is best ended,
/// after an error message if the protocol has one, as
/// [`Stream::close_over_limit`] does:
///
/// ```
/// # fn f(stream: &mut socketserver::Stream) -> std::io::Result<()> {
/// use socketserver::LimitExceeded;
/// match stream.next_line() {
///     Err(e) if LimitExceeded::is(&e) => {
///         stream.write_all(b"error: line too long\n")?;
///         return Ok(());
///     }
///     other => { other?; }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitExceeded {
    /// What was too long: `"line"` or `"frame"`.
    pub what: &'static str,
    /// The limit in bytes.
    pub limit: usize,
}

impl LimitExceeded {
    /// True if `error` was caused by a [`LimitExceeded`].
    pub fn is(error: &io::Error) -> bool {
        LimitExceeded::from_error(error).is_some()
    }

    /// The [`LimitExceeded`] inside `error`, if it was caused by one.
    pub fn from_error(error: &io::Error) -> Option<LimitExceeded> {
        error.get_ref()?.downcast_ref::<LimitExceeded>().copied()
    }

    fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} longer than the limit of {} bytes",
            self.what, self.limit
        )
    }
}

impl StdError for LimitExceeded {}

// Reading and writing lines and frames.
impl Stream {
    /// Reads the next line, up to and including its `\n`, as UTF-8 text.
    ///
    /// Returns `None` at end of input. A last line without a newline is
    /// returned as it is, like Python's `readline`.
    ///
    /// # Errors
    /// `InvalidData` with a [`LimitExceeded`] inside for a line longer than
    /// [`Stream::max_line_len`]; `InvalidData` for a line that is not UTF-8
    /// (use [`Stream::read_line_into`] for bytes); `TimedOut` when the read
    /// timeout passes with no data; any error of the socket.
    pub fn next_line(&mut self) -> io::Result<Option<String>> {
        let mut line = Vec::new();
        if self.read_line_into(&mut line)? == 0 {
            return Ok(None);
        }
        String::from_utf8(line).map(Some).map_err(|_| not_utf8())
    }

    /// Reads one line, up to and including its `\n`, appending the bytes to
    /// `line`. Returns how many bytes were appended; 0 means end of input.
    /// Reusing one `Vec` across calls reads lines without allocating.
    ///
    /// # Errors
    /// As [`Stream::next_line`], except that any bytes are accepted.
    pub fn read_line_into(&mut self, line: &mut Vec<u8>) -> io::Result<usize> {
        let max = self.max_line;
        self.read_delimited(b'\n', line, max)
    }

    /// Reads up to and including `delimiter`, appending to `buf`, but no
    /// more than `max` bytes. Returns how many bytes were appended; 0 means
    /// end of input; a count without the delimiter at its end means the
    /// input ended first.
    ///
    /// # Errors
    /// `InvalidData` with a [`LimitExceeded`] inside if `max` bytes pass
    /// without the delimiter; `TimedOut`, or any error of the socket.
    pub fn read_until_limited(
        &mut self,
        delimiter: u8,
        buf: &mut Vec<u8>,
        max: usize,
    ) -> io::Result<usize> {
        self.read_delimited(delimiter, buf, max)
    }

    /// [`BufRead::read_line`](std::io::BufRead::read_line) for [`Stream`]: within the line limit, like
    /// every way of reading a line here.
    pub(super) fn read_line_string(&mut self, buf: &mut String) -> io::Result<usize> {
        let mut line = Vec::new();
        let n = self.read_line_into(&mut line)?;
        // As std's: on bytes that are not UTF-8, `buf` is left as it was.
        buf.push_str(&String::from_utf8(line).map_err(|_| not_utf8())?);
        Ok(n)
    }

    /// Reads a line (ended by `delimiter`) of at most `max` bytes, on the
    /// message clock.
    pub(super) fn read_delimited(
        &mut self,
        delimiter: u8,
        buf: &mut Vec<u8>,
        max: usize,
    ) -> io::Result<usize> {
        let result = self.read_delimited_unclocked(delimiter, buf, max);
        self.clock.message_ended();
        result
    }

    fn read_delimited_unclocked(
        &mut self,
        delimiter: u8,
        buf: &mut Vec<u8>,
        max: usize,
    ) -> io::Result<usize> {
        let mut taken = 0;
        loop {
            let available = &self.rbuf[self.rpos..self.rend];
            let (chunk_len, done) = match available.iter().position(|&b| b == delimiter) {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            if taken + chunk_len > max {
                // Drop what was read of the over-long line so that memory
                // stays bounded whatever the caller does next.
                self.rpos = self.rend;
                return Err(LimitExceeded {
                    what: "line",
                    limit: max,
                }
                .into_io());
            }
            buf.extend_from_slice(&available[..chunk_len]);
            self.rpos += chunk_len;
            taken += chunk_len;
            if done {
                return Ok(taken);
            }
            if taken > 0 {
                self.clock.message_begun("line");
            }
            if self.fill()? == 0 {
                return Ok(taken);
            }
        }
    }

    /// Reads one length-prefixed frame: a 4-byte big-endian length, then
    /// that many bytes. Returns `None` at end of input between frames.
    ///
    /// # Errors
    /// `InvalidData` with a [`LimitExceeded`] inside if the length is over
    /// [`Stream::max_frame_len`] (nothing of the payload is read);
    /// `UnexpectedEof` if the input ends inside a frame; `TimedOut`, or any
    /// error of the socket.
    pub fn read_frame(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut payload = Vec::new();
        Ok(self.read_frame_into(&mut payload)?.then_some(payload))
    }

    /// Reads one length-prefixed frame into `payload`, replacing its
    /// contents. Returns false at end of input between frames.
    ///
    /// # Errors
    /// As [`Stream::read_frame`].
    pub fn read_frame_into(&mut self, payload: &mut Vec<u8>) -> io::Result<bool> {
        payload.clear();
        if self.rpos == self.rend && self.fill()? == 0 {
            return Ok(false);
        }
        self.clock.message_begun("frame");
        let result = self.read_frame_rest(payload);
        self.clock.message_ended();
        result
    }

    /// The rest of a frame whose first bytes have arrived.
    fn read_frame_rest(&mut self, payload: &mut Vec<u8>) -> io::Result<bool> {
        let mut header = [0u8; 4];
        self.read_exact(&mut header)?;
        let len = u32::from_be_bytes(header) as usize;
        if len > self.max_frame {
            return Err(LimitExceeded {
                what: "frame",
                limit: self.max_frame,
            }
            .into_io());
        }
        self.read_payload(payload, len)?;
        Ok(true)
    }

    /// Reads `len` bytes into the empty `payload`, growing it as the bytes
    /// arrive, never ahead of them by more than what already came (or
    /// [`FRAME_GROWTH`]): a header announcing 16 MiB followed by silence
    /// costs no 16 MiB, however many connections send one.
    fn read_payload(&mut self, payload: &mut Vec<u8>, len: usize) -> io::Result<()> {
        let mut filled = 0;
        while filled < len {
            if filled == payload.len() {
                let grow = (len - filled).min(filled.max(FRAME_GROWTH));
                payload.resize(filled + grow, 0);
            }
            match self.read(&mut payload[filled..]) {
                Ok(0) => {
                    payload.truncate(filled);
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the input ended {filled} bytes into a frame of {len}"),
                    ));
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    payload.truncate(filled);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Writes one length-prefixed frame: the payload's length as 4 bytes,
    /// big-endian, then the payload.
    ///
    /// # Errors
    /// `InvalidInput` for a payload of 4 GiB or more; otherwise as
    /// [`Stream::write_all`].
    pub fn write_frame(&mut self, payload: &[u8]) -> io::Result<()> {
        let len = u32::try_from(payload.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "frame payload of 4 GiB or more",
            )
        })?;
        self.write_all(&len.to_be_bytes())?;
        self.write_all(payload)
    }
}

fn not_utf8() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "line is not valid UTF-8")
}
