//! The Echo handler (the tutorial's chat bot) served by the real `serve`
//! binary, driven by the tutorial's own chat client, by raw line and
//! message clients, and by the real `client echo`; and `client echo`
//! against the tutorial's own Python server.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::{
    client_command, closed_port, run_with_input, serve, tutorial_program, Peer, ServerProcess,
    GREETING,
};

/// The tutorial's prompt, printed by its client before each message.
const PROMPT: &str = "请输入要发送的内容>>>：";

/// Runs the tutorial's chat client against `server` with `input` typed on
/// its standard input; returns its standard output.
fn tutorial_chat(server: &ServerProcess, input: &str) -> String {
    let (host, port) = server.host_port();
    let mut client = Command::new("python3");
    client
        .arg(tutorial_program("chat_client.py"))
        .args([&host, &port])
        .env("PYTHONIOENCODING", "utf-8");
    let out = run_with_input(client, input.as_bytes());
    assert!(
        out.status.success(),
        "chat_client.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    String::from_utf8(out.stdout).expect("the transcript is UTF-8")
}

threads_and_events!(
    tutorial_chat_client_gets_the_tutorials_transcript,
    tutorial_chat_client_gets_the_tutorials_transcript_event,
    tutorial_chat_client_gets_the_tutorials_transcript_in
);

/// The tutorial's own transcript, byte for byte: the chat client sends
/// each message without a newline and prints each answer.
fn tutorial_chat_client_gets_the_tutorials_transcript_in(mode: &[&str]) {
    let server = serve(mode);
    let transcript = tutorial_chat(&server, "我\n你\n他\n");
    assert_eq!(
        transcript,
        "欢迎致电babyshen\n\
         请输入要发送的内容>>>：我好\n\
         请输入要发送的内容>>>：你好\n\
         请输入要发送的内容>>>：他好\n\
         请输入要发送的内容>>>："
    );
}

threads_and_events!(
    q_ends_the_conversation_in_message_mode,
    q_ends_the_conversation_in_message_mode_event,
    q_ends_the_conversation_in_message_mode_in
);

/// "q" from the tutorial's client ends the conversation; a raw client that
/// sends the same "q" (no newline) and keeps its socket open sees the
/// server close: end of input.
fn q_ends_the_conversation_in_message_mode_in(mode: &[&str]) {
    let server = serve(mode);
    let transcript = tutorial_chat(&server, "q\n");
    assert_eq!(transcript, format!("{GREETING}\n{PROMPT}"));

    let mut peer = Peer::greeted(&server.addr);
    peer.send("我".as_bytes());
    peer.expect("我好".as_bytes());
    peer.send(b"q");
    peer.expect_eof();
}

threads_and_events!(
    line_client_gets_one_answer_per_line,
    line_client_gets_one_answer_per_line_event,
    line_client_gets_one_answer_per_line_in
);

/// A line client gets one answer per line, each on its own line, also when
/// three lines (one ending in CRLF) arrive in one write.
fn line_client_gets_one_answer_per_line_in(mode: &[&str]) {
    let server = serve(mode);
    let mut peer = Peer::greeted(&server.addr);
    peer.send(b"hello\n");
    peer.expect("hello好\n".as_bytes());
    peer.send(b"a\nb\r\nc\n");
    peer.expect("a好\nb好\nc好\n".as_bytes());
    peer.send("我\r\n\n".as_bytes());
    peer.expect("我好\n好\n".as_bytes());

    // Three lines as the very first write: line mode from the start.
    let mut peer = Peer::greeted(&server.addr);
    peer.send(b"a\nb\r\nc\n");
    peer.expect("a好\nb好\nc好\n".as_bytes());
    peer.send(b"q\n");
    peer.expect_eof();
}

threads_and_events!(
    q_line_closes_the_connection,
    q_line_closes_the_connection_event,
    q_line_closes_the_connection_in
);

/// "q\n" and "q\r\n" close the connection: the client reads end of input.
/// Lines after a "q" in the same write are not answered.
fn q_line_closes_the_connection_in(mode: &[&str]) {
    let server = serve(mode);
    for quit in [&b"q\n"[..], b"q\r\n", b"x\nq\nnever\n"] {
        let mut peer = Peer::greeted(&server.addr);
        peer.send(b"hi\n");
        peer.expect("hi好\n".as_bytes());
        peer.send(quit);
        if quit.starts_with(b"x\n") {
            peer.expect("x好\n".as_bytes());
        }
        peer.expect_eof();
    }
}

threads_and_events!(
    partial_line_waits_for_its_end,
    partial_line_waits_for_its_end_event,
    partial_line_waits_for_its_end_in
);

/// In line mode a partial line waits for its end: no answer until the
/// newline comes, then one answer for the whole line.
fn partial_line_waits_for_its_end_in(mode: &[&str]) {
    let server = serve(mode);
    let mut peer = Peer::greeted(&server.addr);
    peer.send(b"first\n");
    peer.expect("first好\n".as_bytes());
    peer.send(b"par");
    peer.expect_silence(Duration::from_millis(300));
    peer.send(b"tial\n");
    peer.expect("partial好\n".as_bytes());
}

threads_and_events!(
    last_line_without_newline_is_answered_at_end_of_input,
    last_line_without_newline_is_answered_at_end_of_input_event,
    last_line_without_newline_is_answered_at_end_of_input_in
);

/// In line mode the last line, cut short by the end of input (the client
/// half-closes), is answered like a line, and then the server closes.
fn last_line_without_newline_is_answered_at_end_of_input_in(mode: &[&str]) {
    let server = serve(mode);
    let mut peer = Peer::greeted(&server.addr);
    peer.send(b"one\n");
    peer.expect("one好\n".as_bytes());
    peer.send(b"tail");
    peer.shutdown_write();
    peer.expect("tail好\n".as_bytes());
    peer.expect_eof();
}

threads_and_events!(
    split_character_in_line_mode_comes_back_whole,
    split_character_in_line_mode_comes_back_whole_event,
    split_character_in_line_mode_comes_back_whole_in
);

/// Line mode: a character split across two writes (two TCP segments, Nagle
/// off) comes back whole, once.
fn split_character_in_line_mode_comes_back_whole_in(mode: &[&str]) {
    let server = serve(mode);
    let wo = "我".as_bytes(); // e6 88 91
    for cut in 1..wo.len() {
        let mut peer = Peer::greeted(&server.addr);
        peer.send(b"line mode\n");
        peer.expect("line mode好\n".as_bytes());
        peer.send(&wo[..cut]);
        std::thread::sleep(Duration::from_millis(20)); // force two segments
        let mut rest = wo[cut..].to_vec();
        rest.push(b'\n');
        peer.send(&rest);
        peer.expect("我好\n".as_bytes());
        peer.send(b"q\n");
        peer.expect_eof(); // and nothing else came before the end
    }
}

threads_and_events!(
    split_character_in_message_mode_comes_back_whole,
    split_character_in_message_mode_comes_back_whole_event,
    split_character_in_message_mode_comes_back_whole_in
);

/// Message mode (the tutorial's client, no newline): a read that ends
/// inside a character waits for the rest of it (the handler waits up to
/// 500 ms), so the answer is exactly "我好", not two mangled answers.
fn split_character_in_message_mode_comes_back_whole_in(mode: &[&str]) {
    let server = serve(mode);
    let wo = "我".as_bytes();
    for cut in 1..wo.len() {
        let mut peer = Peer::greeted(&server.addr);
        peer.send(&wo[..cut]);
        std::thread::sleep(Duration::from_millis(20)); // force two segments
        peer.send(&wo[cut..]);
        peer.expect("我好".as_bytes());
        peer.send(b"q");
        peer.expect_eof(); // nothing more was answered
    }
}

threads_and_events!(
    unfinished_character_is_answered_after_a_bounded_wait,
    unfinished_character_is_answered_after_a_bounded_wait_event,
    unfinished_character_is_answered_after_a_bounded_wait_in
);

/// A message that ends with the start of a character that never completes
/// is answered as it came once the wait (500 ms) is over; the wait is
/// bounded.
fn unfinished_character_is_answered_after_a_bounded_wait_in(mode: &[&str]) {
    let server = serve(mode);
    let mut peer = Peer::greeted(&server.addr);
    let started = Instant::now();
    peer.send(&[b'a', 0xE6]);
    peer.expect(&[b'a', 0xE6, 0xE5, 0xA5, 0xBD]); // "a", e6, "好"
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(3),
        "answered after {waited:?}"
    );
    peer.send(b"q");
    peer.expect_eof();
}

