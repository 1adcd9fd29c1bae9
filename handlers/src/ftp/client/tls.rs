//! Explicit FTPS on the client's side: `AUTH TLS` on the control
//! connection, `PBSZ 0` and `PROT P`, and TLS on every data connection.
//!
//! Data connections use the control connection's `ClientConfig` and
//! server name, so they resume its TLS session when the server allows it
//! (rustls keeps the session tickets per server name), as FileZilla and
//! lftp do. A data connection's handshake starts with its first read or
//! write, after the server's `150`, since the server accepts the
//! connection only then.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;

use socketserver::tls::rustls::pki_types::ServerName;
use socketserver::tls::rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::{Client, Error};

/// The control connection: clear, or TLS after `AUTH TLS`.
#[derive(Debug)]
pub(super) enum Control {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

/// A data connection: clear, or TLS (`PROT P`).
#[derive(Debug)]
pub(super) enum Data {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

/// What a TLS session needs: the configuration and the server's name.
#[derive(Clone, Debug)]
pub(super) struct TlsSettings {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl Client {
    /// `AUTH TLS`, then the TLS handshake on the control connection (the
    /// server's certificate checked for `name` by `config`); after it,
    /// [`Client::login`] sends `PBSZ 0` and `PROT P`, and every data
    /// connection is TLS too.
    ///
    /// # Errors
    /// If the server refuses `AUTH TLS` (a server without FTPS), or the
    /// handshake fails (a certificate that does not verify, say).
    pub fn auth_tls(
        &mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Result<(), Error> {
        self.expect("AUTH TLS", &[234])?;
        if !self.control.buffer().is_empty() {
            return Err(Error::Protocol(
                "the server sent more after its 234 reply, in clear".into(),
            ));
        }
        let Control::Plain(socket) = self.control.get_ref() else {
            return Err(Error::Protocol(
                "the control connection is already TLS".into(),
            ));
        };
        let socket = socket.try_clone()?;
        let mut tls =
            ClientConnection::new(Arc::clone(&config), name.clone()).map_err(io::Error::other)?;
        let mut handshake = socket.try_clone()?;
        while tls.is_handshaking() {
            tls.complete_io(&mut handshake)?;
        }
        let stream = StreamOwned::new(tls, socket);
        *self.control.get_mut() = Control::Tls(Box::new(stream));
        self.tls = Some(TlsSettings { config, name });
        Ok(())
    }

    /// True once `AUTH TLS` has succeeded.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// `PBSZ 0` and `PROT P`: every data connection from now on is TLS.
    pub(super) fn protect_data(&mut self) -> Result<(), Error> {
        if self.tls.is_some() {
            self.expect("PBSZ 0", &[200])?;
            self.expect("PROT P", &[200])?;
        }
        Ok(())
    }

    /// The data connection over `socket`, TLS if the control one is.
    pub(super) fn data_over(&self, socket: TcpStream) -> Result<Data, Error> {
        let Some(tls) = &self.tls else {
            return Ok(Data::Plain(socket));
        };
        let connection = ClientConnection::new(Arc::clone(&tls.config), tls.name.clone())
            .map_err(io::Error::other)?;
        Ok(Data::Tls(Box::new(StreamOwned::new(connection, socket))))
    }
}

impl Read for Control {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Control::Plain(socket) => socket.read(buf),
            Control::Tls(stream) => stream.read(buf),
        }
    }
}

impl Write for Control {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Control::Plain(socket) => socket.write(buf),
            Control::Tls(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Control::Plain(socket) => socket.flush(),
            Control::Tls(stream) => stream.flush(),
        }
    }
}

impl Data {
    /// The end of an upload: TLS's `close_notify` (the server knows the
    /// file is whole, not cut), then the TCP end.
    pub(super) fn finish_sending(&mut self) -> io::Result<()> {
        match self {
            Data::Plain(socket) => socket.shutdown(Shutdown::Write),
            Data::Tls(stream) => {
                stream.conn.send_close_notify();
                stream.flush()?;
                while stream.conn.wants_write() {
                    stream.conn.write_tls(&mut stream.sock)?;
                }
                stream.sock.shutdown(Shutdown::Write)
            }
        }
    }
}

impl Read for Data {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Data::Plain(socket) => socket.read(buf),
            // A TCP end without close_notify ends the data too: the MD5
            // check, not TLS, says whether the file is whole.
            Data::Tls(stream) => match stream.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

impl Write for Data {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Data::Plain(socket) => socket.write(buf),
            Data::Tls(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Data::Plain(socket) => socket.flush(),
            Data::Tls(stream) => stream.flush(),
        }
    }
}
