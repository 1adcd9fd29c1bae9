//! Listings: `LIST`, and its lines made safe to show.

use std::io::Read;

use crate::ftp::escape::escape_into;

use super::{Client, Error};

impl Client {
    /// The listing of `path` (the current folder if empty): `LIST`'s
    /// lines, as the server sends them (see [`displayable`] to show them).
    ///
    /// # Errors
    /// If the server refuses, or a connection fails.
    pub fn list(&mut self, path: &str) -> Result<Vec<u8>, Error> {
        let mut data = self.data_connection()?;
        let line = if path.is_empty() {
            "LIST".to_string()
        } else {
            format!("LIST {path}")
        };
        self.start_transfer(&line)?;
        let mut listing = Vec::new();
        data.read_to_end(&mut listing)?;
        drop(data);
        self.end_transfer(&line)?;
        Ok(listing)
    }
}

/// A listing as it may be shown to a person: each line's control and
/// bidirectional characters escaped (`\x1b`, `\u{202e}`, as the server
/// escapes names in its own listings), its line end kept (LF, or CRLF).
/// The bytes come from the server, which need not be this one: they are
/// not trusted to be harmless to a terminal.
///
/// ```
/// use socketserver_handlers::ftp::client::displayable;
/// assert_eq!(displayable(b"a\x1b[31mb\r\nc\xe2\x80\xaed\n"), b"a\\x1b[31mb\r\nc\\u{202e}d\n");
/// ```
pub fn displayable(listing: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(listing.len());
    for line in listing.split_inclusive(|&b| b == b'\n') {
        let (text, end): (&[u8], &[u8]) = if let Some(text) = line.strip_suffix(b"\r\n") {
            (text, b"\r\n")
        } else if let Some(text) = line.strip_suffix(b"\n") {
            (text, b"\n")
        } else {
            (line, b"")
        };
        escape_into(&mut out, text, false);
        out.extend_from_slice(end);
    }
    out
}
