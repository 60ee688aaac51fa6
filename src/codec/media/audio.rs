//! The audio model: per channel, the block's linear predictor (its integer
//! coefficients are in the payload), then an adaptive NLMS stage
//! on that predictor's errors that also sees the other channels' errors of
//! the same frame (as Monkey's Audio and OptimFROG cascade), then a learnt
//! bias. The residual goes to the [`ResidualCoder`] with contexts of the
//! recent error magnitudes and signs.

use super::layout::{AudioLayout, Lpc, SampleFormat};
use super::ols::Ols;
use super::residual::{ctx_of, qlog2, qsigned, BitIo, ResidualCoder, Tuning, CTX, MAX_CTX};
use super::{MediaError, Version};
use crate::codec::cm::mixer::ONE;

/// Taps of the LMS stage: own channel's last stage-1 errors (payload
/// version 1: [`V1_TAPS`]).
const LMS_TAPS: usize = 32;
/// Payload version 1's LMS taps, and its sign-sign step (1/65536).
const V1_TAPS: usize = 16;
const V1_STEP: i32 = 128;
/// Inputs of the LMS stage: its taps and the previous channel's stage-1
/// error of this frame and the frame before.
const LMS_IN: usize = LMS_TAPS + 2;
/// The NLMS stage's step, `2^-NLMS_MU`: large, so that it follows the
/// signal faster than one LPC a block can (weights in 1/65536).
const NLMS_MU: u32 = 3;

struct Channel {
    lpc: Lpc,
    /// Past samples, the latest first (only `coefs.len()` kept).
    hist: Vec<i32>,
    /// Past stage-1 errors, the latest first.
    e1: [i32; LMS_TAPS],
    w: [i32; LMS_IN],
    /// Recent final residuals, the latest first.
    r: [i32; 4],
    /// Running mean of |residual|, fast and slow, in 1/16 units.
    avg_fast: u32,
    avg_slow: u32,
    /// This frame's stage-1 error and the previous frame's, for the next
    /// channel.
    e1_now: i32,
    e1_last: i32,
    res_now: i32,
    /// This frame's sample.
    v_now: i32,
    /// Version 3: the least-squares stage 1 and the last samples, the
    /// latest first.
    /// Version 3: the least-squares predictors of [`OLS_SPECS`] (none
    /// before), and the final stage's weights (1/65536) of their
    /// differences from the cascade's prediction and of the LMS stage's
    /// output.
    ols: Vec<Ols>,
    wf: [i64; FINAL_IN],
    /// Version 3's long NLMS on the stage-1 errors: history (a ring, the
    /// latest at `long_at`) and weights (1/65536).
    long_e1: Vec<i32>,
    long_w: Vec<i32>,
    long_at: usize,
    /// The last samples, the latest first.
    past: [i32; PAST],
}

/// One of version 3's least-squares predictors: its inputs are the
/// cascade's prediction, `own` past samples of the channel and `cross` of
/// the other channel (this frame's first, for the second channel); it
/// forgets with `lambda` per sample and re-solves every `interval`.
struct OlsSpec {
    own: usize,
    cross: usize,
    lambda: f64,
    interval: u32,
}

/// Three windows: short (about 100 samples), middle, long.
const OLS_SPECS: [OlsSpec; 2] = [
    OlsSpec {
        own: 16,
        cross: 8,
        lambda: 0.99,
        interval: 16,
    },
    OlsSpec {
        own: 32,
        cross: 8,
        lambda: 0.999,
        interval: 32,
    },
];
const OLS_CROSS: usize = 8;
const OLS_MAX_IN: usize = 1 + PAST + OLS_CROSS;
const FINAL_IN: usize = OLS_SPECS.len() + 2;
/// Taps of version 3's long NLMS, and its step `2^-LONG_MU`.
const LONG_TAPS: usize = 256;
const LONG_MU: u32 = 3;
const PAST: usize = 32;
const OLS_NU: f64 = 1.0;
/// The final stage's step, `2^-FINAL_MU`.
const FINAL_MU: u32 = 8;
/// Contexts per residual in version 3.
/// Version 3's residual coder: thirteen contexts, slower tables and
/// mixers.
const V3_TUNING: Tuning = Tuning {
    contexts: 13,
    table_bits: 16,
    limit: 1023,
    mixer_rate: 24,
    first_weight: ONE / 13,
};

