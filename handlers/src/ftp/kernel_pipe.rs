//! A pipe inside the kernel, through which an upload that nobody needs
//! to see goes from the data socket to its file with `splice(2)`.
//!
//! `recv(2)` into a buffer and `write(2)` out of it copy every byte twice
//! (socket to buffer, buffer to page cache); splicing the socket into a
//! pipe moves references to the received pages, and splicing the pipe
//! into the file copies them once. An upload that is hashed, converted
//! (`TYPE A`) or decrypted (`PROT P`) must pass through this process, and
//! goes the usual way.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};
use nix::unistd::pipe2;

/// How much a pipe is asked to hold: one splice from the socket moves up
/// to this much (the default pipe holds 64 KiB; the system may refuse
/// more than `/proc/sys/fs/pipe-max-size`, and then the default stays).
const WANTED: usize = 1024 * 1024;

/// A pipe, its two ends held by this process.
pub(crate) struct KernelPipe {
    read: OwnedFd,
    write: OwnedFd,
    /// What the pipe holds at most.
    capacity: usize,
}

impl KernelPipe {
    /// A new, empty pipe.
    pub(crate) fn new() -> io::Result<KernelPipe> {
        let (read, write) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        let capacity = match fcntl(&write, FcntlArg::F_SETPIPE_SZ(WANTED as i32)) {
            Ok(size) => usize::try_from(size).unwrap_or(64 * 1024),
            Err(_) => fcntl(&write, FcntlArg::F_GETPIPE_SZ)
                .ok()
                .and_then(|size| usize::try_from(size).ok())
                .unwrap_or(64 * 1024),
        };
        Ok(KernelPipe {
            read,
            write,
            capacity,
        })
    }

    /// Moves what `socket` has (at most the pipe's capacity) into the
    /// pipe, without waiting: `Ok(0)` at the end of the stream,
    /// `EAGAIN` when nothing is there yet. The pipe must be empty.
    pub(crate) fn fill(&self, socket: impl AsFd) -> Result<usize, Errno> {
        splice(
            socket,
            None,
            &self.write,
            None,
            self.capacity,
            SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK,
        )
    }

    /// Writes the `n` bytes the pipe holds to `file`, at its position,
    /// leaving the pipe empty.
    pub(crate) fn drain_into(&self, file: &mut File, mut n: usize) -> io::Result<()> {
        while n > 0 {
            match splice(
                &self.read,
                None,
                &*file,
                None,
                n,
                SpliceFFlags::SPLICE_F_MOVE,
            ) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => n -= k,
                Err(Errno::EINTR) => {}
                // A file system that takes no splice: copy the rest.
                Err(Errno::EINVAL) => return self.copy_into(file, n),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Writes the `n` bytes the pipe holds to `file` through a buffer.
    fn copy_into(&self, file: &mut File, mut n: usize) -> io::Result<()> {
        let mut buf = vec![0; n.min(64 * 1024)];
        let mut read = File::from(self.read.try_clone()?);
        while n > 0 {
            let want = n.min(buf.len());
            match read.read(&mut buf[..want]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(k) => {
                    file.write_all(&buf[..k])?;
                    n -= k;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom};
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn socket_to_file_through_the_pipe() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let pipe = KernelPipe::new().unwrap();
        assert!(pipe.capacity >= 64 * 1024);
        assert_eq!(pipe.fill(&server), Err(Errno::EAGAIN));

        let dir = std::env::temp_dir().join(format!("kernel-pipe-{}", std::process::id()));
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&dir)
            .unwrap();
        std::fs::remove_file(&dir).unwrap();
        file.write_all(b"kept:").unwrap();
        let sent: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        client.write_all(&sent).unwrap();
        drop(client);
        let mut total = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            assert!(std::time::Instant::now() < deadline, "the bytes never came");
            match pipe.fill(&server) {
                Ok(0) => break,
                Ok(n) => {
                    pipe.drain_into(&mut file, n).unwrap();
                    total += n;
                }
                Err(Errno::EAGAIN) => std::thread::yield_now(),
                Err(e) => panic!("splice: {e}"),
            }
        }
        assert_eq!(total, sent.len());
        let mut got = Vec::new();
        file.seek(SeekFrom::Start(0)).unwrap();
        file.read_to_end(&mut got).unwrap();
        assert_eq!(&got[..5], b"kept:");
        assert_eq!(&got[5..], &sent[..]);
    }
}
