//! The image model: each sample predicted from its neighbours in the same
//! channel (west, north, north-west, north-east and two steps away), by a
//! blend of fixed predictors weighted by how well each did on the
//! neighbours (as TMW and GraLIC blend), corrected by a learnt bias per
//! texture context (as CALIC), and, after the first channel of a pixel,
//! by the previous channel's error. The residual goes to the
//! [`ResidualCoder`] with contexts of local activity, neighbouring errors
//! and texture.

use super::layout::{ImageLayout, SampleFormat};
use super::residual::{ctx_of, qlog2, qsigned, BitIo, ResidualCoder, CTX};
use super::{MediaError, Version};

/// Fixed neighbour predictors.
const NF: usize = 10;
/// Predictors blended: the fixed ones (after the first channel, moved by
/// the previous channel's errors), an NLMS one, and the fixed ones again,
/// moved by the errors of the channel two back (from the third channel),
/// else unmoved (second channel; unused on the first).
const NP: usize = 2 * NF + 1;
/// The NLMS predictor's index.
const P_LMS: usize = NF;
/// Inputs of the NLMS predictor: six neighbours and two of the previous
/// channel's gradients.
const LMS_IN: usize = 8;
/// Its step, `2^LMS_MU / 2^14`.
const LMS_MU: u32 = 12;
/// Bias contexts: channel (4) x texture (64) x activity (16).
const BIAS_CTX: usize = 4 * 64 * 16;

/// The samples decoded so far, addressed by row and column.
struct Grid {
    channels: usize,
    width: usize,
    x0: usize,
    /// Per sample: its value and its blended prediction's error.
    v: Vec<i32>,
    err: Vec<i32>,
    /// Per sample and predictor: that predictor's absolute error.
    perr: Vec<u16>,
}

impl Grid {
    /// The index of (row, column, channel), if that sample is decoded.
    #[inline]
    fn at(&self, row: isize, x: isize, c: usize, now: usize) -> Option<usize> {
        if row < 0 || x < 0 || x >= self.width as isize {
            return None;
        }
        let (row, x) = (row as usize, x as usize);
        if row == 0 && x < self.x0 {
            return None;
        }
        let pixel = row * self.width + x - self.x0;
        let i = pixel * self.channels + c;
        (i < now).then_some(i)
    }
}

pub struct ImageModel {
    version: Version,
    format: SampleFormat,
    lo: i32,
    hi: i32,
    grid: Grid,
    bias_sum: Vec<i32>,
    bias_n: Vec<i32>,
    /// NLMS weights per channel (1/16384).
    lms: Vec<[i32; LMS_IN]>,
    coder: ResidualCoder,
}

#[inline]
fn med(w: i32, n: i32, nw: i32) -> i32 {
    if nw >= w.max(n) {
        w.min(n)
    } else if nw <= w.min(n) {
        w.max(n)
    } else {
        w + n - nw
    }
}

impl ImageModel {
    pub fn new(
        version: Version,
        format: SampleFormat,
        img: &ImageLayout,
        samples: usize,
    ) -> ImageModel {
        let (lo, hi) = format.range();
        ImageModel {
            version,
            format,
            lo,
            hi,
            grid: Grid {
                channels: usize::from(img.channels),
                width: img.row_pixels as usize,
                x0: img.x0 as usize,
                v: Vec::with_capacity(samples),
                err: Vec::with_capacity(samples),
                perr: Vec::with_capacity(samples * NP),
            },
            bias_sum: vec![0; BIAS_CTX],
            bias_n: vec![0; BIAS_CTX],
            lms: vec![[4096, 4096, 0, 0, 0, 0, 0, 0]; usize::from(img.channels)],
            coder: ResidualCoder::default(),
        }
    }

