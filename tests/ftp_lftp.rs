//! lftp (a mirroring client written by others) against
//! `serve --handler ftp`: listing, folders, upload, download, a recursive
//! upload (mirror -R), rename, and a recursive delete; and a tree with
//! nested folders, spaces and UTF-8 names mirrored up and back down, byte
//! for byte.

use std::process::{Command, Output};

use crate::ftp_curl::pattern;
use crate::ftp_util::{serve_ftp, TempDir, PASSWORD, USER};
use crate::util::run_with_input;

threads_and_events!(lftp_session, lftp_session_event, lftp_session_in);

fn lftp_session_in(mode: &[&str]) {
    let root = TempDir::new("lftp");
    std::fs::write(root.join("a.txt"), "x\n").unwrap();
    let local = TempDir::new("lftp-local");
    let data = pattern(2_000_000, 21);
    std::fs::write(local.join("up.bin"), &data).unwrap();
    let server = serve_ftp(root.path(), mode);
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
    let out = lftp_ok(&host, &port, &script);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "mirrored/back.bin\nmirrored/up.bin\na.txt\nd/\na.txt\n"
    );
    assert_eq!(std::fs::read(&back).unwrap(), data);
    assert_eq!(root.names(""), ["a.txt"]);
}

/// Runs lftp as the test user against `host`:`port` with `script`;
/// its output, once it exited with success.
pub fn lftp_ok(host: &str, port: &str, script: &str) -> Output {
    let mut lftp = Command::new("lftp");
    lftp.args([
        "-u",
        &format!("{USER},{PASSWORD}"),
        "-p",
        port,
        "-e",
        script,
        host,
    ]);
    let out = run_with_input(lftp, b"");
    assert!(
        out.status.success(),
        "lftp failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every file and folder under `dir`, relative, sorted: (path, None) for
/// a folder, (path, Some(bytes)) for a file.
pub fn tree(dir: &std::path::Path) -> Vec<(String, Option<Vec<u8>>)> {
    fn walk(
        base: &std::path::Path,
        dir: &std::path::Path,
        out: &mut Vec<(String, Option<Vec<u8>>)>,
    ) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                out.push((name, None));
                walk(base, &path, out);
            } else {
                out.push((name, Some(std::fs::read(&path).unwrap())));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

threads_and_events!(
    lftp_mirrors_a_tree_both_ways,
    lftp_mirrors_a_tree_both_ways_event,
    lftp_mirrors_a_tree_both_ways_in
);

/// lftp's `mirror -R` uploads a tree (nested folders, spaces, UTF-8
/// names, an empty file, an empty folder) and `mirror` brings it back:
/// both copies equal the original, byte for byte.
fn lftp_mirrors_a_tree_both_ways_in(mode: &[&str]) {
    let root = TempDir::new("lftp-mirror-root");
    let local = TempDir::new("lftp-mirror-local");
    let original = local.join("tree");
    for dir in ["目录/更深 deeper", "folder with spaces", "empty dir"] {
        std::fs::create_dir_all(original.join(dir)).unwrap();
    }
    let files: [(&str, Vec<u8>); 6] = [
        ("a.txt", b"alpha\n".to_vec()),
        ("with space.txt", b"two words\n".to_vec()),
        ("目录/文件 一.bin", pattern(300_000, 31)),
        (
            "目录/更深 deeper/ünïcødé.txt",
            "ünïcødé\n".as_bytes().to_vec(),
        ),
        ("目录/更深 deeper/empty.bin", Vec::new()),
        ("folder with spaces/x y z.dat", pattern(1_500_000, 32)),
    ];
    for (name, bytes) in &files {
        std::fs::write(original.join(name), bytes).unwrap();
    }
    let server = serve_ftp(root.path(), mode);
    let (host, port) = server.host_port();
    let back = local.join("back");
    let script = format!(
        "set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 10; \
         mirror -R '{original}' up; mirror up '{back}'; quit",
        original = original.display(),
        back = back.display(),
    );
    lftp_ok(&host, &port, &script);
    let expected = tree(&original);
    assert_eq!(expected.len(), 10);
    assert!(tree(&root.join("up")) == expected, "the upload differs");
    assert!(tree(&back) == expected, "the download differs");
    assert_eq!(root.names(""), ["up"]);
}
