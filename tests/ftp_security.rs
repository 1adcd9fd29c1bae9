//! The FTP server under attack, with a raw client: path traversal in every
//! form, symbolic links leading out, data connections to or from other
//! addresses, over-long command lines, password guessing, forged replies,
//! and the limits.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::ftp_util::{md5_hex, serve_ftp, FtpPeer, TempDir, PASSWORD, USER};
use std::process::Command;

use crate::util::{wait_until, ServerProcess, IO_TIMEOUT, TIMEOUT};

/// A root with a file, a folder, a link to /etc and a link to a folder
/// outside the root (which holds a secret).
fn hostile_root() -> (TempDir, TempDir) {
    let root = TempDir::new("sec-root");
    let outside = TempDir::new("sec-outside");
    std::fs::write(outside.join("secret.txt"), "secret\n").unwrap();
    std::fs::write(root.join("a.txt"), "a\n").unwrap();
    std::fs::create_dir(root.join("sub")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("etc_link")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("out_link")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("secret_link")).unwrap();
    std::os::unix::fs::symlink("a.txt", root.join("inside_link")).unwrap();
    (root, outside)
}

/// Every traversal attempt is refused with 550, whatever the verb: `..`,
/// `../..`, absolute paths, `//`, backslashes, NUL, a link to /etc and a
/// link to a folder outside. The current folder never leaves `/`, and
/// nothing is created outside.
#[test]
fn traversal_attempts_are_all_refused() {
    let (root, outside) = hostile_root();
    let server = serve_ftp(root.path(), &[]);
    let mut ftp = FtpPeer::logged_in(&server.addr);
    let escapes = [
        "../etc/passwd",
        "../../etc/passwd",
        "/../../../etc/passwd",
        "/etc/passwd",
        "//etc/passwd",
        "..\\..\\etc\\passwd",
        "\\etc\\passwd",
        "sub/../../etc/passwd",
        "etc_link/passwd",
        "etc_link/../etc_link/hostname",
        "out_link/secret.txt",
        "secret_link",
        "a.txt\0/../../etc/passwd",
    ];
    for path in escapes {
        for verb in ["RETR", "SIZE", "MDTM", "CWD", "MLST", "DELE", "RNFR"] {
            let reply = ftp.cmd(&format!("{verb} {path}"));
            assert!(reply.starts_with("550 "), "{verb} {path:?}: {reply:?}");
        }
        // Listings need a data connection; refused before one is opened.
        ftp.epsv();
        let reply = ftp.cmd(&format!("LIST {path}"));
        assert!(reply.starts_with("550 "), "LIST {path:?}: {reply:?}");
    }
    for dir in ["etc_link", "out_link", "out_link/", "/etc", "../.."] {
        let reply = ftp.cmd(&format!("CWD {dir}"));
        if dir == "../.." {
            // `..` at the root stays at the root: allowed, and harmless.
            assert_eq!(reply, "250 Directory successfully changed.\r\n");
        } else {
            assert!(reply.starts_with("550 "), "CWD {dir}: {reply:?}");
        }
        ftp.expect("PWD", "257 \"/\" is the current directory.");
    }
    // Writing through a link leading out is refused too.
    for path in ["out_link/new.txt", "etc_link/new.txt"] {
        ftp.epsv();
        let reply = ftp.cmd(&format!("STOR {path}"));
        assert!(reply.starts_with("550 "), "STOR {path}: {reply:?}");
        let reply = ftp.cmd(&format!("MKD {path}"));
        assert!(reply.starts_with("550 "), "MKD {path}: {reply:?}");
    }
    assert_eq!(outside.names(""), ["secret.txt"]);
    // A link inside the root works; the listing shows no link that leads
    // out, and no target of any link.
    assert_eq!(ftp.download("RETR inside_link"), b"a\n");
    // Listings come in the folder's order: sorted here.
    let listing = String::from_utf8(ftp.download("NLST")).unwrap();
    let mut names: Vec<&str> = listing.split_inclusive("\r\n").collect();
    names.sort_unstable();
    assert_eq!(names, ["a.txt\r\n", "inside_link\r\n", "sub\r\n"]);
    let listing = String::from_utf8(ftp.download("LIST")).unwrap();
    assert!(
        !listing.contains("etc") && !listing.contains("->"),
        "{listing}"
    );
    ftp.expect("QUIT", "221 Goodbye.");
}

/// PORT and EPRT go only to the control connection's address, on ports
/// 1024 and above: no FTP bounce. (Active mode from loopback, needed to
/// test this here, is allowed by a flag: see `ftp_wire`.)
#[test]
fn active_mode_goes_only_to_the_client() {
    let root = TempDir::new("sec-port");
    let server = serve_ftp(root.path(), &["--allow-loopback-active"]);
    let mut ftp = FtpPeer::logged_in(&server.addr);
    let other = "501 Data connections go only to the address of the control connection.";
    let low = "501 Data connections go only to ports 1024 and above.";
    ftp.expect("PORT 127,0,0,2,8,0", other);
    ftp.expect("PORT 10,0,0,1,8,0", other);
    ftp.expect("EPRT |1|127.0.0.2|2048|", other);
    ftp.expect("EPRT |2|::1|2048|", other);
    ftp.expect("PORT 127,0,0,1,0,25", low);
    ftp.expect("EPRT |1|127.0.0.1|21|", low);
    ftp.expect("PORT 127,0,0,1,8", "501 Syntax error in the address.");
    ftp.expect("PORT 127,0,0,1,8,0", "200 PORT command successful.");
}

