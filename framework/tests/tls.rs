//! TLS ([`Builder::tls`], [`Stream::upgrade_tls`]): echo over TLS under
//! every model with a rustls client, what a TLS server does with clients
//! that are not (garbage, a stall, a hang-up in the middle of a record),
//! an upgrade in the middle of a plain conversation, from both sides, and
//! session resumption. Certificates are made here, with rcgen.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, StreamOwned};
use socketserver::tls::{self, TlsFailure};
use socketserver::{Builder, Model, RequestHandler, Server, Stream, WhenDraining};

use crate::util::{
    forking_allowed, isolated, serve, wait_until, Chat, Running, BYE, EVENT, EVENT_ONE_LOOP,
    TIMEOUT,
};

use socketserver::tls::rustls;

/// A self-signed certificate for `localhost` and 127.0.0.1, and its key.
struct Identity {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    cert_pem: String,
    key_pem: String,
}

fn identity() -> Identity {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("make a self-signed certificate");
    Identity {
        cert: made.cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()),
        cert_pem: made.cert.pem(),
        key_pem: made.signing_key.serialize_pem(),
    }
}

impl Identity {
    fn server_config(&self) -> Arc<ServerConfig> {
        let config = ServerConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()
            .expect("default versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert.clone()],
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )
            .expect("a server configuration");
        Arc::new(config)
    }

    /// A client that trusts this certificate alone.
    fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.clone()).expect("add the root");
        let config = ClientConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()
            .expect("default versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}

/// Echoes lines; `version?` is answered with the negotiated version and
/// `kind?` with the handshake's kind (full or resumed).
#[derive(Clone)]
struct TlsEcho;

impl RequestHandler for TlsEcho {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        while let Some(line) = stream.next_line()? {
            match line.as_str() {
                "version?\n" => {
                    let answer = format!("{:?} {:?}\n", stream.is_tls(), stream.tls_version());
                    stream.write_all(answer.as_bytes())?;
                }
                "kind?\n" => {
                    let answer = format!("{:?}\n", stream.tls_handshake_kind());
                    stream.write_all(answer.as_bytes())?;
                }
                _ => stream.write_all(line.as_bytes())?,
            }
        }
        Ok(())
    }
}

type TlsClient = BufReader<StreamOwned<ClientConnection, TcpStream>>;

fn inet(running: &Running) -> SocketAddr {
    running.addr.as_inet().expect("a TCP server")
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s
}

/// A rustls client over a TCP stream with timeouts, for `localhost`.
fn tls_client(addr: SocketAddr, config: &Arc<ClientConfig>) -> TlsClient {
    let conn = ClientConnection::new(Arc::clone(config), "localhost".try_into().unwrap())
        .expect("a client connection");
    BufReader::new(StreamOwned::new(conn, tcp(addr)))
}

fn ask(client: &mut TlsClient, line: &str) -> String {
    client.get_mut().write_all(line.as_bytes()).expect("send");
    let mut answer = String::new();
    client.read_line(&mut answer).expect("read the answer");
    answer
}

/// The rest of a TLS conversation, which must end with `close_notify`.
fn close(mut client: TlsClient) {
    client.get_mut().conn.send_close_notify();
    client.get_mut().flush().expect("send close_notify");
    let mut rest = Vec::new();
    client
        .read_to_end(&mut rest)
        .expect("the server's close_notify");
    assert_eq!(rest, b"");
}

/// One conversation: an echo, the version, then the end.
fn converse_over_tls(addr: SocketAddr, config: &Arc<ClientConfig>, case: &str) {
    let mut client = tls_client(addr, config);
    assert_eq!(
        ask(&mut client, "hello over tls\n"),
        "hello over tls\n",
        "{case}"
    );
    assert_eq!(
        ask(&mut client, "version?\n"),
        "true Some(TLSv1_3)\n",
        "{case}"
    );
    close(client);
}

/// Echo over TLS with a rustls client, under the models of one process;
/// counted as completed, with no TLS failure.
#[test]
fn echo_over_tls_in_thread_models() {
    let id = identity();
    let client = id.client_config();
    for model in [
        Model::Sync,
        Model::Threading,
        Model::Pool {
            workers: 2,
            queue: 2,
        },
        EVENT,
        // One loop: a handshake that waits holds nothing but its coroutine.
        EVENT_ONE_LOOP,
    ] {
        let case = format!("{model:?}");
        let running = serve(bind(TlsEcho).tls(id.server_config()).model(model));
        for _ in 0..2 {
            converse_over_tls(inet(&running), &client, &case);
        }
        let stats = running.stats.clone();
        wait_until(&format!("{case}: two completed"), TIMEOUT, || {
            stats.snapshot().completed == 2
        });
        let c = stats.snapshot();
        assert_eq!((c.tls_failures, c.failed, c.timed_out), (0, 0, 0), "{case}");
        // The counters hold the decrypted bytes: two conversations of
        // "hello over tls\n" and "version?\n" each way, plus the answers.
        assert_eq!(c.bytes_read, 2 * (15 + 9), "{case}");
        assert_eq!(c.bytes_written, 2 * (15 + 19), "{case}");
        running.shutdown();
    }
}

