//! The Shell handler's commands, as `serve` runs them: what a command may
//! see (a cleaned environment), what it may not outlive (its cgroup, even
//! after `setsid`), what its output costs the server (a spool file, not
//! memory), and the limit `client shell` puts on what a server announces.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::Instant;

use crate::shell::{client_shell, Raw, TempDir};
use crate::util::{serve_command, ServerProcess, IO_TIMEOUT, TIMEOUT};

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

// ------------------------------------------------- the client's reply limit

/// A fake Shell server for one connection, in a thread: it answers the
/// hello with `greeting`, then each command line with the next of
/// `replies`, then reads until the client closes. Returns its address and
/// the thread, which ends within the test's timeouts whatever the client
/// does.
fn fake_server(greeting: &'static [u8], replies: Vec<Vec<u8>>) -> (String, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake server");
    let addr = listener.local_addr().unwrap().to_string();
    listener.set_nonblocking(true).unwrap();
    let thread = thread::spawn(move || {
        let deadline = Instant::now() + TIMEOUT;
        let stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no client within {TIMEOUT:?}");
                    thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        reader.read_until(b'\n', &mut line).expect("read the hello");
        assert_eq!(line, b"#shell/1\n");
        let _ = reader.get_mut().write_all(greeting);
        for reply in replies {
            line.clear();
            if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                return;
            }
            // The client may close before it has all of it: that is the point.
            let _ = reader.get_mut().write_all(&reply);
        }
        // Until the client closes (or the read times out).
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
    });
    (addr, thread)
}

/// `client shell` refuses a reply announced longer than its limit (the
/// server's default 16 MiB, or `--max-output`) before reading any of it: a
/// malicious server announcing 2^63 bytes, then sending more than the
/// limit, gets a one-line error and exit status 1, in status mode and in
/// the tutorial's protocol; a reply at the limit exactly comes through.
#[test]
fn client_shell_refuses_a_reply_longer_than_its_limit() {
    let huge = 1u64 << 63;
    let mut reply = format!("{huge} exit=0 time=0.001\n").into_bytes();
    reply.resize(reply.len() + 17 * 1024 * 1024, b'x');
    let (addr, server) = fake_server(b"#shell/1 ok\n", vec![reply]);
    let out = client_shell(&addr, &[], b"echo hi\n");
    server.join().expect("the fake server");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "client: {addr} announced a reply of {huge} bytes, over the limit of 16777216 bytes (--max-output)\n"
        )
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stdout, b"");

    // The tutorial's protocol: the answer to the hello is already a length.
    let (addr, server) = fake_server(b"9223372036854775808", vec![]);
    let out = client_shell(&addr, &[], b"echo hi\n");
    server.join().expect("the fake server");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "client: {addr} announced a reply of {huge} bytes, over the limit of 16777216 bytes (--max-output)\n"
        )
    );
    assert_eq!(out.status.code(), Some(1));

    // --max-output sets the limit; at the limit exactly, the reply is whole.
    let replies = vec![
        b"10 exit=0 time=0.001\n0123456789".to_vec(),
        b"11 exit=0 time=0.001\nhello world".to_vec(),
    ];
    let (addr, server) = fake_server(b"#shell/1 ok\n", replies);
    let out = client_shell(
        &addr,
        &["--max-output", "10"],
        b"seq 0 9\necho hello world\n",
    );
    server.join().expect("the fake server");
    assert_eq!(out.stdout, b"0123456789");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "[exit 0, 0.001 s]\nclient: {addr} announced a reply of 11 bytes, over the limit of 10 bytes (--max-output)\n"
        )
    );
    assert_eq!(out.status.code(), Some(1));
}
