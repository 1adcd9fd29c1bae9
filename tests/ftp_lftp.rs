//! lftp (a mirroring client written by others) against
//! `serve --handler ftp`: listing, folders, upload, download, a recursive
//! upload (mirror -R), rename, and a recursive delete.

use std::process::Command;

use crate::ftp_curl::pattern;
use crate::ftp_util::{serve_ftp, TempDir, PASSWORD, USER};
use crate::util::run_with_input;

#[test]
fn lftp_session() {
    let root = TempDir::new("lftp");
    std::fs::write(root.join("a.txt"), "x\n").unwrap();
    let local = TempDir::new("lftp-local");
    let data = pattern(2_000_000, 21);
    std::fs::write(local.join("up.bin"), &data).unwrap();
    let server = serve_ftp(root.path(), &[]);
    let (host, port) = server.host_port();
    let up = local.join("up.bin");
    let back = local.join("back.bin");
    let script = format!(
        "set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 10; \
         mkdir d; cd d; put {up}; get up.bin -o {back}; mirror -R {local} mirrored; \
         mv up.bin moved.bin; cls -1 mirrored; rm moved.bin; cd ..; cls -1; rm -r d; cls -1; quit",
        up = up.display(),
        back = back.display(),
        local = local.path().display(),
    );
    let mut lftp = Command::new("lftp");
    lftp.args([
        "-u",
        &format!("{USER},{PASSWORD}"),
        "-p",
        &port,
        "-e",
        &script,
        &host,
    ]);
    let out = run_with_input(lftp, b"");
    assert!(
        out.status.success(),
        "lftp failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "mirrored/back.bin\nmirrored/up.bin\na.txt\nd/\na.txt\n"
    );
    assert_eq!(std::fs::read(&back).unwrap(), data);
    assert_eq!(root.names(""), ["a.txt"]);
}
