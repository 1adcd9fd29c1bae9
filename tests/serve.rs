//! The `serve` binary: its first line, its models, its sockets (TCP, IPv6,
//! Unix), its signals and drain, its timeouts and its errors.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::{
    client_command, run_with_input, serve, serve_command, serve_on, tutorial_program, wait_until,
    Peer, GREETING,
};

/// The first line on standard output is exactly
/// `serving echo on 127.0.0.1:PORT (event)` with the real port, and
/// that port answers.
#[test]
fn first_line_names_handler_address_and_mode() {
    let server = serve(&[]);
    let port = server
        .first_line
        .strip_prefix("serving echo on 127.0.0.1:")
        .and_then(|rest| rest.strip_suffix(" (event)"))
        .unwrap_or_else(|| panic!("first line {:?}", server.first_line));
    let port: u16 = port.parse().expect("a port number");
    assert_ne!(port, 0);
    assert_eq!(
        server.first_line,
        format!("serving echo on 127.0.0.1:{port} (event)")
    );
    let mut peer = Peer::greeted(&format!("127.0.0.1:{port}"));
    peer.send(b"ping\n");
    peer.expect("ping好\n".as_bytes());
}

/// The same conversation under every model that exists: the tutorial's
/// chat client and a line client get the same answers.
#[test]
fn every_model_serves_the_same_conversation() {
    for (args, mode) in [
        (&["--mode", "sync"][..], "sync"),
        (&["--mode", "threading"], "threading"),
        (&["--mode", "pool", "--workers", "2"], "pool"),
        (&["--mode", "forking", "--max-children", "4"], "forking"),
        (&["--mode", "prefork", "--workers", "2"], "prefork"),
        (
            &["--mode", "prefork", "--workers", "1", "--max-requests", "1"],
            "prefork",
        ),
        (&["--mode", "event", "--threads", "2"], "event"),
    ] {
        let server = serve(args);
        assert_eq!(
            server.first_line,
            format!("serving echo on {} ({mode})", server.addr)
        );
        let (host, port) = server.host_port();
        let mut chat = Command::new("python3");
        chat.arg(tutorial_program("chat_client.py"))
            .args([&host, &port])
            .env("PYTHONIOENCODING", "utf-8");
        let out = run_with_input(chat, "我\n你\n他\n".as_bytes());
        assert!(out.status.success(), "{mode}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "欢迎致电babyshen\n\
             请输入要发送的内容>>>：我好\n\
             请输入要发送的内容>>>：你好\n\
             请输入要发送的内容>>>：他好\n\
             请输入要发送的内容>>>：",
            "{mode}"
        );

        let mut peer = Peer::greeted(&server.addr);
        peer.send(b"a\nb\r\nc\n");
        peer.expect("a好\nb好\nc好\n".as_bytes());
        peer.send(b"q\n");
        peer.expect_eof();

        // Two clients one after the other (sync serves one at a time).
        let mut client = client_command();
        client.args(["echo", &server.addr]);
        let out = run_with_input(client, b"hello\nq\n");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "欢迎致电babyshen\nhello好\n",
            "{mode}"
        );
        assert_eq!(out.status.code(), Some(0), "{mode}");
    }
}

/// SIGTERM with ten chat clients connected, each greeted and answered, so
/// only between messages: the drain keeps every conversation (a chat's
/// request boundaries are the client's to know). New clients are refused
/// at once, each chat goes on (another message is answered after the
/// SIGTERM), the server waits while one is left, and exits 0 as soon as the
/// last one says `q`, long before the 10 s drain timeout.
#[test]
fn sigterm_keeps_chats_until_they_end_then_exits_0() {
    let mut server = serve(&["--drain-timeout", "10"]);
    let mut peers: Vec<Peer> = (0..10)
        .map(|i| {
            let mut peer = Peer::greeted(&server.addr);
            peer.send(format!("client {i}\n").as_bytes());
            peer.expect(format!("client {i}好\n").as_bytes());
            peer
        })
        .collect();
    let signalled = Instant::now();
    server.signal("TERM");
    wait_until_refused(&server.addr);
    for (i, peer) in peers.iter_mut().enumerate() {
        peer.send(format!("still {i}\n").as_bytes());
        peer.expect(format!("still {i}好\n").as_bytes());
    }
    let last = peers.pop().expect("ten peers");
    for peer in &mut peers {
        peer.send(b"q\n");
        peer.expect_eof();
    }
    assert!(
        server
            .child
            .try_wait()
            .expect("look at the server")
            .is_none(),
        "the server exited with a chat still open"
    );
    let mut last = last;
    let quit = Instant::now();
    last.send(b"q\n");
    last.expect_eof();
    let status = server.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{status}");
    let took = quit.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "exit {took:?} after the last q"
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(9),
        "the drain timeout ran out"
    );
}

