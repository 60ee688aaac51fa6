//! A gated linear mixer in the logistic domain (as in PAQ): the output is
//! `squash(sum w_i * x_i)`, with a weight vector chosen by a small context,
//! trained online by gradient descent on coding cost. Integer arithmetic
//! throughout, so the encoder and the decoder stay identical.

use super::squash::{squash, STRETCH_MAX};

/// Weights have 16 fractional bits: 65536 is 1.0.
const ONE: i32 = 1 << 16;
/// Learning rate as a right shift of `input * error` (error in 1/65536).
const LEARNING_SHIFT: u32 = 15;
/// Weights are kept within +-WEIGHT_MAX so nothing can overflow.
const WEIGHT_MAX: i32 = 16 * ONE;

#[derive(Clone)]
pub struct Mixer {
    inputs: usize,
    weights: Vec<i32>,
    /// The weight vector and output of the last mix, for the update.
    set: usize,
    p: u32,
}

impl Mixer {
    /// A mixer of `inputs` inputs and `sets` weight vectors, each starting
    /// as `initial` (which gives each input's starting weight).
    pub fn new(inputs: usize, sets: usize, initial: &[i32]) -> Mixer {
        debug_assert_eq!(initial.len(), inputs);
        Mixer {
            inputs,
            weights: (0..sets).flat_map(|_| initial.iter().copied()).collect(),
            set: 0,
            p: 1 << 15,
        }
    }

    /// Mixes the inputs `x` with weight vector `set`: a 16-bit probability.
    #[inline]
    pub fn mix(&mut self, x: &[i32], set: usize) -> u32 {
        self.set = set * self.inputs;
        let w = &self.weights[self.set..self.set + self.inputs];
        let dot: i64 = w
            .iter()
            .zip(x)
            .map(|(&w, &x)| i64::from(w) * i64::from(x))
            .sum();
        let st = (dot >> 16).clamp(-i64::from(STRETCH_MAX), i64::from(STRETCH_MAX)) as i32;
        self.p = squash(st);
        self.p
    }

    /// Trains the last weight vector used, on the same inputs `x`, toward
    /// the coded bit.
    #[inline]
    pub fn update(&mut self, x: &[i32], bit: u32) {
        let err = ((bit as i32) << 16) - self.p as i32;
        let w = &mut self.weights[self.set..self.set + self.inputs];
        for (w, &x) in w.iter_mut().zip(x) {
            let dw = (i64::from(x) * i64::from(err)) >> LEARNING_SHIFT;
            *w = (i64::from(*w) + dw).clamp(-i64::from(WEIGHT_MAX), i64::from(WEIGHT_MAX)) as i32;
        }
    }
}

/// 1.0 as a weight.
pub const WEIGHT_ONE: i32 = ONE;

/// An adaptive probability map (secondary estimation, as in PAQ): refines a
/// probability given a context, by interpolating between 33 learned
/// points along the stretch axis, one row of points per context.
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

    /// The refined probability of `p` (16-bit) in context `ctx`.
    #[inline]
    pub fn refine(&mut self, p: u32, ctx: usize) -> u32 {
        self.refine_stretched(super::squash::stretch(p), ctx)
    }

    /// The refined probability of `st` (a stretched probability, clamped to
    /// the stretch range) in context `ctx`.
    #[inline]
    pub fn refine_stretched(&mut self, st: i32, ctx: usize) -> u32 {
        let s = st.clamp(-STRETCH_MAX, STRETCH_MAX) + 2048;
        let (lo, w) = ((s >> 7) as usize, (s & 127) as u32);
        let base = ctx * 33 + lo;
        self.idx = base + usize::from(w >= 64);
        let p = (u64::from(self.t[base]) * u64::from(128 - w)
            + u64::from(self.t[base + 1]) * u64::from(w))
            >> 11;
        (p as u32).clamp(1, 65535)
    }

    /// Asks the CPU to start loading context `ctx`'s row (132 bytes), so
    /// that a large map's cache miss overlaps the work before the
    /// `refine_stretched` that reads it. Changes no result.
    #[inline]
    pub fn prefetch(&self, ctx: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            let row = (ctx * 33).min(self.t.len().saturating_sub(33));
            for line in [0, 16, 32] {
                // SAFETY: inside `t` (a map has at least one 33-entry row),
                // and a prefetch never faults anyway.
                unsafe {
                    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                    _mm_prefetch::<_MM_HINT_T0>(self.t.as_ptr().add(row + line).cast());
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = ctx;
    }

    /// Trains the point nearest the last probability refined.
    #[inline]
    pub fn update(&mut self, bit: u32) {
        let target = if bit != 0 { (65535u32 << 4) as i64 } else { 0 };
        let v = &mut self.t[self.idx];
        *v = (i64::from(*v) + ((target - i64::from(*v)) >> self.rate)) as u32;
    }
}
