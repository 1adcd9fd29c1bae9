//! Data connections: passive (`PASV`, `EPSV`: the server listens, the
//! client connects) and active (`PORT`, `EPRT`: the server connects to the
//! client).
//!
//! Both are tied to the control connection's peer, so that no third party
//! can steal or receive a transfer: a passive listener accepts only
//! connections from the control peer's IP (others are closed at once and
//! the wait goes on), and an active connection goes only to the control
//! peer's IP, on a port of 1024 or more (no "FTP bounce" to other hosts or
//! to privileged services).
//!
//! A control peer on a loopback address gets no active mode at all (unless
//! the server allows it): a client behind a local proxy (stunnel, HAProxy,
//! `ssh -L`) shows up as 127.0.0.1, and "its" address is then this machine,
//! where `PORT 127,0,0,1,39,14` would aim the server at a local service
//! such as the remote shell.
//!
//! Every data socket is non-blocking from the start, in every model: the
//! accept, the connect and each wait of a transfer go through
//! [`socketserver::event::wait`], which parks the conversation in the
//! event model (its loop serves the others meanwhile) and is `poll(2)`
//! elsewhere.

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::ops::RangeInclusive;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use socketserver::event::{self, Interest};

/// What the next transfer will use, set by `PASV`/`EPSV`/`PORT`/`EPRT`.
#[derive(Debug, Default)]
pub(crate) enum DataPlan {
    /// Not set: a transfer command is answered `425`.
    #[default]
    None,
    /// A listener waiting for the client (one per session: a new `PASV`
    /// replaces it), closed at `deadline` if no transfer command came.
    Passive {
        listener: TcpListener,
        deadline: Instant,
    },
    /// A passive listener was closed at its deadline: the next transfer
    /// command is told so (`425`).
    Expired,
    /// Connect to this address of the client.
    Active(SocketAddr),
}

impl DataPlan {
    /// How long until a waiting passive listener is to be closed; `None`
    /// if there is none.
    pub(crate) fn passive_left(&self) -> Option<Duration> {
        match self {
            DataPlan::Passive { deadline, .. } => {
                Some(deadline.saturating_duration_since(Instant::now()))
            }
            _ => None,
        }
    }

    /// Closes a passive listener whose deadline has passed (a client that
    /// asked for one and never used it must not keep a port open for
    /// ever). True if it did.
    pub(crate) fn close_expired(&mut self) -> bool {
        if self.passive_left().is_some_and(|left| left.is_zero()) {
            *self = DataPlan::Expired;
            return true;
        }
        false
    }
}

/// An IP as compared and shown: IPv4-mapped IPv6 addresses (a dual-stack
/// listener's view of IPv4 clients) become plain IPv4.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// A random 64-bit number from std's per-process random hash keys (no
/// extra crate: good enough for port numbers and temp file names, not for
/// secrets).
pub(crate) fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// A listener on `ip` (the control connection's local address), on a
/// random port of `ports`, or any port the kernel gives.
pub(crate) fn passive_listener(
    ip: IpAddr,
    ports: Option<&RangeInclusive<u16>>,
) -> io::Result<TcpListener> {
    let Some(ports) = ports else {
        return TcpListener::bind(SocketAddr::new(ip, 0));
    };
    let (low, high) = (*ports.start(), *ports.end());
    let span = u64::from(high - low) + 1;
    let start = random_u64() % span;
    // Random start, then every port in turn: finds a free one whenever
    // there is one, in at most `span` tries.
    let mut last = None;
    for i in 0..span {
        let port = low + ((start + i) % span) as u16;
        match TcpListener::bind(SocketAddr::new(ip, port)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no passive port")))
}

/// Why an active-mode address was refused (the reply's code and text),
/// or `None` if it is allowed. `allow_loopback`: a control peer on a
/// loopback address may use active mode (see the module's docs).
pub(crate) fn refuse_active(
    addr: SocketAddr,
    control_peer: IpAddr,
    allow_loopback: bool,
) -> Option<(u16, &'static str)> {
    if canonical(control_peer).is_loopback() && !allow_loopback {
        // 504: PORT is implemented, not for this parameter.
        Some((
            504,
            "Active mode to a loopback address is refused: use PASV or EPSV.",
        ))
    } else if canonical(addr.ip()) != canonical(control_peer) {
        Some((
            501,
            "Data connections go only to the address of the control connection.",
        ))
    } else if addr.port() < 1024 {
        Some((501, "Data connections go only to ports 1024 and above."))
    } else {
        None
    }
}

/// Waits until `deadline` for a connection from `peer_ip` on `listener`;
/// connections from other addresses are closed at once (and logged) and
/// the wait goes on. The connection comes non-blocking.
pub(crate) fn accept_from(
    listener: &TcpListener,
    peer_ip: IpAddr,
    deadline: Instant,
) -> io::Result<TcpStream> {
    listener.set_nonblocking(true)?;
    loop {
        match listener.accept() {
            Ok((stream, from)) => {
                if canonical(from.ip()) == canonical(peer_ip) {
                    // Not inherited from the listener (Linux).
                    stream.set_nonblocking(true)?;
                    return Ok(stream);
                }
                log::warn!(
                    "refused a data connection from {from}: the control connection is from {peer_ip}"
                );
                drop(stream);
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
            Err(e) => return Err(e),
        }
        if !wait_until(listener.as_fd(), Interest::Readable, deadline)? {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no data connection in time",
            ));
        }
    }
}

/// Connects to the client's `addr` for an active-mode transfer, within
/// `timeout`: a non-blocking connect, waited for as a transfer waits. The
/// connection comes non-blocking.
pub(crate) fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let deadline = Instant::now() + timeout;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    match socket.connect(&addr.into()) {
        Ok(()) => return Ok(socket.into()),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    if !wait_until(socket.as_fd(), Interest::Writable, deadline)? {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "connecting timed out",
        ));
    }
    // Writable: connected, or failed (the error is the socket's).
    if let Some(e) = socket.take_error()? {
        return Err(e);
    }
    Ok(socket.into())
}

