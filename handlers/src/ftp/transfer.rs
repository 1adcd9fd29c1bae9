//! Moving a file's bytes over a data connection, while the control
//! connection is still listened to.
//!
//! The data socket is non-blocking and [`event::wait`] waits on it and on
//! the control socket together, so `ABOR`, `STAT` and `QUIT` are answered
//! during a transfer, a silent client is cut after the idle timeout, and a
//! client that vanishes (its control connection closes) is noticed. The
//! same watch runs while a file is hashed on demand (`XMD5`, `HASH`).
//!
//! In the event model that wait parks the conversation, and its loop
//! serves the others; a transfer whose sockets are always ready (a fast
//! client on loopback) never waits, so it also yields to its loop every
//! [`YIELD_EVERY`] bytes. The hash of an on-demand digest reads the file
//! and hashes it through [`event::blocking`], a slice at a time (it is
//! the one job here that reads a whole file, maybe cold, back to back,
//! paced by nothing); a transfer's own file reads stay on the loop: they
//! are paced by the network, and read ahead by the kernel. In the other
//! models all of this is what it was: `poll(2)`, no yield, the slice
//! read and hashed in place.
//!
//! Copies go through the buffers of a [`Pipeline`], whose observer (the
//! hash) sees each buffer in a thread of its own once its bytes are
//! written. Bytes that nothing needs to see (no hash, no `TYPE A`
//! conversion) never enter this process: a download goes by `sendfile(2)`
//! from the file to the socket, an upload by `splice(2)` from the socket
//! through a [`KernelPipe`] to the file. Except over TLS (`PROT P`): the
//! bytes are encrypted in this process, so they go through the copy loop,
//! and the data connection (`data_conn.rs`) encrypts and decrypts them.
//!
//! `TYPE A` converts line ends on the way (LF to CRLF when sending, CRLF to
//! LF when receiving); the observer always sees the file's bytes.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use socketserver::event::{self, Interest};
use socketserver::Stream;

use super::ascii::{from_crlf, to_crlf};
use super::control::{reply, Control};
use super::data_conn::DataConnection;
use super::kernel_pipe::KernelPipe;
use super::pipeline::{read_full, NoObserver, Observer, Pipeline, CHUNK};

/// The most one `sendfile(2)` call is asked to move.
const SENDFILE_CHUNK: usize = 16 * 1024 * 1024;
/// While hashing on demand, how many chunks between two looks at the
/// control connection (16 MiB: some 25 ms of MD5): one slice of the work.
const HASH_CHECK_EVERY: u32 = 64;
/// A transfer lets its event loop serve the others at least once every
/// this many bytes (in the event model; a few milliseconds on loopback).
const YIELD_EVERY: u64 = 4 << 20;

/// How a transfer (or an on-demand hash) ended.
#[derive(Debug)]
pub(crate) enum End {
    /// Every byte went through.
    Complete,
    /// The client sent `ABOR`.
    Aborted,
    /// The client closed the control connection.
    ControlClosed,
    /// Nothing moved on the data connection for the idle timeout.
    TimedOut,
    /// The data connection failed.
    Data(io::Error),
    /// Reading or writing the file failed.
    File(io::Error),
    /// Every byte of an upload went through, but its MD5 is not the one
    /// `SITE CHKHASH` announced (this one): the upload is discarded.
    Mismatch(String),
}

/// What happened in a transfer, for its reply and its log line.
#[derive(Debug)]
pub(crate) struct Report<O> {
    pub(crate) end: End,
    /// Bytes over the data connection (or hashed, for a hash).
    pub(crate) bytes: u64,
    pub(crate) elapsed: Duration,
    /// The observer, once it has seen every byte that went through.
    pub(crate) observer: Option<O>,
    /// The client sent `QUIT` meanwhile.
    pub(crate) quit: bool,
}

impl<O> Report<O> {
    /// The same report, its observer (if any) dropped.
    fn without_observer(self) -> Report<()> {
        Report {
            end: self.end,
            bytes: self.bytes,
            elapsed: self.elapsed,
            observer: None,
            quit: self.quit,
        }
    }
}

