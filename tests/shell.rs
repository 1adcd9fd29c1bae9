//! The Shell handler (the tutorial's remote shell) served by the real
//! `serve` binary: driven by the tutorial's own fixed client, by raw clients
//! in each of its three modes, and by the real `client shell`; binary
//! output, its working directory, its log (the helpers the shell tests
//! share are in `shell_util.rs`; its token and policy are in
//! `shell_auth.rs`, its commands as processes, their limits, kills and
//! reaping in `shell_processes.rs`).

use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::{run_with_input, wait_exit, wait_until, ServerProcess, TIMEOUT};

pub(crate) use crate::shell_util::*;

// ------------------------------------------------------ the tutorial's client

threads_and_events!(
    tutorial_client_prints_the_tutorials_transcript,
    tutorial_client_prints_the_tutorials_transcript_event,
    tutorial_client_prints_the_tutorials_transcript_in
);

/// The tutorial's fixed client, unmodified, typing `echo hello`, `ls`, a
/// command with no output and one whose output is over 1024 bytes (the case
/// the size/ack fix exists for): each reply prints as the tutorial's
/// client prints it, length first, then the whole output.
fn tutorial_client_prints_the_tutorials_transcript_in(mode: &[&str]) {
    let dir = TempDir::new("tutorial");
    fs::write(dir.join("a.txt"), "a").unwrap();
    fs::write(dir.join("b.txt"), "b").unwrap();
    let server = serve_shell(dir.path(), mode);
    let numbers: String = (1..=400).map(|n| format!("{n}\n")).collect();
    assert!(numbers.len() > 1024);
    let transcript = tutorial_client(&server, "echo hello\nls\ntrue\nseq 1 400\n");
    assert_eq!(
        transcript,
        [
            tutorial_transcript("hello\n"),
            tutorial_transcript("a.txt\nb.txt\n"),
            tutorial_transcript("cmd has no output..."),
            tutorial_transcript(&numbers),
            PROMPT.to_string(),
        ]
        .concat()
    );
}

threads_and_events!(
    tutorial_mode_waits_for_the_acknowledgement,
    tutorial_mode_waits_for_the_acknowledgement_event,
    tutorial_mode_waits_for_the_acknowledgement_in
);

/// On the wire, in tutorial mode: the length alone, then nothing until the
/// client acknowledges (the tutorial's 方式2), then exactly the output. The
/// length can never arrive glued to the output.
fn tutorial_mode_waits_for_the_acknowledgement_in(mode: &[&str]) {
    let dir = TempDir::new("ack");
    let server = serve_shell(dir.path(), mode);
    let mut raw = Raw::connect(&server.addr);
    raw.send(b"seq 1 400");
    raw.expect(b"1492");
    raw.expect_silence(Duration::from_millis(300));
    raw.send(b"ok");
    let numbers: String = (1..=400).map(|n| format!("{n}\n")).collect();
    raw.expect(numbers.as_bytes());
    raw.tutorial("printf '%s' 'no newline'", b"no newline");
    raw.tutorial("true", b"cmd has no output...");
}

threads_and_events!(
    line_client_gets_a_length_line_then_the_output,
    line_client_gets_a_length_line_then_the_output_event,
    line_client_gets_a_length_line_then_the_output_in
);

/// Line mode (nc, scripts): each line is a command, answered with its
/// length, a newline and the output; several lines in one write each get
/// their reply, in order; no acknowledgement is waited for.
fn line_client_gets_a_length_line_then_the_output_in(mode: &[&str]) {
    let dir = TempDir::new("lines");
    let server = serve_shell(dir.path(), mode);
    let mut raw = Raw::connect(&server.addr);
    raw.send(b"echo hello\n");
    raw.expect(b"6\nhello\n");
    raw.send(b"true\r\nprintf abc\necho one; echo two >&2\n");
    raw.expect(b"20\ncmd has no output...3\nabc8\none\ntwo\n");
}

// ----------------------------------------------------------- client shell

threads_and_events!(
    client_shell_shows_output_and_exit_status,
    client_shell_shows_output_and_exit_status_event,
    client_shell_shows_output_and_exit_status_in
);

