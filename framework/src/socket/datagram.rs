//! The datagram socket a server receives on and replies through (UDP or
//! Unix), and [`Packet`], one received datagram on its way to a handler.

use std::io;
use std::net::UdpSocket;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;

use crate::Address;

/// A bound UDP or Unix datagram socket.
#[derive(Debug)]
pub(crate) enum DatagramSocket {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

impl DatagramSocket {
    pub(crate) fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, Address)> {
        match self {
            DatagramSocket::Udp(s) => s.recv_from(buf).map(|(n, a)| (n, Address::Inet(a))),
            DatagramSocket::Unix(s) => s.recv_from(buf).map(|(n, a)| (n, Address::from_unix(&a))),
        }
    }

    pub(crate) fn send_to(&self, buf: &[u8], peer: &Address) -> io::Result<usize> {
        match (self, peer) {
            (DatagramSocket::Udp(s), Address::Inet(addr)) => s.send_to(buf, addr),
            (DatagramSocket::Unix(s), Address::Unix(Some(path))) => s.send_to(buf, path),
            (DatagramSocket::Unix(_), Address::Unix(None)) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the sender's Unix socket is unnamed: there is no address to reply to",
            )),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the address is not of the socket's family",
            )),
        }
    }

    pub(crate) fn local_addr(&self) -> io::Result<Address> {
        match self {
            DatagramSocket::Udp(s) => s.local_addr().map(Address::Inet),
            DatagramSocket::Unix(s) => s.local_addr().map(|a| Address::from_unix(&a)),
        }
    }

    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            DatagramSocket::Udp(s) => s.set_nonblocking(nonblocking),
            DatagramSocket::Unix(s) => s.set_nonblocking(nonblocking),
        }
    }
}

impl AsFd for DatagramSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            DatagramSocket::Udp(s) => s.as_fd(),
            DatagramSocket::Unix(s) => s.as_fd(),
        }
    }
}

/// A received datagram on its way to a handler.
#[derive(Debug)]
pub(crate) struct Packet {
    pub(crate) data: Vec<u8>,
    pub(crate) peer: Address,
    pub(crate) socket: Arc<DatagramSocket>,
}
