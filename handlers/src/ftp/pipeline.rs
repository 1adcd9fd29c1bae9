//! The buffers of one transfer, and the thread that hashes them.
//!
//! A transfer copies through [`CHUNK`]-byte buffers taken from a small
//! ring, never allocated per chunk. When its bytes must be seen (hashed),
//! each buffer, once its bytes have been written, is handed to an
//! [`Observer`] running in a thread of its own, off the copy path: the
//! copy runs on one core and the hash on another, so a hashed transfer
//! goes as fast as the slower of the two.
//!
//! When the hash is the slower, the copy waits for a buffer to come back
//! from it, and at the end for it to finish. Those two waits go through
//! [`socketserver::event::blocking`]: in place in the thread models (the
//! channel's own wait, as fast as before), and in the event model on the
//! framework's pool while the conversation parks, so a hash catching up
//! never holds the event loop. A buffer already back is taken without
//! any of that.

use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;

use socketserver::event;

/// The size of each copy buffer.
pub(crate) const CHUNK: usize = 256 * 1024;
/// How many buffers circulate between the copy and the observer.
const RING: usize = 4;

/// Sees every byte of a transfer's file side, in order, in a thread of its
/// own: the hashing hook.
pub trait Observer: Send + 'static {
    /// The next bytes.
    fn update(&mut self, bytes: &[u8]);
}

/// The buffers of one transfer, and the observer's thread if there is one.
pub(crate) struct Pipeline<O: Observer> {
    spare: Option<Vec<u8>>,
    free: Option<Receiver<Vec<u8>>>,
    full: Option<SyncSender<(Vec<u8>, usize, usize)>>,
    thread: Option<JoinHandle<Option<O>>>,
    /// The observer, when no thread could be started: it then sees each
    /// buffer in the copy's thread (slower, never skipped).
    inline: Option<O>,
}

impl<O: Observer> Pipeline<O> {
    /// A pipeline whose buffers `observer` sees (none: plain buffers).
    pub(crate) fn new(observer: Option<O>) -> Self {
        let Some(observer) = observer else {
            return Pipeline::plain(None);
        };
        let (free_tx, free_rx) = mpsc::sync_channel::<Vec<u8>>(RING);
        let (full_tx, full_rx) = mpsc::sync_channel::<(Vec<u8>, usize, usize)>(RING);
        for _ in 0..RING {
            let _ = free_tx.send(vec![0; CHUNK]);
        }
        // The observer goes to the thread once it runs: if it cannot
        // start, the observer stays here and sees the bytes inline.
        let (start_tx, start_rx) = mpsc::channel::<O>();
        let thread = std::thread::Builder::new()
            .name("ftp-observer".into())
            .spawn(move || {
                let mut observer = start_rx.recv().ok()?;
                for (buf, start, end) in full_rx {
                    observer.update(&buf[start..end]);
                    if free_tx.send(buf).is_err() {
                        break;
                    }
                }
                Some(observer)
            });
        match thread {
            Ok(thread) => {
                let _ = start_tx.send(observer);
                Pipeline {
                    spare: None,
                    free: Some(free_rx),
                    full: Some(full_tx),
                    thread: Some(thread),
                    inline: None,
                }
            }
            Err(e) => {
                log::warn!("no observer thread ({e}); hashing in the copy's thread");
                Pipeline::plain(Some(observer))
            }
        }
    }

    fn plain(inline: Option<O>) -> Self {
        Pipeline {
            spare: Some(vec![0; CHUNK]),
            free: None,
            full: None,
            thread: None,
            inline,
        }
    }

    /// A buffer of [`CHUNK`] bytes (waits while the observer is behind).
    pub(crate) fn take(&mut self) -> Vec<u8> {
        if let Some(buf) = self.spare.take() {
            return buf;
        }
        let Some(free) = self.free.take() else {
            return vec![0; CHUNK];
        };
        let got = match free.try_recv() {
            Ok(buf) => Some(buf),
            Err(TryRecvError::Disconnected) => None,
            Err(TryRecvError::Empty) => {
                let (got, free) = event::blocking(move || (free.recv().ok(), free));
                self.free = Some(free);
                return got.unwrap_or_else(|| vec![0; CHUNK]);
            }
        };
        self.free = Some(free);
        got.unwrap_or_else(|| vec![0; CHUNK])
    }

