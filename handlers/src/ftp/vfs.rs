//! Path confinement: the client sees a virtual tree whose `/` is the
//! served folder, and nothing it sends can reach outside it.
//!
//! Two steps, both on every use:
//!
//! 1. **Lexical.** The client's path is resolved against the current
//!    virtual folder; `/` and `\` separate names; empty names and `.` are
//!    dropped; `..` removes the name before it and stops at `/` (so
//!    `/../../etc` is `/etc`, inside the root). Names holding NUL, CR or LF
//!    are refused, and so are the names of upload temp files.
//! 2. **Physical, by the kernel.** The names are opened beneath the root's
//!    descriptor in one step that cannot leave it ([`Root`]); what follows
//!    uses the descriptor opened, never the path again. An entry that is
//!    created, renamed or removed is a descriptor of the folder holding it
//!    and a name in it ([`Entry`]), so no later rename of a folder on the
//!    way can move the operation elsewhere. A link that leads out of the
//!    root (or nowhere) is refused, and hidden from listings.
//!
//! Anonymous sessions see only what every local user could read
//! (vsftpd's `anon_world_readable_only`): a file readable by others, in
//! folders that others can enter, both on the path as sent and where a
//! link inside the root led (the root's own mode aside: serving it was
//! the operator's choice). A private key in a shared home folder is not
//! served.
//!
//! Paths are bytes, as Unix file names are: nothing needs to be UTF-8.

use std::fs::{File, Metadata};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::OFlag;

use super::entry::Entry;
use super::folder::Folder;
use super::root::Root;

/// The name prefix of upload temp files: hidden from listings, refused as
/// a path.
pub(crate) const TEMP_PREFIX: &[u8] = b".ftp-upload-";

/// Mode bits: others may read, others may enter (search) a folder.
const OTHERS_READ: u32 = 0o004;
const OTHERS_SEARCH: u32 = 0o001;

/// Why a path was refused.
#[derive(Debug)]
pub(crate) enum PathError {
    /// A name holds NUL, CR or LF.
    BadName,
    /// Nothing there (or an upload temp file, which does not exist for the
    /// client).
    NotFound,
    /// The path leads outside the root, names the root itself where an
    /// entry is needed, or is not for this user.
    Denied,
    /// Another error of the file system.
    Io(io::Error),
}