    /// Codes the sample at (row, x, channel c): `v` when encoding (ignored
    /// when decoding); returns the sample.
    pub fn code<IO: BitIo>(
        &mut self,
        io: &mut IO,
        row: usize,
        x: usize,
        c: usize,
        v: i32,
    ) -> Result<i32, MediaError> {
        let g = &self.grid;
        let now = g.v.len();
        let (r, xi) = (row as isize, x as isize);
        let get = |dr: isize, dx: isize| g.at(r - dr, xi + dx, c, now);
        let val = |i: Option<usize>| i.map(|i| g.v[i]);
        let iw = get(0, -1);
        let in_ = get(1, 0);
        let inw = get(1, -1);
        let ine = get(1, 1);
        let iww = get(0, -2);
        let inn = get(2, 0);
        // Fallbacks: a missing neighbour takes the nearest one there is.
        let prev_ch = (c > 0).then(|| g.v[now - 1]);
        let mid = (self.lo + self.hi + 1) / 2;
        let w = val(iw).or(val(in_)).or(prev_ch).unwrap_or(mid);
        let n = val(in_).unwrap_or(w);
        let nw = val(inw).unwrap_or(n);
        let ne = val(ine).unwrap_or(n);
        let ww = val(iww).unwrap_or(w);
        let nn = val(inn).unwrap_or(n);
        let (lo, hi) = (self.lo, self.hi);
        let cl = |p: i32| p.clamp(lo, hi);

        let fixed = [
            w,
            n,
            cl(w + n - nw),
            med(w, n, nw),
            (w + ne + 1) >> 1,
            cl(w + ne - n),
            cl(2 * n - nn),
            cl(2 * w - ww),
            (n + nw + 1) >> 1,
            cl((3 * w + 3 * n - 2 * nw + ne - ww - nn + 2) >> 2),
        ];
        let mut p = [0i32; NP];
        p[..NF].copy_from_slice(&fixed);
        p[NF + 1..].copy_from_slice(&fixed);
        // Version 1 blends only the first set and the NLMS predictor.
        let v1 = self.version == Version::V1;
        let used = if c == 0 || v1 { NF + 1 } else { NP };
        // NLMS over the neighbours around their mean and, after the first
        // channel, the previous channel's gradients at this pixel.
        let base = (w + n + 1) >> 1;
        let mut lx = [
            w - base,
            n - base,
            nw - base,
            ne - base,
            ww - base,
            nn - base,
            0,
            0,
        ];
        if c > 0 {
            let pv = g.v[now - 1];
            let at = |dr: isize, dx: isize| g.at(r - dr, xi + dx, c - 1, now).map(|i| g.v[i]);
            lx[6] = pv - at(0, -1).unwrap_or(pv);
            lx[7] = pv - at(1, 0).unwrap_or(pv);
        }
        let lw = &self.lms[c];
        let dot: i64 = lw
            .iter()
            .zip(&lx)
            .map(|(&a, &b)| i64::from(a) * i64::from(b))
            .sum();
        let p_lms = cl(base + (dot >> 14).clamp(-(1 << 20), 1 << 20) as i32);
        p[P_LMS] = p_lms;
        // After the first channel, each predictor also moves by the error
        // the same predictor made on the previous channel of this pixel
        // (the channels of a photo share their edges). The previous
        // channel's predictions use that channel's neighbours.
        // The channel two back (RGB's blue after red) moves the second set.
        let moved = |back: usize| -> [i32; NF] {
            let gv = |i: Option<usize>| i.map(|i| g.v[i]);
            let pc = c - back;
            let get1 = |dr: isize, dx: isize| gv(g.at(r - dr, xi + dx, pc, now));
            let pw = get1(0, -1).or(get1(1, 0)).unwrap_or(w);
            let pn = get1(1, 0).unwrap_or(pw);
            let pnw = get1(1, -1).unwrap_or(pn);
            let pne = get1(1, 1).unwrap_or(pn);
            let pww = get1(0, -2).unwrap_or(pw);
            let pnn = get1(2, 0).unwrap_or(pn);
            let pv = g.v[now - back];
            let q = [
                pw,
                pn,
                pw + pn - pnw,
                med(pw, pn, pnw),
                (pw + pne + 1) >> 1,
                pw + pne - pn,
                2 * pn - pnn,
                2 * pw - pww,
                (pn + pnw + 1) >> 1,
                (3 * pw + 3 * pn - 2 * pnw + pne - pww - pnn + 2) >> 2,
            ];
            let mut out = [0; NF];
            for ((o, f), qk) in out.iter_mut().zip(fixed).zip(q) {
                *o = cl(f + pv - qk);
            }
            out
        };
        if c > 0 {
            p[..NF].copy_from_slice(&moved(1));
        }
        if c > 1 && !v1 {
            p[NF + 1..].copy_from_slice(&moved(2));
        }

        // Blend: weight each predictor by 1 / (1 + its recent error)^2,
        // the error summed over the neighbours that exist: W, N, NW, NE,
        // and from version 2 also WW, NN, NWW, NNW, NNE, NEE, WWW and NNN
        // (a wider causal window, as TMW's and GraLIC's blends use, so that
        // a predictor's weight follows its local record less noisily).
        let window = [iw, in_, inw, ine];
        let wide = if v1 {
            [None; 8]
        } else {
            [
                iww,
                inn,
                get(1, -2),
                get(2, -1),
                get(2, 1),
                get(1, 2),
                get(0, -3),
                get(3, 0),
            ]
        };
        let mut wsum: i64 = 0;
        let mut psum: i64 = 0;
        let (mut pmin, mut pmax) = (i32::MAX, i32::MIN);
        for (k, &pk) in p[..used].iter().enumerate() {
            let mut e = 0u32;
            for i in window.into_iter().chain(wide).flatten() {
                e += u32::from(g.perr[i * NP + k]);
            }
            let e = u64::from(e) + 1;
            let wk = ((1u64 << 40) / (e * e)).max(1) as i64;
            wsum += wk;
            psum += wk * i64::from(pk);
            pmin = pmin.min(pk);
            pmax = pmax.max(pk);
        }
        let blend = ((psum + wsum / 2) / wsum) as i32;

        let ew = iw.map_or(0, |i| g.err[i]);
        let en = in_.map_or(0, |i| g.err[i]);
        let enw = inw.map_or(0, |i| g.err[i]);
        let ene = ine.map_or(0, |i| g.err[i]);
        let e_prev = if c > 0 { g.err[now - 1] } else { 0 };
        let act = (w - nw).unsigned_abs()
            + (n - nw).unsigned_abs()
            + (n - ne).unsigned_abs()
            + (w - ww).unsigned_abs()
            + (n - nn).unsigned_abs();
        let bits = self.format.bits();
        // Activity and errors relative to 8-bit samples.
        let scale = bits - 8;
        let qact = qlog2(act >> scale, 15);
        let texture = u32::from(w > blend)
            | u32::from(n > blend) << 1
            | u32::from(nw > blend) << 2
            | u32::from(ne > blend) << 3
            | u32::from(ww > blend) << 4
            | u32::from(nn > blend) << 5;
        let bctx = ((c & 3) * 64 + texture as usize) * 16 + qact as usize;
        let bias = if self.bias_n[bctx] > 0 {
            self.bias_sum[bctx] / self.bias_n[bctx]
        } else {
            0
        };
        let pred = cl(blend + bias);

        let sh = |e: i32| e >> scale;
        let cu = c as u32;
        let errsum =
            (ew.unsigned_abs() + en.unsigned_abs() + enw.unsigned_abs() + ene.unsigned_abs())
                >> scale;
        let ctx: [u32; CTX] = [
            ctx_of(&[cu, qact, qsigned(sh(n - pred), 4), qsigned(sh(w - pred), 4)]),
            ctx_of(&[cu, qsigned(sh(ew), 12), qsigned(sh(en), 12)]),
            ctx_of(&[cu, qsigned(sh(e_prev), 14), qact >> 1]),
            ctx_of(&[
                cu,
                qlog2(((pmax - pmin) as u32) >> scale, 12),
                qsigned(sh(p[3] - pred), 6),
                qsigned(sh(ene), 4),
            ]),
            ctx_of(&[
                cu,
                texture,
                qsigned(sh(p_lms - pred), 6),
                qlog2(errsum, 10) >> 2,
            ]),
            ctx_of(&[
                cu,
                qlog2(errsum, 14),
                qsigned(sh(e_prev), 6),
                qsigned(sh(p[2] - pred), 3),
            ]),
        ];
        let select = qlog2(errsum + (act >> (scale + 1)), 15) * 2 + u32::from(c > 0);
        self.coder.set_context(&ctx, select);
        let e = self.coder.code(io, v - pred, bits)?;
        let v = pred + e;
        if v < lo || v > hi {
            return Err(MediaError::SampleRange(i64::from(v)));
        }

        // Learn: the bias context, each predictor's error, the sample.
        let raw_err = v - blend;
        self.bias_sum[bctx] += raw_err;
        self.bias_n[bctx] += 1;
        if self.bias_n[bctx] >= 64 {
            self.bias_sum[bctx] /= 2;
            self.bias_n[bctx] /= 2;
        }
        let err = i64::from(v - p_lms);
        let norm: i64 = lx.iter().map(|&x| i64::from(x) * i64::from(x)).sum::<i64>() + 16;
        for (w, &x) in self.lms[c].iter_mut().zip(&lx) {
            let d = ((err * i64::from(x)) << LMS_MU) / norm;
            *w = (i64::from(*w) + d).clamp(-(1 << 20), 1 << 20) as i32;
        }
        let g = &mut self.grid;
        for pk in p {
            g.perr
                .push((v - pk).unsigned_abs().min(u32::from(u16::MAX)) as u16);
        }
        g.v.push(v);
        g.err.push(v - pred);
        Ok(v)
    }
}

