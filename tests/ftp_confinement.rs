//! Confinement under attack by a user who can write: renames that turn a
//! checked path into one through a link leading out, a folder swapped
//! with such a link in a loop while RETR, STOR and MKD go through it, a
//! server killed mid-upload; what anonymous users may read; resumes that
//! leave the old file's bytes to the kernel.
//!
//! Every secret lives outside the served root, beside it, where a local
//! user's link can point; none may ever be read, written, created beside,
//! or moved.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ftp_util::{
    open_upload_temp, random_bytes, serve_ftp, serve_ftp_on, FtpPeer, TempDir, PASSWORD, USER,
};
use crate::util::{
    run_with_input, serve_command, wait_exit, wait_until, ServerProcess, IO_TIMEOUT,
};

const SECRET: &[u8] = b"SECRET outside the root\n";

/// A folder holding the served `root` and, beside it, `secret.txt`.
fn root_beside_a_secret(tag: &str) -> (TempDir, std::path::PathBuf) {
    let base = TempDir::new(tag);
    let root = base.join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(base.join("secret.txt"), SECRET).unwrap();
    (base, root)
}

/// RETR `path` on a passive connection: the bytes, or `None` for a 550.
fn try_retr(ftp: &mut FtpPeer, path: &str) -> Option<Vec<u8>> {
    let addr = ftp.epsv();
    let mut data = TcpStream::connect(addr).expect("connect the data connection");
    data.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let reply = ftp.cmd(&format!("RETR {path}"));
    if reply.starts_with("550 ") {
        return None;
    }
    assert!(reply.starts_with("150 "), "RETR {path}: {reply:?}");
    let mut bytes = Vec::new();
    data.read_to_end(&mut bytes).expect("read the data");
    let reply = ftp.reply();
    assert!(reply.starts_with("226 "), "RETR {path}: {reply:?}");
    Some(bytes)
}

/// STOR `bytes` as `path`: true if stored, false if refused or failed
/// (a 4xx or 5xx reply, before or after the 150).
fn try_stor(ftp: &mut FtpPeer, path: &str, bytes: &[u8]) -> bool {
    let addr = ftp.epsv();
    let mut data = TcpStream::connect(addr).expect("connect the data connection");
    data.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let reply = ftp.cmd(&format!("STOR {path}"));
    if reply.starts_with('4') || reply.starts_with('5') {
        return false;
    }
    assert!(reply.starts_with("150 "), "STOR {path}: {reply:?}");
    data.write_all(bytes).expect("send the data");
    drop(data);
    let reply = ftp.reply();
    assert!(
        reply.starts_with("226 ") || reply.starts_with('4') || reply.starts_with('5'),
        "STOR {path}: {reply:?}"
    );
    reply.starts_with("226 ")
}

/// The rename attack, with no race to win: session A sends `RNFR
/// a/secret.txt` (a harmless file inside); session B moves folder `a`
/// away and renames a relative link `deep/up -> ..` (inside the root
/// where it is) to `a`, where it now points at the root's parent; A's
/// `RNTO` must not move the secret beside the root into it.
#[test]
fn rnfr_then_renamed_folders_cannot_pull_a_file_in() {
    let (base, root) = root_beside_a_secret("conf-rename");
    std::fs::create_dir_all(root.join("a")).unwrap();
    std::fs::write(root.join("a/secret.txt"), b"decoy\n").unwrap();
    std::fs::create_dir(root.join("deep")).unwrap();
    // Made on disk, as any local user could: it points at the root now.
    std::os::unix::fs::symlink("..", root.join("deep/up")).unwrap();
    let server = serve_ftp(&root, &[]);
    let mut a = FtpPeer::logged_in(&server.addr);
    let mut b = FtpPeer::logged_in(&server.addr);

    a.expect("RNFR a/secret.txt", "350 Ready for RNTO.");
    b.expect("RNFR a", "350 Ready for RNTO.");
    b.expect("RNTO a_old", "250 Rename successful.");
    b.expect("RNFR deep/up", "350 Ready for RNTO.");
    b.expect("RNTO a", "250 Rename successful.");
    // `a` now leads out: nothing through it resolves.
    b.expect("RETR a/secret.txt", "550 Permission denied.");
    b.expect("SIZE a/secret.txt", "550 Permission denied.");
    // A's rename moves the file it named, which is now in a_old.
    a.expect("RNTO stolen.txt", "250 Rename successful.");

    assert_eq!(std::fs::read(base.join("secret.txt")).unwrap(), SECRET);
    assert_eq!(std::fs::read(root.join("stolen.txt")).unwrap(), b"decoy\n");
    assert_eq!(base.names(""), ["root", "secret.txt"]);
    assert_eq!(a.download("RETR stolen.txt"), b"decoy\n");
}

