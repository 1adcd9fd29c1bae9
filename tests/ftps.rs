//! Explicit FTPS (RFC 4217) against real clients: curl `--ssl-reqd`
//! (list, get, put, resume both ways, plain and TLS clients at once),
//! `openssl s_client -starttls ftp` (the handshake and the security
//! verbs, transcript compared whole), Python's `ftplib.FTP_TLS` (every
//! transfer verb over TLS data connections), and `--tls-required` (no
//! password and no file in clear).

use std::path::Path;
use std::process::Command;

use crate::ftp_curl::pattern;
use crate::ftp_util::{curl, curl_ok, md5_hex, serve_ftp_on, url, FtpPeer, TempDir};
use crate::ftp_util::{PASSWORD, USER};
use crate::ftps_util::{curl_tls_ok, data_handshakes, serve_ftps, serve_ftps_logged};
use crate::ftps_util::{starttls_session, TestCert};
use crate::util::{run_with_input, ServerProcess};

threads_and_events!(
    curl_over_explicit_ftps,
    curl_over_explicit_ftps_event,
    curl_over_explicit_ftps_in
);

/// curl `--ssl-reqd` lists, downloads, uploads and resumes both ways;
/// every byte on disk is what was sent, and every data connection resumed
/// the control connection's TLS session. Meanwhile a plain client uses the
/// same server (TLS is offered on loopback, not required).
fn curl_over_explicit_ftps_in(mode: &[&str]) {
    let cert = TestCert::new();
    let root = TempDir::new("ftps-curl");
    let data = pattern(3 * 1024 * 1024 + 17, 31);
    std::fs::write(root.join("data.bin"), &data).unwrap();
    let (server, log) = serve_ftps_logged(root.path(), &cert, mode);

    // A plain session stays open, logged in, through all the TLS ones.
    let mut plain = FtpPeer::logged_in(&server.addr);

    let listing = curl_tls_ok(&cert, &["--list-only", &url(&server, "")]);
    assert_eq!(listing, b"data.bin\n");
    assert_eq!(curl_tls_ok(&cert, &[&url(&server, "data.bin")]), data);

    let local = TempDir::new("ftps-curl-local");
    let upload = pattern(1024 * 1024 + 5, 32);
    let up = local.join("up.bin");
    std::fs::write(&up, &upload).unwrap();
    curl_tls_ok(
        &cert,
        &["-T", up.to_str().unwrap(), &url(&server, "up.bin")],
    );
    assert_eq!(std::fs::read(root.join("up.bin")).unwrap(), upload);

    // Resumed download: the first 1 MiB is there, curl asks for the rest.
    let part = local.join("part.bin");
    std::fs::write(&part, &data[..1024 * 1024]).unwrap();
    curl_tls_ok(
        &cert,
        &[
            "-C",
            "-",
            "-o",
            part.to_str().unwrap(),
            &url(&server, "data.bin"),
        ],
    );
    assert_eq!(std::fs::read(&part).unwrap(), data);

    // Resumed upload: the server has 300 KiB of it, curl sends the rest.
    std::fs::write(root.join("resumed.bin"), &upload[..300 * 1024]).unwrap();
    curl_tls_ok(
        &cert,
        &[
            "-C",
            "-",
            "-T",
            up.to_str().unwrap(),
            &url(&server, "resumed.bin"),
        ],
    );
    assert_eq!(std::fs::read(root.join("resumed.bin")).unwrap(), upload);

    // Plain and TLS downloads at once, and the plain session still works.
    let plain_url = url(&server, "data.bin");
    let (plain_curl, tls_curl) = std::thread::scope(|s| {
        let plain_curl = s.spawn(|| curl_ok(&[&plain_url]));
        let tls_curl = s.spawn(|| curl_tls_ok(&cert, &[&plain_url]));
        (plain_curl.join().unwrap(), tls_curl.join().unwrap())
    });
    assert_eq!(plain_curl, data);
    assert_eq!(tls_curl, data);
    assert_eq!(plain.download("RETR up.bin"), upload);
    plain.expect("QUIT", "221 Goodbye.");
    // curl resumes the control connection's TLS session on its data
    // connections: six TLS transfers, six resumed handshakes.
    drop(server);
    assert_eq!(data_handshakes(&log), (6, 0));
}

