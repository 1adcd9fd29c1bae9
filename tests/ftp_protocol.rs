//! The FTP server's wire protocol with a raw client, reply by reply:
//! what docs/protocols.md promises.

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::ftp_util::{md5_hex, open_upload_temp, serve_ftp, FtpPeer, TempDir, USER};
use crate::util::IO_TIMEOUT;

/// Before login only the session verbs work; the replies are exact.
#[test]
fn greeting_and_commands_before_login() {
    let root = TempDir::new("proto-pre");
    let server = serve_ftp(root.path(), &[]);
    let mut ftp = FtpPeer::connect_raw(&server.addr);
    ftp.expect_reply("220 socketserver FTP ready");
    ftp.expect("SYST", "215 UNIX Type: L8");
    ftp.expect("NOOP", "200 NOOP ok.");
    ftp.expect("AUTH TLS", "502 TLS is not available on this server.");
    ftp.expect("PWD", "530 Please log in with USER and PASS.");
    ftp.expect("RETR x", "530 Please log in with USER and PASS.");
    ftp.expect("PASS x", "503 Login with USER first.");
    ftp.expect("OPTS UTF8 ON", "200 Always in UTF8 mode.");
    ftp.expect("FEAT", "211-Features:\r\n EPRT\r\n EPSV\r\n HASH MD5;SHA-1;SHA-256*\r\n MDTM\r\n MLST type*;size*;modify*;perm*;\r\n PASV\r\n REST STREAM\r\n SIZE\r\n TVFS\r\n UTF8\r\n XMD5\r\n XSHA1\r\n XSHA256\r\n211 End");
    // Lower case and a bare LF are fine.
    ftp.send_raw(b"noop\n");
    ftp.expect_reply("200 NOOP ok.");
    ftp.expect("QUIT", "221 Goodbye.");
    ftp.expect_closed();
}

/// Navigation, folders with quotes in their names, settings.
#[test]
fn navigation_and_settings() {
    let root = TempDir::new("proto-nav");
    let server = serve_ftp(root.path(), &[]);
    let mut ftp = FtpPeer::logged_in(&server.addr);
    ftp.expect("PWD", "257 \"/\" is the current directory.");
    ftp.expect("MKD say \"hi\"", "257 \"/say \"\"hi\"\"\" created.");
    ftp.expect("MKD say \"hi\"", "550 File exists.");
    ftp.expect("CWD say \"hi\"", "250 Directory successfully changed.");
    ftp.expect("XPWD", "257 \"/say \"\"hi\"\"\" is the current directory.");
    ftp.expect("CDUP", "250 Directory successfully changed.");
    ftp.expect("CWD nowhere", "550 No such file or directory.");
    ftp.expect("TYPE A", "200 Switching to ASCII mode.");
    ftp.expect("TYPE L 8", "200 Switching to Binary mode.");
    ftp.expect("TYPE E", "504 Only TYPE A, I and L 8 are supported.");
    ftp.expect("MODE S", "200 Mode set to S.");
    ftp.expect("MODE B", "504 Only MODE S is supported.");
    ftp.expect("STRU F", "200 Structure set to F.");
    ftp.expect("STRU R", "504 Only STRU F is supported.");
    ftp.expect("ALLO 100", "202 No storage allocation necessary.");
    ftp.expect("REST abc", "501 REST needs a byte offset.");
    ftp.expect("ABOR", "225 No transfer to abort.");
    ftp.expect(
        "SITE CHMOD 777 x",
        "502 Unknown SITE command: see SITE HELP.",
    );
    ftp.expect("BOGUS", "500 Unknown command.");
    ftp.expect("RETR x", "550 No such file or directory.");
    ftp.expect("RETR x\0", "550 Invalid character in file name.");
    ftp.expect("LIST", "425 Use PASV, EPSV, PORT or EPRT first.");
    ftp.expect("RNTO x", "503 RNFR required first.");
    ftp.expect(
        "RMD say \"hi\"",
        "250 Remove directory operation successful.",
    );
    ftp.expect("OPTS MLST size;type;", "200 MLST OPTS type;size;");
    std::fs::write(root.join("f.txt"), "12345").unwrap();
    let reply = ftp.cmd("MLST f.txt");
    assert_eq!(
        reply,
        "250-Listing /f.txt\r\n type=file;size=5; /f.txt\r\n250 End\r\n"
    );
    ftp.expect("SIZE f.txt", "213 5");
    ftp.expect("EPSV ALL", "200 EPSV ALL ok.");
    ftp.expect("PASV", "503 EPSV ALL was sent: use EPSV.");
    let stat = ftp.cmd("STAT");
    assert_eq!(
        stat,
        format!(
            "211-FTP server status:\r\n Connected from 127.0.0.1\r\n Logged in as {USER}\r\n \
             TYPE: BINARY\r\n No data connection\r\n211 End of status\r\n"
        )
    );
}

threads_and_events!(
    ascii_mode_converts_line_ends,
    ascii_mode_converts_line_ends_event,
    ascii_mode_converts_line_ends_in
);

