//! Moving around and the facts of one file: `CWD` (and `CDUP`), `SIZE`,
//! `MDTM`.

use std::fs;
use std::io;

use socketserver::Stream;

use crate::ftp::control::reply;
use crate::ftp::listing;
use crate::ftp::vfs::{PathError, VPath};

use super::Session;

impl Session<'_> {
    pub(super) fn cwd(&mut self, stream: &mut Stream, arg: &[u8]) -> io::Result<()> {
        let result = self
            .vfs
            .resolve(arg)
            .and_then(|path| self.vfs.change_dir(path));
        match result {
            Ok(()) => reply(stream, 250, "Directory successfully changed."),
            Err(e) => reply(stream, 550, &e.message()),
        }
    }

    pub(super) fn size(&mut self, stream: &mut Stream, arg: &[u8]) -> io::Result<()> {
        match self.file_meta(arg) {
            Ok((_, meta)) => reply(stream, 213, &meta.len().to_string()),
            Err(e) => reply(stream, 550, &e.message()),
        }
    }

    pub(super) fn mdtm(&mut self, stream: &mut Stream, arg: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        match self.file_meta(arg) {
            Ok((_, meta)) => reply(stream, 213, &listing::timestamp(meta.mtime())),
            Err(e) => reply(stream, 550, &e.message()),
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
