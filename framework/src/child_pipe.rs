//! The socket pair between a forked process and its parent: the child
//! sends a [`Notice`] per event of a request's life, as a fixed-size
//! record; the parent reads them without blocking. End-of-file on the pair
//! means the child is gone (it closes with the process, however the
//! process ended).
//!
//! The other way, the parent sends single bytes: "the server drains"
//! ([`ParentEnd::tell_draining`]), and the answer to the one question a
//! prefork worker asks ([`Notice::MayServe`]: may this client's address
//! have one more conversation?). The parent keeps that count for all
//! workers, and frees a worker's place when its conversation ends, or when
//! the worker dies.
//!
//! A handler in a child reaches the whole server through its end
//! ([`ThroughParent`]): its [`ShutdownHandle::shutdown`] becomes
//! [`Notice::ShutdownAsked`], and the parent shuts the server down.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::per_ip::PeerKey;
use crate::shutdown_handle::{Control, ShutdownHandle};
use crate::stats::{Ending, Outcome};
use crate::Stats;

const RECORD: usize = 24;

/// One event of a request, as the process serving it tells its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Notice {
    /// A connection was accepted and is being served.
    Started,
    /// A request ended.
    Ended(Outcome),
    /// A connection was refused (by `verify_request`, or for its
    /// address).
    Refused,
    /// May this client have one more conversation? (Answered.)
    MayServe(PeerKey),
    /// A handler asked to shut the whole server down.
    ShutdownAsked,
}

impl Notice {
    fn encode(self) -> [u8; RECORD] {
        let mut record = [0u8; RECORD];
        match self {
            Notice::Started => record[0] = 1,
            Notice::Refused => record[0] = 3,
            Notice::MayServe(key) => {
                record[0] = 4;
                record[8..17].copy_from_slice(&key.encode());
            }
            Notice::ShutdownAsked => record[0] = 5,
            Notice::Ended(outcome) => {
                record[0] = 2;
                record[1] = match outcome.ending {
                    Ending::Completed => 0,
                    Ending::TimedOut => 1,
                    Ending::Failed => 2,
                    Ending::TlsFailed => 3,
                };
                record[8..16].copy_from_slice(&outcome.bytes_read.to_le_bytes());
                record[16..24].copy_from_slice(&outcome.bytes_written.to_le_bytes());
            }
        }
        record
    }

    fn decode(record: &[u8; RECORD]) -> Option<Notice> {
        let u64_at = |at: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&record[at..at + 8]);
            u64::from_le_bytes(bytes)
        };
        match record[0] {
            1 => Some(Notice::Started),
            3 => Some(Notice::Refused),
            4 => {
                let mut key = [0u8; 9];
                key.copy_from_slice(&record[8..17]);
                PeerKey::decode(&key).map(Notice::MayServe)
            }
            5 => Some(Notice::ShutdownAsked),
            2 => Some(Notice::Ended(Outcome {
                ending: match record[1] {
                    0 => Ending::Completed,
                    1 => Ending::TimedOut,
                    3 => Ending::TlsFailed,
                    _ => Ending::Failed,
                },
                bytes_read: u64_at(8),
                bytes_written: u64_at(16),
            })),
            _ => None,
        }
    }
}

/// The child's end: sends notices, blocking (they are tiny, and the parent
/// reads them promptly). Shared by the child's serving code and its
/// handler's [`ShutdownHandle`], so it locks around each record.
#[derive(Debug)]
pub(crate) struct ChildEnd {
    socket: Mutex<UnixStream>,
}

impl ChildEnd {
    fn socket(&self) -> std::sync::MutexGuard<'_, UnixStream> {
        self.socket.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn send(&self, notice: Notice) {
        // If the parent is gone there is nobody to tell; carry on.
        let _ = self.socket().write_all(&notice.encode());
    }

    /// A second handle on the pair, to read from: it becomes readable when
    /// the parent says that the server drains ([`ParentEnd::tell_draining`])
    /// or when the parent is gone (end of file).
    pub(crate) fn drain_signal(&self) -> io::Result<UnixStream> {
        self.socket().try_clone()
    }

    /// Asks the parent whether `key` may have one more conversation, and
    /// waits for the answer. If the parent does not answer (it is gone,
    /// and this worker is about to stop), the connection already accepted
    /// is served.
    pub(crate) fn may_serve(&self, key: PeerKey) -> bool {
        let mut socket = self.socket();
        let asked = socket.write_all(&Notice::MayServe(key).encode());
        let mut answer = [1u8; 1];
        let answered = asked
            .and_then(|()| socket.set_read_timeout(Some(ANSWER_WAIT)))
            .and_then(|()| socket.read_exact(&mut answer));
        if let Err(e) = answered {
            log::warn!(
                "no answer from the parent about a client's address ({}); serving it",
                crate::describe(&e)
            );
            return true;
        }
        answer[0] == 1
    }
}

/// How long a prefork worker waits for the parent's answer; the parent
/// answers at once, unless it is gone.
const ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The parent's end: collects notices without blocking.
#[derive(Debug)]
pub(crate) struct ParentEnd {
    socket: UnixStream,
    partial: [u8; RECORD],
    filled: usize,
}

