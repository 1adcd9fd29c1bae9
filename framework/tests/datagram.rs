//! Datagram servers: CPython's UDPServer and UnixDatagramServer scenarios
//! (and their threading variants, plus the pool), then what goes beyond:
//! replies never cross between senders, big datagrams arrive whole, and
//! over-long ones are dropped and counted, never cut. (The forking
//! variants are in the `processes` module, each run alone.)

use std::io;
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use socketserver::{Address, Builder, Datagram, DatagramHandler, Failure, Model, Server, Step};

use crate::util::{
    serve, socket_path, wait_until, Family, DATAGRAM_MODELS, FAMILIES, TEST_STR, TIMEOUT,
};

/// Python's `DatagramRequestHandler` test handler: sends the datagram back.
#[derive(Clone)]
struct EchoDatagram;

impl DatagramHandler for EchoDatagram {
    fn handle(&mut self, datagram: &mut Datagram<'_>) -> io::Result<()> {
        let data = datagram.data().to_vec();
        datagram.reply(&data)
    }
}

fn bind_datagram<H: DatagramHandler>(family: Family, handler: H) -> Builder<H> {
    match family {
        Family::Tcp => Server::bind_udp("127.0.0.1:0", handler),
        Family::Unix => Server::bind_unix_datagram(socket_path("dgram"), handler),
    }
}

/// A datagram client with a read timeout; a Unix one binds a path of its
/// own, as Python's test does, so that the server can reply.
enum Client {
    Udp(UdpSocket),
    Unix(UnixDatagram, PathBuf),
}

impl Client {
    fn new(server: &Address) -> Client {
        let client = match server {
            Address::Inet(_) => {
                Client::Udp(UdpSocket::bind("127.0.0.1:0").expect("bind a UDP client"))
            }
            _ => {
                let path = socket_path("client");
                Client::Unix(UnixDatagram::bind(&path).expect("bind a Unix client"), path)
            }
        };
        client.set_timeout(Some(TIMEOUT));
        client
    }

    fn set_timeout(&self, timeout: Option<Duration>) {
        match self {
            Client::Udp(s) => s.set_read_timeout(timeout).unwrap(),
            Client::Unix(s, _) => s.set_read_timeout(timeout).unwrap(),
        }
    }

    fn send(&self, server: &Address, data: &[u8]) {
        let sent = match (self, server) {
            (Client::Udp(s), Address::Inet(a)) => s.send_to(data, a),
            (Client::Unix(s, _), Address::Unix(Some(p))) => s.send_to(data, p),
            _ => panic!("family mismatch"),
        };
        assert_eq!(sent.expect("send a datagram"), data.len());
    }

