//! A data connection's address as the control connection writes it, both
//! ways, so that the server and the client read and write one grammar:
//!
//! * RFC 959's `h1,h2,h3,h4,p1,p2`: the server reads it in `PORT` and
//!   writes it in `PASV`'s `227`, which the client reads;
//! * RFC 2428's `|family|host|port|` (any delimiter): the server reads it
//!   in `EPRT` and writes `|||port|` in `EPSV`'s `229`, which the client
//!   reads.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The text of a `227` reply for a listener on `ip:port`.
pub(crate) fn pasv_text(ip: Ipv4Addr, port: u16) -> String {
    let [a, b, c, d] = ip.octets();
    let [high, low] = port.to_be_bytes();
    format!("Entering Passive Mode ({a},{b},{c},{d},{high},{low}).")
}

/// The text of a `229` reply for a listener on `port`.
pub(crate) fn epsv_text(port: u16) -> String {
    format!("Entering Extended Passive Mode (|||{port}|)")
}

/// Parses `PORT h1,h2,h3,h4,p1,p2`.
pub(crate) fn parse_port(arg: &str) -> Option<SocketAddr> {
    let numbers: Vec<u8> = arg
        .trim()
        .split(',')
        .map(|n| n.trim().parse::<u8>())
        .collect::<Result<_, _>>()
        .ok()?;
    let [a, b, c, d, high, low] = numbers[..] else {
        return None;
    };
    let port = u16::from_be_bytes([high, low]);
    Some(SocketAddr::new(Ipv4Addr::new(a, b, c, d).into(), port))
}

/// The port of a `227` reply, `Entering Passive Mode (h1,h2,h3,h4,p1,p2)`.
/// Read as RFC 1123 asks of a client (from the first digit, whatever
/// the words and brackets around), and more leniently than `PORT`: the
/// address is not used (the client connects to the server it speaks to).
pub(crate) fn parse_pasv(text: &str) -> Option<u16> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let numbers: Vec<u16> = text[start..]
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(6)
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    let [_, _, _, _, high, low] = numbers[..] else {
        return None;
    };
    Some(u16::from_be_bytes([
        u8::try_from(high).ok()?,
        u8::try_from(low).ok()?,
    ]))
}

/// Parses `EPRT |1|132.235.1.2|6275|` or `EPRT |2|::1|5282|`.
pub(crate) fn parse_eprt(arg: &str) -> Option<SocketAddr> {
    let (family, host, port) = extended(arg.trim())?;
    let ip: IpAddr = match family {
        "1" => IpAddr::V4(host.parse().ok()?),
        "2" => IpAddr::V6(host.parse().ok()?),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port.parse().ok()?))
}

/// The port of a `229` reply, `Entering Extended Passive Mode (|||PORT|)`.
pub(crate) fn parse_epsv(text: &str) -> Option<u16> {
    let open = text.find('(')?;
    let inner = &text[open + 1..];
    let close = inner.find(')')?;
    match extended(&inner[..close])? {
        ("", "", port) => port.parse().ok(),
        _ => None,
    }
}

/// The family, host and port of `<d>family<d>host<d>port<d>`, where the
/// delimiter `<d>` is the first character.
fn extended(text: &str) -> Option<(&str, &str, &str)> {
    let delimiter = text.chars().next()?;
    let parts: Vec<&str> = text.split(delimiter).collect();
    match parts[..] {
        ["", family, host, port, ""] => Some((family, host, port)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_and_eprt_arguments() {
        assert_eq!(
            parse_port("127,0,0,1,200,10"),
            Some("127.0.0.1:51210".parse().unwrap())
        );
        assert_eq!(parse_port("127,0,0,1,200"), None);
        assert_eq!(parse_port("127,0,0,1,256,1"), None);
        assert_eq!(parse_port("a,b,c,d,e,f"), None);
        assert_eq!(
            parse_eprt("|1|132.235.1.2|6275|"),
            Some("132.235.1.2:6275".parse().unwrap())
        );
        assert_eq!(
            parse_eprt("|2|::1|5282|"),
            Some("[::1]:5282".parse().unwrap())
        );
        assert_eq!(
            parse_eprt("!2!::1!5282!"),
            Some("[::1]:5282".parse().unwrap())
        );
        assert_eq!(parse_eprt("|3|x|1|"), None);
        assert_eq!(parse_eprt("|1|::1|1|"), None);
        assert_eq!(parse_eprt("|1|1.2.3.4|1"), None);
        assert_eq!(parse_eprt(""), None);
    }

    #[test]
    fn passive_replies() {
        assert_eq!(
            parse_epsv("Entering Extended Passive Mode (|||37931|)"),
            Some(37931)
        );
        assert_eq!(parse_epsv("Extended Passive (!!!5282!)"), Some(5282));
        assert_eq!(parse_epsv("Entering Extended Passive Mode"), None);
        assert_eq!(
            parse_epsv("Entering Extended Passive Mode (|1|::1|5282|)"),
            None
        );
        assert_eq!(
            parse_pasv("Entering Passive Mode (127,0,0,1,200,10)."),
            Some(51210)
        );
        assert_eq!(
            parse_pasv("Entering Passive Mode 127,0,0,1,200,10"),
            Some(51210)
        );
        assert_eq!(parse_pasv("Entering Passive Mode (127,0,0,1,200)"), None);
        assert_eq!(parse_pasv("Entering Passive Mode (1,2,3,4,256,1)"), None);
    }

    #[test]
    fn the_client_reads_what_the_server_writes() {
        assert_eq!(
            pasv_text(Ipv4Addr::new(127, 0, 0, 1), 51210),
            "Entering Passive Mode (127,0,0,1,200,10)."
        );
        for port in [1, 255, 256, 51210, u16::MAX] {
            assert_eq!(
                parse_pasv(&pasv_text(Ipv4Addr::LOCALHOST, port)),
                Some(port)
            );
            assert_eq!(parse_epsv(&epsv_text(port)), Some(port));
        }
    }
}
