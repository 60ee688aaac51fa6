//! Mixing in the logistic domain and secondary estimation, integer only.
//!
//! A [`Mixer`] outputs `squash(sum w_i x_i)` with the weight vector chosen
//! by a small context and trains it online toward each coded bit; an
//! [`Apm`] refines a probability in a context by interpolating between 33
//! learned points along the stretch axis.

use crate::mix::squash::{squash, stretch, STRETCH_MAX};

/// Weights have 16 fractional bits.
pub const ONE: i32 = 1 << 16;
const WEIGHT_MAX: i32 = 32 * ONE;

#[derive(Clone)]
pub struct Mixer {
    n: usize,
    weights: Vec<i32>,
    /// Learning rate: `dw = x * err * rate >> 20` (err in 1/65536).
    rate: i32,
    base: usize,
    p: u32,
}

impl Mixer {
    /// `sets` weight vectors of `n` inputs, each weight starting at `w0`.
    pub fn new(n: usize, sets: usize, w0: i32, rate: i32) -> Mixer {
        Mixer {
            n,
            weights: vec![w0; n * sets],
            rate,
            base: 0,
            p: 32768,
        }
    }

    /// Mixes `x` with weight vector `set`; returns the stretched output.
    #[inline]
    pub fn mix(&mut self, x: &[i32], set: usize) -> i32 {
        self.base = set * self.n;
        let w = &self.weights[self.base..self.base + self.n];
        let dot: i64 = w
            .iter()
            .zip(x)
            .map(|(&w, &x)| i64::from(w) * i64::from(x))
            .sum();
        let st = (dot >> 16).clamp(-i64::from(STRETCH_MAX), i64::from(STRETCH_MAX)) as i32;
        self.p = squash(st);
        st
    }

    /// Trains the last weight vector used toward `bit`.
    #[inline]
    pub fn update(&mut self, x: &[i32], bit: u32) {
        let err = ((bit as i32) << 16) - self.p as i32;
        let e = i64::from(err) * i64::from(self.rate);
        let w = &mut self.weights[self.base..self.base + self.n];
        for (w, &x) in w.iter_mut().zip(x) {
            let dw = (i64::from(x) * e) >> 20;
            *w = (i64::from(*w) + dw).clamp(-i64::from(WEIGHT_MAX), i64::from(WEIGHT_MAX)) as i32;
        }
    }
}

/// An adaptive probability map.
#[derive(Clone)]
pub struct Apm {
    t: Vec<u32>,
    idx: usize,
    rate: u32,
}

impl Apm {
    /// A map over `contexts` contexts, starting as the identity, learning at
    /// `1 / 2^rate`.
    pub fn new(contexts: usize, rate: u32) -> Apm {
        let row: Vec<u32> = (0..33).map(|j| squash((j - 16) * 128) << 4).collect();
        Apm {
            t: row.repeat(contexts),
            idx: 0,
            rate,
        }
    }

    /// The refined probability of `st` (stretched) in context `ctx`.
    #[inline]
    pub fn refine(&mut self, st: i32, ctx: usize) -> u32 {
        let s = st.clamp(-STRETCH_MAX, STRETCH_MAX) + 2048;
        let (lo, w) = ((s >> 7) as usize, (s & 127) as u32);
        let base = ctx * 33 + lo;
        self.idx = base + usize::from(w >= 64);
        let p = (u64::from(self.t[base]) * u64::from(128 - w)
            + u64::from(self.t[base + 1]) * u64::from(w))
            >> 11;
        (p as u32).clamp(1, 65535)
    }

    /// Trains the point nearest the last probability refined.
    #[inline]
    pub fn update(&mut self, bit: u32) {
        let target = if bit != 0 { 65535i64 << 4 } else { 0 };
        let v = &mut self.t[self.idx];
        *v = (i64::from(*v) + ((target - i64::from(*v)) >> self.rate)) as u32;
    }
}

/// `stretch` for the predictor's inputs.
#[inline]
pub fn st(p16: u32) -> i32 {
    stretch(p16)
}