/// Waits until `fd` may be ready as `interest` says, or `deadline`: true
/// if it may be (the caller tries again; a wait cut short by a signal says
/// so too), false once the deadline has passed.
pub(crate) fn wait_until(
    fd: BorrowedFd<'_>,
    interest: Interest,
    deadline: Instant,
) -> io::Result<bool> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Ok(false);
    }
    let ready = event::wait(&[(fd, interest)], Some(left))?;
    Ok(ready.contains(&true) || Instant::now() < deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passive_listeners_expire() {
        let listener = passive_listener("127.0.0.1".parse().unwrap(), None).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut plan = DataPlan::Passive {
            listener,
            deadline: Instant::now() + Duration::from_secs(600),
        };
        assert!(plan.passive_left().unwrap() > Duration::from_secs(500));
        assert!(!plan.close_expired());
        if let DataPlan::Passive { deadline, .. } = &mut plan {
            *deadline = Instant::now();
        }
        assert!(plan.close_expired());
        assert!(matches!(plan, DataPlan::Expired));
        assert!(plan.passive_left().is_none());
        // Closed: the port refuses connections.
        assert!(TcpStream::connect(addr).is_err());
    }

    #[test]
    fn active_mode_goes_only_to_the_control_peer() {
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let to = |a: &str| a.parse::<SocketAddr>().unwrap();
        assert_eq!(refuse_active(to("127.0.0.1:2000"), peer, true), None);
        assert_eq!(
            refuse_active(to("127.0.0.2:2000"), peer, true).unwrap().0,
            501
        );
        assert_eq!(
            refuse_active(to("127.0.0.1:25"), peer, true).unwrap().0,
            501
        );
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(refuse_active(to("127.0.0.1:2000"), mapped, true), None);
        let remote: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(refuse_active(to("192.0.2.7:2000"), remote, false), None);
    }

    #[test]
    fn loopback_peers_get_no_active_mode_unless_allowed() {
        let to = |a: &str| a.parse::<SocketAddr>().unwrap();
        for (peer, addr) in [
            ("127.0.0.1", "127.0.0.1:9998"),
            ("127.1.2.3", "127.1.2.3:9998"),
            ("::1", "[::1]:9998"),
            ("::ffff:127.0.0.1", "127.0.0.1:9998"),
        ] {
            let peer: IpAddr = peer.parse().unwrap();
            assert_eq!(
                refuse_active(to(addr), peer, false).unwrap().0,
                504,
                "{peer}"
            );
            assert_eq!(refuse_active(to(addr), peer, true), None, "{peer}");
        }
    }

    #[test]
    fn passive_ports_come_from_the_range() {
        let a = passive_listener("127.0.0.1".parse().unwrap(), None).unwrap();
        let port = a.local_addr().unwrap().port();
        // The only port of a one-port range is busy: an error, not a hang.
        assert!(passive_listener("127.0.0.1".parse().unwrap(), Some(&(port..=port))).is_err());
        let b = passive_listener(
            "127.0.0.1".parse().unwrap(),
            Some(&(port..=port.saturating_add(50))),
        )
        .unwrap();
        let got = b.local_addr().unwrap().port();
        assert!(got > port && got <= port.saturating_add(50), "{got}");
    }
}
