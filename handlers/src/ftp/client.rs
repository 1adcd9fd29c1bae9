//! A small FTP client, for `client ftp` and for programs: passive mode
//! (`EPSV`, then `PASV`), binary transfers, resume (`SIZE`, `REST`,
//! `APPE`), and the tutorial's MD5 check on every transfer.
//!
//! The client hashes the bytes it receives or sends while they stream, in
//! a thread beside the copy (as the server does), so the check costs no
//! extra pass over the file; a resumed transfer hashes the part already
//! there first, so the digest is always the whole file's. It then asks
//! the server for its digest: the `MD5=` of the `226` reply (this
//! server's), else `XMD5`, else `HASH` after `OPTS HASH MD5`. A server
//! with none of them (vsftpd, pyftpdlib) leaves the transfer unverified,
//! and [`Check::Unverified`] says so.
//!
//! ```no_run
//! use socketserver_handlers::ftp::client::{Check, Client};
//!
//! let mut ftp = Client::connect("127.0.0.1:2121", None)?;
//! ftp.login("alice", "secret")?;
//! let mut file = std::fs::File::create("hello.txt")?;
//! let done = ftp.get("hello.txt", &mut file, 0, &mut |_| {})?;
//! match ftp.check(&done, "hello.txt")? {
//!     Check::Match(md5) => println!("md5 ok {md5}"),
//!     Check::Mismatch { local, server } => eprintln!("{local} != {server}"),
//!     Check::Unverified { local, why } => eprintln!("{local}: {why}"),
//! }
//! ftp.quit()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::escape::{escape_into, printable};
use super::hash::{is_md5_hex, Algorithm, Hasher};
use super::transfer::Pipeline;

/// The longest reply line read (longer ones are an error).
const MAX_REPLY_LINE: u64 = 64 * 1024;
/// The most lines of one reply.
const MAX_REPLY_LINES: usize = 10_000;
/// How long connecting may take when no timeout is given.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A reply of the server: its code and its text (the lines of a
/// multi-line reply joined with `\n`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The text after the code.
    pub text: String,
}

impl fmt::Display for Reply {
    /// The code and the text, its control and bidirectional characters
    /// escaped (`\x1b`, `\u{202e}`): a server's reply is shown to a person
    /// and must not rewrite their terminal. Lines stay lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self
            .text
            .split('\n')
            .map(|line| printable(line.as_bytes()))
            .collect();
        write!(f, "{} {}", self.code, lines.join("\n"))
    }
}

/// A listing as it may be shown to a person: each line's control and
/// bidirectional characters escaped (`\x1b`, `\u{202e}`, as the server
/// escapes names in its own listings), its line end kept (LF, or CRLF).
/// The bytes come from the server, which need not be this one: they are
/// not trusted to be harmless to a terminal.
///
/// ```
/// use socketserver_handlers::ftp::client::displayable;
/// assert_eq!(displayable(b"a\x1b[31mb\r\nc\xe2\x80\xaed\n"), b"a\\x1b[31mb\r\nc\\u{202e}d\n");
/// ```
pub fn displayable(listing: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(listing.len());
    for line in listing.split_inclusive(|&b| b == b'\n') {
        let (text, end): (&[u8], &[u8]) = if let Some(text) = line.strip_suffix(b"\r\n") {
            (text, b"\r\n")
        } else if let Some(text) = line.strip_suffix(b"\n") {
            (text, b"\n")
        } else {
            (line, b"")
        };
        escape_into(&mut out, text, false);
        out.extend_from_slice(end);
    }
    out
}

impl Reply {
    /// The `MD5=<hex>` that this server puts in a `226` reply, if any.
    pub fn md5(&self) -> Option<String> {
        self.text
            .split_whitespace()
            .filter_map(|word| word.strip_prefix("MD5="))
            .map(|hex| hex.trim_end_matches(['.', ',', ';', ')']))
            .find(|hex| is_md5_hex(hex))
            .map(str::to_ascii_lowercase)
    }
}

