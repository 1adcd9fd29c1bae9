//! TLS end to end: `serve --tls-cert --tls-key` with echo and shell, driven
//! by `client --tls` (with `--ca`, the system's roots, `--insecure`) and by
//! OpenSSL's `s_client`; the flags' errors; a client that sends garbage.
//! The certificates (an authority and a server certificate it signed, for
//! localhost and 127.0.0.1) are made here, with rcgen.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;

use crate::shell::{client_shell, serve_shell_secured, TempDir};
use crate::util::{
    client_command, model_name, run_with_input, serve, serve_command, wait_exit, ServerProcess,
    IO_TIMEOUT, TIMEOUT,
};

/// The files of one test's certificates.
struct Certificates {
    _dir: TempDir,
    /// The authority's certificate: what `--ca` trusts.
    ca: PathBuf,
    /// The server's chain (its certificate, then the authority's), as
    /// Let's Encrypt's fullchain.pem.
    chain: PathBuf,
    key: PathBuf,
    /// Another authority's certificate, which trusts nothing of ours.
    stranger_ca: PathBuf,
}

fn authority(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().unwrap();
    rcgen::CertifiedIssuer::self_signed(params, key).unwrap()
}

fn certificates() -> Certificates {
    let dir = TempDir::new("tls");
    let ca = authority("socketserver test CA");
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let files = Certificates {
        ca: dir.join("ca.pem"),
        chain: dir.join("fullchain.pem"),
        key: dir.join("privkey.pem"),
        stranger_ca: dir.join("stranger.pem"),
        _dir: dir,
    };
    std::fs::write(&files.ca, ca.pem()).unwrap();
    std::fs::write(&files.chain, cert.pem() + &ca.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    std::fs::write(&files.stranger_ca, authority("a stranger").pem()).unwrap();
    files
}

impl Certificates {
    fn serve_args(&self) -> [&str; 4] {
        [
            "--tls-cert",
            self.chain.to_str().unwrap(),
            "--tls-key",
            self.key.to_str().unwrap(),
        ]
    }
}

fn client_echo(args: &[&str], input: &[u8]) -> std::process::Output {
    let mut client = client_command();
    client.arg("echo").args(args);
    run_with_input(client, input)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

threads_and_events!(
    client_echo_over_tls_with_ca,
    client_echo_over_tls_with_ca_event,
    client_echo_over_tls_with_ca_in
);

/// `client echo --tls --ca` against `serve --handler echo --tls-cert
/// --tls-key`: the same transcript as in plain text, by address and by
/// host name; the first line says tls.
fn client_echo_over_tls_with_ca_in(mode: &[&str]) {
    let certs = certificates();
    let server = serve(&[mode, &certs.serve_args()].concat());
    assert_eq!(
        server.first_line,
        format!(
            "serving echo on {} ({}, tls)",
            server.addr,
            model_name(mode)
        )
    );
    let port = server.addr.rsplit_once(':').unwrap().1;
    let by_name = format!("localhost:{port}");
    for addr in [server.addr.as_str(), by_name.as_str()] {
        let ca = certs.ca.to_str().unwrap();
        let out = client_echo(&["--tls", "--ca", ca, addr], b"hello\nworld\nq\n");
        assert_eq!(text(&out.stderr), "", "{addr}");
        assert_eq!(
            text(&out.stdout),
            "欢迎致电babyshen\nhello好\nworld好\n",
            "{addr}"
        );
        assert_eq!(out.status.code(), Some(0), "{addr}");
    }
}

threads_and_events!(
    openssl_s_client_gets_the_echo,
    openssl_s_client_gets_the_echo_event,
    openssl_s_client_gets_the_echo_in
);

/// OpenSSL's client, checking the certificate against the authority:
/// it gets the greeting, then the echo of its line.
fn openssl_s_client_gets_the_echo_in(mode: &[&str]) {
    let certs = certificates();
    let server = serve(&[mode, &certs.serve_args()].concat());
    let mut s_client = Command::new("openssl")
        .args(["s_client", "-connect", &server.addr, "-CAfile"])
        .arg(&certs.ca)
        .args(["-verify_return_error", "-quiet", "-no_ign_eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run openssl s_client (Debian's openssl package)");
    let mut stdin = s_client.stdin.take().unwrap();
    let stdout = s_client.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut stdout = stdout;
        let mut seen = Vec::new();
        let mut chunk = [0u8; 256];
        while let Ok(n @ 1..) = stdout.read(&mut chunk) {
            seen.extend_from_slice(&chunk[..n]);
            let _ = tx.send(seen.clone());
        }
    });
    stdin.write_all(b"hello over openssl\n").unwrap();
    stdin.flush().unwrap();
    let expected = "欢迎致电babyshenhello over openssl好\n";
    let mut seen = Vec::new();
    while seen != expected.as_bytes() {
        seen = rx
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| panic!("s_client printed {:?}, not {expected:?}", text(&seen)));
        assert!(
            expected.as_bytes().starts_with(&seen),
            "s_client printed {:?}",
            text(&seen)
        );
    }
    // End of input: s_client says close_notify and exits.
    drop(stdin);
    let status = wait_exit(&mut s_client, TIMEOUT);
    assert!(status.success(), "s_client: {status}");
}

