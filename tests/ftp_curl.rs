//! `serve --handler ftp` driven by curl, as a user would type it: list,
//! get, put, resume, folders made on the way, active mode, IPv6, every
//! model; and an upload killed midway.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::ftp_util::{
    curl, curl_ok, open_upload_temp, serve_ftp, serve_ftp_on, url, TempDir, PASSWORD, USER,
};
use crate::util::{wait_exit, wait_until, TIMEOUT};

/// `len` bytes of a fixed pseudo-random sequence (every byte value occurs).
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// The quick start: with no user, on loopback, anonymous read-only access
/// is on; curl (anonymous by default) lists and downloads, and an upload
/// is refused with 550, leaving nothing behind.
#[test]
fn quick_start_is_anonymous_read_only_on_loopback() {
    let root = TempDir::new("quick");
    std::fs::write(root.join("hello.txt"), "hello\n").unwrap();
    let server = serve_ftp_on("127.0.0.1:0", root.path(), &[]);
    assert_eq!(
        server.first_line,
        format!("serving ftp on {} (event)", server.addr)
    );
    let base = format!("ftp://{}/", server.addr);
    let listing = curl_ok(&["--list-only", &base]);
    assert_eq!(listing, b"hello.txt\n");
    assert_eq!(curl_ok(&[&format!("{base}hello.txt")]), b"hello\n");

    let upload = root.join("up.txt");
    std::fs::write(&upload, "x").unwrap();
    let out = curl(&["-T", upload.to_str().unwrap(), &format!("{base}new.txt")]);
    assert_eq!(out.status.code(), Some(25), "curl: upload failed");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("550"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(root.names(""), ["hello.txt", "up.txt"]);
}

/// No user and no --anonymous on a non-loopback address: serve refuses
/// to start (exit 2), since no one could log in.
#[test]
fn no_login_possible_is_a_usage_error() {
    let root = TempDir::new("nologin");
    let mut command = crate::util::serve_command();
    command
        .args(["--handler", "ftp", "--bind", "0.0.0.0:0", "--root"])
        .arg(root.path());
    let out = crate::util::run_with_input(command, b"");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("serve: no one could log in to ftp on 0.0.0.0:"),
        "{stderr}"
    );
}

threads_and_events!(
    curl_lists_gets_and_puts,
    curl_lists_gets_and_puts_event,
    curl_lists_gets_and_puts_in
);

/// curl lists (LIST, and NLST with --list-only), downloads, uploads with
/// -T, makes folders with --ftp-create-dirs, renames and deletes with -Q;
/// every byte on disk is what was sent.
fn curl_lists_gets_and_puts_in(mode: &[&str]) {
    let root = TempDir::new("curl");
    let data = pattern(3 * 1024 * 1024 + 17, 1);
    std::fs::write(root.join("data.bin"), &data).unwrap();
    std::fs::create_dir(root.join("docs")).unwrap();
    std::fs::write(root.join("docs/a.txt"), "a\n").unwrap();
    let server = serve_ftp(root.path(), mode);

    let listing = String::from_utf8(curl_ok(&[&url(&server, "")])).unwrap();
    // Listings come in the folder's order: sorted by name here.
    let mut lines: Vec<&str> = listing.lines().collect();
    lines.sort_by_key(|line| line.rsplit(' ').next());
    assert_eq!(lines.len(), 2, "{listing}");
    assert!(lines[0].starts_with("-rw"), "{listing}");
    assert!(lines[0].ends_with(" data.bin"), "{listing}");
    assert!(lines[0].contains(&format!(" {} ", data.len())), "{listing}");
    assert!(
        lines[1].starts_with('d') && lines[1].ends_with(" docs"),
        "{listing}"
    );
    assert_eq!(
        curl_ok(&["--list-only", &url(&server, "docs/")]),
        b"a.txt\n"
    );

    assert_eq!(curl_ok(&[&url(&server, "data.bin")]), data);
    assert_eq!(curl_ok(&[&url(&server, "docs/a.txt")]), b"a\n");

    let local = TempDir::new("curl-local");
    let upload = pattern(1024 * 1024 + 3, 2);
    std::fs::write(local.join("up.bin"), &upload).unwrap();
    let up = local.join("up.bin");
    curl_ok(&["-T", up.to_str().unwrap(), &url(&server, "docs/")]);
    assert_eq!(std::fs::read(root.join("docs/up.bin")).unwrap(), upload);
    curl_ok(&[
        "--ftp-create-dirs",
        "-T",
        up.to_str().unwrap(),
        &url(&server, "new/deep/copy.bin"),
    ]);
    assert_eq!(
        std::fs::read(root.join("new/deep/copy.bin")).unwrap(),
        upload
    );

    // Quote commands: rename, delete, remove a folder.
    curl_ok(&[
        "-Q",
        "RNFR new/deep/copy.bin",
        "-Q",
        "RNTO new/moved.bin",
        "-Q",
        "RMD new/deep",
        "-Q",
        "DELE docs/up.bin",
        &url(&server, ""),
    ]);
    assert_eq!(root.names("new"), ["moved.bin"]);
    assert_eq!(root.names("docs"), ["a.txt"]);
    // Nothing but the uploads' final names was ever left: no temp files.
    assert_eq!(root.names(""), ["data.bin", "docs", "new"]);
}