/// A data connection from another local address (127.0.0.2) is closed
/// unread; the client's own connection then gets the file.
#[test]
fn data_connection_from_another_address_is_refused() {
    let root = TempDir::new("sec-pasv");
    std::fs::write(root.join("a.txt"), "the data\n").unwrap();
    let server = serve_ftp(root.path(), &[]);
    let mut ftp = FtpPeer::logged_in(&server.addr);
    let addr = ftp.epsv();

    let intruder =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: SocketAddr = "127.0.0.2:0".parse().unwrap();
    intruder.bind(&from.into()).unwrap();
    intruder.connect(&addr.into()).unwrap();
    let mut intruder: TcpStream = intruder.into();
    intruder.set_read_timeout(Some(IO_TIMEOUT)).unwrap();

    assert!(ftp.cmd("RETR a.txt").starts_with("150 "));
    let mut got = Vec::new();
    let n = intruder
        .read_to_end(&mut got)
        .expect("the intruder's connection is closed");
    assert_eq!((n, got), (0, vec![]));

    let mut data = TcpStream::connect(addr).unwrap();
    data.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"the data\n");
    ftp.expect_reply(&format!(
        "226 Transfer complete. MD5={}",
        md5_hex(b"the data\n")
    ));
}

/// A 1 MiB command line is answered 500 and the connection closed; the
/// server serves the next client.
#[test]
fn a_megabyte_command_line_is_refused() {
    let root = TempDir::new("sec-long");
    let server = serve_ftp(root.path(), &[]);
    let mut ftp = FtpPeer::connect(&server.addr);
    let mut writer = ftp.writer();
    let sender = std::thread::spawn(move || {
        let mut line = b"NOOP ".to_vec();
        line.resize(1024 * 1024, b'a');
        // The server closes while this is still being sent: errors expected.
        let _ = std::io::Write::write_all(&mut writer, &line);
    });
    ftp.expect_reply("500 Command line too long.");
    ftp.expect_closed();
    sender.join().unwrap();
    let mut next = FtpPeer::connect(&server.addr);
    next.expect("NOOP", "200 NOOP ok.");
}

/// Three wrong passwords: three 530s, each after a delay, then the server
/// closes the connection. The password is never in the log.
#[test]
fn three_bad_passwords_close_the_connection() {
    let root = TempDir::new("sec-pass");
    let server = serve_ftp(root.path(), &[]);
    let mut ftp = FtpPeer::connect(&server.addr);
    let started = Instant::now();
    for _ in 0..3 {
        ftp.expect(
            &format!("USER {USER}"),
            &format!("331 Password required for {USER}."),
        );
        ftp.expect("PASS wrong", "530 Login incorrect.");
    }
    ftp.expect_closed();
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Unknown users get the same 331 and the same 530.
    let mut ftp = FtpPeer::connect(&server.addr);
    ftp.expect("USER nobody", "331 Password required for nobody.");
    ftp.expect("PASS x", "530 Login incorrect.");
    ftp.expect("USER anonymous", "331 Password required for anonymous.");
    ftp.expect("PASS x", "530 Login incorrect.");
    ftp.login(USER, PASSWORD);
}

/// Names cannot forge reply lines: CR, LF and NUL in a name are refused,
/// and a file whose name holds CRLF on disk is listed on one line, its CR
/// and LF escaped.
#[test]
fn names_cannot_forge_replies() {
    let root = TempDir::new("sec-forge");
    std::fs::write(root.join("ok.txt"), "").unwrap();
    std::fs::write(root.join("evil\r\n226 forged"), "").unwrap();
    let server = serve_ftp(root.path(), &[]);
    let mut ftp = FtpPeer::logged_in(&server.addr);
    ftp.expect("MKD a\rb", "550 Invalid character in file name.");
    ftp.expect("CWD a\0b", "550 Invalid character in file name.");
    ftp.expect("RNFR x\ry", "550 Invalid character in file name.");
    let nlst = String::from_utf8(ftp.download("NLST")).unwrap();
    let mut names: Vec<&str> = nlst.split_terminator("\r\n").collect();
    names.sort_unstable();
    assert_eq!(names, [r"evil\x0d\x0a226 forged", "ok.txt"]);
    assert_eq!(ftp.download("MLSD").split(|&b| b == b'\n').count(), 3);
    assert_eq!(root.names("").len(), 2);
}