threads_and_events!(
    starttls_handshake_and_security_verbs,
    starttls_handshake_and_security_verbs_event,
    starttls_handshake_and_security_verbs_in
);

/// `openssl s_client -starttls ftp`: AUTH TLS, the certificate verified,
/// then FEAT (with AUTH TLS, PBSZ, PROT), the login, PBSZ, PROT P, CCC
/// refused, STAT saying what is TLS, PROT C, the refusals of other
/// levels, over TLS.
fn starttls_handshake_and_security_verbs_in(mode: &[&str]) {
    let cert = TestCert::new();
    let root = TempDir::new("ftps-starttls");
    let server = serve_ftps(root.path(), &cert, mode);
    let login_user = format!("USER {USER}");
    let login_pass = format!("PASS {PASSWORD}");
    let (answers, summary) = starttls_session(
        &server.addr,
        &cert,
        &[
            "FEAT",
            "PROT P",
            &login_user,
            &login_pass,
            "PBSZ 0",
            "PROT S",
            "PROT X",
            "PROT P",
            "CCC",
            "STAT",
            "PROT C",
            "AUTH TLS",
            "QUIT",
        ],
    );
    assert!(summary.contains("Verification: OK"), "{summary}");
    assert!(summary.contains("Protocol version: TLSv1.3"), "{summary}");
    assert_eq!(
        answers,
        "211-Features:\r\n AUTH TLS\r\n PBSZ\r\n PROT\r\n EPRT\r\n EPSV\r\n \
         HASH MD5;SHA-1;SHA-256*\r\n MDTM\r\n MLST type*;size*;modify*;perm*;\r\n \
         PASV\r\n REST STREAM\r\n SIZE\r\n TVFS\r\n UTF8\r\n XMD5\r\n XSHA1\r\n \
         XSHA256\r\n211 End\r\n\
         503 Send PBSZ 0 before PROT.\r\n\
         331 Password required for alice.\r\n\
         230 Login successful.\r\n\
         200 PBSZ=0\r\n\
         536 Only PROT P and PROT C are supported.\r\n\
         504 PROT takes P or C.\r\n\
         200 Protection level set to P.\r\n\
         534 CCC refused: the control connection stays encrypted.\r\n\
         211-FTP server status:\r\n Connected from 127.0.0.1\r\n Logged in as alice\r\n \
         TYPE: BINARY\r\n Control connection: TLS (TLSv1_3)\r\n \
         Data connections: TLS (PROT P)\r\n No data connection\r\n211 End of status\r\n\
         200 Protection level set to C.\r\n\
         503 The control connection is already TLS.\r\n\
         221 Goodbye.\r\n"
    );
}

/// Before AUTH TLS, the security verbs say what is missing; without a
/// certificate, AUTH is not offered.
#[test]
fn security_verbs_in_clear() {
    let cert = TestCert::new();
    let root = TempDir::new("ftps-clear");
    let server = serve_ftps(root.path(), &cert, &[]);
    let mut peer = FtpPeer::connect(&server.addr);
    peer.expect(
        "PBSZ 0",
        "503 PBSZ needs a TLS control connection: send AUTH TLS first.",
    );
    peer.expect(
        "PROT P",
        "503 PROT needs a TLS control connection: send AUTH TLS first.",
    );
    peer.expect("CCC", "533 The control connection is not TLS.");
    peer.expect(
        "AUTH KERBEROS_V4",
        "504 AUTH TLS is the only security mechanism.",
    );
    peer.expect("QUIT", "221 Goodbye.");

    let without = serve_ftp_on(
        "127.0.0.1:0",
        root.path(),
        &["--user", &format!("{USER}:{PASSWORD}")],
    );
    let mut peer = FtpPeer::connect(&without.addr);
    peer.expect("AUTH TLS", "502 TLS is not available on this server.");
    let feat = peer.cmd("FEAT");
    assert!(!feat.contains("AUTH"), "{feat}");
}

