//! Hashes of files: the tutorial's MD5 check, made standard.
//!
//! * [`Algorithm`] and [`Hasher`]: MD5, SHA-1 and SHA-256, the algorithms
//!   of `XMD5`, `XSHA1`, `XSHA256` and `HASH` (draft-bryan-ftpext-hash).
//! * [`Digests`]: what every session of a server shares: the cache of
//!   digests, keyed by the file's identity, size and times, and the count
//!   of hash computations running (bounded: `450` past it).
//!
//! A digest is cached only when it is sure to describe the file for as
//! long as its key stays the same: the file did not change while it was
//! hashed (its key before and after are equal), and it had not changed
//! for a clock tick before the hashing began. A file changed in the same
//! tick as its last change keeps its times (file system timestamps are
//! coarse), so a digest taken in that tick could go stale unnoticed; such
//! a "racy" digest (git's word) is given but not cached, and the next
//! request hashes the file again.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use md5::{Digest as _, Md5};
use sha1::Sha1;
use sha2::Sha256;

use super::pipeline::Observer;

/// A hash algorithm the server computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// MD5 (RFC 1321): the tutorial's check; `XMD5`, `MD5=` in `226`.
    Md5,
    /// SHA-1: `XSHA1`.
    Sha1,
    /// SHA-256: `XSHA256`, and `HASH`'s default.
    Sha256,
}

impl Algorithm {
    /// Every algorithm, in the order FEAT lists them.
    pub const ALL: [Algorithm; 3] = [Algorithm::Md5, Algorithm::Sha1, Algorithm::Sha256];

    /// The name `HASH`, `OPTS HASH` and `FEAT` use (IANA's hash names).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha1 => "SHA-1",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Parses a name, ignoring case and accepting `SHA1`, `SHA256` too.
    ///
    /// ```
    /// use socketserver_handlers::ftp::Algorithm;
    /// assert_eq!(Algorithm::parse("sha256"), Some(Algorithm::Sha256));
    /// assert_eq!(Algorithm::parse("SHA-1"), Some(Algorithm::Sha1));
    /// assert_eq!(Algorithm::parse("CRC32"), None);
    /// ```
    pub fn parse(name: &str) -> Option<Algorithm> {
        match name.trim().to_ascii_uppercase().as_str() {
            "MD5" => Some(Algorithm::Md5),
            "SHA-1" | "SHA1" => Some(Algorithm::Sha1),
            "SHA-256" | "SHA256" => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    /// A fresh hasher.
    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Md5 => Hasher::Md5(Md5::new()),
            Algorithm::Sha1 => Hasher::Sha1(Sha1::new()),
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A hash being computed.
#[derive(Clone, Debug)]
pub enum Hasher {
    /// MD5.
    Md5(Md5),
    /// SHA-1.
    Sha1(Sha1),
    /// SHA-256.
    Sha256(Sha256),
}

impl Observer for Hasher {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(bytes),
            Hasher::Sha1(h) => h.update(bytes),
            Hasher::Sha256(h) => h.update(bytes),
        }
    }
}

impl Hasher {
    /// The digest of everything seen, in lower-case hexadecimal.
    pub fn hex(self) -> String {
        match self {
            Hasher::Md5(h) => hex(&h.finalize()),
            Hasher::Sha1(h) => hex(&h.finalize()),
            Hasher::Sha256(h) => hex(&h.finalize()),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Md5(_) => Algorithm::Md5,
            Hasher::Sha1(_) => Algorithm::Sha1,
            Hasher::Sha256(_) => Algorithm::Sha256,
        }
    }
}

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// True if `text` is an MD5 digest in hexadecimal (either case).
pub fn is_md5_hex(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What identifies one version of a file: the same key, the same bytes
/// (but see the module's notes on racy digests).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileKey {
    pub(crate) fn of(meta: &Metadata) -> FileKey {
        FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// True if the file had not changed for a whole clock tick when its
    /// hashing began at `started`, so that any later change gives it
    /// another key. The tick: 20 ms (the kernel's coarse clock moves by
    /// at most 10 ms), or 2 s on a file system whose times are whole
    /// seconds (or FAT's two).
    pub(crate) fn settled_before(&self, started: SystemTime) -> bool {
        let (secs, nanos) = self.ctime;
        let tick = if nanos == 0 && self.mtime.1 == 0 {
            Duration::from_secs(2)
        } else {
            Duration::from_millis(20)
        };
        let Ok(secs) = u64::try_from(secs) else {
            return false;
        };
        let changed = UNIX_EPOCH + Duration::new(secs, nanos.clamp(0, 999_999_999) as u32);
        changed + tick < started
    }
}

/// Most digests kept; past it the least recently used is dropped.
pub(crate) const CACHE_ENTRIES: usize = 4096;

/// The digests known for one file version.
#[derive(Debug, Default)]
struct Entry {
    hex: [Option<String>; 3],
    used: u64,
}

#[derive(Debug, Default)]
struct Cache {
    entries: HashMap<FileKey, Entry>,
    clock: u64,
}

/// State shared by every session of one server: the digest cache and the
/// count of hash computations running.
#[derive(Debug, Default)]
pub(crate) struct Digests {
    cache: Mutex<Cache>,
    running: AtomicUsize,
}

impl Digests {
    /// The digest of the file version `key` with `algorithm`, if known.
    pub(crate) fn get(&self, key: &FileKey, algorithm: Algorithm) -> Option<String> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.clock += 1;
        let clock = cache.clock;
        let entry = cache.entries.get_mut(key)?;
        let hex = entry.hex[algorithm.index()].clone()?;
        entry.used = clock;
        Some(hex)
    }

    /// Remembers `hex`, the digest of the file version `key`, whose
    /// hashing began at `started`, unless it is racy (see the module).
    /// Returns whether it was kept.
    pub(crate) fn put(
        &self,
        key: FileKey,
        algorithm: Algorithm,
        hex: &str,
        started: SystemTime,
    ) -> bool {
        if !key.settled_before(started) {
            return false;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.clock += 1;
        let clock = cache.clock;
        if !cache.entries.contains_key(&key) && cache.entries.len() >= CACHE_ENTRIES {
            let oldest = cache
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                cache.entries.remove(&oldest);
            }
        }
        let entry = cache.entries.entry(key).or_default();
        entry.hex[algorithm.index()] = Some(hex.to_string());
        entry.used = clock;
        true
    }

    /// A place among the at most `max` hash computations running at once,
    /// or `None` if all are taken.
    pub(crate) fn permit(self: &Arc<Self>, max: usize) -> Option<Permit> {
        let mut running = self.running.load(Ordering::Relaxed);
        loop {
            if running >= max {
                return None;
            }
            match self.running.compare_exchange_weak(
                running,
                running + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(Permit {
                        digests: Arc::clone(self),
                    })
                }
                Err(now) => running = now,
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.cache.lock().unwrap().entries.len()
    }
}

/// One running hash computation; counted until dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    digests: Arc<Digests>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.digests.running.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(algorithm: Algorithm, bytes: &[u8]) -> String {
        let mut h = algorithm.hasher();
        h.update(bytes);
        h.hex()
    }