    /// Gives back a buffer whose bytes `start..end` went through.
    pub(crate) fn give(&mut self, buf: Vec<u8>, start: usize, end: usize) {
        if let Some(inline) = &mut self.inline {
            inline.update(&buf[start..end]);
        }
        match &self.full {
            Some(full) => {
                if let Err(mpsc::SendError((buf, _, _))) = full.send((buf, start, end)) {
                    self.spare = Some(buf);
                }
            }
            None => self.spare = Some(buf),
        }
    }

    /// True if an observer sees the bytes.
    pub(crate) fn observed(&self) -> bool {
        self.thread.is_some() || self.inline.is_some()
    }

    /// Waits for the observer to see everything and returns it.
    pub(crate) fn finish(mut self) -> Option<O> {
        drop(self.full.take());
        if let Some(inline) = self.inline.take() {
            return Some(inline);
        }
        let thread = self.thread.take()?;
        event::blocking(move || thread.join().ok().flatten())
    }
}

/// The observer of a pipeline that has none.
pub(crate) struct NoObserver;

impl Observer for NoObserver {
    fn update(&mut self, _: &[u8]) {}
}

/// Bytes read only to be observed (a file hashed on demand, the part of a
/// resume that both sides have already): each buffer read is given back
/// at once.
impl<O: Observer> Pipeline<O> {
    /// Reads the next buffer's worth of `source`, at most `limit` bytes,
    /// and shows it to the observer. Returns how many bytes it read:
    /// fewer than a buffer (and than `limit`) only at `source`'s end.
    pub(crate) fn feed_chunk(&mut self, source: &mut dyn Read, limit: u64) -> io::Result<usize> {
        let mut buf = self.take();
        let want = usize::try_from(limit).map_or(buf.len(), |limit| limit.min(buf.len()));
        let read = read_full(source, &mut buf[..want]);
        let seen = read.as_ref().map_or(0, |&n| n);
        self.give(buf, 0, seen);
        read
    }

    /// Shows the next `len` bytes of `source` (fewer if it ends first) to
    /// the observer. Returns how many there were.
    pub(crate) fn feed(&mut self, source: &mut dyn Read, len: u64) -> io::Result<u64> {
        let mut done = 0u64;
        while done < len {
            match self.feed_chunk(source, len - done)? {
                0 => break,
                n => done += n as u64,
            }
        }
        Ok(done)
    }
}

/// Reads until `buf` is full or `source` ends (a short read is not the
/// end); an interrupted read is tried again. Returns how many bytes it
/// read.
pub(crate) fn read_full(source: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match source.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::super::hash::Algorithm;
    use super::*;

    #[test]
    fn the_pipeline_observes_in_order() {
        let mut pipe = Pipeline::new(Some(Algorithm::Md5.hasher()));
        assert!(pipe.observed());
        for part in [&b"wan"[..], b"gz", b"y"] {
            let mut buf = pipe.take();
            assert_eq!(buf.len(), CHUNK);
            buf[5..5 + part.len()].copy_from_slice(part);
            pipe.give(buf, 5, 5 + part.len());
        }
        // The tutorial's own example.
        assert_eq!(
            pipe.finish().unwrap().hex(),
            "2ea763badcd027b0087306a3ef3ef95f"
        );
    }

    #[test]
    fn a_pipeline_without_observer_recycles_one_buffer() {
        let mut pipe = Pipeline::<NoObserver>::new(None);
        assert!(!pipe.observed());
        let buf = pipe.take();
        let ptr = buf.as_ptr();
        pipe.give(buf, 0, 10);
        let again = pipe.take();
        assert_eq!(again.as_ptr(), ptr);
        assert!(pipe.finish().is_none());
    }

    #[test]
    fn feeding_stops_at_the_length_or_the_end() {
        let text = b"wangzy and more";
        let mut pipe = Pipeline::new(Some(Algorithm::Md5.hasher()));
        assert_eq!(pipe.feed(&mut &text[..], 6).unwrap(), 6);
        assert_eq!(
            pipe.finish().unwrap().hex(),
            "2ea763badcd027b0087306a3ef3ef95f"
        );
        let mut pipe = Pipeline::new(Some(Algorithm::Md5.hasher()));
        assert_eq!(pipe.feed(&mut &text[..6], u64::MAX).unwrap(), 6);
        assert_eq!(pipe.feed_chunk(&mut &text[..0], u64::MAX).unwrap(), 0);
        assert_eq!(
            pipe.finish().unwrap().hex(),
            "2ea763badcd027b0087306a3ef3ef95f"
        );
    }
}