/// Every model keeps a chat through the drain: greeted and answered, then
/// SIGTERM; new clients are refused (but under `sync`, whose one serving
/// thread is the chat's); another message is answered; `q` ends it and the
/// server exits 0 at once. Forked children and prefork workers are told of
/// the drain too, and a chat there goes on the same.
#[test]
fn sigterm_keeps_a_chat_in_every_model() {
    for (args, mode) in [
        (&["--mode", "sync"][..], "sync"),
        (&["--mode", "threading"], "threading"),
        (&["--mode", "pool", "--workers", "2"], "pool"),
        (&["--mode", "forking"], "forking"),
        (&["--mode", "prefork", "--workers", "2"], "prefork"),
        (&["--mode", "event", "--threads", "2"], "event"),
    ] {
        let mut server = serve(&[args, &["--drain-timeout", "10"]].concat());
        let mut peer = Peer::greeted(&server.addr);
        peer.send(b"hi\n");
        peer.expect("hi好\n".as_bytes());
        server.signal("TERM");
        if mode != "sync" {
            wait_until_refused(&server.addr);
        }
        peer.send(b"after\n");
        peer.expect("after好\n".as_bytes());
        assert!(
            server
                .child
                .try_wait()
                .expect("look at the server")
                .is_none(),
            "{mode}: exited with the chat open"
        );
        let quit = Instant::now();
        peer.send(b"q\n");
        peer.expect_eof();
        let status = server.wait(Duration::from_secs(5));
        assert_eq!(status.code(), Some(0), "{mode}: {status}");
        assert!(quit.elapsed() < Duration::from_secs(3), "{mode}");
    }
}

/// A chat still open at the drain deadline is cut (in a forked child:
/// SIGTERM at the deadline); the server exits 0 and the client reads end
/// of input. With `--drain-timeout 0` that is at once.
#[test]
fn a_chat_open_at_the_drain_deadline_is_cut() {
    for (args, at_least) in [
        (&["--mode", "forking", "--drain-timeout", "0.5"][..], 450),
        (&["--mode", "threading", "--drain-timeout", "0.5"], 450),
        (&["--mode", "threading", "--drain-timeout", "0"], 0),
        (&["--mode", "prefork", "--drain-timeout", "0"], 0),
        (&["--mode", "event", "--drain-timeout", "0.5"], 450),
        (
            &["--mode", "event", "--threads", "1", "--drain-timeout", "0"],
            0,
        ),
    ] {
        let case = args.join(" ");
        let mut server = serve(args);
        let mut peer = Peer::greeted(&server.addr);
        peer.send(b"hi\n");
        peer.expect("hi好\n".as_bytes());
        let started = Instant::now();
        server.signal("TERM");
        let status = server.wait(Duration::from_secs(5));
        assert_eq!(status.code(), Some(0), "{case}: {status}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(at_least) && took < Duration::from_secs(3),
            "{case}: exited {took:?} after SIGTERM"
        );
        peer.expect_eof();
    }
}

/// SIGINT (Ctrl-C) drains the same way: the chat goes on until the client
/// says `q`, then the server exits 0.
#[test]
fn sigint_exits_0() {
    let mut server = serve(&["--drain-timeout", "10"]);
    let mut peer = Peer::greeted(&server.addr);
    peer.send(b"hi\n");
    peer.expect("hi好\n".as_bytes());
    server.signal("INT");
    wait_until_refused(&server.addr);
    peer.send(b"after\n");
    peer.expect("after好\n".as_bytes());
    let quit = Instant::now();
    peer.send(b"q\n");
    peer.expect_eof();
    let status = server.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(quit.elapsed() < Duration::from_secs(3));
}

/// Waits until `addr` refuses connections: the server has closed its
/// listener, so it is draining.
fn wait_until_refused(addr: &str) {
    wait_until(Duration::from_secs(5), "the listener closes", || {
        std::net::TcpStream::connect(addr).is_err()
    });
}

