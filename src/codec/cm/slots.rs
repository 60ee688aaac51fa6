//! Hashed context slots: for each context and nibble of the byte, a
//! 16-byte bucket holding a check byte and the 15 bit-history states of the
//! nibble's binary tree (node 1 before any of its bits, nodes 2-3 after one,
//! 4-7 after two, 8-15 after three).
//!
//! A context hash picks bucket `i` and a check byte; the bucket is `i` or
//! `i ^ 1`, whichever holds the check byte. If neither does, the one whose
//! node 1 has seen fewer bits is cleared and given the check byte (a
//! young context yields to an old one).

use super::state;

pub const BUCKET: usize = 16;

#[derive(Clone)]
pub struct Slots {
    t: Vec<u8>,
    /// Buckets - 1 (a power of two minus one).
    mask: usize,
}

impl Slots {
    /// `1 << bits` buckets.
    pub fn new(bits: u32) -> Slots {
        Slots {
            t: vec![0; BUCKET << bits],
            mask: (1 << bits) - 1,
        }
    }

    /// Asks the CPU to start loading the bucket pair `find(h)` will look
    /// at. A predictor looks up ten tables of megabytes per nibble, each
    /// lookup a cache miss; prefetching them all before the first lookup
    /// overlaps the misses. Changes no result.
    #[inline]
    pub fn prefetch(&self, h: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            let i = (h as usize) & self.mask & !1;
            // SAFETY: the address is inside `t` (`i` and `i ^ 1` are
            // buckets of the table), and a prefetch never faults anyway.
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                _mm_prefetch::<_MM_HINT_T0>(self.t.as_ptr().add(i * BUCKET).cast());
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = h;
    }

    /// The byte offset of the bucket for context hash `h` (a 32-bit mix),
    /// claiming one if the context is new.
    #[inline]
    pub fn find(&mut self, h: u32) -> usize {
        let check = (h >> 24) as u8;
        let i = (h as usize) & self.mask;
        let a = i * BUCKET;
        if self.t[a] == check {
            return a;
        }
        let b = (i ^ 1) * BUCKET;
        if self.t[b] == check {
            return b;
        }
        let st = state::table();
        let seen = |o: usize| {
            let (n0, n1) = st.counts(self.t[o + 1]);
            n0 + n1
        };
        let victim = if seen(a) <= seen(b) { a } else { b };
        self.t[victim..victim + BUCKET].fill(0);
        self.t[victim] = check;
        victim
    }

    #[inline]
    pub fn get(&self, at: usize) -> u8 {
        self.t[at]
    }

    #[inline]
    pub fn set(&mut self, at: usize, s: u8) {
        self.t[at] = s;
    }
}