pub struct AudioModel {
    version: Version,
    /// Taps of the LMS stage in this version.
    taps: usize,
    format: SampleFormat,
    lo: i32,
    hi: i32,
    ch: Vec<Channel>,
    coder: ResidualCoder,
}

impl AudioModel {
    pub fn new(version: Version, format: SampleFormat, audio: &AudioLayout) -> AudioModel {
        let (lo, hi) = format.range();
        AudioModel {
            version,
            taps: match version {
                Version::V1 => V1_TAPS,
                Version::V2 | Version::V3 => LMS_TAPS,
            },
            format,
            lo,
            hi,
            ch: audio
                .lpc
                .iter()
                .map(|l| Channel {
                    lpc: l.clone(),
                    hist: vec![0; l.coefs.len()],
                    e1: [0; LMS_TAPS],
                    w: [0; LMS_IN],
                    r: [0; 4],
                    avg_fast: 16 << 4,
                    avg_slow: 16 << 4,
                    e1_now: 0,
                    e1_last: 0,
                    res_now: 0,
                    v_now: 0,
                    ols: if version == Version::V3 {
                        OLS_SPECS
                            .iter()
                            .map(|o| {
                                let cross = if audio.lpc.len() > 1 { o.cross } else { 0 };
                                Ols::new(1 + o.own + cross, o.interval, o.lambda, OLS_NU)
                            })
                            .collect()
                    } else {
                        Vec::new()
                    },
                    past: [0; PAST],
                    wf: [0; FINAL_IN],
                    long_e1: vec![
                        0;
                        if version == Version::V3 {
                            2 * LONG_TAPS
                        } else {
                            0
                        }
                    ],
                    long_w: vec![0; if version == Version::V3 { LONG_TAPS } else { 0 }],
                    long_at: 0,
                })
                .collect(),
            coder: ResidualCoder::new(if version == Version::V3 {
                V3_TUNING
            } else {
                Tuning::FIRST
            }),
        }
    }

