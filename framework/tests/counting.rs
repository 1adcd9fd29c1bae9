//! The tests that count the process's file descriptors or threads: from
//! CPython's Lib/test/test_socketserver.py, `test_tcpserver_bind_leak`,
//! `test_context_manager` and `test_threads_reaped` (its other scenarios
//! are in the module `python`); and no leak after 1,000 connections.
//!
//! Each runs alone in a child process of this binary ([`util::isolated`]),
//! so that no other test's sockets and threads come and go while it
//! counts, nor libtest's own test threads. So every count is exact: no
//! tolerance.

use std::collections::HashSet;
use std::io;

use socketserver::{Address, Error, Model, Server};

use crate::util::{
    self, assert_closed, assert_listens_where_asked, bind, bind_with_path, connect,
    each_model_and_family, isolated, open_fds, serve, socket_path, stream_examine, threads,
    wait_until, Family, LineEcho, FAMILIES, MODELS, TEST_STR, TIMEOUT,
};

/// `SocketServerTest.test_tcpserver_bind_leak` (bpo-22435: the socket was
/// not closed when `bind` or `listen` failed): 1024 times each, a build
/// that fails after its socket was made (the address is in use, with and
/// without `reuse_address`), and Python's own case, a port out of range
/// (`-1`, a resolve error here, before any socket). Not one descriptor is
/// left behind: the count after equals the count before.
#[test]
fn tcpserver_bind_leak() {
    if !util::isolated("counting::tcpserver_bind_leak") {
        return;
    }
    let occupier = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port to occupy");
    let taken = occupier.local_addr().unwrap();
    let before = open_fds();
    for _ in 0..1024 {
        for reuse in [true, false] {
            let built = Server::bind(taken, LineEcho).reuse_address(reuse).build();
            match built {
                Err(Error::Bind { source, .. }) if source.kind() == io::ErrorKind::AddrInUse => {}
                other => panic!("binding {taken} (in use, reuse {reuse}): {other:?}"),
            }
        }
        match Server::bind("127.0.0.1:-1", LineEcho).build() {
            Err(Error::Resolve { .. }) => {}
            other => panic!("port -1: {other:?}"),
        }
    }
    assert_eq!(open_fds(), before, "descriptors leaked by failed binds");
}

/// `SocketServerTest.test_tcpserver_bind_leak` for Unix-domain servers:
/// 1024 times each, a build that fails after its socket was made (the
/// socket's folder is missing; the path is too long for a socket
/// address), one that fails on the path of a live server (found by
/// connecting to it), and one on a path taken by a regular file. Not one
/// descriptor is left behind, and the live server's file is untouched.
#[test]
fn unix_stream_server_bind_leak() {
    if !util::isolated("counting::unix_stream_server_bind_leak") {
        return;
    }
    let missing_dir = socket_path("no-such-folder").join("srv.sock");
    let too_long = std::env::temp_dir().join(format!("{}.sock", "x".repeat(200)));
    let file = socket_path("regular-file");
    std::fs::write(&file, b"not a socket").unwrap();
    // The live server serves, so that the connection each failed build
    // makes to it (to tell a live socket from a stale one) is accepted and
    // closed rather than piling up in its backlog.
    let live = serve(Server::bind_unix(socket_path("live"), LineEcho).sync());
    let live_path = live.addr.as_unix_path().unwrap().to_path_buf();

    let before = open_fds();
    for _ in 0..1024 {
        for (path, kind) in [
            (&missing_dir, io::ErrorKind::NotFound),
            (&too_long, io::ErrorKind::InvalidInput),
            (&live_path, io::ErrorKind::AddrInUse),
            (&file, io::ErrorKind::AddrInUse),
        ] {
            match Server::bind_unix(path, LineEcho).build() {
                Err(Error::Bind { source, .. }) if source.kind() == kind => {}
                other => panic!("binding {}: {other:?}, expected {kind:?}", path.display()),
            }
        }
    }
    let stats = live.stats.clone();
    // A connection is counted as ended before its socket is closed, and
    // as inactive after: so this holds once every probe's socket is closed.
    wait_until("the live server has served every probe", TIMEOUT, || {
        let c = stats.snapshot();
        c.completed + c.failed + c.timed_out == 1024 && c.active == 0
    });
    assert_eq!(open_fds(), before, "descriptors leaked by failed binds");

    assert!(
        live_path.exists(),
        "a live server's socket file is never removed"
    );
    stream_examine(&live.addr);
    live.shutdown();
    assert_eq!(std::fs::read(&file).unwrap(), b"not a socket");
    std::fs::remove_file(&file).unwrap();
}

