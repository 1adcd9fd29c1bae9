//! `TYPE A`: line ends converted on the way, chunk by chunk (LF to CRLF
//! when sending, CRLF to LF when receiving), with a CR at a chunk's end
//! held until the next chunk says what follows it.

/// ASCII mode, sending: each LF not already after a CR becomes CRLF.
pub(crate) fn to_crlf(input: &[u8], out: &mut Vec<u8>, after_cr: &mut bool) {
    out.clear();
    for &b in input {
        if b == b'\n' && !*after_cr {
            out.push(b'\r');
        }
        out.push(b);
        *after_cr = b == b'\r';
    }
}

/// ASCII mode, receiving, in place: CRLF becomes LF. The chunk is in
/// `buf[1..1 + n]`; `buf[0]` is free for a CR held back from the last
/// chunk (a CR at a chunk's end waits to see what follows it). Returns the
/// range of the converted bytes.
pub(crate) fn from_crlf(buf: &mut [u8], n: usize, held_cr: &mut bool, eof: bool) -> (usize, usize) {
    let mut start = 1;
    if *held_cr {
        *held_cr = false;
        if n == 0 || buf[1] != b'\n' {
            buf[0] = b'\r';
            start = 0;
        }
    }
    let mut write = start;
    let end = 1 + n;
    let mut read = start;
    while read < end {
        let b = buf[read];
        if b == b'\r' {
            if read + 1 == end {
                if !eof {
                    *held_cr = true;
                    break;
                }
            } else if buf[read + 1] == b'\n' {
                read += 1;
                continue;
            }
        }
        buf[write] = b;
        write += 1;
        read += 1;
    }
    (start, write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_sending() {
        let mut out = Vec::new();
        let mut after_cr = false;
        to_crlf(b"a\nb\r\nc\r", &mut out, &mut after_cr);
        assert_eq!(out, b"a\r\nb\r\nc\r");
        to_crlf(b"\nd\n", &mut out, &mut after_cr);
        assert_eq!(out, b"\nd\r\n");
    }

    fn receive_ascii(chunks: &[&[u8]]) -> Vec<u8> {
        let mut held = false;
        let mut file = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let mut buf = vec![0u8; 1 + chunk.len()];
            buf[1..].copy_from_slice(chunk);
            let eof = i + 1 == chunks.len();
            let (s, e) = from_crlf(&mut buf, chunk.len(), &mut held, eof);
            file.extend_from_slice(&buf[s..e]);
        }
        assert!(!held);
        file
    }

    #[test]
    fn ascii_receiving() {
        assert_eq!(receive_ascii(&[b"a\r\nb\r\n"]), b"a\nb\n");
        assert_eq!(receive_ascii(&[b"a\r", b"\nb"]), b"a\nb");
        assert_eq!(receive_ascii(&[b"a\r", b"b"]), b"a\rb");
        assert_eq!(receive_ascii(&[b"a\r", b""]), b"a\r");
        assert_eq!(receive_ascii(&[b"a\r\r\n"]), b"a\r\n");
        assert_eq!(receive_ascii(&[b"\r", b"\r", b"\n"]), b"\r\n");
        assert_eq!(receive_ascii(&[b"x\r"]), b"x\r");
    }
}
