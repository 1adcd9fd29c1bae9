//! The FTP wire, beyond the verbs: active mode refused to loopback
//! clients, passive listeners that time out, listings that stream, and
//! names that cannot rewrite a terminal. Real clients: Python's ftplib
//! (tests/ftp_wire.py), the repo's `client ftp`, and a raw peer.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::ftp_util::{serve_ftp, FtpPeer, TempDir, PASSWORD, USER};
use crate::util::{run_with_input, wait_until, ServerProcess};

/// Runs tests/ftp_wire.py against `server`; returns its standard output.
fn ftplib(server: &ServerProcess, args: &[&str]) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ftp_wire.py");
    let (host, port) = server.host_port();
    let mut command = Command::new("python3");
    command
        .arg(script)
        .args([host.as_str(), port.as_str(), USER, PASSWORD])
        .args(args);
    let out = run_with_input(command, b"");
    assert!(
        out.status.success(),
        "ftp_wire.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// True if `listener` (non-blocking) gets a connection within `within`.
fn connection_comes(listener: &TcpListener, within: Duration) -> bool {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        match listener.accept() {
            Ok(_) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    false
}

/// A client on 127.0.0.1 may be anyone behind a local proxy: PORT and
/// EPRT to a local service are refused, and the service is never
/// connected to. `--allow-loopback-active` lets trusted local clients use
/// active mode (ftplib, `set_pasv(False)`).
#[test]
fn active_mode_to_loopback_is_refused_unless_allowed() {
    let root = TempDir::new("wire-active");
    std::fs::write(root.join("a.txt"), "active data\n").unwrap();
    let service = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = service.local_addr().unwrap().port();

    let server = serve_ftp(root.path(), &[]);
    let mut ftp = FtpPeer::logged_in(&server.addr);
    let refused = "504 Active mode to a loopback address is refused: use PASV or EPSV.";
    ftp.expect(
        &format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xff),
        refused,
    );
    ftp.expect("RETR a.txt", "425 Use PASV, EPSV, PORT or EPRT first.");
    ftp.expect(&format!("EPRT |1|127.0.0.1|{port}|"), refused);
    ftp.expect("STOR b.txt", "425 Use PASV, EPSV, PORT or EPRT first.");
    ftp.expect("NOOP", "200 NOOP ok.");
    assert!(!connection_comes(&service, Duration::from_secs(1)));
    assert_eq!(
        ftplib(&server, &["active", "a.txt"]),
        format!("refused {refused}\n")
    );
    assert!(!connection_comes(&service, Duration::from_millis(200)));

    let allowed = serve_ftp(root.path(), &["--allow-loopback-active"]);
    assert_eq!(ftplib(&allowed, &["active", "a.txt"]), "got 12 bytes\n");
}

/// A passive port nobody connects to is closed after `--passive-timeout`:
/// the port then refuses connections, the next transfer command gets
/// `425`, and the session goes on.
#[test]
fn an_unused_passive_port_closes_after_the_timeout() {
    let root = TempDir::new("wire-pasv");
    std::fs::write(root.join("a.txt"), "data\n").unwrap();
    let server = serve_ftp(root.path(), &["--passive-timeout", "1"]);
    let mut ftp = FtpPeer::logged_in(&server.addr);
    let expired = "425 No data connection: the passive port timed out; use PASV or EPSV again.";
    for command in ["PASV", "EPSV"] {
        let addr = match command {
            "PASV" => {
                let r = ftp.cmd("PASV");
                let numbers: Vec<u16> = r
                    .strip_prefix("227 Entering Passive Mode (")
                    .and_then(|rest| rest.strip_suffix(").\r\n"))
                    .unwrap_or_else(|| panic!("PASV reply {r:?}"))
                    .split(',')
                    .map(|n| n.parse().unwrap())
                    .collect();
                let port = numbers[4] << 8 | numbers[5];
                std::net::SocketAddr::from(([127, 0, 0, 1], port))
            }
            _ => ftp.epsv(),
        };
        wait_until(Duration::from_secs(20), "the passive port closes", || {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
                Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
                // Still open: look again a little later (each look is a
                // connection in the listener's backlog).
                Ok(_) => {
                    std::thread::sleep(Duration::from_millis(50));
                    false
                }
            }
        });
        ftp.expect("RETR a.txt", expired);
        ftp.expect("NOOP", "200 NOOP ok.");
    }
}

