//! Passive data connections (`EPSV`, else `PASV`), and the replies that
//! open and close a transfer on them.

use std::net::{SocketAddr, TcpStream};

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

/// The port of `Entering Extended Passive Mode (|||PORT|)`.
fn parse_epsv(text: &str) -> Option<u16> {
    let open = text.find('(')?;
    let inner = &text[open + 1..];
    let close = inner.find(')')?;
    let inner = &inner[..close];
    let delimiter = inner.chars().next()?;
    let parts: Vec<&str> = inner.split(delimiter).collect();
    match parts[..] {
        ["", "", "", port, ""] => port.parse().ok(),
        _ => None,
    }
}

/// The port of `Entering Passive Mode (h1,h2,h3,h4,p1,p2)`.
fn parse_pasv(text: &str) -> Option<u16> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let numbers: Vec<u16> = text[start..]
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(6)
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    let [_, _, _, _, high, low] = numbers[..] else {
        return None;
    };
    if high > 255 || low > 255 {
        return None;
    }
    Some(high << 8 | low)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passive_replies() {
        assert_eq!(
            parse_epsv("Entering Extended Passive Mode (|||37931|)"),
            Some(37931)
        );
        assert_eq!(parse_epsv("Extended Passive (!!!5282!)"), Some(5282));
        assert_eq!(parse_epsv("Entering Extended Passive Mode"), None);
        assert_eq!(
            parse_pasv("Entering Passive Mode (127,0,0,1,200,10)."),
            Some(51210)
        );
        assert_eq!(
            parse_pasv("Entering Passive Mode 127,0,0,1,200,10"),
            Some(51210)
        );
        assert_eq!(parse_pasv("Entering Passive Mode (127,0,0,1,200)"), None);
        assert_eq!(parse_pasv("Entering Passive Mode (1,2,3,4,256,1)"), None);
    }
}
