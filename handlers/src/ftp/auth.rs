//! Users and their rights: named users with passwords (read-write), the
//! anonymous user (read-only), and `--read-only` for everyone.
//!
//! Passwords are compared in constant time and never logged.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::Path;

/// What a logged-in user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Download and list only.
    ReadOnly,
    /// Upload, delete, rename, make and remove folders too.
    ReadWrite,
}

/// The named users and their passwords.
#[derive(Clone, Default)]
pub(crate) struct Users {
    passwords: HashMap<String, String>,
}

impl fmt::Debug for Users {
    /// Names only: passwords never reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.passwords.keys().collect();
        names.sort();
        f.debug_struct("Users").field("names", &names).finish()
    }
}

impl Users {
    pub(crate) fn insert(&mut self, name: &str, password: &str) {
        self.passwords
            .insert(name.to_string(), password.to_string());
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.passwords.is_empty()
    }

    /// True if `name` exists and `password` is its password.
    pub(crate) fn check(&self, name: &str, password: &[u8]) -> bool {
        // Compare against something even for an unknown name, so that the
        // time taken does not tell which names exist.
        let expected = self.passwords.get(name);
        let same = constant_time_eq(
            expected.map_or(b"\0unknown user\0".as_slice(), |p| p.as_bytes()),
            password,
        );
        expected.is_some() && same
    }
}

/// True if the anonymous user is meant (any letter case).
pub(crate) fn is_anonymous_name(name: &str) -> bool {
    name.eq_ignore_ascii_case("anonymous") || name.eq_ignore_ascii_case("ftp")
}

/// Compares two byte strings in time that depends on their lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, &x) in a.iter().enumerate() {
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

/// Parses `NAME:PASSWORD` (the password may hold colons).
///
/// ```
/// use socketserver_handlers::ftp::parse_user;
/// assert_eq!(parse_user("alice:s3:cret"), Ok(("alice".into(), "s3:cret".into())));
/// assert!(parse_user("alice").is_err());
/// assert!(parse_user(":pw").is_err());
/// ```
///
/// # Errors
/// A message if there is no colon, the name is empty, or either part holds
/// a control character.
pub fn parse_user(text: &str) -> Result<(String, String), String> {
    let (name, password) = text
        .split_once(':')
        .ok_or_else(|| "write a user as NAME:PASSWORD".to_string())?;
    if name.is_empty() {
        return Err("a user name cannot be empty".to_string());
    }
    if name.contains(char::is_whitespace) {
        return Err(format!("the user name {name:?} holds a space"));
    }
    if text.chars().any(char::is_control) {
        return Err("a user name or password holds a control character".to_string());
    }
    if is_anonymous_name(name) {
        return Err(format!(
            "{name:?} is the anonymous user's name: use --anonymous"
        ));
    }
    Ok((name.to_string(), password.to_string()))
}

/// Reads a users file: one `NAME:PASSWORD` a line; blank lines and lines
/// starting with `#` are skipped.
///
/// # Errors
/// `InvalidData` naming the line for a malformed line; any error reading.
pub fn read_users_file(path: &Path) -> io::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)?;
    let mut users = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let user = parse_user(line).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}, line {}: {e}", path.display(), number + 1),
            )
        })?;
        users.push(user);
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_checked_exactly() {
        let mut users = Users::default();
        users.insert("alice", "secret");
        assert!(users.check("alice", b"secret"));
        assert!(!users.check("alice", b"secre"));
        assert!(!users.check("alice", b"secret!"));
        assert!(!users.check("alice", b""));
        assert!(!users.check("bob", b"secret"));
        assert!(!users.check("bob", b"\0unknown user\0"));
    }

    #[test]
    fn debug_shows_no_password() {
        let mut users = Users::default();
        users.insert("alice", "hunter2");
        let shown = format!("{users:?}");
        assert!(shown.contains("alice"));
        assert!(!shown.contains("hunter2"));
    }

    #[test]
    fn users_file() {
        let dir = std::env::temp_dir().join(format!("ftp-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("users");
        std::fs::write(&file, "# users\n\nalice:a:b\r\nbob:pw\n").unwrap();
        assert_eq!(
            read_users_file(&file).unwrap(),
            vec![
                ("alice".to_string(), "a:b".to_string()),
                ("bob".to_string(), "pw".to_string())
            ]
        );
        std::fs::write(&file, "alice:a\nnocolon\n").unwrap();
        let e = read_users_file(&file).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