    /// Codes the sample of channel `c` (`v` ignored when decoding).
    pub fn code<IO: BitIo>(&mut self, io: &mut IO, c: usize, v: i32) -> Result<i32, MediaError> {
        let (lo, hi) = (self.lo, self.hi);
        let bits = self.format.bits();
        let (prev_e1, prev_e1_last, prev_res) = if c > 0 {
            let p = &self.ch[c - 1];
            (p.e1_now, p.e1_last, p.res_now)
        } else if self.version == Version::V3 && self.ch.len() > 1 {
            // The last channel's of the frame before.
            let p = &self.ch[self.ch.len() - 1];
            (p.e1_now, p.e1_last, 0)
        } else {
            (0, 0, 0)
        };
        let first = self.ch[0].v_now;
        let taps = self.taps;
        let nch = self.ch.len();
        // Version 3: the other channel's samples (this frame's for c > 0).
        let mut cross = [0i32; OLS_CROSS];
        if nch > 1 {
            if c > 0 {
                let o = &self.ch[c - 1];
                cross[0] = o.v_now;
                cross[1..].copy_from_slice(&o.past[1..OLS_CROSS]);
            } else {
                cross.copy_from_slice(&self.ch[nch - 1].past[..OLS_CROSS]);
            }
        }
        let ch = &mut self.ch[c];
        let mut acc: i64 = 0;
        for (k, &s) in ch.lpc.coefs.iter().zip(&ch.hist) {
            acc += i64::from(*k) * i64::from(s);
        }
        let base = if ch.lpc.side { i64::from(first) } else { 0 };
        let p_lpc = (base + (acc >> ch.lpc.shift)).clamp(i64::from(lo), i64::from(hi)) as i32;
        let p1 = p_lpc;

        let mut xs = [0i32; LMS_IN];
        xs[..taps].copy_from_slice(&ch.e1[..taps]);
        xs[taps] = prev_e1;
        xs[taps + 1] = prev_e1_last;
        let x = &xs[..taps + 2];
        let mut acc2: i64 = 0;
        let mut norm: i64 = 1;
        for (w, x) in ch.w.iter().zip(x) {
            acc2 += i64::from(*w) * i64::from(*x);
            norm += i64::from(*x) * i64::from(*x);
        }
        let p2 = (acc2 >> 16).clamp(-(1 << 24), 1 << 24) as i32;
        let pred = (p1 + p2).clamp(lo, hi);
        // Version 3: the least-squares predictions, and the final stage.
        let pcas = pred;
        let mut fx = [0i64; FINAL_IN];
        let mut xin = [0i32; OLS_MAX_IN];
        for (k, (ols, spec)) in ch.ols.iter_mut().zip(&OLS_SPECS).enumerate() {
            xin[0] = pcas;
            xin[1..=spec.own].copy_from_slice(&ch.past[..spec.own]);
            xin[1 + spec.own..1 + spec.own + spec.cross].copy_from_slice(&cross[..spec.cross]);
            let p = ols.predict(&xin[..1 + spec.own + spec.cross]);
            let p = if p.is_nan() { 0.0 } else { p };
            let p = (p + 0.5).floor().clamp(f64::from(lo), f64::from(hi)) as i32;
            fx[k] = i64::from(p - pcas);
        }
        fx[FINAL_IN - 1] = i64::from(p2);
        // The long NLMS: its history is a doubled ring, so the window is one
        // slice.
        let (p_long, long_norm) = if ch.long_w.is_empty() {
            (0, 1)
        } else {
            let win = &ch.long_e1[ch.long_at..ch.long_at + LONG_TAPS];
            let mut acc: i64 = 0;
            let mut norm: i64 = 1;
            for (w, x) in ch.long_w.iter().zip(win) {
                acc += i64::from(*w) * i64::from(*x);
                norm += i64::from(*x) * i64::from(*x);
            }
            ((acc >> 16).clamp(-(1 << 24), 1 << 24) as i32, norm)
        };
        fx[FINAL_IN - 2] = i64::from(p_long - p2);
        let fnorm: i64 = 1 + fx.iter().map(|x| x * x).sum::<i64>();
        let adj: i64 = ch.wf.iter().zip(&fx).map(|(w, x)| w * x).sum::<i64>() >> 16;
        let pred = if ch.ols.is_empty() {
            pred
        } else {
            (i64::from(pred) + adj.clamp(-(1 << 24), 1 << 24)).clamp(i64::from(lo), i64::from(hi))
                as i32
        };
        let dis =
            |k: usize| (pcas as i64 + fx[k] - i64::from(pred)).clamp(-(1 << 24), 1 << 24) as i32;
        let dis_f = (2 * ch.past[0] - ch.past[1]).clamp(lo, hi) - pred;

        let scale = bits.saturating_sub(8);
        let af = ch.avg_fast >> 4;
        let asl = ch.avg_slow >> 4;
        let cu = c as u32;
        let mut ctx = [0u32; MAX_CTX];
        ctx[..CTX].copy_from_slice(&[
            ctx_of(&[cu, qlog2(af, 40)]),
            ctx_of(&[cu, qsigned(ch.r[0], 30), qsigned(ch.r[1] >> 2, 20)]),
            ctx_of(&[cu, qlog2(af, 40) >> 1, qsigned(prev_res, 30)]),
            ctx_of(&[
                cu,
                qlog2(ch.r.iter().map(|r| r.unsigned_abs()).sum(), 40),
                qsigned(p2, 30),
            ]),
            ctx_of(&[cu, qlog2(asl, 40), qlog2(af, 40) >> 2]),
            ctx_of(&[
                cu,
                qsigned(ch.r[0], 30) >> 1,
                qlog2(af, 40) >> 1,
                u32::from(ch.r[1] < 0),
            ]),
        ]);
        let nctx = if self.version == Version::V3 {
            // How the other predictions differ from the one coded against.
            let diff = |d: i32| qsigned(d, 30);
            let long = (p_long - p2).clamp(-(1 << 24), 1 << 24);
            let lpc = (p1 - pred).clamp(-(1 << 24), 1 << 24);
            ctx[CTX..V3_TUNING.contexts].copy_from_slice(&[
                ctx_of(&[cu, diff(dis(0)), qlog2(af, 40) >> 1]),
                ctx_of(&[cu, diff(dis(1)), qlog2(af, 40) >> 1]),
                ctx_of(&[cu, diff(dis_f) >> 1, qlog2(af, 40) >> 1]),
                ctx_of(&[cu, diff(dis(0)) >> 1, diff(dis(1)) >> 1, diff(p2) >> 1]),
                ctx_of(&[cu]),
                ctx_of(&[cu, diff(long), qlog2(af, 40) >> 1]),
                ctx_of(&[cu, diff(lpc), diff(dis(0)) >> 2]),
            ]);
            V3_TUNING.contexts
        } else {
            CTX
        };
        let select = qlog2(af >> scale.min(4), 15) * 2 + u32::from(c > 0);
        self.coder.set_context(&ctx[..nctx], select);
        let e = self.coder.code(io, v - pred, bits)?;
        let v = pred + e;
        if v < lo || v > hi {
            return Err(MediaError::SampleRange(i64::from(v)));
        }

        // Learn: NLMS on the stage-1 error, history, magnitudes.
        let ch = &mut self.ch[c];
        let e1 = v - p1;
        let err2 = i64::from(e1 - p2);
        if self.version == Version::V1 {
            // Version 1: sign-sign LMS.
            let s = (e1 - p2).signum();
            if s != 0 {
                for (w, x) in ch.w.iter_mut().zip(x) {
                    *w += s * x.signum() * V1_STEP;
                }
            }
        } else if err2 != 0 {
            // w += mu * err * x / |x|^2, weights in 1/65536.
            let g = (err2 << (16 + 20 - NLMS_MU)) / norm;
            for (w, x) in ch.w.iter_mut().zip(x) {
                let dw = (g * i64::from(*x)) >> 20;
                *w = (i64::from(*w) + dw).clamp(-(1 << 24), 1 << 24) as i32;
            }
        }
        ch.e1.copy_within(0..LMS_TAPS - 1, 1);
        ch.e1[0] = e1;
        if !ch.long_w.is_empty() {
            let err = i64::from(e1 - p_long);
            if err != 0 {
                let g = (err << (16 + 20 - LONG_MU)) / long_norm;
                let win = &ch.long_e1[ch.long_at..ch.long_at + LONG_TAPS];
                for (w, x) in ch.long_w.iter_mut().zip(win) {
                    let dw = (g * i64::from(*x)) >> 20;
                    *w = (i64::from(*w) + dw).clamp(-(1 << 24), 1 << 24) as i32;
                }
            }
            // The ring: newest first from `long_at`, mirrored LONG_TAPS on.
            ch.long_at = if ch.long_at == 0 {
                LONG_TAPS - 1
            } else {
                ch.long_at - 1
            };
            ch.long_e1[ch.long_at] = e1;
            ch.long_e1[ch.long_at + LONG_TAPS] = e1;
        }
        ch.e1_last = ch.e1_now;
        ch.e1_now = e1;
        ch.res_now = e;
        if !ch.hist.is_empty() {
            let n = ch.hist.len();
            ch.hist.copy_within(0..n - 1, 1);
            ch.hist[0] = if ch.lpc.side { v - first } else { v };
        }
        ch.v_now = v;
        if !ch.ols.is_empty() {
            // NLMS toward the error left after the cascade.
            let err = i64::from(v - pcas) - adj;
            if err != 0 {
                let g = (err << (16 + 20 - FINAL_MU)) / fnorm;
                for (w, x) in ch.wf.iter_mut().zip(&fx) {
                    *w = (*w + ((g * x) >> 20)).clamp(-(1 << 20), 1 << 20);
                }
            }
            for ols in &mut ch.ols {
                ols.update(v);
            }
        }
        ch.past.copy_within(0..PAST - 1, 1);
        ch.past[0] = v;
        ch.r.copy_within(0..3, 1);
        ch.r[0] = e;
        let m = (e.unsigned_abs().min(1 << 24)) << 4;
        ch.avg_fast = ch.avg_fast - (ch.avg_fast >> 3) + (m >> 3);
        ch.avg_slow = ch.avg_slow - (ch.avg_slow >> 6) + (m >> 6);
        Ok(v)
    }
}

