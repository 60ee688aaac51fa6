//! Codes prediction residuals (and padding bytes) as binary decisions
//! through cm's arithmetic coder, each decision's probability mixed from
//! adaptive tables in the contexts a modality model supplies.
//!
//! A residual `e` is coded as its bucket `k` (the bit length of `|e|`) in
//! unary (`k > 0?`, `k > 1?`, ...), then for `k > 0` its sign and the `k -
//! 1` bits of `|e|` below the leading one, highest first. Every decision
//! has a node number (which question it answers); each of the [`CTX`]
//! contexts selects, with the node, one adaptive probability; a mixer
//! chosen by the node and a second chosen by `select` combine them; an
//! APM refines the result. docs/FORMAT.md ("media payload") specifies it.

use crate::codec::cm::arith::{Decoder, Encoder};
use crate::codec::cm::mixer::{Mixer, ONE};
use crate::codec::cm::state::{entry, train};
use crate::mix::mixer::Apm;
use crate::mix::squash::{squash, stretch};

use super::MediaError;

/// Contexts per decision of [`Tuning::FIRST`].
pub const CTX: usize = 6;
/// Most contexts a coder may take.
pub const MAX_CTX: usize = 16;
/// Nodes: unary 0..=24, sign 25, the top two mantissa bits 32..=131
/// (`32 + 4 k + partial`), lower mantissa bits 140..=163.
const NODES: usize = 168;
const NODE_SIGN: u32 = 25;
/// Values of `select` (the second mixer's and the APM's context).
pub const SELECTS: usize = 32;

/// How a coder learns. Part of the payload version: images (every
/// version) and audio before version 3 use [`Tuning::FIRST`].
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// Contexts per decision (at most [`MAX_CTX`]), and log2 of each one's
    /// table.
    pub contexts: usize,
    pub table_bits: u32,
    /// Adaptation limit of the tables (higher: slower, steadier).
    pub limit: u32,
    /// The first two mixers' learning rate, and each input's first weight.
    pub mixer_rate: i32,
    pub first_weight: i32,
}

impl Tuning {
    pub const FIRST: Tuning = Tuning {
        contexts: CTX,
        table_bits: 18,
        limit: 127,
        mixer_rate: 48,
        first_weight: ONE / 4,
    };
}

/// An arithmetic coder seen from the model: it codes `bit` (encoder) or
/// returns the decoded bit (decoder, `bit` ignored) with probability `p1`
/// (16-bit) of a 1.
pub trait BitIo {
    fn code(&mut self, bit: u32, p1: u32) -> Result<u32, MediaError>;
}

impl BitIo for Encoder {
    #[inline]
    fn code(&mut self, bit: u32, p1: u32) -> Result<u32, MediaError> {
        self.encode(bit, p1);
        Ok(bit)
    }
}

impl BitIo for Decoder<'_> {
    #[inline]
    fn code(&mut self, _bit: u32, p1: u32) -> Result<u32, MediaError> {
        Ok(self.decode(p1)?)
    }
}

