//! Python's ftplib drives a whole session (tests/ftp_session.py): login,
//! FEAT, PWD, MKD, CWD, STOR, APPE, REST+STOR, LIST, NLST, MLSD, SIZE,
//! MDTM, RETR with and without REST, RNFR/RNTO, DELE, ABOR during a RETR,
//! RMD, QUIT. The transcript is compared whole.

use std::path::Path;
use std::process::Command;

use crate::ftp_util::{serve_ftp, TempDir, PASSWORD, USER};
use crate::util::run_with_input;

const TRANSCRIPT: &str = "\
220 socketserver FTP ready
230 Login successful.
211-Features:
 EPRT
 EPSV
 HASH MD5;SHA-1;SHA-256*
 MDTM
 MLST type*;size*;modify*;perm*;
 PASV
 REST STREAM
 SIZE
 TVFS
 UTF8
 XMD5
 XSHA1
 XSHA256
211 End
200 Always in UTF8 mode.
215 UNIX Type: L8
200 Switching to Binary mode.
pwd /
mkd /目录 dir
250 Directory successfully changed.
pwd /目录 dir
226 Transfer complete. MD5=right
226 Transfer complete. (no MD5)
size 1048588 1048588
226 Transfer complete. (no MD5)
size after resume 1048588
226 Directory send OK.
list [('-', '1048588', 'data.bin')]
nlst ['data.bin']
mlsd [('data.bin', 'file', '1048588')]
mdtm 213  18
226 Transfer complete. MD5=right
retr equal True
226 Transfer complete. MD5=right
retr with rest equal True
250 Rename successful.
nlst ['renamed.bin']
250 Delete operation successful.
nlst []
250 Directory successfully changed.
abort 426 Connection closed; transfer aborted.
226 ABOR successful.
200 NOOP ok.
250 Remove directory operation successful.
nlst ['big.bin']
221 Goodbye.
";

threads_and_events!(
    ftplib_full_session,
    ftplib_full_session_event,
    ftplib_full_session_in
);

fn ftplib_full_session_in(mode: &[&str]) {
    let root = TempDir::new("ftplib");
    // Large enough that its RETR cannot end before the ABOR arrives (more
    // than both sockets' buffers hold).
    std::fs::write(root.join("big.bin"), vec![7u8; 32 * 1024 * 1024]).unwrap();
    let server = serve_ftp(root.path(), mode);
    let (host, port) = server.host_port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ftp_session.py");
    let mut python = Command::new("python3");
    python
        .arg(script)
        .args([&host, &port, USER, PASSWORD])
        .env("PYTHONIOENCODING", "utf-8");
    let out = run_with_input(python, b"");
    assert!(
        out.status.success(),
        "ftp_session.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), TRANSCRIPT);
    assert_eq!(root.names(""), ["big.bin"]);
}