threads_and_events!(
    a_long_first_message_comes_back_whole,
    a_long_first_message_comes_back_whole_event,
    a_long_first_message_comes_back_whole_in
);

/// A 60,000-byte message as the first thing a client sends (one write,
/// under the 64 KiB limit) comes back whole, with the suffix once at its
/// end: a read that filled the server's 16 KiB buffer does not end the
/// message (it used to be answered as four messages, the first cut after
/// byte 16,384). Without a newline (message mode), and with one (a line),
/// in text whose characters straddle the 16 KiB reads.
fn a_long_first_message_comes_back_whole_in(mode: &[&str]) {
    let server = serve(mode);
    let ascii: Vec<u8> = (0..60_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut peer = Peer::greeted(&server.addr);
    peer.send(&ascii);
    peer.expect(&[&ascii[..], "好".as_bytes()].concat());
    peer.send(b"q");
    peer.expect_eof(); // and nothing else was answered

    let chinese = "我".repeat(20_000).into_bytes(); // 60,000 bytes
    let mut peer = Peer::greeted(&server.addr);
    peer.send(&[&chinese[..], b"\n"].concat());
    peer.expect(&[&chinese[..], "好\n".as_bytes()].concat());
    peer.send(b"short\n"); // still in line mode
    peer.expect("short好\n".as_bytes());
    peer.send(b"q\n");
    peer.expect_eof();
}

threads_and_events!(
    a_message_the_size_of_the_read_buffer_is_answered,
    a_message_the_size_of_the_read_buffer_is_answered_event,
    a_message_the_size_of_the_read_buffer_is_answered_in
);

/// A message of exactly 16 KiB fills the server's read buffer with nothing
/// behind it: the server waits briefly (500 ms) for more, then answers
/// the message whole; the client is not left waiting for ever.
fn a_message_the_size_of_the_read_buffer_is_answered_in(mode: &[&str]) {
    let server = serve(mode);
    let message = vec![b'x'; 16 * 1024];
    let mut peer = Peer::greeted(&server.addr);
    let started = Instant::now();
    peer.send(&message);
    peer.expect(&[&message[..], "好".as_bytes()].concat());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered after {:?}",
        started.elapsed()
    );
    peer.send(b"q");
    peer.expect_eof();
}

