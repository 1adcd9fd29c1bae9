//! The tutorial's MD5 check, made standard: every transfer's `226` carries
//! its MD5, the hash verbs (`XMD5`, `XSHA1`, `XSHA256`, `HASH`) answer on
//! demand, `SITE CHKHASH` guards an upload, digests are cached, and the
//! guards hold (folders, size, confinement, the bound on computations).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::ftp_util::{md5_hex, serve_ftp, serve_ftp_on, FtpPeer, TempDir, PASSWORD, USER};
use crate::util::{run_with_input, wait_until, TIMEOUT};

const TRANSCRIPT_HEAD: &str = "\
200 Switching to Binary mode.
200 SHA-256
";

/// What ftp_hashes.py prints for one file: every digest matches hashlib's.
fn file_transcript(name: &str, size: u64) -> String {
    let mut out = format!(
        "file {name} {size}\n\
         STOR 226 Transfer complete. MD5=<right>\n\
         RETR 226 Transfer complete. MD5=<right>\n\
         RETR bytes equal True\n\
         XMD5 250 <right>\n\
         XSHA1 250 <right>\n\
         XSHA256 250 <right>\n"
    );
    for algorithm in ["MD5", "SHA-1", "SHA-256"] {
        out += &format!("OPTS 200 {algorithm}\nHASH 213 {algorithm} 0-{size} <right> {name}\n");
    }
    out
}

const TRANSCRIPT_TAIL: &str = "\
OPTS 501 Unknown algorithm, current selection not changed
OPTS 200 SHA-256
SITE 200 The next STOR or APPE is kept only if its MD5 is 6c7ba9c5a141421e1c03cb9807c97c74.
STOR with a wrong digest: 550 MD5 mismatch: received MD5=<received>, SITE CHKHASH expected <announced>; the upload was discarded.
after the wrong digest ['empty.bin', 'hundred-mib.bin', 'one.bin', 'ten-mib.bin']
SITE 200 The next STOR or APPE is kept only if its MD5 is <right>.
STOR 226 Transfer complete. MD5=<right>
SITE 200 The next STOR or APPE is kept only if its MD5 is <right>.
APPE 226 Transfer complete. MD5=<right>
SITE 200 The next STOR or APPE is kept only if its MD5 is 6c7ba9c5a141421e1c03cb9807c97c74.
APPE with a wrong digest: 550 MD5 mismatch: received MD5=<received>, SITE CHKHASH expected <announced>; the upload was discarded.
size after 3145733 3145733
SITE 501 SITE CHKHASH needs an MD5 digest: 32 hexadecimal digits.
SITE 214-SITE commands:
 CHKHASH <md5>: the next STOR or APPE lands only if the stored file has this MD5
 HELP
214 End
XMD5 folder 553 Is a directory: only files have a hash.
HASH folder 553 Is a directory: only files have a hash.
XMD5 missing 550 No such file or directory.
XMD5 outside 550 No such file or directory.
XMD5 nothing 501 XMD5 needs a file name.
221 Goodbye.
";

threads_and_events!(
    ftplib_checks_every_digest_with_hashlib,
    ftplib_checks_every_digest_with_hashlib_event,
    ftplib_checks_every_digest_with_hashlib_in
);

