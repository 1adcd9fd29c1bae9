//! The event model's one rule, checked from outside: a conversation that
//! waits holds no event loop. `serve --mode event --threads 1` runs every
//! conversation on one thread (the accept loop's own), so while one
//! conversation waits (a download its client does not read, an upload
//! its client pauses, a passive data connection not yet made, a TLS data
//! connection whose handshake has not begun, a shell command that
//! sleeps), twenty others must be greeted and answered at once, each
//! within [`PROMPT`]. A handler that blocked its thread in any
//! of those waits would hold them all until it was done (seconds here),
//! and these tests would fail.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::ftp_drain::Script;
use crate::ftp_util::{md5_hex, random_bytes, serve_ftp, FtpPeer, TempDir};
use crate::ftps_util::{serve_ftps, TestCert};
use crate::shell::{serve_shell, Raw};
use crate::util::IO_TIMEOUT;

/// One event loop: the waiting conversation and the others share it.
const ONE_LOOP: &[&str] = &["--mode", "event", "--threads", "1"];
/// How long each of the others may wait for each answer.
const PROMPT: Duration = Duration::from_secs(2);
/// How many others are served while one conversation waits.
const OTHERS: usize = 20;

/// An FTP server on one event loop, serving `root`, any number of
/// connections from 127.0.0.1.
fn serve_ftp_one_loop(root: &TempDir) -> crate::util::ServerProcess {
    serve_ftp(root.path(), &[ONE_LOOP, &["--max-per-ip", "0"]].concat())
}

/// Runs `step` and fails unless it took less than [`PROMPT`] (its reads
/// time out after that long too, so a held loop fails, not hangs).
fn promptly<T>(what: &str, step: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let done = step();
    let took = started.elapsed();
    assert!(
        took < PROMPT,
        "{what} took {took:?}: the waiting conversation held the event loop"
    );
    done
}

/// [`OTHERS`] FTP clients connect, all staying connected: each is greeted
/// and then answers `NOOP`, every answer within [`PROMPT`].
fn others_answered_meanwhile(addr: &str) {
    let mut others: Vec<FtpPeer> = (0..OTHERS)
        .map(|n| {
            promptly(&format!("the greeting of client {n}"), || {
                let stream = TcpStream::connect(addr).expect("connect");
                stream.set_read_timeout(Some(PROMPT)).unwrap();
                stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
                let mut peer = FtpPeer::from_stream(stream);
                let greeting = peer.reply();
                assert!(greeting.starts_with("220 "), "{greeting:?}");
                peer
            })
        })
        .collect();
    for (n, peer) in others.iter_mut().enumerate() {
        promptly(&format!("NOOP of client {n}"), || {
            peer.expect("NOOP", "200 NOOP ok.")
        });
    }
}

/// A download whose client reads nothing: the server waits for its data
/// socket to drain (it filled at once). Then the client reads it all.
#[test]
fn ftp_a_download_not_read_holds_no_loop() {
    let root = TempDir::new("event-download");
    let data = random_bytes(16 << 20, 31);
    std::fs::write(root.join("big.bin"), &data).unwrap();
    let server = serve_ftp_one_loop(&root);
    let mut ftp = FtpPeer::logged_in(&server.addr);
    let addr = ftp.epsv();
    let mut data_connection = TcpStream::connect(addr).unwrap();
    data_connection.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let r = ftp.cmd("RETR big.bin");
    assert!(r.starts_with("150 "), "{r:?}");

    others_answered_meanwhile(&server.addr);

    let mut got = Vec::new();
    data_connection.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the download's bytes differ");
    ftp.expect_reply(&format!("226 Transfer complete. MD5={}", md5_hex(&data)));
}

/// A hashed upload (the server's observer thread hashes it) whose client
/// pauses after its first megabyte: the server waits for more. Then the
/// rest comes, and the upload lands whole, with its MD5.
#[test]
fn ftp_a_paused_hashed_upload_holds_no_loop() {
    let root = TempDir::new("event-upload");
    let data = random_bytes(8 << 20, 32);
    let server = serve_ftp_one_loop(&root);
    let mut ftp = FtpPeer::logged_in(&server.addr);
    let addr = ftp.epsv();
    let mut data_connection = TcpStream::connect(addr).unwrap();
    data_connection.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let r = ftp.cmd("STOR up.bin");
    assert!(r.starts_with("150 "), "{r:?}");
    data_connection.write_all(&data[..1 << 20]).unwrap();

    others_answered_meanwhile(&server.addr);

    data_connection.write_all(&data[1 << 20..]).unwrap();
    drop(data_connection);
    ftp.expect_reply(&format!("226 Transfer complete. MD5={}", md5_hex(&data)));
    assert!(
        std::fs::read(root.join("up.bin")).unwrap() == data,
        "the stored file differs"
    );
}

