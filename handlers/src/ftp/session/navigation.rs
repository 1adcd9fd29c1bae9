//! Moving around and the facts of one file: `PWD`, `CWD`, `CDUP`,
//! `SIZE`, `MDTM`.

use std::fs;
use std::io;

use socketserver::Stream;

use crate::ftp::listing;
use crate::ftp::vfs::{PathError, VPath};

use super::verbs::Command;
use super::{answer, quote, Flow, Session};

impl Session {
    pub(super) fn pwd(&mut self, stream: &mut Stream, _: Command<'_>) -> io::Result<Flow> {
        let text = format!(
            "{} is the current directory.",
            quote(&self.vfs.cwd().to_bytes())
        );
        answer(stream, 257, &text)
    }

    pub(super) fn cwd(&mut self, stream: &mut Stream, command: Command<'_>) -> io::Result<Flow> {
        self.change_dir(stream, command.arg)
    }

    pub(super) fn cdup(&mut self, stream: &mut Stream, _: Command<'_>) -> io::Result<Flow> {
        self.change_dir(stream, b"..")
    }

    fn change_dir(&mut self, stream: &mut Stream, path: &[u8]) -> io::Result<Flow> {
        let result = self
            .vfs
            .resolve(path)
            .and_then(|path| self.vfs.change_dir(path));
        match result {
            Ok(()) => answer(stream, 250, "Directory successfully changed."),
            Err(e) => answer(stream, 550, &e.message()),
        }
    }

    pub(super) fn size(&mut self, stream: &mut Stream, command: Command<'_>) -> io::Result<Flow> {
        match self.file_meta(command.arg) {
            Ok((_, meta)) => answer(stream, 213, &meta.len().to_string()),
            Err(e) => answer(stream, 550, &e.message()),
        }
    }

    pub(super) fn mdtm(&mut self, stream: &mut Stream, command: Command<'_>) -> io::Result<Flow> {
        use std::os::unix::fs::MetadataExt;
        match self.file_meta(command.arg) {
            Ok((_, meta)) => answer(stream, 213, &listing::timestamp(meta.mtime())),
            Err(e) => answer(stream, 550, &e.message()),
        }
    }

    /// A regular file's path and metadata.
    fn file_meta(&self, arg: &[u8]) -> Result<(VPath, fs::Metadata), PathError> {
        let path = self.vfs.resolve(arg)?;
        let meta = self.vfs.metadata(&path)?;
        if !meta.is_file() {
            return Err(PathError::NotFound);
        }
        Ok((path, meta))
    }
}
