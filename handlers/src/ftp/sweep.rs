//! The sweep at start: upload temp files left by a server that died.
//!
//! Uploads normally go to unnamed `O_TMPFILE` files, which vanish with
//! the process. Two cases leave a named one (`.ftp-upload-<random>.part`,
//! hidden and refused as a path): a file system without `O_TMPFILE`,
//! where the temp file is named from the start, and a death in the
//! moment between linking an upload under a temp name and renaming it
//! over the file it replaces. So a new server walks its tree once and
//! removes them.
//!
//! The walk goes by descriptors, as everything else: each folder is
//! opened from its parent with `O_NOFOLLOW`, so no link takes it outside
//! the root. It is bounded ([`MAX_ENTRIES`] entries looked at), and it
//! spares temp files changed within [`STALE_AFTER`]: they may belong to a
//! live upload of another server on the same folder.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::dir::Dir;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use super::root::Root;
use super::vfs::TEMP_PREFIX;

/// The most entries the sweep looks at.
pub(crate) const MAX_ENTRIES: usize = 100_000;
/// A temp file changed more recently than this may be a live upload's.
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(15 * 60);

/// Removes the stale upload temp files under `root`; returns how many.
pub(crate) fn sweep(root: &Root) -> usize {
    let stale_before = SystemTime::now()
        .checked_sub(STALE_AFTER)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    // Folders still to look at, by their names below the root: a stack of
    // paths, not of descriptors, so a wide tree cannot use up descriptors.
    let mut folders: Vec<Vec<Vec<u8>>> = vec![Vec::new()];
    let (mut seen, mut removed) = (0, 0);
    while let Some(path) = folders.pop() {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
        let Ok(folder) = root.open_beneath(&path, flags) else {
            continue;
        };
        let Some(mut reader) = folder.try_clone().ok().and_then(|fd| Dir::from_fd(fd).ok()) else {
            continue;
        };
        for item in reader.iter().filter_map(Result::ok) {
            seen += 1;
            if seen > MAX_ENTRIES {
                log::warn!(
                    "ftp: the sweep for stale upload temp files stopped at {MAX_ENTRIES} entries"
                );
                return removed;
            }
            let name = item.file_name();
            let bytes = name.to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            let Ok(stat) = fstatat(&folder, name, AtFlags::AT_SYMLINK_NOFOLLOW) else {
                continue;
            };
            let kind = SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits());
            if kind == SFlag::S_IFDIR {
                let mut sub = path.clone();
                sub.push(bytes.to_vec());
                folders.push(sub);
            } else if kind == SFlag::S_IFREG
                && bytes.starts_with(TEMP_PREFIX)
                && bytes.ends_with(b".part")
                && stat.st_mtime < stale_before
                && unlinkat(&folder, name, UnlinkatFlags::NoRemoveDir).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temp_files_are_swept_fresh_ones_and_others_kept() {
        let base = std::env::temp_dir().join(format!("ftp-sweep-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root_path = base.join("root");
        std::fs::create_dir_all(root_path.join("a/b")).unwrap();
        std::fs::create_dir(base.join("outside")).unwrap();
        let old = SystemTime::now() - STALE_AFTER - Duration::from_secs(60);
        let stale = |path: std::path::PathBuf| {
            let file = std::fs::File::create(&path).unwrap();
            file.set_modified(old).unwrap();
        };
        stale(root_path.join(".ftp-upload-0000000000000001.part"));
        stale(root_path.join("a/b/.ftp-upload-0000000000000002.part"));
        stale(base.join("outside/.ftp-upload-0000000000000003.part"));
        stale(root_path.join("a/kept.part"));
        std::fs::write(
            root_path.join("a/.ftp-upload-0000000000000004.part"),
            "live",
        )
        .unwrap();
        std::os::unix::fs::symlink(base.join("outside"), root_path.join("out")).unwrap();
        let root = Root::open(&root_path).unwrap();
        assert_eq!(sweep(&root), 2);
        let mut left: Vec<_> = ["a", "a/b"]
            .iter()
            .flat_map(|d| std::fs::read_dir(root_path.join(d)).unwrap())
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [".ftp-upload-0000000000000004.part", "b", "kept.part"]
        );
        assert!(base
            .join("outside/.ftp-upload-0000000000000003.part")
            .exists());
        std::fs::remove_dir_all(base).unwrap();
    }
}
