//! A folder opened beneath the root to be listed: its names, and what
//! each one is.
//!
//! Each entry is looked at from the folder's descriptor without following
//! it; a symbolic link is then opened beneath the root (links inside it
//! are shown as what they point to) and left out when that fails: a link
//! that leads out of the root, or nowhere, is never shown.

use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use nix::dir::Dir;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::Mode;

use super::root::{cstring, Root};

/// An open folder: its names, read as they come, and a way to look at
/// each.
pub(crate) struct Folder {
    dir: Dir,
    lookup: Lookup,
}

/// Looks at the entries of one folder: a second descriptor of it, and
/// where it is below the root.
pub(crate) struct Lookup {
    fd: OwnedFd,
    root: Arc<Root>,
    names: Vec<Vec<u8>>,
}

impl Folder {
    /// `fd` (opened `O_RDONLY | O_DIRECTORY`) is the folder at `names`
    /// below `root`.
    pub(crate) fn new(fd: OwnedFd, root: Arc<Root>, names: Vec<Vec<u8>>) -> io::Result<Folder> {
        let lookup = Lookup {
            fd: fd.try_clone()?,
            root,
            names,
        };
        Ok(Folder {
            dir: Dir::from_fd(fd)?,
            lookup,
        })
    }

    /// The folder's own metadata.
    pub(crate) fn metadata(&self) -> io::Result<Metadata> {
        File::from(self.lookup.fd.try_clone()?).metadata()
    }

    /// The folder's entries, read as they are taken (`.` and `..`
    /// included: the caller skips them), and the lookup for them.
    pub(crate) fn into_parts(self) -> (nix::dir::OwningIter, Lookup) {
        (self.dir.into_iter(), self.lookup)
    }
}

impl Lookup {
    /// What `name` is, a link inside the root followed; `None` if it is
    /// gone, or a link that leads out of the root or nowhere.
    pub(crate) fn entry_metadata(&self, name: &[u8]) -> Option<Metadata> {
        let fd = openat(
            self.fd.as_fd(),
            cstring(name).ok()?.as_c_str(),
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let meta = File::from(fd).metadata().ok()?;
        if !meta.is_symlink() {
            return Some(meta);
        }
        let mut path = self.names.clone();
        path.push(name.to_vec());
        let fd = self.root.open_beneath(&path, OFlag::O_PATH).ok()?;
        File::from(fd).metadata().ok()
    }
}
