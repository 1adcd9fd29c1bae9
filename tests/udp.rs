//! Echo over datagrams: `serve --handler echo --udp` against `client echo
//! --udp` and raw UDP and Unix datagram sockets.

use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::util::{
    client_command, run_with_input, serve, serve_command, serve_on, wait_for_line, ServerProcess,
    IO_TIMEOUT,
};

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

/// `serve --handler echo --udp --mode sync` on 127.0.0.1, logging the Echo
/// handler's debug lines (the datagrams it does not answer).
fn serve_udp_logged() -> (ServerProcess, std::sync::mpsc::Receiver<String>) {
    let mut command = serve_command();
    command
        .args(["--handler", "echo", "--udp", "--mode", "sync"])
        .args(["--bind", "127.0.0.1:0"])
        .env("RUST_LOG", "error,socketserver_handlers::echo=debug");
    ServerProcess::start_logged(command)
}

/// Waits for the log line saying that the datagram from `peer` was not
/// answered, `why`.
fn wait_not_answered(log: &std::sync::mpsc::Receiver<String>, peer: &str, why: &str) {
    let expected = format!("] {peer}: datagram not answered: {why}");
    wait_for_line(log, &expected, |line| line.ends_with(&expected));
}

/// After the server logged that it dropped a datagram: a normal client is
/// still answered (the sync server handles datagrams in order, so the
/// dropped one was handled before this), and nothing at all came back to
/// `dropped_from`.
fn only_the_client_is_answered(server: &ServerProcess, dropped_from: &UdpSocket) {
    let client = udp_client(&server.addr);
    assert_eq!(round_trip(&client, b"hello"), "hello好".as_bytes());
    dropped_from.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    match dropped_from.recv_from(&mut buf) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the dropped datagram was answered: {other:?}"),
    }
}

/// A UDP socket on 127.0.0.1 bound to a free port of `ports`, all below
/// 1024 (needs root or CAP_NET_BIND_SERVICE); `None` if this process may
/// not bind one. Each test looks in its own range, so that two tests
/// running at once never pick the same port.
fn privileged_udp_socket(ports: std::ops::Range<u16>) -> Option<UdpSocket> {
    for port in ports.clone().rev() {
        match UdpSocket::bind(("127.0.0.1", port)) {
            Ok(socket) => return Some(socket),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return None,
            Err(_) => continue, // in use
        }
    }
    panic!("no free UDP port in {ports:?} on 127.0.0.1");
}

/// A datagram from a port below 1024 (a service's: echo, chargen, DNS...,
/// which could answer the answer, for ever) gets no answer, while a client
/// on an ordinary port is answered. A process that may not bind such a
/// port (not root) cannot send one: the rule is then checked by the Echo
/// handler's unit test only, and this says so on standard error.
#[test]
fn a_datagram_from_a_privileged_port_is_not_answered() {
    let Some(service) = privileged_udp_socket(900..1024) else {
        eprintln!("not root: no port below 1024 to send from; the unit test checks the rule");
        return;
    };
    let (server, log) = serve_udp_logged();
    service.send_to(b"bounce", &server.addr).unwrap();
    let peer = service.local_addr().unwrap().to_string();
    wait_not_answered(
        &log,
        &peer,
        "its source port is below 1024, a service's, which may answer in turn",
    );
    only_the_client_is_answered(&server, &service);
}

/// Sends `payload` to `to` in a UDP datagram from 127.0.0.1 and port
/// `from_port`, forged: a raw socket writes the UDP header itself (no
/// checksum, which IPv4 allows), the kernel adds the IP header. False if
/// this process may not open a raw socket (it needs root or CAP_NET_RAW).
fn send_forged(from_port: u16, to: &str, payload: &[u8]) -> bool {
    use socket2::{Domain, Protocol, Socket, Type};
    let to: std::net::SocketAddr = to.parse().expect("an IPv4 address");
    let raw = match Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::UDP)) {
        Ok(raw) => raw,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return false,
        Err(e) => panic!("open a raw socket: {e}"),
    };
    let length = u16::try_from(8 + payload.len()).expect("a small payload");
    let mut packet = Vec::new();
    packet.extend_from_slice(&from_port.to_be_bytes());
    packet.extend_from_slice(&to.port().to_be_bytes());
    packet.extend_from_slice(&length.to_be_bytes());
    packet.extend_from_slice(&[0, 0]); // no checksum
    packet.extend_from_slice(payload);
    let sent = raw
        .send_to(&packet, &to.into())
        .expect("send the forged datagram");
    assert_eq!(sent, packet.len());
    true
}

/// A datagram from the server's own address would have the server answer
/// itself for ever (each answer longer than the last). Sent for real, with
/// a forged source (127.0.0.1 and the server's port, from a raw socket):
/// it is not answered, and the server goes on answering a client. Without
/// the right to forge (not root) the unit test checks the rule, and this
/// says so on standard error.
#[test]
fn a_datagram_from_the_servers_own_address_is_not_answered() {
    let (server, log) = serve_udp_logged();
    let port = server
        .addr
        .rsplit_once(':')
        .unwrap()
        .1
        .parse::<u16>()
        .unwrap();
    if !send_forged(port, &server.addr, b"bounce") {
        eprintln!("not root: cannot forge a datagram; the unit test checks the rule");
        return;
    }
    wait_not_answered(&log, &server.addr, "it comes from the server's own address");
    let client = udp_client(&server.addr);
    assert_eq!(round_trip(&client, b"hello"), "hello好".as_bytes());
}

/// Two echo servers, one on a service port (below 1024, as the standard
/// echo service on 7), bounce a datagram forged "from" the other at most
/// once: the service answers the forged sender, the other server, which
/// does not answer an answer from a port below 1024.
#[test]
fn two_echo_servers_do_not_bounce_a_forged_datagram() {
    // Bound, then let go for the server to take (in a range no other test
    // uses).
    let Some(service_port) =
        privileged_udp_socket(800..900).map(|s| s.local_addr().unwrap().port())
    else {
        eprintln!("not root: no port below 1024 to serve on; the unit test checks the rule");
        return;
    };
    let (service, service_log) = {
        let mut command = serve_command();
        command
            .args(["--handler", "echo", "--udp", "--mode", "sync"])
            .args(["--bind", &format!("127.0.0.1:{service_port}")])
            .env("RUST_LOG", "error,socketserver_handlers::echo=debug");
        ServerProcess::start_logged(command)
    };
    let (other, other_log) = serve_udp_logged();
    let other_port = other
        .addr
        .rsplit_once(':')
        .unwrap()
        .1
        .parse::<u16>()
        .unwrap();
    assert!(send_forged(other_port, &service.addr, b"bounce"));
    wait_not_answered(
        &other_log,
        &service.addr,
        "its source port is below 1024, a service's, which may answer in turn",
    );
    // Both still answer clients, and the service logged no drop: it
    // answered the forged datagram, once.
    for server in [&service, &other] {
        let client = udp_client(&server.addr);
        assert_eq!(round_trip(&client, b"hello"), "hello好".as_bytes());
    }
    assert!(service_log
        .try_iter()
        .all(|line| !line.contains("not answered")));
}
