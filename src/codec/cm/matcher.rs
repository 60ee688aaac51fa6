//! The match model: finds the most recent earlier occurrence of the last
//! [`MIN_LEN`] bytes, checks that it really matches (hashes collide), and
//! predicts the byte that followed it, bit by bit, with a confidence learnt
//! per match length and predicted bit.

use super::state::{entry, train};
use crate::mix::squash::stretch;

/// Bytes hashed to find a candidate, and the shortest match used.
pub const MIN_LEN: usize = 6;
/// How far back a candidate is verified (the match then grows as it
/// continues): bounds the work per byte.
const VERIFY: usize = 32;
/// Length buckets the confidence is learnt for.
const BUCKETS: usize = 32;
/// Buckets of a recovering match: misses so far (1-4) x bytes since.
const RECOVER_BUCKETS: usize = 64;
/// A match that mispredicts keeps its place (the data may have changed in
/// place: a counter in a log line) for this many misses before it is
/// dropped; it is recovered once this many bytes agree again.
const MAX_MISSES: u32 = 8;
const RECOVERED: usize = 16;

#[derive(Clone)]
pub struct MatchModel {
    /// Hash of `MIN_LEN` bytes -> position (in the history) of the byte
    /// that followed them, 0 for none.
    table: Vec<u32>,
    mask: usize,
    /// Position of the predicted byte, and the length matched before it.
    ptr: usize,
    len: usize,
    /// The predicted byte behind a leading 1, while it still agrees with
    /// the bits coded so far; 0 otherwise.
    expected: u32,
    hits: Vec<u32>,
    slot: usize,
    /// Misses since the match last ran `RECOVERED` bytes clean (0: a
    /// clean match); `len` then counts the bytes since the last miss.
    miss: u32,
    /// Whether a match survives a miss (payload version 2); in version 1
    /// a miss ends it.
    recover: bool,
}

fn hash(b: &[u8]) -> usize {
    let mut h = 0u64;
    for &c in b {
        h = (h ^ u64::from(c)).wrapping_mul(0x0100_0000_01B3);
    }
    (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize
}

/// The confidence bucket of a match length.
pub fn bucket(len: usize) -> usize {
    if len < 16 {
        len
    } else {
        (16 + (len - 16) / 8).min(BUCKETS - 1)
    }
}

impl MatchModel {
    /// `1 << bits` table entries; `recover`: see the field.
    pub fn new(bits: u32, recover: bool) -> MatchModel {
        MatchModel {
            table: vec![0; 1 << bits],
            mask: (1 << bits) - 1,
            ptr: 0,
            len: 0,
            expected: 0,
            hits: vec![entry(49152); (BUCKETS + if recover { RECOVER_BUCKETS } else { 0 }) * 2],
            slot: 0,
            miss: 0,
            recover,
        }
    }

    /// Length of the current match (0 for none).
    #[inline]
    pub fn len(&self) -> usize {
        if self.expected == 0 {
            0
        } else {
            self.len
        }
    }

    /// True while the match is recovering from a miss.
    #[inline]
    pub fn recovering(&self) -> bool {
        self.miss > 0 && self.expected != 0
    }

    /// The confidence slot of the current bit's prediction plus one, or 0
    /// when the model predicts nothing.
    #[inline]
    pub fn context(&self) -> usize {
        if self.expected == 0 {
            0
        } else {
            self.slot + 1
        }
    }

    /// After a byte was appended to `hist`: extends or drops the match,
    /// looks for a new one, and records the position.
    pub fn end_byte(&mut self, hist: &[u8]) {
        let n = hist.len();
        let active = self.len > 0 || self.miss > 0;
        if active && hist[self.ptr] == hist[n - 1] {
            self.len += 1;
            self.ptr += 1;
            if self.miss > 0 && self.len >= RECOVERED {
                self.miss = 0;
            }
        } else if self.recover && active && self.miss < MAX_MISSES && self.ptr + 1 < n - 1 {
            self.miss += 1;
            self.len = 0;
            self.ptr += 1;
        } else {
            self.len = 0;
            self.miss = 0;
        }
        if n >= MIN_LEN {
            let h = hash(&hist[n - MIN_LEN..]) & self.mask;
            if self.miss > 0 || self.len == 0 {
                let cand = self.table[h] as usize;
                if cand > 0 {
                    let limit = cand.min(VERIFY);
                    let mut l = 0;
                    while l < limit && hist[cand - 1 - l] == hist[n - 1 - l] {
                        l += 1;
                    }
                    if l >= MIN_LEN && (self.miss == 0 || (l > self.len && cand != self.ptr)) {
                        self.len = l;
                        self.ptr = cand;
                        self.miss = 0;
                    }
                }
            }
            self.table[h] = n as u32;
        }
        self.expected = if self.len > 0 || self.miss > 0 {
            u32::from(hist[self.ptr]) | 256
        } else {
            0
        };
    }

    /// Inputs for the next bit: the learnt confidence, signed by the
    /// predicted bit, and a fixed vote growing with the length; zeros when
    /// there is no prediction. `c0` is the byte's bits so far behind a
    /// leading 1, `bitpos` their count.
    #[inline]
    pub fn predict(&mut self, c0: u32, bitpos: u32, out: &mut [i32]) {
        let Some(bit) = expected_bit(self.expected, c0, bitpos) else {
            self.expected = 0;
            out[..2].fill(0);
            return;
        };
        self.slot = if self.miss == 0 {
            bucket(self.len)
        } else {
            BUCKETS + (self.miss.min(4) as usize - 1) * 16 + self.len.min(15)
        } * 2
            + bit as usize;
        let st = stretch(self.hits[self.slot] >> 16);
        signed_inputs(bit, st, (self.len.min(32) as i32) * 32, out);
    }

    #[inline]
    pub fn update(&mut self, c0: u32, bitpos: u32, bit: u32) {
        if let Some(expected) = expected_bit(self.expected, c0, bitpos) {
            train(&mut self.hits[self.slot], u32::from(expected == bit), 1023);
        }
    }
}

/// The bit at `bitpos` of the byte a model predicts (`expected`, behind a
/// leading 1; 0 when it predicts nothing), while the byte's bits so far
/// (`c0`, behind a leading 1) still agree with it.
#[inline]
pub(super) fn expected_bit(expected: u32, c0: u32, bitpos: u32) -> Option<u32> {
    (expected != 0 && expected >> (8 - bitpos) == c0).then(|| (expected >> (7 - bitpos)) & 1)
}

/// A model's two mixer inputs for a predicted `bit`: its confidence `st`
/// (stretched) and a `vote`, both negated when the predicted bit is 0.
#[inline]
pub(super) fn signed_inputs(bit: u32, st: i32, vote: i32, out: &mut [i32]) {
    let sign = if bit == 1 { 1 } else { -1 };
    out[0] = sign * st;
    out[1] = sign * vote;
}
