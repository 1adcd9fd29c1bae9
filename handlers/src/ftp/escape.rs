//! Names made safe to show. A file name is bytes chosen by whoever made
//! the file (an uploader, say): shown as they are, an escape sequence
//! (`ESC [ 31 m`, `ESC ] 0 ; title BEL`) rewrites the terminal of the
//! person reading a listing, a bidirectional override (U+202E) makes
//! `evil\u{202e}txt.exe` read `evilexe.txt`, and a CR or LF forges lines.
//!
//! So wherever a name is shown, these are written as escapes:
//!
//! * C0 controls (0x00-0x1F) and DEL (0x7F): `\x1b`, two lower-case hex
//!   digits;
//! * bytes 0x80-0x9F outside valid UTF-8 (C1 controls to an 8-bit
//!   terminal): `\x9b`;
//! * C1 controls as characters (U+0080-U+009F), the bidirectional
//!   controls (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069) and
//!   the line and paragraph separators (U+2028, U+2029): `\u{202e}`;
//! * in listings, the backslash itself: `\\`, so that every escape reads
//!   one way (a backslash cannot be in a name a client reaches anyway: it
//!   separates names, as `/` does).
//!
//! Everything else passes as it is, other invalid UTF-8 included (a
//! Latin-1 name stays Latin-1).

use std::io::Write;

/// True for the characters that are written `\u{...}`.
fn is_hidden_char(c: char) -> bool {
    matches!(c,
        '\u{80}'..='\u{9f}'
        | '\u{61c}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}'
        | '\u{2028}'
        | '\u{2029}')
}

/// True for the characters that must never reach a reader as they are:
/// controls, bidirectional controls, line and paragraph separators.
pub(crate) fn is_unsafe_char(c: char) -> bool {
    c.is_control() || is_hidden_char(c)
}

/// Appends `c`, escaped if it is unsafe; the backslash too if
/// `backslash`.
fn push_char(out: &mut Vec<u8>, c: char, backslash: bool) {
    if c == '\\' && backslash {
        out.extend_from_slice(b"\\\\");
    } else if (c as u32) < 0x20 || c == '\u{7f}' {
        let _ = write!(out, "\\x{:02x}", c as u32);
    } else if is_unsafe_char(c) {
        let _ = write!(out, "\\u{{{:x}}}", c as u32);
    } else {
        let mut utf8 = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
    }
}

/// Appends `name` with every unsafe byte or character escaped (see the
/// module's docs); `backslash`: the backslash too (listings).
pub(crate) fn escape_into(out: &mut Vec<u8>, name: &[u8], backslash: bool) {
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_char(out, c, backslash);
        }
        for &b in chunk.invalid() {
            if (0x80..=0x9f).contains(&b) {
                let _ = write!(out, "\\x{b:02x}");
            } else {
                out.push(b);
            }
        }
    }
}

/// Text safe to put in a reply or a log line: unsafe characters escaped
/// (the backslash left as it is), invalid UTF-8 as its replacement
/// character.
pub(crate) fn printable(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    for c in String::from_utf8_lossy(bytes).chars() {
        push_char(&mut out, c, false);
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `name` as one line of a name list (`NLST`): as it is, for
/// programs fetch by these names, except that CR and LF are escaped
/// (`\x0d`, `\x0a`), so that no name breaks its line (such a name cannot
/// be sent in a command anyway).
pub(crate) fn name_line_into(out: &mut Vec<u8>, name: &[u8]) {
    for &b in name {
        match b {
            b'\r' => out.extend_from_slice(b"\\x0d"),
            b'\n' => out.extend_from_slice(b"\\x0a"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(name: &[u8], backslash: bool) -> String {
        let mut out = Vec::new();
        escape_into(&mut out, name, backslash);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn controls_and_bidi_are_escaped() {
        assert_eq!(escaped(b"red\x1b[31m.txt", true), "red\\x1b[31m.txt");
        assert_eq!(escaped(b"a\r\nb\x7f\x00", true), "a\\x0d\\x0ab\\x7f\\x00");
        assert_eq!(
            escaped("evil\u{202e}txt.exe".as_bytes(), true),
            "evil\\u{202e}txt.exe"
        );
        assert_eq!(
            escaped("x\u{85}y\u{2028}".as_bytes(), true),
            "x\\u{85}y\\u{2028}"
        );
        assert_eq!(
            escaped("\u{61c}\u{200f}\u{2069}".as_bytes(), false),
            "\\u{61c}\\u{200f}\\u{2069}"
        );
        assert_eq!(escaped(b"a\\b", true), "a\\\\b");
        assert_eq!(escaped(b"a\\b", false), "a\\b");
        assert_eq!(escaped("目录 é".as_bytes(), true), "目录 é");
    }

    #[test]
    fn invalid_utf8_passes_but_c1_bytes() {
        let mut out = Vec::new();
        escape_into(&mut out, b"caf\xe9\x9b", true);
        assert_eq!(out, b"caf\xe9\\x9b");
    }

    #[test]
    fn replies_and_name_lists() {
        assert_eq!(printable(b"a\r\n200 ok"), "a\\x0d\\x0a200 ok");
        assert_eq!(printable(b"\xff"), "\u{fffd}");
        assert_eq!(printable("\u{202e}".as_bytes()), "\\u{202e}");
        let mut out = Vec::new();
        name_line_into(&mut out, "two\nlines\r\x1b\u{202e}".as_bytes());
        assert_eq!(out, "two\\x0alines\\x0d\x1b\u{202e}".as_bytes());
    }
}
