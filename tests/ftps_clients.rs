//! FTPS with more clients: lftp mirroring a tree both ways with
//! `ftp:ssl-force` against a server that requires TLS; `client ftp --tls`
//! (put, get, resume, `md5 ok`), and its one line for an untrusted
//! certificate; implicit FTPS (curl's `ftps://`) on its own listener
//! beside the explicit one, both stopped by one SIGTERM.

use std::io::{Read, Write};

use crate::ftp_client::assert_transferred;
use crate::ftp_curl::pattern;
use crate::ftp_lftp::{lftp_ok, tree};
use crate::ftp_util::{client_ftp, md5_hex, random_bytes, texts, FtpPeer, TempDir};
use crate::ftp_util::{PASSWORD, USER};
use crate::ftps_util::{curl_tls_ok, data_handshakes, serve_ftps, serve_ftps_logged, TestCert};
use crate::util::{model_name, IO_TIMEOUT, TIMEOUT};

threads_and_events!(
    lftp_mirrors_both_ways_over_ftps,
    lftp_mirrors_both_ways_over_ftps_event,
    lftp_mirrors_both_ways_over_ftps_in
);

/// lftp with `ftp:ssl-force` (AUTH TLS, PROT P on every data connection)
/// mirrors a tree up and back down against a server with
/// `--tls-required`, which would refuse any login or transfer in clear:
/// both copies equal the original, byte for byte, and every data
/// connection resumed the control connection's TLS session.
fn lftp_mirrors_both_ways_over_ftps_in(mode: &[&str]) {
    let cert = TestCert::new();
    let root = TempDir::new("ftps-lftp-root");
    let local = TempDir::new("ftps-lftp-local");
    let original = local.join("tree");
    std::fs::create_dir_all(original.join("目录/deeper")).unwrap();
    std::fs::create_dir_all(original.join("empty dir")).unwrap();
    std::fs::write(original.join("a.txt"), b"alpha\n").unwrap();
    std::fs::write(original.join("目录/big.bin"), pattern(2_500_000, 41)).unwrap();
    std::fs::write(original.join("目录/deeper/b c.txt"), b"two words\n").unwrap();
    let (server, log) =
        serve_ftps_logged(root.path(), &cert, &[mode, &["--tls-required"]].concat());
    let (host, port) = server.host_port();
    let back = local.join("back");
    let script = format!(
        "set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 10; \
         set ftp:ssl-force true; set ftp:ssl-protect-data true; \
         set ssl:ca-file '{ca}'; \
         mirror -R '{original}' up; mirror up '{back}'; quit",
        ca = cert.cert.display(),
        original = original.display(),
        back = back.display(),
    );
    lftp_ok(&host, &port, &script);
    let expected = tree(&original);
    assert_eq!(expected.len(), 6);
    assert!(tree(&root.join("up")) == expected, "the upload differs");
    assert!(tree(&back) == expected, "the download differs");
    // lftp resumes the control connection's TLS session on every data
    // connection (a listing per folder, a transfer per file, each way).
    drop(server);
    let (resumed, full) = data_handshakes(&log);
    assert_eq!(full, 0);
    assert!(resumed >= 6, "{resumed} resumed");
}

threads_and_events!(
    implicit_ftps_on_its_own_listener,
    implicit_ftps_on_its_own_listener_event,
    implicit_ftps_on_its_own_listener_in
);