/// What went wrong.
#[derive(Debug)]
pub enum Error {
    /// The connection failed, or a local file could not be read or written.
    Io(io::Error),
    /// The server refused a command.
    Refused {
        /// The command, without its argument for PASS.
        command: String,
        /// The server's reply.
        reply: Reply,
    },
    /// The server said something that is not FTP.
    Protocol(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{}", socketserver::describe(e)),
            Error::Refused { command, reply } => write!(f, "{command}: {reply}"),
            Error::Protocol(what) => write!(f, "not an FTP server? {what}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

/// A transfer that went through.
#[derive(Clone, Debug)]
pub struct Transferred {
    /// The remote path.
    pub remote: String,
    /// Bytes moved over the data connection.
    pub bytes: u64,
    /// Where it started (the resume offset; 0 for a whole file).
    pub offset: u64,
    /// How long the data connection took.
    pub elapsed: Duration,
    /// The MD5 of the whole file as this client has it: the bytes it
    /// received or sent, after the part already there when resuming.
    pub md5: String,
    /// The server's final reply.
    pub reply: Reply,
    /// True for an upload.
    pub upload: bool,
}

/// How a transfer's MD5 compares with the server's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// Both have this MD5.
    Match(String),
    /// They differ.
    Mismatch {
        /// This client's MD5 of the file.
        local: String,
        /// The server's.
        server: String,
    },
    /// The server gave no digest.
    Unverified {
        /// This client's MD5 of the file.
        local: String,
        /// Why not.
        why: String,
    },
}

/// Called as bytes move with the position reached in the file (the resume
/// offset included).
pub type Progress<'a> = &'a mut dyn FnMut(u64);

/// A logged-in (or not yet) control connection.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    peer: SocketAddr,
    timeout: Option<Duration>,
    /// EPSV failed once: use PASV from then on.
    no_epsv: bool,
    /// The server has no XMD5 / no HASH (it said so once).
    no_xmd5: bool,
    no_hash: bool,
    /// Bytes per second at most on data connections.
    limit_rate: Option<u64>,
}

impl Client {
    /// Connects to `addr` (`HOST:PORT`) and reads the greeting. Every
    /// read and write on the connections waits at most `timeout`.
    ///
    /// # Errors
    /// If no address answers, or the greeting is not `220`.
    pub fn connect(addr: &str, timeout: Option<Duration>) -> Result<Client, Error> {
        let mut last = None;
        let mut stream = None;
        for candidate in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&candidate, timeout.unwrap_or(CONNECT_TIMEOUT)) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = match (stream, last) {
            (Some(s), _) => s,
            (None, Some(e)) => return Err(e.into()),
            (None, None) => {
                return Err(io::Error::new(io::ErrorKind::NotFound, "no address").into())
            }
        };
        stream.set_read_timeout(timeout)?;
        stream.set_write_timeout(timeout)?;
        stream.set_nodelay(true)?;
        let peer = stream.peer_addr()?;
        let mut client = Client {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            peer,
            timeout,
            no_epsv: false,
            no_xmd5: false,
            no_hash: false,
            limit_rate: None,
        };
        let greeting = client.reply()?;
        if greeting.code != 220 {
            return Err(Error::Refused {
                command: "(connect)".into(),
                reply: greeting,
            });
        }
        Ok(client)
    }

    /// Moves at most `bytes_per_second` over data connections (`None`:
    /// as fast as it goes).
    pub fn limit_rate(&mut self, bytes_per_second: Option<u64>) {
        self.limit_rate = bytes_per_second.filter(|&r| r > 0);
    }

    /// Logs in and switches to binary mode (`TYPE I`).
    ///
    /// # Errors
    /// If the server refuses the name, the password or binary mode.
    pub fn login(&mut self, user: &str, password: &str) -> Result<(), Error> {
        let reply = self.command(&format!("USER {user}"))?;
        match reply.code {
            230 => {}
            331 | 332 => {
                let reply = self.send_and_reply("PASS", &format!("PASS {password}"))?;
                if !matches!(reply.code, 230 | 202) {
                    return Err(Error::Refused {
                        command: "PASS".into(),
                        reply,
                    });
                }
            }
            _ => {
                return Err(Error::Refused {
                    command: format!("USER {user}"),
                    reply,
                })
            }
        }
        self.expect("TYPE I", &[200])?;
        Ok(())
    }

