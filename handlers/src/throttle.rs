//! [`Throttle`]: slows password and token guessing, shared by [`Ftp`]'s
//! `PASS` and [`Shell`]'s `auth`.
//!
//! Three strikes per connection close it, but an attacker just opens
//! another. So failures are also counted per account (an FTP user name,
//! the shell's one token), per peer IP address and over the whole server,
//! and each count sets a delay that doubles with every failure, from
//! [`Limits::first_delay`] up to [`Limits::max_delay`]:
//!
//! * **before an attempt is checked**, it waits until the slowest of its
//!   keys allows the next try; each try on a slowed key reserves the next
//!   slot, so parallel connections are served one after the other at that
//!   pace instead of all at once;
//! * **after a failure**, the reply waits for the new, longer delay.
//!
//! Accounts are slowed from their first failure; a peer address after
//! [`Limits::free_per_peer`] failures and the server after
//! [`Limits::free_global`] (so that one person's typos do not slow
//! everyone). A key with no failure for [`Limits::forget_after`] is
//! forgotten, and a success forgets its account. The table holds at most
//! [`Limits::max_entries`] keys (the oldest is evicted); account names are
//! kept as hashes, so long names cost no memory.
//!
//! The state is shared by the clones of a handler, so by the threads of a
//! server, and counted per process: in the forking models each connection
//! runs in a child of its own, which starts from the parent's (empty)
//! table, so there only the per-connection limit applies.
//!
//! [`Ftp`]: crate::Ftp
//! [`Shell`]: crate::Shell
//!
//! ```
//! use std::time::Duration;
//! use socketserver_handlers::throttle::{Limits, Throttle};
//!
//! let throttle = Throttle::new(Limits::default().first_delay(Duration::from_millis(10)));
//! let peer = Some("192.0.2.1".parse().unwrap());
//! assert_eq!(throttle.before_attempt("alice", peer), Duration::ZERO);
//! let hold = throttle.failed("alice", peer); // the 530 waits this long
//! assert_eq!(hold, Duration::from_millis(10));
//! ```

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The throttle's settings. Start from [`Limits::default`] and change what
/// you need with the setters (the struct may gain fields).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The delay after the first counted failure; each further failure
    /// doubles it. Default 0.5 s.
    pub first_delay: Duration,
    /// The longest delay. Default 8 s.
    pub max_delay: Duration,
    /// A key with no failure for this long is forgotten. Default 60 s.
    pub forget_after: Duration,
    /// Failures from one IP address before it is slowed. Default 5.
    pub free_per_peer: u32,
    /// Failures over the whole server before every attempt is slowed.
    /// Default 50.
    pub free_global: u32,
    /// Most keys remembered; past it the oldest is evicted. Default 10,000.
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            forget_after: Duration::from_secs(60),
            free_per_peer: 5,
            free_global: 50,
            max_entries: 10_000,
        }
    }
}

impl Limits {
    /// Sets [`Limits::first_delay`].
    pub fn first_delay(mut self, delay: Duration) -> Self {
        self.first_delay = delay;
        self
    }

    /// Sets [`Limits::max_delay`].
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Sets [`Limits::forget_after`].
    pub fn forget_after(mut self, quiet: Duration) -> Self {
        self.forget_after = quiet;
        self
    }

    /// Sets [`Limits::free_per_peer`].
    pub fn free_per_peer(mut self, failures: u32) -> Self {
        self.free_per_peer = failures;
        self
    }

    /// Sets [`Limits::free_global`].
    pub fn free_global(mut self, failures: u32) -> Self {
        self.free_global = failures;
        self
    }

    /// Sets [`Limits::max_entries`] (at least 1).
    pub fn max_entries(mut self, entries: usize) -> Self {
        self.max_entries = entries.max(1);
        self
    }

    /// The delay that `failures` failures on a key that allows `free` of
    /// them set: none within the allowance, then doubling, capped.
    fn delay(&self, failures: u32, free: u32) -> Duration {
        if failures <= free {
            return Duration::ZERO;
        }
        let doublings = (failures - free - 1).min(31);
        self.first_delay
            .saturating_mul(1 << doublings)
            .min(self.max_delay)
    }
}

/// What a failure is counted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    /// An account name, hashed.
    Account(u64),
    Peer(IpAddr),
    Global,
}