#[inline]
fn hash(a: u32, b: u32) -> u32 {
    let x = (u64::from(a) << 32 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((x ^ (x >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9) >> 32) as u32
}

/// Hashes small context fields into one context value.
#[inline]
pub fn ctx_of(fields: &[u32]) -> u32 {
    fields.iter().fold(0x5bd1_e995, |h, &f| hash(h, f))
}

/// The bit length of `v` (0 for 0).
#[inline]
pub fn bitlen(v: u32) -> u32 {
    32 - v.leading_zeros()
}

/// `v` on a log scale with two steps per octave, capped at `max`.
#[inline]
pub fn qlog2(v: u32, max: u32) -> u32 {
    let k = bitlen(v);
    let q = if k < 2 {
        k
    } else {
        2 * k - 1 + ((v >> (k - 2)) & 1)
    };
    q.min(max)
}

/// A signed value as a small symmetric bucket (sign and `qlog2`).
#[inline]
pub fn qsigned(v: i32, max: u32) -> u32 {
    let q = qlog2(v.unsigned_abs(), max);
    if v < 0 {
        q | 64
    } else {
        q
    }
}

pub struct ResidualCoder {
    /// Contexts per decision, log2 of a table, the adaptation limit.
    n: usize,
    bits: u32,
    limit: u32,
    tables: Vec<u32>,
    idx: [usize; MAX_CTX],
    hashes: [u32; MAX_CTX],
    x: [i32; MAX_CTX + 1],
    by_node: Mixer,
    by_select: Mixer,
    final_mix: Mixer,
    out: [i32; 3],
    apm: Apm,
    select: usize,
}

impl Default for ResidualCoder {
    fn default() -> Self {
        ResidualCoder::new(Tuning::FIRST)
    }
}

impl ResidualCoder {
    pub fn new(tuning: Tuning) -> Self {
        let n = tuning.contexts.min(MAX_CTX);
        let (w0, rate) = (tuning.first_weight, tuning.mixer_rate);
        ResidualCoder {
            n,
            bits: tuning.table_bits,
            limit: tuning.limit,
            tables: vec![entry(32768); n << tuning.table_bits],
            idx: [0; MAX_CTX],
            hashes: [0; MAX_CTX],
            x: [0; MAX_CTX + 1],
            by_node: Mixer::new(n + 1, NODES, w0, rate),
            by_select: Mixer::new(n + 1, SELECTS * 16, w0, rate),
            final_mix: Mixer::new(3, NODES, ONE / 2, 8),
            out: [0; 3],
            apm: Apm::new(NODES * SELECTS, 7),
            select: 0,
        }
    }

    /// Codes one decision at `node`.
    #[inline]
    fn decide<IO: BitIo>(&mut self, io: &mut IO, node: u32, bit: u32) -> Result<u32, MediaError> {
        let mask = (1usize << self.bits) - 1;
        let n = self.n;
        for i in 0..n {
            let h = hash(self.hashes[i], node) as usize & mask;
            self.idx[i] = (i << self.bits) | h;
            self.x[i] = stretch(self.tables[self.idx[i]] >> 16);
        }
        self.x[n] = 256;
        let x = &self.x[..=n];
        let nd = node as usize;
        let class = nd.min(15);
        self.out[0] = self.by_node.mix(x, nd);
        self.out[1] = self.by_select.mix(x, self.select * 16 + class);
        self.out[2] = 256;
        let st = self.final_mix.mix(&self.out, nd);
        let pm = squash(st);
        let pa = self.apm.refine_stretched(st, nd * SELECTS + self.select);
        let p = ((pm + 3 * pa) / 4).clamp(1, 65535);
        let bit = io.code(bit, p)?;
        for i in 0..n {
            train(&mut self.tables[self.idx[i]], bit, self.limit);
        }
        let x = &self.x[..=n];
        self.by_node.update(x, bit);
        self.by_select.update(x, bit);
        self.final_mix.update(&self.out, bit);
        self.apm.update(bit);
        Ok(bit)
    }

    /// Sets the contexts of the next value: `ctx` from the modality model,
    /// `select` below [`SELECTS`].
    #[inline]
    pub fn set_context(&mut self, ctx: &[u32], select: u32) {
        debug_assert_eq!(ctx.len(), self.n);
        for (i, (h, &c)) in self.hashes.iter_mut().zip(ctx).enumerate() {
            *h = hash(c, i as u32);
        }
        self.select = (select as usize).min(SELECTS - 1);
    }

    /// Codes residual `e` (ignored when decoding) of at most `max_bits`
    /// bits of magnitude (`|e| < 2^max_bits`, `max_bits <= 24`); returns
    /// the residual coded.
    pub fn code<IO: BitIo>(
        &mut self,
        io: &mut IO,
        e: i32,
        max_bits: u32,
    ) -> Result<i32, MediaError> {
        let mag = e.unsigned_abs();
        let k = bitlen(mag);
        let mut kk = 0;
        while kk < max_bits {
            if self.decide(io, kk, u32::from(k > kk))? == 0 {
                break;
            }
            kk += 1;
        }
        if kk == 0 {
            return Ok(0);
        }
        let neg = self.decide(io, NODE_SIGN, u32::from(e < 0))?;
        let mut m = 1u32;
        for i in (0..kk - 1).rev() {
            let from_top = kk - 2 - i;
            let node = if from_top < 2 {
                32 + 4 * kk + (m & 3)
            } else {
                (140 + i).min(NODES as u32 - 1)
            };
            m = (m << 1) | self.decide(io, node, (mag >> i) & 1)?;
        }
        Ok(if neg != 0 { -(m as i32) } else { m as i32 })
    }

    /// Codes a byte (padding, eight decisions on their own nodes).
    pub fn code_byte<IO: BitIo>(&mut self, io: &mut IO, b: u8) -> Result<u8, MediaError> {
        let mut c = 1u32;
        for i in (0..8).rev() {
            // Nodes 26..=31 and 132..=139 are free of residual decisions.
            let node = if i >= 2 { 26 + (7 - i) } else { 132 + (c & 7) };
            c = (c << 1) | self.decide(io, node, u32::from(b >> i) & 1)?;
        }
        Ok(c as u8)
    }
}
