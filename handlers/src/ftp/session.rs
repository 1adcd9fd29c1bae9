//! One FTP session: the command loop, login, and every verb.
//!
//! `docs/protocols.md` lists each verb with its replies; this file is that
//! table in code. Replies are written to the stream's buffer and go out
//! before the next read, so pipelined commands get one `send` per batch.

use std::fs;
use std::io::{self, Seek, SeekFrom};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use socketserver::{describe, Stream};

use super::auth::{is_anonymous_name, Access};
use super::config::{Config, HashTransfers, DATA_CONNECT_TIMEOUT, MAX_LOGIN_FAILURES};
use super::control::{printable, reply, reply_lines, split_command, Control, Line};
use super::data::{self, canonical, DataPlan};
use super::entry::Entry;
use super::hash::{is_md5_hex, Algorithm, Digests, FileKey, Hasher};
use super::kept::{copy_kept, observe_kept, KeptCopy};
use super::listing::{self, Facts, Format, Source};
use super::transfer::{self, End, NoObserver, Pipeline, Report, Transfer, Watch};
use super::upload::TempFile;
use super::vfs::{PathError, VPath, Vfs};

/// How long the server goes on reading after refusing an over-long line,
/// so that its reply is not destroyed by a reset.
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
    "ABOR", "ALLO", "APPE", "AUTH", "CDUP", "CWD", "DELE", "EPRT", "EPSV", "FEAT", "HASH", "HELP",
    "LIST", "MDTM", "MKD", "MLSD", "MLST", "MODE", "NLST", "NOOP", "OPTS", "PASS", "PASV", "PORT",
    "PWD", "QUIT", "REST", "RETR", "RMD", "RNFR", "RNTO", "SITE", "SIZE", "STAT", "STOR", "STRU",
    "SYST", "TYPE", "USER", "XCUP", "XCWD", "XMD5", "XMKD", "XPWD", "XRMD", "XSHA1", "XSHA256",
];

/// Verbs of FTP and its extensions that this server does not implement:
/// answered `502`, not `500`.
const NOT_IMPLEMENTED: &[&str] = &[
    "ACCT", "SMNT", "REIN", "STOU", "PBSZ", "PROT", "CCC", "ADAT", "MIC", "CONF", "ENC", "MFMT",
    "MFCT", "MFF", "LANG", "HOST", "XCRC", "XSHA", "XSHA512", "MD5", "MMD5",
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
}

/// How a transfer went, for its reply and log line.
struct Outcome {
    end: End,
    bytes: u64,
    elapsed: Duration,
    quit: bool,
    /// The MD5 that the `226` reply gives.
    md5: Option<String>,
}