/// The same under the process models: the handshake runs in the forked
/// child or the prefork worker, and a failed one is counted in the parent.
#[test]
fn echo_over_tls_in_process_models() {
    if !isolated("tls::echo_over_tls_in_process_models") {
        return;
    }
    let id = identity();
    let client = id.client_config();
    for model in [
        Model::Forking { max_children: 4 },
        Model::Prefork {
            workers: 2,
            max_requests: None,
        },
    ] {
        let case = format!("{model:?}");
        let builder = forking_allowed(bind(TlsEcho));
        let running = serve(builder.tls(id.server_config()).model(model));
        converse_over_tls(inet(&running), &client, &case);
        let mut garbage = tcp(inet(&running));
        garbage.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        read_until_closed(&mut garbage, &case);
        converse_over_tls(inet(&running), &client, &case);
        let stats = running.stats.clone();
        wait_until(&format!("{case}: counted"), TIMEOUT, || {
            let c = stats.snapshot();
            (c.completed, c.tls_failures, c.active) == (2, 1, 0)
        });
        assert_eq!(stats.snapshot().failed, 0, "{case}");
        running.shutdown();
    }
}

fn bind<H: RequestHandler>(handler: H) -> Builder<H> {
    Server::bind("127.0.0.1:0", handler)
}

/// Reads what the server sends until it closes; returns it.
fn read_until_closed(s: &mut TcpStream, case: &str) -> Vec<u8> {
    let mut got = Vec::new();
    s.read_to_end(&mut got)
        .unwrap_or_else(|e| panic!("{case}: the server closes: {e}"));
    got
}

/// The first bytes a rustls client sends: its ClientHello record.
fn client_hello(config: &Arc<ClientConfig>) -> Vec<u8> {
    let mut conn = ClientConnection::new(Arc::clone(config), "localhost".try_into().unwrap())
        .expect("a client connection");
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).expect("the ClientHello");
    assert_eq!(hello[0], 22, "a handshake record");
    hello
}

/// A client that sends an HTTP request instead of a ClientHello gets a
/// TLS alert and the end of the connection; it is counted, and the server
/// goes on serving TLS clients.
#[test]
fn garbage_instead_of_a_client_hello() {
    let id = identity();
    let running = serve(bind(TlsEcho).tls(id.server_config()).threading());
    let mut garbage = tcp(inet(&running));
    garbage.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let got = read_until_closed(&mut garbage, "garbage");
    // One alert record: type 21, TLS 1.2 framing, 2 bytes: fatal (2),
    // decode_error (50)... whatever rustls chose, it is a fatal alert.
    assert_eq!(&got[..3], [21, 3, 3], "an alert record: {got:?}");
    assert_eq!(got.len(), 7, "one alert: {got:?}");
    assert_eq!(got[5], 2, "fatal: {got:?}");
    let stats = running.stats.clone();
    wait_until("the failure counted", TIMEOUT, || {
        stats.snapshot().tls_failures == 1
    });
    converse_over_tls(inet(&running), &id.client_config(), "after garbage");
    wait_until("the next client served", TIMEOUT, || {
        stats.snapshot().completed == 1
    });
    let c = stats.snapshot();
    assert_eq!((c.tls_failures, c.failed, c.timed_out), (1, 0, 0));
    running.shutdown();
}

