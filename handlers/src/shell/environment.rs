//! The environment a command gets: a short list of variables that a login
//! shell would have, never the rest of the server's.
//!
//! The server's environment is the operator's, not the client's: it may
//! hold secrets (a token in `SOCKETSERVER_SHELL_TOKEN`, cloud credentials,
//! a database URL) that a client who may run commands has no business
//! reading with `env`. So a command starts from an empty environment and
//! gets only what programs need to behave as in a plain shell.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

/// The search path when the server has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Variables passed on from the server's environment when it has them:
/// where programs are, who the user is, and the locale, so that tools
/// print as they do for that user.
const KEPT: &[&str] = &["PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ"];

/// Replaces `command`'s environment with the cleaned one for a command
/// running in `dir`: `PATH` (the server's, or a default), `HOME`, `USER`,
/// `LOGNAME`, `LANG`, `LANGUAGE`, `TZ` and every `LC_*` when the server has
/// them, `SHELL=/bin/sh` (what runs the command), `TERM=dumb` (no terminal
/// at the other end), and `PWD`.
pub(crate) fn clean(command: &mut Command, dir: &Path) {
    command.env_clear();
    for (name, value) in kept(std::env::vars_os()) {
        command.env(name, value);
    }
    if std::env::var_os("PATH").is_none() {
        command.env("PATH", DEFAULT_PATH);
    }
    command
        .env("SHELL", "/bin/sh")
        .env("TERM", "dumb")
        .env("PWD", dir);
}

/// The variables of `vars` that a command may see.
fn kept(
    vars: impl Iterator<Item = (OsString, OsString)>,
) -> impl Iterator<Item = (OsString, OsString)> {
    vars.filter(|(name, _)| {
        let name = name.as_encoded_bytes();
        KEPT.iter().any(|kept| kept.as_bytes() == name) || name.starts_with(b"LC_")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_listed_variables_and_the_locale_are_kept() {
        let vars = [
            ("PATH", "/bin"),
            ("HOME", "/root"),
            ("LC_ALL", "C"),
            ("LC_TIME", "C"),
            ("SOCKETSERVER_SHELL_TOKEN", "secret"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("PATHX", "no"),
            ("XLC_ALL", "no"),
        ]
        .map(|(n, v)| (OsString::from(n), OsString::from(v)));
        let names: Vec<OsString> = kept(vars.into_iter()).map(|(n, _)| n).collect();
        assert_eq!(names, ["PATH", "HOME", "LC_ALL", "LC_TIME"]);
    }
}