impl Outcome {
    fn of<O>(report: Report<O>, md5: Option<String>) -> Outcome {
        Outcome {
            end: report.end,
            bytes: report.bytes,
            elapsed: report.elapsed,
            quit: report.quit,
            md5,
        }
    }
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
    };
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
                Line::TooLong => {
                    log::warn!("{}: command line too long; closing", self.peer);
                    reply(stream, 500, "Command line too long.")?;
                    return stream.lingering_close(LINGER);
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
            "AUTH" => reply(stream, 502, "TLS is not available on this server.")?,
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

    // Login.

    fn user_cmd(&mut self, stream: &mut Stream, arg: &[u8]) -> io::Result<()> {
        if arg.is_empty() {
            return reply(stream, 501, "USER needs a name.");
        }
        let name = String::from_utf8_lossy(arg).into_owned();
        if self.login.take().is_some() {
            // Logged out: a new login gets the usual time.
            self.login_deadline = Instant::now() + self.config.login_timeout;
        }
        let text = if is_anonymous_name(&name) && self.config.anonymous {
            "Anonymous login ok, send your e-mail address as password.".to_string()
        } else {
            format!("Password required for {}.", printable(arg))
        };
        self.user = Some(name);
        reply(stream, 331, &text)
    }

    fn pass(&mut self, stream: &mut Stream, password: &[u8]) -> io::Result<Flow> {
        let Some(name) = self.user.take() else {
            reply(stream, 503, "Login with USER first.")?;
            return Ok(Flow::Continue);
        };
        if is_anonymous_name(&name) && self.config.anonymous {
            log::info!("{}: anonymous login (read-only)", self.peer);
            self.log_in(stream, "anonymous", Access::ReadOnly)?;
            reply(stream, 230, "Anonymous access granted: read-only.")?;
            return Ok(Flow::Continue);
        }
        // Guessing is slowed per account, per address and server-wide.
        let (throttle, ip) = (&self.config.throttle, Some(self.peer.ip()));
        let wait = throttle.before_attempt(&name, ip);
        if !wait.is_zero() {
            log::info!("{}: login for {name:?} waits {wait:.1?}", self.peer);
            std::thread::sleep(wait);
        }
        if self.config.users.check(&name, password) {
            throttle.succeeded(&name);
            let access = if self.config.read_only {
                Access::ReadOnly
            } else {
                Access::ReadWrite
            };
            log::info!("{}: {name:?} logged in", self.peer);
            self.log_in(stream, &name, access)?;
            reply(stream, 230, "Login successful.")?;
            return Ok(Flow::Continue);
        }
        self.failures += 1;
        log::warn!(
            "{}: failed login for {name:?} ({} of {MAX_LOGIN_FAILURES})",
            self.peer,
            self.failures
        );
        stream.flush()?;
        std::thread::sleep(throttle.failed(&name, ip));
        reply(stream, 530, "Login incorrect.")?;
        if self.failures >= MAX_LOGIN_FAILURES {
            log::warn!("{}: too many failed logins; closing", self.peer);
            stream.lingering_close(LINGER)?;
            return Ok(Flow::Close);
        }
        Ok(Flow::Continue)
    }

    fn log_in(&mut self, stream: &mut Stream, name: &str, access: Access) -> io::Result<()> {
        self.login = Some(Login {
            name: name.to_string(),
            access,
        });
        // The anonymous user sees only what everyone may read.
        self.vfs.set_world_readable_only(name == "anonymous");
        stream.set_read_timeout(self.idle)
    }

    fn writable(&self) -> bool {
        self.login
            .as_ref()
            .is_some_and(|l| l.access == Access::ReadWrite)
    }

    // Settings.

    fn feat(&self, stream: &mut Stream) -> io::Result<()> {
        let lines: Vec<String> = [
            "EPRT".to_string(),
            "EPSV".to_string(),
            format!("HASH {}", self.hash_feat()),
            "MDTM".to_string(),
            format!("MLST {}", self.facts.feat()),
            "PASV".to_string(),
            "REST STREAM".to_string(),
            "SIZE".to_string(),
            "TVFS".to_string(),
            "UTF8".to_string(),
            "XMD5".to_string(),
            "XSHA1".to_string(),
            "XSHA256".to_string(),
        ]
        .into();
        reply_lines(stream, 211, "Features:", &lines, "End")
    }

    fn opts(&mut self, stream: &mut Stream, arg: &[u8]) -> io::Result<()> {
        let arg = String::from_utf8_lossy(arg);
        let (option, value) = arg.split_once(' ').unwrap_or((&arg, ""));
        match option.to_ascii_uppercase().as_str() {
            "UTF8" | "UTF-8" => reply(stream, 200, "Always in UTF8 mode."),
            "MLST" => {
                self.facts = Facts::parse(value);
                reply(stream, 200, &format!("MLST OPTS {}", self.facts.selected()))
            }
            "HASH" if value.trim().is_empty() => reply(stream, 200, self.hash.name()),
            "HASH" => match Algorithm::parse(value) {
                Some(algorithm) => {
                    self.hash = algorithm;
                    reply(stream, 200, algorithm.name())
                }
                None => reply(
                    stream,
                    501,
                    "Unknown algorithm, current selection not changed",
                ),
            },
            _ => reply(stream, 501, "Option not understood."),
        }
    }

    fn type_cmd(&mut self, stream: &mut Stream, arg: &[u8]) -> io::Result<()> {
        let arg = String::from_utf8_lossy(arg).to_ascii_uppercase();
        let words: Vec<&str> = arg.split_whitespace().collect();
        match words[..] {
            ["I"] | ["L", "8"] | ["L8"] => {
                self.ascii = false;
                reply(stream, 200, "Switching to Binary mode.")
            }
            ["A"] | ["A", "N"] => {
                self.ascii = true;
                reply(stream, 200, "Switching to ASCII mode.")
            }
            _ => reply(stream, 504, "Only TYPE A, I and L 8 are supported."),
        }
    }

    fn stat(&mut self, stream: &mut Stream, arg: &[u8]) -> io::Result<()> {
        if arg.is_empty() {
            let user = self.login.as_ref().map_or("", |l| l.name.as_str());
            let lines = vec![
                format!("Connected from {}", self.peer.ip()),
                format!("Logged in as {user}"),
                format!("TYPE: {}", if self.ascii { "ASCII" } else { "BINARY" }),
                "No data connection".to_string(),
            ];
            return reply_lines(stream, 211, "FTP server status:", &lines, "End of status");
        }
        let Listed { path, source, .. } = match self.list_target(arg) {
            Ok(found) => found,
            Err(e) => return reply(stream, 550, &e.message()),
        };
        // Each line goes out as it is made (the stream's buffer sends as
        // it fills): a large folder is never held whole.
        let mut lines = listing::Lines::new(
            source,
            Format::Ls {
                now: listing::now(),
            },
        );
        let first = format!("Status of {}:", printable(&path.to_bytes()));
        stream.write_all(format!("213-{}\r\n", printable(first.as_bytes())).as_bytes())?;
        while let Some(line) = lines.next_line() {
            let line = &line[..line.len() - 2];
            stream.write_all(format!(" {}\r\n", printable(line)).as_bytes())?;
        }
        self.warn_truncated(&path, &lines);
        reply(stream, 213, "End of status")
    }

    /// Logs a listing cut at `--max-list-entries`.
    fn warn_truncated(&self, path: &VPath, lines: &listing::Lines) {
        if lines.truncated() {
            log::warn!(
                "{}: listing of {} cut at {} entries",
                self.peer,
                printable(&path.to_bytes()),
                self.config.max_list_entries
            );
        }
    }

    // Navigation and facts.

    fn cwd(&mut self, stream: &mut Stream, arg: &[u8]) -> io::Result<()> {
        let result = self
            .vfs
            .resolve(arg)
            .and_then(|path| self.vfs.change_dir(path));
        match result {
            Ok(()) => reply(stream, 250, "Directory successfully changed."),
            Err(e) => reply(stream, 550, &e.message()),
        }
    }

    fn size(&mut self, stream: &mut Stream, arg: &[u8]) -> io::Result<()> {
        match self.file_meta(arg) {
            Ok((_, meta)) => reply(stream, 213, &meta.len().to_string()),
            Err(e) => reply(stream, 550, &e.message()),
        }
    }

    fn mdtm(&mut self, stream: &mut Stream, arg: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        match self.file_meta(arg) {
            Ok((_, meta)) => reply(stream, 213, &listing::timestamp(meta.mtime())),
            Err(e) => reply(stream, 550, &e.message()),
        }
    }

    /// A regular file's path and metadata.
    fn file_meta(&self, arg: &[u8]) -> Result<(VPath, fs::Metadata), PathError> {
        let path = self.vfs.resolve(arg)?;
        let meta = self.vfs.metadata(&path)?;
        if !meta.is_file() {
            return Err(PathError::NotFound);
        }
        Ok((path, meta))
    }

    fn mlst(&mut self, stream: &mut Stream, arg: &[u8]) -> io::Result<()> {
        let found = self.vfs.resolve(arg).and_then(|path| {
            let meta = self.vfs.metadata(&path)?;
            Ok((path, meta))
        });
        match found {
            Ok((path, meta)) => {
                let shown = path.to_bytes();
                let mut line = Vec::new();
                let readable = self.vfs.may_read(&meta);
                let writable = self.writable();
                listing::facts_line(&mut line, &shown, &meta, self.facts, writable, readable);
                line.truncate(line.len() - 2);
                let first = format!("Listing {}", printable(&shown));
                let line = String::from_utf8_lossy(&line).into_owned();
                reply_lines(stream, 250, &first, &[line], "End")
            }
            Err(e) => reply(stream, 550, &e.message()),
        }
    }

    /// What `LIST`/`STAT` show for `arg`: a folder's entries (read as
    /// they are listed), or one file.
    fn list_target(&self, arg: &[u8]) -> Result<Listed, PathError> {
        let path = self.vfs.resolve(arg)?;
        let meta = self.vfs.metadata(&path)?;
        if !meta.is_dir() {
            let name = path.name().unwrap_or(b"/").to_vec();
            return Ok(Listed {
                path,
                source: Source::File(Some(listing::Entry { name, meta })),
                folder: false,
            });
        }
        let folder = self.vfs.open_folder(&path)?;
        let entries = listing::Entries::new(folder, self.config.max_list_entries);
        Ok(Listed {
            path,
            source: Source::Folder(entries),
            folder: true,
        })
    }

    // Data connections.

    fn pasv(&mut self, stream: &mut Stream) -> io::Result<()> {
        if self.epsv_all {
            return reply(stream, 503, "EPSV ALL was sent: use EPSV.");
        }
        let IpAddr::V4(ip) = canonical(self.local.ip()) else {
            return reply(stream, 522, "PASV works over IPv4 only: use EPSV.");
        };
        match self.listen() {
            Ok(port) => reply(stream, 227, &data::pasv_text(ip, port)),
            Err(e) => reply(stream, 425, &format!("Cannot listen: {}.", describe(&e))),
        }
    }

    fn epsv(&mut self, stream: &mut Stream, arg: &[u8]) -> io::Result<()> {
        let family = if canonical(self.local.ip()).is_ipv4() {
            b"1"
        } else {
            b"2"
        };
        match arg.to_ascii_uppercase().as_slice() {
            b"ALL" => {
                self.epsv_all = true;
                return reply(stream, 200, "EPSV ALL ok.");
            }
            b"" => {}
            other if other == family => {}
            b"1" | b"2" => {
                let text = format!(
                    "Network protocol not supported, use ({})",
                    family[0] as char
                );
                return reply(stream, 522, &text);
            }
            _ => return reply(stream, 501, "EPSV takes 1, 2 or ALL."),
        }
        match self.listen() {
            Ok(port) => reply(
                stream,
                229,
                &format!("Entering Extended Passive Mode (|||{port}|)"),
            ),
            Err(e) => reply(stream, 425, &format!("Cannot listen: {}.", describe(&e))),
        }
    }

    /// A new passive listener (the previous one, if any, is closed).
    fn listen(&mut self) -> io::Result<u16> {
        self.data = DataPlan::None;
        let ip = canonical(self.local.ip());
        let listener = data::passive_listener(ip, self.config.passive_ports.as_ref())?;
        let port = listener.local_addr()?.port();
        let deadline = Instant::now() + self.config.passive_timeout;
        self.data = DataPlan::Passive { listener, deadline };
        Ok(port)
    }

    fn active(&mut self, stream: &mut Stream, arg: &[u8], extended: bool) -> io::Result<()> {
        if !self.config.active {
            return reply(stream, 502, "Active mode is turned off: use PASV or EPSV.");
        }
        if self.epsv_all {
            return reply(stream, 503, "EPSV ALL was sent: use EPSV.");
        }
        let arg = String::from_utf8_lossy(arg);
        let parsed = if extended {
            data::parse_eprt(&arg)
        } else {
            data::parse_port(&arg)
        };
        let Some(addr) = parsed else {
            return if extended
                && !arg.trim().is_empty()
                && !arg.contains("|1|")
                && !arg.contains("|2|")
            {
                reply(stream, 522, "Network protocol not supported, use (1,2)")
            } else {
                reply(stream, 501, "Syntax error in the address.")
            };
        };
        let allow_loopback = self.config.loopback_active;
        if let Some((code, why)) = data::refuse_active(addr, self.peer.ip(), allow_loopback) {
            log::warn!("{}: refused an active connection to {addr}", self.peer);
            return reply(stream, code, why);
        }
        self.data = DataPlan::Active(addr);
        let verb = if extended { "EPRT" } else { "PORT" };
        reply(stream, 200, &format!("{verb} command successful."))
    }

    /// Opens the data connection set up by the last PASV/EPSV/PORT/EPRT,
    /// saying `150 TEXT` first. `None` if it failed (the `425` is sent).
    fn open_data(&mut self, stream: &mut Stream, text: &str) -> io::Result<Option<TcpStream>> {
        match std::mem::take(&mut self.data) {
            DataPlan::None => {
                reply(stream, 425, "Use PASV, EPSV, PORT or EPRT first.")?;
                Ok(None)
            }
            DataPlan::Expired => {
                let text =
                    "No data connection: the passive port timed out; use PASV or EPSV again.";
                reply(stream, 425, text)?;
                Ok(None)
            }
            DataPlan::Passive { listener, .. } => {
                reply(stream, 150, text)?;
                stream.flush()?;
                let deadline = Instant::now() + self.config.passive_timeout;
                match data::accept_from(&listener, self.peer.ip(), deadline) {
                    Ok(data) => Ok(Some(data)),
                    Err(e) => {
                        log::info!("{}: no data connection: {}", self.peer, describe(&e));
                        reply(stream, 425, "Cannot open the data connection.")?;
                        Ok(None)
                    }
                }
            }
            DataPlan::Active(addr) => match data::connect(addr, DATA_CONNECT_TIMEOUT) {
                Ok(data) => {
                    reply(stream, 150, text)?;
                    stream.flush()?;
                    Ok(Some(data))
                }
                Err(e) => {
                    log::info!("{}: cannot connect to {addr}: {}", self.peer, describe(&e));
                    reply(stream, 425, "Cannot open the data connection.")?;
                    Ok(None)
                }
            },
        }
    }

    fn transfer<'s>(&'s mut self, stream: &'s mut Stream, data: TcpStream) -> Transfer<'s> {
        Transfer {
            watch: Watch {
                stream,
                control: &mut self.control,
                busy_with: "Transfer",
            },
            data,
            idle: self.idle,
            ascii: self.ascii,
        }
    }

    // Listings.

    fn listing(&mut self, stream: &mut Stream, verb: &str, arg: &[u8]) -> io::Result<Flow> {
        let arg = if verb == "MLSD" {
            arg
        } else {
            skip_options(arg)
        };
        let Listed {
            path,
            mut source,
            folder: is_folder,
        } = match self.list_target(arg) {
            Ok(found) => found,
            Err(e) => {
                reply(stream, 550, &e.message())?;
                return Ok(Flow::Continue);
            }
        };
        if verb == "MLSD" && !is_folder {
            reply(stream, 501, "MLSD needs a directory: use MLST for a file.")?;
            return Ok(Flow::Continue);
        }
        let format = match verb {
            "LIST" => Format::Ls {
                now: listing::now(),
            },
            "MLSD" => Format::Facts {
                facts: self.facts,
                writable: self.writable(),
                world_only: self.vfs.world_only(),
            },
            _ => {
                // NLST of a file names it as the client did.
                if let Source::File(Some(entry)) = &mut source {
                    entry.name = arg.to_vec();
                }
                Format::Names
            }
        };
        let mut lines = listing::Lines::new(source, format);
        let Some(data) = self.open_data(stream, "Here comes the directory listing.")? else {
            return Ok(Flow::Continue);
        };
        let ascii = std::mem::replace(&mut self.ascii, false);
        let report = self
            .transfer(stream, data)
            .send(&mut lines, Pipeline::<NoObserver>::new(None));
        self.ascii = ascii;
        self.warn_truncated(&path, &lines);
        let outcome = Outcome::of(report, None);
        self.finish(stream, verb, &path, outcome, "Directory send OK.")
    }

    // Transfers.

    fn retr(&mut self, stream: &mut Stream, arg: &[u8]) -> io::Result<Flow> {
        let rest = std::mem::take(&mut self.rest);
        let opened = self.vfs.resolve(arg).and_then(|path| {
            let (file, meta) = self.vfs.open_file(&path)?;
            Ok((path, file, meta))
        });
        let (path, mut file, meta) = match opened {
            Ok(found) => found,
            Err(e) => {
                reply(stream, 550, &e.message())?;
                return Ok(Flow::Continue);
            }
        };
        if rest > 0 {
            if let Err(e) = file.seek(SeekFrom::Start(rest)) {
                reply(stream, 550, &format!("Cannot seek: {}.", describe(&e)))?;
                return Ok(Flow::Continue);
            }
        }
        // The MD5 of a whole file may be known already: then, unless told
        // to hash always, the download goes at full copy speed.
        let key = FileKey::of(&meta);
        let cached = if rest == 0 {
            self.digests.get(&key, Algorithm::Md5)
        } else {
            None
        };
        let hash = match self.config.hash_transfers {
            HashTransfers::Always => true,
            HashTransfers::Auto => cached.is_none(),
            HashTransfers::Off => false,
        };
        let text = format!(
            "Opening {} mode data connection for {} ({} bytes).",
            if self.ascii { "ASCII" } else { "BINARY" },
            printable(path.name().unwrap_or(b"/")),
            meta.len()
        );
        let Some(data) = self.open_data(stream, &text)? else {
            return Ok(Flow::Continue);
        };
        let started = SystemTime::now();
        let mut outcome = if hash || self.ascii {
            let pipe = Pipeline::new(hash.then(|| Algorithm::Md5.hasher()));
            let report = self.transfer(stream, data).send(&mut file, pipe);
            let md5 = report.observer.clone().map(Hasher::hex);
            Outcome::of(report, md5)
        } else {
            Outcome::of(self.transfer(stream, data).send_file(&mut file), None)
        };
        // The digest of what was sent is the file's if it was all of it
        // and the file did not change meanwhile: cache it. A cached digest
        // is given only if the file stayed that version throughout.
        let unchanged = file.metadata().is_ok_and(|m| FileKey::of(&m) == key);
        if let (Some(md5), End::Complete, 0, true) = (&outcome.md5, &outcome.end, rest, unchanged) {
            self.digests.put(key, Algorithm::Md5, md5, started);
        }
        if outcome.md5.is_none() && unchanged {
            outcome.md5 = cached;
        }
        self.finish(stream, "RETR", &path, outcome, "Transfer complete.")
    }

    fn store(&mut self, stream: &mut Stream, verb: &str, arg: &[u8]) -> io::Result<Flow> {
        let rest = std::mem::take(&mut self.rest);
        let expected = self.check_md5.take();
        if !self.writable() {
            reply(stream, 550, "Permission denied.")?;
            return Ok(Flow::Continue);
        }
        let prepared = self.prepare_upload(verb, arg, rest);
        let Upload {
            path,
            target,
            mut temp,
            old,
        } = match prepared {
            Ok(found) => found,
            Err((code, text)) => {
                reply(stream, code, &text)?;
                return Ok(Flow::Continue);
            }
        };
        // The MD5 given is the stored file's, its kept part included. That
        // part is copied by the kernel, unread, while the new bytes arrive;
        // it is copied first, read back and hashed only when the digest is
        // needed (SITE CHKHASH) or asked for always; otherwise a resume's
        // 226 gives no MD5.
        let kept = old.as_ref().map_or(0, |(_, len)| *len);
        let hash = match self.config.hash_transfers {
            _ if expected.is_some() => true,
            HashTransfers::Always => true,
            HashTransfers::Auto => kept == 0,
            HashTransfers::Off => false,
        };
        let mut pipe = Pipeline::new(hash.then(|| Algorithm::Md5.hasher()));
        let mut copy = None;
        if let Some((old, len)) = old {
            let started = if hash {
                let never = std::sync::atomic::AtomicBool::new(false);
                copy_kept(&old, len, temp.file(), &never)
                    .and_then(|()| observe_kept(temp.file(), len, &mut pipe))
            } else {
                KeptCopy::start(old, len, temp.file()).map(|started| copy = Some(started))
            };
            // The new bytes go after the kept part.
            let placed = started.and_then(|()| temp.file().seek(SeekFrom::Start(len)));
            if let Err(e) = placed {
                reply(stream, 451, &local_error(&e))?;
                return Ok(Flow::Continue);
            }
        }
        let text = format!(
            "Ok to send data for {}.",
            printable(path.name().unwrap_or(b""))
        );
        let Some(data) = self.open_data(stream, &text)? else {
            return Ok(Flow::Continue);
        };
        let report = self.transfer(stream, data).receive(temp.file(), pipe);
        let md5 = report.observer.clone().map(Hasher::hex);
        let mut outcome = Outcome::of(report, md5);
        // The kept part must be all there before the file is made visible.
        if let (Some(copy), End::Complete) = (copy, &outcome.end) {
            if let Err(e) = copy.finish() {
                outcome.end = End::File(e);
            }
        }
        if let End::Complete = outcome.end {
            let mismatch = match (&expected, &outcome.md5) {
                (Some(want), Some(got)) => want != got,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if mismatch {
                outcome.end = End::Mismatch(expected.unwrap_or_default());
            } else if let Err(e) = temp.sync() {
                outcome.end = End::File(e);
            } else if let Err(end) = self.still_there(stream, outcome.bytes, &mut outcome.quit) {
                outcome.end = end;
            } else if let Err(e) = temp.commit(&target) {
                outcome.end = End::File(e);
            }
        }
        self.finish(stream, verb, &path, outcome, "Transfer complete.")
    }

    /// A last look at the control connection before an upload is made
    /// visible. A client killed mid-upload closes both its connections,
    /// and the end of the data connection may be seen first: its control
    /// connection's end has had the time of the fsync to arrive.
    fn still_there(&mut self, stream: &mut Stream, bytes: u64, quit: &mut bool) -> Result<(), End> {
        Watch {
            stream,
            control: &mut self.control,
            busy_with: "Transfer",
        }
        .check(bytes, quit)
    }

    /// Checks an upload's target and makes its temp file; returns the old
    /// file too, with how much of it is kept (`APPE`: all of it; `REST n`
    /// + `STOR`: its first n bytes), to be copied first.
    fn prepare_upload(&self, verb: &str, arg: &[u8], rest: u64) -> Result<Upload, (u16, String)> {
        let fail = |e: PathError| (550, e.message());
        let path = self.vfs.resolve(arg).map_err(fail)?;
        if arg.is_empty() {
            return Err((501, format!("{verb} needs a file name.")));
        }
        let target = self.vfs.entry(&path).map_err(fail)?;
        if target.is_dir() {
            return Err((550, "Is a directory.".to_string()));
        }
        let keep = if verb == "APPE" { u64::MAX } else { rest };
        let mut old = None;
        if keep > 0 {
            // The old file is opened beneath the root: a link leading out
            // of it is refused, not copied.
            old = match self.vfs.open_file(&path) {
                Ok((file, meta)) => Some((file, meta.len())),
                Err(PathError::NotFound) => None,
                Err(e) => return Err(fail(e)),
            };
            let length = old.as_ref().map_or(0, |(_, length)| *length);
            if verb == "STOR" && length < rest {
                return Err((
                    554,
                    format!(
                        "Restart position {rest} is beyond the end of the file ({length} bytes)."
                    ),
                ));
            }
        }
        let temp = TempFile::create(target.folder()).map_err(|e| (451, local_error(&e)))?;
        let old = old.map(|(file, length)| (file, length.min(keep)));
        Ok(Upload {
            path,
            target,
            temp,
            old,
        })
    }

    /// Replies to the end of a transfer and logs it.
    fn finish(
        &mut self,
        stream: &mut Stream,
        verb: &str,
        path: &VPath,
        outcome: Outcome,
        done: &str,
    ) -> io::Result<Flow> {
        let result = match &outcome.end {
            End::Complete => "ok".to_string(),
            End::Aborted => "aborted".to_string(),
            End::ControlClosed if cut_by_server(stream) => CUT.to_string(),
            End::ControlClosed => "client gone".to_string(),
            End::TimedOut => "timed out".to_string(),
            End::Data(e) => format!("data connection: {}", describe(e)),
            End::File(e) => format!("file: {}", describe(e)),
            End::Mismatch(want) => format!("discarded: SITE CHKHASH expected md5={want}"),
        };
        let line = format!(
            "{} user={} {verb} {} bytes={} seconds={:.3} md5={} result={result}",
            self.peer,
            self.login.as_ref().map_or("-", |l| l.name.as_str()),
            printable(&path.to_bytes()),
            outcome.bytes,
            outcome.elapsed.as_secs_f64(),
            outcome.md5.as_deref().unwrap_or("-"),
        );
        if matches!(verb, "RETR" | "STOR" | "APPE") {
            log::info!("transfer {line}");
        } else {
            log::debug!("listing {line}");
        }
        match outcome.end {
            End::Complete => match &outcome.md5 {
                Some(md5) => reply(stream, 226, &format!("{done} MD5={md5}"))?,
                None => reply(stream, 226, done)?,
            },
            End::Aborted => {
                reply(stream, 426, "Connection closed; transfer aborted.")?;
                reply(stream, 226, "ABOR successful.")?;
            }
            End::ControlClosed => return Ok(Flow::Close),
            End::TimedOut => reply(stream, 426, "Data connection timed out; transfer aborted.")?,
            End::Data(_) => reply(stream, 426, "Connection closed; transfer aborted.")?,
            End::File(e) if is_no_space(&e) => reply(stream, 452, "Insufficient storage space.")?,
            End::File(e) => reply(stream, 451, &local_error(&e))?,
            End::Mismatch(want) => {
                let text = format!(
                    "MD5 mismatch: received MD5={}, SITE CHKHASH expected {want}; \
                     the upload was discarded.",
                    outcome.md5.as_deref().unwrap_or("-")
                );
                reply(stream, 550, &text)?;
            }
        }
        if outcome.quit {
            reply(stream, 221, "Goodbye.")?;
            return Ok(Flow::Close);
        }
        Ok(Flow::Continue)
    }

    // Hashes: XMD5, XSHA1, XSHA256, HASH, SITE CHKHASH.

    /// `HASH`'s algorithms for FEAT, the selected one starred.
    fn hash_feat(&self) -> String {
        let names: Vec<String> = Algorithm::ALL
            .iter()
            .map(|&a| {
                let star = if a == self.hash { "*" } else { "" };
                format!("{}{star}", a.name())
            })
            .collect();
        names.join(";")
    }

    /// A file's digest, from the cache or computed now (with the control
    /// connection watched, as during a transfer).
    fn hash_cmd(&mut self, stream: &mut Stream, verb: &str, arg: &[u8]) -> io::Result<Flow> {
        let algorithm = match verb {
            "XMD5" => Algorithm::Md5,
            "XSHA1" => Algorithm::Sha1,
            "XSHA256" => Algorithm::Sha256,
            _ => self.hash,
        };
        if arg.is_empty() {
            reply(stream, 501, &format!("{verb} needs a file name."))?;
            return Ok(Flow::Continue);
        }
        let found = self.vfs.resolve(arg).and_then(|path| {
            let meta = self.vfs.metadata(&path)?;
            Ok((path, meta))
        });
        let (path, meta) = match found {
            Ok(found) => found,
            Err(e) => {
                reply(stream, 550, &e.message())?;
                return Ok(Flow::Continue);
            }
        };
        if meta.is_dir() {
            reply(stream, 553, "Is a directory: only files have a hash.")?;
            return Ok(Flow::Continue);
        }
        if !meta.is_file() {
            reply(stream, 553, "Not a regular file.")?;
            return Ok(Flow::Continue);
        }
        let (mut file, meta) = match self.vfs.open_file(&path) {
            Ok(opened) => opened,
            Err(e) => {
                reply(stream, 550, &e.message())?;
                return Ok(Flow::Continue);
            }
        };
        let key = FileKey::of(&meta);
        let size = meta.len();
        let answer = |stream: &mut Stream, hex: &str| match verb {
            "HASH" => {
                let text = format!("{} 0-{size} {hex} {}", algorithm.name(), printable(arg));
                reply(stream, 213, &text)
            }
            _ => reply(stream, 250, hex),
        };
        if let Some(hex) = self.digests.get(&key, algorithm) {
            answer(stream, &hex)?;
            return Ok(Flow::Continue);
        }
        if let Some(max) = self.config.hash_max_size.filter(|&max| size > max) {
            let text =
                format!("File too large to hash on demand ({size} bytes; the limit is {max}).");
            reply(stream, 550, &text)?;
            return Ok(Flow::Continue);
        }
        let Some(permit) = self.digests.permit(self.config.max_hashes) else {
            log::warn!("{}: {verb} refused: too many hashes running", self.peer);
            reply(
                stream,
                450,
                "Too many hash computations running; try again later.",
            )?;
            return Ok(Flow::Continue);
        };
        stream.flush()?;
        let started = SystemTime::now();
        let watch = Watch {
            stream,
            control: &mut self.control,
            busy_with: "Hashing",
        };
        let report =
            transfer::observe_file(watch, &mut file, Pipeline::new(Some(algorithm.hasher())));
        drop(permit);
        let unchanged = file.metadata().is_ok_and(|m| FileKey::of(&m) == key);
        let hex = report.observer.clone().map(Hasher::hex);
        let result = match (&report.end, unchanged, &hex) {
            (End::Complete, true, Some(hex)) => {
                self.digests.put(key, algorithm, hex, started);
                answer(stream, hex)?;
                "ok".to_string()
            }
            (End::Complete, _, _) => {
                reply(
                    stream,
                    450,
                    "The file changed while it was hashed; try again.",
                )?;
                "file changed".to_string()
            }
            (End::Aborted, _, _) => {
                reply(stream, 426, "Hashing aborted.")?;
                reply(stream, 226, "ABOR successful.")?;
                "aborted".to_string()
            }
            (End::ControlClosed, _, _) if cut_by_server(stream) => CUT.to_string(),
            (End::ControlClosed, _, _) => "client gone".to_string(),
            (End::File(e), _, _) => {
                reply(stream, 451, &local_error(e))?;
                format!("file: {}", describe(e))
            }
            (End::TimedOut | End::Data(_) | End::Mismatch(_), _, _) => "failed".to_string(),
        };
        log::info!(
            "hash {} user={} {verb} {} bytes={} seconds={:.3} {}={} result={result}",
            self.peer,
            self.login.as_ref().map_or("-", |l| l.name.as_str()),
            printable(&path.to_bytes()),
            report.bytes,
            report.elapsed.as_secs_f64(),
            algorithm.name().to_ascii_lowercase(),
            hex.as_deref().unwrap_or("-"),
        );
        if matches!(report.end, End::ControlClosed) {
            return Ok(Flow::Close);
        }
        if report.quit {
            reply(stream, 221, "Goodbye.")?;
            return Ok(Flow::Close);
        }
        Ok(Flow::Continue)
    }

    fn site(&mut self, stream: &mut Stream, arg: &[u8]) -> io::Result<()> {
        let arg = String::from_utf8_lossy(arg);
        let (command, value) = arg.trim().split_once(' ').unwrap_or((arg.trim(), ""));
        match command.to_ascii_uppercase().as_str() {
            "CHKHASH" => {
                let value = value.trim();
                if !is_md5_hex(value) {
                    return reply(
                        stream,
                        501,
                        "SITE CHKHASH needs an MD5 digest: 32 hexadecimal digits.",
                    );
                }
                let md5 = value.to_ascii_lowercase();
                let text = format!("The next STOR or APPE is kept only if its MD5 is {md5}.");
                self.check_md5 = Some(md5);
                reply(stream, 200, &text)
            }
            "HELP" => reply_lines(
                stream,
                214,
                "SITE commands:",
                &[
                    "CHKHASH <md5>: the next STOR or APPE lands only if the stored file has this MD5"
                        .to_string(),
                    "HELP".to_string(),
                ],
                "End",
            ),
            _ => reply(stream, 502, "Unknown SITE command: see SITE HELP."),
        }
    }

    // Changes: DELE, MKD, RMD, RNFR, RNTO.

    fn change(
        &mut self,
        stream: &mut Stream,
        verb: &str,
        arg: &[u8],
        rename_from: Option<(Entry, VPath)>,
    ) -> io::Result<()> {
        if !self.writable() {
            return reply(stream, 550, "Permission denied.");
        }
        if arg.is_empty() {
            return reply(stream, 501, &format!("{verb} needs a name."));
        }
        let found = self
            .vfs
            .resolve(arg)
            .and_then(|path| Ok((self.vfs.entry(&path)?, path)));
        let (entry, path) = match found {
            Ok(found) => found,
            Err(e) => return reply(stream, 550, &e.message()),
        };
        let missing = || Err(io::Error::from(io::ErrorKind::NotFound));
        let result = match verb {
            "DELE" if entry.is_dir() => return reply(stream, 550, "Is a directory: use RMD."),
            "DELE" if !entry.exists() => missing(),
            "DELE" => entry
                .remove_file()
                .map(|()| (250, "Delete operation successful.".into())),
            "MKD" | "XMKD" => entry
                .make_dir()
                .map(|()| (257, format!("{} created.", quote(&path.to_bytes())))),
            "RMD" | "XRMD" if !entry.exists() => missing(),
            "RMD" | "XRMD" if !entry.is_dir() => return reply(stream, 550, "Not a directory."),
            "RMD" | "XRMD" => entry
                .remove_dir()
                .map(|()| (250, "Remove directory operation successful.".into())),
            "RNFR" if !entry.exists() => missing(),
            "RNFR" => {
                // The source is kept as its folder's descriptor and name:
                // RNTO renames from that folder, wherever it is by then.
                self.rename_from = Some((entry, path.clone()));
                Ok((350, "Ready for RNTO.".into()))
            }
            _ => match rename_from {
                None => return reply(stream, 503, "RNFR required first."),
                Some((from, _)) => from
                    .rename_to(&entry)
                    .map(|()| (250, "Rename successful.".into())),
            },
        };
        match result {
            Ok((code, text)) => {
                if verb != "RNFR" {
                    log::info!(
                        "{} user={} {verb} {}",
                        self.peer,
                        self.login.as_ref().map_or("-", |l| l.name.as_str()),
                        printable(&path.to_bytes())
                    );
                }
                reply(stream, code, &text)
            }
            Err(e) => reply(stream, 550, &fs_message(&e)),
        }
    }
}

/// What a listing shows: a folder's entries, or one file.
struct Listed {
    path: VPath,
    source: Source,
    folder: bool,
}

/// An upload, ready to receive: its path, its target (folder and name),
/// its temp file, and the old file with how many of its bytes are kept.
struct Upload {
    path: VPath,
    target: Entry,
    temp: TempFile,
    old: Option<(std::fs::File, u64)>,
}

/// `LIST -la dir` → `dir`: leading `-` words are `ls` options, ignored.
fn skip_options(mut arg: &[u8]) -> &[u8] {
    while arg.first() == Some(&b'-') {
        arg = match arg.iter().position(|&b| b == b' ') {
            Some(i) => &arg[i + 1..],
            None => &arg[arg.len()..],
        };
    }
    arg
}

/// A path in double quotes, its own quotes doubled (RFC 959, `257`).
fn quote(path: &[u8]) -> String {
    format!("\"{}\"", printable(path).replace('"', "\"\""))
}

fn is_no_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

fn local_error(e: &io::Error) -> String {
    format!("Local error: {}.", describe(e))
}

/// A file system error as a reply text, without paths.
fn fs_message(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "No such file or directory.".into(),
        io::ErrorKind::AlreadyExists => "File exists.".into(),
        io::ErrorKind::DirectoryNotEmpty => "Directory not empty.".into(),
        io::ErrorKind::PermissionDenied => "Permission denied.".into(),
        _ => format!("{}.", describe(e)),
    }
}

