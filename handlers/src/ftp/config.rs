//! The settings of an FTP server, shared (read-only) by all its sessions.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use socketserver::tls::rustls::ServerConfig;

use super::auth::Users;
use super::root::Root;
use crate::throttle::Throttle;

/// The default TCP port of `serve --handler ftp`: FTP's own port 21 is
/// privileged, so the unprivileged 2121 (as pyftpdlib's examples).
pub const DEFAULT_PORT: u16 = 2121;
/// The per-address limit `serve --handler ftp` sets on its server
/// ([`socketserver::Builder::max_per_ip`]): FTP clients open a few control
/// connections at most, so more from one address is a flood. Over it a
/// client is told `421 Too many connections from your address.`
pub const DEFAULT_MAX_PER_IP: usize = 16;
/// Default for [`super::Ftp::login_timeout`].
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Default for [`super::Ftp::max_list_entries`].
pub const DEFAULT_MAX_LIST_ENTRIES: usize = 100_000;
/// Default for [`super::Ftp::banner`] (the text of the `220` greeting).
pub const DEFAULT_BANNER: &str = "socketserver FTP ready";
/// The longest command line accepted, CRLF included; a longer one is
/// answered `500` and the connection is closed.
pub const MAX_COMMAND_LINE: usize = 4096;
/// How long an active connection waits for the client to accept, and the
/// default of [`super::Ftp::passive_timeout`].
pub const DATA_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Failed logins allowed before the connection is closed.
pub const MAX_LOGIN_FAILURES: u32 = 3;
/// The pause before the `530` of a first wrong password; each further
/// failure doubles it (see [`crate::throttle`]).
pub const LOGIN_FAILURE_DELAY: Duration = Duration::from_millis(500);

/// Default for [`super::Ftp::hash_max_size`]: 16 GiB, some 25 s of MD5.
pub const DEFAULT_HASH_MAX_SIZE: u64 = 16 << 30;

/// Default for [`super::Ftp::max_hashes`]: one per CPU (hashing is
/// CPU-bound: more at once would only share the same cores).
pub fn default_max_hashes() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Which transfers are hashed while they stream (the `MD5=` of their
/// `226` reply). The hash verbs answer on demand whatever this says, and
/// an upload announced with `SITE CHKHASH` is always hashed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HashTransfers {
    /// Every RETR and STOR, even a download whose digest is cached.
    Always,
    /// Every STOR; a RETR unless the file's MD5 is cached (it then goes
    /// at full copy speed, and its `226` gives the cached digest).
    #[default]
    Auto,
    /// None (a cached digest is still given).
    Off,
}

impl std::str::FromStr for HashTransfers {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "always" => Ok(HashTransfers::Always),
            "auto" => Ok(HashTransfers::Auto),
            "off" => Ok(HashTransfers::Off),
            _ => Err(format!("{text:?} is not one of always, auto, off")),
        }
    }
}

/// Everything a session needs to know about the server.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// The served folder's descriptor, opened once (with its canonical
    /// path): every path is opened beneath it.
    pub(crate) tree: Arc<Root>,
    pub(crate) users: Users,
    pub(crate) anonymous: bool,
    pub(crate) read_only: bool,
    /// Passive ports to pick from; `None`: any port the kernel gives.
    pub(crate) passive_ports: Option<RangeInclusive<u16>>,
    pub(crate) active: bool,
    /// Active mode for control peers on a loopback address (off: they
    /// could be anyone behind a local proxy).
    pub(crate) loopback_active: bool,
    /// How long a passive listener waits: for a transfer command after
    /// `PASV`/`EPSV`, then for the client's connection after it.
    pub(crate) passive_timeout: Duration,
    pub(crate) login_timeout: Duration,
    pub(crate) max_list_entries: usize,
    pub(crate) banner: String,
    /// Slows password guessing: per account, per address, server-wide.
    pub(crate) throttle: Throttle,
    pub(crate) hash_transfers: HashTransfers,
    /// Files larger than this are not hashed on demand (`None`: any size).
    pub(crate) hash_max_size: Option<u64>,
    /// Most on-demand hash computations at once, server-wide.
    pub(crate) max_hashes: usize,
    /// FTPS: the certificate and settings of `AUTH TLS` and of TLS data
    /// connections (`None`: no TLS; `AUTH` gets `502`).
    pub(crate) tls: Option<Arc<ServerConfig>>,
    /// The same for uploads' data connections, sharing its session cache,
    /// but sending no TLS 1.3 session tickets: a client that only uploads
    /// never reads them, and closing a socket with unread bytes makes the
    /// kernel send a reset that destroys the end of the upload (curl).
    pub(crate) data_tls: Option<Arc<ServerConfig>>,
    /// No login and no data connection in clear (`530` before `AUTH TLS`,
    /// `521` before `PROT P`).
    pub(crate) tls_required: bool,
    /// Implicit FTPS: every connection is TLS from its first byte.
    pub(crate) implicit_tls: bool,
}

/// Parses a size in bytes: a number, optionally followed by `K`, `M`,
/// `G` or `T` (powers of 1024; `KiB`, `MB`... are read the same), or
/// `unlimited` (`None`).
///
/// ```
/// use socketserver_handlers::ftp::parse_size;
/// assert_eq!(parse_size("4096"), Ok(Some(4096)));
/// assert_eq!(parse_size("16G"), Ok(Some(16 << 30)));
/// assert_eq!(parse_size("1.5MiB"), Ok(Some(3 << 19)));
/// assert_eq!(parse_size("unlimited"), Ok(None));
/// assert!(parse_size("ten").is_err());
/// ```
///
/// # Errors
/// A message for anything else.
pub fn parse_size(text: &str) -> Result<Option<u64>, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => {
            return Err(format!(
                "{text:?} is not a size (a number, then K, M, G or T)"
            ))
        }
    };
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (a number, then K, M, G or T)"))?;
    let bytes = number * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes >= u64::MAX as f64 {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(Some(bytes.round() as u64))
}

/// Parses `MIN-MAX` (or a single port) into a range of passive ports.
///
/// ```
/// use socketserver_handlers::ftp::parse_port_range;
/// assert_eq!(parse_port_range("50000-50100"), Ok(50000..=50100));
/// assert_eq!(parse_port_range("2122"), Ok(2122..=2122));
/// assert!(parse_port_range("10-5").is_err());
/// assert!(parse_port_range("0-5").is_err());
/// ```
///
/// # Errors
/// A message for anything but `MIN-MAX` with `1 <= MIN <= MAX <= 65535`.
pub fn parse_port_range(text: &str) -> Result<RangeInclusive<u16>, String> {
    let (low, high) = text.split_once('-').unwrap_or((text, text));
    let parse = |t: &str| {
        t.trim()
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("{t:?} is not a port number (1-65535)"))
    };
    let (low, high) = (parse(low)?, parse(high)?);
    if low > high {
        return Err(format!("the range {text:?} is empty: write MIN-MAX"));
    }
    Ok(low..=high)
}
