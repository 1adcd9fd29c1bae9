//! The per-address connection limit: who counts as one client, and the
//! table of how many conversations each has.
//!
//! One client is an IPv4 address, or an IPv6 /64: a single host is
//! routinely given a whole /64 and can pick any address in it, so counting
//! whole IPv6 addresses would leave it unlimited. An IPv4-mapped IPv6
//! address (`::ffff:a.b.c.d`, as a dual-stack `[::]` listener sees IPv4
//! clients) is its IPv4 address. Unix-domain peers are local and not
//! limited.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use crate::Address;

/// Why a connection was refused before its handler ran, as told to
/// [`RequestHandler::refuse`](crate::RequestHandler::refuse).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The connection limit is reached (under
    /// [`WhenFull::Refuse`](crate::WhenFull::Refuse)).
    Full,
    /// The client's address already has
    /// [`max_per_ip`](crate::Builder::max_per_ip) conversations.
    PerIp,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Full => "the server is full",
            Refusal::PerIp => "too many connections from this address",
        })
    }
}

/// One client, as the per-address limit counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum PeerKey {
    V4([u8; 4]),
    /// The first 64 bits of an IPv6 address.
    V6Prefix([u8; 8]),
}

impl PeerKey {
    /// The key of `address`; `None` for a Unix-domain peer.
    pub(crate) fn of(address: &Address) -> Option<PeerKey> {
        Some(PeerKey::of_ip(address.as_inet()?.ip()))
    }

    pub(crate) fn of_ip(ip: IpAddr) -> PeerKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => PeerKey::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let mut prefix = [0u8; 8];
                prefix.copy_from_slice(&v6.octets()[..8]);
                PeerKey::V6Prefix(prefix)
            }
        }
    }

    /// 9 bytes for a report record: the family, then the address bits.
    pub(crate) fn encode(self) -> [u8; 9] {
        let mut bytes = [0u8; 9];
        match self {
            PeerKey::V4(octets) => {
                bytes[0] = 4;
                bytes[1..5].copy_from_slice(&octets);
            }
            PeerKey::V6Prefix(prefix) => {
                bytes[0] = 6;
                bytes[1..9].copy_from_slice(&prefix);
            }
        }
        bytes
    }

    pub(crate) fn decode(bytes: &[u8; 9]) -> Option<PeerKey> {
        match bytes[0] {
            4 => {
                let mut octets = [0u8; 4];
                octets.copy_from_slice(&bytes[1..5]);
                Some(PeerKey::V4(octets))
            }
            6 => {
                let mut prefix = [0u8; 8];
                prefix.copy_from_slice(&bytes[1..9]);
                Some(PeerKey::V6Prefix(prefix))
            }
            _ => None,
        }
    }
}

/// How many conversations each client has; `max` of `None` counts nothing.
#[derive(Debug, Default)]
pub(crate) struct PerIp {
    max: Option<usize>,
    counts: HashMap<PeerKey, usize>,
}

impl PerIp {
    pub(crate) fn new(max: Option<usize>) -> PerIp {
        PerIp {
            max,
            counts: HashMap::new(),
        }
    }

    pub(crate) fn is_on(&self) -> bool {
        self.max.is_some()
    }

    /// Counts one more conversation for `key`; false (and nothing counted)
    /// if it already has the most allowed.
    pub(crate) fn take(&mut self, key: PeerKey) -> bool {
        let Some(max) = self.max else {
            return true;
        };
        let count = self.counts.entry(key).or_insert(0);
        if *count >= max {
            return false;
        }
        *count += 1;
        true
    }

    /// A conversation of `key` ended.
    pub(crate) fn release(&mut self, key: PeerKey) {
        if let Some(count) = self.counts.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                self.counts.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> PeerKey {
        PeerKey::of_ip(text.parse().unwrap())
    }

    #[test]
    fn ipv4_counts_per_address() {
        assert_eq!(key("192.0.2.7"), PeerKey::V4([192, 0, 2, 7]));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
    }

    #[test]
    fn ipv6_counts_per_64() {
        assert_eq!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_eq!(
            key("2001:db8:1:2::1"),
            PeerKey::V6Prefix([0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2])
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }

    #[test]
    fn ipv4_mapped_ipv6_is_its_ipv4_address() {
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_ne!(key("::ffff:192.0.2.7"), key("::ffff:192.0.2.8"));
    }

    #[test]
    fn unix_peers_are_not_counted() {
        assert_eq!(PeerKey::of(&Address::Unix(None)), None);
    }

    #[test]
    fn keys_round_trip_through_a_report() {
        for k in [key("10.1.2.3"), key("2001:db8::1")] {
            assert_eq!(PeerKey::decode(&k.encode()), Some(k));
        }
    }

    #[test]
    fn the_table_refuses_past_the_limit_and_frees_on_release() {
        let mut table = PerIp::new(Some(2));
        let a = key("127.0.0.1");
        assert!(table.take(a));
        assert!(table.take(a));
        assert!(!table.take(a));
        assert!(table.take(key("127.0.0.2")));
        table.release(a);
        assert!(table.take(a));
        let mut off = PerIp::new(None);
        assert!((0..10_000).all(|_| off.take(a)));
    }
}
