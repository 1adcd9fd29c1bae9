//! Path confinement: the client sees a virtual tree whose `/` is the
//! served folder, and nothing it sends can reach outside it.
//!
//! Two steps, both on every use (never once per session, so a symbolic
//! link made later is caught too):
//!
//! 1. **Lexical.** The client's path is resolved against the current
//!    virtual folder; `/` and `\` separate names; empty names and `.` are
//!    dropped; `..` removes the name before it and stops at `/` (so
//!    `/../../etc` is `/etc`, inside the root). Names holding NUL, CR or LF
//!    are refused, and so are the names of upload temp files.
//! 2. **Physical.** The existing part of the real path is canonicalized
//!    (every symbolic link followed) and must still lie under the canonical
//!    root: a link inside the root that leads out of it is refused. For an
//!    entry that is created, renamed or removed, the folder holding it is
//!    checked and the entry itself is never followed (a link there that
//!    leads out of the root is refused, as it is hidden from listings).
//!
//! Paths are bytes, as Unix file names are: nothing needs to be UTF-8.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The name prefix of upload temp files: hidden from listings, refused as
/// a path.
pub(crate) const TEMP_PREFIX: &[u8] = b".ftp-upload-";

/// Why a path was refused.
#[derive(Debug)]
pub(crate) enum PathError {
    /// A name holds NUL, CR or LF.
    BadName,
    /// Nothing there (or an upload temp file, which does not exist for the
    /// client).
    NotFound,
    /// The path leads outside the root, or names the root itself where an
    /// entry is needed.
    Denied,
    /// Another error of the file system.
    Io(io::Error),
}

impl PathError {
    pub(crate) fn from_io(e: io::Error) -> PathError {
        match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => PathError::NotFound,
            io::ErrorKind::PermissionDenied => PathError::Denied,
            _ => PathError::Io(e),
        }
    }

    /// The reply text (after `550 `), which never shows a real path.
    pub(crate) fn message(&self) -> String {
        match self {
            PathError::BadName => "Invalid character in file name.".to_string(),
            PathError::NotFound => "No such file or directory.".to_string(),
            PathError::Denied => "Permission denied.".to_string(),
            PathError::Io(e) => format!("{}.", socketserver::describe(e)),
        }
    }
}

/// A path in the client's tree, normalised: `/` then names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct VPath {
    names: Vec<Vec<u8>>,
}

impl VPath {
    /// The path as the client sees it: `/`, `/a`, `/a/b`.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        if self.names.is_empty() {
            return b"/".to_vec();
        }
        let mut out = Vec::new();
        for name in &self.names {
            out.push(b'/');
            out.extend_from_slice(name);
        }
        out
    }

    /// The last name; `None` for `/`.
    pub(crate) fn name(&self) -> Option<&[u8]> {
        self.names.last().map(Vec::as_slice)
    }
}

/// A session's view of the served folder: the root and the current
/// virtual folder.
#[derive(Clone, Debug)]
pub(crate) struct Vfs {
    root: PathBuf,
    cwd: VPath,
}

impl Vfs {
    /// `root` must be canonical.
    pub(crate) fn new(root: PathBuf) -> Vfs {
        Vfs {
            root,
            cwd: VPath::default(),
        }
    }

    pub(crate) fn cwd(&self) -> &VPath {
        &self.cwd
    }