/// The peak resident memory of process `pid` (VmHWM), in bytes.
fn peak_memory(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read the status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {status}"));
    kib * 1024
}

/// A folder of 50,000 entries lists whole (ftplib's NLST and LIST), and
/// the server's peak memory grows by far less than the listing: the
/// entries stream out as they are read, none are collected.
#[test]
fn a_large_folder_lists_in_constant_memory() {
    const COUNT: usize = 50_000;
    let root = TempDir::new("wire-many");
    std::fs::create_dir(root.join("small")).unwrap();
    std::fs::write(root.join("small/one.txt"), "1").unwrap();
    std::fs::create_dir(root.join("many")).unwrap();
    let name = |i: usize| format!("an-entry-whose-long-name-makes-the-listing-large-{i:06}.txt");
    for i in 0..COUNT {
        std::fs::File::create(root.join("many").join(name(i))).unwrap();
    }
    let server = serve_ftp(root.path(), &[]);
    // The same work on a small folder first: what any listing costs
    // (threads, buffers) is in the baseline.
    assert_eq!(ftplib(&server, &["count", "small"]), "nlst 1\nlist 1\n");
    let before = peak_memory(server.child.id());
    assert_eq!(
        ftplib(&server, &["count", "many"]),
        format!("nlst {COUNT}\nlist {COUNT}\n")
    );
    let growth = peak_memory(server.child.id()).saturating_sub(before);

    let mut ftp = FtpPeer::logged_in(&server.addr);
    let listing = ftp.download("LIST many");
    assert_eq!(listing.split(|&b| b == b'\n').count(), COUNT + 1);
    assert!(listing.len() > 5_000_000, "{}", listing.len());
    assert!(
        growth < listing.len() as u64 / 2,
        "the server's peak memory grew by {growth} bytes for a listing of {}",
        listing.len()
    );
}

/// Files whose names could rewrite a terminal or forge lines: an escape
/// sequence, a right-to-left override, a newline.
fn hostile_folder(tag: &str) -> TempDir {
    let root = TempDir::new(tag);
    for name in [
        "red\u{1b}[31m.txt",
        "evil\u{202e}txt.exe",
        "two\nlines.txt",
        "plain.txt",
    ] {
        std::fs::write(root.join(name), "x").unwrap();
    }
    root
}

/// The names of `hostile_folder` as LIST and MLSD show them.
const ESCAPED: [&str; 4] = [
    r"evil\u{202e}txt.exe",
    "plain.txt",
    r"red\x1b[31m.txt",
    r"two\x0alines.txt",
];

/// True if `bytes` hold a control character other than a line end's CR
/// or LF, or a bidirectional control.
fn holds_unsafe(bytes: &[u8]) -> bool {
    String::from_utf8_lossy(bytes).chars().any(|c| {
        (c.is_control() && c != '\r' && c != '\n')
            || matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    })
}

