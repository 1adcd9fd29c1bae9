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

// The parts, one concept per file, each adding methods to `Client`:
// `control.rs` (commands out, replies in), `data_connections.rs` (passive
// data connections), `listing.rs` (`LIST`, and listings made safe to
// show), `transfers.rs` (`get` and `put`, resumed, hashed while they
// stream, paced), `verification.rs` (the server's digest and the
// comparison), `tls.rs` (explicit FTPS: `AUTH TLS`, `PROT P`, TLS data
// connections). This file holds the connection, login and the simple
// commands.
mod control;
mod data_connections;
mod listing;
mod tls;
mod transfers;
mod verification;

pub use control::Reply;
pub use listing::displayable;
pub use transfers::{Progress, Transferred};
pub use verification::Check;

use std::fmt;
use std::io::{self, BufReader};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long connecting may take when no timeout is given.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

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
            Error::Io(e) => write!(f, "{}", socketserver::error::describe(e)),
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

/// A logged-in (or not yet) control connection.
#[derive(Debug)]
pub struct Client {
    control: BufReader<tls::Control>,
    /// Set by `AUTH TLS`: data connections are TLS too.
    tls: Option<tls::TlsSettings>,
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
            control: BufReader::new(tls::Control::Plain(stream)),
            tls: None,
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
        self.protect_data()
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
