//! One FTP session: its state and the command loop, which hands each verb
//! to the file of its kind.
//!
//! `docs/protocols.md` lists each verb with its replies; this module is
//! that table in code, one file per kind of verb, each adding methods to
//! [`Session`] (so the session's fields stay private to the module):
//!
//! | file | verbs |
//! |---|---|
//! | `mod.rs` | the session's state, the command loop, the dispatch; the simple verbs (`NOOP`, `PWD`, `REST`, `MODE`...) |
//! | `login.rs` | `USER`, `PASS`: the throttle, anonymous access |
//! | `settings.rs` | `FEAT`, `OPTS`, `TYPE` |
//! | `navigation.rs` | `CWD`, `CDUP`, and the facts of one file: `SIZE`, `MDTM` |
//! | `data_connections.rs` | `PASV`, `EPSV`, `PORT`, `EPRT`; opening the data connection |
//! | `listings.rs` | `LIST`, `NLST`, `MLSD`, `MLST`, `STAT` |
//! | `transfers.rs` | `RETR`, `STOR`, `APPE`; the reply and log line ending a transfer |
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

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socketserver::error::describe;
use socketserver::Stream;

use super::auth::Access;
use super::config::Config;
use super::control::{printable, reply, reply_lines, split_command, Control, Line};
use super::data::DataPlan;
use super::entry::Entry;
use super::hash::{Algorithm, Digests};
use super::listing::Facts;
use super::vfs::{VPath, Vfs};
use security::{Protection, DATA_VERBS};

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

/// The verbs `HELP` lists.
const VERBS: &[&str] = &[
    "ABOR", "ALLO", "APPE", "AUTH", "CCC", "CDUP", "CWD", "DELE", "EPRT", "EPSV", "FEAT", "HASH",
    "HELP", "LIST", "MDTM", "MKD", "MLSD", "MLST", "MODE", "NLST", "NOOP", "OPTS", "PASS", "PASV",
    "PBSZ", "PORT", "PROT", "PWD", "QUIT", "REST", "RETR", "RMD", "RNFR", "RNTO", "SITE", "SIZE",
    "STAT", "STOR", "STRU", "SYST", "TYPE", "USER", "XCUP", "XCWD", "XMD5", "XMKD", "XPWD", "XRMD",
    "XSHA1", "XSHA256",
];

/// Verbs of FTP and its extensions that this server does not implement:
/// answered `502`, not `500`.
const NOT_IMPLEMENTED: &[&str] = &[
    "ACCT", "SMNT", "REIN", "STOU", "ADAT", "MIC", "CONF", "ENC", "MFMT", "MFCT", "MFF", "LANG",
    "HOST", "XCRC", "XSHA", "XSHA512", "MD5", "MMD5",
];

/// `HASH`'s algorithm until `OPTS HASH` picks another (the draft's
/// recommendation, and what other servers default to).
const DEFAULT_HASH: Algorithm = Algorithm::Sha256;

pub(crate) struct Session<'a> {
    config: &'a Config,
    digests: &'a Arc<Digests>,
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
pub(crate) fn run(config: &Config, digests: &Arc<Digests>, stream: &mut Stream) -> io::Result<()> {
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
        config,
        digests,
        peer,
        local,
        idle: stream.read_timeout(),
        control: Control::default(),
        vfs: Vfs::new(Arc::clone(&config.tree)),
        login: None,
        user: None,
        failures: 0,
        login_deadline: Instant::now() + config.login_timeout,
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
    if let Some(tls) = config.tls.clone().filter(|_| config.implicit_tls) {
        // Implicit FTPS: TLS from the first byte, within the login time.
        stream.set_deadline(Some(session.login_deadline));
        if let Err(e) = stream.upgrade_tls(tls) {
            log::info!("{peer}: implicit TLS handshake failed: {}", describe(&e));
            return Ok(());
        }
        session.protection = Protection::implicit();
    }
    reply(stream, 220, &config.banner)?;
    session.serve(stream)
}

