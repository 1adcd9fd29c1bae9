//! FTPS (RFC 4217): `AUTH TLS`, `PBSZ`, `PROT`, `CCC`; the policy of
//! `tls_required`; TLS on the data connections.
//!
//! Explicit FTPS starts in clear on the usual port: `AUTH TLS` (`234`)
//! turns the control connection into TLS, the framework's
//! [`Stream::upgrade_tls`]. `PBSZ 0` then `PROT P` make every later data
//! connection TLS too (`PROT C`: clear again). Implicit FTPS (port 990)
//! is TLS from the first byte, with `PROT P` already in force.
//!
//! Data connections use the control connection's `ServerConfig` (or a
//! copy sharing its session cache and ticket key), so a client that
//! resumes the control connection's session (FileZilla, lftp, curl) skips
//! the key exchange, and the debug log says `resumed`. Resumption is welcome but not required:
//! Python's `ftplib` cannot resume a session on a data connection (each
//! one is a fresh `wrap_socket`), and requiring it, as vsftpd's
//! `require_ssl_reuse` does, would shut such clients out. What requiring
//! it would add, proof that the data connection comes from the control
//! connection's client, is checked another way: a data connection is
//! accepted only from the control connection's IP address (`data.rs`).

use std::io;
use std::net::TcpStream;
use std::sync::Arc;

use socketserver::error::describe;
use socketserver::Stream;

use crate::ftp::control::reply;
use crate::ftp::data_conn::{DataConnection, Handshake};

use super::verbs::Command;
use super::{answer, Flow, Session};

/// The data connections' protection, as `PBSZ` and `PROT` set it.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Protection {
    /// `PBSZ` was received over TLS (RFC 4217 wants it before `PROT`).
    buffer_size_set: bool,
    /// `PROT P`: data connections are TLS.
    private: bool,
}

impl Protection {
    /// Implicit FTPS: TLS everywhere from the start.
    pub(super) fn implicit() -> Protection {
        Protection {
            buffer_size_set: true,
            private: true,
        }
    }

    /// True if data connections are TLS (`PROT P`).
    pub(super) fn private(self) -> bool {
        self.private
    }
}

/// Which way a data connection's bytes go, which decides whether its TLS
/// sends session tickets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Way {
    /// To the client (`RETR`, listings): it reads everything, tickets
    /// included, which gives it fresh ones for the next data connections
    /// (a TLS 1.3 ticket resumes once).
    Out,
    /// From the client (`STOR`, `APPE`): no ticket, since a client that
    /// only writes leaves them unread, and closing a socket with unread
    /// bytes makes its kernel send a reset that destroys the end of the
    /// upload (curl).
    In,
}

impl Session {
    /// `AUTH TLS`: `234`, then the TLS handshake on the control connection.
    /// A failed handshake ends the session (nothing more can be said to a
    /// client whose TLS is broken).
    pub(super) fn auth(&mut self, stream: &mut Stream, command: Command<'_>) -> io::Result<Flow> {
        let Some(tls) = self.config.tls.clone() else {
            return answer(stream, 502, "TLS is not available on this server.");
        };
        let mechanism = String::from_utf8_lossy(command.arg)
            .trim()
            .to_ascii_uppercase();
        // TLS-C is RFC 4217's old name; SSL and TLS-P (drafts that
        // FileZilla and older clients still send) also protect the data.
        let implies_prot_p = match mechanism.as_str() {
            "TLS" | "TLS-C" => false,
            "SSL" | "TLS-P" => true,
            _ => return answer(stream, 504, "AUTH TLS is the only security mechanism."),
        };
        if stream.is_tls() {
            return answer(stream, 503, "The control connection is already TLS.");
        }
        reply(stream, 234, &format!("AUTH {mechanism} successful."))?;
        // Commands sent in clear behind AUTH, before the handshake, would
        // run as if protected (the STARTTLS injection of CVE-2011-0411):
        // they are dropped.
        let dropped = self.control.discard_pending();
        if dropped > 0 {
            log::warn!(
                "{}: {dropped} bytes sent in clear after AUTH dropped",
                self.peer
            );
        }
        if let Err(e) = stream.upgrade_tls(tls) {
            log::warn!(
                "{}: TLS handshake on the control connection failed: {}",
                self.peer,
                describe(&e)
            );
            return Ok(Flow::Close);
        }
        log::info!(
            "{}: control connection now TLS ({})",
            self.peer,
            tls_version(stream)
        );
        // RFC 4217: the login starts again, under TLS.
        self.user = None;
        self.login = None;
        self.vfs.set_world_readable_only(false);
        self.login_deadline = std::time::Instant::now() + self.config.login_timeout;
        self.protection = Protection {
            buffer_size_set: implies_prot_p,
            private: implies_prot_p,
        };
        Ok(Flow::Continue)
    }

    /// `PBSZ`: TLS has no buffer size; the reply says `PBSZ=0` whatever
    /// was asked (RFC 4217 lets the server give the size it accepts).
    pub(super) fn pbsz(&mut self, stream: &mut Stream, command: Command<'_>) -> io::Result<Flow> {
        if !stream.is_tls() {
            return answer(
                stream,
                503,
                "PBSZ needs a TLS control connection: send AUTH TLS first.",
            );
        }
        let valid = std::str::from_utf8(command.arg)
            .ok()
            .is_some_and(|a| a.trim().parse::<u64>().is_ok());
        if !valid {
            return answer(stream, 501, "PBSZ needs a number (PBSZ 0).");
        }
        self.protection.buffer_size_set = true;
        answer(stream, 200, "PBSZ=0")
    }