/// `client shell` prints each command's output exactly on standard output
/// and its exit status on standard error, one reply after the other.
fn client_shell_shows_output_and_exit_status_in(mode: &[&str]) {
    let dir = TempDir::new("client");
    let server = serve_shell(dir.path(), mode);
    let out = client_shell(
        &server.addr,
        &[],
        b"echo hello\necho oops >&2; exit 3\nprintf abc\ntrue\nkill -KILL $$\nexit\necho never\n",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\noops\nabc");
    assert_eq!(
        status_lines(&out.stderr),
        [
            "[exit 0]",
            "[exit 3]",
            "[exit 0]",
            "[exit 0]",
            "[killed by signal 9]"
        ]
    );
    assert_eq!(out.status.code(), Some(0));
}

threads_and_events!(
    status_mode_reports_how_each_command_ended,
    status_mode_reports_how_each_command_ended_event,
    status_mode_reports_how_each_command_ended_in
);

/// On the wire, in status mode: the `#shell/1` hello is answered
/// `#shell/1 ok`, and each reply is `LEN STATUS time=SECS` then exactly the
/// output (empty output is empty: no tutorial text).
fn status_mode_reports_how_each_command_ended_in(mode: &[&str]) {
    let dir = TempDir::new("status");
    let server = serve_shell(dir.path(), mode);
    let mut raw = Raw::status_mode(&server.addr);
    assert_eq!(raw.run("echo hi"), ("exit=0".to_string(), b"hi\n".to_vec()));
    assert_eq!(raw.run("exit 7"), ("exit=7".to_string(), Vec::new()));
    assert_eq!(
        raw.run("kill -TERM $$"),
        ("signal=15".to_string(), Vec::new())
    );
    assert_eq!(
        raw.run("echo out; echo err >&2; echo out2"),
        ("exit=0".to_string(), b"out\nerr\nout2\n".to_vec())
    );
    // The hello is only a hello first: later it is a shell comment.
    assert_eq!(raw.run("#shell/1"), ("exit=0".to_string(), Vec::new()));
}

threads_and_events!(
    over_long_line_gets_an_error_then_eof,
    over_long_line_gets_an_error_then_eof_event,
    over_long_line_gets_an_error_then_eof_in
);

/// A line over the limit (64 KiB) gets one error reply, then the server
/// closes in order.
fn over_long_line_gets_an_error_then_eof_in(mode: &[&str]) {
    let dir = TempDir::new("long");
    let server = serve_shell(dir.path(), mode);
    let mut raw = Raw::status_mode(&server.addr);
    raw.send(&vec![b'x'; 70 * 1024]);
    raw.send(b"\n");
    let header = raw.read_line();
    let body = b"error: line longer than 65536 bytes\n";
    assert!(
        header.starts_with(&format!("{} error time=", body.len())),
        "{header:?}"
    );
    raw.expect(body);
    raw.expect_eof();
}

/// `client shell` against the tutorial's own server (方式2): it notices the
/// server speaks only the tutorial's protocol, says so, and still runs
/// commands (without exit statuses).
#[test]
fn client_shell_against_the_tutorials_python_server() {
    let mut python = Command::new("python3");
    python.args(["-c", TUTORIAL_SERVER]);
    let mut server = ServerProcess::start(python);
    let out = client_shell(&server.addr, &[], b"echo hello\nseq 1 400\n");
    let numbers: String = (1..=400).map(|n| format!("{n}\n")).collect();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("hello\n{numbers}")
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "client: {} speaks the tutorial's protocol: no exit statuses\n",
            server.addr
        )
    );
    assert_eq!(out.status.code(), Some(0));
    let status = wait_exit(&mut server.child, TIMEOUT);
    assert!(status.success(), "the tutorial's server: {status}");
}

/// The tutorial's SSH server with its fix (方式2: length, wait for the
/// acknowledgement, output), on a free port, ending after its one client.
/// It prints the line `serve` prints so that ServerProcess can read the
/// port.
const TUTORIAL_SERVER: &str = r#"
import socket
import os
server = socket.socket()
server.bind(('127.0.0.1', 0))
server.listen(5)
print("serving tutorial on 127.0.0.1:%d (sync)" % server.getsockname()[1], flush=True)

conn, addr = server.accept()
while True:
    data = conn.recv(1024)
    if not data:
        break
    cmd_res = os.popen(data.decode()).read()
    if len(cmd_res) == 0:
        cmd_res = "cmd has no output..."
    conn.send(str(len(cmd_res.encode())).encode("utf-8"))
    client_ack = conn.recv(1024)
    conn.send(cmd_res.encode("utf-8"))
server.close()
"#;

// ------------------------------------------------------------------ limits

threads_and_events!(
    binary_output_arrives_intact,
    binary_output_arrives_intact_event,
    binary_output_arrives_intact_in
);

/// 10 MiB of binary output (every byte value) comes through byte for byte:
/// through `client shell` to a pipe, and raw in status mode; the MD5 sums
/// (md5sum's) agree with the file's.
fn binary_output_arrives_intact_in(mode: &[&str]) {
    let dir = TempDir::new("binary");
    let blob = pseudo_random(10 * 1024 * 1024);
    fs::write(dir.join("blob"), &blob).unwrap();
    let server = serve_shell(dir.path(), mode);

    let out = client_shell(&server.addr, &[], b"cat blob\n");
    assert_eq!(status_lines(&out.stderr), ["[exit 0]"]);
    assert_eq!(md5sum(&out.stdout), md5sum(&blob));
    assert!(out.stdout == blob, "the bytes differ");

    let mut raw = Raw::status_mode(&server.addr);
    let (status, body) = raw.run("cat blob");
    assert_eq!(status, "exit=0");
    assert_eq!(md5sum(&body), md5sum(&blob));
    assert!(body == blob, "the bytes differ");
}