threads_and_events!(
    over_long_message_gets_one_error_line_then_eof,
    over_long_message_gets_one_error_line_then_eof_event,
    over_long_message_gets_one_error_line_then_eof_in
);

/// A message over --max-line (no newline: message mode) gets one error
/// line and an orderly end of input, as an over-long line does.
fn over_long_message_gets_one_error_line_then_eof_in(mode: &[&str]) {
    let server = serve(&[mode, &["--max-line", "1024"]].concat());
    let mut peer = Peer::greeted(&server.addr);
    peer.send(b"short");
    peer.expect("short好".as_bytes());
    peer.send(&[b'x'; 20_000]);
    peer.expect(b"error: message longer than 1024 bytes\n");
    peer.expect_eof();
}

threads_and_events!(
    invalid_utf8_is_echoed_as_it_came,
    invalid_utf8_is_echoed_as_it_came_event,
    invalid_utf8_is_echoed_as_it_came_in
);

/// Bytes, not strings: invalid UTF-8 comes back exactly as it came, with
/// the suffix's bytes after it, in message mode and in line mode.
fn invalid_utf8_is_echoed_as_it_came_in(mode: &[&str]) {
    let server = serve(mode);
    let suffix = "好".as_bytes();

    let mut peer = Peer::greeted(&server.addr);
    peer.send(&[0xFF, 0xFE, b'x']);
    peer.expect(&[&[0xFF, 0xFE, b'x'][..], suffix].concat());
    peer.send(b"q");
    peer.expect_eof();

    let mut peer = Peer::greeted(&server.addr);
    peer.send(&[0xFF, 0xFE, b'x', b'\n', 0xC0, b'\r', b'\n']);
    peer.expect(
        &[
            &[0xFF, 0xFE, b'x'][..],
            suffix,
            b"\n",
            &[0xC0],
            suffix,
            b"\n",
        ]
        .concat(),
    );
}

threads_and_events!(
    over_long_line_gets_one_error_line_then_eof,
    over_long_line_gets_one_error_line_then_eof_event,
    over_long_line_gets_one_error_line_then_eof_in
);

/// An over-long line (--max-line 1024; 2000 bytes, then the newline in a
/// second write) gets exactly one error line and then an orderly end of
/// input; the server goes on serving the next client.
fn over_long_line_gets_one_error_line_then_eof_in(mode: &[&str]) {
    let server = serve(&[mode, &["--max-line", "1024"]].concat());
    let mut peer = Peer::greeted(&server.addr);
    peer.send(b"short\n"); // line mode
    peer.expect("short好\n".as_bytes());
    peer.send(&[b'x'; 2000]);
    peer.send(b"\n");
    peer.expect(b"error: line longer than 1024 bytes\n");
    peer.expect_eof();

    let mut next = Peer::greeted(&server.addr);
    next.send(b"still here\n");
    next.expect("still here好\n".as_bytes());
}

threads_and_events!(
    over_long_line_with_input_behind_it_still_ends_in_eof,
    over_long_line_with_input_behind_it_still_ends_in_eof_event,
    over_long_line_with_input_behind_it_still_ends_in_eof_in
);

