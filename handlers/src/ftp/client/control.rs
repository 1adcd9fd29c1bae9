//! The control connection: commands out, replies in, and what a reply
//! holds.

use std::fmt;
use std::io::{self, BufRead, Read, Write};

use crate::ftp::escape::printable;
use crate::ftp::hash::is_md5_hex;

use super::{Client, Error};

/// The longest reply line read (longer ones are an error).
const MAX_REPLY_LINE: u64 = socketserver::defaults::MAX_LINE as u64;
/// The most lines of one reply.
const MAX_REPLY_LINES: usize = 10_000;

/// A reply of the server: its code and its text (the lines of a
/// multi-line reply joined with `\n`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The text after the code.
    pub text: String,
}

impl fmt::Display for Reply {
    /// The code and the text, its control and bidirectional characters
    /// escaped (`\x1b`, `\u{202e}`): a server's reply is shown to a person
    /// and must not rewrite their terminal. Lines stay lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self
            .text
            .split('\n')
            .map(|line| printable(line.as_bytes()))
            .collect();
        write!(f, "{} {}", self.code, lines.join("\n"))
    }
}

impl Reply {
    /// The `MD5=<hex>` that this server puts in a `226` reply, if any.
    pub fn md5(&self) -> Option<String> {
        self.text
            .split_whitespace()
            .filter_map(|word| word.strip_prefix("MD5="))
            .map(|hex| hex.trim_end_matches(['.', ',', ';', ')']))
            .find(|hex| is_md5_hex(hex))
            .map(str::to_ascii_lowercase)
    }
}

impl Client {
    /// Sends `line`, returns the reply, whatever its code.
    ///
    /// # Errors
    /// If the connection fails or the reply is not FTP.
    pub fn command(&mut self, line: &str) -> Result<Reply, Error> {
        self.send_and_reply(line, line)
    }

    pub(super) fn send_and_reply(&mut self, shown: &str, line: &str) -> Result<Reply, Error> {
        if line.contains(['\r', '\n']) {
            return Err(Error::Protocol(format!(
                "{shown}: a name cannot hold CR or LF"
            )));
        }
        let control = self.control.get_mut();
        control.write_all(format!("{line}\r\n").as_bytes())?;
        control.flush()?;
        self.reply()
    }

    /// Sends `line`; the reply's code must be one of `codes`.
    pub(super) fn expect(&mut self, line: &str, codes: &[u16]) -> Result<Reply, Error> {
        let reply = self.command(line)?;
        if codes.contains(&reply.code) {
            Ok(reply)
        } else {
            Err(Error::Refused {
                command: line.to_string(),
                reply,
            })
        }
    }

    /// Reads one whole reply.
    pub(super) fn reply(&mut self) -> Result<Reply, Error> {
        let first = self.line()?;
        let code = parse_code(&first)
            .ok_or_else(|| Error::Protocol(format!("the reply {first:?} has no code")))?;
        let mut text = first.get(4..).unwrap_or("").to_string();
        if first.as_bytes().get(3) == Some(&b'-') {
            let end = format!("{code} ");
            for _ in 0..MAX_REPLY_LINES {
                let line = self.line()?;
                if line.starts_with(&end) || line == end.trim_end() {
                    text.push('\n');
                    text.push_str(line.get(4..).unwrap_or(""));
                    return Ok(Reply { code, text });
                }
                text.push('\n');
                text.push_str(&line);
            }
            return Err(Error::Protocol("a reply of too many lines".into()));
        }
        Ok(Reply { code, text })
    }

    fn line(&mut self) -> Result<String, Error> {
        let mut line = Vec::new();
        let n = (&mut self.control)
            .take(MAX_REPLY_LINE)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )
            .into());
        }
        if !line.ends_with(b"\n") {
            return Err(Error::Protocol("a reply line too long".into()));
        }
        let line = String::from_utf8_lossy(&line);
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

fn parse_code(line: &str) -> Option<u16> {
    let code = line.get(..3)?;
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match line.as_bytes().get(3) {
        None | Some(b' ') | Some(b'-') => code.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_codes() {
        assert_eq!(parse_code("220 ready"), Some(220));
        assert_eq!(parse_code("211-Features:"), Some(211));
        assert_eq!(parse_code("200"), Some(200));
        assert_eq!(parse_code("2x0 no"), None);
        assert_eq!(parse_code("2000 no"), None);
        assert_eq!(parse_code(""), None);
    }
}
