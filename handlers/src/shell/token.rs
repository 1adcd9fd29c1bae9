//! The shell's secret: how long it must be, how a fresh one is made, and
//! how a given one is compared.

use std::io::{self, Read};

/// The shortest token accepted, in bytes: 16 bytes of a random token are
/// 128 bits, beyond guessing at any rate a network allows.
pub const MIN_TOKEN_LEN: usize = 16;

/// Random bytes in a generated token: 256 bits.
const GENERATED_BYTES: usize = 32;

/// A fresh token: 32 bytes from `/dev/urandom` (the kernel's CSPRNG, the
/// source `getrandom` reads too, with no dependency), as 64 lower-case hex
/// digits, so that it is printable and can be typed.
///
/// # Errors
/// If `/dev/urandom` cannot be read.
pub fn generate() -> io::Result<String> {
    let mut bytes = [0u8; GENERATED_BYTES];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares a token in time that depends only on the expected token's
/// length, never on where the first difference is, so that timing does not
/// tell an attacker how many leading bytes they guessed right.
///
/// ```
/// use socketserver_handlers::shell::same_token;
/// assert!(same_token(b"s3cret", b"s3cret"));
/// assert!(!same_token(b"s3creT", b"s3cret"));
/// assert!(!same_token(b"s3cre", b"s3cret"));
/// ```
pub fn same_token(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = u8::from(given.len() != expected.len());
    for (i, &e) in expected.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(!e);
        difference |= std::hint::black_box(g ^ e);
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token(b"abc", b"abc"));
        assert!(!same_token(b"abd", b"abc"));
        assert!(!same_token(b"ab", b"abc"));
        assert!(!same_token(b"abcd", b"abc"));
        assert!(!same_token(b"", b"abc"));
        assert!(same_token(b"", b""));
        // A missing byte never matches, whatever the expected byte is.
        assert!(!same_token(b"a", b"a\0"));
    }

    #[test]
    fn generated_tokens_are_long_hex_and_differ() {
        let one = generate().unwrap();
        let two = generate().unwrap();
        assert_eq!(one.len(), 64);
        assert!(one.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(one, two);
    }
}
