//! [`Ftp`]: a real FTP server (RFC 959, 1123, 2389, 2428, 3659), grown
//! from the tutorial's file transfer (FTP-上传功能, FTP-下载功能), that
//! curl, Python's ftplib, lftp, FileZilla and the Windows clients use.
//!
//! The wire protocol, verb by verb with its replies, is in
//! `docs/protocols.md`. The parts, one concept per file:
//!
//! | file | what |
//! |---|---|
//! | `session/` | one session: its state and command loop (`mod.rs`), the verb table that drives the dispatch, `HELP` and `FEAT` (`verbs.rs`), then a file per kind of verb: `login.rs`, `settings.rs`, `navigation.rs`, `data_connections.rs`, `listings.rs`, `transfers.rs`, `checksums.rs`, `changes.rs`, `security.rs` |
//! | `control.rs` | command lines in (length cap, Telnet commands), replies out |
//! | `vfs.rs` | path confinement: the virtual tree, clamped at `/`, opened beneath the root; what anonymous users may read |
//! | `root.rs` | the root's descriptor, opened once; `openat2(RESOLVE_BENEATH)` or an `O_NOFOLLOW` walk |
//! | `entry.rs` | what is created, removed, renamed: a folder's descriptor and a name |
//! | `folder.rs` | a folder opened beneath the root, listed by its descriptor |
//! | `upload.rs` | the `O_TMPFILE` temp file of an upload, linked in at commit |
//! | `kept.rs` | the kept part of a resume: copied by the kernel beside the transfer |
//! | `sweep.rs` | at start: named upload temp files a crash left |
//! | `data.rs` | data connections: passive and active, tied to the control peer; accepted and connected non-blocking |
//! | `data_address.rs` | a data connection's address as `PORT`, `EPRT`, `227` and `229` write it: read and written by the server and the client |
//! | `data_conn.rs` | a data connection as the transfer drives it: clear, or TLS (`PROT P`), non-blocking from its handshake to its close |
//! | `ascii.rs` | `TYPE A`: line ends converted chunk by chunk |
//! | `transfer.rs` | copying with the control connection watched; `sendfile(2)`; the on-demand hash, a slice at a time |
//! | `pipeline.rs` | a transfer's buffers, and the observer (hashing) thread they circulate to |
//! | `kernel_pipe.rs` | the pipe an unhashed upload is spliced through, socket to file |
//! | `hash.rs` | MD5, SHA-1, SHA-256; the digest cache; the bound on hash computations |
//! | `client/` | a small FTP client (`client ftp`): the connection and login (`mod.rs`), `control.rs`, `data_connections.rs` (passive mode), `listing.rs`, `transfers.rs` (resume), `verification.rs` (MD5) |
//! | `listing.rs` | `LIST`, `NLST`, `MLSD`/`MLST` formats, streamed entry by entry; dates |
//! | `escape.rs` | names made safe to show: control and bidirectional characters escaped |
//! | `auth.rs` | users, passwords, anonymous, read-only |
//! | `config.rs` | settings and their defaults |
//!
//! ```no_run
//! use socketserver::Server;
//! use socketserver_handlers::Ftp;
//!
//! let ftp = Ftp::new("/srv/ftp")?.user("alice", "secret").anonymous(true);
//! let mut server = Server::bind("127.0.0.1:2121", ftp).build()?;
//! server.serve_forever()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Integrity, the tutorial's MD5 check made standard: every RETR and STOR
//! is hashed while it streams (on another core than the copy) and its
//! `226` reply carries `MD5=<hex>`; `XMD5`, `XSHA1`, `XSHA256` and `HASH`
//! answer on demand; `SITE CHKHASH <md5>` makes the next upload land only
//! if its MD5 matches. Digests are cached per file version.
//!
//! Every model, the event model included ([`socketserver::Model::Event`],
//! where a session shares its thread with every other session of its
//! event loop): a session waits only through its control `Stream` and
//! [`socketserver::event::wait`] (the data connection, its passive
//! listener, its connect and TLS handshake, the control connection during
//! a transfer, all non-blocking), sleeps only by
//! [`socketserver::event::sleep`] (the login throttle), and hands to
//! [`socketserver::event::blocking`] what may keep it waiting on something
//! else: the observer's buffers and end when the hash is behind, the kept
//! part of a resume, the on-demand hash, the `fsync`s of a commit. Outside
//! the event model those are `poll(2)`, `thread::sleep` and a plain call,
//! so the thread models copy exactly as fast as before. A transfer's own
//! file reads and writes stay on the loop (paced by the network, read
//! ahead and written back by the kernel); a transfer that never has to
//! wait yields its loop every 4 MiB.
//!
//! Safety, in short: every path is confined to the root (lexically, then
//! opened by the kernel beneath the root's descriptor, so no link or
//! rename leads out); anonymous users read only what everyone may read;
//! uploads land atomically (an unnamed temp file, fsync, link); data
//! connections are tied to the control connection's peer; command lines,
//! listings, logins and connections per address are bounded; wrong passwords slow later
//! attempts, per account, per address and server-wide ([`crate::throttle`]).
//!
//! FTPS (RFC 4217), with [`Ftp::tls`]: `AUTH TLS` turns the control
//! connection into TLS, `PBSZ 0` and `PROT P` the data connections, which
//! may resume the control connection's session (not required: Python's
//! ftplib cannot); [`Ftp::tls_required`] refuses logins and transfers in
//! clear; [`Ftp::implicit_tls`] serves the old implicit FTPS on a listener
//! of its own. The MD5s, resume and atomic uploads work the same under TLS;
//! only `sendfile(2)` is lost, as the bytes are encrypted in the process.

