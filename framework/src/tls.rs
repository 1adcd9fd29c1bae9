//! TLS for any stream handler: a layer of [`Stream`](crate::Stream) above
//! the socket's reads and writes.
//!
//! The layer is a [`rustls`] connection (server or client side) between the
//! stream's buffers and its socket: a read receives records from the socket
//! and decrypts them, a write encrypts and sends. Everything above it (the
//! read and write buffers, lines and frames with their limits, the idle and
//! message timeouts, the drain) works as without TLS; the socket's own
//! timeouts still bound every receive and send underneath.
//!
//! A server gets TLS from [`Builder::tls`](crate::Builder::tls) (the whole
//! conversation is encrypted: the handshake runs on the connection's own
//! thread or process, before `setup`, never on the accept loop); a handler
//! can also turn a plain conversation into TLS in its middle, as FTP's
//! `AUTH TLS` or SMTP's `STARTTLS` do, with
//! [`Stream::upgrade_tls`](crate::Stream::upgrade_tls). A client uses
//! [`Stream::connect_tls`](crate::Stream::connect_tls) or
//! [`Stream::upgrade_client_tls`](crate::Stream::upgrade_client_tls).
//!
//! The crypto provider is *ring* (`rustls`' `ring` feature): it builds
//! with a C compiler alone, fast.

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use rustls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ServerConfig};

use crate::read_clock::seconds;
use crate::socket::Connection;

/// Makes a server configuration from a PEM certificate chain (the server's
/// certificate first, as Let's Encrypt's `fullchain.pem`) and a PEM private
/// key (PKCS#8, PKCS#1 or SEC1, as `privkey.pem`), with TLS 1.2 and 1.3 and
/// the *ring* provider.
///
/// # Errors
/// `NotFound`, `PermissionDenied`... when a file cannot be read,
/// `InvalidData` when it holds no certificate or key, or when the key does
/// not fit the certificate; the message names the file.
pub fn server_config_from_pem_files(
    cert: impl AsRef<Path>,
    key: impl AsRef<Path>,
) -> io::Result<Arc<ServerConfig>> {
    let (cert, key) = (cert.as_ref(), key.as_ref());
    let chain = read_certificates(cert)?;
    let key_der = read_private_key(key)?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| invalid(format!("{} and {}: {e}", cert.display(), key.display())))?;
    Ok(Arc::new(config))
}

/// The crypto provider of every configuration this crate makes: *ring*,
/// which builds with a C compiler alone, fast. (It has no post-quantum key
/// exchange yet, hence rustls' deprecation note; a configuration built by
/// the caller with another provider, aws-lc-rs say, works all the same.)
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the certificates of a PEM file, in order.
///
/// # Errors
/// The file cannot be read, or holds no certificate.
pub fn read_certificates(path: impl AsRef<Path>) -> io::Result<Vec<CertificateDer<'static>>> {
    let path = path.as_ref();
    let pem = read_file(path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    if chain.is_empty() {
        return Err(invalid(format!(
            "{}: no certificate in PEM (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(chain)
}

/// Reads the first private key of a PEM file.
///
/// # Errors
/// The file cannot be read, or holds no private key.
pub fn read_private_key(path: impl AsRef<Path>) -> io::Result<PrivateKeyDer<'static>> {
    let path = path.as_ref();
    let pem = read_file(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => invalid(format!(
            "{}: no private key in PEM (-----BEGIN PRIVATE KEY-----)",
            path.display()
        )),
        e => invalid(format!("{}: {e}", path.display())),
    })
}

fn read_file(path: &Path) -> io::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("{}: {}", path.display(), crate::describe(&e)),
        )
    })
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// The error inside an [`io::Error`] of kind `InvalidData` when a TLS
/// handshake or record fails: the peer spoke no TLS, or TLS the
/// configuration refuses (an untrusted certificate, no common version or
/// cipher suite). [`TlsFailure::is`] tells it from other errors.
#[derive(Debug)]
pub struct TlsFailure(pub rustls::Error);

impl TlsFailure {
    /// True if `error` was caused by a [`TlsFailure`].
    pub fn is(error: &io::Error) -> bool {
        error
            .get_ref()
            .is_some_and(|inner| inner.is::<TlsFailure>())
    }

    /// The rustls error inside `error`, if it is a [`TlsFailure`].
    pub fn of(error: &io::Error) -> Option<&rustls::Error> {
        error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<TlsFailure>())
            .map(|failure| &failure.0)
    }
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // rustls' own words ("received corrupt message of type
        // InvalidContentType", "invalid peer certificate: UnknownIssuer").
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for TlsFailure {}

/// The socket as rustls reads and writes it.
struct Io<'a>(&'a Connection);

impl Read for Io<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.recv(buf)
    }
}

impl Write for Io<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.send_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.send_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The TLS state of one stream.
pub(crate) struct Tls {
    conn: rustls::Connection,
    /// The socket has said end of input.
    eof: bool,
}

impl Tls {
    pub(crate) fn server(config: Arc<ServerConfig>) -> io::Result<Tls> {
        let conn = rustls::ServerConnection::new(config).map_err(failure)?;
        Ok(Tls {
            conn: conn.into(),
            eof: false,
        })
    }