/// The control connection while the session is busy: `ABOR`, `STAT` and
/// `QUIT` are acted on, other commands set aside for later.
pub(crate) struct Watch<'a> {
    pub(crate) stream: &'a mut Stream,
    pub(crate) control: &'a mut Control,
    /// What `STAT` says is in progress ("Transfer", "Hashing").
    pub(crate) busy_with: &'static str,
}

impl Watch<'_> {
    /// Answers what came on the control connection (it is readable).
    fn on_control(&mut self, bytes: u64, quit: &mut bool) -> Result<(), End> {
        let interrupts = match self.control.during_transfer(self.stream) {
            Ok(i) => i,
            Err(_) => return Err(End::ControlClosed),
        };
        for _ in 0..interrupts.stat {
            let text = format!("{} in progress: {bytes} bytes so far.", self.busy_with);
            if reply(self.stream, 213, &text)
                .and_then(|()| self.stream.flush())
                .is_err()
            {
                return Err(End::ControlClosed);
            }
        }
        *quit |= interrupts.quit;
        if interrupts.abort {
            return Err(End::Aborted);
        }
        Ok(())
    }

    /// Answers the control connection if it has input, without waiting
    /// (a `poll(2)` with no timeout never blocks, in any model).
    pub(crate) fn check(&mut self, bytes: u64, quit: &mut bool) -> Result<(), End> {
        if !self.control.wants_input() {
            return Ok(());
        }
        let ready = !self.stream.buffered().is_empty() || {
            let mut fds = [PollFd::new(self.stream.as_fd(), PollFlags::POLLIN)];
            matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        };
        if ready {
            self.on_control(bytes, quit)?;
        }
        Ok(())
    }
}

/// Reads all of `file` through `pipe` (whose observer hashes it), with
/// the control connection watched every [`HASH_CHECK_EVERY`] chunks: the
/// work of `XMD5` and `HASH`. Each slice of chunks is read and hashed
/// through [`event::blocking`]: in the event model on its pool, while the
/// conversation waits (a large file, cold on a slow disk, would hold the
/// loop for seconds); elsewhere in place.
pub(crate) fn observe_file<O: Observer>(
    mut watch: Watch<'_>,
    file: &File,
    mut pipe: Pipeline<O>,
) -> Report<O> {
    let started = Instant::now();
    let mut bytes = 0u64;
    let mut quit = false;
    // The slices read through a copy of the descriptor, which the pool's
    // thread can own (and which shares the file's position).
    let end = match file.try_clone() {
        Err(e) => End::File(e),
        Ok(mut source) => loop {
            let fed;
            (pipe, source, fed) = event::blocking(move || {
                let fed = feed_slice(&mut pipe, &mut source);
                (pipe, source, fed)
            });
            match fed {
                Ok((n, more)) => {
                    bytes += n;
                    if !more {
                        break End::Complete;
                    }
                }
                Err(e) => break End::File(e),
            }
            if let Err(end) = watch.check(bytes, &mut quit) {
                break end;
            }
        },
    };
    Report {
        end,
        bytes,
        elapsed: started.elapsed(),
        observer: pipe.finish(),
        quit,
    }
}

/// Feeds up to [`HASH_CHECK_EVERY`] chunks of `source` to `pipe`: how many
/// bytes, and whether more may follow.
fn feed_slice<O: Observer>(pipe: &mut Pipeline<O>, source: &mut File) -> io::Result<(u64, bool)> {
    let mut bytes = 0;
    for _ in 0..HASH_CHECK_EVERY {
        let n = pipe.feed_chunk(source, u64::MAX)?;
        bytes += n as u64;
        if n < CHUNK {
            return Ok((bytes, false));
        }
    }
    Ok((bytes, true))
}

