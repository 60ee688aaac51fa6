//! Mixing in the logistic domain and secondary estimation, integer only.
//!
//! A [`Mixer`] outputs `squash(sum w_i x_i)` with the weight vector chosen
//! by a small context and trains it online toward each coded bit; an
//! [`Apm`] refines a probability in a context by interpolating between 33
//! learned points along the stretch axis.

use crate::mix::squash::{squash, STRETCH_MAX};

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
    /// Errors (in 1/65536) below this leave the weights as they are (0:
    /// every error trains, as in payload versions 1 and 2).
    skip: i32,
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
            skip: 0,
        }
    }

    /// The mixer, leaving its weights as they are after an error below
    /// `skip` (in 1/65536).
    pub fn skipping(mut self, skip: i32) -> Mixer {
        self.skip = skip;
        self
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
        if err.abs() < self.skip {
            return;
        }
        let e = i64::from(err) * i64::from(self.rate);
        let w = &mut self.weights[self.base..self.base + self.n];
        for (w, &x) in w.iter_mut().zip(x) {
            let dw = (i64::from(x) * e) >> 20;
            *w = (i64::from(*w) + dw).clamp(-i64::from(WEIGHT_MAX), i64::from(WEIGHT_MAX)) as i32;
        }
    }
}
