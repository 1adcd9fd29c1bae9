//! The served folder as a descriptor, opened once at server start, and
//! every path opened beneath it.
//!
//! A check of a path followed by a use of the same path is a race: between
//! the two, another session (or a local user) can rename a folder on the
//! way, or swap it for a symbolic link, and the use lands outside the
//! root. So no path is ever checked and then used: every one is opened
//! *relative to the root's descriptor* by the kernel, in one step that
//! refuses to leave it, and what is done next is done on the descriptor
//! that step returned (`fstat`, `read`, `mkdirat`, `renameat`...).
//!
//! * **`openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`** (Linux 5.6 and
//!   later): the kernel resolves the path from the root's descriptor and
//!   fails with `EXDEV` on any step out of it: `..` above it, an absolute
//!   link, a relative link that climbs out. Links that stay inside are
//!   followed. `/proc` magic links are refused.
//! * **A walk, where the kernel has no `openat2`** (`ENOSYS`, or a
//!   seccomp filter's `EPERM`): one `openat(O_NOFOLLOW)` per name, each
//!   from the descriptor of the folder before it. No link is followed at
//!   all then (safe, and stricter).
//!
//! The root's descriptor stays on the folder it was opened on even if that
//! folder is later renamed or moved: sessions keep serving it.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

/// How often an `openat2` that answered `EAGAIN` is tried again: the
/// kernel says so when a rename elsewhere raced a `..` in a link's target.
const EAGAIN_TRIES: usize = 16;

/// The served folder: its descriptor and its canonical path (for logs and
/// [`super::Ftp::root`] only; nothing is opened through the path).
#[derive(Debug)]
pub(crate) struct Root {
    fd: OwnedFd,
    path: PathBuf,
    /// True if the kernel has `openat2`; false: the component walk.
    beneath: bool,
}

impl Root {
    /// Opens `path` (which must be a folder) once, and checks whether the
    /// kernel resolves paths beneath a descriptor.
    pub(crate) fn open(path: &Path) -> io::Result<Root> {
        let path = std::fs::canonicalize(path)?;
        let fd = nix::fcntl::open(
            &path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::ENOTDIR => io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a folder", path.display()),
            ),
            e => io::Error::from(e),
        })?;
        let probe = openat2(&fd, ".", how(OFlag::O_PATH | OFlag::O_DIRECTORY));
        let beneath = !matches!(probe, Err(Errno::ENOSYS | Errno::EPERM));
        if !beneath {
            log::warn!(
                "ftp: no openat2 in this kernel: symbolic links in the root are not followed"
            );
        }
        Ok(Root { fd, path, beneath })
    }

    /// The same root, forced to use the component walk (tests).
    #[cfg(test)]
    pub(crate) fn open_walking(path: &Path) -> io::Result<Root> {
        let mut root = Root::open(path)?;
        root.beneath = false;
        Ok(root)
    }

    /// The canonical path the root had when it was opened.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `names` (a path below the root, one name per item; none: the
    /// root itself) with `flags`, never leaving the root. Links inside the
    /// root are followed (unless `flags` holds `O_NOFOLLOW`, which applies
    /// to the last name); a path that would leave it fails with `EXDEV`.
    pub(crate) fn open_beneath(&self, names: &[Vec<u8>], flags: OFlag) -> io::Result<OwnedFd> {
        // openat2 refuses (EINVAL) any flag with O_PATH but O_DIRECTORY,
        // O_NOFOLLOW and O_CLOEXEC.
        let flags = match flags.contains(OFlag::O_PATH) {
            true => flags | OFlag::O_CLOEXEC,
            false => flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
        };
        if self.beneath {
            let path = joined(names)?;
            for _ in 0..EAGAIN_TRIES {
                match openat2(&self.fd, path.as_c_str(), how(flags)) {
                    Err(Errno::EAGAIN) => continue,
                    other => return other.map_err(io::Error::from),
                }
            }
            return Err(Errno::EAGAIN.into());
        }
        self.walk(names, flags)
    }

    /// The fallback: each folder on the way opened from the one before,
    /// with `O_NOFOLLOW`, so no link is followed anywhere.
    fn walk(&self, names: &[Vec<u8>], flags: OFlag) -> io::Result<OwnedFd> {
        let Some((last, folders)) = names.split_last() else {
            return Ok(openat(&self.fd, ".", flags, Mode::empty())?);
        };
        let mut folder: Option<OwnedFd> = None;
        for name in folders {
            let at = folder.as_ref().map_or(self.fd.as_fd(), AsFd::as_fd);
            let next = openat(
                at,
                cstring(name)?.as_c_str(),
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            folder = Some(next);
        }
        let at = folder.as_ref().map_or(self.fd.as_fd(), AsFd::as_fd);
        let fd = openat(
            at,
            cstring(last)?.as_c_str(),
            flags | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )?;
        // O_PATH | O_NOFOLLOW opens a link itself, where any other open
        // fails with ELOOP: a link is not what was asked for.
        let asked_for_link = flags.contains(OFlag::O_NOFOLLOW);
        if flags.contains(OFlag::O_PATH)
            && !asked_for_link
            && File::from(fd.try_clone()?).metadata()?.is_symlink()
        {
            return Err(Errno::ELOOP.into());
        }
        Ok(fd)
    }
}

