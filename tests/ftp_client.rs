//! `client ftp` against `serve --handler ftp`, and against pyftpdlib (a
//! server written by others, with no hash command): put and get of a
//! 100 MiB file with `md5 ok` both ways, resume after a get killed
//! midway, resume of a put, a mismatch caught, the small commands.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::ftp_util::{
    client_ftp, md5_hex, random_bytes, serve_ftp, texts, PyFtpd, TempDir, PASSWORD, USER,
};
use crate::util::{
    closed_port, run_with_input, wait_exit, wait_for_line, wait_until, ServerProcess, TIMEOUT,
};

fn user() -> String {
    format!("{USER}:{PASSWORD}")
}

/// Checks a transfer's two lines: `PREFIX N bytes in ...` and the
/// `md5 ok` line.
pub fn assert_transferred(stdout: &str, prefix: &str, bytes: u64, md5: &str, resumed: Option<u64>) {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let head = format!("{prefix}: {bytes} bytes in ");
    assert!(
        lines[0].starts_with(&head),
        "{:?} does not start with {head:?}",
        lines[0]
    );
    match resumed {
        Some(at) => assert!(
            lines[0].ends_with(&format!("MiB/s), resumed at byte {at}")),
            "{}",
            lines[0]
        ),
        None => assert!(lines[0].ends_with(" MiB/s)"), "{}", lines[0]),
    }
    assert_eq!(lines[1], format!("md5 ok {md5}"));
}

threads_and_events!(
    put_then_get_100_mib_with_md5_ok,
    put_then_get_100_mib_with_md5_ok_event,
    put_then_get_100_mib_with_md5_ok_in
);

/// A 100 MiB random file goes up and comes back: `md5 ok` both ways (the
/// client's own MD5 of the bytes it sent or received equals the server's),
/// and the bytes are equal. Piped, no progress bar: standard error stays
/// empty.
fn put_then_get_100_mib_with_md5_ok_in(mode: &[&str]) {
    let root = TempDir::new("client-root");
    let local = TempDir::new("client-local");
    let data = random_bytes(100 << 20, 1);
    std::fs::write(local.join("big.bin"), &data).unwrap();
    let md5 = md5_hex(&data);
    let server = serve_ftp(root.path(), mode);

    let out = client_ftp(
        local.path(),
        &server.addr,
        &["--user", &user(), "put", "big.bin"],
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr, "");
    assert_transferred(&stdout, "put big.bin -> big.bin", 100 << 20, &md5, None);
    assert!(std::fs::read(root.join("big.bin")).unwrap() == data);

    let out = client_ftp(
        local.path(),
        &server.addr,
        &["--user", &user(), "get", "big.bin", "back.bin"],
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr, "");
    assert_transferred(&stdout, "get big.bin -> back.bin", 100 << 20, &md5, None);
    assert!(std::fs::read(local.join("back.bin")).unwrap() == data);
}

threads_and_events!(
    get_resumes_after_a_kill_and_catches_a_bad_partial_file,
    get_resumes_after_a_kill_and_catches_a_bad_partial_file_event,
    get_resumes_after_a_kill_and_catches_a_bad_partial_file_in
);

