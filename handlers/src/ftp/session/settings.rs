//! The session's settings: `FEAT`, `OPTS`, `TYPE`.

use std::io;

use socketserver::Stream;

use crate::ftp::control::{reply, reply_lines};
use crate::ftp::hash::Algorithm;
use crate::ftp::listing::Facts;

use super::Session;

impl Session<'_> {
    pub(super) fn feat(&self, stream: &mut Stream) -> io::Result<()> {
        // FTPS's three lines (RFC 4217) only when a certificate is set.
        let tls = self.config.tls.is_some();
        let security = ["AUTH TLS", "PBSZ", "PROT"]
            .into_iter()
            .filter(|_| tls)
            .map(str::to_string);
        let lines: Vec<String> = security
            .chain([
                "EPRT".to_string(),
                "EPSV".to_string(),
                format!("HASH {}", self.hash_feat()),
                "MDTM".to_string(),
                format!("MLST {}", self.facts.feat()),
                "PASV".to_string(),
                "REST STREAM".to_string(),
                "SIZE".to_string(),
                "TVFS".to_string(),
                "UTF8".to_string(),
                "XMD5".to_string(),
                "XSHA1".to_string(),
                "XSHA256".to_string(),
            ])
            .collect();
        reply_lines(stream, 211, "Features:", &lines, "End")
    }

    pub(super) fn opts(&mut self, stream: &mut Stream, arg: &[u8]) -> io::Result<()> {
        let arg = String::from_utf8_lossy(arg);
        let (option, value) = arg.split_once(' ').unwrap_or((&arg, ""));
        match option.to_ascii_uppercase().as_str() {
            "UTF8" | "UTF-8" => reply(stream, 200, "Always in UTF8 mode."),
            "MLST" => {
                self.facts = Facts::parse(value);
                reply(stream, 200, &format!("MLST OPTS {}", self.facts.selected()))
            }
            "HASH" if value.trim().is_empty() => reply(stream, 200, self.hash.name()),
            "HASH" => match Algorithm::parse(value) {
                Some(algorithm) => {
                    self.hash = algorithm;
                    reply(stream, 200, algorithm.name())
                }
                None => reply(
                    stream,
                    501,
                    "Unknown algorithm, current selection not changed",
                ),
            },
            _ => reply(stream, 501, "Option not understood."),
        }
    }

    pub(super) fn type_cmd(&mut self, stream: &mut Stream, arg: &[u8]) -> io::Result<()> {
        let arg = String::from_utf8_lossy(arg).to_ascii_uppercase();
        let words: Vec<&str> = arg.split_whitespace().collect();
        match words[..] {
            ["I"] | ["L", "8"] | ["L8"] => {
                self.ascii = false;
                reply(stream, 200, "Switching to Binary mode.")
            }
            ["A"] | ["A", "N"] => {
                self.ascii = true;
                reply(stream, 200, "Switching to ASCII mode.")
            }
            _ => reply(stream, 504, "Only TYPE A, I and L 8 are supported."),
        }
    }
}