/// The result logged for a transfer or hash that the server's shutdown
/// cut (it was still running at the drain deadline).
const CUT: &str = "cut by the shutdown";

/// Whether the server itself closed the control connection (a shutdown's
/// drain deadline cuts busy connections with `shutdown(2)`), rather than
/// the client: a send on a socket whose sending side is shut down fails
/// with `EPIPE` at once, even an empty one, which sends nothing; after the
/// client's close it succeeds, or fails with the reset the client sent.
fn cut_by_server(stream: &Stream) -> bool {
    use std::io::Write;
    let Some(mut socket) = stream.as_tcp() else {
        return false;
    };
    matches!(socket.write(&[]), Err(e) if e.kind() == io::ErrorKind::BrokenPipe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_options_are_skipped() {
        assert_eq!(skip_options(b"-la"), b"");
        assert_eq!(skip_options(b"-a -l dir"), b"dir");
        assert_eq!(skip_options(b"dir -l"), b"dir -l");
    }

    #[test]
    fn quotes_are_doubled() {
        assert_eq!(quote(b"/a\"b"), "\"/a\"\"b\"");
        assert_eq!(quote(b"/x\ny"), "\"/x\\x0ay\"");
        assert_eq!(quote("/\u{202e}\x1b".as_bytes()), "\"/\\u{202e}\\x1b\"");
    }
}
