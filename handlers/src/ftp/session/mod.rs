//! One FTP session: its state and the command loop, which hands each verb
//! to the file of its kind.
//!
//! `docs/protocols.md` lists each verb with its replies; `verbs.rs` is
//! that list in code: one table of every verb, with when it is allowed and
//! the method that runs it, from which the dispatch, `HELP` and `FEAT` are
//! made. The methods live one file per kind of verb, each adding methods
//! to [`Session`] (so the session's fields stay private to the module):
//!
//! | file | verbs |
//! |---|---|
//! | `mod.rs` | the session's state and the command loop; `QUIT`, `NOOP`, `SYST` |
//! | `verbs.rs` | the verb table and the dispatch; `HELP`, `FEAT` |
//! | `login.rs` | `USER`, `PASS`: the throttle, anonymous access |
//! | `settings.rs` | `OPTS`, `TYPE`, `MODE`, `STRU`, `ALLO` |
//! | `navigation.rs` | `PWD`, `CWD`, `CDUP`, and the facts of one file: `SIZE`, `MDTM` |
//! | `data_connections.rs` | `PASV`, `EPSV`, `PORT`, `EPRT`; opening the data connection |
//! | `listings.rs` | `LIST`, `NLST`, `MLSD`, `MLST`, `STAT` |
//! | `transfers.rs` | `RETR`, `STOR`, `APPE`, `REST`, `ABOR`; the reply and log line ending a transfer |
//! | `checksums.rs` | `XMD5`, `XSHA1`, `XSHA256`, `HASH`, `SITE CHKHASH` |
//! | `changes.rs` | `DELE`, `MKD`, `RMD`, `RNFR`, `RNTO` |
//! | `security.rs` | FTPS: `AUTH TLS`, `PBSZ`, `PROT`, `CCC`; TLS required; TLS data connections |
//!
//! Replies are written to the stream's buffer and go out before the next
//! read, so pipelined commands get one `send` per batch.

mod changes;
mod checksums;
mod data_connections;
mod listings;
mod login;
mod navigation;
mod security;
mod settings;
mod transfers;
mod verbs;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socketserver::error::describe;
use socketserver::Stream;

use super::auth::Access;
use super::config::Config;
use super::control::{printable, reply, Control, Line};
use super::data::DataPlan;
use super::entry::Entry;
use super::hash::{Algorithm, Digests};
use super::listing::Facts;
use super::vfs::{VPath, Vfs};
use security::Protection;
use verbs::Command;

/// How long the server goes on reading after closing on too many failed
/// logins, so that its reply is not destroyed by a reset.
const LINGER: Duration = Duration::from_secs(2);

/// Whether the session goes on after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

/// Who is logged in.
#[derive(Clone, Debug)]
struct Login {
    name: String,
    access: Access,
}

/// `HASH`'s algorithm until `OPTS HASH` picks another (the draft's
/// recommendation, and what other servers default to).
const DEFAULT_HASH: Algorithm = Algorithm::Sha256;

pub(crate) struct Session {
    config: Arc<Config>,
    digests: Arc<Digests>,
    peer: SocketAddr,
    local: SocketAddr,
    idle: Option<Duration>,
    control: Control,
    vfs: Vfs,
    login: Option<Login>,
    user: Option<String>,
    failures: u32,
    login_deadline: Instant,
    ascii: bool,
    rest: u64,
    /// `RNFR`'s source: its folder's descriptor and name, for `RNTO`.
    rename_from: Option<(Entry, VPath)>,
    data: DataPlan,
    epsv_all: bool,
    facts: Facts,
    /// `HASH`'s algorithm (`OPTS HASH`).
    hash: Algorithm,
    /// The MD5 the next upload must have (`SITE CHKHASH`), lower case.
    check_md5: Option<String>,
    /// FTPS: whether data connections are TLS (`PBSZ`, `PROT`).
    protection: Protection,
}

