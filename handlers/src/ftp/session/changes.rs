//! Changes to the tree: `DELE`, `MKD`, `RMD`, `RNFR`, `RNTO`.

use std::io;

use socketserver::error::describe;
use socketserver::Stream;

use crate::ftp::control::printable;

use super::verbs::Command;
use super::{answer, quote, Flow, Session};

impl Session {
    /// `DELE`, `MKD`, `RMD`, `RNFR`, `RNTO` (and `XMKD`, `XRMD`).
    pub(super) fn change(&mut self, stream: &mut Stream, command: Command<'_>) -> io::Result<Flow> {
        let Command {
            verb,
            arg,
            rename_from,
        } = command;
        if !self.writable() {
            return answer(stream, 550, "Permission denied.");
        }
        if arg.is_empty() {
            return answer(stream, 501, &format!("{verb} needs a name."));
        }
        let found = self
            .vfs
            .resolve(arg)
            .and_then(|path| Ok((self.vfs.entry(&path)?, path)));
        let (entry, path) = match found {
            Ok(found) => found,
            Err(e) => return answer(stream, 550, &e.message()),
        };
        let missing = || Err(io::Error::from(io::ErrorKind::NotFound));
        let result = match verb {
            "DELE" if entry.is_dir() => return answer(stream, 550, "Is a directory: use RMD."),
            "DELE" if !entry.exists() => missing(),
            "DELE" => entry
                .remove_file()
                .map(|()| (250, "Delete operation successful.".into())),
            "MKD" | "XMKD" => entry
                .make_dir()
                .map(|()| (257, format!("{} created.", quote(&path.to_bytes())))),
            "RMD" | "XRMD" if !entry.exists() => missing(),
            "RMD" | "XRMD" if !entry.is_dir() => return answer(stream, 550, "Not a directory."),
            "RMD" | "XRMD" => entry
                .remove_dir()
                .map(|()| (250, "Remove directory operation successful.".into())),
            "RNFR" if !entry.exists() => missing(),
            "RNFR" => {
                // The source is kept as its folder's descriptor and name:
                // RNTO renames from that folder, wherever it is by then.
                self.rename_from = Some((entry, path.clone()));
                Ok((350, "Ready for RNTO.".into()))
            }
            _ => match rename_from {
                None => return answer(stream, 503, "RNFR required first."),
                Some((from, _)) => from
                    .rename_to(&entry)
                    .map(|()| (250, "Rename successful.".into())),
            },
        };
        match result {
            Ok((code, text)) => {
                if verb != "RNFR" {
                    log::info!(
                        "{} user={} {verb} {}",
                        self.peer,
                        self.user_in_logs(),
                        printable(&path.to_bytes())
                    );
                }
                answer(stream, code, &text)
            }
            Err(e) => answer(stream, 550, &fs_message(&e)),
        }
    }
}

/// A file system error as a reply text, without paths.
fn fs_message(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "No such file or directory.".into(),
        io::ErrorKind::AlreadyExists => "File exists.".into(),
        io::ErrorKind::DirectoryNotEmpty => "Directory not empty.".into(),
        io::ErrorKind::PermissionDenied => "Permission denied.".into(),
        _ => format!("{}.", describe(e)),
    }
}
