//! The `cd` built-in: each command runs in its own `sh`, so a `cd` there
//! would last for that command only; a plain `cd` is run by the handler,
//! and changes the connection's directory for its later commands.

use std::io;
use std::path::{Path, PathBuf};

use socketserver::error::describe;

use super::protocol::Status;
use super::{strip_word, Reply, Session};

impl Session<'_> {
    /// Runs a plain `cd`: the reply is the new directory, resolved, or the
    /// error; the previous directory is kept for `cd -`.
    pub(super) fn cd(&mut self, target: Cd<'_>) -> Reply {
        let home = || std::env::var_os("HOME").map(PathBuf::from);
        let (shown, wanted) = match target {
            Cd::Home => ("~".to_string(), home()),
            Cd::Previous => ("-".to_string(), self.previous.clone()),
            Cd::Path(path) => {
                let shown = String::from_utf8_lossy(path).into_owned();
                let wanted = match path.strip_prefix(b"~") {
                    Some(rest) if rest.is_empty() || rest.starts_with(b"/") => {
                        home().map(|h| h.join(bytes_path(rest.strip_prefix(b"/").unwrap_or(rest))))
                    }
                    _ => Some(self.cwd.join(bytes_path(path))),
                };
                (shown, wanted)
            }
        };
        let Some(wanted) = wanted else {
            let what = if matches!(target, Cd::Previous) {
                "OLDPWD"
            } else {
                "HOME"
            };
            return Reply::done(format!("cd: {what} not set\n"), Status::Exit(1));
        };
        let resolved = wanted.canonicalize().and_then(|dir| {
            if dir.is_dir() {
                Ok(dir)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    "not a directory",
                ))
            }
        });
        match resolved {
            Ok(dir) => {
                log::info!("{}: cd {}", self.peer, dir.display());
                self.previous = Some(std::mem::replace(&mut self.cwd, dir));
                let mut body = self.cwd.as_os_str().as_encoded_bytes().to_vec();
                body.push(b'\n');
                Reply::done(body, Status::Exit(0))
            }
            Err(e) => Reply::done(format!("cd: {shown}: {}\n", describe(&e)), Status::Exit(1)),
        }
    }
}

/// The argument of a `cd` the handler runs itself.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Cd<'a> {
    /// `cd` or `cd ~`.
    Home,
    /// `cd -`.
    Previous,
    /// `cd DIR`, `cd 'DIR'`, `cd "DIR"`, `cd ~/DIR`.
    Path(&'a [u8]),
}

/// Recognizes a plain `cd`: the word `cd` and at most one argument, with no
/// shell syntax. A `cd` combined with other commands (`cd src && make`)
/// is not one: it runs in `sh` and its effect ends with that command.
pub(super) fn parse_cd(command: &[u8]) -> Option<Cd<'_>> {
    let arg = strip_word(command, b"cd")?;
    if arg.is_empty() {
        return Some(Cd::Home);
    }
    for quote in [b'\'', b'"'] {
        if arg.len() >= 2 && arg[0] == quote && arg[arg.len() - 1] == quote {
            let inner = &arg[1..arg.len() - 1];
            if inner.contains(&quote)
                || (quote == b'"' && inner.iter().any(|b| b"$`\\".contains(b)))
            {
                return None;
            }
            return Some(Cd::Path(inner));
        }
    }
    let special = |b: &u8| b.is_ascii_whitespace() || b";&|<>()$`\\*?['\"{}".contains(b);
    if arg.iter().any(special) {
        return None;
    }
    Some(match arg {
        b"-" => Cd::Previous,
        b"~" => Cd::Home,
        _ => Cd::Path(arg),
    })
}

fn bytes_path(bytes: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_cds_are_recognized() {
        assert_eq!(parse_cd(b"cd"), Some(Cd::Home));
        assert_eq!(parse_cd(b"cd  ~"), Some(Cd::Home));
        assert_eq!(parse_cd(b"cd -"), Some(Cd::Previous));
        assert_eq!(parse_cd(b"cd /tmp"), Some(Cd::Path(b"/tmp")));
        assert_eq!(parse_cd(b"cd ~/x"), Some(Cd::Path(b"~/x")));
        assert_eq!(parse_cd(b"cd 'my dir'"), Some(Cd::Path(b"my dir")));
        assert_eq!(parse_cd(b"cd \"my dir\""), Some(Cd::Path(b"my dir")));
    }

    #[test]
    fn cds_with_shell_syntax_are_left_to_sh() {
        for command in [
            &b"cd src && make"[..],
            b"cd a b",
            b"cd $HOME",
            b"cd \"$HOME\"",
            b"cd x; ls",
            b"cd *",
            b"cdrom",
            b"echo cd",
            b"cd 'a'b'",
        ] {
            assert_eq!(parse_cd(command), None, "{}", command.escape_ascii());
        }
    }
}
