//! The match model: finds the last place in the block where the current
//! context occurred and predicts the byte that followed it there. This is
//! what brings a block's long repeats (a bible's formulas, a table's
//! recurring fields) that a model with a 256-byte view cannot see.
//!
//! Only bytes already coded may be used, and in a lockstep decoder those
//! are not a prefix of the block: the caller says, per chunk, how many of
//! its bytes are known.

use super::counters;
use super::squash::stretch;

/// Context bytes hashed to find a candidate; also the shortest match used.
pub const MIN_LEN: usize = 6;
/// Longest match length the model distinguishes.
const MAX_LEN: usize = 64;

/// Per chunk: where its current match points (block offset of the predicted
/// byte) and how many bytes it has matched.
#[derive(Clone, Copy, Default)]
struct Cursor {
    at: usize,
    len: usize,
}

#[derive(Clone)]
pub struct MatchModel {
    chunk_len: usize,
    /// Hash of `MIN_LEN` bytes -> block offset + 1 of the byte that followed.
    table: Vec<u32>,
    shift: u32,
    cursors: Vec<Cursor>,
    /// The predicted byte for the current byte, if any, and its length bucket.
    expected: Option<(u8, usize)>,
    /// Per length bucket and bit position: how often the predicted bit was
    /// right.
    hits: Vec<u32>,
    hit_slot: usize,
    /// The predicted bit for the current bit, when the prediction still holds.
    bit: Option<u32>,
}

fn hash(bytes: &[u8]) -> u32 {
    let mut h = 0x811C_9DC5u32;
    for &b in bytes {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h.wrapping_mul(0x9E37_79B1)
}

/// Buckets of match length: short matches are often wrong, long ones
/// rarely.
fn bucket(len: usize) -> usize {
    match len {
        0..=15 => len,
        16..=31 => 16 + (len - 16) / 4,
        _ => 20 + (len.min(MAX_LEN) - 32) / 8,
    }
}
const BUCKETS: usize = 25;

impl MatchModel {
    pub fn new(block_len: usize, chunk_len: usize) -> MatchModel {
        let bits = block_len
            .max(1)
            .next_power_of_two()
            .trailing_zeros()
            .clamp(10, 22);
        MatchModel {
            chunk_len,
            table: vec![0; 1 << bits],
            shift: 32 - bits,
            cursors: vec![Cursor::default(); block_len.div_ceil(chunk_len.max(1))],
            expected: None,
            hits: vec![super::counters::COUNTER_INIT; BUCKETS * 8],
            hit_slot: 0,
            bit: None,
        }
    }

    /// Makes room for `chunks` chunks in all (a primed model copied for a
    /// block of its own length).
    pub fn resize_chunks(&mut self, chunks: usize) {
        self.cursors.resize(chunks, Cursor::default());
    }

    /// Finds the prediction for the byte at `pos` of `chunk`. `data` is the
    /// block, `known(c)` how many bytes of chunk `c` are coded.
    pub fn begin_byte(
        &mut self,
        chunk: usize,
        pos: usize,
        data: &[u8],
        known: impl Fn(usize) -> usize,
    ) {
        let c = self.chunk_len;
        let here = chunk * c + pos;
        let mut cur = self.cursors[chunk];
        // A match continues only onto a byte already coded.
        if cur.len > 0 && (cur.at % c >= known(cur.at / c)) {
            cur.len = 0;
        }
        if cur.len == 0 && pos >= MIN_LEN {
            let h = hash(&data[here - MIN_LEN..here]) >> self.shift;
            let cand = self.table[h as usize] as usize;
            if cand > 0 {
                let at = cand - 1;
                // Verify (the hash may collide) and measure backwards, both
                // sides within their chunks.
                let limit = pos.min(at % c).min(MAX_LEN);
                let mut len = 0;
                while len < limit && data[here - 1 - len] == data[at - 1 - len] {
                    len += 1;
                }
                if len >= MIN_LEN {
                    cur = Cursor { at, len };
                }
            }
        }
        self.cursors[chunk] = cur;
        self.expected = (cur.len > 0).then(|| (data[cur.at], bucket(cur.len)));
    }

    /// The stretched prediction for the next bit (0 when there is none),
    /// `c0` being the byte's bits so far behind a leading 1 and `bit` their
    /// count.
    #[inline]
    pub fn predict(&mut self, c0: u32, bitpos: u32) -> i32 {
        self.bit = None;
        let Some((byte, b)) = self.expected else {
            return 0;
        };
        let e = u32::from(byte) | 256;
        if e >> (8 - bitpos) != c0 {
            return 0;
        }
        let bit = (e >> (7 - bitpos)) & 1;
        self.bit = Some(bit);
        self.hit_slot = b * 8 + bitpos as usize;
        let st = stretch(counters::p16(self.hits[self.hit_slot]));
        if bit == 1 {
            st
        } else {
            -st
        }
    }

    /// The length bucket of the current prediction, 0 when none (selects the
    /// mixer's weights).
    #[inline]
    pub fn strength(&self) -> usize {
        match self.expected {
            None => 0,
            Some((_, b)) if b < 16 => 1,
            Some((_, b)) if b < 20 => 2,
            _ => 3,
        }
    }

    #[inline]
    pub fn update(&mut self, bit: u32) {
        if let Some(expected) = self.bit {
            counters::update(
                &mut self.hits[self.hit_slot],
                u32::from(expected == bit),
                255,
            );
        }
    }

    /// Records the coded byte at `pos` of `chunk` (already in `data`).
    pub fn end_byte(&mut self, chunk: usize, pos: usize, data: &[u8]) {
        let c = self.chunk_len;
        let here = chunk * c + pos;
        let cur = &mut self.cursors[chunk];
        if cur.len > 0 {
            if data[cur.at] == data[here] && (cur.at + 1) % c != 0 {
                cur.at += 1;
                cur.len += 1;
            } else {
                cur.len = 0;
            }
        }
        if pos >= MIN_LEN {
            let h = hash(&data[here - MIN_LEN..here]) >> self.shift;
            self.table[h as usize] = here as u32 + 1;
        }
    }
}