impl PathError {
    pub(crate) fn from_io(e: io::Error) -> PathError {
        match e.raw_os_error().map(Errno::from_raw) {
            // EXDEV: the kernel refused to leave the root; ELOOP: a link
            // where none may be followed, or a loop of links.
            Some(Errno::EXDEV | Errno::ELOOP) => return PathError::Denied,
            Some(Errno::ENOENT | Errno::ENOTDIR) => return PathError::NotFound,
            _ => {}
        }
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
            PathError::Io(e) => format!("{}.", socketserver::error::describe(e)),
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

/// A session's view of the served folder: the root, the current virtual
/// folder, and whether only world-readable things are shown (anonymous).
#[derive(Clone, Debug)]
pub(crate) struct Vfs {
    root: Arc<Root>,
    cwd: VPath,
    world_only: bool,
}

impl Vfs {
    pub(crate) fn new(root: Arc<Root>) -> Vfs {
        Vfs {
            root,
            cwd: VPath::default(),
            world_only: false,
        }
    }

    pub(crate) fn cwd(&self) -> &VPath {
        &self.cwd
    }

    /// Anonymous sessions: only files readable by everyone, in folders
    /// everyone can enter.
    pub(crate) fn set_world_readable_only(&mut self, on: bool) {
        self.world_only = on;
    }

    /// True if this session may read what `meta` describes (its folders
    /// aside): always, but for anonymous sessions and what not everyone
    /// may read (also the `perm` fact of listings).
    pub(crate) fn may_read(&self, meta: &Metadata) -> bool {
        !self.world_only || world_may_read(meta)
    }

    /// True if the session may read only what everyone may (anonymous).
    pub(crate) fn world_only(&self) -> bool {
        self.world_only
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

    /// Step 2: `path` opened beneath the root with `flags`.
    fn open(&self, path: &VPath, flags: OFlag) -> Result<OwnedFd, PathError> {
        if self.world_only {
            self.check_folders_on_the_way(&path.names)?;
        }
        let fd = self
            .root
            .open_beneath(&path.names, flags)
            .map_err(PathError::from_io)?;
        if self.world_only {
            self.check_real_folders(&fd)?;
        }
        Ok(fd)
    }

    /// Anonymous: every folder between the root and the one holding
    /// `names` must let everyone in (as it must for a local user to reach
    /// it).
    fn check_folders_on_the_way(&self, names: &[Vec<u8>]) -> Result<(), PathError> {
        for depth in 1..names.len() {
            let fd = self
                .root
                .open_beneath(&names[..depth], OFlag::O_PATH | OFlag::O_DIRECTORY)
                .map_err(PathError::from_io)?;
            let meta = File::from(fd).metadata().map_err(PathError::Io)?;
            if meta.permissions().mode() & OTHERS_SEARCH == 0 {
                return Err(PathError::Denied);
            }
        }
        Ok(())
    }

    /// Anonymous, after a link inside the root was followed: the same
    /// check on the folders that really hold what was opened (a link in a
    /// public folder to a file in a private one does not make it public).
    /// The real path is the kernel's name for the descriptor; without
    /// `/proc`, the check on the path as sent stands alone.
    fn check_real_folders(&self, fd: &OwnedFd) -> Result<(), PathError> {
        use std::os::fd::AsRawFd;
        use std::os::unix::ffi::OsStrExt;
        let Ok(real) = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())) else {
            return Ok(());
        };
        let Ok(below) = real.strip_prefix(self.root.path()) else {
            return Ok(());
        };
        let names: Vec<Vec<u8>> = below.iter().map(|name| name.as_bytes().to_vec()).collect();
        self.check_folders_on_the_way(&names)
    }

    /// What `path` is (links inside the root followed).
    pub(crate) fn metadata(&self, path: &VPath) -> Result<Metadata, PathError> {
        let fd = self.open(path, OFlag::O_PATH)?;
        File::from(fd).metadata().map_err(PathError::Io)
    }

    /// Opens a regular file for reading. Anything else is refused as not
    /// found: a FIFO or a device could block the session or never end.
    /// The open is non-blocking, so a FIFO cannot hang it; the checks are
    /// made on the open descriptor.
    pub(crate) fn open_file(&self, path: &VPath) -> Result<(File, Metadata), PathError> {
        let fd = self.open(path, OFlag::O_RDONLY | OFlag::O_NONBLOCK)?;
        let file = File::from(fd);
        let meta = file.metadata().map_err(PathError::Io)?;
        if !meta.is_file() {
            return Err(PathError::NotFound);
        }
        if !self.may_read(&meta) {
            return Err(PathError::Denied);
        }
        Ok((file, meta))
    }

    /// Opens a folder to list it.
    pub(crate) fn open_folder(&self, path: &VPath) -> Result<Folder, PathError> {
        let fd = self.open(path, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
        let folder = Folder::new(fd, Arc::clone(&self.root), path.names.clone())
            .map_err(PathError::from_io)?;
        if !path.names.is_empty() && !self.may_read(&folder.metadata().map_err(PathError::Io)?) {
            return Err(PathError::Denied);
        }
        Ok(folder)
    }

    /// Step 2 for an entry that is created, removed or renamed: the folder
    /// that holds it, opened beneath the root, and its name there, which
    /// is never followed. The root itself is no entry. A link there that
    /// leads out of the root (or nowhere) is refused: it is not shown in
    /// listings, and not touched either.
    pub(crate) fn entry(&self, path: &VPath) -> Result<Entry, PathError> {
        let Some((name, folders)) = path.names.split_last() else {
            return Err(PathError::Denied);
        };
        let parent = VPath {
            names: folders.to_vec(),
        };
        let folder = self.open(&parent, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
        let entry = Entry::new(folder, name).map_err(PathError::from_io)?;
        if entry.is_link() && self.open(path, OFlag::O_PATH).is_err() {
            return Err(PathError::Denied);
        }
        Ok(entry)
    }

    /// Changes the current folder to `path`, which must be a folder under
    /// the root (that everyone may enter, for anonymous sessions).
    pub(crate) fn change_dir(&mut self, path: VPath) -> Result<(), PathError> {
        let meta = self.metadata(&path)?;
        if !meta.is_dir() {
            return Err(PathError::NotFound);
        }
        if self.world_only
            && !path.names.is_empty()
            && meta.permissions().mode() & OTHERS_SEARCH == 0
        {
            return Err(PathError::Denied);
        }
        self.cwd = path;
        Ok(())
    }
}

/// True if everyone may read `meta`'s file (`o+r`), or list and enter its
/// folder (`o+rx`): what an anonymous session may read.
pub(crate) fn world_may_read(meta: &Metadata) -> bool {
    let mode = meta.permissions().mode();
    let needed = match meta.is_dir() {
        true => OTHERS_READ | OTHERS_SEARCH,
        false => OTHERS_READ,
    };
    mode & needed == needed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vfs_at(cwd: &[u8]) -> Vfs {
        let root = Root::open(&std::env::temp_dir()).unwrap();
        let mut vfs = Vfs::new(Arc::new(root));
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