    /// Sends `line`, returns the reply, whatever its code.
    ///
    /// # Errors
    /// If the connection fails or the reply is not FTP.
    pub fn command(&mut self, line: &str) -> Result<Reply, Error> {
        self.send_and_reply(line, line)
    }

    fn send_and_reply(&mut self, shown: &str, line: &str) -> Result<Reply, Error> {
        if line.contains(['\r', '\n']) {
            return Err(Error::Protocol(format!(
                "{shown}: a name cannot hold CR or LF"
            )));
        }
        self.writer.write_all(format!("{line}\r\n").as_bytes())?;
        self.reply()
    }

    /// Sends `line`; the reply's code must be one of `codes`.
    fn expect(&mut self, line: &str, codes: &[u16]) -> Result<Reply, Error> {
        let reply = self.command(line)?;
        if codes.contains(&reply.code) {
            Ok(reply)
        } else {
            Err(Error::Refused {
                command: line.to_string(),
                reply,
            })
        }
    }

    /// Reads one whole reply.
    fn reply(&mut self) -> Result<Reply, Error> {
        let first = self.line()?;
        let code = parse_code(&first)
            .ok_or_else(|| Error::Protocol(format!("the reply {first:?} has no code")))?;
        let mut text = first.get(4..).unwrap_or("").to_string();
        if first.as_bytes().get(3) == Some(&b'-') {
            let end = format!("{code} ");
            for _ in 0..MAX_REPLY_LINES {
                let line = self.line()?;
                if line.starts_with(&end) || line == end.trim_end() {
                    text.push('\n');
                    text.push_str(line.get(4..).unwrap_or(""));
                    return Ok(Reply { code, text });
                }
                text.push('\n');
                text.push_str(&line);
            }
            return Err(Error::Protocol("a reply of too many lines".into()));
        }
        Ok(Reply { code, text })
    }