/// `SocketServerTest.test_context_manager`: Python closes the server when
/// its `with` block ends; here dropping the server does. The socket is
/// closed, a Unix socket's file removed, and every descriptor and thread
/// the server had is gone. Beyond Python: also with a live conversation
/// at the time of the drop (in the `Threading` and `Pool` models; in
/// `Sync` the one thread that could drop the server is the handler's), which
/// is cut: its client reads end of input.
#[test]
fn context_manager() {
    if !util::isolated("counting::context_manager") {
        return;
    }
    for model in MODELS {
        for family in FAMILIES {
            for live_conversation in [false, true] {
                if live_conversation && model == Model::Sync {
                    continue;
                }
                let fds = open_fds();
                let threads_before = threads();
                let (builder, path) = bind_with_path(family, LineEcho);
                let mut server = builder.model(model).build().expect("build");
                let addr = server.local_addr().clone();
                assert_listens_where_asked(&addr, path.as_ref());
                let client = live_conversation.then(|| {
                    let client = connect(&addr);
                    assert!(server.handle_request().expect("handle_request"));
                    assert_eq!(server.stats().snapshot().active, 1);
                    client
                });

                drop(server);

                assert_closed(&addr);
                if let Some(mut client) = client {
                    assert_eq!(client.rest(), b"", "the live conversation was cut");
                }
                let what = format!("{model:?} {family:?} live {live_conversation}");
                if live_conversation || matches!(model, Model::Pool { .. } | Model::Event { .. }) {
                    // A drop does not wait: the handler's thread and the
                    // pool's workers end on their own, a moment later,
                    // releasing what they share with the server (its
                    // waker's socket pair).
                    wait_until(&format!("{what}: descriptors are closed"), TIMEOUT, || {
                        open_fds() == fds
                    });
                    wait_until(&format!("{what}: threads are gone"), TIMEOUT, || {
                        threads() == threads_before
                    });
                } else {
                    assert_eq!(open_fds(), fds, "{what}: descriptors are closed");
                    assert_eq!(threads(), threads_before, "{what}: threads are gone");
                }
            }
        }
    }
}

