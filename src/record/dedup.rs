//! The de-duplication key of a row: `(ts, line_hash, occ)`.
//!
//! `line_hash` is xxh3-64 of the host and the netfilter message (the time is a column of the key
//! already). `occ` numbers identical lines (same time, host and message) in the order a stream
//! delivers them, so a genuinely repeated packet gets 0, 1, 2... while the same stream read again
//! (a re-import, a rotated copy, a batch rsyslog sends twice) produces the same keys and the
//! unique index turns them away. ipta-ingest and import read lines in the same rendering (the
//! shipped rsyslog template writes the file exactly as it feeds omprog), so they agree too.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::record::{Record, Timestamp};

/// Stable across versions and machines: it is stored.
pub fn line_hash(host: Option<&str>, message: &[u8]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(host.unwrap_or("").as_bytes());
    h.update(&[0]);
    h.update(message);
    h.digest()
}

/// The key of a record's line.
pub fn record_hash(r: &Record<'_>) -> u64 {
    line_hash(r.host, r.message)
}

/// Keys are hashes already: hashing them again would only cost time.
#[derive(Default)]
struct IdentityHasher(u64);
impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// How far back (in event time) identical lines are still counted as the same stream's
/// repeats. Lines of one stream arrive in time order give or take rsyslog's queueing.
const WINDOW_US: i64 = 15 * 60 * 1_000_000;

/// Numbers identical lines of one stream. Memory stays bounded: entries older than the window
/// behind the newest time seen are pruned.
#[derive(Default)]
pub struct Occurrences {
    seen: HashMap<u64, (Timestamp, u32), BuildHasherDefault<IdentityHasher>>,
    newest: Timestamp,
    next_prune: usize,
}

impl Occurrences {
    pub fn new() -> Self {
        Occurrences {
            next_prune: 4096,
            ..Default::default()
        }
    }

    fn slot(ts: Timestamp, hash: u64) -> u64 {
        hash ^ (ts.0 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// The occurrence number of this line: how many identical lines came before it.
    pub fn next(&mut self, ts: Timestamp, hash: u64) -> u32 {
        if ts > self.newest {
            self.newest = ts;
        }
        let e = self.seen.entry(Self::slot(ts, hash)).or_insert((ts, 0));
        let occ = e.1;
        e.1 += 1;
        if self.seen.len() >= self.next_prune {
            let cutoff = Timestamp(self.newest.0 - WINDOW_US);
            self.seen.retain(|_, (t, _)| *t >= cutoff);
            self.next_prune = (self.seen.len() * 2).max(4096);
        }
        occ
    }

    /// Takes back one `next` for this line (its batch was rolled back and will come again).
    pub fn undo(&mut self, ts: Timestamp, hash: u64) {
        if let Some(e) = self.seen.get_mut(&Self::slot(ts, hash)) {
            e.1 = e.1.saturating_sub(1);
        }
    }

    pub fn clear(&mut self) {
        self.seen.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_lines_are_numbered_and_undo_rewinds() {
        let mut o = Occurrences::new();
        let h = line_hash(Some("fw1"), b"IPT: DROP IN=eth0");
        let t = Timestamp(1_000_000);
        assert_eq!(o.next(t, h), 0);
        assert_eq!(o.next(t, h), 1);
        assert_eq!(o.next(Timestamp(2_000_000), h), 0);
        o.undo(t, h);
        assert_eq!(o.next(t, h), 1);
    }

    #[test]
    fn hash_separates_host_and_message() {
        assert_ne!(line_hash(Some("a"), b"bc"), line_hash(Some("ab"), b"c"));
        assert_eq!(line_hash(None, b"x"), line_hash(Some(""), b"x"));
    }

    #[test]
    fn memory_is_pruned_behind_the_window() {
        let mut o = Occurrences::new();
        for i in 0..100_000i64 {
            o.next(Timestamp(i * 1_000_000), i as u64);
        }
        assert!(o.seen.len() < 20_000, "{}", o.seen.len());
    }
}