/// Deterministic bytes in which every value occurs (xorshift).
pub(crate) fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut bytes: Vec<u8> = (0..=255).collect();
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// The MD5 of `bytes`, by md5sum.
pub(crate) fn md5sum(bytes: &[u8]) -> String {
    let mut md5 = Command::new("md5sum");
    md5.stdin(Stdio::piped());
    let out = run_with_input(md5, bytes);
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

// --------------------------------------------------------------------- cd

threads_and_events!(
    cd_persists_within_a_connection_only,
    cd_persists_within_a_connection_only_event,
    cd_persists_within_a_connection_only_in
);

/// `cd` changes the connection's directory for its later commands, and
/// replies with the new directory or the error; another connection starts
/// where the server started; a `cd` inside a compound command lasts for
/// that command only.
fn cd_persists_within_a_connection_only_in(mode: &[&str]) {
    let dir = TempDir::new("cd");
    fs::create_dir(dir.join("sub")).unwrap();
    fs::create_dir(dir.join("my dir")).unwrap();
    let server = serve_shell(dir.path(), mode);
    let top = format!("{}\n", dir.path().display());
    let sub = format!("{}/sub\n", dir.path().display());

    let mut one = Raw::status_mode(&server.addr);
    assert_eq!(
        one.run("cd sub"),
        ("exit=0".into(), sub.clone().into_bytes())
    );
    assert_eq!(one.run("pwd"), ("exit=0".into(), sub.clone().into_bytes()));
    assert_eq!(
        one.run("cd nope"),
        (
            "exit=1".into(),
            b"cd: nope: no such file or directory\n".to_vec()
        )
    );
    assert_eq!(one.run("pwd"), ("exit=0".into(), sub.clone().into_bytes()));
    assert_eq!(
        one.run("cd .."),
        ("exit=0".into(), top.clone().into_bytes())
    );
    assert_eq!(one.run("cd -"), ("exit=0".into(), sub.clone().into_bytes()));
    assert_eq!(
        one.run("cd '../my dir'"),
        (
            "exit=0".into(),
            format!("{}/my dir\n", dir.path().display()).into_bytes()
        )
    );
    assert_eq!(
        one.run("cd ../sub && pwd"),
        ("exit=0".into(), sub.clone().into_bytes())
    );
    assert_eq!(
        one.run("pwd"),
        (
            "exit=0".into(),
            format!("{}/my dir\n", dir.path().display()).into_bytes()
        )
    );

    let mut two = Raw::status_mode(&server.addr);
    assert_eq!(two.run("pwd"), ("exit=0".into(), top.clone().into_bytes()));

    // The tutorial's client sees the new directory as the output.
    let transcript = tutorial_client(&server, "cd sub\npwd\n");
    assert_eq!(
        transcript,
        [
            tutorial_transcript(&sub),
            tutorial_transcript(&sub),
            PROMPT.to_string()
        ]
        .concat()
    );
}

// ------------------------------------------------- concurrency and models

// -------------------------------------------------------------------- log

threads_and_events!(
    every_command_is_logged,
    every_command_is_logged_event,
    every_command_is_logged_in
);

/// Every command is logged with the peer's address, how it ended, how long
/// it took and how much output it gave.
fn every_command_is_logged_in(mode: &[&str]) {
    let dir = TempDir::new("log");
    let log = dir.join("serve.log");
    let server = serve_shell_logging(dir.path(), &log, &[mode, &["--no-token"]].concat());
    let mut raw = Raw::status_mode(&server.addr);
    let peer = raw.stream().local_addr().unwrap();
    raw.run("echo hello");
    raw.run("exit 4");
    let wanted = [
        format!(
            "{peer}: ran \"echo hello\" in {}: exit=0, ",
            dir.path().display()
        ),
        format!(
            "{peer}: ran \"exit 4\" in {}: exit=4, ",
            dir.path().display()
        ),
    ];
    let mut text = String::new();
    wait_until(TIMEOUT, "the log lines", || {
        text = fs::read_to_string(&log).unwrap_or_default();
        wanted.iter().all(|w| text.contains(w.as_str()))
    });
    for (w, bytes) in wanted
        .iter()
        .zip(["6 bytes of output", "0 bytes of output"])
    {
        let line = text.lines().find(|l| l.contains(w.as_str())).unwrap();
        let rest = &line[line.find(w.as_str()).unwrap() + w.len()..];
        // "0.002 s, 6 bytes of output"
        let (took, size) = rest
            .split_once(" s, ")
            .unwrap_or_else(|| panic!("{line:?}"));
        assert!(took.parse::<f64>().is_ok(), "{line:?}");
        assert_eq!(size, bytes, "{line:?}");
    }
}

// --------------------------------------------------------------- shutdown
