//! The server's limits against clients that try to outlast them: slow
//! clients (a line trickled a byte at a time, a login that never ends).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::ftp_util::{serve_ftp, TempDir};
use crate::util::{serve, serve_command, Peer, ServerProcess, GREETING, IO_TIMEOUT};

/// How a trickling client learns that the server let it go.
fn disconnected(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// Sends `line` one byte per `pace`, watching for the server to hang up;
/// returns how long after the first byte it did, or `None` if it was still
/// connected after `give_up`.
fn trickle(
    stream: &mut TcpStream,
    line: &[u8],
    pace: Duration,
    give_up: Duration,
) -> Option<Duration> {
    stream.set_read_timeout(Some(pace)).unwrap();
    let started = Instant::now();
    for byte in line.iter().cycle() {
        if started.elapsed() > give_up {
            return None;
        }
        if stream.write_all(&[*byte]).is_err() || disconnected(stream) {
            return Some(started.elapsed());
        }
    }
    unreachable!("cycle never ends")
}

/// An echo client, greeted, that has switched to line mode (its first
/// message has a newline).
fn in_line_mode(addr: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    let expected = format!("{GREETING}hi好\n");
    stream.write_all(b"hi\n").expect("send");
    let mut got = vec![0u8; expected.len()];
    stream.read_exact(&mut got).expect("greeting and answer");
    assert_eq!(String::from_utf8_lossy(&got), expected);
    stream
}

/// 50 clients in line mode each trickle a line at one byte per 0.5 s
/// against `--idle-timeout 2`: the idle timeout alone restarts on every
/// byte, the message timeout (by default the idle timeout) does not, so
/// each is cut about 2 s into its line; a normal client is served
/// meanwhile.
#[test]
fn trickled_lines_are_cut_at_the_message_timeout() {
    let server = serve(&["--idle-timeout", "2"]);
    let addr = server.addr.clone();
    let tricklers: Vec<_> = (0..50)
        .map(|_| {
            let addr = addr.clone();
            thread::spawn(move || {
                let mut stream = in_line_mode(&addr);
                trickle(
                    &mut stream,
                    b"a slow line that never ends",
                    Duration::from_millis(500),
                    Duration::from_secs(20),
                )
            })
        })
        .collect();
    let mut normal = Peer::greeted(&server.addr);
    normal.send(b"still here\n");
    normal.expect("still here好\n".as_bytes());
    for trickler in tricklers {
        let cut = trickler.join().expect("trickler thread");
        let cut = cut.expect("a trickling client was still connected after 20 s");
        assert!(
            cut >= Duration::from_millis(1500) && cut < Duration::from_secs(15),
            "cut after {cut:?}"
        );
    }
}

/// `--message-timeout 0` turns the total off: a line trickled for longer
/// than the idle timeout is still answered.
#[test]
fn message_timeout_0_lets_a_slow_line_through() {
    let server = serve(&["--idle-timeout", "1", "--message-timeout", "0"]);
    let mut peer = Peer::greeted(&server.addr);
    peer.send(b"hi\n"); // line mode from now on
    peer.expect("hi好\n".as_bytes());
    let started = Instant::now();
    for byte in b"slow" {
        peer.send(&[*byte]);
        thread::sleep(Duration::from_millis(500)); // pace: 2 s in all
    }
    peer.send(b"\n");
    peer.expect("slow好\n".as_bytes());
    assert!(started.elapsed() >= Duration::from_secs(2));
}

/// An FTP client trickling `USER aaaa...` one byte per 0.4 s against
/// `--login-timeout 2` is cut with `421 Login timed out.` at about 2 s:
/// the login deadline is a total, not a limit per line or per byte.
#[test]
fn ftp_login_trickled_a_byte_at_a_time_is_cut_at_the_login_timeout() {
    let root = TempDir::new("trickled-login");
    let server = serve_ftp(root.path(), &["--login-timeout", "2"]);
    let mut stream = TcpStream::connect(&server.addr).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let greeting = read_reply(&mut stream);
    assert!(greeting.starts_with("220 "), "{greeting:?}");
    let started = Instant::now();
    let line = format!("USER {}", "a".repeat(200));
    let mut reply = None;
    stream
        .set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    for byte in line.bytes() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still connected after 20 s"
        );
        if stream.write_all(&[byte]).is_err() {
            break;
        }
        let mut buf = [0u8; 256];
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                reply = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
                break;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let took = started.elapsed();
    assert_eq!(reply.as_deref(), Some("421 Login timed out.\r\n"));
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
        "cut after {took:?}"
    );
}