/// `MiscTestCase.test_threads_reaped` (bpo-37193: `ThreadingMixIn` kept
/// every request's thread): ten connections through `handle_request`, over
/// TCP as in Python, counting the process's threads. `Threading` runs each
/// conversation in a thread of its own, which then waits for the next one,
/// so the count is one more than the idle server's while serving and
/// after; `Pool` keeps exactly
/// its workers; `Event` its loop threads; `Sync` adds none. After
/// `server_close`, the count is back to what it was before the server. (Python also checks the length of the
/// server's private list of threads; here that list is private, and what
/// it would leak, threads, is what is counted.)
#[test]
fn threads_reaped() {
    if !util::isolated("counting::threads_reaped") {
        return;
    }
    for model in MODELS {
        let baseline = threads();
        let mut server = bind_with_path(Family::Tcp, LineEcho)
            .0
            .model(model)
            .build()
            .expect("build");
        let idle = match model {
            Model::Pool { workers, .. } => baseline + workers,
            // Loop 0 is the serving thread; the others have their own.
            Model::Event { threads, .. } => baseline + threads - 1,
            _ => baseline,
        };
        assert_eq!(threads(), idle, "{model:?}: threads of an idle server");
        // The thread that served a conversation waits for the next.
        let kept = usize::from(model == Model::Threading);

        for n in 0..10 {
            let mut client = connect(server.local_addr());
            if model == Model::Sync {
                // The conversation runs inside handle_request.
                client.send(TEST_STR);
                assert!(server.handle_request().expect("handle_request"));
            } else {
                assert!(server.handle_request().expect("handle_request"));
                // The handler waits for the line, in its own thread.
                assert_eq!(
                    threads(),
                    idle + kept,
                    "{model:?} connection {n}: threads while serving"
                );
                client.send(TEST_STR);
            }
            assert_eq!(client.line().as_bytes(), TEST_STR);
            assert_eq!(client.rest(), b"");
            // The slot is freed once the thread waits for the next.
            let stats = server.stats();
            wait_until(
                &format!("{model:?} connection {n}: its slot is free"),
                TIMEOUT,
                || stats.snapshot().active == 0,
            );
            assert_eq!(
                threads(),
                idle + kept,
                "{model:?} connection {n}: back to the idle threads"
            );
        }

        server.server_close();
        // Joined threads leave /proc/self/task a moment after the join
        // returns (the kernel wakes the joiner before it reaps the task).
        wait_until(
            &format!("{model:?}: back to the threads before the server"),
            TIMEOUT,
            || threads() == baseline,
        );
    }
}

/// The inodes of the sockets this process has descriptors for.
fn socket_inodes() -> HashSet<u64> {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?.to_owned();
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// The port of a `/proc/net/tcp` address, `0100007F:1F90`.
fn proc_port(field: &str) -> Option<u16> {
    u16::from_str_radix(field.rsplit(':').next()?, 16).ok()
}

/// Descriptors this process holds on sockets of the server at `addr`: for
/// TCP, sockets whose local port is the server's (the listener and the
/// accepted connections) and whose remote port is (our clients); for a
/// Unix server, sockets bound to its path (the listener and the accepted
/// connections, which carry the listener's name).
///
/// Counting only sockets of one server's making lets the count be exact
/// while other tests open and close descriptors in parallel.
fn descriptors_of(addr: &Address) -> usize {
    let ours = socket_inodes();
    let mut inodes = HashSet::new();
    match addr {
        Address::Inet(a) => {
            for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
                let Ok(text) = std::fs::read_to_string(table) else {
                    continue;
                };
                for line in text.lines().skip(1) {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    let (Some(local), Some(remote), Some(inode)) = (
                        f.get(1).and_then(|s| proc_port(s)),
                        f.get(2).and_then(|s| proc_port(s)),
                        f.get(9).and_then(|s| s.parse::<u64>().ok()),
                    ) else {
                        continue;
                    };
                    if local == a.port() || remote == a.port() {
                        inodes.insert(inode);
                    }
                }
            }
        }
        Address::Unix(Some(path)) => {
            let text = std::fs::read_to_string("/proc/net/unix").expect("read /proc/net/unix");
            let path = path.to_str().expect("a UTF-8 path");
            for line in text.lines().skip(1) {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.get(7) == Some(&path) {
                    if let Some(inode) = f.get(6).and_then(|s| s.parse::<u64>().ok()) {
                        inodes.insert(inode);
                    }
                }
            }
        }
        other => panic!("no sockets to count for {other}"),
    }
    inodes.remove(&0);
    inodes.intersection(&ours).count()
}