    pub(crate) fn client(config: Arc<ClientConfig>, name: ServerName<'static>) -> io::Result<Tls> {
        let conn = rustls::ClientConnection::new(config, name).map_err(failure)?;
        Ok(Tls {
            conn: conn.into(),
            eof: false,
        })
    }

    /// What the handshake negotiated, for the stream's accessors.
    pub(crate) fn state(&self) -> &rustls::CommonState {
        &self.conn
    }

    /// Runs the handshake to its end. Every receive waits at most `idle`
    /// (`None`: for ever), and the whole handshake ends by `deadline`: a
    /// peer that stalls, or trickles, is cut like a silent one. `early`
    /// holds bytes already received (and buffered above) that belong to
    /// the handshake.
    pub(crate) fn handshake(
        &mut self,
        socket: &Connection,
        early: &[u8],
        idle: Option<Duration>,
        deadline: Option<Instant>,
    ) -> io::Result<()> {
        let mut early = early;
        while !early.is_empty() {
            self.conn.read_tls(&mut early)?;
            self.process(socket)?;
        }
        let result = self.handshake_io(socket, idle, deadline);
        // The receives go back to the idle timeout alone.
        socket.set_read_timeout(idle)?;
        result
    }

    fn handshake_io(
        &mut self,
        socket: &Connection,
        idle: Option<Duration>,
        deadline: Option<Instant>,
    ) -> io::Result<()> {
        while self.conn.is_handshaking() {
            self.send_pending(socket)?;
            if !self.conn.is_handshaking() {
                break;
            }
            let mut wait = idle;
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(stalled());
                }
                wait = Some(wait.map_or(left, |w| w.min(left)));
            }
            socket.set_read_timeout(wait)?;
            match self.conn.read_tls(&mut Io(socket)) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed the connection in the TLS handshake",
                    ))
                }
                Ok(_) => self.process(socket)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => {
                    return Err(match deadline {
                        Some(deadline) if Instant::now() >= deadline => stalled(),
                        _ => io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "the TLS handshake stalled: no data for {}",
                                idle.map_or("ever".to_string(), seconds)
                            ),
                        ),
                    })
                }
                Err(e) => return Err(e),
            }
        }
        self.send_pending(socket)
    }

    /// Decrypts what was received; on a TLS error, sends the alert (best
    /// effort) and fails with a [`TlsFailure`].
    fn process(&mut self, socket: &Connection) -> io::Result<()> {
        match self.conn.process_new_packets() {
            Ok(_) => Ok(()),
            Err(e) => {
                let _ = self.send_pending(socket);
                Err(failure(e))
            }
        }
    }

    /// Sends every encrypted byte waiting in the TLS layer.
    pub(crate) fn send_pending(&mut self, socket: &Connection) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut Io(socket)) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the peer accepts no more data",
                    ))
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Receives decrypted bytes into `buf`: as many as are ready, waiting
    /// for records if none are. 0 is end of input: the peer's
    /// `close_notify`, or the socket's end (a TCP end without
    /// `close_notify` reads as end of input too, as most TLS servers take
    /// it; the protocol's own framing tells a message cut short).
    pub(crate) fn recv(&mut self, socket: &Connection, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.take_plaintext(buf) {
                Ok(Some(n)) => return Ok(n),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
            if self.eof {
                return Ok(0);
            }
            match self.conn.read_tls(&mut Io(socket)) {
                Ok(0) => self.eof = true,
                Ok(_) => {
                    self.process(socket)?;
                    // A key update or a session ticket may ask for an answer.
                    self.send_pending(socket)?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The plaintext ready now, as much as fits: `None` if there is none.
    fn take_plaintext(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let mut taken = 0;
        while taken < buf.len() {
            match self.conn.reader().read(&mut buf[taken..]) {
                Ok(0) => return Ok(Some(taken)),
                Ok(n) => taken += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // The socket ended without close_notify: end of input.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Some(taken)),
                Err(e) => return Err(e),
            }
        }
        Ok((taken > 0).then_some(taken))
    }

    /// Encrypts as much of `bufs` as the layer takes and sends it.
    ///
    /// Once bytes of `bufs` are taken they are never taken again: if
    /// sending their records then fails, they are still counted as
    /// written, and stay in the layer for the next send or flush, which
    /// fails in turn if the peer still does not read.
    pub(crate) fn send(&mut self, socket: &Connection, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.send_pending(socket)?;
        let n = self.conn.writer().write_vectored(bufs)?;
        match self.send_pending(socket) {
            Err(e) if n == 0 => Err(e),
            _ => Ok(n),
        }
    }

    /// Sends `close_notify`: the peer knows the end is not a truncation.
    pub(crate) fn close_notify(&mut self, socket: &Connection) -> io::Result<()> {
        self.conn.send_close_notify();
        self.send_pending(socket)
    }
}

fn failure(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, TlsFailure(e))
}

fn stalled() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the TLS handshake did not end in time",
    )
}

/// A socket timeout shows as EAGAIN (`WouldBlock`) on Unix.
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