/// `--implicit-tls-bind`: a second listener where TLS starts with the
/// first byte (curl's `ftps://` lists, downloads, uploads there), while
/// the explicit one goes on; a client that speaks no TLS there gets a
/// TLS alert and no greeting; one SIGTERM stops both listeners.
fn implicit_ftps_on_its_own_listener_in(mode: &[&str]) {
    let cert = TestCert::new();
    let root = TempDir::new("ftps-implicit");
    let data = pattern(1_200_000, 42);
    std::fs::write(root.join("data.bin"), &data).unwrap();
    let mut server = serve_ftps(
        root.path(),
        &cert,
        &[mode, &["--implicit-tls-bind", "127.0.0.1:0"]].concat(),
    );
    let second = server.next_stdout_line();
    let implicit = second
        .strip_prefix("serving ftp (implicit TLS) on ")
        .and_then(|rest| rest.strip_suffix(&format!(" ({})", model_name(mode))))
        .unwrap_or_else(|| panic!("second line {second:?}"))
        .to_string();
    let base = format!("ftps://{USER}:{PASSWORD}@{implicit}/");

    assert_eq!(curl_tls_ok(&cert, &["--list-only", &base]), b"data.bin\n");
    assert_eq!(curl_tls_ok(&cert, &[&format!("{base}data.bin")]), data);
    let local = TempDir::new("ftps-implicit-local");
    let up = local.join("up.bin");
    std::fs::write(&up, &data[..700_000]).unwrap();
    curl_tls_ok(
        &cert,
        &["-T", up.to_str().unwrap(), &format!("{base}up.bin")],
    );
    assert_eq!(
        std::fs::read(root.join("up.bin")).unwrap(),
        &data[..700_000]
    );

    // Plain FTP there: no greeting; the server's TLS answers with a
    // fatal alert (decode_error: this is no ClientHello) and closes.
    let mut plain = std::net::TcpStream::connect(&implicit).unwrap();
    plain.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    plain.write_all(b"USER alice\r\n").unwrap();
    let mut answer = Vec::new();
    plain.read_to_end(&mut answer).unwrap();
    assert_eq!(answer, [0x15, 3, 3, 0, 2, 2, 50]);

    // The explicit listener is the usual one.
    let mut explicit = FtpPeer::logged_in(&server.addr);
    explicit.expect("NOOP", "200 NOOP ok.");
    explicit.expect("QUIT", "221 Goodbye.");

    let status = server.terminate();
    assert!(status.success(), "serve exited with {status}");
    let refused = std::net::TcpStream::connect_timeout(&implicit.parse().unwrap(), TIMEOUT);
    assert!(refused.is_err(), "the implicit listener is still open");
}

threads_and_events!(
    client_ftp_over_tls_with_md5_ok,
    client_ftp_over_tls_with_md5_ok_event,
    client_ftp_over_tls_with_md5_ok_in
);

/// `client ftp --tls --ca CERT` against a server that requires TLS: a
/// 20 MiB put and get with `md5 ok` both ways, a resumed get, a listing;
/// without `--ca` the self-signed certificate is not trusted: one line,
/// exit 1, nothing sent in clear (the server would have refused it).
fn client_ftp_over_tls_with_md5_ok_in(mode: &[&str]) {
    let cert = TestCert::new();
    let root = TempDir::new("ftps-client-root");
    let local = TempDir::new("ftps-client-local");
    let data = random_bytes(20 << 20, 43);
    std::fs::write(local.join("big.bin"), &data).unwrap();
    let md5 = md5_hex(&data);
    let server = serve_ftps(root.path(), &cert, &[mode, &["--tls-required"]].concat());
    let user = format!("{USER}:{PASSWORD}");
    let tls = ["--tls", "--ca", cert.cert_str(), "--user", &user];
    let run = |args: &[&str]| {
        let mut all = tls.to_vec();
        all.extend_from_slice(args);
        let out = client_ftp(local.path(), &server.addr, &all);
        let (stdout, stderr) = texts(&out);
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert_eq!(stderr, "");
        stdout
    };

    let stdout = run(&["put", "big.bin"]);
    assert_transferred(&stdout, "put big.bin -> big.bin", 20 << 20, &md5, None);
    assert!(std::fs::read(root.join("big.bin")).unwrap() == data);
    let stdout = run(&["get", "big.bin", "back.bin"]);
    assert_transferred(&stdout, "get big.bin -> back.bin", 20 << 20, &md5, None);
    assert!(std::fs::read(local.join("back.bin")).unwrap() == data);

    std::fs::write(local.join("part.bin"), &data[..(7 << 20)]).unwrap();
    let stdout = run(&["--resume", "get", "big.bin", "part.bin"]);
    assert_transferred(
        &stdout,
        "get big.bin -> part.bin",
        13 << 20,
        &md5,
        Some(7 << 20),
    );
    assert!(std::fs::read(local.join("part.bin")).unwrap() == data);
    let listing = run(&["ls"]);
    assert!(listing.trim_end().ends_with(" big.bin"), "{listing}");

    let out = client_ftp(
        local.path(),
        &server.addr,
        &["--tls", "--user", &user, "ls"],
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout, "");
    assert!(
        stderr.starts_with(&format!(
            "client: {}: the server's certificate is not trusted: ",
            server.addr
        )),
        "{stderr}"
    );
}
