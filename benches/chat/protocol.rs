//! The chat protocol as the clients speak and check it: the Echo
//! handler's line mode, byte for byte (docs/protocols.md).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use socketserver_handlers::echo::{DEFAULT_GREETING, DEFAULT_SUFFIX};

/// Every client socket's connect, read and write timeout.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

pub const REQUEST: &[u8] = b"hello\n";
pub const QUIT: &[u8] = b"q\n";

pub fn greeting() -> &'static [u8] {
    DEFAULT_GREETING.as_bytes()
}

/// `hello好\n`.
pub fn reply() -> Vec<u8> {
    [b"hello", DEFAULT_SUFFIX.as_bytes(), b"\n"].concat()
}

/// Bytes that came but were not the ones expected: the one error that is
/// never a figure (`InvalidData`); every other error is a connection that
/// failed, timed out or was closed.
pub fn is_wrong(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidData
}

/// Reads exactly `want.len()` bytes and checks they are `want`.
pub fn expect(stream: &mut TcpStream, want: &[u8], what: &str) -> io::Result<()> {
    let mut buf = [0u8; 256];
    let got = &mut buf[..want.len()];
    stream.read_exact(got)?;
    if got != want {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{what}: expected {:?}, got {:?}",
                String::from_utf8_lossy(want),
                String::from_utf8_lossy(got)
            ),
        ));
    }
    Ok(())
}

/// Connects with every timeout set; does not read the greeting.
pub fn open(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Connects and reads the greeting.
pub fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let mut stream = open(addr)?;
    expect(&mut stream, greeting(), "greeting")?;
    Ok(stream)
}

pub fn round_trip(stream: &mut TcpStream, reply: &[u8]) -> io::Result<()> {
    stream.write_all(REQUEST)?;
    expect(stream, reply, "reply")
}

/// Sends `q` and expects the server to close: end of stream (or a reset)
/// and no byte before it.
pub fn quit(stream: &mut TcpStream) -> io::Result<()> {
    stream.write_all(QUIT)?;
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => Ok(()),
        Ok(n) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "after q: expected the close, got {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(()),
        Err(e) => Err(e),
    }
}