impl Session<'_> {
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

    fn command(&mut self, stream: &mut Stream, line: &[u8]) -> io::Result<Flow> {
        let (verb, arg) = split_command(line);
        if verb == "PASS" {
            log::debug!("{} <- PASS ****", self.peer);
        } else {
            log::debug!("{} <- {}", self.peer, printable(line));
        }
        // RNFR must be followed at once by RNTO.
        let rename_from = self.rename_from.take();
        match verb.as_str() {
            "USER" | "PASS" if self.refuse_clear_login(stream)? => {}
            "USER" => self.user_cmd(stream, arg)?,
            "PASS" => return self.pass(stream, arg),
            "QUIT" => {
                reply(stream, 221, "Goodbye.")?;
                return Ok(Flow::Close);
            }
            "NOOP" => reply(stream, 200, "NOOP ok.")?,
            "SYST" => reply(stream, 215, "UNIX Type: L8")?,
            "FEAT" => self.feat(stream)?,
            "HELP" => {
                let lines: Vec<String> = VERBS.chunks(8).map(|c| c.join(" ")).collect();
                reply_lines(
                    stream,
                    214,
                    "The following commands are recognized:",
                    &lines,
                    "Help OK.",
                )?;
            }
            "OPTS" => self.opts(stream, arg)?,
            "AUTH" => return self.auth(stream, arg),
            "PBSZ" => self.pbsz(stream, arg)?,
            "PROT" => self.prot(stream, arg)?,
            "CCC" => self.ccc(stream)?,
            _ if self.login.is_none() => {
                reply(stream, 530, "Please log in with USER and PASS.")?;
            }
            _ => return self.logged_in(stream, &verb, arg, rename_from),
        }
        Ok(Flow::Continue)
    }

    fn logged_in(
        &mut self,
        stream: &mut Stream,
        verb: &str,
        arg: &[u8],
        rename_from: Option<(Entry, VPath)>,
    ) -> io::Result<Flow> {
        match verb {
            "STAT" => self.stat(stream, arg)?,
            "ALLO" => reply(stream, 202, "No storage allocation necessary.")?,
            "MODE" => match arg.to_ascii_uppercase().as_slice() {
                b"S" => reply(stream, 200, "Mode set to S.")?,
                _ => reply(stream, 504, "Only MODE S is supported.")?,
            },
            "STRU" => match arg.to_ascii_uppercase().as_slice() {
                b"F" => reply(stream, 200, "Structure set to F.")?,
                _ => reply(stream, 504, "Only STRU F is supported.")?,
            },
            "TYPE" => self.type_cmd(stream, arg)?,
            "PWD" | "XPWD" => {
                let text = format!(
                    "{} is the current directory.",
                    quote(&self.vfs.cwd().to_bytes())
                );
                reply(stream, 257, &text)?;
            }
            "CWD" | "XCWD" => self.cwd(stream, arg)?,
            "CDUP" | "XCUP" => self.cwd(stream, b"..")?,
            "PASV" => self.pasv(stream)?,
            "EPSV" => self.epsv(stream, arg)?,
            "PORT" => self.active(stream, arg, false)?,
            "EPRT" => self.active(stream, arg, true)?,
            "REST" => match std::str::from_utf8(arg)
                .ok()
                .and_then(|a| a.parse::<u64>().ok())
            {
                Some(offset) => {
                    self.rest = offset;
                    reply(
                        stream,
                        350,
                        &format!("Restart position accepted ({offset})."),
                    )?;
                }
                None => reply(stream, 501, "REST needs a byte offset.")?,
            },
            "ABOR" => {
                self.data = DataPlan::None;
                reply(stream, 225, "No transfer to abort.")?;
            }
            "SIZE" => self.size(stream, arg)?,
            "MDTM" => self.mdtm(stream, arg)?,
            "MLST" => self.mlst(stream, arg)?,
            _ if DATA_VERBS.contains(&verb) && self.refuse_clear_data(stream)? => {}
            "LIST" | "NLST" | "MLSD" => return self.listing(stream, verb, arg),
            "RETR" => return self.retr(stream, arg),
            "STOR" | "APPE" => return self.store(stream, verb, arg),
            "XMD5" | "XSHA1" | "XSHA256" | "HASH" => return self.hash_cmd(stream, verb, arg),
            "SITE" => self.site(stream, arg)?,
            "DELE" | "MKD" | "XMKD" | "RMD" | "XRMD" | "RNFR" | "RNTO" => {
                self.change(stream, verb, arg, rename_from)?;
            }
            _ if NOT_IMPLEMENTED.contains(&verb) => {
                reply(stream, 502, "Command not implemented.")?;
            }
            _ => reply(stream, 500, "Unknown command.")?,
        }
        Ok(Flow::Continue)
    }
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
