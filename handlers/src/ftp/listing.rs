//! Listing formats: `LIST` (Unix `ls -l` lines, which every client
//! parses), `NLST` (names), `MLSD`/`MLST` (RFC 3659 facts), and the
//! timestamps of `MDTM` and `modify=`, all in UTC, formatted with std
//! alone (Howard Hinnant's days-to-civil algorithm).
//!
//! `LIST` and `MLSD` lines show names escaped (control and bidirectional
//! characters, see `escape.rs`): what a person reads cannot rewrite their
//! terminal or forge lines. `NLST` gives names as they are, for programs
//! fetch by them, CR and LF alone escaped.
//!
//! A listing never shows what lies outside the root: a symbolic link is
//! shown as what it points to when that is inside the root, and left out
//! otherwise (dangling or leading out); its target's path is never shown.

use std::fs::Metadata;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use super::escape;
use super::folder::{Folder, Lookup};
use super::vfs::{world_may_read, TEMP_PREFIX};

/// One entry of a folder, its links followed.
pub(crate) struct Entry {
    pub(crate) name: Vec<u8>,
    pub(crate) meta: Metadata,
}

/// The entries of a folder (opened beneath the root), read one at a
/// time as the listing goes out: a folder of any size is listed in
/// constant memory. They come in the folder's own order, not sorted
/// (sorting needs them all at once). At most `cap` of them.
///
/// Left out always: upload temp files, links that lead outside the root
/// or nowhere, entries that vanish while they are read. (Names holding
/// CR or LF are shown escaped: see `escape.rs`.)
pub(crate) struct Entries {
    names: nix::dir::OwningIter,
    lookup: Lookup,
    left: usize,
    truncated: bool,
}

impl Entries {
    /// The entries of `folder`, at most `cap`.
    pub(crate) fn new(folder: Folder, cap: usize) -> Entries {
        let (names, lookup) = folder.into_parts();
        Entries {
            names,
            lookup,
            left: cap,
            truncated: false,
        }
    }
}

impl Iterator for Entries {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        // Each turn reads one directory entry; a read error ends the
        // listing (as std's ReadDir does), it is never retried for ever.
        loop {
            let item = self.names.next()?.ok()?;
            let name = item.file_name().to_bytes();
            if name == b"." || name == b".." || name.starts_with(TEMP_PREFIX) {
                continue;
            }
            let Some(meta) = self.lookup.entry_metadata(name) else {
                continue;
            };
            if self.left == 0 {
                self.truncated = true;
                return None;
            }
            self.left -= 1;
            return Some(Entry {
                name: name.to_vec(),
                meta,
            });
        }
    }
}

/// What a listing shows: a folder's entries, or one file.
pub(crate) enum Source {
    Folder(Entries),
    File(Option<Entry>),
}

impl Source {
    /// True if the folder had more entries than the cap allowed.
    pub(crate) fn truncated(&self) -> bool {
        matches!(self, Source::Folder(entries) if entries.truncated)
    }
}

impl Iterator for Source {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        match self {
            Source::Folder(entries) => entries.next(),
            Source::File(entry) => entry.take(),
        }
    }
}

/// How each entry of a listing is written.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Format {
    /// `ls -l` lines (`LIST`, `STAT path`); `now` in Unix seconds.
    Ls { now: i64 },
    /// Fact lines (`MLSD`); `writable`: the session may change things;
    /// `world_only`: it may read only what everyone may (anonymous).
    Facts {
        facts: Facts,
        writable: bool,
        world_only: bool,
    },
    /// Names alone (`NLST`).
    Names,
}

/// A listing's lines, formatted one entry at a time as they are read:
/// the bytes of the data connection (`Read`), or lines for a reply.
pub(crate) struct Lines {
    source: Source,
    format: Format,
    /// The line being sent, and how much of it went.
    line: Vec<u8>,
    sent: usize,
}

impl Lines {
    pub(crate) fn new(source: Source, format: Format) -> Lines {
        Lines {
            source,
            format,
            line: Vec::with_capacity(256),
            sent: 0,
        }
    }