/// A transfer command whose client has not made its passive data
/// connection yet: the server waits on its passive listener. Then the
/// client connects, and the file comes.
#[test]
fn ftp_a_passive_listener_waiting_for_its_client_holds_no_loop() {
    let root = TempDir::new("event-passive");
    std::fs::write(root.join("small.txt"), b"on time\n").unwrap();
    let server = serve_ftp_one_loop(&root);
    let mut ftp = FtpPeer::logged_in(&server.addr);
    let addr = ftp.epsv();
    let r = ftp.cmd("RETR small.txt");
    assert!(r.starts_with("150 "), "{r:?}");

    others_answered_meanwhile(&server.addr);

    let mut data_connection = TcpStream::connect(addr).unwrap();
    data_connection.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut got = Vec::new();
    data_connection.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"on time\n");
    ftp.expect_reply(&format!(
        "226 Transfer complete. MD5={}",
        md5_hex(b"on time\n")
    ));
}

/// FTPS: logs in over TLS with `PROT P`, makes the passive data
/// connection and sends `RETR`, prints its `150`; then, on the test's go,
/// does the data connection's TLS handshake (the server has waited for
/// it since), reads the file and prints it and the `226`.
const STALLED_HANDSHAKE: &str = r#"
import ftplib, socket, ssl, sys
host, port, user, password, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
context = ssl.create_default_context(cafile=ca)
ftp = ftplib.FTP_TLS(context=context)
ftp.connect(host, port, timeout=10)
ftp.auth()
ftp.login(user, password)
ftp.prot_p()
data_port = int(ftp.sendcmd("EPSV").split("|||")[1].rstrip("|)"))
plain = socket.create_connection((host, data_port), timeout=10)
ftp.putcmd("RETR small.txt")
print(ftp.getresp(), flush=True)
sys.stdin.readline()
data = context.wrap_socket(plain, server_hostname=host)
got = b""
while chunk := data.recv(65536):
    got += chunk
data.close()
print(got.decode().strip(), flush=True)
print(ftp.voidresp(), flush=True)
ftp.quit()
"#;

/// A TLS data connection (`PROT P`) made but whose client has not begun
/// its handshake: the server waits for it. Then the handshake comes, and
/// the file.
#[test]
fn ftp_a_tls_data_handshake_not_begun_holds_no_loop() {
    let cert = TestCert::new();
    let root = TempDir::new("event-tls");
    std::fs::write(root.join("small.txt"), b"encrypted\n").unwrap();
    let server = serve_ftps(
        root.path(),
        &cert,
        &[ONE_LOOP, &["--max-per-ip", "0"]].concat(),
    );
    let mut script = Script::start_with(STALLED_HANDSHAKE, &server, &[cert.cert_str()]);
    let opened = script.line();
    assert!(opened.starts_with("150 "), "{opened:?}");

    others_answered_meanwhile(&server.addr);

    script.go();
    assert_eq!(script.line(), "encrypted");
    assert_eq!(
        script.line(),
        format!("226 Transfer complete. MD5={}", md5_hex(b"encrypted\n"))
    );
    script.succeeds();
}

/// A shell command that sleeps: its conversation waits for its output and
/// its exit. Meanwhile [`OTHERS`] clients each run a command and get its
/// output within [`PROMPT`]; then the sleeper's reply comes, whole.
#[test]
fn shell_a_sleeping_command_holds_no_loop() {
    let dir = crate::shell::TempDir::new("event-sleep");
    let server = serve_shell(dir.path(), ONE_LOOP);
    let mut sleeper = Raw::status_mode(&server.addr);
    let started = Instant::now();
    sleeper.send(b"sleep 4; echo awake\n");
    let mut others: Vec<Raw> = (0..OTHERS)
        .map(|n| {
            promptly(&format!("the hello of client {n}"), || {
                let mut raw = Raw::connect(&server.addr);
                raw.set_read_timeout(PROMPT);
                raw.send(b"#shell/1\n");
                raw.expect(b"#shell/1 ok\n");
                raw
            })
        })
        .collect();
    for (n, raw) in others.iter_mut().enumerate() {
        let (status, body) = promptly(&format!("the command of client {n}"), || {
            raw.run_within(&format!("echo {n}"), PROMPT)
        });
        assert_eq!(status, "exit=0");
        assert_eq!(body, format!("{n}\n").as_bytes());
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the others were served after the sleeper's command had ended: the test proves nothing"
    );
    let (status, body) = sleeper.reply_within(IO_TIMEOUT);
    assert_eq!(status, "exit=0");
    assert_eq!(body, b"awake\n");
    assert!(started.elapsed() >= Duration::from_secs(4));
}