/// A thread swaps folder `box` with a link to the outside folder, in a
/// loop (at most 50,000 swaps of four renames, or 5 s), while a client
/// does RETR, STOR and MKD through `box` again and again (for 4 s, at
/// most 2,000 rounds): no secret byte ever arrives, and the outside
/// folder is neither written nor added to.
#[test]
fn a_rename_loop_never_lets_a_transfer_out() {
    let base = TempDir::new("conf-race");
    let root = base.join("root");
    let outside = base.join("outside");
    std::fs::create_dir_all(root.join("box")).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(root.join("box/data.txt"), b"inside\n").unwrap();
    std::fs::write(outside.join("data.txt"), SECRET).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
    let server = serve_ftp(&root, &[]);
    let mut ftp = FtpPeer::logged_in(&server.addr);

    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = Arc::clone(&stop);
        let root = root.clone();
        std::thread::spawn(move || {
            let (real, link, spare) = (root.join("box"), root.join("link"), root.join("spare"));
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut swaps = 0u32;
            while !stop.load(Ordering::Relaxed) && swaps < 50_000 && Instant::now() < deadline {
                // box: the real folder, then the link out, then back.
                let swapped = std::fs::rename(&real, &spare)
                    .and_then(|()| std::fs::rename(&link, &real))
                    .and_then(|()| std::fs::rename(&real, &link))
                    .and_then(|()| std::fs::rename(&spare, &real));
                if let Err(e) = swapped {
                    return Err(format!("swap {swaps}: {e}"));
                }
                swaps += 1;
            }
            Ok(swaps)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(4);
    let (mut read, mut stored, mut made, mut round) = (0, 0, 0, 0);
    while Instant::now() < deadline && round < 2_000 {
        round += 1;
        if let Some(bytes) = try_retr(&mut ftp, "box/data.txt") {
            assert_eq!(bytes, b"inside\n", "round {round}: a secret was read");
            read += 1;
        }
        if try_stor(&mut ftp, &format!("box/up-{round}.txt"), b"written\n") {
            stored += 1;
        }
        let reply = ftp.cmd(&format!("MKD box/made-{round}"));
        assert!(
            reply.starts_with("257 ") || reply.starts_with("550 "),
            "{reply:?}"
        );
        made += usize::from(reply.starts_with("257 "));
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().expect("the renaming thread");
    eprintln!("{swaps:?} swaps; {round} rounds: {read} reads, {stored} uploads, {made} folders");
    assert_eq!(std::fs::read(outside.join("data.txt")).unwrap(), SECRET);
    let mut outside_names: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    outside_names.sort();
    assert_eq!(outside_names, ["data.txt"], "something was made outside");
    assert!(matches!(swaps, Ok(n) if n > 0) && round > 0, "{swaps:?}");
}

/// A server killed (SIGKILL) in the middle of an upload leaves nothing:
/// no file under the name, and no temp file, hidden or not; restarted,
/// it lists an empty folder.
#[test]
fn a_server_killed_mid_upload_leaves_no_debris() {
    let root = TempDir::new("conf-crash");
    let mut server = serve_ftp(root.path(), &[]);
    let mut ftp = FtpPeer::logged_in(&server.addr);
    let addr = ftp.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    data.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    assert!(ftp.cmd("STOR big.bin").starts_with("150 "));
    data.write_all(&random_bytes(1 << 20, 7)).unwrap();
    wait_until(IO_TIMEOUT, "the upload's temp file has the bytes", || {
        open_upload_temp(&server, root.path()) == Some(1 << 20)
    });
    server.child.kill().expect("SIGKILL the server");
    wait_exit(&mut server.child, IO_TIMEOUT);
    drop((data, ftp, server));
    assert_eq!(root.names(""), Vec::<String>::new());

    let server = serve_ftp(root.path(), &[]);
    let mut ftp = FtpPeer::logged_in(&server.addr);
    assert_eq!(ftp.download("NLST -a"), b"");
    assert_eq!(root.names(""), Vec::<String>::new());
}

/// Anonymous users get what everyone may read, and nothing else: a 0600
/// file is refused (RETR, XMD5) and its `perm` fact is empty; a 0700
/// folder cannot be entered, listed or read through, not even by a link
/// from a public folder; a link to a public file works. A user gets all.
#[test]
fn anonymous_users_read_only_world_readable_files() {
    use std::os::unix::fs::PermissionsExt;
    let root = TempDir::new("conf-anon");
    let mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    std::fs::write(root.join("pub.txt"), b"public\n").unwrap();
    mode(&root.join("pub.txt"), 0o644);
    std::fs::write(root.join("private.txt"), b"private\n").unwrap();
    mode(&root.join("private.txt"), 0o600);
    std::fs::create_dir(root.join("priv")).unwrap();
    std::fs::write(root.join("priv/inner.txt"), b"inner\n").unwrap();
    mode(&root.join("priv/inner.txt"), 0o644);
    mode(&root.join("priv"), 0o700);
    std::fs::create_dir(root.join("links")).unwrap();
    mode(&root.join("links"), 0o755);
    std::os::unix::fs::symlink("../priv/inner.txt", root.join("links/inner")).unwrap();
    std::os::unix::fs::symlink("../pub.txt", root.join("links/pub")).unwrap();
    let user = format!("{USER}:{PASSWORD}");
    let server = serve_ftp_on(
        "127.0.0.1:0",
        root.path(),
        &["--anonymous", "--user", &user],
    );

    let mut anon = FtpPeer::connect(&server.addr);
    anon.login("anonymous", "me@example.com");
    assert_eq!(anon.download("RETR pub.txt"), b"public\n");
    assert_eq!(anon.download("RETR links/pub"), b"public\n");
    for command in [
        "RETR links/inner",
        "RETR private.txt",
        "XMD5 private.txt",
        "RETR priv/inner.txt",
        "SIZE priv/inner.txt",
        "CWD priv",
    ] {
        anon.expect(command, "550 Permission denied.");
    }
    anon.epsv();
    anon.expect("MLSD priv", "550 Permission denied.");
    anon.expect("OPTS MLST type;perm;", "200 MLST OPTS type;perm;");
    // Listings come in the folder's order: sort the lines to compare.
    let listing = String::from_utf8(anon.download("MLSD")).unwrap();
    let mut lines: Vec<&str> = listing.split_inclusive("\r\n").collect();
    lines.sort_by_key(|line| line.rsplit_once(' ').map(|(_, name)| name.to_string()));
    assert_eq!(
        lines.concat(),
        "type=dir;perm=el; links\r\ntype=dir;perm=; priv\r\n\
         type=file;perm=; private.txt\r\ntype=file;perm=r; pub.txt\r\n"
    );

    let mut alice = FtpPeer::logged_in(&server.addr);
    assert_eq!(alice.download("RETR private.txt"), b"private\n");
    assert_eq!(alice.download("RETR priv/inner.txt"), b"inner\n");
    assert_eq!(alice.download("RETR links/inner"), b"inner\n");
}

/// `serve --handler ftp` refuses to share `/`, the home folder, or a
/// folder holding it with anonymous users, in one line, unless told
/// `--allow-anonymous-home`; a user-only server may serve them.
#[test]
fn anonymous_home_or_root_needs_an_explicit_flag() {
    let home = TempDir::new("conf-home");
    let root = home.path().canonicalize().unwrap();
    let refused = |args: &[&str], shown: &Path, what: &str| {
        let mut command = serve_command();
        command
            .env("HOME", home.path())
            .args(["--handler", "ftp", "--bind", "127.0.0.1:0"])
            .args(args);
        let out = run_with_input(command, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(out.stdout, b"");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!(
                "serve: refusing to serve {} to anonymous users: it is {what}; choose the \
                 folder to share with --root DIR, or pass --allow-anonymous-home\n",
                shown.display()
            )
        );
    };
    let root_text = root.to_str().unwrap();
    refused(&["--root", root_text], &root, "your home folder");
    refused(&["--root", "/"], Path::new("/"), "the whole file system");
    let parent = root.parent().unwrap();
    refused(
        &["--root", parent.to_str().unwrap(), "--anonymous"],
        parent,
        "a folder that holds your home folder",
    );

    let mut command = serve_command();
    command
        .env("HOME", home.path())
        .args([
            "--handler",
            "ftp",
            "--bind",
            "127.0.0.1:0",
            "--root",
            root_text,
        ])
        .arg("--allow-anonymous-home");
    let server = ServerProcess::start(command);
    assert!(server.first_line.starts_with("serving ftp on 127.0.0.1:"));
    drop(server);
    let user = format!("{USER}:{PASSWORD}");
    let mut command = serve_command();
    command.env("HOME", home.path()).args([
        "--handler",
        "ftp",
        "--bind",
        "127.0.0.1:0",
        "--root",
        "/",
        "--user",
        &user,
    ]);
    let server = ServerProcess::start(command);
    assert!(server.first_line.starts_with("serving ftp on 127.0.0.1:"));
}

/// The read system calls the server process has made so far.
fn read_calls(server: &ServerProcess) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{}/io", server.child.id())).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("syscr: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("syscr in /proc/PID/io")
}

/// APPE of a few bytes to a 128 MiB file leaves the old bytes to the
/// kernel (`copy_file_range`): the server makes a few dozen read calls,
/// where a copy through its buffers would make at least 512 (256 KiB
/// each); the result is byte-exact. REST + STOR the same.
#[test]
fn resumes_do_not_read_the_old_file_through_the_server() {
    let root = TempDir::new("conf-appe");
    let old = random_bytes(128 << 20, 11);
    std::fs::write(root.join("big.bin"), &old).unwrap();
    let server = serve_ftp(root.path(), &[]);
    let mut ftp = FtpPeer::logged_in(&server.addr);

    let before = read_calls(&server);
    ftp.upload("APPE big.bin", b"+tail");
    let reply = ftp.reply();
    let reads = read_calls(&server) - before;
    eprintln!("APPE of 5 bytes to 128 MiB: {reads} read calls");
    assert!(reads < 100, "{reads} read calls for an APPE of 5 bytes");
    assert_eq!(reply, "226 Transfer complete.\r\n");
    let mut expected = old.clone();
    expected.extend_from_slice(b"+tail");
    assert!(std::fs::read(root.join("big.bin")).unwrap() == expected);

    let before = read_calls(&server);
    ftp.expect("REST 1000", "350 Restart position accepted (1000).");
    ftp.upload("STOR big.bin", b"new end");
    ftp.expect_reply("226 Transfer complete.");
    let reads = read_calls(&server) - before;
    assert!(reads < 100, "{reads} read calls for a REST + STOR");
    let mut expected = old[..1000].to_vec();
    expected.extend_from_slice(b"new end");
    assert_eq!(std::fs::read(root.join("big.bin")).unwrap(), expected);
    assert_eq!(root.names(""), ["big.bin"]);
}