/// The same over-long line, sent by a client that pipelines: the line and
/// more input behind it in one write (more than the server reads at
/// once). The client still gets the error line and an orderly end of
/// input, not a connection reset.
fn over_long_line_with_input_behind_it_still_ends_in_eof_in(mode: &[&str]) {
    let server = serve(&[mode, &["--max-line", "1024"]].concat());
    let mut peer = Peer::greeted(&server.addr);
    peer.send(b"short\n");
    peer.expect("short好\n".as_bytes());
    let mut burst = vec![b'x'; 100_000];
    burst.extend_from_slice(b"\nafter\n");
    peer.send(&burst);
    peer.expect(b"error: line longer than 1024 bytes\n");
    peer.expect_eof();

    let mut next = Peer::greeted(&server.addr);
    next.send(b"still here\n");
    next.expect("still here好\n".as_bytes());
}

threads_and_events!(
    greeting_and_suffix_are_configurable,
    greeting_and_suffix_are_configurable_event,
    greeting_and_suffix_are_configurable_in
);

/// --greeting and --suffix replace the tutorial's, in both modes.
fn greeting_and_suffix_are_configurable_in(mode: &[&str]) {
    let server = serve(&[mode, &["--greeting", "hello, 世界", "--suffix", "!!"]].concat());
    let mut peer = Peer::connect(&server.addr);
    peer.expect("hello, 世界".as_bytes());
    peer.send(b"hi");
    peer.expect(b"hi!!");
    peer.send(b"one\ntwo\n");
    peer.expect(b"one!!\ntwo!!\n");

    let mut client = client_command();
    client.args(["echo", &server.addr]);
    let out = run_with_input(client, "你\nq\n".as_bytes());
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello, 世界\n你!!\n");
}

threads_and_events!(
    client_echo_piped_against_serve,
    client_echo_piped_against_serve_event,
    client_echo_piped_against_serve_in
);

/// `client echo` with piped input (no prompt): prints the greeting and one
/// answer per line, stops at "q", exits 0.
fn client_echo_piped_against_serve_in(mode: &[&str]) {
    let server = serve(mode);
    let mut client = client_command();
    client.args(["echo", &server.addr]);
    let out = run_with_input(client, b"hello\nworld\nq\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "欢迎致电babyshen\nhello好\nworld好\n"
    );
    assert_eq!(out.status.code(), Some(0));

    // End of input quits too; "q" quits before the lines after it.
    for (input, expected) in [
        ("我\n", "欢迎致电babyshen\n我好\n"),
        ("a\nq\nb\n", "欢迎致电babyshen\na好\n"),
        ("", "欢迎致电babyshen\n"),
    ] {
        let mut client = client_command();
        client.args(["echo", &server.addr]);
        let out = run_with_input(client, input.as_bytes());
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "input {input:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
        assert_eq!(out.status.code(), Some(0), "input {input:?}");
    }
}

/// `client echo` against a port nobody listens on: one line on standard
/// error, exit 1.
#[test]
fn client_echo_connection_refused_is_one_line_exit_1() {
    let port = closed_port();
    let addr = format!("127.0.0.1:{port}");
    let mut client = client_command();
    client.args(["echo", &addr]);
    let out = run_with_input(client, b"hello\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "client: cannot connect to {addr}: connection refused"
        )),
        "{stderr:?}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.ends_with('\n'), "{stderr:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(out.status.code(), Some(1));
}

/// `client echo` speaks the tutorial's protocol: against the tutorial's own
/// Python server (`examples/tutorial/chat_server.py`) it prints the same
/// transcript, and its "q" ends the server's loop for that client, so the
/// server (one client at a time) serves the next one.
#[test]
fn client_echo_against_the_tutorials_python_server() {
    let mut python = Command::new("python3");
    python
        .arg(tutorial_program("chat_server.py"))
        .args(["127.0.0.1", "0"])
        .env("PYTHONIOENCODING", "utf-8");
    let server = ServerProcess::start(python);
    assert!(
        server.first_line.starts_with("listening on 127.0.0.1:"),
        "{}",
        server.first_line
    );
    for input in ["hello\n我\nworld\nq\n", "again\nq\n"] {
        let mut client = client_command();
        client.args(["echo", &server.addr]);
        let out = run_with_input(client, input.as_bytes());
        assert_eq!(String::from_utf8_lossy(&out.stderr), "");
        let answers: String = input
            .lines()
            .take_while(|line| *line != "q")
            .map(|line| format!("{line}好\n"))
            .collect();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("欢迎致电babyshen\n{answers}")
        );
        assert_eq!(out.status.code(), Some(0));
    }
}