    /// `PROT P` (TLS data connections) or `PROT C` (clear ones).
    pub(super) fn prot(&mut self, stream: &mut Stream, command: Command<'_>) -> io::Result<Flow> {
        if !stream.is_tls() {
            return answer(
                stream,
                503,
                "PROT needs a TLS control connection: send AUTH TLS first.",
            );
        }
        if !self.protection.buffer_size_set {
            return answer(stream, 503, "Send PBSZ 0 before PROT.");
        }
        match command.arg.to_ascii_uppercase().as_slice() {
            b"P" => {
                self.protection.private = true;
                answer(stream, 200, "Protection level set to P.")
            }
            b"C" if self.config.tls_required => answer(
                stream,
                534,
                "This server requires TLS data connections: only PROT P.",
            ),
            b"C" => {
                self.protection.private = false;
                answer(stream, 200, "Protection level set to C.")
            }
            b"S" | b"E" => answer(stream, 536, "Only PROT P and PROT C are supported."),
            _ => answer(stream, 504, "PROT takes P or C."),
        }
    }

    /// `CCC`: refused. Going back to clear would let anyone on the path
    /// read and change the commands (and the names in them) that follow.
    pub(super) fn ccc(&mut self, stream: &mut Stream, _: Command<'_>) -> io::Result<Flow> {
        if !stream.is_tls() {
            return answer(stream, 533, "The control connection is not TLS.");
        }
        answer(
            stream,
            534,
            "CCC refused: the control connection stays encrypted.",
        )
    }

    /// `STAT`'s lines on TLS, on a server with FTPS: the control
    /// connection's version and the data connections' protection.
    pub(super) fn security_status(&self, stream: &Stream) -> Vec<String> {
        if self.config.tls.is_none() {
            return Vec::new();
        }
        let control = if stream.is_tls() {
            format!("Control connection: TLS ({})", tls_version(stream))
        } else {
            "Control connection: clear".to_string()
        };
        let data = if self.protection.private() {
            "Data connections: TLS (PROT P)"
        } else {
            "Data connections: clear (PROT C)"
        };
        vec![control, data.to_string()]
    }

    /// With `tls_required`: `USER` and `PASS` are refused until the
    /// control connection is TLS, so no password crosses in clear (a
    /// `PASS` sent anyway is not even looked at).
    pub(super) fn refuse_clear_login(&self, stream: &mut Stream) -> io::Result<bool> {
        if !self.config.tls_required || stream.is_tls() {
            return Ok(false);
        }
        log::info!("{}: login in clear refused (TLS required)", self.peer);
        reply(
            stream,
            530,
            "This server requires TLS: send AUTH TLS before USER.",
        )?;
        Ok(true)
    }

    /// With `tls_required`: a transfer before `PROT P` gets `521`, before
    /// any data connection is opened, so no file crosses in clear.
    pub(super) fn refuse_clear_data(&mut self, stream: &mut Stream) -> io::Result<bool> {
        if !self.config.tls_required || self.protection.private() {
            return Ok(false);
        }
        // The data connection prepared for it is not used.
        self.data = crate::ftp::data::DataPlan::None;
        reply(
            stream,
            521,
            "Data connections must be protected: send PBSZ 0 and PROT P.",
        )?;
        Ok(true)
    }

    /// The data connection as `PROT` wants it: TLS (its handshake done
    /// now, within the passive timeout) or clear. `None` if the handshake
    /// failed: the `425` is sent and the failure logged with the peer.
    pub(super) fn protect_data(
        &mut self,
        stream: &mut Stream,
        socket: TcpStream,
        way: Way,
    ) -> io::Result<Option<DataConnection>> {
        let config = match way {
            Way::Out => self.config.tls.clone(),
            Way::In => self.config.data_tls.clone(),
        };
        let (Some(tls), true) = (config, self.protection.private()) else {
            return Ok(Some(DataConnection::Plain(socket)));
        };
        let peer = socket.peer_addr().ok();
        match DataConnection::tls(socket, Arc::clone(&tls), self.config.passive_timeout) {
            Ok((data, handshake)) => {
                let kind = match handshake {
                    Handshake::Resumed => "resumed",
                    Handshake::Full => "full",
                };
                log::debug!("{}: TLS data connection ({kind} handshake)", self.peer);
                Ok(Some(data))
            }
            Err(e) => {
                log::warn!(
                    "{}: TLS handshake on the data connection from {} failed: {}",
                    self.peer,
                    peer.map_or("?".to_string(), |p| p.to_string()),
                    describe(&e)
                );
                reply(
                    stream,
                    425,
                    "TLS handshake on the data connection failed; transfer not started.",
                )?;
                Ok(None)
            }
        }
    }
}

/// The negotiated TLS version, for the logs.
fn tls_version(stream: &Stream) -> String {
    stream
        .tls_version()
        .map_or("?".to_string(), |v| format!("{v:?}"))
}
