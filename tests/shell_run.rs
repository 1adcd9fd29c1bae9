//! The Shell handler's commands, as `serve` runs them: what a command may
//! see (a cleaned environment), what it may not outlive (its cgroup, even
//! after `setsid`), what its output costs the server (a spool file, not
//! memory), and the limit `client shell` puts on what a server announces.

use std::collections::BTreeSet;

use crate::shell::{Raw, TempDir};
use crate::util::{serve_command, ServerProcess};

/// `serve --handler shell` on an ephemeral loopback port, in `dir`, with
/// `vars` added to its environment.
fn serve_shell_with_env(dir: &TempDir, vars: &[(&str, &str)], args: &[&str]) -> ServerProcess {
    let mut command = serve_command();
    command
        .args(["--handler", "shell", "--bind", "127.0.0.1:0"])
        .args(args)
        .current_dir(dir.path());
    for (name, value) in vars {
        command.env(name, value);
    }
    ServerProcess::start(command)
}

// ------------------------------------------------------------ environment

/// A command sees a short, fixed list of variables, never the rest of the
/// server's environment (where secrets live): a marker variable given to
/// `serve` does not show in `env`, while `PATH` still finds programs.
#[test]
fn commands_get_a_cleaned_environment() {
    let dir = TempDir::new("environment");
    let server = serve_shell_with_env(
        &dir,
        &[
            ("SHELL_TEST_SECRET", "marker-5d41402a"),
            ("LC_TIME", "C"),
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ],
        &[],
    );
    let mut raw = Raw::status_mode(&server.addr);
    let (status, body) = raw.run("env");
    assert_eq!(status, "exit=0");
    let text = String::from_utf8(body).expect("env prints text");
    assert!(
        !text.contains("marker-5d41402a"),
        "the secret leaked: {text}"
    );
    let vars: BTreeSet<(&str, &str)> = text
        .lines()
        .map(|line| line.split_once('=').expect("NAME=VALUE"))
        .collect();
    let names: BTreeSet<&str> = vars.iter().map(|(name, _)| *name).collect();
    // What the server passes on, plus what `sh` itself may add.
    let allowed = [
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "SHELL", "TERM", "PWD",
        "OLDPWD", "SHLVL", "_",
    ];
    for name in &names {
        assert!(
            allowed.contains(name) || name.starts_with("LC_"),
            "unexpected variable {name} in {text}"
        );
    }
    let dir_text = dir.path().to_str().expect("a UTF-8 temporary directory");
    for expected in [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("TERM", "dumb"),
        ("SHELL", "/bin/sh"),
        ("LC_TIME", "C"),
        ("PWD", dir_text),
    ] {
        assert!(vars.contains(&expected), "{expected:?} missing in {text}");
    }
    // PATH finds programs.
    assert_eq!(
        raw.run("seq 3"),
        ("exit=0".to_string(), b"1\n2\n3\n".to_vec())
    );
}