/// One transfer over `data`, with the control connection watched.
pub(crate) struct Transfer<'a> {
    pub(crate) watch: Watch<'a>,
    pub(crate) data: DataConnection,
    /// Cut the transfer after this long with no progress.
    pub(crate) idle: Option<Duration>,
    pub(crate) ascii: bool,
}

impl Transfer<'_> {
    /// Sends everything `source` holds, each chunk seen by `pipe`'s
    /// observer after it is written.
    pub(crate) fn send<O: Observer>(
        mut self,
        source: &mut dyn Read,
        mut pipe: Pipeline<O>,
    ) -> Report<O> {
        let started = Instant::now();
        let mut converted = Vec::with_capacity(if self.ascii { 2 * CHUNK } else { 0 });
        let mut after_cr = false;
        let mut bytes = 0u64;
        let mut yielded = 0u64;
        let mut quit = false;
        let end = match self.data.set_nonblocking(true) {
            Err(e) => End::Data(e),
            Ok(()) => loop {
                let mut buf = pipe.take();
                let n = match read_full(source, &mut buf) {
                    Ok(n) => n,
                    Err(e) => {
                        pipe.give(buf, 0, 0);
                        break End::File(e);
                    }
                };
                if n == 0 {
                    pipe.give(buf, 0, 0);
                    break match self.finish_sending(bytes, &mut quit) {
                        Ok(()) => End::Complete,
                        Err(end) => end,
                    };
                }
                let out: &[u8] = if self.ascii {
                    to_crlf(&buf[..n], &mut converted, &mut after_cr);
                    &converted
                } else {
                    &buf[..n]
                };
                let sent = self.write_all(out, &mut bytes, &mut quit);
                pipe.give(buf, 0, n);
                if let Err(end) = sent {
                    break end;
                }
                pace(bytes, &mut yielded);
            },
        };
        self.report(end, bytes, started, quit, pipe.finish())
    }

    /// Sends the rest of `file` (from its current position) with
    /// `sendfile(2)`: the kernel moves the bytes from the page cache to the
    /// socket, with no copy through this process. Binary mode only, and
    /// nothing observes the bytes.
    pub(crate) fn send_file(mut self, file: &mut File) -> Report<()> {
        use nix::sys::sendfile::sendfile;
        let started = Instant::now();
        let mut bytes = 0u64;
        let mut yielded = 0u64;
        let mut quit = false;
        if self.data.is_tls() {
            // TLS encrypts in this process: the bytes must pass through it.
            return self
                .send(file, Pipeline::<NoObserver>::new(None))
                .without_observer();
        }
        let end = match self.data.set_nonblocking(true) {
            Err(e) => End::Data(e),
            Ok(()) => loop {
                match sendfile(self.data.socket(), &*file, None, SENDFILE_CHUNK) {
                    Ok(0) => break End::Complete,
                    Ok(n) => {
                        bytes += n as u64;
                        if let Err(end) = self.watch.check(bytes, &mut quit) {
                            break end;
                        }
                        pace(bytes, &mut yielded);
                        continue;
                    }
                    Err(Errno::EAGAIN) => {}
                    Err(Errno::EINTR) => continue,
                    // A file sendfile cannot read: copy it the usual way.
                    Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) if bytes == 0 => {
                        return self
                            .send(file, Pipeline::<NoObserver>::new(None))
                            .without_observer();
                    }
                    Err(e @ (Errno::EIO | Errno::ENOMEM)) => break End::File(e.into()),
                    Err(e) => break self.data_failed(e.into(), bytes, &mut quit),
                }
                if let Err(end) = self.wait_answering(Interest::Writable, bytes, &mut quit) {
                    break end;
                }
            },
        };
        self.report(end, bytes, started, quit, None)
    }

    /// Receives until the client closes the data connection, into `sink`;
    /// each chunk is seen by `pipe`'s observer after it is written. Bytes
    /// that nothing needs to see (no observer, binary mode, no TLS) go by
    /// `splice(2)` through a [`KernelPipe`], never into this process.
    pub(crate) fn receive<O: Observer>(self, sink: &mut File, pipe: Pipeline<O>) -> Report<O> {
        if self.ascii || pipe.observed() || self.data.is_tls() {
            return self.receive_copied(sink, pipe);
        }
        match KernelPipe::new() {
            Ok(kernel) => self.receive_spliced(sink, &kernel, pipe),
            Err(e) => {
                log::debug!("no pipe for splice ({e}): the upload is copied");
                self.receive_copied(sink, pipe)
            }
        }
    }

    /// [`Transfer::receive`] by `splice(2)`: socket to pipe to file.
    fn receive_spliced<O: Observer>(
        mut self,
        sink: &mut File,
        kernel: &KernelPipe,
        pipe: Pipeline<O>,
    ) -> Report<O> {
        let started = Instant::now();
        let mut bytes = 0u64;
        let mut yielded = 0u64;
        let mut quit = false;
        let end = match self.data.set_nonblocking(true) {
            Err(e) => End::Data(e),
            Ok(()) => loop {
                match kernel.fill(self.data.socket()) {
                    Ok(0) => {
                        // As in receive_copied: a client killed mid-upload
                        // closes both connections.
                        break match self.watch.check(bytes, &mut quit) {
                            Ok(()) => End::Complete,
                            Err(end) => end,
                        };
                    }
                    Ok(n) => {
                        bytes += n as u64;
                        if let Err(e) = kernel.drain_into(sink, n) {
                            break End::File(e);
                        }
                        pace(bytes, &mut yielded);
                        continue;
                    }
                    Err(Errno::EAGAIN) => {}
                    Err(Errno::EINTR) => continue,
                    Err(e) => break self.data_failed(e.into(), bytes, &mut quit),
                }
                if let Err(end) = self.wait_answering(Interest::Readable, bytes, &mut quit) {
                    break end;
                }
            },
        };
        self.report(end, bytes, started, quit, pipe.finish())
    }

    /// [`Transfer::receive`] through this process's buffers.
    fn receive_copied<O: Observer>(mut self, sink: &mut File, mut pipe: Pipeline<O>) -> Report<O> {
        let started = Instant::now();
        let mut held_cr = false;
        let mut bytes = 0u64;
        let mut yielded = 0u64;
        let mut quit = false;
        let end = match self.data.set_nonblocking(true) {
            Err(e) => End::Data(e),
            Ok(()) => loop {
                let mut buf = pipe.take();
                // Byte 0 is kept free for a CR held back from the last
                // chunk in ASCII mode.
                let (n, eof) = match self.read_some(&mut buf[1..], &mut bytes, &mut quit) {
                    Ok(got) => got,
                    Err(end) => {
                        pipe.give(buf, 0, 0);
                        break end;
                    }
                };
                let (start, end) = if self.ascii {
                    from_crlf(&mut buf, n, &mut held_cr, eof)
                } else {
                    (1, 1 + n)
                };
                if let Err(e) = sink.write_all(&buf[start..end]) {
                    pipe.give(buf, 0, 0);
                    break End::File(e);
                }
                pipe.give(buf, start, end);
                pace(bytes, &mut yielded);
                if eof {
                    // A client killed mid-upload closes both connections:
                    // look at the control connection before calling the
                    // end of the data an end of file.
                    break match self.watch.check(bytes, &mut quit) {
                        Ok(()) => End::Complete,
                        Err(end) => end,
                    };
                }
            },
        };
        self.report(end, bytes, started, quit, pipe.finish())
    }

    fn report<O>(
        self,
        end: End,
        bytes: u64,
        started: Instant,
        quit: bool,
        observer: Option<O>,
    ) -> Report<O> {
        if self.data.unclean_eof() {
            log::debug!("a TLS upload ended without close_notify (accepted)");
        }
        self.data.close();
        Report {
            end,
            bytes,
            elapsed: started.elapsed(),
            observer,
            quit,
        }
    }

    /// Writes all of `out` to the data socket, answering the control
    /// connection meanwhile.
    fn write_all(&mut self, out: &[u8], bytes: &mut u64, quit: &mut bool) -> Result<(), End> {
        let mut pos = 0;
        while pos < out.len() {
            match self.data.write(&out[pos..]) {
                Ok(0) => return Err(End::Data(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    pos += n;
                    *bytes += n as u64;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.data_failed(e, *bytes, quit)),
            }
            self.wait_answering(Interest::Writable, *bytes, quit)?;
        }
        // Between chunks, a look at the control connection without waiting.
        self.watch.check(*bytes, quit)
    }

    /// After the last byte: what the data connection still holds goes
    /// out (TLS: its last records and `close_notify`), with the control
    /// connection answered meanwhile.
    fn finish_sending(&mut self, bytes: u64, quit: &mut bool) -> Result<(), End> {
        loop {
            match self.data.finish_sending() {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.data_failed(e, bytes, quit)),
            }
            self.wait_answering(Interest::Writable, bytes, quit)?;
        }
    }

    /// Reads what the data socket has (waiting for something) into `buf`,
    /// as much as is there without waiting again. Returns the count and
    /// whether the client closed the data connection.
    fn read_some(
        &mut self,
        buf: &mut [u8],
        bytes: &mut u64,
        quit: &mut bool,
    ) -> Result<(usize, bool), End> {
        let mut n = 0;
        loop {
            match self.data.read(&mut buf[n..]) {
                Ok(0) => return Ok((n, true)),
                Ok(k) => {
                    n += k;
                    *bytes += k as u64;
                    if n == buf.len() {
                        return Ok((n, false));
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if n > 0 {
                        return Ok((n, false));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.data_failed(e, *bytes, quit)),
            }
            self.wait_answering(Interest::Readable, *bytes, quit)?;
        }
    }

    /// How a failed data connection ends the transfer. A client that
    /// aborts sends `ABOR` and may close the data connection at once: the
    /// `ABOR` is then waiting on the control connection, and the transfer
    /// ends as aborted (426, then 226), not failed; a client that vanished
    /// closed both.
    fn data_failed(&mut self, e: io::Error, bytes: u64, quit: &mut bool) -> End {
        match self.watch.check(bytes, quit) {
            Err(end @ (End::Aborted | End::ControlClosed)) => end,
            _ => End::Data(e),
        }
    }

    /// Waits for the data socket to be ready as `want` says, or for the
    /// control connection to speak, and then answers it. A silent client
    /// is cut after the idle timeout.
    fn wait_answering(&mut self, want: Interest, bytes: u64, quit: &mut bool) -> Result<(), End> {
        let watch = self.watch.control.wants_input();
        let control = if watch && !self.watch.stream.buffered().is_empty() {
            true
        } else {
            let fds = [
                (self.data.as_fd(), self.data.interest(want)),
                (self.watch.stream.as_fd(), Interest::Readable),
            ];
            let count = if watch { 2 } else { 1 };
            let until = self.idle.map(|idle| Instant::now() + idle);
            match event::wait(&fds[..count], self.idle) {
                // Nothing ready: the idle timeout, or a signal (`poll(2)`'s
                // EINTR), after which the caller tries again.
                Ok(ready) if !ready.contains(&true) => {
                    if until.is_some_and(|until| Instant::now() >= until) {
                        return Err(End::TimedOut);
                    }
                    false
                }
                Ok(ready) => watch && ready[1],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => false,
                Err(e) => return Err(End::Data(e)),
            }
        };
        if control {
            self.watch.on_control(bytes, quit)?;
        }
        Ok(())
    }
}

/// Lets the event loop serve its other conversations once `bytes` has
/// grown by [`YIELD_EVERY`] since the last time (`yielded`): a transfer
/// whose sockets are always ready never waits otherwise. Nothing outside
/// the event model.
fn pace(bytes: u64, yielded: &mut u64) {
    if bytes - *yielded >= YIELD_EVERY {
        *yielded = bytes;
        event::yield_now();
    }
}