/// `--tls-required`: USER and PASS in clear get 530 (the password is not
/// even checked: no failed login is logged, and the right one gets no
/// further), curl without TLS is refused at login; over TLS, a RETR or a
/// LIST before PROT P gets 521 and PROT C gets 534; with PROT P, it works.
#[test]
fn tls_required_keeps_passwords_and_files_off_the_clear() {
    let cert = TestCert::new();
    let root = TempDir::new("ftps-required");
    std::fs::write(root.join("data.bin"), b"secret data\n").unwrap();
    let tls = cert.serve_args();
    let user = format!("{USER}:{PASSWORD}");
    let mut command = crate::util::serve_command();
    command
        .env("RUST_LOG", "info")
        .args(["--handler", "ftp", "--bind", "127.0.0.1:0", "--root"])
        .arg(root.path())
        .args(["--user", &user, "--tls-required"])
        .args(&tls);
    let (server, log) = ServerProcess::start_logged(command);

    let mut peer = FtpPeer::connect(&server.addr);
    let refusal = "530 This server requires TLS: send AUTH TLS before USER.";
    peer.expect(&format!("USER {USER}"), refusal);
    peer.expect(&format!("PASS {PASSWORD}"), refusal);
    peer.expect("RETR data.bin", "530 Please log in with USER and PASS.");
    peer.expect("QUIT", "221 Goodbye.");

    let out = curl(&[&url(&server, "data.bin")]);
    assert_eq!(out.status.code(), Some(67), "curl: login denied");
    assert!(out.stdout.is_empty());

    let login_user = format!("USER {USER}");
    let login_pass = format!("PASS {PASSWORD}");
    let (answers, summary) = starttls_session(
        &server.addr,
        &cert,
        &[
            &login_user,
            &login_pass,
            "RETR data.bin",
            "EPSV",
            "LIST",
            "PBSZ 0",
            "PROT C",
            "STOR new.bin",
            "QUIT",
        ],
    );
    assert!(summary.contains("Verification: OK"), "{summary}");
    let required = "521 Data connections must be protected: send PBSZ 0 and PROT P.\r\n";
    let answers: Vec<&str> = answers.split_inclusive("\r\n").collect();
    assert_eq!(answers.len(), 9, "{answers:?}");
    assert_eq!(answers[0], "331 Password required for alice.\r\n");
    assert_eq!(answers[1], "230 Login successful.\r\n");
    assert_eq!(answers[2], required);
    assert!(answers[3].starts_with("229 Entering Extended Passive Mode (|||"));
    assert_eq!(answers[4], required);
    assert_eq!(answers[5], "200 PBSZ=0\r\n");
    assert_eq!(
        answers[6],
        "534 This server requires TLS data connections: only PROT P.\r\n"
    );
    assert_eq!(answers[7], required);
    assert_eq!(answers[8], "221 Goodbye.\r\n");
    assert_eq!(root.names(""), ["data.bin"]);

    assert_eq!(
        curl_tls_ok(&cert, &[&url(&server, "data.bin")]),
        b"secret data\n"
    );
    drop(server);
    let lines: Vec<String> = log.try_iter().collect();
    assert!(
        lines.iter().any(|l| l.contains("login in clear refused")),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("failed login")),
        "{lines:#?}"
    );
}

const FTPLIB_TRANSCRIPT: &str = "\
220 socketserver FTP ready
234 AUTH TLS successful.
control tls True TLSv1.3
230 Login successful.
200 Protection level set to P.
200 Switching to Binary mode.
226 Transfer complete. MD5=right
226 Transfer complete. (no MD5)
226 Transfer complete. (no MD5)
size 1048588 1048588
226 Directory send OK.
list [('-', '1048588', 'data.bin')]
nlst ['data.bin']
mlsd [('data.bin', 'file', '1048588')]
226 Transfer complete. MD5=right
retr equal True
226 Transfer complete. MD5=right
retr with rest equal True
every data connection tls True 8
150 Opening BINARY mode data connection for data.bin (1048588 bytes).
425 TLS handshake on the data connection failed; transfer not started.
200 NOOP ok.
226 Transfer complete. MD5=right
213 Transfer in progress: N bytes so far.
426 Connection closed; transfer aborted.
226 ABOR successful.
200 NOOP ok.
200 Protection level set to C.
534 CCC refused: the control connection stays encrypted.
221 Goodbye.
";