/// Without `--ca`, the system's roots (here an `SSL_CERT_FILE` of another
/// authority, so the test does not depend on the machine's) do not trust
/// the server: one line naming the problem, exit 1.
#[test]
fn an_untrusted_certificate_is_one_line_and_exit_1() {
    let certs = certificates();
    let server = serve(&certs.serve_args());
    let mut client = client_command();
    client
        .args(["echo", "--tls", &server.addr])
        .env("SSL_CERT_FILE", &certs.stranger_ca)
        .env_remove("SSL_CERT_DIR");
    let out = run_with_input(client, b"hello\n");
    assert_eq!(
        text(&out.stderr),
        format!(
            "client: {}: the server's certificate is not trusted: UnknownIssuer (give --ca FILE)\n",
            server.addr
        )
    );
    assert_eq!(
        (text(&out.stdout).as_str(), out.status.code()),
        ("", Some(1))
    );
}

/// `--insecure` talks to any server, after a warning on standard error.
#[test]
fn insecure_works_with_a_warning() {
    let certs = certificates();
    let server = serve(&certs.serve_args());
    let out = client_echo(&["--tls", "--insecure", &server.addr], b"hi\n");
    assert_eq!(
        text(&out.stderr),
        format!(
            "client: warning: --insecure: the server's certificate is not checked; anyone \
             between here and {} can read and change this conversation\n",
            server.addr
        )
    );
    assert_eq!(text(&out.stdout), "欢迎致电babyshen\nhi好\n");
    assert_eq!(out.status.code(), Some(0));
}

threads_and_events!(
    shell_over_tls_with_a_token,
    shell_over_tls_with_a_token_event,
    shell_over_tls_with_a_token_in
);