/// A busy connection (in the middle of a line) is let finish during the
/// drain: it gets its answer; `q` ends it, and the server exits 0.
#[test]
fn drain_lets_a_busy_connection_finish() {
    let mut server = serve(&["--drain-timeout", "5"]);
    let mut peer = Peer::greeted(&server.addr);
    peer.send(b"x\n");
    peer.expect("x好\n".as_bytes());
    peer.send(b"par");
    peer.expect_silence(Duration::from_millis(300)); // the server holds "par"
    server.signal("TERM");
    wait_until_refused(&server.addr);
    peer.send(b"tial\n");
    peer.expect("partial好\n".as_bytes());
    peer.send(b"q\n");
    peer.expect_eof();
    let status = server.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{status}");
}

/// While a connection keeps the drain waiting (busy in the middle of a
/// line, or a chat between messages), a second SIGINT exits at once (130,
/// like a shell's Ctrl-C).
#[test]
fn second_sigint_exits_at_once() {
    for busy in [true, false] {
        let mut server = serve(&["--drain-timeout", "20"]);
        let mut peer = Peer::greeted(&server.addr);
        peer.send(b"x\n");
        peer.expect("x好\n".as_bytes());
        if busy {
            peer.send(b"par");
            peer.expect_silence(Duration::from_millis(300));
        }
        server.signal("INT");
        wait_until_refused(&server.addr);
        let started = Instant::now();
        server.signal("INT");
        let status = server.wait(Duration::from_secs(5));
        assert_eq!(status.code(), Some(130), "busy {busy}: {status}");
        assert!(started.elapsed() < Duration::from_secs(2), "busy {busy}");
    }
}

/// A port in use: exactly one line on standard error, exit 1.
#[test]
fn bind_in_use_is_one_line_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().unwrap().port();
    let mut command = serve_command();
    command.args(["--handler", "echo", "--bind", &format!("127.0.0.1:{port}")]);
    let out = run_with_input(command, b"");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("serve: cannot bind 127.0.0.1:{port}: address already in use\n")
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(out.status.code(), Some(1));
    drop(taken);
}

/// Usage errors exit 2 with clap's usage: an unknown flag, a bad value, a
/// missing --handler.
#[test]
fn usage_errors_exit_2() {
    for args in [
        &["--handler", "echo", "--no-such-flag"][..],
        &["--handler", "echo", "--mode", "bogus"],
        &["--handler", "echo", "--idle-timeout", "soon"],
        &["--handler", "echo", "--workers", "0"],
        &["--handler", "nope"],
        &[],
    ] {
        let mut command = serve_command();
        command.args(args);
        let out = run_with_input(command, b"");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(stderr.contains("try '--help'"), "{args:?}: {stderr}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "", "{args:?}");
    }
}

/// A handler refused on a non-loopback address with no port given names
/// the address with its own default port: 2121 for ftp, 9998 for shell
/// (ftp used to be told 9998, the shell's). Nothing is bound: exit 2.
#[test]
fn refusal_on_a_public_address_names_the_handlers_port() {
    for (handler, expected) in [
        (
            "ftp",
            "serve: no one could log in to ftp on 0.0.0.0:2121: give --user NAME:PASSWORD, \
             --users FILE or --anonymous (anonymous read-only access is on by default only \
             on loopback)\n",
        ),
        (
            "shell",
            "serve: refusing to serve shell on 0.0.0.0:9998 without a token: ",
        ),
    ] {
        let mut command = serve_command();
        command
            .args(["--handler", handler, "--bind", "0.0.0.0"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if handler == "shell" {
            // Only the tutorial's setting, no token at all, is refused
            // beyond loopback (a generated or given token may serve it).
            command.args(["--no-token", "--allow-root"]);
        }
        let out = run_with_input(command, b"");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{handler}: {stderr}");
        if handler == "ftp" {
            assert_eq!(stderr, expected);
        } else {
            assert!(stderr.starts_with(expected), "{stderr}");
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
        }
        assert_eq!(String::from_utf8_lossy(&out.stdout), "", "{handler}");
    }
}

/// `serve --help` names every flag, each with its default.
#[test]
fn help_names_every_flag_with_its_default() {
    let mut command = serve_command();
    command.arg("--help");
    let out = run_with_input(command, b"");
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).expect("UTF-8 help");
    for (flag, default) in [
        ("--bind <ADDR>", "9999 for echo,"),
        ("--bind <ADDR>", "2121 for ftp]"),
        ("--mode <MODE>", "[default: event; threading with --udp"),
        ("--workers <N>", "[default: 4 per CPU]"),
        ("--max-connections <N>", "[default: 1024]"),
        ("--idle-timeout <SECS>", "[default: 300]"),
        ("--drain-timeout <SECS>", "[default: 10]"),
        ("--greeting <TEXT>", "[default: 欢迎致电babyshen]"),
        ("--suffix <TEXT>", "[default: 好]"),
        ("--max-line <BYTES>", "[default: 65536]"),
        ("--root <DIR>", "[default: .]"),
        (
            "--max-per-ip <N>",
            "[default: 16 for ftp, none for echo and shell]",
        ),
        (
            "--login-timeout <SECS>",
            "[default: 60 for ftp, 10 for shell]",
        ),
        ("--message-timeout <SECS>", "[default: the idle timeout]"),
        ("--max-list-entries <N>", "[default: 100000]"),
        ("--passive-timeout <SECS>", "[default: 30]"),
    ] {
        let entry = help_entry(&help, flag);
        assert!(
            entry.contains(default),
            "{flag} does not say {default:?}:\n{entry}"
        );
    }
    for mode in ["sync", "threading", "pool", "event"] {
        assert!(help_entry(&help, "--mode <MODE>").contains(mode), "{mode}");
    }
}

/// The lines of `help` from the one naming `flag` to the next flag.
fn help_entry(help: &str, flag: &str) -> String {
    let mut lines = help.lines().skip_while(|line| !line.contains(flag));
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("--help does not mention {flag}:\n{help}"));
    // An entry starts "  -x, --flag" or "      --flag"; deeper lines
    // ("          - sync: ...") belong to the entry above.
    let rest = lines.take_while(|line| !(line.starts_with("  -") || line.starts_with("      -")));
    std::iter::once(first)
        .chain(rest)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A socket file path unique to this test run.
fn socket_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("serve-e2e-{}-{name}.sock", std::process::id()))
}

