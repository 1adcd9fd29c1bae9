//! The session's settings: `OPTS`, and the transfer parameters `TYPE`,
//! `MODE`, `STRU`, `ALLO`.

use std::io;

use socketserver::Stream;

use crate::ftp::hash::Algorithm;
use crate::ftp::listing::Facts;

use super::verbs::Command;
use super::{answer, Flow, Session};

impl Session {
    pub(super) fn opts(&mut self, stream: &mut Stream, command: Command<'_>) -> io::Result<Flow> {
        let arg = String::from_utf8_lossy(command.arg);
        let (option, value) = arg.split_once(' ').unwrap_or((&arg, ""));
        match option.to_ascii_uppercase().as_str() {
            "UTF8" | "UTF-8" => answer(stream, 200, "Always in UTF8 mode."),
            "MLST" => {
                self.facts = Facts::parse(value);
                answer(stream, 200, &format!("MLST OPTS {}", self.facts.selected()))
            }
            "HASH" if value.trim().is_empty() => answer(stream, 200, self.hash.name()),
            "HASH" => match Algorithm::parse(value) {
                Some(algorithm) => {
                    self.hash = algorithm;
                    answer(stream, 200, algorithm.name())
                }
                None => answer(
                    stream,
                    501,
                    "Unknown algorithm, current selection not changed",
                ),
            },
            _ => answer(stream, 501, "Option not understood."),
        }
    }

    pub(super) fn representation_type(
        &mut self,
        stream: &mut Stream,
        command: Command<'_>,
    ) -> io::Result<Flow> {
        let arg = String::from_utf8_lossy(command.arg).to_ascii_uppercase();
        let words: Vec<&str> = arg.split_whitespace().collect();
        match words[..] {
            ["I"] | ["L", "8"] | ["L8"] => {
                self.ascii = false;
                answer(stream, 200, "Switching to Binary mode.")
            }
            ["A"] | ["A", "N"] => {
                self.ascii = true;
                answer(stream, 200, "Switching to ASCII mode.")
            }
            _ => answer(stream, 504, "Only TYPE A, I and L 8 are supported."),
        }
    }

    pub(super) fn mode(&mut self, stream: &mut Stream, command: Command<'_>) -> io::Result<Flow> {
        match command.arg.to_ascii_uppercase().as_slice() {
            b"S" => answer(stream, 200, "Mode set to S."),
            _ => answer(stream, 504, "Only MODE S is supported."),
        }
    }

    pub(super) fn stru(&mut self, stream: &mut Stream, command: Command<'_>) -> io::Result<Flow> {
        match command.arg.to_ascii_uppercase().as_slice() {
            b"F" => answer(stream, 200, "Structure set to F."),
            _ => answer(stream, 504, "Only STRU F is supported."),
        }
    }

    pub(super) fn allo(&mut self, stream: &mut Stream, _: Command<'_>) -> io::Result<Flow> {
        answer(stream, 202, "No storage allocation necessary.")
    }
}