    fn line(&mut self) -> Result<String, Error> {
        let mut line = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_REPLY_LINE)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )
            .into());
        }
        if !line.ends_with(b"\n") {
            return Err(Error::Protocol("a reply line too long".into()));
        }
        let line = String::from_utf8_lossy(&line);
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }

    /// Opens a passive data connection: `EPSV`, or `PASV` if the server
    /// has no `EPSV`. The connection goes to the control connection's
    /// address whatever `PASV` names (as curl's `--ftp-skip-pasv-ip`), so a
    /// server cannot send it elsewhere.
    fn data_connection(&mut self) -> Result<TcpStream, Error> {
        let port = if self.no_epsv {
            None
        } else {
            let reply = self.command("EPSV")?;
            match reply.code {
                229 => Some(parse_epsv(&reply.text).ok_or_else(|| {
                    Error::Protocol(format!("cannot read the EPSV reply {reply}"))
                })?),
                _ => {
                    self.no_epsv = true;
                    None
                }
            }
        };
        let port = match port {
            Some(port) => port,
            None => {
                let reply = self.expect("PASV", &[227])?;
                parse_pasv(&reply.text)
                    .ok_or_else(|| Error::Protocol(format!("cannot read the PASV reply {reply}")))?
            }
        };
        let addr = SocketAddr::new(self.peer.ip(), port);
        let data = TcpStream::connect_timeout(&addr, self.timeout.unwrap_or(CONNECT_TIMEOUT))?;
        data.set_read_timeout(self.timeout)?;
        data.set_write_timeout(self.timeout)?;
        Ok(data)
    }

    /// Sends a transfer command (after the data connection is open); its
    /// preliminary reply must be `125` or `150`.
    fn start_transfer(&mut self, line: &str) -> Result<(), Error> {
        self.expect(line, &[125, 150])?;
        Ok(())
    }

    /// The final reply of a transfer: `226` or `250`.
    fn end_transfer(&mut self, line: &str) -> Result<Reply, Error> {
        let reply = self.reply()?;
        if matches!(reply.code, 226 | 250) {
            Ok(reply)
        } else {
            Err(Error::Refused {
                command: line.to_string(),
                reply,
            })
        }
    }

    /// The listing of `path` (the current folder if empty): `LIST`'s
    /// lines, as the server sends them (see [`displayable`] to show them).
    ///
    /// # Errors
    /// If the server refuses, or a connection fails.
    pub fn list(&mut self, path: &str) -> Result<Vec<u8>, Error> {
        let mut data = self.data_connection()?;
        let line = if path.is_empty() {
            "LIST".to_string()
        } else {
            format!("LIST {path}")
        };
        self.start_transfer(&line)?;
        let mut listing = Vec::new();
        data.read_to_end(&mut listing)?;
        drop(data);
        self.end_transfer(&line)?;
        Ok(listing)
    }

    /// The size of the file `path`, or `None` if the server says there is
    /// none (`550`).
    ///
    /// # Errors
    /// If the server refuses otherwise, or the connection fails.
    pub fn size(&mut self, path: &str) -> Result<Option<u64>, Error> {
        let line = format!("SIZE {path}");
        let reply = self.command(&line)?;
        match reply.code {
            213 => reply
                .text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| Error::Protocol(format!("cannot read the SIZE reply {reply}"))),
            550 => Ok(None),
            _ => Err(Error::Refused {
                command: line,
                reply,
            }),
        }
    }

    /// Downloads `remote` into `local` from byte `offset` on (`REST`):
    /// `local` must hold the file's first `offset` bytes, which are hashed
    /// first; the rest is appended as it comes, and hashed too.
    ///
    /// # Errors
    /// If the server refuses, a connection fails, or `local` cannot be
    /// read or written.
    pub fn get(
        &mut self,
        remote: &str,
        local: &mut File,
        offset: u64,
        progress: Progress<'_>,
    ) -> Result<Transferred, Error> {
        let mut pipe = Pipeline::new(Some(Algorithm::Md5.hasher()));
        local.seek(SeekFrom::Start(0))?;
        let had = feed(local, offset, &mut pipe)?;
        if had < offset {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the local file has {had} bytes, not {offset}"),
            )));
        }
        local.set_len(offset)?;
        local.seek(SeekFrom::Start(offset))?;
        let mut data = self.data_connection()?;
        if offset > 0 {
            self.expect(&format!("REST {offset}"), &[350])?;
        }
        let line = format!("RETR {remote}");
        self.start_transfer(&line)?;
        let started = Instant::now();
        let bytes = copy(
            &mut pipe,
            &mut data,
            local,
            self.limit_rate,
            offset,
            progress,
        )
        .map_err(|(_, e)| Error::from(e))?;
        let elapsed = started.elapsed();
        drop(data);
        let reply = self.end_transfer(&line)?;
        Ok(Transferred {
            remote: remote.to_string(),
            bytes,
            offset,
            elapsed,
            md5: finish(pipe),
            reply,
            upload: false,
        })
    }

    /// Uploads `local` as `remote`, from byte `offset` on: the server's
    /// file must hold the first `offset` bytes already (`APPE` adds the
    /// rest); the whole local file is hashed.
    ///
    /// # Errors
    /// If the server refuses, a connection fails, or `local` cannot be
    /// read.
    pub fn put(
        &mut self,
        local: &mut File,
        remote: &str,
        offset: u64,
        progress: Progress<'_>,
    ) -> Result<Transferred, Error> {
        let mut pipe = Pipeline::new(Some(Algorithm::Md5.hasher()));
        local.seek(SeekFrom::Start(0))?;
        let had = feed(local, offset, &mut pipe)?;
        if had < offset {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the local file has {had} bytes, fewer than the server's {offset}"),
            )));
        }
        let mut data = self.data_connection()?;
        let line = if offset > 0 {
            format!("APPE {remote}")
        } else {
            format!("STOR {remote}")
        };
        self.start_transfer(&line)?;
        let started = Instant::now();
        let copied = copy(
            &mut pipe,
            local,
            &mut data,
            self.limit_rate,
            offset,
            progress,
        );
        let bytes = match copied {
            Ok(bytes) => bytes,
            Err((Side::Read, e)) => return Err(e.into()),
            Err((Side::Write, e)) => {
                // The server's reply says more than a broken pipe.
                drop(data);
                return match self.reply() {
                    Ok(reply) if reply.code >= 400 => Err(Error::Refused {
                        command: line,
                        reply,
                    }),
                    _ => Err(e.into()),
                };
            }
        };
        let elapsed = started.elapsed();
        let _ = data.shutdown(Shutdown::Write);
        drop(data);
        let reply = self.end_transfer(&line)?;
        Ok(Transferred {
            remote: remote.to_string(),
            bytes,
            offset,
            elapsed,
            md5: finish(pipe),
            reply,
            upload: true,
        })
    }

    /// The server's MD5 of `path`: `XMD5`, else `HASH` (after
    /// `OPTS HASH MD5`). `Ok(Err(why))` if the server gives none: it has
    /// neither command, or refuses (the file is too large to hash, the
    /// server is busy...).
    ///
    /// # Errors
    /// If the connection fails, or a reply is not FTP.
    pub fn remote_md5(&mut self, path: &str) -> Result<Result<String, String>, Error> {
        if !self.no_xmd5 {
            let line = format!("XMD5 {path}");
            let reply = self.command(&line)?;
            match reply.code {
                200..=299 => {
                    return find_md5(&reply.text)
                        .map(Ok)
                        .ok_or_else(|| Error::Protocol(format!("no MD5 in {reply}")))
                }
                500 | 502 | 504 => self.no_xmd5 = true,
                _ => return Ok(Err(format!("{line}: {reply}"))),
            }
        }
        if !self.no_hash {
            let opts = self.command("OPTS HASH MD5")?;
            if opts.code == 200 {
                let line = format!("HASH {path}");
                let reply = self.command(&line)?;
                match reply.code {
                    213 => {
                        // 213 MD5 0-SIZE HEX PATH
                        let mut words = reply.text.split_whitespace();
                        let algorithm = words.next().unwrap_or("");
                        let _range = words.next();
                        let hex = words.next().unwrap_or("");
                        if !algorithm.eq_ignore_ascii_case("MD5") || !is_md5_hex(hex) {
                            return Err(Error::Protocol(format!("no MD5 in {reply}")));
                        }
                        return Ok(Ok(hex.to_ascii_lowercase()));
                    }
                    500 | 502 | 504 => self.no_hash = true,
                    _ => return Ok(Err(format!("{line}: {reply}"))),
                }
            } else {
                self.no_hash = true;
            }
        }
        Ok(Err(
            "the server has no hash command (XMD5, HASH)".to_string()
        ))
    }

    /// Compares a transfer's MD5 with the server's: the `MD5=` of its
    /// `226` reply, for a whole download or any upload (this server gives
    /// the stored file's); else the server's digest of `remote` now.
    ///
    /// # Errors
    /// As [`Client::remote_md5`].
    pub fn check(&mut self, done: &Transferred, remote: &str) -> Result<Check, Error> {
        let server = match done.reply.md5() {
            Some(md5) if done.upload || done.offset == 0 => Ok(md5),
            _ => self.remote_md5(remote)?,
        };
        Ok(compare(&done.md5, server))
    }

    /// Compares the MD5 of a whole local file (hashed now) with the
    /// server's digest of `remote`: for a transfer found complete already.
    ///
    /// # Errors
    /// As [`Client::remote_md5`], or if `local` cannot be read.
    pub fn check_file(&mut self, local: &mut File, remote: &str) -> Result<Check, Error> {
        let mut pipe = Pipeline::new(Some(Algorithm::Md5.hasher()));
        local.seek(SeekFrom::Start(0))?;
        feed(local, u64::MAX, &mut pipe)?;
        let md5 = finish(pipe);
        let server = self.remote_md5(remote)?;
        Ok(compare(&md5, server))
    }

    /// Makes the folder `path` (`MKD`).
    ///
    /// # Errors
    /// If the server refuses.
    pub fn mkdir(&mut self, path: &str) -> Result<Reply, Error> {
        self.expect(&format!("MKD {path}"), &[257, 250])
    }

    /// Removes the file `path` (`DELE`).
    ///
    /// # Errors
    /// If the server refuses.
    pub fn delete(&mut self, path: &str) -> Result<Reply, Error> {
        self.expect(&format!("DELE {path}"), &[250, 200])
    }

    /// Removes the empty folder `path` (`RMD`).
    ///
    /// # Errors
    /// If the server refuses.
    pub fn rmdir(&mut self, path: &str) -> Result<Reply, Error> {
        self.expect(&format!("RMD {path}"), &[250, 200])
    }

    /// Says goodbye (`QUIT`).
    ///
    /// # Errors
    /// If the connection fails.
    pub fn quit(mut self) -> Result<(), Error> {
        self.command("QUIT")?;
        Ok(())
    }
}