mod ascii;
mod auth;
pub mod client;
mod config;
mod control;
mod data;
mod data_address;
mod data_conn;
mod entry;
mod escape;
mod folder;
mod hash;
mod kept;
mod kernel_pipe;
mod listing;
mod pipeline;
mod root;
mod session;
mod sweep;
mod transfer;
mod upload;
mod vfs;

use std::io;
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use socketserver::{Refusal, RequestHandler, Stream};

use crate::throttle::{self, Throttle};

pub use auth::{parse_user, read_users_file};
pub use config::{
    default_max_hashes, parse_port_range, parse_size, HashTransfers, DATA_CONNECT_TIMEOUT,
    DEFAULT_BANNER, DEFAULT_HASH_MAX_SIZE, DEFAULT_LOGIN_TIMEOUT, DEFAULT_MAX_LIST_ENTRIES,
    DEFAULT_MAX_PER_IP, DEFAULT_PORT, MAX_COMMAND_LINE,
};
pub use hash::{hex, is_md5_hex, Algorithm, Hasher};
pub use pipeline::Observer;

use config::Config;
use hash::Digests;

/// The FTP request handler. Cheap to clone: the server clones it per
/// connection, and every clone shares the settings and the digest cache.
///
/// The limit of connections per address is the server's
/// ([`socketserver::Builder::max_per_ip`], [`DEFAULT_MAX_PER_IP`] is a good
/// value), kept across every model; over it the client is told `421 Too
/// many connections from your address.` by [`RequestHandler::refuse`].
#[derive(Clone, Debug)]
pub struct Ftp {
    config: Arc<Config>,
    digests: Arc<Digests>,
}

