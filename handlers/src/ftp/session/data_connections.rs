//! Data connections: `PASV`, `EPSV`, `PORT`, `EPRT` set one up; a
//! transfer opens it.

use std::io;
use std::net::{IpAddr, TcpStream};
use std::time::Instant;

use socketserver::error::describe;
use socketserver::Stream;

use crate::ftp::config::DATA_CONNECT_TIMEOUT;
use crate::ftp::control::reply;
use crate::ftp::data::{self, canonical, DataPlan};
use crate::ftp::data_address;
use crate::ftp::data_conn::DataConnection;

use crate::ftp::transfer::{Transfer, Watch};

use super::security::Way;
use super::verbs::Command;
use super::{answer, Flow, Session};

impl Session {
    pub(super) fn pasv(&mut self, stream: &mut Stream, _: Command<'_>) -> io::Result<Flow> {
        if self.epsv_all {
            return answer(stream, 503, "EPSV ALL was sent: use EPSV.");
        }
        let IpAddr::V4(ip) = canonical(self.local.ip()) else {
            return answer(stream, 522, "PASV works over IPv4 only: use EPSV.");
        };
        match self.listen() {
            Ok(port) => answer(stream, 227, &data_address::pasv_text(ip, port)),
            Err(e) => answer(stream, 425, &format!("Cannot listen: {}.", describe(&e))),
        }
    }

    pub(super) fn epsv(&mut self, stream: &mut Stream, command: Command<'_>) -> io::Result<Flow> {
        let family = if canonical(self.local.ip()).is_ipv4() {
            b"1"
        } else {
            b"2"
        };
        match command.arg.to_ascii_uppercase().as_slice() {
            b"ALL" => {
                self.epsv_all = true;
                return answer(stream, 200, "EPSV ALL ok.");
            }
            b"" => {}
            other if other == family => {}
            b"1" | b"2" => {
                let text = format!(
                    "Network protocol not supported, use ({})",
                    family[0] as char
                );
                return answer(stream, 522, &text);
            }
            _ => return answer(stream, 501, "EPSV takes 1, 2 or ALL."),
        }
        match self.listen() {
            Ok(port) => answer(stream, 229, &data_address::epsv_text(port)),
            Err(e) => answer(stream, 425, &format!("Cannot listen: {}.", describe(&e))),
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

    /// `PORT` and `EPRT`, its extended form.
    pub(super) fn active(&mut self, stream: &mut Stream, command: Command<'_>) -> io::Result<Flow> {
        if !self.config.active {
            return answer(stream, 502, "Active mode is turned off: use PASV or EPSV.");
        }
        if self.epsv_all {
            return answer(stream, 503, "EPSV ALL was sent: use EPSV.");
        }
        let extended = command.verb == "EPRT";
        let arg = String::from_utf8_lossy(command.arg);
        let parsed = if extended {
            data_address::parse_eprt(&arg)
        } else {
            data_address::parse_port(&arg)
        };
        let Some(addr) = parsed else {
            return if extended
                && !arg.trim().is_empty()
                && !arg.contains("|1|")
                && !arg.contains("|2|")
            {
                answer(stream, 522, "Network protocol not supported, use (1,2)")
            } else {
                answer(stream, 501, "Syntax error in the address.")
            };
        };
        let allow_loopback = self.config.loopback_active;
        if let Some((code, why)) = data::refuse_active(addr, self.peer.ip(), allow_loopback) {
            log::warn!("{}: refused an active connection to {addr}", self.peer);
            return answer(stream, code, why);
        }
        self.data = DataPlan::Active(addr);
        answer(
            stream,
            200,
            &format!("{} command successful.", command.verb),
        )
    }

    /// Opens the data connection set up by the last PASV/EPSV/PORT/EPRT,
    /// saying `150 TEXT` first, TLS if `PROT P`. `None` if it failed (the
    /// `425` is sent).
    pub(super) fn open_data(
        &mut self,
        stream: &mut Stream,
        text: &str,
        way: Way,
    ) -> io::Result<Option<DataConnection>> {
        match self.connect_data(stream, text)? {
            Some(socket) => self.protect_data(stream, socket, way),
            None => Ok(None),
        }
    }

    /// The data connection's socket (see [`Session::open_data`]).
    fn connect_data(&mut self, stream: &mut Stream, text: &str) -> io::Result<Option<TcpStream>> {
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

    pub(super) fn transfer<'s>(
        &'s mut self,
        stream: &'s mut Stream,
        data: DataConnection,
    ) -> Transfer<'s> {
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
}
