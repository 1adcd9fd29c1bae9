//! Where an upload's bytes go until it is complete: an unnamed temp file
//! in the target's folder, given the target's name only at commit.
//!
//! * **`O_TMPFILE`**: the file has no name while it fills, so a server
//!   that crashes or is killed mid-upload leaves nothing behind, and no
//!   client can see or reach it. At commit, after `fsync`, it is linked
//!   in (`linkat`): straight under the target's name when that is free
//!   (atomic: the name appears with every byte), else under a hidden
//!   temp name that is then renamed over the old file (atomic too: the
//!   name always holds the old file or the new one).
//! * **A hidden named temp file** (`.ftp-upload-<random>.part`, refused
//!   as a path and never listed) where the file system has no
//!   `O_TMPFILE`; removed on every path but the commit.
//!
//! Both are made in the target's folder through its descriptor
//! ([`Entry`]), so the commit is a link or rename within one folder.
//!
//! Resumes (`APPE`, `REST` + `STOR`) start the temp file with the kept
//! part of the old file: see `kept.rs`.
//!
//! The two `fsync`s of a commit wait for the disk, up to seconds for a
//! large upload: they go through [`socketserver::event::blocking`] (in the
//! event model on the framework's pool, so the conversation's event loop
//! goes on serving the others; in place elsewhere).

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{openat, renameat, AtFlags, OFlag, AT_FDCWD};
use nix::sys::stat::Mode;
use nix::unistd::{linkat, unlinkat, UnlinkatFlags};
use socketserver::error::describe;

use super::data;
use super::entry::Entry;
use super::vfs::TEMP_PREFIX;

/// How many random temp names are tried before giving up.
const NAME_TRIES: usize = 8;

/// A temp file an upload goes to: linked or renamed to the target when
/// the upload completes, gone otherwise.
pub(crate) struct TempFile {
    /// The folder it is in (the target's).
    folder: OwnedFd,
    file: File,
    /// The hidden name of a named temp file; `None`: unnamed (`O_TMPFILE`).
    name: Option<CString>,
    synced: bool,
    committed: bool,
}

impl TempFile {
    /// A temp file in `folder` (opened beneath the root).
    pub(crate) fn create(folder: BorrowedFd<'_>) -> io::Result<TempFile> {
        let folder = folder.try_clone_to_owned()?;
        let mode = Mode::from_bits_truncate(0o666);
        let flags = OFlag::O_RDWR | OFlag::O_CLOEXEC;
        match openat(&folder, ".", flags | OFlag::O_TMPFILE, mode) {
            Ok(fd) => return Ok(TempFile::new(folder, File::from(fd), None)),
            // A file system without O_TMPFILE (EISDIR: a kernel without it).
            Err(Errno::EOPNOTSUPP | Errno::EISDIR | Errno::EINVAL) => {}
            Err(e) => return Err(e.into()),
        }
        TempFile::create_named(folder)
    }