impl Ftp {
    /// Serves the folder `root`, with no user and anonymous access off
    /// (turn on at least one). The folder is opened now, once: every
    /// session resolves its paths beneath this descriptor. Upload temp
    /// files an earlier run left behind are removed (a bounded sweep).
    ///
    /// # Errors
    /// If `root` does not exist or is not a folder.
    pub fn new(root: impl AsRef<Path>) -> io::Result<Ftp> {
        let tree = root::Root::open(root.as_ref())?;
        let swept = sweep::sweep(&tree);
        if swept > 0 {
            log::info!("ftp: removed {swept} upload temp files left by an earlier run");
        }
        Ok(Ftp {
            config: Arc::new(Config {
                tree: Arc::new(tree),
                users: auth::Users::default(),
                anonymous: false,
                read_only: false,
                passive_ports: None,
                active: true,
                loopback_active: false,
                passive_timeout: config::DATA_CONNECT_TIMEOUT,
                login_timeout: DEFAULT_LOGIN_TIMEOUT,
                max_list_entries: DEFAULT_MAX_LIST_ENTRIES,
                banner: DEFAULT_BANNER.to_string(),
                throttle: Throttle::new(
                    throttle::Limits::default().first_delay(config::LOGIN_FAILURE_DELAY),
                ),
                hash_transfers: HashTransfers::default(),
                hash_max_size: Some(config::DEFAULT_HASH_MAX_SIZE),
                max_hashes: config::default_max_hashes(),
                tls: None,
                data_tls: None,
                tls_required: false,
                implicit_tls: false,
            }),
            digests: Arc::default(),
        })
    }

    fn config(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Adds a user with read-write access (unless [`Ftp::read_only`]).
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.config().users.insert(name, password);
        self
    }

    /// Lets `anonymous` and `ftp` log in with any password, read-only.
    /// They see only files that everyone may read (`o+r`), in folders that
    /// everyone may enter (`o+x`).
    pub fn anonymous(mut self, on: bool) -> Self {
        self.config().anonymous = on;
        self
    }

    /// Makes every user read-only.
    pub fn read_only(mut self, on: bool) -> Self {
        self.config().read_only = on;
        self
    }

    /// The ports passive mode listens on (one chosen at random each
    /// time); default: any port the kernel gives.
    pub fn passive_ports(mut self, ports: RangeInclusive<u16>) -> Self {
        self.config().passive_ports = Some(ports);
        self
    }

    /// Allows `PORT` and `EPRT` (on by default; only ever to the control
    /// connection's address, ports 1024 and above, and never for a client
    /// on a loopback address unless [`Ftp::allow_loopback_active`]).
    pub fn active(mut self, on: bool) -> Self {
        self.config().active = on;
        self
    }

    /// Allows active mode (`PORT`, `EPRT`) for clients whose control
    /// connection comes from a loopback address (off by default: a client
    /// behind a local proxy such as stunnel, HAProxy or `ssh -L` shows up
    /// as 127.0.0.1, and could aim the server's data connection at any
    /// service of this machine). Turn on only when every local client is
    /// trusted.
    pub fn allow_loopback_active(mut self, on: bool) -> Self {
        self.config().loopback_active = on;
        self
    }

