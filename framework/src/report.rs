//! What a forked process tells its parent: fixed-size records on a Unix
//! socket pair, one per event of a connection's life. The parent reads
//! them without blocking; end-of-file on the pair means the process is
//! gone (it closes with the process, however the process ended).
//!
//! One event is a question: a prefork worker asks the parent whether a
//! client's address may have one more conversation ([`Event::Ask`]), and
//! waits for the one-byte answer on the same pair. The parent keeps the
//! count for all workers, and frees a worker's place when its
//! conversation ends, or when the worker dies.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;

use crate::per_ip::PeerKey;
use crate::stats::{Ended, Outcome};

const RECORD: usize = 24;

/// One event of a connection, as reported by the process serving it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A connection was accepted and is being served.
    Started,
    /// A connection ended.
    Ended(Ended),
    /// A connection was refused (by `verify_request`, or for its
    /// address).
    Refused,
    /// May this client have one more conversation? (Answered.)
    Ask(PeerKey),
}

impl Event {
    fn encode(self) -> [u8; RECORD] {
        let mut record = [0u8; RECORD];
        match self {
            Event::Started => record[0] = 1,
            Event::Refused => record[0] = 3,
            Event::Ask(key) => {
                record[0] = 4;
                record[8..17].copy_from_slice(&key.encode());
            }
            Event::Ended(ended) => {
                record[0] = 2;
                record[1] = match ended.outcome {
                    Outcome::Completed => 0,
                    Outcome::TimedOut => 1,
                    Outcome::Failed => 2,
                    Outcome::TlsFailed => 3,
                };
                record[8..16].copy_from_slice(&ended.bytes_read.to_le_bytes());
                record[16..24].copy_from_slice(&ended.bytes_written.to_le_bytes());
            }
        }
        record
    }

    fn decode(record: &[u8; RECORD]) -> Option<Event> {
        let u64_at = |at: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&record[at..at + 8]);
            u64::from_le_bytes(bytes)
        };
        match record[0] {
            1 => Some(Event::Started),
            3 => Some(Event::Refused),
            4 => {
                let mut key = [0u8; 9];
                key.copy_from_slice(&record[8..17]);
                PeerKey::decode(&key).map(Event::Ask)
            }
            2 => Some(Event::Ended(Ended {
                outcome: match record[1] {
                    0 => Outcome::Completed,
                    1 => Outcome::TimedOut,
                    3 => Outcome::TlsFailed,
                    _ => Outcome::Failed,
                },
                bytes_read: u64_at(8),
                bytes_written: u64_at(16),
            })),
            _ => None,
        }
    }
}

/// The forked process's end: sends events, blocking (they are tiny, and
/// the parent reads them promptly).
#[derive(Debug)]
pub(crate) struct Reporter {
    socket: UnixStream,
}

impl Reporter {
    pub(crate) fn send(&mut self, event: Event) {
        // If the parent is gone there is nobody to tell; carry on.
        let _ = self.socket.write_all(&event.encode());
    }

    /// A second handle on the pair, to read from: it becomes readable when
    /// the parent says that the server drains ([`Reports::tell_draining`])
    /// or when the parent is gone (end of file).
    pub(crate) fn drain_signal(&self) -> io::Result<UnixStream> {
        self.socket.try_clone()
    }

    /// Asks the parent whether `key` may have one more conversation, and
    /// waits for the answer. If the parent does not answer (it is gone,
    /// and this worker is about to stop), the connection already accepted
    /// is served.
    pub(crate) fn ask(&mut self, key: PeerKey) -> bool {
        let asked = self.socket.write_all(&Event::Ask(key).encode());
        let mut answer = [1u8; 1];
        let answered = asked
            .and_then(|()| self.socket.set_read_timeout(Some(ANSWER_WAIT)))
            .and_then(|()| self.socket.read_exact(&mut answer));
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

/// The parent's end: collects events without blocking.
#[derive(Debug)]
pub(crate) struct Reports {
    socket: UnixStream,
    partial: [u8; RECORD],
    filled: usize,
}

/// A connected pair: the parent's `Reports` and the child's `Reporter`.
pub(crate) fn pair() -> io::Result<(Reports, Reporter)> {
    let (parent, child) = UnixStream::pair()?;
    parent.set_nonblocking(true)?;
    Ok((
        Reports {
            socket: parent,
            partial: [0; RECORD],
            filled: 0,
        },
        Reporter { socket: child },
    ))
}

impl Reports {
    /// Reads every event that has arrived, passing each to `on_event`.
    /// Returns true once the other end is closed: the process has ended.
    pub(crate) fn drain(&mut self, mut on_event: impl FnMut(Event)) -> bool {
        loop {
            match self.socket.read(&mut self.partial[self.filled..]) {
                Ok(0) => return true,
                Ok(n) => {
                    self.filled += n;
                    if self.filled == RECORD {
                        self.filled = 0;
                        if let Some(event) = Event::decode(&self.partial) {
                            on_event(event);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => return true,
            }
        }
    }

    /// Tells the process that the server drains: one byte the other way,
    /// which the process watches for ([`Reporter::drain_signal`]). Never
    /// blocks, and never raises SIGPIPE if the process is already gone.
    pub(crate) fn tell_draining(&self) {
        let _ = socket2::SockRef::from(&self.socket).send_with_flags(&[1], libc::MSG_NOSIGNAL);
    }

    /// Answers a worker's [`Event::Ask`]. The worker waits for it, so the
    /// socket's buffer is empty and the write never blocks.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        let ended = Ended {
            outcome: Outcome::TimedOut,
            bytes_read: 1 << 40,
            bytes_written: 7,
        };
        let key = PeerKey::of_ip("2001:db8::1".parse().unwrap());
        for event in [
            Event::Started,
            Event::Refused,
            Event::Ended(ended),
            Event::Ask(key),
        ] {
            assert_eq!(Event::decode(&event.encode()), Some(event));
        }
    }

    #[test]
    fn the_parent_can_tell_the_process_that_the_server_drains() {
        let (reports, reporter) = pair().unwrap();
        let signal = reporter.drain_signal().unwrap();
        signal
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        reports.tell_draining();
        let mut byte = [0u8; 1];
        assert_eq!((&signal).read(&mut byte).unwrap(), 1);
        drop(reports);
        assert_eq!((&signal).read(&mut byte).unwrap(), 0, "the parent is gone");
    }

    #[test]
    fn reports_arrive_and_end_of_file_means_gone() {
        let (mut reports, mut reporter) = pair().unwrap();
        reporter.send(Event::Started);
        reporter.send(Event::Refused);
        let mut seen = Vec::new();
        assert!(!reports.drain(|e| seen.push(e)));
        assert_eq!(seen, [Event::Started, Event::Refused]);
        drop(reporter);
        assert!(reports.drain(|e| seen.push(e)));
    }
}