/// The `open_how` of every open beneath the root.
fn how(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// `a/b/c` for the names `a`, `b`, `c`; `.` for none.
fn joined(names: &[Vec<u8>]) -> io::Result<CString> {
    if names.is_empty() {
        return Ok(CString::from(c"."));
    }
    let mut path = Vec::new();
    for name in names {
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name);
    }
    cstring(&path)
}

/// A name as a C string (names never hold NUL: the client's are refused
/// before this).
pub(crate) fn cstring(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(path: &str) -> Vec<Vec<u8>> {
        path.split('/').map(|n| n.as_bytes().to_vec()).collect()
    }

    /// A root holding a file, a link inside, a link out, an absolute link.
    fn tree(tag: &str) -> (PathBuf, PathBuf) {
        let base = std::env::temp_dir().join(format!("ftp-root-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::write(root.join("d/f"), "inside").unwrap();
        std::fs::write(base.join("secret"), "outside").unwrap();
        std::os::unix::fs::symlink("d/f", root.join("in")).unwrap();
        std::os::unix::fs::symlink("../secret", root.join("out")).unwrap();
        std::os::unix::fs::symlink("../../secret", root.join("d/up")).unwrap();
        std::os::unix::fs::symlink(root.join("d/f"), root.join("abs")).unwrap();
        (base, root)
    }

    fn read(root: &Root, path: &str) -> Result<String, Errno> {
        let fd = root
            .open_beneath(&names(path), OFlag::O_RDONLY)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap()))?;
        Ok(std::io::read_to_string(File::from(fd)).unwrap())
    }

    #[test]
    fn nothing_resolves_outside_the_root() {
        let (base, path) = tree("beneath");
        let root = Root::open(&path).unwrap();
        assert!(root.beneath, "this kernel has openat2");
        assert_eq!(read(&root, "d/f").as_deref(), Ok("inside"));
        assert_eq!(read(&root, "in").as_deref(), Ok("inside"));
        assert_eq!(read(&root, "out"), Err(Errno::EXDEV));
        assert_eq!(read(&root, "d/up"), Err(Errno::EXDEV));
        assert_eq!(read(&root, "abs"), Err(Errno::EXDEV));
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn the_walk_follows_no_link() {
        let (base, path) = tree("walk");
        let root = Root::open_walking(&path).unwrap();
        assert_eq!(read(&root, "d/f").as_deref(), Ok("inside"));
        assert_eq!(read(&root, "in"), Err(Errno::ELOOP));
        assert_eq!(read(&root, "out"), Err(Errno::ELOOP));
        assert_eq!(read(&root, "d/up"), Err(Errno::ELOOP));
        std::os::unix::fs::symlink(base.join("root/d"), path.join("dl")).unwrap();
        assert_eq!(read(&root, "dl/f"), Err(Errno::ENOTDIR));
        assert!(root.open_beneath(&[], OFlag::O_PATH).is_ok());
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn o_path_opens_work_both_ways() {
        let (base, path) = tree("o-path");
        for root in [
            Root::open(&path).unwrap(),
            Root::open_walking(&path).unwrap(),
        ] {
            for flags in [OFlag::O_PATH, OFlag::O_PATH | OFlag::O_DIRECTORY] {
                let fd = root.open_beneath(&names("d"), flags).unwrap();
                assert!(File::from(fd).metadata().unwrap().is_dir());
            }
            assert!(root
                .open_beneath(&[], OFlag::O_PATH | OFlag::O_DIRECTORY)
                .is_ok());
        }
        std::fs::remove_dir_all(base).unwrap();
    }
}
