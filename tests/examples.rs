//! The teaching examples, served to the tutorial's own clients.

use std::process::Command;

use crate::util::{example, run_with_input, tutorial_program, ServerProcess, TIMEOUT};

/// The tutorial's phone client sends one message without a newline and
/// prints the reply; the `upper` example answers it in upper case.
#[test]
fn upper_serves_the_tutorials_phone_client() {
    let mut command = Command::new(example("upper"));
    command.arg("127.0.0.1:0").env("RUST_LOG", "warn");
    let server = ServerProcess::start(command);
    assert!(
        server.first_line.starts_with("serving upper on 127.0.0.1:"),
        "{}",
        server.first_line
    );
    let (host, port) = server.host_port();
    for message in ["Hello World", "abc xyz 123", "hello wörld"] {
        let mut client = Command::new("python3");
        client
            .arg(tutorial_program("phone_client.py"))
            .args([&host, &port, message]);
        let out = run_with_input(client, b"");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let expected = format!("recv: {}\n", python_bytes(&message.to_ascii_uppercase()));
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    }
}

/// The `echo` example sends back each line, under each model.
#[test]
fn echo_example_answers_lines_in_every_model() {
    for model in [&["sync"][..], &["threading"], &["pool", "2"], &["event"]] {
        let mut command = Command::new(example("echo"));
        command
            .arg("127.0.0.1:0")
            .args(model)
            .env("RUST_LOG", "warn");
        let server = ServerProcess::start(command);
        let expected_mode = format!("({})", model[0]);
        assert!(
            server.first_line.ends_with(&expected_mode),
            "{}",
            server.first_line
        );
        let script = "import socket,sys\n\
            s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)\n\
            s.sendall(b'one\\ntwo\\n')\n\
            f = s.makefile('rb')\n\
            sys.stdout.write(f.readline().decode() + f.readline().decode())\n";
        let (host, port) = server.host_port();
        let mut client = Command::new("python3");
        client.args(["-c", script, &host, &port]);
        let out = run_with_input(client, b"");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "one\ntwo\n");
    }
}

/// The tutorial's programs in `examples/tutorial/` also talk to each
/// other, as in the tutorial: the phone client gets its message back in
/// upper case from the phone server, which then ends; the fixed shell
/// client gets a command's output from the fixed shell server.
#[test]
fn tutorial_clients_against_the_tutorials_servers() {
    let mut phone = Command::new("python3");
    phone
        .arg(tutorial_program("phone_server.py"))
        .args(["127.0.0.1", "0"])
        .env("PYTHONIOENCODING", "utf-8");
    let mut server = ServerProcess::start(phone);
    let (host, port) = server.host_port();
    let mut client = Command::new("python3");
    client
        .arg(tutorial_program("phone_client.py"))
        .args([&host, &port]);
    let out = run_with_input(client, b"");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "recv: b'HELLO WORLD'\n"
    );
    assert!(server.wait(TIMEOUT).success(), "phone_server.py failed");

    let mut shell = Command::new("python3");
    shell
        .arg(tutorial_program("shell_server.py"))
        .args(["127.0.0.1", "0"])
        .env("PYTHONIOENCODING", "utf-8");
    let server = ServerProcess::start(shell);
    let (host, port) = server.host_port();
    let mut client = Command::new("python3");
    client
        .arg(tutorial_program("shell_client.py"))
        .args([&host, &port])
        .env("PYTHONIOENCODING", "utf-8");
    let out = run_with_input(client, b"echo hello\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        ">>：命令结果大小： b'6'\ncmd res receive done.... 6\nhello\n\n>>："
    );
}

/// How Python prints a bytes object of this text.
fn python_bytes(text: &str) -> String {
    let mut out = String::from("b'");
    for b in text.bytes() {
        match b {
            b'\'' => out.push_str("\\'"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('\'');
    out
}