/// Codes the frames of `body` (encoding) or decodes them into `out`.
pub fn code_body<IO: BitIo>(
    io: &mut IO,
    version: Version,
    format: SampleFormat,
    audio: &AudioLayout,
    body: Option<&[u8]>,
    body_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), MediaError> {
    let sb = usize::from(format.bytes);
    let channels = usize::from(audio.channels);
    let mut model = AudioModel::new(version, format, audio);
    let mut pos = 0;
    while pos + sb * channels <= body_len {
        for c in 0..channels {
            let v = body.map_or(0, |b| format.read(&b[pos..]));
            let v = model.code(io, c, v)?;
            format.write(v, out);
            pos += sb;
        }
    }
    Ok(())
}

/// The block's linear predictor for one channel's samples: Levinson-Durbin
/// on the windowed autocorrelation (encoder only; the decoder reads the
/// integer coefficients), the order among 8, 16 and 32 that leaves the
/// smallest estimated residual.
pub fn lpc_for(samples: &[i32]) -> (Lpc, u64) {
    let n = samples.len();
    let none = Lpc::default();
    if n < 64 {
        let c = cost(samples, &none);
        return (none, c);
    }
    let max_order = super::layout::MAX_LPC_ORDER;
    let xs: Vec<f64> = samples
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            // Welch window.
            let t = 2.0 * i as f64 / (n - 1) as f64 - 1.0;
            f64::from(s) * (1.0 - t * t)
        })
        .collect();
    let mut r = vec![0f64; max_order + 1];
    for (lag, rl) in r.iter_mut().enumerate() {
        *rl = xs[lag..].iter().zip(&xs).map(|(a, b)| a * b).sum();
    }
    if r[0] <= 0.0 {
        let c = cost(samples, &none);
        return (none, c);
    }
    r[0] *= 1.0 + 1e-9;
    let mut best_cost = cost(samples, &none);
    let mut best = none;
    for order in [8usize, 16, 32] {
        let a = levinson(&r, order);
        let lpc = quantize(&a);
        let c = cost(samples, &lpc);
        if c < best_cost {
            best_cost = c;
            best = lpc;
        }
    }
    (best, best_cost)
}

