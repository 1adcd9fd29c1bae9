//! An entry that is created, removed or renamed: the descriptor of the
//! folder that holds it and its name there.
//!
//! Every change is made by the kernel relative to that descriptor
//! (`mkdirat`, `unlinkat`, `renameat`), so it lands in the folder that was
//! opened beneath the root, whatever happens meanwhile to the path that
//! led there: a folder on the way renamed, or swapped for a link, changes
//! nothing. The name itself is never followed (none of these calls follows
//! a link in the last name). `RNFR` keeps its source as an `Entry`, and
//! `RNTO` renames from that descriptor.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{renameat, AtFlags};
use nix::sys::stat::{fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use super::root::cstring;

/// A name in an open folder.
#[derive(Debug)]
pub(crate) struct Entry {
    folder: OwnedFd,
    name: CString,
    /// The entry's type when it was looked at (`None`: nothing there), for
    /// the replies; the changes themselves rely on the kernel's checks.
    kind: Option<SFlag>,
}

impl Entry {
    /// `name` in `folder`, looked at (not followed) now.
    pub(crate) fn new(folder: OwnedFd, name: &[u8]) -> io::Result<Entry> {
        let name = cstring(name)?;
        let kind = match fstatat(&folder, name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => Some(SFlag::from_bits_truncate(
                stat.st_mode & SFlag::S_IFMT.bits(),
            )),
            Err(Errno::ENOENT) => None,
            Err(e) => return Err(e.into()),
        };
        Ok(Entry { folder, name, kind })
    }

    /// The folder's descriptor.
    pub(crate) fn folder(&self) -> BorrowedFd<'_> {
        self.folder.as_fd()
    }

    /// The name in the folder.
    pub(crate) fn name(&self) -> &CStr {
        &self.name
    }

    /// True if something had this name.
    pub(crate) fn exists(&self) -> bool {
        self.kind.is_some()
    }

    /// True if it was a folder.
    pub(crate) fn is_dir(&self) -> bool {
        self.kind == Some(SFlag::S_IFDIR)
    }

    /// True if it was a symbolic link.
    pub(crate) fn is_link(&self) -> bool {
        self.kind == Some(SFlag::S_IFLNK)
    }

    /// `DELE`: removes a file (never a folder).
    pub(crate) fn remove_file(&self) -> io::Result<()> {
        Ok(unlinkat(
            &self.folder,
            self.name.as_c_str(),
            UnlinkatFlags::NoRemoveDir,
        )?)
    }

    /// `RMD`: removes an empty folder.
    pub(crate) fn remove_dir(&self) -> io::Result<()> {
        Ok(unlinkat(
            &self.folder,
            self.name.as_c_str(),
            UnlinkatFlags::RemoveDir,
        )?)
    }

    /// `MKD`: makes a folder (mode 0777 less the umask, as `mkdir`).
    pub(crate) fn make_dir(&self) -> io::Result<()> {
        Ok(mkdirat(
            &self.folder,
            self.name.as_c_str(),
            Mode::from_bits_truncate(0o777),
        )?)
    }

    /// `RNTO`: renames this entry to `to` (replacing a file there).
    pub(crate) fn rename_to(&self, to: &Entry) -> io::Result<()> {
        Ok(renameat(
            &self.folder,
            self.name.as_c_str(),
            &to.folder,
            to.name.as_c_str(),
        )?)
    }
}