/// A get killed (SIGKILL) at about half, then `get --resume`: only the
/// missing part moves (REST), the MD5 of the whole file is checked (the
/// part already there is hashed first), the bytes are equal. A partial
/// file that is not the server's is caught: exit 1.
fn get_resumes_after_a_kill_and_catches_a_bad_partial_file_in(mode: &[&str]) {
    let root = TempDir::new("client-resume-root");
    let local = TempDir::new("client-resume-local");
    let data = random_bytes(100 << 20, 2);
    std::fs::write(root.join("big.bin"), &data).unwrap();
    let md5 = md5_hex(&data);
    let server = serve_ftp(root.path(), mode);

    // 40 MiB/s: half the file in about 1.25 s, enough to stop it there.
    let mut get = Command::new(env!("CARGO_BIN_EXE_client"));
    get.current_dir(local.path())
        .args(["--timeout", "10", "ftp", &server.addr, "--user", &user()])
        .args(["--limit-rate", "40M", "get", "big.bin"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = get.spawn().expect("start client ftp get");
    let size = || std::fs::metadata(local.join("big.bin")).map_or(0, |m| m.len());
    wait_until(TIMEOUT, "half of the file arrived", || size() >= 50 << 20);
    child.kill().expect("kill the client");
    wait_exit(&mut child, TIMEOUT);
    let partial = size();
    assert!((50 << 20..100 << 20).contains(&partial), "{partial}");

    let out = client_ftp(
        local.path(),
        &server.addr,
        &["--user", &user(), "--resume", "get", "big.bin"],
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr, "");
    assert_transferred(
        &stdout,
        "get big.bin -> big.bin",
        (100 << 20) - partial,
        &md5,
        Some(partial),
    );
    assert!(std::fs::read(local.join("big.bin")).unwrap() == data);

    // Complete already: nothing moves, the MD5 is still checked.
    let out = client_ftp(
        local.path(),
        &server.addr,
        &["--user", &user(), "--resume", "get", "big.bin"],
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "get big.bin -> big.bin: complete already, {} bytes\nmd5 ok {md5}\n",
            100 << 20
        )
    );

    // A partial file whose first byte is wrong: the whole file's MD5
    // differs from the server's, and the client says so.
    let mut bad = data[..1 << 20].to_vec();
    bad[0] ^= 1;
    std::fs::write(local.join("bad.bin"), &bad).unwrap();
    let out = client_ftp(
        local.path(),
        &server.addr,
        &["--user", &user(), "--resume", "get", "big.bin", "bad.bin"],
    );
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let mut wrong = bad.clone();
    wrong.extend_from_slice(&data[1 << 20..]);
    assert_eq!(
        stderr,
        format!(
            "client: md5 MISMATCH: bad.bin is not the server's big.bin (md5 {}, the server's {md5}): \
             remove it and get it again\n",
            md5_hex(&wrong)
        )
    );
}

/// A download still running at the drain deadline of a shutdown (SIGTERM,
/// --drain-timeout 1; the client reads at 4 MiB/s a 64 MiB file) is cut:
/// the server logs the transfer as cut by the shutdown, not as a client
/// gone, and `client ftp get` says how many bytes arrived and that
/// `--resume` goes on (exit 1); against the restarted server, it does.
#[test]
fn get_cut_by_the_servers_shutdown_says_how_far_and_resumes() {
    let root = TempDir::new("client-cut-root");
    let local = TempDir::new("client-cut-local");
    let data = random_bytes(64 << 20, 3);
    std::fs::write(root.join("big.bin"), &data).unwrap();
    let mut command = crate::util::serve_command();
    command
        .args(["--handler", "ftp", "--bind", "127.0.0.1:0", "--root"])
        .arg(root.path())
        .args(["--user", &user(), "--drain-timeout", "1"])
        .env("RUST_LOG", "error,socketserver_handlers::ftp=info");
    let (mut server, log) = ServerProcess::start_logged(command);

    let mut get = crate::util::client_command();
    get.current_dir(local.path())
        .args(["--timeout", "10", "ftp", &server.addr, "--user", &user()])
        .args(["--limit-rate", "4M", "get", "big.bin"]);
    let client = std::thread::spawn(move || run_with_input(get, b""));
    let size = || std::fs::metadata(local.join("big.bin")).map_or(0, |m| m.len());
    wait_until(TIMEOUT, "the download has begun", || size() >= 1 << 20);
    server.signal("TERM");
    let line = wait_for_line(&log, "the transfer's log line", |line| {
        line.contains("transfer ") && line.contains(" RETR ")
    });
    assert!(
        line.contains(" RETR /big.bin ") && line.ends_with(" result=cut by the shutdown"),
        "{line}"
    );
    assert!(server.wait(TIMEOUT).success(), "serve after SIGTERM");

    let out = client.join().expect("the client's thread");
    let (stdout, stderr) = texts(&out);
    let arrived = size();
    assert!(arrived < 64 << 20, "{arrived}");
    assert_eq!(
        stderr,
        format!(
            "client: the server closed the connection after {arrived} of {} bytes; \
             run the same command with --resume to go on\n",
            64 << 20
        )
    );
    assert_eq!(stdout, "");
    assert_eq!(out.status.code(), Some(1));

    let server = serve_ftp(root.path(), &[]);
    let out = client_ftp(
        local.path(),
        &server.addr,
        &["--user", &user(), "--resume", "get", "big.bin"],
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_transferred(
        &stdout,
        "get big.bin -> big.bin",
        (64 << 20) - arrived,
        &md5_hex(&data),
        Some(arrived),
    );
    assert!(std::fs::read(local.join("big.bin")).unwrap() == data);
}

threads_and_events!(
    put_resumes_and_catches_a_different_start,
    put_resumes_and_catches_a_different_start_event,
    put_resumes_and_catches_a_different_start_in
);

/// `put --resume` sends only what the server lacks (SIZE, then APPE); the
/// server's MD5 of the stored file is checked. A server file that does not
/// start as the local one does is caught: exit 1.
fn put_resumes_and_catches_a_different_start_in(mode: &[&str]) {
    let root = TempDir::new("client-put-root");
    let local = TempDir::new("client-put-local");
    let data = random_bytes(20 << 20, 3);
    std::fs::write(local.join("p.bin"), &data).unwrap();
    std::fs::write(root.join("p.bin"), &data[..7 << 20]).unwrap();
    let server = serve_ftp(root.path(), mode);
    let out = client_ftp(
        local.path(),
        &server.addr,
        &["--user", &user(), "--resume", "put", "p.bin"],
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_transferred(
        &stdout,
        "put p.bin -> p.bin",
        13 << 20,
        &md5_hex(&data),
        Some(7 << 20),
    );
    assert!(std::fs::read(root.join("p.bin")).unwrap() == data);

    let mut other = data[..7 << 20].to_vec();
    other[100] ^= 0xff;
    std::fs::write(root.join("q.bin"), &other).unwrap();
    let out = client_ftp(
        local.path(),
        &server.addr,
        &["--user", &user(), "--resume", "put", "p.bin", "q.bin"],
    );
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    other.extend_from_slice(&data[7 << 20..]);
    assert_eq!(
        stderr,
        format!(
            "client: md5 MISMATCH: the server's q.bin is not what was sent (md5 {}, sent {}): \
             put it again\n",
            md5_hex(&other),
            md5_hex(&data)
        )
    );
}

/// Against pyftpdlib, which has no hash command: put and get work, and
/// the client says it could not verify them (exit 0).
#[test]
fn a_server_without_hash_commands_is_unverified_but_works() {
    let root = TempDir::new("client-pyftpd-root");
    let local = TempDir::new("client-pyftpd-local");
    let data = random_bytes(5 << 20, 4);
    std::fs::write(local.join("five.bin"), &data).unwrap();
    let md5 = md5_hex(&data);
    let server = PyFtpd::start(root.path());
    let warning = "client: warning: could not verify five.bin: \
                   the server has no hash command (XMD5, HASH)\n";

    let out = client_ftp(
        local.path(),
        &server.addr,
        &["--user", &user(), "put", "five.bin"],
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr, warning);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("put five.bin -> five.bin: 5242880 bytes in "),
        "{stdout}"
    );
    assert_eq!(lines[1], format!("md5 {md5} (unverified)"));
    assert!(std::fs::read(root.join("five.bin")).unwrap() == data);

    let out = client_ftp(
        local.path(),
        &server.addr,
        &["--user", &user(), "get", "five.bin", "back.bin"],
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr, warning);
    assert!(
        stdout.ends_with(&format!("\nmd5 {md5} (unverified)\n")),
        "{stdout}"
    );
    assert!(std::fs::read(local.join("back.bin")).unwrap() == data);
}

/// mkdir, put into it, ls, md5, rm, rmdir; errors exit 1 with one line
/// (and a failed get leaves no empty local file behind).
#[test]
fn small_commands_and_errors() {
    let root = TempDir::new("client-cmds-root");
    let local = TempDir::new("client-cmds-local");
    std::fs::write(local.join("x.txt"), "xyz").unwrap();
    let server = serve_ftp(root.path(), &[]);
    let run = |args: &[&str]| {
        let mut all = vec!["--user", USER];
        all.extend_from_slice(args);
        let mut command = crate::util::client_command();
        command
            .current_dir(local.path())
            .env("SOCKETSERVER_FTP_PASSWORD", PASSWORD)
            .args(["--timeout", "10", "ftp", &server.addr])
            .args(&all);
        let out = crate::util::run_with_input(command, b"");
        let (stdout, stderr) = texts(&out);
        (out.status.code(), stdout, stderr)
    };
    assert_eq!(
        run(&["mkdir", "d d"]),
        (Some(0), String::new(), String::new())
    );
    let (code, stdout, stderr) = run(&["put", "x.txt", "d d/x.txt"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.ends_with(&format!("md5 ok {}\n", md5_hex(b"xyz"))),
        "{stdout}"
    );
    let (code, listing, _) = run(&["ls", "d d"]);
    assert_eq!(code, Some(0));
    assert!(listing.starts_with("-rw-"), "{listing}");
    assert!(listing.ends_with(" x.txt\r\n"), "{listing}");
    assert_eq!(listing.lines().count(), 1, "{listing}");
    assert_eq!(
        run(&["md5", "d d/x.txt"]),
        (
            Some(0),
            format!("{}  d d/x.txt\n", md5_hex(b"xyz")),
            String::new()
        )
    );
    assert_eq!(
        run(&["rm", "d d/x.txt"]),
        (Some(0), String::new(), String::new())
    );
    assert_eq!(
        run(&["rmdir", "d d"]),
        (Some(0), String::new(), String::new())
    );
    assert_eq!(run(&["ls"]), (Some(0), String::new(), String::new()));

    let (code, _, stderr) = run(&["get", "missing.bin"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        format!(
            "client: {}: RETR missing.bin: 550 No such file or directory.\n",
            server.addr
        )
    );
    assert!(!Path::new(&local.join("missing.bin")).exists());
    let (code, _, stderr) = run(&["rmdir", "nothing"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        format!(
            "client: {}: RMD nothing: 550 No such file or directory.\n",
            server.addr
        )
    );

    let addr = format!("127.0.0.1:{}", closed_port());
    let out = client_ftp(local.path(), &addr, &["ls"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        texts(&out).1,
        format!("client: cannot connect to {addr}: connection refused\n")
    );
}
