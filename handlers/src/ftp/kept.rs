//! The kept part of a resumed upload (`APPE`: the whole old file;
//! `REST n` + `STOR`: its first n bytes), put at the start of the temp
//! file by the kernel, in a thread of its own while the new bytes arrive.
//!
//! `copy_file_range(2)` moves the bytes without passing them through this
//! process: a reflink where the file system shares blocks (btrfs, XFS:
//! instant), an in-kernel copy elsewhere (ext4, tmpfs: about as long as
//! `cp`). Either way the transfer does not wait for it: the new bytes are
//! written after the kept part's end while the copy fills the start, and
//! only the commit waits for both. Offsets are explicit on both sides, so
//! the copy never moves the temp file's position, where the transfer
//! writes.
//!
//! When the kept part must be hashed (`SITE CHKHASH`, or
//! `--hash-transfers always`), the hash has to see it first: it is then
//! copied before the transfer and read back ([`copy_and_observe`]).
//!
//! Copying gigabytes, reading them back, waiting for the copy's thread:
//! each may take seconds, so each goes through
//! [`socketserver::event::blocking`], which in the event model runs it on
//! the framework's pool while the conversation waits (its event loop
//! serves the others), and elsewhere runs it in place, as before.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::fcntl::copy_file_range;
use socketserver::event;

use super::pipeline::{Observer, Pipeline, CHUNK};

/// The most one `copy_file_range` call is asked to copy: between two
/// calls the copy looks whether it was called off.
const COPY_CHUNK: usize = 64 << 20;

