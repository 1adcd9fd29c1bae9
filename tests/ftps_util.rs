//! Helpers for the FTPS tests: a certificate made at test time (rcgen,
//! nothing secret in the repository), `serve --handler ftp` with it, curl
//! over explicit FTPS, and `openssl s_client -starttls ftp`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::ftp_util::{serve_ftp, TempDir};
use crate::util::{run_with_input, ServerProcess};

/// A self-signed certificate for `localhost` and 127.0.0.1, and its key,
/// as PEM files in a folder removed on drop. The certificate is its own
/// CA: clients are given it as the one to trust.
pub struct TestCert {
    _dir: TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCert {
    pub fn new() -> TestCert {
        let dir = TempDir::new("cert");
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let made = rcgen::generate_simple_self_signed(names).expect("make a certificate");
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        TestCert {
            _dir: dir,
            cert,
            key,
        }
    }

    pub fn cert_str(&self) -> &str {
        self.cert.to_str().expect("a UTF-8 path")
    }

    /// `--tls-cert CERT --tls-key KEY` for `serve`.
    pub fn serve_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".to_string(),
            self.cert_str().to_string(),
            "--tls-key".to_string(),
            self.key.to_str().expect("a UTF-8 path").to_string(),
        ]
    }
}

/// `serve --handler ftp` with the test user, FTPS with `cert`, and `args`.
pub fn serve_ftps(root: &Path, cert: &TestCert, args: &[&str]) -> ServerProcess {
    let tls = cert.serve_args();
    let mut all: Vec<&str> = tls.iter().map(String::as_str).collect();
    all.extend_from_slice(args);
    serve_ftp(root, &all)
}

/// [`serve_ftps`] with the handlers' debug log (one line per TLS data
/// connection, saying whether its handshake was resumed) sent to the
/// returned channel.
pub fn serve_ftps_logged(
    root: &Path,
    cert: &TestCert,
    args: &[&str],
) -> (ServerProcess, std::sync::mpsc::Receiver<String>) {
    let user = format!("{}:{}", crate::ftp_util::USER, crate::ftp_util::PASSWORD);
    let mut command = crate::util::serve_command();
    command
        .env("RUST_LOG", "error,socketserver_handlers=debug")
        .args(["--handler", "ftp", "--bind", "127.0.0.1:0", "--root"])
        .arg(root)
        .args(["--user", &user])
        .args(cert.serve_args())
        .args(args);
    ServerProcess::start_logged(command)
}

/// How many TLS data connections the log of a stopped server shows:
/// (resumed, full). Reads the log to its end (the server's exit closes it).
pub fn data_handshakes(log: &std::sync::mpsc::Receiver<String>) -> (usize, usize) {
    let deadline = std::time::Instant::now() + crate::util::TIMEOUT;
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match log.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("the log did not end"),
        }
    }
    let count = |kind: &str| {
        let what = format!("TLS data connection ({kind} handshake)");
        lines.iter().filter(|l| l.contains(&what)).count()
    };
    (count("resumed"), count("full"))
}

/// curl over explicit FTPS (`--ssl-reqd`: AUTH TLS, then PROT P), the
/// server's certificate checked against `cert`.
pub fn curl_tls(cert: &TestCert, args: &[&str]) -> Output {
    let mut all = vec!["--ssl-reqd", "--cacert", cert.cert_str()];
    all.extend_from_slice(args);
    crate::ftp_util::curl(&all)
}

/// [`curl_tls`], which must succeed; returns its standard output.
pub fn curl_tls_ok(cert: &TestCert, args: &[&str]) -> Vec<u8> {
    let out = curl_tls(cert, args);
    assert!(
        out.status.success(),
        "curl --ssl-reqd {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `openssl s_client -starttls ftp` (it reads the `220`, sends `AUTH TLS`,
/// expects `234`, shakes hands, checking the certificate), then `lines`
/// sent over TLS, each with CRLF; runs until the server closes. Returns
/// (what the server answered over TLS, s_client's summary on stderr).
pub fn starttls_session(addr: &str, cert: &TestCert, lines: &[&str]) -> (String, String) {
    let mut command = Command::new("openssl");
    command.args([
        "s_client",
        "-starttls",
        "ftp",
        "-connect",
        addr,
        "-CAfile",
        cert.cert_str(),
        "-verify_return_error",
        "-brief",
        "-crlf",
        "-ign_eof",
    ]);
    let mut input = String::new();
    for line in lines {
        input.push_str(line);
        input.push('\n');
    }
    let out = run_with_input(command, input.as_bytes());
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