fn compare(local: &str, server: Result<String, String>) -> Check {
    match server {
        Ok(server) if server == local => Check::Match(server),
        Ok(server) => Check::Mismatch {
            local: local.to_string(),
            server,
        },
        Err(why) => Check::Unverified {
            local: local.to_string(),
            why,
        },
    }
}

/// Feeds the first `len` bytes of `file` (from its position) to `pipe`'s
/// observer. Returns how many there were.
fn feed(file: &mut File, len: u64, pipe: &mut Pipeline<Hasher>) -> io::Result<u64> {
    let mut done = 0u64;
    while done < len {
        let mut buf = pipe.take();
        let want = buf
            .len()
            .min(usize::try_from(len - done).unwrap_or(usize::MAX));
        let n = match read_retrying(file, &mut buf[..want]) {
            Ok(n) => n,
            Err(e) => {
                pipe.give(buf, 0, 0);
                return Err(e);
            }
        };
        pipe.give(buf, 0, n);
        if n == 0 {
            break;
        }
        done += n as u64;
    }
    Ok(done)
}

fn finish(pipe: Pipeline<Hasher>) -> String {
    pipe.finish()
        .unwrap_or_else(|| Algorithm::Md5.hasher())
        .hex()
}

/// Which end of a copy failed.
enum Side {
    Read,
    Write,
}

