//! Passive data connections (`EPSV`, else `PASV`), and the replies that
//! open and close a transfer on them.

use std::net::{SocketAddr, TcpStream};

use crate::ftp::data_address::{parse_epsv, parse_pasv};

use super::control::Reply;
use super::tls::Data;
use super::{Client, Error, CONNECT_TIMEOUT};

impl Client {
    /// Opens a passive data connection: `EPSV`, or `PASV` if the server
    /// has no `EPSV`. The connection goes to the control connection's
    /// address whatever `PASV` names (as curl's `--ftp-skip-pasv-ip`), so a
    /// server cannot send it elsewhere.
    pub(super) fn data_connection(&mut self) -> Result<Data, Error> {
        let port = if self.no_epsv {
            None
        } else {
            let reply = self.command("EPSV")?;
            match reply.code {
                229 => Some(parse_epsv(&reply.text).ok_or_else(|| {
                    Error::Protocol(format!("cannot read the EPSV reply {reply}"))
                })?),
                _ => {
                    self.no_epsv = true;
                    None
                }
            }
        };
        let port = match port {
            Some(port) => port,
            None => {
                let reply = self.expect("PASV", &[227])?;
                parse_pasv(&reply.text)
                    .ok_or_else(|| Error::Protocol(format!("cannot read the PASV reply {reply}")))?
            }
        };
        let addr = SocketAddr::new(self.peer.ip(), port);
        let data = TcpStream::connect_timeout(&addr, self.timeout.unwrap_or(CONNECT_TIMEOUT))?;
        data.set_read_timeout(self.timeout)?;
        data.set_write_timeout(self.timeout)?;
        self.data_over(data)
    }

    /// Sends a transfer command (after the data connection is open); its
    /// preliminary reply must be `125` or `150`.
    pub(super) fn start_transfer(&mut self, line: &str) -> Result<(), Error> {
        self.expect(line, &[125, 150])?;
        Ok(())
    }

    /// The final reply of a transfer: `226` or `250`.
    pub(super) fn end_transfer(&mut self, line: &str) -> Result<Reply, Error> {
        let reply = self.reply()?;
        if matches!(reply.code, 226 | 250) {
            Ok(reply)
        } else {
            Err(Error::Refused {
                command: line.to_string(),
                reply,
            })
        }
    }
}