/// The shell over TLS with its token, with `client shell --tls --ca`.
fn shell_over_tls_with_a_token_in(mode: &[&str]) {
    let certs = certificates();
    let dir = TempDir::new("tls-shell");
    let token = "a token long enough for the shell";
    let mut args = vec!["--token", token];
    args.extend(certs.serve_args());
    args.extend(mode);
    let server = serve_shell_secured(dir.path(), &args);
    assert_eq!(
        server.first_line,
        format!(
            "serving shell on {} ({}, tls)",
            server.addr,
            model_name(mode)
        )
    );
    let ca = certs.ca.to_str().unwrap();
    let out = client_shell(
        &server.addr,
        &["--tls", "--ca", ca, "--token", token],
        b"echo hi over tls\n",
    );
    assert_eq!(text(&out.stdout), "hi over tls\n");
    assert!(
        text(&out.stderr).starts_with("[exit 0, "),
        "{:?}",
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
}

/// `serve`'s TLS flags: both or neither, files that exist and hold a
/// certificate and a key, streams only, ftp's implicit listener beside a
/// model without forks; one line each.
#[test]
fn serve_tls_flags_errors() {
    let certs = certificates();
    let chain = certs.chain.to_str().unwrap();
    let key = certs.key.to_str().unwrap();
    let missing = certs.ca.with_file_name("missing.pem");
    let missing = missing.to_str().unwrap();
    let no_key =
        format!("serve: TLS: {chain}: no private key in PEM (-----BEGIN PRIVATE KEY-----)\n");
    let no_cert =
        format!("serve: TLS: {key}: no certificate in PEM (-----BEGIN CERTIFICATE-----)\n");
    let not_found = format!("serve: TLS: {missing}: no such file or directory\n");
    let cases: [(&[&str], &str, i32); 7] = [
        (
            &["--handler", "echo", "--tls-cert", chain],
            "serve: --tls-cert needs --tls-key FILE\n",
            2,
        ),
        (
            &["--handler", "echo", "--tls-key", key],
            "serve: --tls-key needs --tls-cert FILE\n",
            2,
        ),
        (
            &["--handler", "echo", "--tls-cert", missing, "--tls-key", key],
            &not_found,
            1,
        ),
        (
            &["--handler", "echo", "--tls-cert", chain, "--tls-key", chain],
            &no_key,
            2,
        ),
        (
            &["--handler", "echo", "--tls-cert", key, "--tls-key", key],
            &no_cert,
            2,
        ),
        (
            &[
                "--handler",
                "echo",
                "--udp",
                "--tls-cert",
                chain,
                "--tls-key",
                key,
            ],
            "serve: --tls-cert serves streams: not with --udp\n",
            2,
        ),
        (
            &[
                "--handler",
                "ftp",
                "--mode",
                "forking",
                "--implicit-tls-bind",
                "127.0.0.1:0",
                "--tls-cert",
                chain,
                "--tls-key",
                key,
            ],
            "serve: --implicit-tls-bind serves beside --bind in a thread: use --mode \
             threading, pool, sync or event\n",
            2,
        ),
    ];
    for (args, expected, code) in cases {
        let mut command = serve_command();
        command.args(["--bind", "127.0.0.1:0"]).args(args);
        let out = run_with_input(command, b"");
        assert_eq!(text(&out.stderr), expected, "{args:?}");
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        assert_eq!(text(&out.stdout), "", "{args:?}");
    }
}

/// A client that sends garbage instead of a ClientHello gets an alert and
/// the end; the server logs it, with the peer, and goes on serving.
#[test]
fn garbage_is_logged_with_the_peer_and_the_server_goes_on() {
    let certs = certificates();
    let mut command = serve_command();
    command
        .args(["--handler", "echo", "--bind", "127.0.0.1:0"])
        .args(certs.serve_args())
        .env("RUST_LOG", "warn");
    let (server, log) = ServerProcess::start_logged(command);
    let mut garbage = std::net::TcpStream::connect(&server.addr).unwrap();
    garbage.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    garbage.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let peer = garbage.local_addr().unwrap();
    garbage.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut alert = Vec::new();
    garbage
        .read_to_end(&mut alert)
        .expect("an alert, then the end");
    assert_eq!(alert, [21, 3, 3, 0, 2, 2, 50], "a fatal decode_error alert");
    let line = log.recv_timeout(TIMEOUT).expect("a log line");
    assert!(
        line.ends_with(&format!(
            "{peer}: TLS handshake failed: received corrupt message of type InvalidContentType"
        )),
        "{line}"
    );
    let ca = certs.ca.to_str().unwrap();
    let out = client_echo(&["--tls", "--ca", ca, &server.addr], b"still here\n");
    assert_eq!(text(&out.stdout), "欢迎致电babyshen\nstill here好\n");
    assert_eq!(out.status.code(), Some(0));
}