/// A connected pair: the parent's end and the child's.
pub(crate) fn pair() -> io::Result<(ParentEnd, ChildEnd)> {
    let (parent, child) = UnixStream::pair()?;
    parent.set_nonblocking(true)?;
    Ok((
        ParentEnd {
            socket: parent,
            partial: [0; RECORD],
            filled: 0,
        },
        ChildEnd {
            socket: Mutex::new(child),
        },
    ))
}

impl ParentEnd {
    /// Every notice that has arrived, and whether the other end is closed
    /// (the child has ended).
    pub(crate) fn read_notices(&mut self) -> (Vec<Notice>, bool) {
        let mut notices = Vec::new();
        loop {
            match self.socket.read(&mut self.partial[self.filled..]) {
                Ok(0) => return (notices, true),
                Ok(n) => {
                    self.filled += n;
                    if self.filled == RECORD {
                        self.filled = 0;
                        notices.extend(Notice::decode(&self.partial));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return (notices, false),
                Err(_) => return (notices, true),
            }
        }
    }

    /// Tells the child that the server drains: one byte the other way,
    /// which the child watches for ([`ChildEnd::drain_signal`]). Never
    /// blocks, and never raises SIGPIPE if the child is already gone.
    pub(crate) fn tell_draining(&self) {
        let _ = socket2::SockRef::from(&self.socket).send_with_flags(&[1], libc::MSG_NOSIGNAL);
    }

    /// Answers a worker's [`Notice::MayServe`]. The worker waits for it, so
    /// the socket's buffer is empty and the write never blocks.
    pub(crate) fn answer(&mut self, granted: bool) {
        let _ = self.socket.write_all(&[u8::from(granted)]);
    }

    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.socket.as_fd()
    }

    pub(crate) fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.socket.as_raw_fd()
    }
}

/// What a handler's [`ShutdownHandle`] controls inside a forked child: the
/// server is the parent's, so a shutdown is asked of the parent, which
/// shuts the whole server down and tells its children to drain.
pub(crate) struct ThroughParent {
    to_parent: Arc<ChildEnd>,
    asked: AtomicBool,
    /// Set when the parent says that the server drains.
    draining: Arc<AtomicBool>,
    /// The counters as this process sees them (see `ShutdownHandle::stats`).
    stats: Stats,
}

impl ThroughParent {
    /// A handle for the handlers of a child whose parent is at the other
    /// end of `to_parent`; `draining` is the child's drain flag.
    pub(crate) fn handle(
        to_parent: Arc<ChildEnd>,
        draining: Arc<AtomicBool>,
        stats: Stats,
    ) -> ShutdownHandle {
        ShutdownHandle::new(Arc::new(ThroughParent {
            to_parent,
            asked: AtomicBool::new(false),
            draining,
            stats,
        }))
    }
}

impl Control for ThroughParent {
    fn shutdown(self: Arc<Self>) {
        if !self.asked.swap(true, Ordering::SeqCst) {
            self.to_parent.send(Notice::ShutdownAsked);
        }
    }

    fn is_shutdown(&self) -> bool {
        self.asked.load(Ordering::SeqCst) || self.draining.load(Ordering::SeqCst)
    }

    fn stats(&self) -> Stats {
        self.stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip() {
        let outcome = Outcome {
            ending: Ending::TimedOut,
            bytes_read: 1 << 40,
            bytes_written: 7,
        };
        let key = PeerKey::of_ip("2001:db8::1".parse().unwrap());
        for notice in [
            Notice::Started,
            Notice::Refused,
            Notice::Ended(outcome),
            Notice::MayServe(key),
            Notice::ShutdownAsked,
        ] {
            assert_eq!(Notice::decode(&notice.encode()), Some(notice));
        }
    }

    #[test]
    fn the_parent_can_tell_the_child_that_the_server_drains() {
        let (parent, child) = pair().unwrap();
        let signal = child.drain_signal().unwrap();
        signal
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        parent.tell_draining();
        let mut byte = [0u8; 1];
        assert_eq!((&signal).read(&mut byte).unwrap(), 1);
        drop(parent);
        assert_eq!((&signal).read(&mut byte).unwrap(), 0, "the parent is gone");
    }

    #[test]
    fn notices_arrive_and_end_of_file_means_gone() {
        let (mut parent, child) = pair().unwrap();
        child.send(Notice::Started);
        child.send(Notice::Refused);
        assert_eq!(
            parent.read_notices(),
            (vec![Notice::Started, Notice::Refused], false)
        );
        drop(child);
        assert_eq!(parent.read_notices(), (vec![], true));
    }

    #[test]
    fn a_handle_in_a_child_asks_the_parent_once() {
        let (mut parent, child) = pair().unwrap();
        let draining = Arc::new(AtomicBool::new(false));
        let handle =
            ThroughParent::handle(Arc::new(child), Arc::clone(&draining), Stats::default());
        assert!(!handle.is_shutdown());
        handle.shutdown();
        handle.shutdown();
        assert!(handle.is_shutdown());
        assert_eq!(parent.read_notices(), (vec![Notice::ShutdownAsked], false));
    }
}