    /// The next whole line, CRLF included.
    pub(crate) fn next_line(&mut self) -> Option<&[u8]> {
        let entry = self.source.next()?;
        self.line.clear();
        self.sent = 0;
        match self.format {
            Format::Ls { now } => ls_line(&mut self.line, &entry.name, &entry.meta, now),
            Format::Facts {
                facts,
                writable,
                world_only,
            } => {
                let readable = !world_only || world_may_read(&entry.meta);
                facts_line(
                    &mut self.line,
                    &entry.name,
                    &entry.meta,
                    facts,
                    writable,
                    readable,
                );
            }
            Format::Names => {
                escape::name_line_into(&mut self.line, &entry.name);
                self.line.extend_from_slice(b"\r\n");
            }
        }
        Some(&self.line)
    }

    /// True if the folder had more entries than the cap allowed (known
    /// once the listing is read).
    pub(crate) fn truncated(&self) -> bool {
        self.source.truncated()
    }
}

impl io::Read for Lines {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            if self.sent == self.line.len() && self.next_line().is_none() {
                break;
            }
            let part = &self.line[self.sent..];
            let k = part.len().min(buf.len() - n);
            buf[n..n + k].copy_from_slice(&part[..k]);
            self.sent += k;
            n += k;
        }
        Ok(n)
    }
}

/// Appends one `ls -l` line: `-rw-r--r--    1 ftp      ftp          5 Jan  2 15:04 name\r\n`,
/// the name escaped (`escape.rs`).
/// `now` (Unix seconds) decides between the time (within six months) and
/// the year, as `ls` does.
pub(crate) fn ls_line(out: &mut Vec<u8>, name: &[u8], meta: &Metadata, now: i64) {
    let kind = meta.file_type();
    let type_char = if kind.is_dir() {
        'd'
    } else if kind.is_symlink() {
        'l'
    } else if kind.is_fifo() {
        'p'
    } else if kind.is_socket() {
        's'
    } else if kind.is_char_device() {
        'c'
    } else if kind.is_block_device() {
        'b'
    } else {
        '-'
    };
    let mode = meta.mode();
    let mut perms = String::with_capacity(10);
    perms.push(type_char);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        perms.push(if bits & 4 != 0 { 'r' } else { '-' });
        perms.push(if bits & 2 != 0 { 'w' } else { '-' });
        perms.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    let mtime = meta.mtime();
    let (year, month, day, hour, minute, _) = civil(mtime);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS[(month - 1) as usize];
    const HALF_YEAR: i64 = 182 * 24 * 3600;
    let _ = if mtime > now - HALF_YEAR && mtime <= now + 3600 {
        write!(
            out,
            "{perms} {:>4} ftp      ftp      {:>12} {month} {day:>2} {hour:02}:{minute:02} ",
            meta.nlink(),
            meta.len()
        )
    } else {
        write!(
            out,
            "{perms} {:>4} ftp      ftp      {:>12} {month} {day:>2}  {year} ",
            meta.nlink(),
            meta.len()
        )
    };
    escape::escape_into(out, name, true);
    out.extend_from_slice(b"\r\n");
}

/// The facts of `MLSD`/`MLST` a client can choose with `OPTS MLST`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Facts {
    pub(crate) kind: bool,
    pub(crate) size: bool,
    pub(crate) modify: bool,
    pub(crate) perm: bool,
}

impl Default for Facts {
    fn default() -> Self {
        Facts {
            kind: true,
            size: true,
            modify: true,
            perm: true,
        }
    }
}

impl Facts {
    /// `OPTS MLST type;size;`: the known facts named, in any case; unknown
    /// ones are ignored (RFC 3659, 7.9).
    pub(crate) fn parse(list: &str) -> Facts {
        let mut facts = Facts {
            kind: false,
            size: false,
            modify: false,
            perm: false,
        };
        for fact in list.split(';') {
            match fact.trim().to_ascii_lowercase().as_str() {
                "type" => facts.kind = true,
                "size" => facts.size = true,
                "modify" => facts.modify = true,
                "perm" => facts.perm = true,
                _ => {}
            }
        }
        facts
    }

    /// The FEAT line's list: every fact, the selected ones starred.
    pub(crate) fn feat(&self) -> String {
        let star = |on: bool| if on { "*" } else { "" };
        format!(
            "type{};size{};modify{};perm{};",
            star(self.kind),
            star(self.size),
            star(self.modify),
            star(self.perm)
        )
    }