threads_and_events!(
    curl_resumes_both_ways,
    curl_resumes_both_ways_event,
    curl_resumes_both_ways_in
);

/// `curl -C -` resumes a download (REST + RETR) and an upload (SIZE, then
/// APPE), ending with the whole file on both sides.
fn curl_resumes_both_ways_in(mode: &[&str]) {
    let root = TempDir::new("resume");
    let data = pattern(2 * 1024 * 1024 + 5, 3);
    std::fs::write(root.join("data.bin"), &data).unwrap();
    let server = serve_ftp(root.path(), mode);
    let local = TempDir::new("resume-local");

    let partial = local.join("data.bin");
    std::fs::write(&partial, &data[..700_001]).unwrap();
    curl_ok(&[
        "-C",
        "-",
        "-o",
        partial.to_str().unwrap(),
        &url(&server, "data.bin"),
    ]);
    assert_eq!(std::fs::read(&partial).unwrap(), data);

    // The server holds the first part of an upload; curl sends the rest.
    let upload = pattern(1024 * 1024 + 11, 4);
    std::fs::write(root.join("up.bin"), &upload[..300_000]).unwrap();
    let source = local.join("up.bin");
    std::fs::write(&source, &upload).unwrap();
    curl_ok(&[
        "-C",
        "-",
        "-T",
        source.to_str().unwrap(),
        &url(&server, "up.bin"),
    ]);
    assert_eq!(std::fs::read(root.join("up.bin")).unwrap(), upload);
    assert_eq!(root.names(""), ["data.bin", "up.bin"]);
}

threads_and_events!(
    curl_active_mode,
    curl_active_mode_event,
    curl_active_mode_in
);

/// `curl -P` (active mode): the server connects back, with PORT over IPv4
/// (--disable-eprt) and EPRT.
fn curl_active_mode_in(mode: &[&str]) {
    let root = TempDir::new("active");
    let data = pattern(600_000, 5);
    std::fs::write(root.join("data.bin"), &data).unwrap();
    // curl runs on this machine: active mode to loopback must be allowed.
    let server = serve_ftp(root.path(), &[mode, &["--allow-loopback-active"]].concat());
    assert_eq!(
        curl_ok(&["-P", "127.0.0.1", &url(&server, "data.bin")]),
        data
    );
    assert_eq!(
        curl_ok(&[
            "-P",
            "127.0.0.1",
            "--disable-eprt",
            &url(&server, "data.bin")
        ]),
        data
    );
    let local = TempDir::new("active-local");
    std::fs::write(local.join("up.bin"), &data[..1000]).unwrap();
    let up = local.join("up.bin");
    curl_ok(&[
        "-P",
        "-",
        "-T",
        up.to_str().unwrap(),
        &url(&server, "up.bin"),
    ]);
    assert_eq!(std::fs::read(root.join("up.bin")).unwrap(), &data[..1000]);

    // --no-active turns PORT and EPRT off.
    let passive_only = serve_ftp(
        root.path(),
        &[mode, &["--no-active", "--allow-loopback-active"]].concat(),
    );
    let out = curl(&["-P", "127.0.0.1", &url(&passive_only, "data.bin")]);
    assert!(!out.status.success());
}

