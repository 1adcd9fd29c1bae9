//! CPython's forking scenarios of `test_socketserver.py`, under both
//! process models: the stream servers (`test_ForkingTCPServer`,
//! `test_ForkingUnixStreamServer`) and the datagram ones
//! (`test_ForkingUDPServer`, `test_ForkingUnixDatagramServer`), each
//! wrapped in CPython's `simple_subprocess` (the server reaps only its own
//! children), and `ErrorHandlerTest`'s forking cases (`handle_error` runs
//! in the child, once per failure).

use std::collections::HashSet;
use std::io;
use std::process::Command;

use socketserver::{Address, Failure};

use super::{
    append, ask, bind, bind_with_path, lines_of, temp_path, KillChildrenOnFailure, Script, FORKING,
    PROCESS_MODELS,
};
use crate::util::{
    self, assert_closed, assert_listens_where_asked, child_processes, forking_allowed, isolated,
    proc_stat, serve, stream_examine, wait_until, Family, LineEcho, FAMILIES, TEST_STR, TIMEOUT,
};

/// `SocketServerTest.test_ForkingTCPServer` and
/// `test_ForkingUnixStreamServer`, wrapped in CPython's `simple_subprocess`:
/// before the server starts, the test forks a child of its own, which exits
/// with status 72 at once; three clients each get `hello world\n` back;
/// the server shuts down, its socket is closed and a Unix socket's file is
/// gone; then the test's own child is still there to be reaped, with its
/// status 72: the server waited only for its own children, never with
/// `waitpid(-1)`. Under `Prefork` too (whose parent reaps its workers).
#[test]
fn forking_servers_python_scenarios() {
    if !isolated("processes::cpython::forking_servers_python_scenarios") {
        return;
    }
    let _cleanup = KillChildrenOnFailure;
    for model in PROCESS_MODELS {
        for family in FAMILIES {
            let case = format!("{model:?} over {family:?}");
            let mut own = Command::new("sh")
                .args(["-c", "exit 72"])
                .spawn()
                .expect("spawn sh");
            let own_pid = own.id();
            // Exited and unreaped before the server starts: a server that
            // reaped any child would take its status.
            wait_until(
                &format!("{case}: the test's own child has exited"),
                TIMEOUT,
                || proc_stat(own_pid).is_some_and(|(state, _)| state == 'Z'),
            );

            let (builder, path) = bind_with_path(family, LineEcho);
            let running = serve(builder.model(model));
            assert_listens_where_asked(&running.addr, path.as_ref());
            for _ in 0..3 {
                stream_examine(&running.addr);
            }
            let stats = running.stats.clone();
            wait_until(&format!("{case}: three served"), TIMEOUT, || {
                let c = stats.snapshot();
                c.completed == 3 && c.active == 0
            });
            let addr = running.addr.clone();
            let report = running.shutdown();
            assert_eq!((report.drained, report.cut), (0, 0), "{case}");
            assert_closed(&addr);
            if let Some(path) = &path {
                assert!(!path.exists(), "{case}: {} removed", path.display());
            }
            assert_eq!(
                child_processes(),
                [(own_pid, 'Z')],
                "{case}: the server's children are all reaped, the test's own is not"
            );
            let status = own
                .wait()
                .unwrap_or_else(|e| panic!("{case}: the test's own child was reaped: {e}"));
            assert_eq!(status.code(), Some(72), "{case}: its exit status");
            assert_eq!(child_processes(), [], "{case}");
        }
    }
}

/// `ErrorHandlerTest.test_forking_handled` and `test_forking_not_handled`:
/// the `handle_error` hook runs in the process that served the connection
/// (a forked child, a prefork worker), exactly once per failure, for a
/// handler that returns an error and for one that panics. The hook records
/// each call by appending a line to a file, since the child's memory is its
/// own. After each failure the server goes on serving.
#[test]
fn handle_error_runs_in_the_child_once_per_failure() {
    if !isolated("processes::cpython::handle_error_runs_in_the_child_once_per_failure") {
        return;
    }
    let _cleanup = KillChildrenOnFailure;
    for model in PROCESS_MODELS {
        for family in FAMILIES {
            let case = format!("{model:?} over {family:?}");
            let record = temp_path("handle-error.log");
            let file = record.clone();
            let running = serve(
                bind(family, Script::default())
                    .model(model)
                    .idle_timeout(Some(TIMEOUT))
                    .handle_error(move |_peer, failure: &Failure| {
                        let kind = match failure {
                            Failure::Panic { .. } => "panic",
                            _ => "error",
                        };
                        append(&file, &format!("{} {kind} {failure}\n", std::process::id()));
                    }),
            );
            let mut expected = Vec::new();
            let failures = [
                ("fail", "error handle failed: failed on purpose"),
                ("panic", "panic handle panicked: panicked on purpose"),
            ];
            for (n, (command, line)) in failures.iter().cycle().take(4).enumerate() {
                let (mut client, pid) = ask(&running.addr, command);
                assert_eq!(client.rest(), b"", "{case} {command}: then closed");
                let stats = running.stats.clone();
                // The child runs the hook before it reports the failure.
                wait_until(&format!("{case} {command}: counted"), TIMEOUT, || {
                    stats.snapshot().failed == n as u64 + 1
                });
                expected.push(format!("{pid} {line}"));
                assert_eq!(lines_of(&record), expected, "{case}: after {command}");
                // The server goes on.
                stream_examine(&running.addr);
            }
            let stats = running.stats.clone();
            wait_until(&format!("{case}: all ended"), TIMEOUT, || {
                let c = stats.snapshot();
                c.completed == 4 && c.active == 0
            });
            let c = stats.snapshot();
            assert_eq!(
                (c.accepted, c.completed, c.failed, c.timed_out),
                (8, 4, 4, 0),
                "{case}"
            );
            let report = running.shutdown();
            assert_eq!((report.drained, report.cut), (0, 0), "{case}");
            assert_eq!(lines_of(&record), expected, "{case}: no more calls");
            assert_eq!(child_processes(), [], "{case}");
            std::fs::remove_file(&record).expect("remove the record");
        }
    }
}

