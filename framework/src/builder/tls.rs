//! The builder's TLS settings: every connection of the server begins with
//! a handshake ([`crate::tls`]).

use std::sync::Arc;

use super::Builder;
use crate::Error;

impl<H> Builder<H> {
    /// Serves every connection over TLS with this configuration: each
    /// begins with a handshake, on the connection's own thread or process
    /// (never the accept loop's, except under
    /// [`Model::Sync`](crate::Model::Sync), whose loop thread is every
    /// conversation's), before `setup`; every receive of it waits at most
    /// the idle timeout, and the whole of it ends within the message
    /// timeout. A handshake that fails (garbage instead of a ClientHello,
    /// an unknown version, a stall, a hang-up) is logged with the peer,
    /// counted in [`Counters::tls_failures`](crate::Counters), and the
    /// connection closed: the handler never sees it. The handler's
    /// [`Stream`](crate::Stream) reads and writes decrypted bytes, with the
    /// same framing and limits; [`Stream::is_tls`](crate::Stream::is_tls)
    /// and [`Stream::tls_version`](crate::Stream::tls_version) tell it what
    /// was negotiated. Clients refused before being served (over a limit)
    /// are closed without a word: no handshake is spent on them.
    ///
    /// Stream servers only: a datagram server refuses it at `build`.
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// [`Builder::tls`] with a configuration read from PEM files: the
    /// certificate chain (server's first, as Let's Encrypt's
    /// `fullchain.pem`) and its private key (`privkey.pem`); see
    /// [`tls::server_config_from_pem_files`](crate::tls::server_config_from_pem_files).
    ///
    /// # Errors
    /// [`Error::Tls`] naming the file that cannot be read or holds no
    /// certificate or key, or a key that does not fit.
    pub fn tls_files(
        self,
        cert: impl AsRef<std::path::Path>,
        key: impl AsRef<std::path::Path>,
    ) -> Result<Self, Error> {
        let config = crate::tls::server_config_from_pem_files(cert, key).map_err(Error::Tls)?;
        Ok(self.tls(config))
    }
}
