//! The address to bind, and the server's builder on it: TCP or UDP, or a
//! Unix socket.

use std::process::ExitCode;

use socketserver::{Builder, DatagramHandler, RequestHandler, Server};

use crate::cli::Cli;

/// The address to bind: `--bind`, or loopback and the handler's port.
pub fn bind_address(cli: &Cli) -> String {
    cli.bind
        .clone()
        .unwrap_or_else(|| format!("127.0.0.1:{}", cli.handler.default_port()))
}

/// One line for an address that does not resolve or a failed build.
pub fn bind_failed(bind: &str, error: socketserver::Error) -> ExitCode {
    match error {
        socketserver::Error::Resolve { source, .. } => {
            eprintln!(
                "serve: cannot bind {bind}: {}",
                socketserver::error::describe(&source)
            )
        }
        other => eprintln!("serve: {other}"),
    }
    ExitCode::from(1)
}

/// A stream server's builder: TCP, or a Unix stream socket.
pub fn stream_builder<H: RequestHandler>(cli: &Cli, handler: H) -> Builder<H> {
    let bind = bind_address(cli);
    match bind.strip_prefix("unix:") {
        Some(path) => Server::bind_unix(path, handler),
        None => {
            let addr = with_default_port(&bind, cli.handler.default_port());
            Server::bind(addr.as_str(), handler)
        }
    }
}

/// A datagram server's builder: UDP, or a Unix datagram socket.
pub fn datagram_builder<H: DatagramHandler>(cli: &Cli, handler: H) -> Builder<H> {
    let bind = bind_address(cli);
    match bind.strip_prefix("unix:") {
        Some(path) => Server::bind_unix_datagram(path, handler),
        None => {
            let addr = with_default_port(&bind, cli.handler.default_port());
            Server::bind_udp(addr.as_str(), handler)
        }
    }
}

/// `localhost` -> `localhost:PORT`; `::1` -> `[::1]:PORT`; anything with a
/// port stays as it is.
pub fn with_default_port(addr: &str, port: u16) -> String {
    if addr.parse::<std::net::SocketAddr>().is_ok() {
        return addr.to_string();
    }
    if let Ok(ip) = addr.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        return std::net::SocketAddr::new(ip, port).to_string();
    }
    if addr.contains(':') {
        addr.to_string()
    } else {
        format!("{addr}:{port}")
    }
}

/// The address `--bind` serves that other machines can reach (the first
/// it resolves to that is not loopback), if any: what the handlers'
/// safety checks ask before serving without a login, a token or TLS.
pub fn exposed(cli: &Cli) -> Option<std::net::SocketAddr> {
    let bind = cli.bind.as_deref()?;
    non_loopback(bind, cli.handler.default_port())
}

/// The first address `bind` resolves to that is not loopback, if any, with
/// the port the handler would listen on. Unix sockets are local; an address
/// that does not resolve is left for the bind to report.
fn non_loopback(bind: &str, default_port: u16) -> Option<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    if bind.starts_with("unix:") {
        return None;
    }
    let addr = with_default_port(bind, default_port);
    addr.to_socket_addrs()
        .ok()?
        .find(|a| !a.ip().to_canonical().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use socketserver_handlers::{ftp, shell};

    #[test]
    fn default_ports() {
        assert_eq!(with_default_port("127.0.0.1:80", 9), "127.0.0.1:80");
        assert_eq!(with_default_port("127.0.0.1", 9), "127.0.0.1:9");
        assert_eq!(with_default_port("::1", 9), "[::1]:9");
        assert_eq!(with_default_port("[::1]", 9), "[::1]:9");
        assert_eq!(with_default_port("[::1]:21", 9), "[::1]:21");
        assert_eq!(with_default_port("localhost", 9), "localhost:9");
        assert_eq!(with_default_port("localhost:8", 9), "localhost:8");
    }

    #[test]
    fn only_loopback_is_safe_for_the_shell() {
        let shell = shell::DEFAULT_PORT;
        assert_eq!(non_loopback("127.0.0.1:0", shell), None);
        assert_eq!(non_loopback("[::1]:0", shell), None);
        assert_eq!(non_loopback("localhost", shell), None);
        assert_eq!(non_loopback("unix:/tmp/x.sock", shell), None);
        assert_eq!(non_loopback("[::ffff:127.0.0.1]:1", shell), None);
        assert_eq!(
            non_loopback("0.0.0.0", shell),
            Some("0.0.0.0:9998".parse().unwrap())
        );
        assert_eq!(
            non_loopback("0.0.0.0", ftp::DEFAULT_PORT),
            Some("0.0.0.0:2121".parse().unwrap())
        );
        assert_eq!(
            non_loopback("[::]:22", shell),
            Some("[::]:22".parse().unwrap())
        );
        assert_eq!(
            non_loopback("10.1.2.3:80", shell),
            Some("10.1.2.3:80".parse().unwrap())
        );
    }
}