/// ftplib against hashlib, on files of 0 B, 1 B, 10 MiB and 100 MiB: the
/// 226 of STOR and RETR, XMD5, XSHA1, XSHA256, OPTS HASH + HASH with each
/// algorithm; SITE CHKHASH with a right digest commits, with a wrong one
/// discards (nothing is left on disk, not even a temp file).
fn ftplib_checks_every_digest_with_hashlib_in(mode: &[&str]) {
    let root = TempDir::new("hashes");
    let server = serve_ftp(root.path(), mode);
    let (host, port) = server.host_port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ftp_hashes.py");
    let mut python = Command::new("python3");
    python.arg(script).args([&host, &port, USER, PASSWORD]);
    let out = run_with_input(python, b"");
    assert!(
        out.status.success(),
        "ftp_hashes.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut expected = TRANSCRIPT_HEAD.to_string();
    for (name, size) in [
        ("empty.bin", 0),
        ("one.bin", 1),
        ("ten-mib.bin", 10 << 20),
        ("hundred-mib.bin", 100 << 20),
    ] {
        expected += &file_transcript(name, size);
    }
    expected += TRANSCRIPT_TAIL;
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    assert_eq!(
        root.names(""),
        [
            "checked.bin",
            "empty.bin",
            "folder",
            "hundred-mib.bin",
            "one.bin",
            "ten-mib.bin"
        ]
    );
    assert_eq!(
        std::fs::metadata(root.join("checked.bin")).unwrap().len(),
        3_145_733
    );
}

/// Waits until `path` last changed more than 100 ms ago: a digest taken
/// earlier is "racy" and not cached (see handlers/src/ftp/hash.rs).
fn wait_settled(path: &Path) {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).unwrap();
    let changed =
        SystemTime::UNIX_EPOCH + Duration::new(meta.ctime() as u64, meta.ctime_nsec() as u32);
    wait_until(TIMEOUT, "the file is 100 ms old", || {
        SystemTime::now() > changed + Duration::from_millis(100)
    });
}

threads_and_events!(
    hash_transfers_modes_and_the_cache,
    hash_transfers_modes_and_the_cache_event,
    hash_transfers_modes_and_the_cache_in
);

/// `--hash-transfers off`: no MD5 in a 226, unless the digest is cached
/// (a settled file hashed once); `SITE CHKHASH` still hashes its upload.
/// `--hash-transfers always`: a cached file is hashed again.
fn hash_transfers_modes_and_the_cache_in(mode: &[&str]) {
    let root = TempDir::new("hash-modes");
    let data = crate::ftp_util::random_bytes(300_000, 5);
    std::fs::write(root.join("a.bin"), &data).unwrap();
    wait_settled(&root.join("a.bin"));
    let md5 = md5_hex(&data);
    let server = serve_ftp(root.path(), &[mode, &["--hash-transfers", "off"]].concat());
    let mut ftp = FtpPeer::logged_in(&server.addr);
    assert_eq!(
        ftp.download_with_reply("RETR a.bin"),
        (data.clone(), "226 Transfer complete.\r\n".to_string())
    );
    ftp.expect("XMD5 a.bin", &format!("250 {md5}"));
    // Cached now: the 226 gives it, though nothing hashed the transfer.
    assert_eq!(
        ftp.download_with_reply("RETR a.bin"),
        (
            data.clone(),
            format!("226 Transfer complete. MD5={md5}\r\n")
        )
    );
    // A RETR from an offset sends part of the file: no whole-file digest.
    ftp.expect("REST 1000", "350 Restart position accepted (1000).");
    assert_eq!(
        ftp.download_with_reply("RETR a.bin"),
        (
            data[1000..].to_vec(),
            "226 Transfer complete.\r\n".to_string()
        )
    );
    // Uploads: no MD5, unless SITE CHKHASH asked for a check.
    ftp.upload("STOR b.bin", b"bee");
    ftp.expect_reply("226 Transfer complete.");
    let bee = md5_hex(b"bee");
    ftp.expect(
        &format!("SITE CHKHASH {bee}"),
        &format!("200 The next STOR or APPE is kept only if its MD5 is {bee}."),
    );
    ftp.upload("STOR c.bin", b"bee");
    ftp.expect_reply(&format!("226 Transfer complete. MD5={bee}"));
    drop(server);

    let server = serve_ftp(
        root.path(),
        &[mode, &["--hash-transfers", "always"]].concat(),
    );
    let mut ftp = FtpPeer::logged_in(&server.addr);
    ftp.expect("REST 1000", "350 Restart position accepted (1000).");
    assert_eq!(
        ftp.download_with_reply("RETR a.bin"),
        (
            data[1000..].to_vec(),
            format!("226 Transfer complete. MD5={}\r\n", md5_hex(&data[1000..]))
        )
    );
    assert_eq!(
        ftp.download_with_reply("RETR a.bin"),
        (
            data.clone(),
            format!("226 Transfer complete. MD5={md5}\r\n")
        )
    );
    assert_eq!(root.names(""), ["a.bin", "b.bin", "c.bin"]);
}

