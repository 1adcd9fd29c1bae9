//! Helpers for the FTP tests: a served folder that cleans itself up, the
//! `serve --handler ftp` process, a raw FTP client with timeouts and exact
//! replies, and curl.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::util::{run_with_input, serve_command, ServerProcess, IO_TIMEOUT};

/// The user every test logs in as, with read-write access.
pub const USER: &str = "alice";
pub const PASSWORD: &str = "s3cret";

/// The MD5 of `bytes` in hexadecimal (the handlers crate's own; the
/// Python tests check the server against hashlib).
pub fn md5_hex(bytes: &[u8]) -> String {
    use socketserver_handlers::ftp::{Algorithm, Observer};
    let mut hasher = Algorithm::Md5.hasher();
    hasher.update(bytes);
    hasher.hex()
}

/// A fresh folder under the system's temp folder, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("socketserver-ftp-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temp folder");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The names in `folder` (relative to this one), sorted.
    pub fn names(&self, folder: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.join(folder))
            .expect("read the folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `serve --handler ftp --bind BIND --root ROOT ARGS...`, started and serving.
pub fn serve_ftp_on(bind: &str, root: &Path, args: &[&str]) -> ServerProcess {
    let mut command = serve_command();
    command
        .args(["--handler", "ftp", "--bind", bind, "--root"])
        .arg(root)
        .args(args);
    ServerProcess::start(command)
}

/// The same on 127.0.0.1 with the test user (read-write).
pub fn serve_ftp(root: &Path, args: &[&str]) -> ServerProcess {
    let user = format!("{USER}:{PASSWORD}");
    let mut all = vec!["--user", &user];
    all.extend_from_slice(args);
    serve_ftp_on("127.0.0.1:0", root, &all)
}

/// Runs curl (quiet, errors shown, at most 20 s) with `args`; returns its
/// output.
pub fn curl(args: &[&str]) -> Output {
    let mut command = Command::new("curl");
    command.args(["--silent", "--show-error", "--max-time", "20"]);
    command.args(args);
    run_with_input(command, b"")
}

/// curl, which must succeed; returns its standard output.
pub fn curl_ok(args: &[&str]) -> Vec<u8> {
    let out = curl(args);
    assert!(
        out.status.success(),
        "curl {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The URL of `path` on `server` with the test user's credentials.
pub fn url(server: &ServerProcess, path: &str) -> String {
    format!("ftp://{USER}:{PASSWORD}@{}/{path}", server.addr)
}

/// A raw FTP client: sends command lines, reads whole replies, with
/// read and write timeouts.
pub struct FtpPeer {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl FtpPeer {
    /// Connects and reads the greeting, which must be `220 ...`.
    pub fn connect(addr: &str) -> FtpPeer {
        let mut peer = FtpPeer::connect_raw(addr);
        let greeting = peer.reply();
        assert!(greeting.starts_with("220 "), "greeting {greeting:?}");
        peer
    }

    /// Connects without reading anything.
    pub fn connect_raw(addr: &str) -> FtpPeer {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        FtpPeer::from_stream(stream)
    }

    /// A client on a connected `stream`, whose timeouts are set already;
    /// nothing read yet.
    pub fn from_stream(stream: TcpStream) -> FtpPeer {
        FtpPeer {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    /// Connects and logs in as the test user.
    pub fn logged_in(addr: &str) -> FtpPeer {
        let mut peer = FtpPeer::connect(addr);
        peer.login(USER, PASSWORD);
        peer
    }

    pub fn login(&mut self, user: &str, password: &str) {
        let r = self.cmd(&format!("USER {user}"));
        assert!(r.starts_with("331 "), "{r:?}");
        let r = self.cmd(&format!("PASS {password}"));
        assert!(r.starts_with("230 "), "{r:?}");
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("send");
    }

    /// Sends `line` and CRLF.
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// Reads one whole reply (all its lines, CRLFs included).
    pub fn reply(&mut self) -> String {
        let first = self.line();
        let mut reply = first.clone();
        if first.as_bytes().get(3) == Some(&b'-') {
            let end = format!("{} ", &first[..3]);
            loop {
                let line = self.line();
                reply.push_str(&line);
                if line.starts_with(&end) {
                    break;
                }
            }
        }
        reply
    }

    fn line(&mut self) -> String {
        let mut line = Vec::new();
        let n = (&mut self.reader)
            .take(64 * 1024)
            .read_until(b'\n', &mut line)
            .expect("read a reply line");
        assert!(n > 0, "end of input instead of a reply");
        String::from_utf8(line).expect("a UTF-8 reply")
    }

    /// Sends `line`, returns the reply.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(line);
        self.reply()
    }

    /// Sends `line`; the reply must be exactly `expected` (CRLF added).
    pub fn expect(&mut self, line: &str, expected: &str) {
        let got = self.cmd(line);
        assert_eq!(got, format!("{expected}\r\n"), "reply to {line:?}");
    }

    /// Sends `EPSV`; returns the address to connect the data connection to.
    pub fn epsv(&mut self) -> SocketAddr {
        let r = self.cmd("EPSV");
        let port = r
            .strip_prefix("229 Entering Extended Passive Mode (|||")
            .and_then(|rest| rest.strip_suffix("|)\r\n"))
            .unwrap_or_else(|| panic!("EPSV reply {r:?}"));
        let mut addr = self.writer.peer_addr().unwrap();
        addr.set_port(port.parse().unwrap());
        addr
    }

    /// Opens a passive data connection, sends `command`, reads all the
    /// data and the final reply (which must be `226`); returns the data.
    pub fn download(&mut self, command: &str) -> Vec<u8> {
        let addr = self.epsv();
        let mut data = TcpStream::connect(addr).expect("connect the data connection");
        data.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let r = self.cmd(command);
        assert!(r.starts_with("150 "), "{command}: {r:?}");
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes).expect("read the data");
        let r = self.reply();
        assert!(r.starts_with("226 "), "{command}: {r:?}");
        bytes
    }

    /// As [`FtpPeer::download`], but any final reply; returns it too.
    pub fn download_with_reply(&mut self, command: &str) -> (Vec<u8>, String) {
        let addr = self.epsv();
        let mut data = TcpStream::connect(addr).expect("connect the data connection");
        data.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let r = self.cmd(command);
        assert!(r.starts_with("150 "), "{command}: {r:?}");
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes).expect("read the data");
        (bytes, self.reply())
    }

    /// Opens a passive data connection, sends `command` (its reply must be
    /// `150`), sends `bytes` and closes the data connection. The final
    /// reply is left to read.
    pub fn upload(&mut self, command: &str, bytes: &[u8]) {
        let addr = self.epsv();
        let mut data = TcpStream::connect(addr).expect("connect the data connection");
        data.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let r = self.cmd(command);
        assert!(r.starts_with("150 "), "{command}: {r:?}");
        data.write_all(bytes).expect("send the data");
    }

    /// Reads one reply; it must be exactly `expected` (CRLF added).
    pub fn expect_reply(&mut self, expected: &str) {
        let got = self.reply();
        assert_eq!(got, format!("{expected}\r\n"));
    }

    /// The connection is closed by the server: the next read is the end of
    /// input, or a reset (when the server closed with unread input).
    pub fn expect_closed(&mut self) {
        let mut buf = [0u8; 256];
        match self.reader.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Ok(n) => panic!(
                "expected the connection closed, got {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e) => panic!("expected the connection closed, got {e}"),
        }
    }

    /// A second handle on the control connection, for writing from
    /// another thread.
    pub fn writer(&self) -> TcpStream {
        self.writer
            .try_clone()
            .expect("clone the control connection")
    }
}

/// The size of the upload temp file that `server` holds open in `folder`,
/// if any. It has no name (`O_TMPFILE`): the server's descriptor shows it
/// in `/proc/PID/fd` as `FOLDER/#INODE (deleted)`.
pub fn open_upload_temp(server: &ServerProcess, folder: &Path) -> Option<u64> {
    let prefix = format!("{}/#", folder.canonicalize().ok()?.display());
    let fds = std::fs::read_dir(format!("/proc/{}/fd", server.child.id())).ok()?;
    fds.filter_map(Result::ok).find_map(|fd| {
        let target = std::fs::read_link(fd.path()).ok()?;
        if !target.to_string_lossy().starts_with(&prefix) {
            return None;
        }
        std::fs::metadata(fd.path()).ok().map(|m| m.len())
    })
}

/// `len` pseudo-random bytes (xorshift64*, eight bytes a step: 100 MiB in
/// a fraction of a second even in a debug build).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Runs `client --timeout 10 ftp ADDR ARGS...` in `dir` (at most
/// [`crate::util::TIMEOUT`]); returns its output.
pub fn client_ftp(dir: &Path, addr: &str, args: &[&str]) -> Output {
    let mut command = crate::util::client_command();
    command
        .current_dir(dir)
        .args(["--timeout", "10", "ftp", addr])
        .args(args);
    run_with_input(command, b"")
}

/// Standard output and standard error of a run, as text.
pub fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// pyftpdlib (Python's FTP server, which has no hash command), serving
/// `root` read-write to the test user on 127.0.0.1; killed on drop.
pub struct PyFtpd {
    child: std::process::Child,
    pub addr: String,
}

impl PyFtpd {
    pub fn start(root: &Path) -> PyFtpd {
        use std::process::Stdio;
        let mut child = Command::new("python3")
            .args(["-m", "pyftpdlib", "-i", "127.0.0.1", "-p", "0", "-w", "-d"])
            .arg(root)
            .args(["-u", USER, "-P", PASSWORD])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pyftpdlib (pip install pyftpdlib)");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads pyftpdlib's log to its end (so it never blocks on a full
        // pipe); sends the address it announces.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split(">>> starting FTP server on ").nth(1) {
                    let addr = rest.split([',', ' ']).next().unwrap_or("").to_string();
                    let _ = tx.send(addr);
                }
            }
        });
        match rx.recv_timeout(crate::util::TIMEOUT) {
            Ok(addr) => PyFtpd { child, addr },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("pyftpdlib did not announce its address in time");
            }
        }
    }
}

impl Drop for PyFtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