    /// How long a passive listener (`PASV`, `EPSV`) waits (default
    /// 30 s): it is closed if no transfer command comes within this time
    /// (the transfer command then gets `425`), and a transfer command
    /// waits this long for the client to connect.
    pub fn passive_timeout(mut self, timeout: Duration) -> Self {
        self.config().passive_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long a client has to log in (default 60 s).
    pub fn login_timeout(mut self, timeout: Duration) -> Self {
        self.config().login_timeout = timeout;
        self
    }

    /// Most entries in one listing; a larger folder is listed in part
    /// (and a warning logged).
    pub fn max_list_entries(mut self, max: usize) -> Self {
        self.config().max_list_entries = max;
        self
    }

    /// The text of the `220` greeting.
    pub fn banner(mut self, text: &str) -> Self {
        self.config().banner = text.to_string();
        self
    }

    /// The pause before the `530` of a first wrong password (default
    /// 0.5 s); each further failure on the same account doubles it, up to
    /// 8 s (see [`crate::throttle`]). Replaces the throttle with a fresh
    /// one.
    pub fn login_failure_delay(mut self, delay: Duration) -> Self {
        let limits = self.config.throttle.limits().clone().first_delay(delay);
        self.config().throttle = Throttle::new(limits);
        self
    }

    /// Sets the throttle that slows password guessing: failures are
    /// counted per user name, per client address and server-wide, and
    /// each one delays later attempts more (default: 0.5 s doubling to
    /// 8 s). Pass a clone to share one between handlers.
    pub fn throttle(mut self, throttle: Throttle) -> Self {
        self.config().throttle = throttle;
        self
    }

    /// Which transfers are hashed while they stream, for the `MD5=` of
    /// their `226` reply and their log line (default
    /// [`HashTransfers::Auto`]; the hash runs in a thread beside the copy).
    pub fn hash_transfers(mut self, mode: HashTransfers) -> Self {
        self.config().hash_transfers = mode;
        self
    }

    /// The largest file hashed on demand (`XMD5`, `HASH`...); a larger one
    /// is refused with `550` unless its digest is cached. `None`: any
    /// size. Default [`DEFAULT_HASH_MAX_SIZE`].
    pub fn hash_max_size(mut self, max: Option<u64>) -> Self {
        self.config().hash_max_size = max;
        self
    }

    /// Most on-demand hash computations at once, over all sessions; past
    /// it the hash verbs answer `450` (default: one per CPU, see
    /// [`default_max_hashes`]). Counted per process: in the forking
    /// models each connection is its own process, so the bound holds per
    /// process there.
    pub fn max_hashes(mut self, max: usize) -> Self {
        self.config().max_hashes = max;
        self
    }

    /// FTPS (RFC 4217) with this TLS configuration (its certificate, and
    /// its session cache, which lets a data connection resume the control
    /// connection's session): `AUTH TLS` turns the control connection
    /// into TLS, `PBSZ 0` and `PROT P` the data connections. Without it
    /// `AUTH` is answered `502`.
    ///
    /// Sessions are resumed with stateless tickets (a fresh key, rotated
    /// by rustls) if `config` has no ticketer: FileZilla and lftp resume
    /// the control connection's session on every data connection with the
    /// same ticket, which the default, single-use tickets of TLS 1.3
    /// would allow only once.
    pub fn tls(mut self, config: Arc<socketserver::tls::rustls::ServerConfig>) -> Self {
        let mut control = (*config).clone();
        if !control.ticketer.enabled() {
            match socketserver::tls::rustls::crypto::ring::Ticketer::new() {
                Ok(ticketer) => control.ticketer = ticketer,
                Err(e) => log::warn!("ftp: no TLS session tickets ({e}): fewer resumptions"),
            }
        }
        let mut uploads = control.clone();
        uploads.send_tls13_tickets = 0;
        self.config().data_tls = Some(Arc::new(uploads));
        self.config().tls = Some(Arc::new(control));
        self
    }

    /// Refuses everything in clear (needs [`Ftp::tls`]): `USER` and
    /// `PASS` before `AUTH TLS` get `530` (no password crosses in clear),
    /// a transfer or listing before `PROT P` gets `521` (no file does),
    /// `PROT C` gets `534`.
    pub fn tls_required(mut self, on: bool) -> Self {
        self.config().tls_required = on;
        self
    }

    /// Implicit FTPS (needs [`Ftp::tls`]): each connection is TLS from its
    /// first byte, before the `220` greeting, and its data connections
    /// are TLS (`PROT P`) from the start: the old way, on port 990, for
    /// the clients that only speak it. Give it its own listener.
    pub fn implicit_tls(mut self, on: bool) -> Self {
        self.config().implicit_tls = on;
        self
    }

    /// True if FTPS is on ([`Ftp::tls`]).
    pub fn has_tls(&self) -> bool {
        self.config.tls.is_some()
    }

    /// The served folder, canonical.
    pub fn root(&self) -> &Path {
        self.config.tree.path()
    }

    /// True if anyone can log in: a user, or anonymous access.
    pub fn has_logins(&self) -> bool {
        self.config.anonymous || !self.config.users.is_empty()
    }

    /// True if anonymous access is on.
    pub fn is_anonymous(&self) -> bool {
        self.config.anonymous
    }
}

impl RequestHandler for Ftp {
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        session::run(Arc::clone(&self.config), Arc::clone(&self.digests), stream)
    }

    fn refuse(&mut self, stream: &mut Stream, why: Refusal) -> io::Result<()> {
        let text = match why {
            Refusal::PerIp => "421 Too many connections from your address.\r\n",
            _ => "421 Too many connections; try again later.\r\n",
        };
        stream.write_all(text.as_bytes())
    }
}
