//! Bit histories and the maps that turn them into probabilities.
//!
//! A context's slot holds one byte: a *state* standing for a pair of bit
//! counts `(n0, n1)` seen in that context, bounded so that there are fewer
//! than 256 pairs. After a bit `y`, `n_y` grows by one, and a large count of
//! the other bit is partly forgotten (`n > 2` becomes `(n + 2) / 2` below 6,
//! `n / 2` from 6), favouring recent data; `n_y` is then capped by a limit
//! that shrinks as the other count grows (40, 28, 20, 12, 8, then 6).
//!
//! The states are numbered in the order a breadth-first walk from `(0, 0)`
//! meets them, trying the bit 0 before the bit 1, so state 0 is the empty
//! history (a fresh slot is zero). docs/FORMAT.md relies on this numbering.
//!
//! A [`StateMap`] learns, per state (and per small context), the
//! probability that the next bit is 1: an indirect model that adapts to what
//! a history really predicts in this block.

use std::sync::OnceLock;

/// Number of states.
pub const STATES: usize = 191;

/// The state machine: successor per state and bit, and the counts.
pub struct StateTable {
    next: [[u8; 2]; 256],
    counts: [(u8, u8); 256],
}

fn cap(other: u32) -> u32 {
    match other {
        0 => 40,
        1 => 28,
        2 => 20,
        3 => 12,
        4 => 8,
        _ => 6,
    }
}

fn successor((n0, n1): (u32, u32), bit: u32) -> (u32, u32) {
    let (mut mine, mut other) = if bit == 0 { (n0, n1) } else { (n1, n0) };
    mine += 1;
    if other > 2 {
        other = if other < 6 {
            (other + 2) / 2
        } else {
            other / 2
        };
    }
    mine = mine.min(cap(other));
    if bit == 0 {
        (mine, other)
    } else {
        (other, mine)
    }
}

fn build() -> StateTable {
    let mut pairs: Vec<(u32, u32)> = vec![(0, 0)];
    let mut i = 0;
    while i < pairs.len() {
        for bit in 0..2 {
            let s = successor(pairs[i], bit);
            if !pairs.contains(&s) {
                pairs.push(s);
            }
        }
        i += 1;
    }
    assert_eq!(
        pairs.len(),
        STATES,
        "the state machine is part of the format"
    );
    let mut t = StateTable {
        next: [[0; 2]; 256],
        counts: [(0, 0); 256],
    };
    for (i, &p) in pairs.iter().enumerate() {
        t.counts[i] = (p.0 as u8, p.1 as u8);
        for bit in 0..2 {
            let s = successor(p, bit);
            t.next[i][bit as usize] = pairs.iter().position(|&q| q == s).unwrap() as u8;
        }
    }
    t
}

/// The state table, built once.
pub fn table() -> &'static StateTable {
    static TABLE: OnceLock<StateTable> = OnceLock::new();
    TABLE.get_or_init(build)
}

impl StateTable {
    #[inline]
    pub fn next(&self, state: u8, bit: u32) -> u8 {
        self.next[state as usize][bit as usize]
    }

    /// `(n0, n1)` of a state.
    #[inline]
    pub fn counts(&self, state: u8) -> (u32, u32) {
        let (a, b) = self.counts[state as usize];
        (u32::from(a), u32::from(b))
    }
}

/// `65536 / (n + 1.5)` for the adaptation counts of a map entry.
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

/// An adaptive probability per context: 22 bits of probability and a
/// 10-bit count in a `u32` (`p << 10 | n`), moving toward each bit by
/// `1 / (n + 1.5)` while `n` is below the map's limit.
#[derive(Clone)]
pub struct StateMap {
    t: Vec<u32>,
    limit: u32,
    idx: usize,
}

/// Moves entry `e` toward `bit` (its count capped at `limit`).
#[inline]
pub fn train(e: &mut u32, bit: u32, limit: u32) {
    let p = i64::from(*e >> 10);
    let n = *e & 1023;
    let target = if bit != 0 { (1i64 << 22) - 1 } else { 0 };
    let p = p + (((target - p) * i64::from(RATE[n as usize])) >> 16);
    let n = if n < limit { n + 1 } else { limit };
    *e = ((p as u32) << 10) | n;
}

/// An entry at probability `p16` (16-bit) with count 0.
#[inline]
pub const fn entry(p16: u32) -> u32 {
    (p16 << 6) << 10
}

impl StateMap {
    /// A map over `contexts` x 256 states; each state starts at what its
    /// counts say, `(n1 + 1/2) / (n0 + n1 + 1)`.
    pub fn new(contexts: usize, limit: u32) -> StateMap {
        let st = table();
        let row: Vec<u32> = (0..256)
            .map(|s| {
                let (n0, n1) = st.counts(s as u8);
                entry(((2 * n1 + 1) << 16) / (2 * (n0 + n1) + 2))
            })
            .collect();
        StateMap {
            t: row.repeat(contexts),
            limit,
            idx: 0,
        }
    }

    /// The probability (16-bit) of a 1 for `state` in context `ctx`.
    #[inline]
    pub fn p(&mut self, ctx: usize, state: u8) -> u32 {
        self.idx = ctx * 256 + state as usize;
        self.t[self.idx] >> 16
    }

    #[inline]
    pub fn update(&mut self, bit: u32) {
        train(&mut self.t[self.idx], bit, self.limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_machine_is_closed_and_starts_empty() {
        let t = table();
        assert_eq!(t.counts(0), (0, 0));
        for s in 0..STATES as u8 {
            for bit in 0..2 {
                assert!((t.next(s, bit) as usize) < STATES);
            }
        }
        // A run of ones climbs to the cap and stays.
        let mut s = 0u8;
        for _ in 0..100 {
            s = t.next(s, 1);
        }
        assert_eq!(t.counts(s), (0, 40));
        let s = t.next(s, 0);
        assert_eq!(t.counts(s), (1, 20));
    }
}