/// The limits: a client that does not log in in time is told 421 and
/// closed, and so is one idle for --idle-timeout; connections beyond
/// --max-per-ip are told 421.
#[test]
fn login_timeout_and_connections_per_address() {
    let root = TempDir::new("sec-limits");
    let server = serve_ftp(
        root.path(),
        &["--login-timeout", "0.5", "--max-per-ip", "2"],
    );
    let mut slow = FtpPeer::connect(&server.addr);
    slow.expect_reply("421 Login timed out.");
    slow.expect_closed();

    let mut first = FtpPeer::logged_in(&server.addr);
    let mut second = FtpPeer::connect(&server.addr);
    let mut third = FtpPeer::connect_raw(&server.addr);
    third.expect_reply("421 Too many connections from your address.");
    third.expect_closed();
    first.expect("NOOP", "200 NOOP ok.");
    second.login(USER, PASSWORD);
    drop(first);
    // A logged-in client silent for the idle timeout is told so.
    let idle = serve_ftp(root.path(), &["--idle-timeout", "0.5"]);
    let mut quiet = FtpPeer::logged_in(&idle.addr);
    quiet.expect_reply("421 Timeout: closing the control connection.");
    quiet.expect_closed();
    // The slot is freed when a connection ends.
    crate::util::wait_until(IO_TIMEOUT, "a slot frees", || {
        let mut peer = FtpPeer::connect_raw(&server.addr);
        peer.reply().starts_with("220 ")
    });
}

/// Anonymous users (--anonymous with users configured) read but never
/// write; --read-only does the same for users.
#[test]
fn anonymous_and_read_only_cannot_write() {
    let root = TempDir::new("sec-ro");
    std::fs::write(root.join("a.txt"), "a\n").unwrap();
    std::fs::create_dir(root.join("d")).unwrap();
    for (args, user, password) in [
        (&["--anonymous"][..], "anonymous", "me@example.com"),
        (&["--read-only"], USER, PASSWORD),
    ] {
        let server = serve_ftp(root.path(), args);
        let mut ftp = FtpPeer::connect(&server.addr);
        ftp.login(user, password);
        assert_eq!(ftp.download("RETR a.txt"), b"a\n");
        for command in [
            "STOR b.txt",
            "APPE a.txt",
            "DELE a.txt",
            "MKD e",
            "RMD d",
            "RNFR a.txt",
        ] {
            ftp.expect(command, "550 Permission denied.");
        }
        assert_eq!(root.names(""), ["a.txt", "d"]);
    }
}

/// Wrong passwords for one account slow the later tries on it, from a new
/// connection too (0.5 s, 1 s, then 2 s: lower bounds only), and the right
/// password still logs in afterwards.
#[test]
fn guessing_one_account_slows_it_across_connections() {
    let root = TempDir::new("sec-throttle");
    let server = serve_ftp(root.path(), &[]);
    let mut ftp = FtpPeer::connect(&server.addr);
    for at_least in [500, 1000] {
        ftp.expect(
            &format!("USER {USER}"),
            &format!("331 Password required for {USER}."),
        );
        let started = Instant::now();
        ftp.expect("PASS wrong", "530 Login incorrect.");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(at_least), "{took:?}");
    }
    drop(ftp);
    let mut ftp = FtpPeer::connect(&server.addr);
    ftp.expect(
        &format!("USER {USER}"),
        &format!("331 Password required for {USER}."),
    );
    let started = Instant::now();
    ftp.expect("PASS wrong again", "530 Login incorrect.");
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(2), "{took:?}");
    let mut ftp = FtpPeer::connect(&server.addr);
    ftp.login(USER, PASSWORD);
    ftp.expect("NOOP", "200 NOOP ok.");
}

/// A users file that the group or others can read gets a warning at
/// start, naming the file and the fix; a 0600 one does not.
#[test]
fn a_users_file_others_can_read_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let root = TempDir::new("sec-users-mode");
    let users = root.join("users");
    let log = root.join("serve.log");
    let warning = format!(
        "{} holds secrets but other users can read it (mode 644): chmod 600 {}",
        users.display(),
        users.display()
    );
    let serve = |mode: u32| {
        std::fs::write(&users, format!("{USER}:{PASSWORD}\n")).unwrap();
        std::fs::set_permissions(&users, std::fs::Permissions::from_mode(mode)).unwrap();
        let _ = std::fs::remove_file(&log);
        // `sh` execs `serve`: the process is the server, its log a file.
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg("exec \"$0\" \"$@\" 2>>\"$FTP_TEST_LOG\"")
            .arg(env!("CARGO_BIN_EXE_serve"))
            .args(["--handler", "ftp", "--bind", "127.0.0.1:0", "--root"])
            .arg(root.path())
            .arg("--users")
            .arg(&users)
            .env("FTP_TEST_LOG", &log)
            .env("RUST_LOG", "info");
        ServerProcess::start(command)
    };
    let server = serve(0o644);
    wait_until(TIMEOUT, "the warning", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(&warning)
    });
    drop(server);
    let server = serve(0o600);
    // The log's last start-up line comes after any warning.
    wait_until(TIMEOUT, "the start-up log", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("ftp: serving")
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("holds secrets"), "{text}");
    let mut ftp = FtpPeer::connect(&server.addr);
    ftp.login(USER, PASSWORD);
}