threads_and_events!(
    ftplib_ftp_tls_every_transfer_verb,
    ftplib_ftp_tls_every_transfer_verb_event,
    ftplib_ftp_tls_every_transfer_verb_in
);

/// Python's `ftplib.FTP_TLS` with `prot_p()`: every transfer verb over TLS
/// data connections (tests/ftps_session.py), MD5s checked by hashlib; a
/// data connection that speaks no TLS gets 425 and the session goes on;
/// STAT and ABOR act during a TLS download.
fn ftplib_ftp_tls_every_transfer_verb_in(mode: &[&str]) {
    let cert = TestCert::new();
    let root = TempDir::new("ftps-ftplib");
    let server = serve_ftps(root.path(), &cert, mode);
    let (host, port) = server.host_port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ftps_session.py");
    let mut python = Command::new("python3");
    python
        .arg(script)
        .args([&host, &port, USER, PASSWORD, cert.cert_str()]);
    let out = run_with_input(python, b"");
    assert!(
        out.status.success(),
        "ftps_session.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), FTPLIB_TRANSCRIPT);
    let mut expected: Vec<u8> = (0..=255u8).cycle().take(256 * 4096).collect();
    expected.extend_from_slice(b"end+appended");
    let stored = std::fs::read(root.join("data.bin")).unwrap();
    assert_eq!(md5_hex(&stored), md5_hex(&expected));
}

/// Commands sent in clear right behind `AUTH TLS`, before the handshake
/// (the STARTTLS injection of CVE-2011-0411), are dropped, not run as if
/// they had come over TLS: the injected `USER` is not there when `PASS`
/// comes over TLS.
#[test]
fn commands_injected_behind_auth_tls_are_dropped() {
    use socketserver::tls::rustls::pki_types::ServerName;
    use socketserver::tls::rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
    use std::io::{BufRead, BufReader, Write};

    let cert = TestCert::new();
    let root = TempDir::new("ftps-injection");
    let server = serve_ftps(root.path(), &cert, &[]);
    let mut socket = std::net::TcpStream::connect(&server.addr).unwrap();
    socket
        .set_read_timeout(Some(crate::util::IO_TIMEOUT))
        .unwrap();
    socket
        .set_write_timeout(Some(crate::util::IO_TIMEOUT))
        .unwrap();
    let mut clear = BufReader::new(socket.try_clone().unwrap());
    let mut line = String::new();
    clear.read_line(&mut line).unwrap();
    assert_eq!(line, "220 socketserver FTP ready\r\n");
    // One segment: AUTH TLS and, behind it, an injected USER.
    socket
        .write_all(format!("AUTH TLS\r\nUSER {USER}\r\n").as_bytes())
        .unwrap();
    line.clear();
    clear.read_line(&mut line).unwrap();
    assert_eq!(line, "234 AUTH TLS successful.\r\n");
    assert!(clear.buffer().is_empty());

    let mut roots = RootCertStore::empty();
    for c in socketserver::tls::read_certificates(&cert.cert).unwrap() {
        roots.add(c).unwrap();
    }
    let config = ClientConfig::builder_with_provider(socketserver::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut tls = BufReader::new(StreamOwned::new(tls, socket));
    tls.get_mut()
        .write_all(format!("PASS {PASSWORD}\r\nQUIT\r\n").as_bytes())
        .unwrap();
    let mut answers = String::new();
    for _ in 0..2 {
        tls.read_line(&mut answers).unwrap();
    }
    assert_eq!(answers, "503 Login with USER first.\r\n221 Goodbye.\r\n");
}