/// Copies the first `len` bytes of `old` to the first `len` bytes of
/// `temp`, in the kernel, until done or `stop` is set. An old file that
/// is now shorter than `len` is an error: it changed under the resume.
pub(crate) fn copy_kept(old: &File, len: u64, temp: &File, stop: &AtomicBool) -> io::Result<()> {
    let (mut from, mut to) = (0i64, 0i64);
    while (to as u64) < len {
        if stop.load(Ordering::Relaxed) {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let want = usize::try_from(len - to as u64).map_or(COPY_CHUNK, |n| n.min(COPY_CHUNK));
        match copy_file_range(old, Some(&mut from), temp, Some(&mut to), want) {
            Ok(0) => return Err(changed()),
            Ok(_) => {}
            Err(Errno::EINTR) => {}
            // Two file systems, or one that cannot.
            Err(Errno::EXDEV | Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) if to == 0 => {
                return copy_by_hand(old, len, temp, stop);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The same through a buffer, where the kernel cannot copy.
fn copy_by_hand(old: &File, len: u64, temp: &File, stop: &AtomicBool) -> io::Result<()> {
    let mut buf = vec![0; CHUNK];
    let mut at = 0u64;
    while at < len {
        if stop.load(Ordering::Relaxed) {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let want = usize::try_from(len - at).map_or(buf.len(), |n| n.min(buf.len()));
        let n = match old.read_at(&mut buf[..want], at) {
            Ok(0) => return Err(changed()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        temp.write_all_at(&buf[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

fn changed() -> io::Error {
    io::Error::other("the file shrank during the resume")
}

/// The copy of the kept part, running beside the transfer. Dropped
/// without [`KeptCopy::finish`], it is called off (at its next chunk).
pub(crate) struct KeptCopy {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<()>>>,
    /// The result, when no thread could be started and the copy ran here.
    done: Option<io::Result<()>>,
}

impl KeptCopy {
    /// Starts copying the first `len` bytes of `old` into `temp`.
    pub(crate) fn start(old: File, len: u64, temp: &File) -> io::Result<KeptCopy> {
        let stop = Arc::new(AtomicBool::new(false));
        let temp = temp.try_clone()?;
        let flag = Arc::clone(&stop);
        let (old, temp) = (Arc::new(old), Arc::new(temp));
        let (old_there, temp_there) = (Arc::clone(&old), Arc::clone(&temp));
        let spawned = std::thread::Builder::new()
            .name("ftp-kept-copy".into())
            .spawn(move || copy_kept(&old_there, len, &temp_there, &flag));
        Ok(match spawned {
            Ok(thread) => KeptCopy {
                stop,
                thread: Some(thread),
                done: None,
            },
            Err(e) => {
                log::warn!("no thread for the kept part ({e}); copying it first");
                let flag = Arc::clone(&stop);
                let done = event::blocking(move || copy_kept(&old, len, &temp, &flag));
                KeptCopy {
                    stop,
                    thread: None,
                    done: Some(done),
                }
            }
        })
    }

    /// Waits for the copy to end; its result.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        if let Some(done) = self.done.take() {
            return done;
        }
        let thread = self.thread.take();
        match event::blocking(move || thread.map(JoinHandle::join)) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the copy of the kept part panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for KeptCopy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Copies the first `len` bytes of `old` to the start of `temp`, then
/// shows them to `pipe`'s observer (the kept part of a resumed upload,
/// when its MD5 must be the whole stored file's); through
/// [`event::blocking`]. Leaves `temp`'s position at `len`, where the new
/// bytes go. Gives the pipeline back, with how it went.
pub(crate) fn copy_and_observe<O: Observer>(
    old: File,
    len: u64,
    temp: &File,
    pipe: Pipeline<O>,
) -> (Pipeline<O>, io::Result<()>) {
    // A copy of the descriptor, which the pool's thread can own; it shares
    // the file's position.
    let temp = match temp.try_clone() {
        Ok(temp) => temp,
        Err(e) => return (pipe, Err(e)),
    };
    event::blocking(move || {
        let mut pipe = pipe;
        let never = AtomicBool::new(false);
        let done =
            copy_kept(&old, len, &temp, &never).and_then(|()| observe_kept(&temp, len, &mut pipe));
        (pipe, done)
    })
}

/// Shows the first `len` bytes of the temp file to `pipe`'s observer.
/// Leaves the file's position at `len`.
fn observe_kept<O: Observer>(mut temp: &File, len: u64, pipe: &mut Pipeline<O>) -> io::Result<()> {
    temp.seek(SeekFrom::Start(0))?;
    if pipe.feed(&mut temp, len)? < len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    fn temp_file() -> File {
        let dir = std::env::temp_dir();
        nix::fcntl::open(
            &dir,
            nix::fcntl::OFlag::O_TMPFILE | nix::fcntl::OFlag::O_RDWR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .map(File::from)
        .unwrap()
    }

    fn old_file(bytes: &[u8]) -> File {
        let mut file = temp_file();
        file.write_all(bytes).unwrap();
        file
    }

    #[test]
    fn the_kept_part_and_the_new_bytes_meet_exactly() {
        let old: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        for len in [0u64, 1, 1000, 3_000_000] {
            let mut temp = temp_file();
            let copy = KeptCopy::start(old_file(&old), len, &temp).unwrap();
            // The transfer writes after the kept part, meanwhile.
            temp.seek(SeekFrom::Start(len)).unwrap();
            temp.write_all(b"new").unwrap();
            copy.finish().unwrap();
            let mut expected = old[..len as usize].to_vec();
            expected.extend_from_slice(b"new");
            let mut got = vec![0; expected.len() + 1];
            let n = temp.read_at(&mut got, 0).unwrap();
            assert_eq!(&got[..n], expected, "{len}");
        }
    }

    #[test]
    fn both_ways_of_copying_agree_and_a_shrunk_file_is_an_error() {
        let old = old_file(b"0123456789");
        let never = AtomicBool::new(false);
        for copy in [copy_kept, copy_by_hand] {
            let temp = temp_file();
            copy(&old, 4, &temp, &never).unwrap();
            let mut got = [0; 8];
            assert_eq!(temp.read_at(&mut got, 0).unwrap(), 4);
            assert_eq!(&got[..4], b"0123");
            assert!(copy(&old, 11, &temp_file(), &never).is_err());
            let stopped = AtomicBool::new(true);
            let e = copy(&old, 4, &temp_file(), &stopped).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::Interrupted);
        }
    }
}