/// A client that sends half a ClientHello and waits is dropped at the idle
/// timeout; meanwhile, other clients are served (the accept loop never
/// waits for a handshake).
#[test]
fn a_stall_in_the_handshake_is_cut_at_the_idle_timeout() {
    let id = identity();
    let client = id.client_config();
    for model in [
        Model::Threading,
        Model::Pool {
            workers: 2,
            queue: 2,
        },
        EVENT,
        // One loop: a handshake that waits holds nothing but its coroutine.
        EVENT_ONE_LOOP,
    ] {
        let case = format!("{model:?}");
        let idle = Duration::from_secs(2);
        let running = serve(
            bind(TlsEcho)
                .tls(id.server_config())
                .model(model)
                .idle_timeout(Some(idle)),
        );
        let hello = client_hello(&client);
        let mut stalled = tcp(inet(&running));
        let began = Instant::now();
        stalled.write_all(&hello[..hello.len() / 2]).unwrap();
        // While it stalls, three whole conversations.
        for _ in 0..3 {
            converse_over_tls(inet(&running), &client, &case);
        }
        let stats = running.stats.clone();
        wait_until(&format!("{case}: three completed"), TIMEOUT, || {
            stats.snapshot().completed == 3
        });
        assert_eq!(
            stats.snapshot().tls_failures,
            0,
            "{case}: three served while the stalled one waits"
        );
        let got = read_until_closed(&mut stalled, &case);
        let waited = began.elapsed();
        assert_eq!(got, b"", "{case}: nothing said to a stalled client");
        assert!(
            waited >= idle,
            "{case}: cut after {waited:?}, before {idle:?}"
        );
        assert!(waited < idle + TIMEOUT / 2, "{case}: cut after {waited:?}");
        wait_until(&format!("{case}: counted"), TIMEOUT, || {
            let c = stats.snapshot();
            (c.completed, c.tls_failures) == (3, 1)
        });
        running.shutdown();
    }
}

/// A client that trickles its ClientHello a byte at a time, always within
/// the idle timeout, is cut when the handshake's total time (the message
/// timeout) runs out.
#[test]
fn a_trickled_handshake_is_cut_at_the_message_timeout() {
    let id = identity();
    let total = Duration::from_millis(700);
    let running = serve(
        bind(TlsEcho)
            .tls(id.server_config())
            .idle_timeout(Some(TIMEOUT))
            .message_timeout(Some(total)),
    );
    let hello = client_hello(&id.client_config());
    let mut trickler = tcp(inet(&running));
    let began = Instant::now();
    let mut sent = 0;
    let cut = loop {
        match trickler.write_all(&hello[sent..sent + 1]) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < hello.len(), "the whole ClientHello went through");
        thread::sleep(Duration::from_millis(100));
    };
    let waited = began.elapsed();
    assert!(
        matches!(
            cut.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ),
        "{cut}"
    );
    assert!(waited >= total, "cut after {waited:?}");
    let stats = running.stats.clone();
    wait_until("counted", TIMEOUT, || stats.snapshot().tls_failures == 1);
    running.shutdown();
}

/// A client that hangs up in the middle of its ClientHello record is
/// counted; the server goes on.
#[test]
fn a_close_in_the_middle_of_a_record() {
    let id = identity();
    let client = id.client_config();
    let running = serve(bind(TlsEcho).tls(id.server_config()));
    let hello = client_hello(&client);
    let mut quitter = tcp(inet(&running));
    quitter.write_all(&hello[..20]).unwrap();
    quitter.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_until_closed(&mut quitter, "quitter"), b"");
    let stats = running.stats.clone();
    wait_until("counted", TIMEOUT, || stats.snapshot().tls_failures == 1);
    converse_over_tls(inet(&running), &client, "after the quitter");
    wait_until("served", TIMEOUT, || stats.snapshot().completed == 1);
    running.shutdown();
}

/// A plain conversation that turns into TLS on `STARTTLS`, as FTP's
/// `AUTH TLS`: the plain answer goes out first, then the handshake.
#[derive(Clone)]
struct StartTls(Arc<ServerConfig>);

impl RequestHandler for StartTls {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        while let Some(line) = stream.next_line()? {
            if line == "STARTTLS\n" {
                stream.write_all(b"go ahead\n")?;
                stream.upgrade_tls(Arc::clone(&self.0))?;
                continue;
            }
            let answer = format!("{} {line}", if stream.is_tls() { "tls" } else { "plain" });
            stream.write_all(answer.as_bytes())?;
        }
        Ok(())
    }
}

/// The server side of the upgrade, with a rustls client.
#[test]
fn upgrade_in_the_middle_of_a_conversation() {
    let id = identity();
    let running = serve(bind(StartTls(id.server_config())));
    let mut plain = BufReader::new(tcp(inet(&running)));
    let mut line = String::new();
    plain.get_mut().write_all(b"hello\nSTARTTLS\n").unwrap();
    plain.read_line(&mut line).unwrap();
    assert_eq!(line, "plain hello\n");
    line.clear();
    plain.read_line(&mut line).unwrap();
    assert_eq!(line, "go ahead\n");
    assert_eq!(
        plain.buffer(),
        b"",
        "nothing after the answer before the handshake"
    );
    let conn = ClientConnection::new(id.client_config(), "localhost".try_into().unwrap()).unwrap();
    let mut secure = BufReader::new(StreamOwned::new(conn, plain.into_inner()));
    assert_eq!(ask(&mut secure, "secret\n"), "tls secret\n");
    close(secure);
    let stats = running.stats.clone();
    wait_until("completed", TIMEOUT, || stats.snapshot().completed == 1);
    assert_eq!(stats.snapshot().tls_failures, 0);
    running.shutdown();
}