    /// A hidden named temp file in `folder`.
    fn create_named(folder: OwnedFd) -> io::Result<TempFile> {
        let mode = Mode::from_bits_truncate(0o666);
        let flags = OFlag::O_RDWR | OFlag::O_CLOEXEC;
        for _ in 0..NAME_TRIES {
            let name = temp_name();
            let created = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW;
            match openat(&folder, name.as_c_str(), flags | created, mode) {
                Ok(fd) => return Ok(TempFile::new(folder, File::from(fd), Some(name))),
                Err(Errno::EEXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(io::Error::other("no free temp file name"))
    }

    fn new(folder: OwnedFd, file: File, name: Option<CString>) -> TempFile {
        TempFile {
            folder,
            file,
            name,
            synced: false,
            committed: false,
        }
    }

    pub(crate) fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Makes the bytes durable (fsync), not yet visible.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        sync_all(&self.file)?;
        self.synced = true;
        Ok(())
    }

    /// Makes the upload durable and visible under `target`'s name: fsync
    /// (unless done already by [`TempFile::sync`]), link or rename, fsync
    /// of the folder.
    pub(crate) fn commit(&mut self, target: &Entry) -> io::Result<()> {
        if !self.synced {
            self.sync()?;
        }
        match &self.name {
            Some(name) => renameat(
                &self.folder,
                name.as_c_str(),
                target.folder(),
                target.name(),
            )?,
            None => self.link_as(target)?,
        }
        self.committed = true;
        let folder = openat(
            target.folder(),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let folder = File::from(folder);
        socketserver::event::blocking(move || folder.sync_all())
    }

    /// Gives the unnamed file `target`'s name, replacing what is there.
    fn link_as(&self, target: &Entry) -> io::Result<()> {
        match self.link(target.folder(), target.name()) {
            Err(Errno::EEXIST) => {}
            done => return Ok(done?),
        }
        let mut hidden = None;
        for _ in 0..NAME_TRIES {
            let name = temp_name();
            match self.link(self.folder.as_fd(), &name) {
                Ok(()) => {
                    hidden = Some(name);
                    break;
                }
                Err(Errno::EEXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let hidden = hidden.ok_or_else(|| io::Error::other("no free temp file name"))?;
        let renamed = renameat(
            &self.folder,
            hidden.as_c_str(),
            target.folder(),
            target.name(),
        );
        if renamed.is_err() {
            let _ = unlinkat(&self.folder, hidden.as_c_str(), UnlinkatFlags::NoRemoveDir);
        }
        Ok(renamed?)
    }

    /// Links the unnamed file as `name` in `folder`. `AT_EMPTY_PATH` needs
    /// a capability on most kernels; the `/proc/self/fd` path works for
    /// anyone (it names this process's own descriptor).
    fn link(&self, folder: BorrowedFd<'_>, name: &CStr) -> Result<(), Errno> {
        match linkat(&self.file, c"", folder, name, AtFlags::AT_EMPTY_PATH) {
            Err(Errno::ENOENT | Errno::EPERM | Errno::EINVAL) => {}
            done => return done,
        }
        let own = format!("/proc/self/fd/{}", self.file.as_raw_fd());
        linkat(
            AT_FDCWD,
            own.as_str(),
            folder,
            name,
            AtFlags::AT_SYMLINK_FOLLOW,
        )
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // An unnamed file vanishes with its descriptor; a named one is
        // removed.
        if let (Some(name), false) = (&self.name, self.committed) {
            if let Err(e) = unlinkat(&self.folder, name.as_c_str(), UnlinkatFlags::NoRemoveDir) {
                log::warn!(
                    "cannot remove the upload temp file: {}",
                    describe(&e.into())
                );
            }
        }
    }
}

/// `fsync` of `file`, through a copy of its descriptor that the pool's
/// thread can own (see the module's docs).
fn sync_all(file: &File) -> io::Result<()> {
    let file = file.try_clone()?;
    socketserver::event::blocking(move || file.sync_all())
}

/// `.ftp-upload-<16 hex digits>.part`.
fn temp_name() -> CString {
    let name = format!(
        "{}{:016x}.part",
        String::from_utf8_lossy(TEMP_PREFIX),
        data::random_u64()
    );
    CString::new(name).expect("no NUL in a temp name")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::{Path, PathBuf};

    fn folder(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ftp-upload-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn open_dir(dir: &Path) -> OwnedFd {
        nix::fcntl::open(dir, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn store(temp: &mut TempFile, dir: &Path, name: &str, bytes: &[u8]) {
        temp.file().write_all(bytes).unwrap();
        let target = Entry::new(open_dir(dir), name.as_bytes()).unwrap();
        temp.commit(&target).unwrap();
    }

    #[test]
    fn unnamed_temp_files_appear_whole_or_not_at_all() {
        let dir = folder("unnamed");
        let mut temp = TempFile::create(open_dir(&dir).as_fd()).unwrap();
        assert!(temp.name.is_none(), "this file system has O_TMPFILE");
        temp.file().write_all(b"partial").unwrap();
        assert_eq!(names(&dir), Vec::<String>::new());
        store(&mut temp, &dir, "new.txt", b"+rest");
        assert_eq!(std::fs::read(dir.join("new.txt")).unwrap(), b"partial+rest");
        // Replacing: through a hidden name, renamed over the old file.
        let mut temp = TempFile::create(open_dir(&dir).as_fd()).unwrap();
        store(&mut temp, &dir, "new.txt", b"replaced");
        assert_eq!(std::fs::read(dir.join("new.txt")).unwrap(), b"replaced");
        drop(TempFile::create(open_dir(&dir).as_fd()).unwrap());
        assert_eq!(names(&dir), ["new.txt"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn named_temp_files_are_renamed_or_removed() {
        let dir = folder("named");
        let mut temp = TempFile::create_named(open_dir(&dir)).unwrap();
        let hidden = temp.name.clone().unwrap().into_string().unwrap();
        assert!(hidden.starts_with(".ftp-upload-") && hidden.ends_with(".part"));
        assert_eq!(names(&dir), [hidden]);
        store(&mut temp, &dir, "a.txt", b"named");
        assert_eq!(names(&dir), ["a.txt"]);
        let temp = TempFile::create_named(open_dir(&dir)).unwrap();
        assert_eq!(names(&dir).len(), 2);
        drop(temp);
        assert_eq!(names(&dir), ["a.txt"]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