/// Copies `from` to `to` until `from` ends, through the hashing pipeline
/// (each buffer is hashed off this thread after it is written), reporting
/// `offset` + the bytes copied so far, at most `rate` bytes a second.
/// Returns the bytes copied, or which side failed.
fn copy(
    pipe: &mut Pipeline<Hasher>,
    from: &mut impl Read,
    to: &mut impl Write,
    rate: Option<u64>,
    offset: u64,
    progress: Progress<'_>,
) -> Result<u64, (Side, io::Error)> {
    let pace = Pace::new(rate);
    let mut bytes = 0u64;
    loop {
        let mut buf = pipe.take();
        let n = match read_retrying(from, &mut buf) {
            Ok(n) => n,
            Err(e) => {
                pipe.give(buf, 0, 0);
                return Err((Side::Read, e));
            }
        };
        if n == 0 {
            pipe.give(buf, 0, 0);
            return Ok(bytes);
        }
        if let Err(e) = to.write_all(&buf[..n]) {
            pipe.give(buf, 0, 0);
            return Err((Side::Write, e));
        }
        pipe.give(buf, 0, n);
        bytes += n as u64;
        progress(offset + bytes);
        pace.wait(bytes);
    }
}

/// Reads until `buf` is full or the input ends.
fn read_retrying(source: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match source.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Keeps a transfer at or under a rate: after each chunk, waits until the
/// bytes moved so far are due.
struct Pace {
    rate: Option<u64>,
    started: Instant,
}

impl Pace {
    fn new(rate: Option<u64>) -> Pace {
        Pace {
            rate,
            started: Instant::now(),
        }
    }

    fn wait(&self, bytes: u64) {
        let Some(rate) = self.rate else { return };
        let due = Duration::from_secs_f64(bytes as f64 / rate as f64);
        let spent = self.started.elapsed();
        if due > spent {
            std::thread::sleep(due - spent);
        }
    }
}

fn parse_code(line: &str) -> Option<u16> {
    let code = line.get(..3)?;
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match line.as_bytes().get(3) {
        None | Some(b' ') | Some(b'-') => code.parse().ok(),
        _ => None,
    }
}

/// The port of `Entering Extended Passive Mode (|||PORT|)`.
fn parse_epsv(text: &str) -> Option<u16> {
    let open = text.find('(')?;
    let inner = &text[open + 1..];
    let close = inner.find(')')?;
    let inner = &inner[..close];
    let delimiter = inner.chars().next()?;
    let parts: Vec<&str> = inner.split(delimiter).collect();
    match parts[..] {
        ["", "", "", port, ""] => port.parse().ok(),
        _ => None,
    }
}

/// The port of `Entering Passive Mode (h1,h2,h3,h4,p1,p2)`.
fn parse_pasv(text: &str) -> Option<u16> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let numbers: Vec<u16> = text[start..]
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(6)
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    let [_, _, _, _, high, low] = numbers[..] else {
        return None;
    };
    if high > 255 || low > 255 {
        return None;
    }
    Some(high << 8 | low)
}