threads_and_events!(
    hash_computations_are_bounded_and_abortable,
    hash_computations_are_bounded_and_abortable_event,
    hash_computations_are_bounded_and_abortable_in
);

/// At most --max-hashes computations at once: while one hashes a large
/// (sparse) file, another is answered 450; STAT reports the hashing, ABOR
/// stops it (426, 226), and the place is free again.
fn hash_computations_are_bounded_and_abortable_in(mode: &[&str]) {
    let root = TempDir::new("hash-busy");
    let sparse = std::fs::File::create(root.join("sparse.bin")).unwrap();
    sparse.set_len(64 << 30).unwrap();
    drop(sparse);
    std::fs::write(root.join("small.txt"), "small\n").unwrap();
    let server = serve_ftp(
        root.path(),
        &[mode, &["--max-hashes", "1", "--hash-max-size", "unlimited"]].concat(),
    );
    let mut busy = FtpPeer::logged_in(&server.addr);
    busy.send("XMD5 sparse.bin");
    busy.send("STAT");
    let stat = busy.reply();
    assert!(stat.starts_with("213 Hashing in progress: "), "{stat:?}");

    let mut other = FtpPeer::logged_in(&server.addr);
    other.expect(
        "XSHA256 small.txt",
        "450 Too many hash computations running; try again later.",
    );
    busy.send("ABOR");
    busy.expect_reply("426 Hashing aborted.");
    busy.expect_reply("226 ABOR successful.");
    busy.expect("NOOP", "200 NOOP ok.");
    other.expect(
        "XSHA256 small.txt",
        "250 4c47b3e816fbe7d40cef9f665ba8f0be1ae68b5e8e7ed70f5b6bab7f70528e8f",
    );
}

/// The guards: a file over --hash-max-size is refused (550), a link out of
/// the root and an upload's temp file cannot be hashed, anonymous users
/// may hash what they may read.
#[test]
fn hash_guards() {
    let root = TempDir::new("hash-guards");
    std::fs::write(root.join("big.bin"), vec![1u8; 2 << 20]).unwrap();
    std::fs::write(root.join("ok.txt"), "ok\n").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("out")).unwrap();
    let user = format!("{USER}:{PASSWORD}");
    let server = serve_ftp_on(
        "127.0.0.1:0",
        root.path(),
        &["--user", &user, "--anonymous", "--hash-max-size", "1M"],
    );
    let mut ftp = FtpPeer::logged_in(&server.addr);
    ftp.expect(
        "XMD5 big.bin",
        "550 File too large to hash on demand (2097152 bytes; the limit is 1048576).",
    );
    ftp.expect("XMD5 out", "550 Permission denied.");
    ftp.expect(
        "XMD5 .ftp-upload-0123456789abcdef.part",
        "550 No such file or directory.",
    );
    ftp.expect("XMD5 /", "553 Is a directory: only files have a hash.");
    // A whole download hashes the file: then its digest is known, whatever
    // its size (once it is settled).
    wait_settled(&root.join("big.bin"));
    let md5 = md5_hex(&vec![1u8; 2 << 20]);
    assert_eq!(
        ftp.download_with_reply("RETR big.bin").1,
        format!("226 Transfer complete. MD5={md5}\r\n")
    );
    ftp.expect("XMD5 big.bin", &format!("250 {md5}"));

    let mut anonymous = FtpPeer::connect(&server.addr);
    let r = anonymous.cmd("USER anonymous");
    assert!(r.starts_with("331 "), "{r:?}");
    let r = anonymous.cmd("PASS guest@");
    assert!(r.starts_with("230 "), "{r:?}");
    anonymous.expect("XMD5 ok.txt", &format!("250 {}", md5_hex(b"ok\n")));
    anonymous.expect("XMD5 ../../etc/hostname", "550 No such file or directory.");
}
