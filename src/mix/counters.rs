//! Adaptive bit probabilities: a counter per context, and order-k byte
//! context models built from them.
//!
//! A counter is a probability that learns from the bits it sees: 22 bits of
//! probability and a 10-bit count, packed in a `u32` (`p << 10 | n`). The
//! step size is `1 / (n + 1.5)` while `n` is below the limit, then stays
//! there: fast to learn a new context, slow to forget a settled one.

use super::squash::stretch;

const P_BITS: u32 = 22;
/// Half: a context never seen predicts nothing.
pub const COUNTER_INIT: u32 = (1 << (P_BITS - 1)) << 10;

/// `65536 / (n + 1.5)`, for the counts a counter can hold.
static RATE: [u32; 1024] = build_rates();

const fn build_rates() -> [u32; 1024] {
    let mut t = [0u32; 1024];
    let mut n = 0;
    while n < 1024 {
        t[n] = 131072 / (2 * n as u32 + 3);
        n += 1;
    }
    t
}

/// The counter's probability of a 1, 16-bit.
#[inline]
pub fn p16(slot: u32) -> u32 {
    slot >> (10 + P_BITS - 16)
}

/// Moves the counter toward `bit`, counting up to `limit` (< 1024).
#[inline]
pub fn update(slot: &mut u32, bit: u32, limit: u32) {
    let p = (*slot >> 10) as i64;
    let n = *slot & 1023;
    let target = if bit != 0 { (1i64 << P_BITS) - 1 } else { 0 };
    let p = p + (((target - p) * i64::from(RATE[n as usize])) >> 16);
    let n = if n < limit { n + 1 } else { limit };
    *slot = ((p as u32) << 10) | n;
}

/// The byte orders the context models use: the last k bytes of the chunk.
pub const ORDERS: [usize; 7] = [1, 2, 3, 4, 5, 6, 8];
/// Context models: the orders, then the word models (the letters of the
/// current word, case-folded, and of the word pair: text repeats words
/// wherever they fall).
pub const MODELS: usize = ORDERS.len() + 2;
/// Adaptation limit of the context counters: contexts in a block drift.
const LIMIT: u32 = 15;

/// Order-k context models: one hashed table of counters per order, indexed
/// by the hash of the context bytes and the bits of the current byte seen
/// so far.
#[derive(Clone)]
pub struct ContextModels {
    tables: Vec<Vec<u32>>,
    shift: u32,
    /// Per order, the hash of the current byte's context.
    base: [u32; MODELS],
    /// Per order, the counter coding the current bit.
    slot: [usize; MODELS],
    /// How many orders have seen the current bit's context before.
    seen: usize,
}

impl ContextModels {
    /// Tables sized for a block of `block_len` bytes (eight bits each),
    /// between 2^12 and 2^20 counters per order.
    pub fn new(block_len: usize) -> ContextModels {
        let bits = (block_len.max(1) * 8)
            .next_power_of_two()
            .trailing_zeros()
            .clamp(12, 20);
        ContextModels {
            tables: (0..MODELS).map(|_| vec![COUNTER_INIT; 1 << bits]).collect(),
            shift: 32 - bits,
            base: [0; MODELS],
            slot: [0; MODELS],
            seen: 0,
        }
    }

    /// Sets the contexts for the next byte from `history`, the bytes of its
    /// chunk before it.
    pub fn begin_byte(&mut self, history: &[u8]) {
        for (o, &k) in ORDERS.iter().enumerate() {
            let n = k.min(history.len());
            // A context cut short by the chunk start is its own context.
            let mut h = (k as u32 + 1).wrapping_mul(0x9E37_79B1) ^ ((n as u32) << 24);
            for &b in &history[history.len() - n..] {
                h = (h.rotate_left(7) ^ u32::from(b)).wrapping_mul(0x0100_0193);
            }
            self.base[o] = h;
        }
        // The current word, then the one before it.
        let mut words = history.rsplit(|b| !b.is_ascii_alphabetic());
        let word_hash = |w: &[u8], seed: u32| {
            w.iter().fold(seed, |h, &b| {
                (h ^ u32::from(b.to_ascii_lowercase())).wrapping_mul(0x0100_0193)
            })
        };
        let current = words.next().unwrap_or(&[]);
        let h = word_hash(current, 0x2545_F491);
        self.base[ORDERS.len()] = h;
        let previous = words.find(|w| !w.is_empty()).unwrap_or(&[]);
        self.base[ORDERS.len() + 1] = word_hash(previous, h.wrapping_mul(0x9E37_79B1));
    }

    /// Writes the stretched predictions for the next bit, `c0` being the
    /// bits of the byte so far behind a leading 1.
    #[inline]
    pub fn predict(&mut self, c0: u32, out: &mut [i32]) {
        self.seen = 0;
        for (o, x) in out.iter_mut().enumerate().take(MODELS) {
            let h = (self.base[o] ^ c0.wrapping_mul(0x2F0F_3C85)).wrapping_mul(0x9E37_79B1);
            let slot = (h >> self.shift) as usize;
            self.slot[o] = slot;
            let counter = self.tables[o][slot];
            self.seen += usize::from(counter & 1023 != 0);
            *x = stretch(p16(counter));
        }
    }

    /// How many orders have seen the current bit's context (after
    /// [`ContextModels::predict`]).
    #[inline]
    pub fn seen(&self) -> usize {
        self.seen
    }

    #[inline]
    pub fn update(&mut self, bit: u32) {
        for o in 0..MODELS {
            update(&mut self.tables[o][self.slot[o]], bit, LIMIT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_learns_and_stays_in_range() {
        let mut c = COUNTER_INIT;
        assert_eq!(p16(c), 32768);
        for _ in 0..2000 {
            update(&mut c, 1, 30);
        }
        assert!(p16(c) > 65000);
        // At its limit a counter still follows a change within a few
        // dozen bits.
        for _ in 0..200 {
            update(&mut c, 0, 30);
        }
        assert!(p16(c) < 500);
    }
}