    /// The facts chosen, as `OPTS MLST` answers them.
    pub(crate) fn selected(&self) -> String {
        let mut out = String::new();
        for (on, name) in [
            (self.kind, "type;"),
            (self.size, "size;"),
            (self.modify, "modify;"),
            (self.perm, "perm;"),
        ] {
            if on {
                out.push_str(name);
            }
        }
        out
    }
}

/// Appends one fact line: `type=file;size=5;modify=20240102150405;perm=r; name\r\n`,
/// the name escaped (`escape.rs`).
/// `writable`: the session may change things; `readable`: it may read
/// this entry (not so for an anonymous session and a private file): for
/// the `perm` fact.
pub(crate) fn facts_line(
    out: &mut Vec<u8>,
    name: &[u8],
    meta: &Metadata,
    facts: Facts,
    writable: bool,
    readable: bool,
) {
    let is_dir = meta.is_dir();
    if facts.kind {
        out.extend_from_slice(if is_dir { b"type=dir;" } else { b"type=file;" });
    }
    if facts.size && !is_dir {
        let _ = write!(out, "size={};", meta.len());
    }
    if facts.modify {
        let _ = write!(out, "modify={};", timestamp(meta.mtime()));
    }
    if facts.perm {
        let perm = match (is_dir, writable, readable) {
            (true, true, _) => "cdeflmp",
            (true, false, true) => "el",
            (false, true, _) => "adfrw",
            (false, false, true) => "r",
            (_, false, false) => "",
        };
        let _ = write!(out, "perm={perm};");
    }
    out.push(b' ');
    escape::escape_into(out, name, true);
    out.extend_from_slice(b"\r\n");
}

/// `YYYYMMDDHHMMSS` in UTC, as `MDTM` and `modify=` give it.
pub(crate) fn timestamp(unix_seconds: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix_seconds);
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}")
}

/// Now, in Unix seconds.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Unix seconds to (year, month 1-12, day 1-31, hour, minute, second), UTC.
fn civil(unix_seconds: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    (y, m, d, secs / 3600, secs / 60 % 60, secs % 60)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Hinnant).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(timestamp(0), "19700101000000");
        assert_eq!(timestamp(951_782_400), "20000229000000");
        assert_eq!(timestamp(1_704_207_845), "20240102150405");
        assert_eq!(timestamp(4_102_444_799), "20991231235959");
        assert_eq!(timestamp(-1), "19691231235959");
        assert_eq!(civil_from_days(-719_468), (0, 3, 1));
    }

    #[test]
    fn ls_lines() {
        let dir = std::env::temp_dir().join(format!("ftp-ls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f");
        std::fs::write(&file, b"hello").unwrap();
        let meta = std::fs::metadata(&file).unwrap();
        let mut out = Vec::new();
        // Old: the year.
        ls_line(&mut out, b"f", &meta, meta.mtime() + 365 * 86_400);
        let line = String::from_utf8(out).unwrap();
        let (_, _, _, _, _, _) = civil(meta.mtime());
        assert!(line.starts_with("-rw"), "{line}");
        assert!(line.contains(" ftp      ftp                 5 "), "{line}");
        assert!(
            line.ends_with(&format!("  {} f\r\n", civil(meta.mtime()).0)),
            "{line}"
        );
        // Recent: the time.
        let mut out = Vec::new();
        ls_line(&mut out, b"f", &meta, meta.mtime());
        let line = String::from_utf8(out).unwrap();
        let (_, _, _, h, mi, _) = civil(meta.mtime());
        assert!(line.ends_with(&format!(" {h:02}:{mi:02} f\r\n")), "{line}");
        let mut out = Vec::new();
        facts_line(&mut out, b"f", &meta, Facts::default(), false, true);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "type=file;size=5;modify={};perm=r; f\r\n",
                timestamp(meta.mtime())
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn facts_options() {
        let facts = Facts::parse("Type;size;bogus;");
        assert_eq!(facts.selected(), "type;size;");
        assert_eq!(facts.feat(), "type*;size*;modify;perm;");
        assert_eq!(Facts::default().feat(), "type*;size*;modify*;perm*;");
    }
}
