//! Resources: the thread-safety of the handles, what dropping a server
//! does, the life of a Unix socket file, IPv6. (The tests that count
//! descriptors and threads are in the `counting` module.)

use std::io::{self, BufRead};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use socketserver::{
    Builder, DrainReport, Error, Model, RequestHandler, Server, ShutdownHandle, Stats, Stream,
};

use crate::util::{
    bind, connect, each_model_and_family, no_child_starting, serve, socket_path, wait_until,
    Client, Echo, MODELS, TIMEOUT,
};

#[test]
fn handles_are_send_and_sync() {
    fn assert_send<T: Send>() {}
    fn assert_sync<T: Sync>() {}
    // Checked by the compiler; the test only has to build.
    assert_send::<Server>();
    assert_send::<Builder<Echo>>();
    assert_send::<ShutdownHandle>();
    assert_sync::<ShutdownHandle>();
    assert_send::<Stats>();
    assert_sync::<Stats>();
    assert_send::<Stream>();
    assert_send::<DrainReport>();
    assert_send::<Error>();
    assert_sync::<Error>();
}

/// Echoes lines; on "sleep" works for 2 s first, without touching the
/// socket.
#[derive(Clone)]
struct Sleepy {
    sleeping: Arc<AtomicUsize>,
}

impl RequestHandler for Sleepy {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        while let Some(line) = stream.next_line()? {
            if line == "sleep\n" {
                self.sleeping.fetch_add(1, Ordering::SeqCst);
                thread::sleep(Duration::from_secs(2));
            }
            stream.write_all(line.as_bytes())?;
        }
        Ok(())
    }
}