/// LIST and MLSD show such names escaped, one line each (ftplib reads
/// them); NLST gives them as they are, for fetching, CR and LF alone
/// escaped; a `257` reply escapes the name it quotes.
#[test]
fn listings_escape_names_that_could_rewrite_a_terminal() {
    let root = hostile_folder("wire-escape");
    let server = serve_ftp(root.path(), &[]);

    // ftplib's lines, each printed with Python's ascii(): a raw ESC
    // would show as \x1b, the escaped one as \\x1b.
    let out = ftplib(&server, &["list"]);
    let mut names: Vec<String> = out
        .lines()
        .map(|line| {
            let line = line.strip_suffix('\'').expect("ascii() of a str");
            line.rsplit(' ').next().unwrap().to_string()
        })
        .collect();
    names.sort();
    let shown: Vec<String> = ESCAPED.iter().map(|n| n.replace('\\', r"\\")).collect();
    assert_eq!(names, shown, "{out}");

    let mut ftp = FtpPeer::logged_in(&server.addr);
    let mlsd = String::from_utf8(ftp.download("MLSD")).unwrap();
    let mut names: Vec<&str> = mlsd
        .split_terminator("\r\n")
        .map(|line| line.split_once("; ").expect("facts; name").1)
        .collect();
    names.sort_unstable();
    assert_eq!(names, ESCAPED, "{mlsd}");
    assert!(!holds_unsafe(mlsd.as_bytes()), "{mlsd:?}");

    let nlst = String::from_utf8(ftp.download("NLST")).unwrap();
    let mut names: Vec<&str> = nlst.split_terminator("\r\n").collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "evil\u{202e}txt.exe",
            "plain.txt",
            "red\u{1b}[31m.txt",
            r"two\x0alines.txt"
        ]
    );
    // STAT path: the same lines over the control connection.
    let stat = ftp.cmd("STAT /");
    let lines: Vec<&str> = stat.split_terminator("\r\n").collect();
    assert_eq!(lines.len(), 6, "{stat:?}");
    assert_eq!(lines[0], "213-Status of /:");
    assert_eq!(lines[5], "213 End of status");
    let mut names: Vec<&str> = lines[1..5]
        .iter()
        .map(|line| {
            assert!(line.starts_with(" -rw"), "{line:?}");
            line.rsplit(' ').next().unwrap()
        })
        .collect();
    names.sort_unstable();
    assert_eq!(names, ESCAPED, "{stat:?}");
    assert!(!holds_unsafe(stat.as_bytes()), "{stat:?}");
    // A name from NLST fetches its file.
    assert_eq!(ftp.download("RETR red\u{1b}[31m.txt"), b"x");

    ftp.expect("MKD d\u{1b}[2J", "257 \"/d\\x1b[2J\" created.");
    ftp.expect("CWD d\u{1b}[2J", "250 Directory successfully changed.");
    ftp.expect("PWD", "257 \"/d\\x1b[2J\" is the current directory.");
    ftp.expect(
        "MKD \u{202e}\"q\"",
        "257 \"/d\\x1b[2J/\\u{202e}\"\"q\"\"\" created.",
    );
}

/// `client ftp ls` escapes what any server sends: pyftpdlib sends such
/// names raw, this server escaped; neither reaches the terminal raw.
#[test]
fn client_ftp_ls_never_prints_raw_control_characters() {
    let root = hostile_folder("wire-client-ls");
    let local = TempDir::new("wire-client-ls-local");
    let user = format!("{USER}:{PASSWORD}");
    let pyftpd = crate::ftp_util::PyFtpd::start(root.path());
    let ours = serve_ftp(root.path(), &[]);
    for addr in [pyftpd.addr.as_str(), ours.addr.as_str()] {
        let out = crate::ftp_util::client_ftp(local.path(), addr, &["--user", &user, "ls"]);
        let (stdout, stderr) = crate::ftp_util::texts(&out);
        assert!(out.status.success(), "{addr}: {stderr}");
        assert!(!holds_unsafe(&out.stdout), "{addr}: {stdout:?}");
        assert!(stdout.contains(r" red\x1b[31m.txt"), "{addr}: {stdout:?}");
        assert!(
            stdout.contains(r" evil\u{202e}txt.exe"),
            "{addr}: {stdout:?}"
        );
        assert!(stdout.contains(" plain.txt"), "{addr}: {stdout:?}");
    }
}

/// The idle timeout counts from the end of the last command: a download
/// that lasts longer than it (the data moving all along) is followed by
/// a session that goes on, with or without a passive port waiting.
#[test]
fn a_transfer_longer_than_the_idle_timeout_is_not_idleness() {
    use std::io::Read;
    let root = TempDir::new("wire-idle");
    let size = 24 << 20;
    std::fs::write(root.join("big.bin"), vec![7u8; size]).unwrap();
    let server = serve_ftp(root.path(), &["--idle-timeout", "1"]);
    let mut ftp = FtpPeer::logged_in(&server.addr);
    let addr = ftp.epsv();
    let mut data = std::net::TcpStream::connect(addr).unwrap();
    data.set_read_timeout(Some(crate::util::IO_TIMEOUT))
        .unwrap();
    let started = Instant::now();
    let r = ftp.cmd("RETR big.bin");
    assert!(r.starts_with("150 "), "{r:?}");
    // 256 KiB every 25 ms at most: some 10 MiB/s, so 2.4 s at least.
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0;
    loop {
        let n = data.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got += n;
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!(got, size);
    let r = ftp.reply();
    assert!(r.starts_with("226 "), "{r:?}");
    assert!(started.elapsed() > Duration::from_millis(1500));
    ftp.expect("NOOP", "200 NOOP ok.");
    ftp.expect("QUIT", "221 Goodbye.");
}