/// Codes the sample region `body` (encoding) or decodes it into `out`.
pub fn code_body<IO: BitIo>(
    io: &mut IO,
    version: Version,
    format: SampleFormat,
    img: &ImageLayout,
    body: Option<&[u8]>,
    body_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), MediaError> {
    let sb = usize::from(format.bytes);
    let channels = usize::from(img.channels);
    let mut model = ImageModel::new(version, format, img, body_len / sb);
    let (mut row, mut x, mut pos) = (0usize, img.x0 as usize, 0usize);
    let unit = sb * channels;
    let width = img.row_pixels as usize;
    while pos < body_len {
        if x < width {
            if pos + unit > body_len {
                break;
            }
            for c in 0..channels {
                let v = body.map_or(0, |b| format.read(&b[pos..]));
                let v = model.code(io, row, x, c, v)?;
                format.write(v, out);
                pos += sb;
            }
            x += 1;
        } else {
            for _ in 0..img.row_pad {
                if pos >= body_len {
                    break;
                }
                let b = body.map_or(0, |b| b[pos]);
                out.push(model.coder.code_byte(io, b)?);
                pos += 1;
            }
            x = 0;
            row += 1;
        }
    }
    Ok(())
}

/// MED (LOCO-I's median edge detector) on bytes, for the layout search.
#[inline]
pub fn med_u8(w: u8, n: u8, nw: u8) -> u8 {
    med(i32::from(w), i32::from(n), i32::from(nw)) as u8
}