/// Both sides of the upgrade with this crate's `Stream`, and what the
/// client learns of a certificate it does not trust.
#[test]
fn upgrade_on_both_sides_with_stream() {
    let id = identity();
    let running = serve(bind(StartTls(id.server_config())));
    let addr = inet(&running);

    let mut stream = Stream::try_from(tcp(addr)).expect("a connected socket");
    stream.write_all(b"STARTTLS\n").unwrap();
    assert_eq!(stream.next_line().unwrap().as_deref(), Some("go ahead\n"));
    let name = ServerName::IpAddress(addr.ip().into());
    stream
        .upgrade_client_tls(id.client_config(), name.clone())
        .expect("the client handshake");
    assert!(stream.is_tls());
    assert_eq!(stream.tls_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    stream.write_all(b"over stream\n").unwrap();
    assert_eq!(
        stream.next_line().unwrap().as_deref(),
        Some("tls over stream\n")
    );
    stream.shutdown_write().unwrap();
    assert_eq!(stream.next_line().unwrap(), None);

    // A client that trusts no authority: the handshake fails with the
    // reason inside.
    let trusts_nobody = Arc::new(
        ClientConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth(),
    );
    let mut stream = Stream::try_from(tcp(addr)).expect("a connected socket");
    stream.write_all(b"STARTTLS\n").unwrap();
    assert_eq!(stream.next_line().unwrap().as_deref(), Some("go ahead\n"));
    let error = stream
        .upgrade_client_tls(trusts_nobody, name)
        .expect_err("an untrusted certificate");
    assert!(TlsFailure::is(&error), "{error}");
    assert_eq!(
        TlsFailure::of(&error),
        Some(&rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer
        )),
    );
    running.shutdown();
}

/// A second connection with the same client configuration resumes the
/// first one's session (the server configuration's session cache): what
/// an FTPS data connection does with its control connection's session.
#[test]
fn a_second_connection_resumes_the_session() {
    let id = identity();
    let running = serve(bind(TlsEcho).tls(id.server_config()));
    let client = id.client_config();
    let mut first = tls_client(inet(&running), &client);
    assert_eq!(ask(&mut first, "kind?\n"), "Some(Full)\n");
    close(first);
    let mut second = tls_client(inet(&running), &client);
    assert_eq!(ask(&mut second, "kind?\n"), "Some(Resumed)\n");
    close(second);
    running.shutdown();
}

/// `Builder::tls_files` reads PEM files (as Let's Encrypt's); a missing
/// file or one without a key is an error that names it.
#[test]
fn tls_from_pem_files() {
    let id = identity();
    let dir = std::env::temp_dir().join(format!("ss-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("fullchain.pem"), dir.join("privkey.pem"));
    std::fs::write(&cert, &id.cert_pem).unwrap();
    std::fs::write(&key, &id.key_pem).unwrap();

    let builder = bind(TlsEcho)
        .tls_files(&cert, &key)
        .expect("read the PEM files");
    let running = serve(builder);
    converse_over_tls(inet(&running), &id.client_config(), "from files");
    running.shutdown();

    let missing = dir.join("missing.pem");
    let error = bind(TlsEcho).tls_files(&missing, &key).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("TLS: {}: no such file or directory", missing.display())
    );
    let error = bind(TlsEcho).tls_files(&cert, &cert).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "TLS: {}: no private key in PEM (-----BEGIN PRIVATE KEY-----)",
            cert.display()
        )
    );
    let error = bind(TlsEcho).tls_files(&key, &key).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "TLS: {}: no certificate in PEM (-----BEGIN CERTIFICATE-----)",
            key.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A drain ends a TLS conversation waiting for its next line, as a plain
/// one: the end of the socket's reading half reaches the handler through
/// the TLS layer, and its goodbye still goes out encrypted.
#[test]
fn a_drain_ends_a_waiting_tls_conversation() {
    let id = identity();
    let running = serve(
        bind(Chat {
            when_draining: WhenDraining::EndWaitingRead,
        })
        .tls(id.server_config()),
    );
    let mut client = tls_client(inet(&running), &id.client_config());
    assert_eq!(ask(&mut client, "hi\n"), "serving: hi\n");
    let stats = running.stats.clone();
    let report = running.shutdown();
    assert_eq!((report.drained, report.cut), (1, 0));
    let mut bye = String::new();
    client.read_line(&mut bye).expect("the goodbye");
    assert_eq!(bye, BYE);
    let mut rest = Vec::new();
    client
        .read_to_end(&mut rest)
        .expect("close_notify, then the end");
    assert_eq!(rest, b"");
    assert_eq!(stats.snapshot().completed, 1);
}