    fn receive(&self) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; 70_000];
        let n = match self {
            Client::Udp(s) => s.recv(&mut buf)?,
            Client::Unix(s, _) => s.recv(&mut buf)?,
        };
        buf.truncate(n);
        Ok(buf)
    }

    fn round_trip(&self, server: &Address, data: &[u8]) -> Vec<u8> {
        self.send(server, data);
        self.receive().expect("a reply")
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Client::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// After the server closed: a UDP port is free to bind again; a Unix
/// socket file is gone.
fn assert_closed(addr: &Address) {
    match addr {
        Address::Inet(a) => {
            UdpSocket::bind(a).expect("the server's port is free again");
        }
        Address::Unix(Some(path)) => assert!(!path.exists(), "{} still exists", path.display()),
        other => unreachable!("{other}"),
    }
}

/// `test_UDPServer`, `test_ThreadingUDPServer`, `test_UnixDatagramServer`,
/// `test_ThreadingUnixDatagramServer` (and the pool): three clients each
/// get their datagram back exactly, then shutdown, then the socket is
/// closed (the port is free, the file is gone).
#[test]
fn datagram_servers_in_every_model() {
    for model in DATAGRAM_MODELS {
        for family in FAMILIES {
            let running = serve(bind_datagram(family, EchoDatagram).model(model));
            let addr = running.addr.clone();
            for _ in 0..3 {
                let client = Client::new(&addr);
                assert_eq!(
                    client.round_trip(&addr, TEST_STR),
                    TEST_STR,
                    "{model:?} {family:?}"
                );
            }
            let stats = running.stats.clone();
            wait_until("the three packets are counted", TIMEOUT, || {
                stats.snapshot().completed == 3
            });
            let report = running.shutdown();
            assert_eq!((report.drained, report.cut), (0, 0));
            let counters = stats.snapshot();
            assert_eq!(
                (
                    counters.accepted,
                    counters.completed,
                    counters.failed,
                    counters.active
                ),
                (3, 3, 0, 0),
                "{model:?} {family:?}"
            );
            assert_eq!(counters.bytes_read, 3 * TEST_STR.len() as u64);
            assert_eq!(counters.bytes_written, 3 * TEST_STR.len() as u64);
            assert_closed(&addr);
        }
    }
}

/// 10,000 datagrams from 10 concurrent senders: every reply reaches its own
/// sender, and is the answer to that sender's own request.
#[test]
fn replies_never_cross_between_senders() {
    for model in [
        Model::Threading,
        Model::Pool {
            workers: 4,
            queue: 4,
        },
    ] {
        for family in FAMILIES {
            let running = serve(bind_datagram(family, EchoDatagram).model(model));
            let addr = running.addr.clone();
            let senders: Vec<_> = (0..10)
                .map(|sender| {
                    let addr = addr.clone();
                    thread::spawn(move || {
                        let client = Client::new(&addr);
                        for seq in 0..1000 {
                            let request = format!("sender {sender} datagram {seq}");
                            let reply = client.round_trip(&addr, request.as_bytes());
                            assert_eq!(reply, request.as_bytes(), "{model:?} {family:?}");
                        }
                    })
                })
                .collect();
            for sender in senders {
                sender.join().expect("a sender failed");
            }
            let stats = running.stats.clone();
            wait_until("all 10,000 are counted", TIMEOUT, || {
                stats.snapshot().completed == 10_000
            });
            running.shutdown();
        }
    }
}

/// A 60,000-byte datagram comes back whole (Python's handler reads 8,192
/// bytes and silently drops the rest).
#[test]
fn a_big_datagram_round_trips_whole() {
    for family in FAMILIES {
        let running = serve(bind_datagram(family, EchoDatagram));
        let client = Client::new(&running.addr);
        let big: Vec<u8> = (0..60_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(client.round_trip(&running.addr, &big), big, "{family:?}");
        assert_eq!(socketserver::defaults::MAX_DATAGRAM, 65_507);
        running.shutdown();
    }
}

/// A datagram over the limit is dropped and counted, never cut short; the
/// next one is served.
#[test]
fn an_over_long_datagram_is_dropped_and_counted() {
    for family in FAMILIES {
        let running = serve(bind_datagram(family, EchoDatagram).max_datagram_len(1000));
        let client = Client::new(&running.addr);
        client.send(&running.addr, &[b'x'; 1001]);
        let stats = running.stats.clone();
        wait_until("the datagram is dropped", TIMEOUT, || {
            stats.snapshot().dropped == 1
        });
        let exact = [b'y'; 1000];
        // The next reply is the 1000-byte one: nothing came for the other.
        assert_eq!(
            client.round_trip(&running.addr, &exact),
            exact,
            "{family:?}"
        );
        // The reply leaves before its handler returns: wait for the count.
        wait_until("the served one is counted", TIMEOUT, || {
            stats.snapshot().completed == 1
        });
        assert_eq!(stats.snapshot().dropped, 1, "{family:?}");
        running.shutdown();
    }
}

/// Handlers that reply any number of times: zero (no empty datagram is
/// sent, unlike Python), or several.
#[test]
fn a_handler_may_reply_zero_or_many_times() {
    #[derive(Clone)]
    struct Count;
    impl DatagramHandler for Count {
        fn handle(&mut self, datagram: &mut Datagram<'_>) -> io::Result<()> {
            let n: usize = std::str::from_utf8(datagram.data())
                .unwrap()
                .parse()
                .unwrap();
            for i in 0..n {
                datagram.reply(format!("{i}").as_bytes())?;
            }
            Ok(())
        }
    }
    for family in FAMILIES {
        let running = serve(bind_datagram(family, Count));
        let client = Client::new(&running.addr);
        client.send(&running.addr, b"0");
        client.send(&running.addr, b"3");
        // The replies to "3" are the first to arrive: "0" got none.
        for i in 0..3 {
            assert_eq!(
                client.receive().unwrap(),
                format!("{i}").as_bytes(),
                "{family:?}"
            );
        }
        let stats = running.stats.clone();
        wait_until("both are counted", TIMEOUT, || {
            stats.snapshot().completed == 2
        });
        client.set_timeout(Some(Duration::from_millis(200)));
        let err = client.receive().expect_err("nothing more");
        assert!(matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ));
        running.shutdown();
    }
}

/// verify_request refuses a sender; handle_error sees a failing handler
/// with the sender's address; the server goes on.
#[test]
fn verify_request_and_handle_error_for_datagrams() {
    #[derive(Clone)]
    struct Picky;
    impl DatagramHandler for Picky {
        fn handle(&mut self, datagram: &mut Datagram<'_>) -> io::Result<()> {
            match datagram.data() {
                b"fail" => Err(io::Error::other("asked to fail")),
                b"panic" => panic!("asked to panic"),
                data => {
                    let data = data.to_vec();
                    datagram.reply(&data)
                }
            }
        }
    }
    for model in DATAGRAM_MODELS {
        let refused: Arc<Mutex<Option<Address>>> = Arc::default();
        let failures: Arc<Mutex<Vec<(Address, String, Step)>>> = Arc::default();
        let first_client = Client::new(&Address::Inet("127.0.0.1:1".parse().unwrap()));
        let Client::Udp(first_socket) = &first_client else {
            unreachable!()
        };
        let refused_addr = Address::Inet(first_socket.local_addr().unwrap());
        let (r, f) = (Arc::clone(&refused), Arc::clone(&failures));
        let refused_for_hook = refused_addr.clone();
        let running = serve(
            bind_datagram(Family::Tcp, Picky)
                .model(model)
                .verify_request(move |peer: &Address| {
                    if *peer == refused_for_hook {
                        *r.lock().unwrap() = Some(peer.clone());
                        false
                    } else {
                        true
                    }
                })
                .handle_error(move |peer: &Address, failure: &Failure| {
                    let text = match failure {
                        Failure::Error { error, .. } => error.to_string(),
                        Failure::Panic { message, .. } => message.clone(),
                        _ => String::new(),
                    };
                    f.lock().unwrap().push((peer.clone(), text, failure.step()));
                }),
        );
        first_client.send(&running.addr, b"hello");
        let stats = running.stats.clone();
        wait_until("the refusal", TIMEOUT, || stats.snapshot().refused == 1);
        assert_eq!(refused.lock().unwrap().as_ref(), Some(&refused_addr));

        let client = Client::new(&running.addr);
        let Client::Udp(socket) = &client else {
            unreachable!()
        };
        let me = Address::Inet(socket.local_addr().unwrap());
        client.send(&running.addr, b"fail");
        client.send(&running.addr, b"panic");
        assert_eq!(
            client.round_trip(&running.addr, b"still here"),
            b"still here",
            "{model:?}"
        );
        wait_until("both failures are reported", TIMEOUT, || {
            failures.lock().unwrap().len() == 2
        });
        let mut seen = failures.lock().unwrap().clone();
        seen.sort_by(|a, b| a.1.cmp(&b.1));
        assert_eq!(
            seen,
            [
                (me.clone(), "asked to fail".to_string(), Step::Handle),
                (me.clone(), "asked to panic".to_string(), Step::Handle),
            ],
            "{model:?}"
        );
        wait_until("the counters settle", TIMEOUT, || {
            stats.snapshot().active == 0
        });
        let counters = stats.snapshot();
        assert_eq!(
            (
                counters.accepted,
                counters.refused,
                counters.completed,
                counters.failed
            ),
            (4, 1, 1, 2),
            "{model:?}"
        );
        running.shutdown();
    }
}

/// `handle_request` on a datagram server: one datagram, or the timeout and
/// the `handle_timeout` hook.
#[test]
fn handle_request_on_a_datagram_server() {
    let timeouts = Arc::new(Mutex::new(0));
    let t = Arc::clone(&timeouts);
    let mut server = Server::bind_udp("127.0.0.1:0", EchoDatagram)
        .sync()
        .timeout(Some(Duration::from_millis(100)))
        .handle_timeout(move || *t.lock().unwrap() += 1)
        .build()
        .unwrap();
    let addr = server.local_addr().clone();
    assert!(!server.handle_request().unwrap());
    assert_eq!(*timeouts.lock().unwrap(), 1);
    let client = Client::new(&addr);
    client.send(&addr, TEST_STR);
    assert!(server.handle_request().unwrap());
    assert_eq!(client.receive().unwrap(), TEST_STR);
    server.server_close();
    assert_closed(&addr);
}

/// Prefork is for streams: asking for it on a datagram socket is an error
/// when the server is built.
#[test]
fn prefork_refuses_datagrams() {
    let built = Server::bind_udp("127.0.0.1:0", EchoDatagram)
        .prefork(2)
        .build();
    assert!(
        matches!(built, Err(socketserver::Error::Config(_))),
        "{built:?}"
    );
}

/// A UDP server's port is its own: another local socket cannot bind it,
/// not even one that sets `SO_REUSEADDR` (on UDP that option would let
/// both bind, and the newcomer take the server's datagrams), and not even
/// when the builder asks for the option.
#[test]
fn a_udp_port_cannot_be_shared_by_reuse_address() {
    for reuse in [true, false] {
        let running = serve(
            Server::bind_udp("127.0.0.1:0", EchoDatagram)
                .threading()
                .reuse_address(reuse),
        );
        let Address::Inet(port) = running.addr.clone() else {
            panic!("a UDP server has an IP address");
        };
        let intruder = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .expect("a UDP socket");
        intruder.set_reuse_address(true).unwrap();
        let bound = intruder.bind(&port.into());
        assert_eq!(
            bound.as_ref().map_err(io::Error::kind).err(),
            Some(io::ErrorKind::AddrInUse),
            "reuse_address({reuse}): a second socket bound the server's port: {bound:?}"
        );
        // The server still answers on it.
        let client = Client::new(&running.addr);
        client.send(&running.addr, TEST_STR);
        assert_eq!(client.receive().unwrap(), TEST_STR);
        running.shutdown();
    }
}