/// Serves one control connection until the client quits or goes.
pub(crate) fn run(
    config: Arc<Config>,
    digests: Arc<Digests>,
    stream: &mut Stream,
) -> io::Result<()> {
    let Some(tcp) = stream.as_tcp() else {
        reply(stream, 421, "FTP needs a TCP connection.")?;
        return Ok(());
    };
    let peer = tcp.peer_addr()?;
    let local = tcp.local_addr()?;
    // ABOR may come as TCP urgent data (Python's ftplib sends it so): keep
    // the urgent byte in the normal stream, where the line reader sees it.
    socket2::SockRef::from(tcp).set_out_of_band_inline(true)?;
    let mut session = Session {
        vfs: Vfs::new(Arc::clone(&config.tree)),
        login_deadline: Instant::now() + config.login_timeout,
        config,
        digests,
        peer,
        local,
        idle: stream.read_timeout(),
        control: Control::default(),
        login: None,
        user: None,
        failures: 0,
        ascii: false,
        rest: 0,
        rename_from: None,
        data: DataPlan::None,
        epsv_all: false,
        facts: Facts::default(),
        hash: DEFAULT_HASH,
        check_md5: None,
        protection: Protection::default(),
    };
    let config = &session.config;
    if let Some(tls) = config.tls.clone().filter(|_| config.implicit_tls) {
        // Implicit FTPS: TLS from the first byte, within the login time.
        stream.set_deadline(Some(session.login_deadline));
        if let Err(e) = stream.upgrade_tls(tls) {
            log::info!("{peer}: implicit TLS handshake failed: {}", describe(&e));
            return Ok(());
        }
        session.protection = Protection::implicit();
    }
    reply(stream, 220, &session.config.banner)?;
    session.serve(stream)
}

impl Session {
    fn serve(&mut self, stream: &mut Stream) -> io::Result<()> {
        // The idle timeout counts from the end of the last command, across
        // the wake-ups that close an unused passive listener.
        let mut quiet_since = Instant::now();
        loop {
            let mut timeout = self
                .idle
                .map(|idle| (quiet_since + idle).saturating_duration_since(Instant::now()));
            if self.login.is_none() {
                let left = self
                    .login_deadline
                    .saturating_duration_since(Instant::now());
                if left.is_zero() {
                    reply(stream, 421, "Login timed out.")?;
                    return Ok(());
                }
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
            if let Some(left) = self.data.passive_left() {
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
            // A zero timeout is refused by the socket: wait 1 ms at least.
            stream.set_read_timeout(timeout.map(|t| t.max(Duration::from_millis(1))))?;
            // A total limit, not one per byte: a command trickled a byte
            // at a time is cut when the login time is up.
            stream.set_deadline(self.login.is_none().then_some(self.login_deadline));
            let line = match self.control.next(stream) {
                Ok(line) => line,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    // Woken for a passive listener's deadline, not for the
                    // idle timeout, a command's or the login's deadline:
                    // the session goes on.
                    if self.data.close_expired() {
                        log::info!("{}: unused passive listener closed", self.peer);
                        if self.login.is_some()
                            && self.idle.is_none_or(|idle| quiet_since.elapsed() < idle)
                        {
                            continue;
                        }
                    }
                    log::info!("{}: {e}; closing", self.peer);
                    let text = if self.login.is_none() {
                        "Login timed out."
                    } else {
                        "Timeout: closing the control connection."
                    };
                    reply(stream, 421, text)?;
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            let line = match line {
                Line::Command(line) => line,
                Line::End if stream.is_draining() => {
                    log::info!("{}: the server is shutting down; closing", self.peer);
                    // The client may have hung up at the same moment.
                    let _ = reply(
                        stream,
                        421,
                        "Server shutting down; closing the control connection.",
                    );
                    return Ok(());
                }
                Line::End => return Ok(()),
                Line::TooLong(exceeded) => {
                    return stream.close_over_limit(exceeded, |stream| {
                        reply(stream, 500, "Command line too long.")
                    });
                }
            };
            if self.command(stream, &line)? == Flow::Close {
                return Ok(());
            }
            // Waiting starts now: a long transfer is not idleness.
            quiet_since = Instant::now();
        }
    }

    fn quit(&mut self, stream: &mut Stream, _: Command<'_>) -> io::Result<Flow> {
        reply(stream, 221, "Goodbye.")?;
        Ok(Flow::Close)
    }

    fn noop(&mut self, stream: &mut Stream, _: Command<'_>) -> io::Result<Flow> {
        answer(stream, 200, "NOOP ok.")
    }

    fn syst(&mut self, stream: &mut Stream, _: Command<'_>) -> io::Result<Flow> {
        answer(stream, 215, "UNIX Type: L8")
    }
}

/// Writes the reply that ends a verb, after which the session goes on:
/// how most verbs end.
fn answer(stream: &mut Stream, code: u16, text: &str) -> io::Result<Flow> {
    reply(stream, code, text)?;
    Ok(Flow::Continue)
}

/// A path in double quotes, its own quotes doubled (RFC 959, `257`).
fn quote(path: &[u8]) -> String {
    format!("\"{}\"", printable(path).replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled() {
        assert_eq!(quote(b"/a\"b"), "\"/a\"\"b\"");
        assert_eq!(quote(b"/x\ny"), "\"/x\\x0ay\"");
        assert_eq!(quote("/\u{202e}\x1b".as_bytes()), "\"/\\u{202e}\\x1b\"");
    }
}