/// One key's recent failures.
#[derive(Clone, Copy, Debug)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    /// The next attempt on this key waits until then.
    next_allowed: Instant,
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<Key, Entry>,
    hasher: RandomState,
}

/// Failure counts and delays, shared by every clone (see the
/// [module docs](self)).
#[derive(Clone, Debug)]
pub struct Throttle {
    limits: Arc<Limits>,
    table: Arc<Mutex<Table>>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(Limits::default())
    }
}

impl Throttle {
    /// A throttle with these limits and no failures yet.
    pub fn new(limits: Limits) -> Throttle {
        Throttle {
            limits: Arc::new(limits),
            table: Arc::default(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Call before checking a password for `account` from `peer` (`None`
    /// for a Unix socket): returns how long to wait before checking it.
    /// The attempt takes its slot, so the next one on a slowed key waits
    /// one delay longer.
    pub fn before_attempt(&self, account: &str, peer: Option<IpAddr>) -> Duration {
        self.before_attempt_at(Instant::now(), account, peer)
    }

    /// Call when the password was wrong: counts the failure and returns
    /// how long to hold the reply.
    pub fn failed(&self, account: &str, peer: Option<IpAddr>) -> Duration {
        self.failed_at(Instant::now(), account, peer)
    }

    /// Call when the password was right: the account's failures are
    /// forgotten (its address's and the server's are not).
    pub fn succeeded(&self, account: &str) {
        let mut table = self.lock();
        let key = table.account(account);
        table.entries.remove(&key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic elsewhere cannot leave the table half-updated: every
        // change is a single insert or field write.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn keys(table: &Table, account: &str, peer: Option<IpAddr>) -> Vec<Key> {
        let mut keys = vec![table.account(account), Key::Global];
        keys.extend(peer.map(|ip| Key::Peer(ip.to_canonical())));
        keys
    }

    fn free(&self, key: Key) -> u32 {
        match key {
            Key::Account(_) => 0,
            Key::Peer(_) => self.limits.free_per_peer,
            Key::Global => self.limits.free_global,
        }
    }

    fn before_attempt_at(&self, now: Instant, account: &str, peer: Option<IpAddr>) -> Duration {
        let mut table = self.lock();
        let keys = Throttle::keys(&table, account, peer);
        table.forget_quiet(now, self.limits.forget_after);
        let start = keys
            .iter()
            .filter_map(|key| table.entries.get(key))
            .map(|entry| entry.next_allowed)
            .fold(now, Instant::max);
        for key in keys {
            let free = self.free(key);
            if let Some(entry) = table.entries.get_mut(&key) {
                let delay = self.limits.delay(entry.failures, free);
                if !delay.is_zero() {
                    entry.next_allowed = entry.next_allowed.max(start) + delay;
                }
            }
        }
        start - now
    }

    fn failed_at(&self, now: Instant, account: &str, peer: Option<IpAddr>) -> Duration {
        let mut table = self.lock();
        let keys = Throttle::keys(&table, account, peer);
        table.forget_quiet(now, self.limits.forget_after);
        let mut hold = Duration::ZERO;
        for key in keys {
            let free = self.free(key);
            if !table.entries.contains_key(&key) {
                table.make_room(self.limits.max_entries);
            }
            let entry = table.entries.entry(key).or_insert(Entry {
                failures: 0,
                last_failure: now,
                next_allowed: now,
            });
            entry.failures = entry.failures.saturating_add(1);
            entry.last_failure = now;
            let delay = self.limits.delay(entry.failures, free);
            entry.next_allowed = entry.next_allowed.max(now + delay);
            hold = hold.max(delay);
        }
        hold
    }
}

impl Table {
    fn account(&self, name: &str) -> Key {
        Key::Account(self.hasher.hash_one(name))
    }

    /// Drops the keys with no failure for `quiet` whose delay has passed.
    fn forget_quiet(&mut self, now: Instant, quiet: Duration) {
        self.entries.retain(|_, entry| {
            now.saturating_duration_since(entry.last_failure) < quiet || entry.next_allowed > now
        });
    }

    /// Evicts the key whose last failure is oldest while the table is full.
    fn make_room(&mut self, max: usize) {
        while self.entries.len() >= max {
            let oldest = self
                .entries
                .iter()
                .filter(|(key, _)| **key != Key::Global)
                .min_by_key(|(_, entry)| entry.last_failure)
                .map(|(key, _)| *key);
            match oldest {
                Some(key) => self.entries.remove(&key),
                None => return,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn throttle() -> Throttle {
        Throttle::new(
            Limits::default()
                .first_delay(100 * MS)
                .max_delay(400 * MS)
                .forget_after(Duration::from_secs(10))
                .free_per_peer(2)
                .free_global(4),
        )
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let limits = Limits::default();
        let delays: Vec<Duration> = (0..8).map(|n| limits.delay(n, 0)).collect();
        assert_eq!(
            delays,
            [0, 500, 1000, 2000, 4000, 8000, 8000, 8000].map(|ms| ms * MS)
        );
        assert_eq!(limits.delay(5, 5), Duration::ZERO);
        assert_eq!(limits.delay(6, 5), 500 * MS);
        assert_eq!(limits.delay(u32::MAX, 0), limits.max_delay);
    }

    #[test]
    fn one_connection_trying_again_waits_longer_each_time() {
        let t = throttle();
        let ip = Some(IpAddr::from([192, 0, 2, 1]));
        let mut now = Instant::now();
        let mut holds = Vec::new();
        for _ in 0..4 {
            assert_eq!(t.before_attempt_at(now, "alice", ip), Duration::ZERO);
            let hold = t.failed_at(now, "alice", ip);
            holds.push(hold);
            now += hold;
        }
        assert_eq!(holds, [100 * MS, 200 * MS, 400 * MS, 400 * MS]);
    }

    #[test]
    fn other_connections_on_the_account_wait_their_turn() {
        let t = throttle();
        let now = Instant::now();
        let first = Some(IpAddr::from([192, 0, 2, 1]));
        let second = Some(IpAddr::from([192, 0, 2, 2]));
        t.failed_at(now, "alice", first);
        t.failed_at(now, "alice", first);
        // A new connection from elsewhere waits out the account's delay,
        // and the one after it waits one more.
        assert_eq!(t.before_attempt_at(now, "alice", second), 200 * MS);
        assert_eq!(t.before_attempt_at(now, "alice", second), 400 * MS);
        // Another account is not slowed by alice's failures (the peer's
        // two are within its allowance, the server's too).
        assert_eq!(t.before_attempt_at(now, "bob", first), Duration::ZERO);
        // A success forgets the account.
        t.succeeded("alice");
        assert_eq!(t.before_attempt_at(now, "alice", second), Duration::ZERO);
    }

    #[test]
    fn a_guessing_peer_is_slowed_on_every_account() {
        let t = throttle();
        let now = Instant::now();
        let ip = Some(IpAddr::from([192, 0, 2, 9]));
        for n in 0..3 {
            t.failed_at(now, &format!("user{n}"), ip);
        }
        // The third failure from this address passed its allowance of 2.
        assert_eq!(t.before_attempt_at(now, "fresh", ip), 100 * MS);
        let elsewhere = Some(IpAddr::from([198, 51, 100, 1]));
        assert_eq!(t.before_attempt_at(now, "fresh", elsewhere), Duration::ZERO);
        // Two more failures from elsewhere pass the server's allowance (4).
        t.failed_at(now, "user8", elsewhere);
        t.failed_at(now, "user9", elsewhere);
        assert_eq!(t.before_attempt_at(now, "other", None), 100 * MS);
    }

    #[test]
    fn quiet_keys_are_forgotten_and_the_table_is_bounded() {
        let t = Throttle::new(
            Limits::default()
                .first_delay(100 * MS)
                .forget_after(Duration::from_secs(1))
                .max_entries(3),
        );
        let now = Instant::now();
        t.failed_at(now, "alice", None);
        let later = now + Duration::from_secs(2);
        assert_eq!(t.before_attempt_at(later, "alice", None), Duration::ZERO);
        for n in 0..100 {
            t.failed_at(
                later,
                &format!("user{n}"),
                Some(IpAddr::from([10, 0, 0, n])),
            );
        }
        assert!(t.lock().entries.len() <= 3);
        assert!(t.lock().entries.contains_key(&Key::Global));
    }
}