/// Over IPv6 ([::1]): EPSV and EPRT carry the transfers.
#[test]
fn curl_over_ipv6() {
    let root = TempDir::new("ipv6");
    let data = pattern(300_000, 6);
    std::fs::write(root.join("data.bin"), &data).unwrap();
    let user = format!("{USER}:{PASSWORD}");
    let server = serve_ftp_on(
        "[::1]:0",
        root.path(),
        &["--user", &user, "--allow-loopback-active"],
    );
    assert!(server.addr.starts_with("[::1]:"), "{}", server.addr);
    assert_eq!(curl_ok(&["--list-only", &url(&server, "")]), b"data.bin\n");
    assert_eq!(curl_ok(&[&url(&server, "data.bin")]), data);
    assert_eq!(curl_ok(&["-P", "::1", &url(&server, "data.bin")]), data);
    let local = TempDir::new("ipv6-local");
    std::fs::write(local.join("up.bin"), &data).unwrap();
    let up = local.join("up.bin");
    curl_ok(&["-T", up.to_str().unwrap(), &url(&server, "up.bin")]);
    assert_eq!(std::fs::read(root.join("up.bin")).unwrap(), data);
}

/// Every model serves a session: list, download, upload.
#[test]
fn every_model_serves_a_session() {
    let root = TempDir::new("models");
    let data = pattern(500_000, 7);
    std::fs::write(root.join("data.bin"), &data).unwrap();
    let local = TempDir::new("models-local");
    std::fs::write(local.join("up.bin"), &data).unwrap();
    let up = local.join("up.bin");
    for (args, mode) in [
        (&["--mode", "sync"][..], "sync"),
        (&["--mode", "threading"], "threading"),
        (&["--mode", "pool", "--workers", "2"], "pool"),
        (&["--mode", "forking", "--max-children", "4"], "forking"),
        (&["--mode", "prefork", "--workers", "2"], "prefork"),
        (&["--mode", "event", "--threads", "2"], "event"),
    ] {
        let server = serve_ftp(root.path(), args);
        assert_eq!(
            server.first_line,
            format!("serving ftp on {} ({mode})", server.addr)
        );
        assert_eq!(
            curl_ok(&["--list-only", &url(&server, "")]),
            b"data.bin\n",
            "{mode}"
        );
        assert_eq!(curl_ok(&[&url(&server, "data.bin")]), data, "{mode}");
        let name = format!("{mode}.bin");
        curl_ok(&["-T", up.to_str().unwrap(), &url(&server, &name)]);
        assert_eq!(std::fs::read(root.join(&name)).unwrap(), data, "{mode}");
        std::fs::remove_file(root.join(&name)).unwrap();
    }
}

/// In both ways an upload is written (through the server's buffers when
/// it is hashed, `--hash-transfers auto`; spliced from socket to file when
/// not, `off`): a large upload arrives whole, and one whose client is
/// killed midway (SIGKILL: both its connections close at once) leaves
/// nothing: no file under the name, no temp file.
#[test]
fn uploads_arrive_whole_and_one_killed_midway_leaves_nothing() {
    for mode in ["auto", "off"] {
        let root = TempDir::new(&format!("killed-{mode}"));
        let server = serve_ftp(root.path(), &["--hash-transfers", mode]);
        let local = TempDir::new(&format!("killed-local-{mode}"));
        let whole = pattern(5 * 1024 * 1024 + 7, 9);
        std::fs::write(local.join("whole.bin"), &whole).unwrap();
        let source = local.join("whole.bin");
        curl_ok(&["-T", source.to_str().unwrap(), &url(&server, "whole.bin")]);
        assert_eq!(
            std::fs::read(root.join("whole.bin")).unwrap(),
            whole,
            "{mode}"
        );
        std::fs::remove_file(root.join("whole.bin")).unwrap();

        let mut curl = Command::new("curl");
        curl.args([
            "--silent",
            "--max-time",
            "20",
            "-T",
            "-",
            &url(&server, "big.bin"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let mut child = curl.spawn().expect("start curl");
        let mut stdin = child.stdin.take().expect("curl's stdin");
        stdin
            .write_all(&pattern(1024 * 1024, 8))
            .expect("feed curl");
        stdin.flush().unwrap();
        // The upload is under way: its unnamed temp file has bytes.
        let temp_size = || open_upload_temp(&server, root.path());
        wait_until(TIMEOUT, "the upload's temp file has bytes", || {
            temp_size().is_some_and(|n| n > 0)
        });
        child.kill().expect("kill curl");
        wait_exit(&mut child, TIMEOUT);
        drop(stdin);
        wait_until(TIMEOUT, "the temp file is closed", || temp_size().is_none());
        assert_eq!(root.names(""), Vec::<String>::new(), "{mode}");
        // The server goes on.
        assert_eq!(curl_ok(&["--list-only", &url(&server, "")]), b"");
    }
}