#[test]
fn dropping_a_server_cuts_live_connections_without_blocking() {
    // Sync serves in the thread that owns the server: it cannot be dropped
    // while one of its connections lives.
    each_model_and_family(|model, family| {
        if model == Model::Sync {
            return;
        }
        let case = format!("{model:?}/{family:?}");
        let sleeping = Arc::new(AtomicUsize::new(0));
        let mut server = bind(
            family,
            Sleepy {
                sleeping: Arc::clone(&sleeping),
            },
        )
        .model(model)
        .build()
        .expect("build");
        let addr = server.local_addr().clone();

        let mut idle = connect(&addr);
        assert!(server.handle_request().unwrap());
        assert_eq!(idle.round_trip("hi\n"), "hi\n", "{case}");
        let mut busy = connect(&addr);
        assert!(server.handle_request().unwrap());
        busy.send(b"sleep\n");
        wait_until("the handler sleeps", TIMEOUT, || {
            sleeping.load(Ordering::SeqCst) == 1
        });

        let dropped = Instant::now();
        drop(server);
        let took = dropped.elapsed();
        assert!(
            took < Duration::from_millis(500),
            "{case}: drop took {took:?}"
        );
        assert!(
            idle.closed_within(Duration::from_secs(1)),
            "{case}: idle cut"
        );
        // Cut before the handler wakes to answer.
        assert!(
            busy.closed_within(Duration::from_secs(1)),
            "{case}: busy cut"
        );
        assert!(dropped.elapsed() < Duration::from_secs(2), "{case}");
        if let Some(path) = addr.as_unix_path() {
            assert!(!exists(path), "{case}: socket file removed");
        }
    });
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

#[test]
fn unix_socket_file_is_removed_on_drop_close_and_shutdown() {
    for model in MODELS {
        let path = socket_path("drop");
        let server = Server::bind_unix(&path, Echo).model(model).build().unwrap();
        assert!(is_socket(&path), "{model:?}: bound");
        drop(server);
        assert!(!exists(&path), "{model:?}: removed on drop");

        let path = socket_path("close");
        let server = Server::bind_unix(&path, Echo).model(model).build().unwrap();
        assert!(is_socket(&path));
        let report = server.server_close();
        assert_eq!((report.drained, report.cut), (0, 0));
        assert!(!exists(&path), "{model:?}: removed on server_close");

        let path = socket_path("shutdown");
        let running = serve(Server::bind_unix(&path, Echo).model(model));
        assert_eq!(running.connect().round_trip("x\n"), "x\n");
        running.shutdown();
        assert!(
            !exists(&path),
            "{model:?}: removed when serve_forever returns"
        );
    }
}

#[test]
fn stale_unix_socket_is_replaced_and_a_live_one_refused() {
    // Stale: std's listener leaves its file behind when dropped.
    let path = socket_path("stale");
    drop(UnixListener::bind(&path).unwrap());
    assert!(is_socket(&path), "the stale file is there");
    let running = {
        // The server's probe must find it dead: no starting child holds a
        // copy of it.
        let _no_child_starting = no_child_starting();
        serve(Server::bind_unix(&path, Echo))
    };
    assert_eq!(running.connect().round_trip("fresh\n"), "fresh\n");
    running.shutdown();
    assert!(!exists(&path));

    // Live: refused, and left alone.
    let path = socket_path("live");
    let live = UnixListener::bind(&path).unwrap();
    match Server::bind_unix(&path, Echo).build() {
        Err(Error::Bind { address, source }) => {
            assert_eq!(address, format!("unix:{}", path.display()));
            assert_eq!(source.kind(), io::ErrorKind::AddrInUse, "{source}");
        }
        Err(other) => panic!("expected Error::Bind, got {other}"),
        Ok(_) => panic!("bound over a live socket"),
    }
    assert!(is_socket(&path), "the live socket's file stays");
    let client = UnixStream::connect(&path).expect("the live server still listens");
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    live.set_nonblocking(true).unwrap();
    assert!(live.accept().is_ok());
    drop(live);
    std::fs::remove_file(&path).unwrap();

    // Not a socket at all: refused, and left alone.
    let path = socket_path("file");
    std::fs::write(&path, b"precious").unwrap();
    match Server::bind_unix(&path, Echo).build() {
        Err(Error::Bind { source, .. }) => {
            assert_eq!(source.kind(), io::ErrorKind::AddrInUse, "{source}")
        }
        Err(other) => panic!("expected Error::Bind, got {other}"),
        Ok(_) => panic!("bound over a regular file"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    std::fs::remove_file(&path).unwrap();
}

/// Says the peer's address, then echoes lines.
#[derive(Clone)]
struct PeerEcho;

impl RequestHandler for PeerEcho {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        let peer = stream.peer_addr().clone();
        stream.write_all(format!("{peer}\n").as_bytes())?;
        Echo.handle(stream)
    }
}

fn tcp_client(addr: std::net::SocketAddr) -> Client {
    let s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    Client::Tcp(io::BufReader::new(s))
}

#[test]
fn ipv6_loopback_and_dual_stack() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("note: this machine has no IPv6 loopback; IPv6 not tested");
        return;
    }
    for model in MODELS {
        // [::1]
        let running = serve(Server::bind("[::1]:0", PeerEcho).model(model));
        let server = running.addr.as_inet().unwrap();
        assert!(server.is_ipv6() && server.ip().is_loopback(), "{server}");
        let mut client = tcp_client(server);
        assert_eq!(client.line(), format!("{}\n", client.local_address()));
        assert_eq!(client.round_trip("six\n"), "six\n", "{model:?}");
        drop(client);
        running.shutdown();

        // [::] serves IPv4 as well, seen as an IPv4-mapped address.
        let running = serve(Server::bind("[::]:0", PeerEcho).model(model));
        let port = running.addr.as_inet().unwrap().port();
        let mut v4 = tcp_client(([127, 0, 0, 1], port).into());
        let v4_port = v4.local_address().as_inet().unwrap().port();
        assert_eq!(
            v4.line(),
            format!("[::ffff:127.0.0.1]:{v4_port}\n"),
            "{model:?}"
        );
        assert_eq!(v4.round_trip("four\n"), "four\n", "{model:?}");
        drop(v4);
        let mut v6 = tcp_client(format!("[::1]:{port}").parse().unwrap());
        let mut peer = String::new();
        v6.read_line(&mut peer).unwrap();
        assert_eq!(v6.round_trip("six\n"), "six\n", "{model:?}");
        drop(v6);
        running.shutdown();
    }

    // only_v6: IPv4 clients are turned away.
    let running = serve(Server::bind("[::]:0", PeerEcho).only_v6(true));
    let port = running.addr.as_inet().unwrap().port();
    let error = TcpStream::connect(("127.0.0.1", port)).expect_err("IPv6 only");
    assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    let mut v6 = tcp_client(format!("[::1]:{port}").parse().unwrap());
    let mut peer = String::new();
    v6.read_line(&mut peer).unwrap();
    assert_eq!(v6.round_trip("only six\n"), "only six\n");
}