/// `--bind unix:PATH` serves over a Unix socket, with the first line naming
/// it; `client echo unix:PATH` talks to it; SIGTERM removes the file.
#[test]
fn unix_socket_serves_and_is_removed_after_sigterm() {
    let path = socket_path("echo");
    let _ = std::fs::remove_file(&path);
    let bind = format!("unix:{}", path.display());
    let mut server = serve_on(&bind, &[]);
    assert_eq!(server.first_line, format!("serving echo on {bind} (event)"));
    assert!(path.exists());

    let mut peer = Peer::connect_unix(&path);
    peer.expect(GREETING.as_bytes());
    peer.send("我".as_bytes());
    peer.expect("我好".as_bytes());
    peer.send(b"\nline\n");
    peer.expect("好\nline好\n".as_bytes());

    let mut client = client_command();
    client.args(["echo", &bind]);
    let out = run_with_input(client, b"hello\nq\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "欢迎致电babyshen\nhello好\n"
    );
    assert_eq!(out.status.code(), Some(0));

    server.signal("TERM");
    // The chat goes on through the drain, until the client ends it.
    peer.send(b"q\n");
    peer.expect_eof();
    let status = server.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(!path.exists(), "{} is still there", path.display());
}

/// `--bind [::1]:0` serves over IPv6 loopback, when the machine has one.
#[test]
fn ipv6_loopback() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback on this machine: skipping the IPv6 check");
        return;
    }
    let server = serve_on("[::1]:0", &[]);
    let port = server
        .first_line
        .strip_prefix("serving echo on [::1]:")
        .and_then(|rest| rest.strip_suffix(" (event)"))
        .unwrap_or_else(|| panic!("first line {:?}", server.first_line));
    let port: u16 = port.parse().expect("a port number");
    let mut peer = Peer::greeted(&format!("[::1]:{port}"));
    peer.send(b"v6\n");
    peer.expect("v6好\n".as_bytes());

    let mut client = client_command();
    client.args(["echo", &server.addr]);
    let out = run_with_input(client, b"hello\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "欢迎致电babyshen\nhello好\n"
    );
}

/// --idle-timeout 0.3: a silent client is disconnected (orderly end of
/// input) after about 0.3 s; a client that keeps talking is not.
#[test]
fn idle_timeout_disconnects_a_silent_client() {
    let server = serve(&["--idle-timeout", "0.3"]);
    let started = Instant::now();
    let mut silent = Peer::greeted(&server.addr);
    silent.expect_eof();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(3),
        "disconnected after {took:?}"
    );

    let mut talker = Peer::greeted(&server.addr);
    for i in 0..6 {
        std::thread::sleep(Duration::from_millis(100)); // pace: 0.6 s in all
        talker.send(format!("{i}\n").as_bytes());
        talker.expect(format!("{i}好\n").as_bytes());
    }
}