fn read_reply(stream: &mut TcpStream) -> String {
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\n") {
        let n = stream.read(&mut byte).expect("read a reply");
        assert!(n > 0, "end of input instead of a reply");
        reply.push(byte[0]);
    }
    String::from_utf8(reply).expect("UTF-8")
}

/// `serve --handler shell` with a token and `--login-timeout 1`.
fn serve_shell_with_token(args: &[&str]) -> ServerProcess {
    let mut command = serve_command();
    command
        .args([
            "--handler",
            "shell",
            "--bind",
            "127.0.0.1:0",
            "--token",
            "s3cret-s3cret-s3cret",
            "--allow-root",
        ])
        .args(args);
    ServerProcess::start(command)
}

/// A shell client that connects and sends nothing is cut at the login
/// deadline with one clear error line.
#[test]
fn shell_client_that_does_not_authenticate_is_cut_at_the_login_timeout() {
    let server = serve_shell_with_token(&["--login-timeout", "1"]);
    let expected = "error: authentication timed out: send \"auth TOKEN\" within 1 s\n";

    let started = Instant::now();
    let mut silent = TcpStream::connect(&server.addr).expect("connect");
    silent.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut got = String::new();
    silent.read_to_string(&mut got).expect("read to the end");
    let took = started.elapsed();
    assert_eq!(got, expected);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "cut after {took:?}"
    );
}

/// With the token sent in time the deadline is lifted: the session goes
/// on past it.
#[test]
fn shell_authenticated_in_time_outlives_the_login_timeout() {
    let server = serve_shell_with_token(&["--login-timeout", "1"]);
    let mut peer = Peer::connect(&server.addr);
    peer.send(b"auth s3cret-s3cret-s3cret\n");
    peer.expect(b"14\nauthenticated\n");
    thread::sleep(Duration::from_millis(1500)); // past the login deadline
    peer.send(b"echo hi\n");
    peer.expect(b"3\nhi\n");
}

/// `--mode prefork --max-connections 2` (with more workers asked for): two
/// clients are served; a third is not greeted while they stay, and is as
/// soon as one leaves.
#[test]
fn prefork_serves_no_more_than_max_connections_at_once() {
    let server = serve(&[
        "--mode",
        "prefork",
        "--workers",
        "4",
        "--max-connections",
        "2",
    ]);
    let first = Peer::greeted(&server.addr);
    let mut second = Peer::greeted(&server.addr);
    let mut third = Peer::connect(&server.addr);
    third.expect_silence(Duration::from_millis(1500));
    second.send(b"hi\n");
    second.expect("hi好\n".as_bytes());
    drop(first);
    third.expect(GREETING.as_bytes()); // within IO_TIMEOUT
    third.send(b"hi\n");
    third.expect("hi好\n".as_bytes());
}

/// A TCP client bound to `from` (127.0.0.2 and so on: another client, as
/// far as the server can tell), connected to `addr`, with timeouts.
fn connect_from(from: &str, addr: &str) -> TcpStream {
    use socket2::{Domain, SockAddr, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let local: std::net::SocketAddr = format!("{from}:0").parse().expect("address");
    socket
        .bind(&SockAddr::from(local))
        .expect("bind the client");
    let remote: std::net::SocketAddr = addr.parse().expect("server address");
    socket
        .connect_timeout(&SockAddr::from(remote), IO_TIMEOUT)
        .expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Reads exactly `expected` from `stream`.
fn expect_bytes(stream: &mut TcpStream, expected: &[u8]) {
    let mut got = vec![0u8; expected.len()];
    stream.read_exact(&mut got).expect("read");
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected)
    );
}

