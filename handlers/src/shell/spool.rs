//! Where a command's output waits for its reply: an anonymous temporary
//! file, not memory.
//!
//! Every framing sends the output's length before the output (the
//! tutorial's cure for sticky packets), so the whole output must be known
//! before its first byte goes out. Held in memory, 16 MiB of output per
//! command (the default limit) times the connections would be the
//! server's memory; spooled to a file, it is the page cache's, which the
//! kernel can write out and drop. The file has no name (`O_TMPFILE`, or a
//! name removed at once where the file system lacks it), so nothing is
//! left behind whatever happens to the server.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// How much of the spool is read at once when it is sent.
const CHUNK: usize = 64 * 1024;

/// A reply's body: a short text made by the server (a built-in's answer,
/// an error), or a command's output, spooled.
#[derive(Debug)]
pub(crate) enum Body {
    /// Bytes in memory.
    Text(Vec<u8>),
    /// A command's output, in its spool file.
    Spooled(Spool),
}

impl Body {
    /// Its length in bytes.
    pub(crate) fn len(&self) -> u64 {
        match self {
            Body::Text(bytes) => bytes.len() as u64,
            Body::Spooled(spool) => spool.len,
        }
    }

    /// Whether it is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its last byte, if any.
    pub(crate) fn last(&self) -> Option<u8> {
        match self {
            Body::Text(bytes) => bytes.last().copied(),
            Body::Spooled(spool) => spool.last(),
        }
    }

    /// Writes it whole to `out`, in chunks: a spool is never read into
    /// memory at once.
    pub(crate) fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        match self {
            Body::Text(bytes) => out.write_all(bytes),
            Body::Spooled(spool) => spool.write_to(out),
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Body {
        Body::Text(bytes)
    }
}

impl From<String> for Body {
    fn from(text: String) -> Body {
        Body::Text(text.into_bytes())
    }
}

impl From<&str> for Body {
    fn from(text: &str) -> Body {
        Body::Text(text.as_bytes().to_vec())
    }
}

/// An anonymous temporary file that output is appended to.
#[derive(Debug)]
pub(crate) struct Spool {
    file: File,
    len: u64,
}

impl Spool {
    /// A new, empty spool in the system's temporary directory.
    ///
    /// # Errors
    /// Fails if no file can be made there.
    pub(crate) fn new() -> io::Result<Spool> {
        let dir = std::env::temp_dir();
        let file = match anonymous_file(&dir) {
            Ok(file) => file,
            Err(_) => unlinked_file(&dir)?,
        };
        Ok(Spool { file, len: 0 })
    }

    /// How many bytes it holds.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Appends `bytes`.
    pub(crate) fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn last(&self) -> Option<u8> {
        let at = self.len.checked_sub(1)?;
        let mut byte = [0];
        self.file.read_exact_at(&mut byte, at).ok()?;
        Some(byte[0])
    }

    /// Copies the whole spool to `out`, a chunk at a time, by position (the
    /// file's offset is left alone).
    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut chunk = vec![0; CHUNK];
        let mut at = 0;
        while at < self.len {
            let want = (self.len - at).min(CHUNK as u64) as usize;
            let n = match self.file.read_at(&mut chunk[..want], at) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the spool file is shorter than what was written to it",
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            out.write_all(&chunk[..n])?;
            at += n as u64;
        }
        Ok(())
    }
}

/// A file with no name in `dir` (`O_TMPFILE`, Linux 3.11, on most local
/// file systems).
fn anonymous_file(dir: &Path) -> io::Result<File> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE)
            .open(dir)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = dir;
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// A new file in `dir`, readable by this user only, whose name is removed
/// at once.
fn unlinked_file(dir: &Path) -> io::Result<File> {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let path = dir.join(format!(
        ".socketserver-shell-spool-{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    ));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spool_gives_back_what_was_appended() {
        let mut spool = Spool::new().unwrap();
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        spool.append(&bytes[..70_000]).unwrap();
        spool.append(&bytes[70_000..]).unwrap();
        let body = Body::Spooled(spool);
        assert_eq!(body.len(), 200_000);
        assert_eq!(body.last(), bytes.last().copied());
        let mut out = Vec::new();
        body.write_to(&mut out).unwrap();
        assert!(out == bytes);
    }

    #[test]
    fn the_fallback_file_has_no_name() {
        let dir = std::env::temp_dir();
        let mut file = unlinked_file(&dir).unwrap();
        file.write_all(b"x").unwrap();
        let leftover = std::fs::read_dir(&dir).unwrap().flatten().any(|e| {
            e.file_name().to_string_lossy().starts_with(&format!(
                ".socketserver-shell-spool-{}-",
                std::process::id()
            ))
        });
        assert!(!leftover);
    }
}