/// Answers each datagram with itself, and a line naming the pid that
/// served it.
#[derive(Clone)]
struct DatagramEcho;

impl socketserver::DatagramHandler for DatagramEcho {
    fn handle(&mut self, datagram: &mut socketserver::Datagram<'_>) -> io::Result<()> {
        let data = datagram.data().to_vec();
        datagram.reply(&data)?;
        datagram.reply(format!("pid {}", std::process::id()).as_bytes())
    }
}

/// CPython's `test_ForkingUDPServer` and `test_ForkingUnixDatagramServer`:
/// three datagrams each come back exactly, each from a child of its own;
/// then shutdown, the socket closed (the UDP port free, the Unix file
/// gone), every child reaped, and the test's own child left to be reaped
/// with its status 72.
#[test]
fn forking_datagram_servers_python_scenarios() {
    use std::net::UdpSocket;
    use std::os::unix::net::UnixDatagram;

    if !isolated("processes::cpython::forking_datagram_servers_python_scenarios") {
        return;
    }
    let _cleanup = KillChildrenOnFailure;
    for family in FAMILIES {
        let case = format!("forking datagrams over {family:?}");
        let mut own = Command::new("sh")
            .args(["-c", "exit 72"])
            .spawn()
            .expect("spawn sh");
        let own_pid = own.id();
        wait_until(&format!("{case}: own child exited"), TIMEOUT, || {
            proc_stat(own_pid).is_some_and(|(state, _)| state == 'Z')
        });
        let builder = match family {
            Family::Tcp => socketserver::Server::bind_udp("127.0.0.1:0", DatagramEcho),
            Family::Unix => socketserver::Server::bind_unix_datagram(
                util::socket_path("fork-dgram"),
                DatagramEcho,
            ),
        };
        let running = serve(forking_allowed(builder).model(FORKING));
        let addr = running.addr.clone();
        let client_path = util::socket_path("fork-dgram-client");
        let mut pids = HashSet::new();
        for _ in 0..3 {
            let mut buf = [0u8; 100];
            let (echo, pid_line) = match &addr {
                Address::Inet(server) => {
                    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
                    client.set_read_timeout(Some(TIMEOUT)).unwrap();
                    client.send_to(TEST_STR, server).unwrap();
                    let n = client.recv(&mut buf).unwrap();
                    let echo = buf[..n].to_vec();
                    let n = client.recv(&mut buf).unwrap();
                    (echo, buf[..n].to_vec())
                }
                Address::Unix(Some(server)) => {
                    let _ = std::fs::remove_file(&client_path);
                    let client = UnixDatagram::bind(&client_path).unwrap();
                    client.set_read_timeout(Some(TIMEOUT)).unwrap();
                    client.send_to(TEST_STR, server).unwrap();
                    let n = client.recv(&mut buf).unwrap();
                    let echo = buf[..n].to_vec();
                    let n = client.recv(&mut buf).unwrap();
                    (echo, buf[..n].to_vec())
                }
                other => unreachable!("{other}"),
            };
            assert_eq!(echo, TEST_STR, "{case}");
            let pid: u32 = String::from_utf8(pid_line).unwrap()["pid ".len()..]
                .parse()
                .unwrap();
            assert_ne!(pid, std::process::id(), "{case}: served by a child");
            pids.insert(pid);
        }
        let _ = std::fs::remove_file(&client_path);
        assert_eq!(pids.len(), 3, "{case}: a child per datagram");
        let stats = running.stats.clone();
        wait_until(&format!("{case}: three served"), TIMEOUT, || {
            let c = stats.snapshot();
            c.completed == 3 && c.active == 0
        });
        let report = running.shutdown();
        assert_eq!((report.drained, report.cut), (0, 0), "{case}");
        match &addr {
            Address::Inet(a) => {
                UdpSocket::bind(a).expect("the port is free again");
            }
            Address::Unix(Some(path)) => assert!(!path.exists(), "{case}: file removed"),
            other => unreachable!("{other}"),
        }
        assert_eq!(child_processes(), [(own_pid, 'Z')], "{case}");
        assert_eq!(own.wait().unwrap().code(), Some(72), "{case}");
    }
}