#[test]
fn no_descriptor_or_thread_leak_after_1000_connections() {
    // Exact counts, two ways. The test runs alone in a child process of
    // this binary (`util::isolated`), so the process-wide counts of
    // descriptors and threads are its own; and `descriptors_of` counts only
    // sockets of this test's server, exact even among parallel tests.
    if !isolated("counting::no_descriptor_or_thread_leak_after_1000_connections") {
        return;
    }
    each_model_and_family(|model, family| {
        let case = format!("{model:?}/{family:?}");
        let (fds_before, threads_before) = (open_fds(), threads());
        let running = serve(bind(family, LineEcho).model(model));
        let addr = running.addr.clone();
        let fds_serving = open_fds();
        assert_eq!(descriptors_of(&addr), 1, "{case}: the listener alone");
        for i in 0..1000 {
            let mut client = running.connect();
            let line = format!("{i}\n");
            assert_eq!(client.round_trip(&line), line, "{case}");
        }
        let stats = running.stats.clone();
        wait_until("every connection has ended", TIMEOUT, || {
            let c = stats.snapshot();
            c.completed == 1000 && c.active == 0
        });
        assert_eq!(
            descriptors_of(&addr),
            1,
            "{case}: the listener alone, after 1000"
        );
        assert_eq!(
            open_fds(),
            fds_serving,
            "{case}: descriptors after 1000 connections"
        );
        running.shutdown();
        assert_eq!(descriptors_of(&addr), 0, "{case}: nothing once shut down");
        assert_eq!(open_fds(), fds_before, "{case}: descriptors once shut down");
        assert_eq!(threads(), threads_before, "{case}: threads once shut down");
    });
}

/// Out of descriptors, `accept` fails with EMFILE while the client's
/// connection waits in the backlog. The loop must neither spin nor die: it
/// pauses, 5 ms doubling to 1 s (counted in `accept_errors`), and serves
/// the waiting client as soon as descriptors are free again. For each
/// model. Isolated, since it lowers the process's descriptor limit.
#[test]
fn accept_backs_off_when_out_of_descriptors() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    use socket2::{Domain, Socket, Type};
    use std::io::{BufRead, BufReader, Write};
    use std::time::Instant;

    if !util::isolated("counting::accept_backs_off_when_out_of_descriptors") {
        return;
    }
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    for model in MODELS {
        let running = serve(Server::bind("127.0.0.1:0", LineEcho).model(model));
        let addr = running.addr.as_inet().expect("a TCP server");
        // Made before the limit drops: connecting needs no new descriptor.
        let client = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a client socket");

        // Fill every free descriptor number below a limit just above the
        // highest in use, so that `accept` has none left.
        let highest = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
            .max()
            .unwrap();
        setrlimit(Resource::RLIMIT_NOFILE, highest + 2, hard).expect("lower the limit");
        let mut fillers = Vec::new();
        while let Ok(file) = std::fs::File::open("/dev/null") {
            fillers.push(file);
        }

        client
            .connect(&addr.into())
            .expect("connect (the kernel completes it)");
        let mut client: std::net::TcpStream = client.into();
        client.set_read_timeout(Some(TIMEOUT)).unwrap();
        client.set_write_timeout(Some(TIMEOUT)).unwrap();
        client.write_all(TEST_STR).unwrap();

        let errors = || running.stats.snapshot().accept_errors;
        wait_until("a first accept error", TIMEOUT, || errors() >= 1);
        let first = Instant::now();
        wait_until("a fourth accept error", TIMEOUT, || errors() >= 4);
        let paused = first.elapsed();
        // Pauses of 5, 10 and 20 ms come between the first and the fourth
        // error; a loop that spun would get there in microseconds.
        assert!(
            paused >= std::time::Duration::from_millis(30),
            "{model:?}: 4 accept errors within {paused:?}: the loop does not pause"
        );
        assert_eq!(running.stats.snapshot().accepted, 0, "{model:?}");

        drop(fillers);
        setrlimit(Resource::RLIMIT_NOFILE, soft, hard).expect("restore the limit");
        let mut reply = String::new();
        BufReader::new(&client)
            .read_line(&mut reply)
            .expect("the reply, once descriptors are back");
        assert_eq!(reply.as_bytes(), TEST_STR, "{model:?}");
        stream_examine(&running.addr);
        // The replies are out before the handlers' slots are freed: wait
        // for that, so that no connection is still live at the shutdown.
        let stats = running.stats.clone();
        wait_until("both connections have ended", TIMEOUT, || {
            stats.snapshot().active == 0
        });
        let report = running.shutdown();
        assert_eq!((report.drained, report.cut), (0, 0), "{model:?}");
    }
}