/// Reads everything until the server closes.
fn read_to_end(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    stream.read_to_end(&mut got).expect("read to the end");
    String::from_utf8_lossy(&got).into_owned()
}

/// `--max-per-ip 2` in every model that serves conversations at once
/// (sync serves one at a time): a third client from 127.0.0.1 is refused
/// at once with the handler's own line, while one from 127.0.0.2 is
/// served; when a 127.0.0.1 client leaves, its place is free again.
#[test]
fn max_per_ip_holds_in_every_model() {
    for mode in ["threading", "pool", "forking", "prefork", "event"] {
        let server = serve(&["--mode", mode, "--workers", "4", "--max-per-ip", "2"]);
        let mut first = connect_from("127.0.0.1", &server.addr);
        expect_bytes(&mut first, GREETING.as_bytes());
        let mut second = connect_from("127.0.0.1", &server.addr);
        expect_bytes(&mut second, GREETING.as_bytes());
        let mut third = connect_from("127.0.0.1", &server.addr);
        assert_eq!(
            read_to_end(&mut third),
            "error: too many connections from this address\n",
            "{mode}"
        );
        let mut other = connect_from("127.0.0.2", &server.addr);
        expect_bytes(&mut other, GREETING.as_bytes());
        other.write_all(b"hi\n").unwrap();
        expect_bytes(&mut other, "hi好\n".as_bytes());
        second.write_all(b"hi\n").unwrap();
        expect_bytes(&mut second, "hi好\n".as_bytes());
        drop(first);
        crate::util::wait_until(IO_TIMEOUT, "a place frees", || {
            let mut again = connect_from("127.0.0.1", &server.addr);
            let mut got = vec![0u8; GREETING.len()];
            again.read_exact(&mut got).is_ok() && got == GREETING.as_bytes()
        });
    }
}

/// FTP's own refusal comes through the framework's hook, in the thread
/// and process models alike: `421 Too many connections from your
/// address.`
#[test]
fn ftp_over_max_per_ip_is_told_421_in_every_model() {
    let root = TempDir::new("per-ip");
    for mode in ["threading", "forking", "prefork", "event"] {
        let server = serve_ftp(
            root.path(),
            &["--mode", mode, "--workers", "3", "--max-per-ip", "1"],
        );
        let mut first = connect_from("127.0.0.1", &server.addr);
        assert!(read_reply(&mut first).starts_with("220 "), "{mode}");
        let mut second = connect_from("127.0.0.1", &server.addr);
        assert_eq!(
            read_to_end(&mut second),
            "421 Too many connections from your address.\r\n",
            "{mode}"
        );
        let mut other = connect_from("127.0.0.2", &server.addr);
        assert!(read_reply(&mut other).starts_with("220 "), "{mode}");
    }
}

/// After login, an FTP command trickled a byte at a time is cut at the
/// message timeout (by default the idle timeout) with `421`, though each
/// byte comes well within the idle timeout.
#[test]
fn ftp_command_trickled_after_login_is_cut() {
    let root = TempDir::new("trickled-command");
    let server = serve_ftp(root.path(), &["--idle-timeout", "2"]);
    let peer = crate::ftp_util::FtpPeer::logged_in(&server.addr);
    let mut stream = peer.writer();
    let started = Instant::now();
    let mut reply = None;
    stream
        .set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    for byte in format!("NOOP {}", "a".repeat(200)).bytes() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still connected after 20 s"
        );
        if stream.write_all(&[byte]).is_err() {
            break;
        }
        let mut buf = [0u8; 256];
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                reply = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
                break;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let took = started.elapsed();
    assert_eq!(
        reply.as_deref(),
        Some("421 Timeout: closing the control connection.\r\n")
    );
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
        "cut after {took:?}"
    );
}
