//! A hasher for maps keyed by numbers this process chose: inode numbers,
//! file handles, the addresses of SQL constants.
//!
//! The standard `HashMap` hashes with SipHash, which resists keys picked
//! to collide, at about 20 instructions a word; the filesystem core looks
//! up its state by inode several times per request, and those lookups
//! were 2-3% of a small file's create and unlink in the core
//! (docs/MEASUREMENTS.md). Inode numbers and handles are assigned by the
//! store and the core, not by whoever makes the requests, and a
//! multiply-rotate per word (rustc's FxHash) spreads sequential numbers
//! well enough for hashbrown's tables.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` keyed by numbers this process assigns.
pub type NumberMap<K, V> = HashMap<K, V, BuildHasherDefault<NumberHasher>>;
/// A `HashSet` of numbers this process assigns.
pub type NumberSet<K> = HashSet<K, BuildHasherDefault<NumberHasher>>;

/// FxHash: one rotate, xor and multiply per word.
#[derive(Debug, Default, Clone, Copy)]
pub struct NumberHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for NumberHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(SEED);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sequential inode numbers land in distinct buckets of a small table:
    /// hashbrown takes the top 7 bits for its control bytes and the low
    /// bits for the bucket, and both must vary.
    #[test]
    fn sequential_numbers_spread() {
        let hash = |n: u64| {
            let mut h = NumberHasher::default();
            h.write_u64(n);
            h.finish()
        };
        let low: NumberSet<u64> = (0..1024u64).map(|n| hash(n) & 1023).collect();
        let top: NumberSet<u64> = (0..1024u64).map(|n| hash(n) >> 57).collect();
        assert!(low.len() > 600, "low bits: {} of 1024 distinct", low.len());
        assert_eq!(top.len(), 128, "top 7 bits take every value");
        let mut map: NumberMap<u64, u64> = NumberMap::default();
        for n in 0..100_000u64 {
            map.insert(n, n * 2);
        }
        assert!((0..100_000u64).all(|n| map.get(&n) == Some(&(n * 2))));
    }
}