    /// Step 1: the client's `arg` as a normalised virtual path.
    pub(crate) fn resolve(&self, arg: &[u8]) -> Result<VPath, PathError> {
        if arg.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n')) {
            return Err(PathError::BadName);
        }
        let mut names = if arg.first().is_some_and(|&b| b == b'/' || b == b'\\') {
            Vec::new()
        } else {
            self.cwd.names.clone()
        };
        for name in arg.split(|&b| b == b'/' || b == b'\\') {
            match name {
                b"" | b"." => {}
                b".." => {
                    names.pop();
                }
                name => {
                    if name.starts_with(TEMP_PREFIX) {
                        return Err(PathError::NotFound);
                    }
                    names.push(name.to_vec());
                }
            }
        }
        Ok(VPath { names })
    }

    /// The real path under the root, before any link is followed.
    fn lexical(&self, path: &VPath) -> PathBuf {
        let mut real = self.root.clone();
        for name in &path.names {
            real.push(OsStr::from_bytes(name));
        }
        real
    }

    /// True if `real`, links followed, lies under the root.
    pub(crate) fn contains(&self, real: &Path) -> bool {
        fs::canonicalize(real).is_ok_and(|c| c.starts_with(&self.root))
    }

    /// Step 2 for something that exists: its canonical real path, checked
    /// to lie under the root.
    pub(crate) fn existing(&self, path: &VPath) -> Result<PathBuf, PathError> {
        let real = fs::canonicalize(self.lexical(path)).map_err(PathError::from_io)?;
        if !real.starts_with(&self.root) {
            return Err(PathError::Denied);
        }
        Ok(real)
    }

    /// Step 2 for an entry that is created, removed or renamed: the
    /// canonical folder that holds it (checked to lie under the root)
    /// joined with its name, which is not followed. The root itself is no
    /// entry.
    pub(crate) fn entry(&self, path: &VPath) -> Result<PathBuf, PathError> {
        let Some(name) = path.name() else {
            return Err(PathError::Denied);
        };
        let parent = VPath {
            names: path.names[..path.names.len() - 1].to_vec(),
        };
        let folder = self.existing(&parent)?;
        if !folder.is_dir() {
            return Err(PathError::NotFound);
        }
        let entry = folder.join(OsStr::from_bytes(name));
        // A link that leads out of the root (or nowhere) is not shown in
        // listings, and not touched either.
        let is_link = fs::symlink_metadata(&entry).is_ok_and(|m| m.file_type().is_symlink());
        if is_link && !self.contains(&entry) {
            return Err(PathError::Denied);
        }
        Ok(entry)
    }

    /// Changes the current folder to `path`, which must be a folder under
    /// the root.
    pub(crate) fn change_dir(&mut self, path: VPath) -> Result<(), PathError> {
        let real = self.existing(&path)?;
        if !real.is_dir() {
            return Err(PathError::NotFound);
        }
        self.cwd = path;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vfs_at(cwd: &[u8]) -> Vfs {
        let mut vfs = Vfs::new(PathBuf::from("/nonexistent-root"));
        vfs.cwd = vfs.resolve(cwd).unwrap();
        vfs
    }

    fn resolved(vfs: &Vfs, arg: &[u8]) -> Vec<u8> {
        vfs.resolve(arg).unwrap().to_bytes()
    }

    #[test]
    fn lexical_resolution_is_clamped_at_the_root() {
        let vfs = vfs_at(b"/a/b");
        assert_eq!(resolved(&vfs, b"c"), b"/a/b/c");
        assert_eq!(resolved(&vfs, b"../c"), b"/a/c");
        assert_eq!(resolved(&vfs, b"../../../../etc/passwd"), b"/etc/passwd");
        assert_eq!(resolved(&vfs, b"/../.."), b"/");
        assert_eq!(resolved(&vfs, b"//etc//passwd"), b"/etc/passwd");
        assert_eq!(resolved(&vfs, b"..\\..\\..\\x"), b"/x");
        assert_eq!(resolved(&vfs, b"\\x"), b"/x");
        assert_eq!(resolved(&vfs, b"./././"), b"/a/b");
        assert_eq!(resolved(&vfs, b""), b"/a/b");
        assert_eq!(
            resolved(&vfs, "数据/文件".as_bytes()),
            "/a/b/数据/文件".as_bytes()
        );
        assert_eq!(resolved(&vfs, b"\xff\xfe"), b"/a/b/\xff\xfe");
    }

    #[test]
    fn bad_names_and_temp_files_are_refused() {
        let vfs = vfs_at(b"/");
        for arg in [&b"a\0b"[..], b"a\rb", b"a\nb", b"/x/\0"] {
            assert!(
                matches!(vfs.resolve(arg), Err(PathError::BadName)),
                "{arg:?}"
            );
        }
        assert!(matches!(
            vfs.resolve(b"d/.ftp-upload-0123.part"),
            Err(PathError::NotFound)
        ));
    }

    #[test]
    fn the_root_is_no_entry() {
        let vfs = vfs_at(b"/");
        let root = vfs.resolve(b"/..").unwrap();
        assert_eq!(root.to_bytes(), b"/");
        assert!(matches!(vfs.entry(&root), Err(PathError::Denied)));
    }
}
