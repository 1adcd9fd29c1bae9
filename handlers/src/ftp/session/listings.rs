//! Listings: `LIST`, `NLST`, `MLSD` over a data connection; `MLST` and
//! `STAT` on the control connection.

use std::io;

use socketserver::Stream;

use crate::ftp::control::{printable, reply_lines, MultiLineReply};
use crate::ftp::listing::{self, Format, Source};
use crate::ftp::pipeline::{NoObserver, Pipeline};
use crate::ftp::vfs::{PathError, VPath};

use super::security::Way;
use super::transfers::Outcome;
use super::verbs::Command;
use super::{answer, Flow, Session};

impl Session {
    /// `LIST`, `NLST`, `MLSD`.
    pub(super) fn listing(
        &mut self,
        stream: &mut Stream,
        command: Command<'_>,
    ) -> io::Result<Flow> {
        let Command { verb, arg, .. } = command;
        let arg = if verb == "MLSD" {
            arg
        } else {
            skip_options(arg)
        };
        let Listed {
            path,
            mut source,
            folder: is_folder,
        } = match self.list_target(arg) {
            Ok(found) => found,
            Err(e) => return answer(stream, 550, &e.message()),
        };
        if verb == "MLSD" && !is_folder {
            return answer(stream, 501, "MLSD needs a directory: use MLST for a file.");
        }
        let format = match verb {
            "LIST" => Format::Ls {
                now: listing::now(),
            },
            "MLSD" => Format::Facts {
                facts: self.facts,
                writable: self.writable(),
                world_only: self.vfs.world_only(),
            },
            _ => {
                // NLST of a file names it as the client did.
                if let Source::File(Some(entry)) = &mut source {
                    entry.name = arg.to_vec();
                }
                Format::Names
            }
        };
        let mut lines = listing::Lines::new(source, format);
        let Some(data) = self.open_data(stream, "Here comes the directory listing.", Way::Out)?
        else {
            return Ok(Flow::Continue);
        };
        let ascii = std::mem::replace(&mut self.ascii, false);
        let report = self
            .transfer(stream, data)
            .send(&mut lines, Pipeline::<NoObserver>::new(None));
        self.ascii = ascii;
        self.warn_truncated(&path, &lines);
        let outcome = Outcome::of(report, None);
        self.finish(stream, verb, &path, outcome, "Directory send OK.")
    }

    /// What `LIST`/`STAT` show for `arg`: a folder's entries (read as
    /// they are listed), or one file.
    fn list_target(&self, arg: &[u8]) -> Result<Listed, PathError> {
        let path = self.vfs.resolve(arg)?;
        let meta = self.vfs.metadata(&path)?;
        if !meta.is_dir() {
            let name = path.name().unwrap_or(b"/").to_vec();
            return Ok(Listed {
                path,
                source: Source::File(Some(listing::Entry { name, meta })),
                folder: false,
            });
        }
        let folder = self.vfs.open_folder(&path)?;
        let entries = listing::Entries::new(folder, self.config.max_list_entries);
        Ok(Listed {
            path,
            source: Source::Folder(entries),
            folder: true,
        })
    }

    pub(super) fn stat(&mut self, stream: &mut Stream, command: Command<'_>) -> io::Result<Flow> {
        let arg = command.arg;
        if arg.is_empty() {
            let user = self.login.as_ref().map_or("", |l| l.name.as_str());
            let mut lines = vec![
                format!("Connected from {}", self.peer.ip()),
                format!("Logged in as {user}"),
                format!("TYPE: {}", if self.ascii { "ASCII" } else { "BINARY" }),
            ];
            lines.extend(self.security_status(stream));
            lines.push("No data connection".to_string());
            reply_lines(stream, 211, "FTP server status:", &lines, "End of status")?;
            return Ok(Flow::Continue);
        }
        let Listed { path, source, .. } = match self.list_target(arg) {
            Ok(found) => found,
            Err(e) => return answer(stream, 550, &e.message()),
        };
        // Each line goes out as it is made (the stream's buffer sends as
        // it fills): a large folder is never held whole.
        let mut lines = listing::Lines::new(
            source,
            Format::Ls {
                now: listing::now(),
            },
        );
        let first = format!("Status of {}:", printable(&path.to_bytes()));
        let mut reply = MultiLineReply::begin(stream, 213, &first)?;
        while let Some(line) = lines.next_line() {
            reply.line(&line[..line.len() - 2])?;
        }
        self.warn_truncated(&path, &lines);
        reply.end("End of status")?;
        Ok(Flow::Continue)
    }

    /// Logs a listing cut at `--max-list-entries`.
    fn warn_truncated(&self, path: &VPath, lines: &listing::Lines) {
        if lines.truncated() {
            log::warn!(
                "{}: listing of {} cut at {} entries",
                self.peer,
                printable(&path.to_bytes()),
                self.config.max_list_entries
            );
        }
    }

    pub(super) fn mlst(&mut self, stream: &mut Stream, command: Command<'_>) -> io::Result<Flow> {
        let found = self.vfs.resolve(command.arg).and_then(|path| {
            let meta = self.vfs.metadata(&path)?;
            Ok((path, meta))
        });
        match found {
            Ok((path, meta)) => {
                let shown = path.to_bytes();
                let mut line = Vec::new();
                let readable = self.vfs.may_read(&meta);
                let writable = self.writable();
                listing::facts_line(&mut line, &shown, &meta, self.facts, writable, readable);
                line.truncate(line.len() - 2);
                let first = format!("Listing {}", printable(&shown));
                let line = String::from_utf8_lossy(&line).into_owned();
                reply_lines(stream, 250, &first, &[line], "End")?;
                Ok(Flow::Continue)
            }
            Err(e) => answer(stream, 550, &e.message()),
        }
    }

    /// `MLST`'s line in `FEAT`: the facts, those selected starred.
    pub(super) fn mlst_feature(&self) -> String {
        format!("MLST {}", self.facts.feat())
    }
}

/// What a listing shows: a folder's entries, or one file.
struct Listed {
    path: VPath,
    source: Source,
    folder: bool,
}

/// `LIST -la dir` → `dir`: leading `-` words are `ls` options, ignored.
fn skip_options(mut arg: &[u8]) -> &[u8] {
    while arg.first() == Some(&b'-') {
        arg = match arg.iter().position(|&b| b == b' ') {
            Some(i) => &arg[i + 1..],
            None => &arg[arg.len()..],
        };
    }
    arg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_options_are_skipped() {
        assert_eq!(skip_options(b"-la"), b"");
        assert_eq!(skip_options(b"-a -l dir"), b"dir");
        assert_eq!(skip_options(b"dir -l"), b"dir -l");
    }
}
