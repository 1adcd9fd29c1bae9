//! The clocks a [`Stream`](crate::Stream)'s receive waits on: the idle
//! timeout (silence between bytes), the message timeout (a line or frame
//! must arrive whole within this time of its first receive), and a
//! deadline the handler sets (a login must be done by then).
//!
//! The idle timeout alone restarts on every byte, so a client that
//! trickles one byte per idle period holds its connection for ever; the
//! other two are totals, and end that. The socket has one timeout
//! (`SO_RCVTIMEO`); before each receive the nearest of the three is put
//! there, and only when it differs from what the socket already has, so a
//! stream with no message in progress and no deadline (the fast path, a
//! whole line in one receive) costs no extra system call, not even a look
//! at the clock.

use std::io;
use std::time::{Duration, Instant};

/// Which clock ran out, for the error message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Limit {
    Idle,
    Message(&'static str),
    Deadline,
}

#[derive(Debug)]
pub(crate) struct ReadClock {
    /// Longest silence while waiting for data.
    pub(crate) idle: Option<Duration>,
    /// Longest a line or frame may take, from its first receive.
    pub(crate) message: Option<Duration>,
    /// Every receive fails after this instant.
    pub(crate) deadline: Option<Instant>,
    /// The message in progress ("line" or "frame"), if any.
    reading: Option<&'static str>,
    /// When the message in progress must be whole; set at its first
    /// receive after its start.
    message_deadline: Option<Instant>,
    /// What the socket's own read timeout is now.
    on_socket: Option<Duration>,
}

impl ReadClock {
    /// `on_socket` is the read timeout the socket already has.
    pub(crate) fn new(
        idle: Option<Duration>,
        message: Option<Duration>,
        on_socket: Option<Duration>,
    ) -> ReadClock {
        ReadClock {
            idle,
            message,
            deadline: None,
            reading: None,
            message_deadline: None,
            on_socket,
        }
    }

    /// The socket's read timeout was set to `timeout` from outside.
    pub(crate) fn socket_set(&mut self, timeout: Option<Duration>) {
        self.on_socket = timeout;
    }

    /// A line or frame has begun and more of it must be received: the
    /// message clock starts at the next receive.
    pub(crate) fn message_begun(&mut self, what: &'static str) {
        if self.reading.is_none() {
            self.reading = Some(what);
        }
    }

    /// The message is whole (or abandoned): its clock stops.
    pub(crate) fn message_ended(&mut self) {
        self.reading = None;
        self.message_deadline = None;
    }

    /// Before a receive: the timeout the socket must have for it, set on
    /// `set` only if it changed. Fails with `TimedOut` if a total limit has
    /// already passed.
    pub(crate) fn before_receive(
        &mut self,
        set: impl FnOnce(Option<Duration>) -> io::Result<()>,
    ) -> io::Result<()> {
        let (wanted, _) = self.nearest()?;
        if wanted != self.on_socket {
            set(wanted)?;
            self.on_socket = wanted;
        }
        Ok(())
    }

    /// The error for a receive that timed out.
    pub(crate) fn timed_out(&mut self) -> io::Error {
        let limit = match self.nearest() {
            Ok((_, limit)) => limit,
            Err(e) => return e,
        };
        let text = match limit {
            Limit::Idle => match self.idle {
                Some(t) => format!("no data from the peer for {}", seconds(t)),
                None => "read timed out".to_string(),
            },
            other => return expired(other, self.message),
        };
        io::Error::new(io::ErrorKind::TimedOut, text)
    }

    /// The nearest limit and how long until it: the idle timeout unless a
    /// message is in progress or a deadline is set.
    fn nearest(&mut self) -> io::Result<(Option<Duration>, Limit)> {
        if self.deadline.is_none() && (self.reading.is_none() || self.message.is_none()) {
            return Ok((self.idle, Limit::Idle));
        }
        let now = Instant::now();
        if let (Some(_), Some(total), None) = (self.reading, self.message, self.message_deadline) {
            self.message_deadline = Some(now + total);
        }
        let mut nearest = (self.idle, Limit::Idle);
        let totals = [
            (
                self.message_deadline,
                Limit::Message(self.reading.unwrap_or("message")),
            ),
            (self.deadline, Limit::Deadline),
        ];
        for (at, limit) in totals {
            let Some(at) = at else { continue };
            let left = at.saturating_duration_since(now);
            if left.is_zero() {
                return Err(expired(limit, self.message));
            }
            if nearest.0.is_none_or(|t| left < t) {
                nearest = (Some(left), limit);
            }
        }
        Ok(nearest)
    }
}

fn expired(limit: Limit, message: Option<Duration>) -> io::Error {
    let text = match (limit, message) {
        (Limit::Message(what), Some(total)) => {
            format!("a {what} did not arrive whole within {}", seconds(total))
        }
        _ => "the deadline for reading passed".to_string(),
    };
    io::Error::new(io::ErrorKind::TimedOut, text)
}

pub(crate) fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.3} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_message_and_no_deadline_never_touches_the_socket() {
        let idle = Some(Duration::from_secs(5));
        let mut clock = ReadClock::new(idle, idle, idle);
        clock
            .before_receive(|_| panic!("no system call on the fast path"))
            .unwrap();
    }

    #[test]
    fn a_message_in_progress_shortens_the_wait_then_expires() {
        let idle = Some(Duration::from_secs(5));
        let mut clock = ReadClock::new(idle, Some(Duration::from_millis(50)), idle);
        clock.message_begun("line");
        let mut set = None;
        clock
            .before_receive(|t| {
                set = Some(t);
                Ok(())
            })
            .unwrap();
        assert!(set.unwrap().unwrap() <= Duration::from_millis(50));
        std::thread::sleep(Duration::from_millis(60));
        let e = clock.before_receive(|_| Ok(())).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(e.to_string(), "a line did not arrive whole within 0.050 s");
        clock.message_ended();
        let mut restored = None;
        clock
            .before_receive(|t| {
                restored = Some(t);
                Ok(())
            })
            .unwrap();
        assert_eq!(restored, Some(idle));
    }

    #[test]
    fn a_past_deadline_fails_every_receive() {
        let mut clock = ReadClock::new(None, None, None);
        clock.deadline = Some(Instant::now());
        let e = clock.before_receive(|_| Ok(())).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(e.to_string(), "the deadline for reading passed");
    }
}