/// TYPE A converts line ends both ways; TYPE I moves bytes as they are.
fn ascii_mode_converts_line_ends_in(mode: &[&str]) {
    let root = TempDir::new("proto-ascii");
    std::fs::write(root.join("unix.txt"), "a\nb\r\nc\n").unwrap();
    let server = serve_ftp(root.path(), mode);
    let mut ftp = FtpPeer::logged_in(&server.addr);
    ftp.expect("TYPE A", "200 Switching to ASCII mode.");
    assert_eq!(ftp.download("RETR unix.txt"), b"a\r\nb\r\nc\r\n");
    let addr = ftp.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    assert!(ftp.cmd("STOR up.txt").starts_with("150 "));
    data.write_all(b"x\r\ny\r\n\r").unwrap();
    drop(data);
    // The MD5 is the stored file's (line ends converted).
    ftp.expect_reply(&format!(
        "226 Transfer complete. MD5={}",
        md5_hex(b"x\ny\n\r")
    ));
    assert_eq!(std::fs::read(root.join("up.txt")).unwrap(), b"x\ny\n\r");
    ftp.expect("TYPE I", "200 Switching to Binary mode.");
    assert_eq!(ftp.download("RETR unix.txt"), b"a\nb\r\nc\n");
}

threads_and_events!(
    the_control_connection_is_read_during_transfers,
    the_control_connection_is_read_during_transfers_event,
    the_control_connection_is_read_during_transfers_in
);

/// During a transfer the control connection is read: STAT answers at
/// once, other commands wait for the transfer's end, QUIT ends the session
/// after the transfer's 226, and an ABOR after Telnet's IP and DM (as
/// ftp.exe sends it) is answered 426 then 226.
fn the_control_connection_is_read_during_transfers_in(mode: &[&str]) {
    let root = TempDir::new("proto-during");
    std::fs::write(root.join("big.bin"), vec![3u8; 16 * 1024 * 1024]).unwrap();
    let server = serve_ftp(root.path(), mode);
    let mut ftp = FtpPeer::logged_in(&server.addr);

    // STAT and a queued NOOP while the client does not read the data.
    let addr = ftp.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    data.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    assert!(ftp.cmd("RETR big.bin").starts_with("150 "));
    ftp.send("NOOP");
    let stat = ftp.cmd("STAT");
    assert!(stat.starts_with("213 Transfer in progress: "), "{stat:?}");
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), 16 * 1024 * 1024);
    let done = format!(
        "226 Transfer complete. MD5={}",
        md5_hex(&vec![3u8; 16 * 1024 * 1024])
    );
    ftp.expect_reply(&done);
    ftp.expect_reply("200 NOOP ok.");

    // ABOR preceded by IAC IP, IAC DM.
    let addr = ftp.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    data.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    assert!(ftp.cmd("RETR big.bin").starts_with("150 "));
    let mut first = vec![0u8; 1024];
    data.read_exact(&mut first).unwrap();
    ftp.send_raw(b"\xff\xf4\xff\xf2ABOR\r\n");
    ftp.expect_reply("426 Connection closed; transfer aborted.");
    ftp.expect_reply("226 ABOR successful.");
    drop(data);

    // QUIT during a transfer: the transfer finishes first.
    let addr = ftp.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    data.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    assert!(ftp.cmd("RETR big.bin").starts_with("150 "));
    ftp.send("QUIT");
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), 16 * 1024 * 1024);
    ftp.expect_reply(&done);
    ftp.expect_reply("221 Goodbye.");
    ftp.expect_closed();
}

threads_and_events!(
    aborted_uploads_leave_nothing_and_rest_stor_resumes,
    aborted_uploads_leave_nothing_and_rest_stor_resumes_event,
    aborted_uploads_leave_nothing_and_rest_stor_resumes_in
);

/// An upload aborted midway (ABOR) leaves neither the file nor a temp
/// file, hashed (copied through the server) or not (spliced: `--hash-transfers
/// off`); REST + STOR keeps the first bytes and replaces the rest.
fn aborted_uploads_leave_nothing_and_rest_stor_resumes_in(mode: &[&str]) {
    for hashing in ["auto", "off"] {
        aborted_upload_leaves_nothing(hashing, mode);
    }
    let root = TempDir::new("proto-rest-stor");
    let server = serve_ftp(root.path(), mode);
    let mut ftp = FtpPeer::logged_in(&server.addr);
    std::fs::write(root.join("r.bin"), b"0123456789").unwrap();
    ftp.expect("REST 4", "350 Restart position accepted (4).");
    let addr = ftp.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    data.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    assert!(ftp.cmd("STOR r.bin").starts_with("150 "));
    data.write_all(b"abc").unwrap();
    drop(data);
    // The kept part was copied by the kernel, unread: no MD5 of the whole.
    ftp.expect_reply("226 Transfer complete.");
    assert_eq!(std::fs::read(root.join("r.bin")).unwrap(), b"0123abc");
    ftp.expect("REST 100", "350 Restart position accepted (100).");
    ftp.epsv();
    ftp.expect(
        "STOR r.bin",
        "554 Restart position 100 is beyond the end of the file (7 bytes).",
    );
    assert_eq!(root.names(""), ["r.bin"]);
}

fn aborted_upload_leaves_nothing(hashing: &str, mode: &[&str]) {
    let root = TempDir::new(&format!("proto-abort-up-{hashing}"));
    let server = serve_ftp(
        root.path(),
        &[mode, &["--hash-transfers", hashing]].concat(),
    );
    let mut ftp = FtpPeer::logged_in(&server.addr);
    let addr = ftp.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    data.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    assert!(ftp.cmd("STOR part.bin").starts_with("150 "));
    data.write_all(&[9u8; 100_000]).unwrap();
    crate::util::wait_until(IO_TIMEOUT, "the temp file has the bytes", || {
        open_upload_temp(&server, root.path()) == Some(100_000)
    });
    ftp.send("ABOR");
    ftp.expect_reply("426 Connection closed; transfer aborted.");
    ftp.expect_reply("226 ABOR successful.");
    drop(data);
    assert_eq!(root.names(""), Vec::<String>::new(), "{hashing} {mode:?}");
}
