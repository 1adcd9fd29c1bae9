//! TLS on a [`Stream`]: what a handler may know of it, and the handshakes
//! that begin it (the layer itself is [`crate::tls`]).

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, CommonState, HandshakeKind, ProtocolVersion, ServerConfig};

use super::Stream;
use crate::socket::Socket;
use crate::tls::Tls;

impl Stream {
    /// True once the conversation is encrypted: a server with
    /// [`Builder::tls`](crate::Builder::tls), or after
    /// [`Stream::upgrade_tls`] or a client handshake.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The negotiated TLS version (`TLSv1_3`, `TLSv1_2`), or `None` for a
    /// plain conversation.
    pub fn tls_version(&self) -> Option<ProtocolVersion> {
        self.tls_state().and_then(CommonState::protocol_version)
    }

    /// Whether the handshake was full or resumed a session of the same
    /// configuration (`HandshakeKind::Resumed`), or `None` for a plain
    /// conversation. FTPS servers that demand that a data connection
    /// resume the control connection's session (vsftpd's
    /// `require_ssl_reuse`) check it here.
    pub fn tls_handshake_kind(&self) -> Option<HandshakeKind> {
        self.tls_state().and_then(CommonState::handshake_kind)
    }

    /// Everything the TLS handshake negotiated (cipher suite, ALPN
    /// protocol, the peer's certificates...), or `None` for a plain
    /// conversation.
    pub fn tls_state(&self) -> Option<&CommonState> {
        self.tls.as_deref().map(Tls::state)
    }

    /// Turns a plain conversation into TLS, as the server: FTP's
    /// `AUTH TLS`, SMTP's `STARTTLS`. Flushes the plain reply first (the
    /// client waits for it before its ClientHello), then runs the handshake
    /// on the caller's thread: every receive waits at most the
    /// [read timeout](Stream::read_timeout), and the whole handshake ends
    /// within the [message timeout](Stream::message_timeout) and by the
    /// [deadline](Stream::deadline), if set. Bytes already received and
    /// not yet read are taken as the start of the handshake. Afterwards
    /// every read and write goes through TLS.
    ///
    /// Also makes a TLS server stream of any connected socket, such as an
    /// FTPS data connection: `Stream::try_from(tcp)`, its timeouts, then
    /// `upgrade_tls` with the control connection's configuration (its
    /// session cache is shared, so the data connection can resume the
    /// control connection's session: see [`Stream::tls_handshake_kind`]).
    ///
    /// # Errors
    /// `InvalidInput` if the stream is already TLS; `InvalidData` with a
    /// [`TlsFailure`](crate::tls::TlsFailure) inside if the handshake
    /// fails; `TimedOut` if the peer stalls; `UnexpectedEof` if it hangs
    /// up. After an error the conversation is best ended.
    pub fn upgrade_tls(&mut self, config: Arc<ServerConfig>) -> io::Result<()> {
        self.start_tls(Tls::server(config)?)
    }

    /// Turns a plain conversation into TLS, as the client, checking the
    /// server's certificate for `server_name` (a DNS name, or an IP
    /// address matched against the certificate's IP addresses). Bounded
    /// as [`Stream::upgrade_tls`].
    ///
    /// # Errors
    /// As [`Stream::upgrade_tls`]; a certificate that does not verify is a
    /// [`TlsFailure`](crate::tls::TlsFailure) holding
    /// `rustls::Error::InvalidCertificate`.
    pub fn upgrade_client_tls(
        &mut self,
        config: Arc<ClientConfig>,
        server_name: ServerName<'static>,
    ) -> io::Result<()> {
        self.start_tls(Tls::client(config, server_name)?)
    }

    /// Connects to a TLS server, as a client, and runs the handshake (see
    /// [`Stream::upgrade_client_tls`]). Give the stream's timeouts
    /// beforehand with `Stream::from` a [`TcpStream`] and
    /// `upgrade_client_tls` when the handshake must be bounded.
    ///
    /// # Errors
    /// As [`TcpStream::connect`] and [`Stream::upgrade_client_tls`].
    pub fn connect_tls(
        addr: impl ToSocketAddrs,
        config: Arc<ClientConfig>,
        server_name: ServerName<'static>,
    ) -> io::Result<Stream> {
        let mut stream = Stream::from_socket(Socket::Tcp(TcpStream::connect(addr)?))?;
        stream.upgrade_client_tls(config, server_name)?;
        Ok(stream)
    }

    /// Sends TLS's `close_notify` if the conversation is TLS: the server
    /// says so at the end of a conversation that went well.
    pub(crate) fn close_tls(&mut self) -> io::Result<()> {
        match &mut self.tls {
            Some(tls) => tls.close_notify(&self.conn),
            None => Ok(()),
        }
    }

    fn start_tls(&mut self, mut tls: Tls) -> io::Result<()> {
        if self.tls.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the conversation is already TLS",
            ));
        }
        self.flush_buffer()?;
        let from_message = self.clock.message.map(|m| Instant::now() + m);
        let deadline = match (from_message, self.clock.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let early = &self.rbuf[self.rpos..self.rend];
        let result = tls.handshake(&self.conn, early, self.clock.idle, deadline);
        self.rpos = self.rend;
        self.clock.socket_set(self.clock.idle);
        result?;
        self.tls = Some(Box::new(tls));
        Ok(())
    }
}