    #[test]
    fn known_digests() {
        // The tutorial's own example.
        assert_eq!(
            digest(Algorithm::Md5, b"wangzy"),
            "2ea763badcd027b0087306a3ef3ef95f"
        );
        assert_eq!(
            digest(Algorithm::Md5, b""),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(
            digest(Algorithm::Sha1, b"abc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            digest(Algorithm::Sha256, b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn names() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::parse(a.name()), Some(a));
            assert_eq!(a.hasher().algorithm(), a);
        }
        assert_eq!(Algorithm::parse("md5"), Some(Algorithm::Md5));
        assert_eq!(Algorithm::parse("SHA-512"), None);
        assert!(is_md5_hex("2EA763badcd027b0087306a3ef3ef95f"));
        assert!(!is_md5_hex("2ea763badcd027b0087306a3ef3ef95"));
        assert!(!is_md5_hex("2ea763badcd027b0087306a3ef3ef95g"));
    }

    fn key(ino: u64, ctime: SystemTime, nanos: bool) -> FileKey {
        let since = ctime.duration_since(UNIX_EPOCH).unwrap();
        let t = (
            since.as_secs() as i64,
            if nanos {
                since.subsec_nanos() as i64
            } else {
                0
            },
        );
        FileKey {
            dev: 1,
            ino,
            size: 10,
            mtime: t,
            ctime: t,
        }
    }

    #[test]
    fn racy_digests_are_not_cached() {
        let digests = Digests::default();
        let now = SystemTime::now();
        let fresh = key(1, now - Duration::from_millis(5), true);
        assert!(!digests.put(fresh, Algorithm::Md5, "aa", now));
        assert_eq!(digests.get(&fresh, Algorithm::Md5), None);
        let old = key(2, now - Duration::from_secs(1), true);
        assert!(digests.put(old, Algorithm::Md5, "bb", now));
        assert_eq!(digests.get(&old, Algorithm::Md5).as_deref(), Some("bb"));
        assert_eq!(digests.get(&old, Algorithm::Sha1), None);
        // Whole-second times: two seconds of margin.
        let coarse = key(3, now - Duration::from_secs(1), false);
        assert!(!digests.put(coarse, Algorithm::Md5, "cc", now));
        let coarse = key(3, now - Duration::from_secs(5), false);
        assert!(digests.put(coarse, Algorithm::Md5, "cc", now));
    }

    #[test]
    fn the_cache_is_bounded_and_drops_the_least_recently_used() {
        let digests = Digests::default();
        let now = SystemTime::now();
        let old = now - Duration::from_secs(60);
        for ino in 0..CACHE_ENTRIES as u64 {
            assert!(digests.put(key(ino, old, true), Algorithm::Md5, "x", now));
        }
        // Entry 0 is used, so entry 1 is the least recently used.
        assert!(digests.get(&key(0, old, true), Algorithm::Md5).is_some());
        digests.put(key(9_999_999, old, true), Algorithm::Md5, "y", now);
        assert_eq!(digests.len(), CACHE_ENTRIES);
        assert!(digests.get(&key(0, old, true), Algorithm::Md5).is_some());
        assert!(digests.get(&key(1, old, true), Algorithm::Md5).is_none());
    }

    #[test]
    fn permits_are_bounded_and_given_back() {
        let digests = Arc::new(Digests::default());
        let a = digests.permit(2).unwrap();
        let b = digests.permit(2).unwrap();
        assert!(digests.permit(2).is_none());
        drop(a);
        let c = digests.permit(2).unwrap();
        assert!(digests.permit(2).is_none());
        drop((b, c));
        assert!(digests.permit(0).is_none());
        assert!(digests.permit(1).is_some());
    }
}