/// The first 32-hex-digit word of a reply's text.
fn find_md5(text: &str) -> Option<String> {
    text.split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_hexdigit()))
        .find(|w| is_md5_hex(w))
        .map(str::to_ascii_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_codes() {
        assert_eq!(parse_code("220 ready"), Some(220));
        assert_eq!(parse_code("211-Features:"), Some(211));
        assert_eq!(parse_code("200"), Some(200));
        assert_eq!(parse_code("2x0 no"), None);
        assert_eq!(parse_code("2000 no"), None);
        assert_eq!(parse_code(""), None);
    }

    #[test]
    fn passive_replies() {
        assert_eq!(
            parse_epsv("Entering Extended Passive Mode (|||37931|)"),
            Some(37931)
        );
        assert_eq!(parse_epsv("Extended Passive (!!!5282!)"), Some(5282));
        assert_eq!(parse_epsv("Entering Extended Passive Mode"), None);
        assert_eq!(
            parse_pasv("Entering Passive Mode (127,0,0,1,200,10)."),
            Some(51210)
        );
        assert_eq!(
            parse_pasv("Entering Passive Mode 127,0,0,1,200,10"),
            Some(51210)
        );
        assert_eq!(parse_pasv("Entering Passive Mode (127,0,0,1,200)"), None);
        assert_eq!(parse_pasv("Entering Passive Mode (1,2,3,4,256,1)"), None);
    }

    #[test]
    fn digests_in_replies() {
        let reply = Reply {
            code: 226,
            text: "Transfer complete. MD5=2EA763badcd027b0087306a3ef3ef95f".into(),
        };
        assert_eq!(
            reply.md5().as_deref(),
            Some("2ea763badcd027b0087306a3ef3ef95f")
        );
        let reply = Reply {
            code: 226,
            text: "Transfer complete.".into(),
        };
        assert_eq!(reply.md5(), None);
        assert_eq!(
            find_md5("2ea763badcd027b0087306a3ef3ef95f").as_deref(),
            Some("2ea763badcd027b0087306a3ef3ef95f")
        );
        assert_eq!(
            find_md5("file.txt 2ea763badcd027b0087306a3ef3ef95f").as_deref(),
            Some("2ea763badcd027b0087306a3ef3ef95f")
        );
        assert_eq!(find_md5("no digest here"), None);
    }

    #[test]
    fn comparisons() {
        assert_eq!(compare("ab", Ok("ab".into())), Check::Match("ab".into()));
        assert_eq!(
            compare("ab", Ok("cd".into())),
            Check::Mismatch {
                local: "ab".into(),
                server: "cd".into()
            }
        );
        assert!(matches!(
            compare("ab", Err("none".into())),
            Check::Unverified { .. }
        ));
    }
}
