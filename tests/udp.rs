//! Echo over datagrams: `serve --handler echo --udp` against `client echo
//! --udp` and raw UDP and Unix datagram sockets.

use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::util::{client_command, run_with_input, serve, serve_command, serve_on, IO_TIMEOUT};

fn udp_client(server: &str) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP client");
    socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    socket.connect(server).expect("connect the UDP client");
    socket
}

fn round_trip(socket: &UdpSocket, message: &[u8]) -> Vec<u8> {
    socket.send(message).expect("send a datagram");
    let mut answer = vec![0; 70_000];
    let n = socket.recv(&mut answer).expect("an answer");
    answer.truncate(n);
    answer
}

/// Each datagram is answered with itself and the suffix, in every model
/// that serves datagrams; the first line names the transport.
#[test]
fn every_model_answers_datagrams() {
    for mode in ["sync", "threading", "pool", "forking"] {
        let server = serve(&["--udp", "--mode", mode]);
        assert_eq!(
            server.first_line,
            format!("serving echo on {} ({mode}, udp)", server.addr)
        );
        let client = udp_client(&server.addr);
        for message in ["hello", "我", "q"] {
            assert_eq!(
                round_trip(&client, message.as_bytes()),
                format!("{message}好").as_bytes(),
                "{mode}"
            );
        }
        // Bytes, not strings: invalid UTF-8 comes back as it went.
        assert_eq!(round_trip(&client, &[0xff, b'x']), b"\xffx\xe5\xa5\xbd");
    }
}

/// A 60,000-byte datagram comes back whole, with the suffix.
#[test]
fn a_big_datagram_comes_back_whole() {
    let server = serve(&["--udp"]);
    let client = udp_client(&server.addr);
    let big: Vec<u8> = (0..60_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut expected = big.clone();
    expected.extend_from_slice("好".as_bytes());
    assert_eq!(round_trip(&client, &big), expected);
}

/// `client echo --udp`, piped, prints each answer; "q" quits.
#[test]
fn client_echo_udp_against_serve() {
    let server = serve(&["--udp", "--suffix", "!"]);
    let mut client = client_command();
    client.args(["echo", "--udp", &server.addr]);
    let out = run_with_input(client, "hello\n我\nq\nnever\n".as_bytes());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello!\n我!\n");
    assert_eq!(out.status.code(), Some(0));
}

/// Over a Unix datagram socket: the first line says so, both a raw client
/// and `client echo --udp unix:PATH` are answered, and SIGTERM removes
/// the socket file.
#[test]
fn unix_datagram_socket() {
    let path = std::env::temp_dir().join(format!("udp-e2e-{}.sock", std::process::id()));
    let bind = format!("unix:{}", path.display());
    let mut server = serve_on(&bind, &["--udp"]);
    assert_eq!(
        server.first_line,
        format!("serving echo on {bind} (threading, datagram)")
    );
    let own = std::env::temp_dir().join(format!("udp-e2e-client-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&own);
    let raw = UnixDatagram::bind(&own).expect("bind a Unix datagram client");
    raw.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    raw.send_to(b"hi", &path).unwrap();
    let mut answer = [0u8; 64];
    let n = raw.recv(&mut answer).expect("an answer");
    assert_eq!(&answer[..n], "hi好".as_bytes());
    drop(raw);
    let _ = std::fs::remove_file(&own);

    let mut client = client_command();
    client.args(["echo", "--udp", &bind]);
    let out = run_with_input(client, b"one\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one好\n");

    server.signal("TERM");
    let status = server.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
    assert!(!path.exists(), "the socket file is gone");
}

/// Datagrams and prefork do not mix: a usage error, exit 2, one line.
#[test]
fn udp_with_prefork_is_a_usage_error() {
    let mut command = serve_command();
    command.args([
        "--handler",
        "echo",
        "--udp",
        "--mode",
        "prefork",
        "--bind",
        "127.0.0.1:0",
    ]);
    let out = run_with_input(command, b"");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("serve: --udp"), "{stderr}");
}

/// `client echo --udp` with nobody answering fails with one line, exit 1.
#[test]
fn client_echo_udp_without_a_server_fails_cleanly() {
    let port = {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let mut client = client_command();
    client.args([
        "--timeout",
        "2",
        "echo",
        "--udp",
        &format!("127.0.0.1:{port}"),
    ]);
    let out = run_with_input(client, b"hello\n");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("client: no answer from 127.0.0.1:{port}")),
        "{stderr}"
    );
}