fn levinson(r: &[f64], order: usize) -> Vec<f64> {
    let mut a = vec![0f64; order];
    let mut err = r[0];
    for i in 0..order {
        let mut acc = r[i + 1];
        for j in 0..i {
            acc -= a[j] * r[i - j];
        }
        let k = acc / err;
        let prev = a.clone();
        a[i] = k;
        for j in 0..i {
            a[j] = prev[j] - k * prev[i - 1 - j];
        }
        err *= 1.0 - k * k;
        if err <= 0.0 {
            break;
        }
    }
    a
}

fn quantize(a: &[f64]) -> Lpc {
    let amax = a.iter().fold(0f64, |m, &v| m.max(v.abs()));
    let mut shift = 15u8;
    while shift > 0 && amax * f64::from(1u32 << shift) > 32767.0 {
        shift -= 1;
    }
    shift = shift.min(14);
    Lpc {
        shift,
        side: false,
        coefs: a
            .iter()
            .map(|&v| {
                (v * f64::from(1u32 << shift))
                    .round()
                    .clamp(-32768.0, 32767.0) as i16
            })
            .collect(),
    }
}

/// Estimated bits of the residual of `lpc` on `samples` (sum of bit
/// lengths, plus the coefficients).
fn cost(samples: &[i32], lpc: &Lpc) -> u64 {
    let order = lpc.coefs.len();
    let mut total = 16 * order as u64;
    for t in 0..samples.len() {
        let mut acc: i64 = 0;
        for (i, &k) in lpc.coefs.iter().enumerate() {
            if t > i {
                acc += i64::from(k) * i64::from(samples[t - 1 - i]);
            }
        }
        let e = i64::from(samples[t]) - (acc >> lpc.shift);
        total += u64::from(64 - e.unsigned_abs().leading_zeros()) * 2 + 1;
    }
    total
}
