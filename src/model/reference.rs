//! The reference engine: the integer model (semantics `llmfs-int8-v1`) in
//! plain Rust, with no ONNX Runtime. It is the test oracle for the ONNX
//! graph and a fallback decoder that gives the same logits on every CPU.
//!
//! `models/tools/intmodel.py` is the specification: `forward()` there is
//! mirrored step for step by [`Reference::run`], `validate()` by the checks
//! in [`Reference::load`]. Every intermediate value is an integer; the
//! bounds that keep them exact are noted where they are used. Divisions by
//! powers of two are arithmetic shifts, which floor like numpy's `//`; the
//! other divisions have non-negative numerators except the LayerNorm mean,
//! which truncates toward zero as intmodel.py's `tdiv` does.
//!
//! Besides validate()'s bounds, `load` refuses models the ONNX graph could
//! not compute exactly in its int32 tensors: a context over 1024 (the
//! attention products would have more than 1024 terms, like the 4·d_model
//! bound for the others), embeddings of 2^30 or more in magnitude (their
//! int32 sum would wrap), and shifts over 30 (their int32 constants would).

use std::collections::HashMap;

use super::onnx_proto::{self, Tensor};
use super::ModelError;
use super::{BOS, VOCAB};

pub const SEMANTICS: &str = "llmfs-int8-v1";

// The constants of intmodel.py.
const XMAX: i64 = 32767;
const RSQRT_BITS: u32 = 13;
const VAR_CLAMP: i64 = 255;
const LOGIT_MAX: i64 = 1 << 20;
const REQ_S: u32 = 24;
const REQ_OFF: i64 = 1 << 31;
const GELU_G: i64 = 2048;
const MASK: i64 = 1 << 22;
const LN_OFF: i64 = 1 << 29;

/// Bounds of this engine beyond validate()'s (see the module doc).
const MAX_CONTEXT: usize = 1024;
const MAX_D_MODEL: usize = 256;
const MAX_SHIFT: u64 = 30;
const MAX_EMBEDDING: i32 = (1 << 30) - 1;
/// Bound of the layer count: far above any real model, low enough that the
/// per-layer bookkeeping of a hostile config stays small.
const MAX_LAYERS: usize = 1024;

/// A LayerNorm: the variance shift `k` and, per channel, the output divisor
/// `2^shift[c]` (intmodel.py's `div`, a power of two).
struct Norm {
    k: u32,
    shift: Vec<u32>,
}

/// A product with int8 weights and its requantisation. The weights are
/// stored transposed, `[n][k]`, so every output is one dot product of two
/// contiguous int8 slices.
struct Linear {
    k: usize,
    n: usize,
    wt: Vec<i8>,
    mul: Vec<i64>,
    add: Vec<i64>,
}

struct Layer {
    ln1: Norm,
    qkv: Linear,
    /// The softmax table: `exp[i]` in 0..=127, `exp[0] = 127`, last 0.
    exp: Vec<i32>,
    exp_shift: u32,
    wo: Linear,
    ln2: Norm,
    w1: Linear,
    /// The GELU table, indexed by the requantised MLP input (its addend
    /// carries the +GELU_G) in 0..=2·GELU_G; values in -127..=127.
    gelu: Vec<i8>,
    w2: Linear,
}

/// A parsed and validated integer model.
pub struct Reference {
    context: usize,
    d_model: usize,
    n_heads: usize,
    tok_emb: Vec<i32>,
    pos_emb: Vec<i32>,
    layers: Vec<Layer>,
    lnf: Norm,
    head: Linear,
    rsqrt: Vec<i32>,
}

/// The keys and values of the positions run so far, per layer, for a batch
/// of sequences that advance together.
///
/// Keys are kept as `[batch, H, dh, cap]` and values as `[batch, H, cap,
/// dh]`: the layout of the graph's `past_k`/`past_v` with room for `cap`
/// positions, so appending a position copies only its own values.
/// [`RefCache::keys`] and [`RefCache::values`] give the graph's exact layout.
pub struct RefCache {
    batch: usize,
    heads: usize,
    dh: usize,
    context: usize,
    len: usize,
    cap: usize,
    keys: Vec<Vec<i8>>,
    values: Vec<Vec<i8>>,
}

impl RefCache {
    pub fn new(r: &Reference, batch: usize) -> RefCache {
        RefCache {
            batch,
            heads: r.n_heads,
            dh: r.head_dim(),
            context: r.context,
            len: 0,
            cap: 0,
            keys: vec![Vec::new(); r.layers.len()],
            values: vec![Vec::new(); r.layers.len()],
        }
    }

    /// P: the positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Layer `layer`'s keys as the graph's `present_k`: `[batch, H, dh, P]`.
    pub fn keys(&self, layer: usize) -> Option<Vec<i8>> {
        let keys = self.keys.get(layer)?;
        let mut out = Vec::with_capacity(self.batch * self.heads * self.dh * self.len);
        for row in keys.chunks_exact(self.cap.max(1)) {
            out.extend_from_slice(&row[..self.len]);
        }
        Some(out)
    }

    /// Layer `layer`'s values as the graph's `present_v`: `[batch, H, P, dh]`.
    pub fn values(&self, layer: usize) -> Option<Vec<i8>> {
        let values = self.values.get(layer)?;
        let block = self.cap * self.dh;
        let mut out = Vec::with_capacity(self.batch * self.heads * self.dh * self.len);
        for head in values.chunks_exact(block.max(1)) {
            out.extend_from_slice(&head[..self.len * self.dh]);
        }
        Some(out)
    }

    /// Makes room for `need` positions (at most the context), doubling so
    /// that one-token steps copy the cache only a logarithmic number of times.
    fn reserve(&mut self, need: usize) {
        if need <= self.cap {
            return;
        }
        let cap = need.max(2 * self.cap).max(16).min(self.context);
        let (len, dh, rows) = (self.len, self.dh, self.batch * self.heads);
        for keys in &mut self.keys {
            let mut grown = vec![0i8; rows * dh * cap];
            for (new, old) in grown
                .chunks_exact_mut(cap)
                .zip(keys.chunks_exact(self.cap.max(1)))
            {
                new[..len].copy_from_slice(&old[..len]);
            }
            *keys = grown;
        }
        for values in &mut self.values {
            let mut grown = vec![0i8; rows * cap * dh];
            for (new, old) in grown
                .chunks_exact_mut(cap * dh)
                .zip(values.chunks_exact((self.cap * dh).max(1)))
            {
                new[..len * dh].copy_from_slice(&old[..len * dh]);
            }
            *values = grown;
        }
        self.cap = cap;
    }
}

impl Reference {
    /// Parses an llmfs-int8-v1 model file and checks every shape and every
    /// bound the semantics rely on, so that running it cannot overflow.
    pub fn load(model: &[u8]) -> Result<Reference, ModelError> {
        let proto = onnx_proto::parse_model(model)?;
        let json = proto
            .metadata_value("llmfs.config")?
            .ok_or_else(|| bad("no llmfs.config metadata"))?;
        let cfg = Config::parse(json)?;
        let p = Params::index(&proto.initializers)?;
        let (d, ctx) = (cfg.d_model, cfg.context);
        let dh = d / cfg.n_heads;
        let tok_emb = p.embedding("tok_emb", VOCAB + 1, d)?;
        let pos_emb = p.embedding("pos_emb", ctx, d)?;
        // The largest attention score in magnitude; masking subtracts MASK.
        let max_score = (dh * 127 * 127) as i64;
        let mut layers = Vec::with_capacity(cfg.layers.len());
        for (l, lq) in cfg.layers.iter().enumerate() {
            let pre = format!("h{l}.");
            let exp = p.i32s(&format!("{pre}attn.exp"), None)?;
            let n = exp.len() as i64;
            // Masked scores must land on the table's last entry, 0, so that
            // masked positions add nothing and need not be computed.
            if n < 2 || (MASK - 2 * max_score) >> lq.exp_shift < n - 1 {
                return Err(bad(format!(
                    "layer {l}: masked scores do not reach the softmax table's end"
                )));
            }
            if exp[0] != 127
                || exp[exp.len() - 1] != 0
                || exp.iter().any(|&e| !(0..=127).contains(&e))
            {
                return Err(bad(format!("layer {l}: softmax table out of bounds")));
            }
            let gelu = p.i32s(&format!("{pre}mlp.gelu"), Some(2 * GELU_G as usize + 1))?;
            let gelu = gelu
                .iter()
                .map(|&g| i8::try_from(g).ok().filter(|&g| g != i8::MIN))
                .collect::<Option<Vec<i8>>>()
                .ok_or_else(|| bad(format!("layer {l}: GELU table out of bounds")))?;
            layers.push(Layer {
                ln1: p.norm(&format!("{pre}ln1.div"), lq.ln1_k, d)?,
                qkv: p.linear(&pre, "attn.wqkv", "attn.mqkv", "attn.cqkv", d, 3 * d)?,
                exp,
                exp_shift: lq.exp_shift,
                wo: p.linear(&pre, "attn.wo", "attn.mo", "attn.co", d, d)?,
                ln2: p.norm(&format!("{pre}ln2.div"), lq.ln2_k, d)?,
                w1: p.linear(&pre, "mlp.w1", "mlp.m1", "mlp.c1", d, 4 * d)?,
                gelu,
                w2: p.linear(&pre, "mlp.w2", "mlp.m2", "mlp.c2", 4 * d, d)?,
            });
        }
        Ok(Reference {
            context: ctx,
            d_model: d,
            n_heads: cfg.n_heads,
            tok_emb,
            pos_emb,
            layers,
            lnf: p.norm("lnf.div", cfg.lnf_k, d)?,
            head: p.linear("", "head.w", "head.m", "head.c", d, VOCAB)?,
            rsqrt: rsqrt_table(),
        })
    }

    pub fn context(&self) -> usize {
        self.context
    }

    pub fn d_model(&self) -> usize {
        self.d_model
    }

    pub fn n_heads(&self) -> usize {
        self.n_heads
    }

    pub fn n_layers(&self) -> usize {
        self.layers.len()
    }

    fn head_dim(&self) -> usize {
        self.d_model / self.n_heads
    }

    /// One run over `tokens` (`[batch, t]` row-major, values 0..=256, BOS =
    /// 256) after the positions already in `cache`; appends this run's keys
    /// and values to `cache` and returns the integer logits `[batch, t, 256]`
    /// row-major (nats = L / 2^10).
    pub fn run(
        &self,
        tokens: &[i64],
        batch: usize,
        t: usize,
        cache: &mut RefCache,
    ) -> Result<Vec<i32>, ModelError> {
        self.check_run(tokens, batch, t, cache)?;
        Ok(self.forward_fastest(tokens, batch, t, cache))
    }

    /// [`Reference::forward`] compiled for the widest vector unit the CPU
    /// has: the integer results are the same on every path.
    fn forward_fastest(
        &self,
        tokens: &[i64],
        batch: usize,
        t: usize,
        cache: &mut RefCache,
    ) -> Vec<i32> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { self.forward_avx2(tokens, batch, t, cache) };
        }
        self.forward(tokens, batch, t, cache)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn forward_avx2(
        &self,
        tokens: &[i64],
        batch: usize,
        t: usize,
        cache: &mut RefCache,
    ) -> Vec<i32> {
        self.forward(tokens, batch, t, cache)
    }

    /// intmodel.py's `forward` on inputs `check_run` accepted. Everything
    /// it calls is inlined, so that `forward_avx2` compiles all of it with
    /// AVX2.
    #[inline(always)]
    fn forward(&self, tokens: &[i64], batch: usize, t: usize, cache: &mut RefCache) -> Vec<i32> {
        let (d, past, rows) = (self.d_model, cache.len, batch * t);
        let mut x = vec![0i32; rows * d];
        for (r, (xr, &tok)) in x.chunks_exact_mut(d).zip(tokens).enumerate() {
            // check_run has bounded both the token and the position.
            let te = &self.tok_emb[tok as usize * d..][..d];
            let pe = &self.pos_emb[(past + r % t) * d..][..d];
            for ((x, &a), &b) in xr.iter_mut().zip(te).zip(pe) {
                *x = (i64::from(a) + i64::from(b)).clamp(-XMAX, XMAX) as i32;
            }
        }
        cache.reserve(past + t);
        let mut y = vec![0i8; rows * d];
        let mut qkv = vec![0i8; rows * 3 * d];
        let mut o = vec![0i8; rows * d];
        let mut g = vec![0i8; rows * 4 * d];
        for (l, layer) in self.layers.iter().enumerate() {
            self.layer_norm(&x, &layer.ln1, &mut y);
            layer
                .qkv
                .apply(&y, |i, v| qkv[i] = v.clamp(-127, 127) as i8);
            cache.append(l, &qkv, t, d);
            self.attention(layer, cache, l, &qkv, t, &mut o);
            layer.wo.apply(&o, |i, v| x[i] = residual(x[i], v));
            self.layer_norm(&x, &layer.ln2, &mut y);
            let gelu = &layer.gelu;
            layer.w1.apply(&y, |i, v| {
                // The requantised value is the table index (the addend
                // carries the +GELU_G), clamped to the table's range.
                g[i] = gelu[(v.clamp(0, 2 * GELU_G)) as usize];
            });
            layer.w2.apply(&g, |i, v| x[i] = residual(x[i], v));
        }
        cache.len += t;
        self.layer_norm(&x, &self.lnf, &mut y);
        let mut logits = vec![0i32; rows * VOCAB];
        self.head.apply(&y, |i, v| {
            logits[i] = v.clamp(-LOGIT_MAX, LOGIT_MAX) as i32;
        });
        logits
    }

    fn check_run(
        &self,
        tokens: &[i64],
        batch: usize,
        t: usize,
        cache: &RefCache,
    ) -> Result<(), ModelError> {
        let fail = |m: String| Err(ModelError::Inference(format!("reference engine: {m}")));
        if cache.batch != batch
            || cache.keys.len() != self.layers.len()
            || cache.heads != self.n_heads
            || cache.dh != self.head_dim()
            || cache.context != self.context
        {
            return fail(format!(
                "a cache for a batch of {} with another shape, running a batch of {batch}",
                cache.batch
            ));
        }
        if batch.checked_mul(t) != Some(tokens.len()) {
            return fail(format!("{} tokens for [{batch}, {t}]", tokens.len()));
        }
        if cache.len + t > self.context {
            return fail(format!(
                "{} positions after {} exceed the context {}",
                t, cache.len, self.context
            ));
        }
        if let Some(tok) = tokens.iter().find(|&&x| !(0..=BOS).contains(&x)) {
            return fail(format!("token {tok} out of range"));
        }
        Ok(())
    }

    /// intmodel.py's `layer_norm` on every row of `x`.
    #[inline(always)]
    fn layer_norm(&self, x: &[i32], norm: &Norm, out: &mut [i8]) {
        let d = self.d_model;
        let k = norm.k;
        let (round, off) = ((1i64 << k) >> 1, (1i64 << 16) >> k);
        for (xr, yr) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            // |sum| <= 256 · XMAX; the mean truncates toward zero (tdiv).
            let s: i64 = xr.iter().map(|&v| i64::from(v)).sum();
            let m = s / d as i64;
            // xc = x - m is within ±2·XMAX; the numerator of xs is positive.
            let var: i64 = xr
                .iter()
                .map(|&v| {
                    let xc = i64::from(v) - m;
                    let xs = ((xc + (1 << 16) + round) >> k) - off;
                    let xs = xs.clamp(-VAR_CLAMP, VAR_CLAMP);
                    xs * xs
                })
                .sum();
            // var / d <= VAR_CLAMP², the table's last index.
            let r = i64::from(self.rsqrt[(var / d as i64) as usize]);
            for ((y, &v), &shift) in yr.iter_mut().zip(xr).zip(&norm.shift) {
                // |u| < 2^29 = LN_OFF, so the numerator is positive.
                let u = (i64::from(v) - m) * r;
                let q = ((u + LN_OFF + ((1i64 << shift) >> 1)) >> shift) - (LN_OFF >> shift);
                *y = q.clamp(-127, 127) as i8;
            }
        }
    }

    /// Attention of this run's rows over every position before them and
    /// themselves; the positions after a row are masked to a weight of 0 by
    /// the semantics (load checked it), so they are skipped.
    #[inline(always)]
    fn attention(
        &self,
        layer: &Layer,
        cache: &RefCache,
        l: usize,
        qkv: &[i8],
        t: usize,
        out: &mut [i8],
    ) {
        let (d, dh, cap) = (self.d_model, self.head_dim(), cache.cap);
        let past = cache.len;
        let last = layer.exp.len() - 1;
        let mut scores = vec![0i32; past + t];
        let mut acc = vec![0i32; dh];
        let keys = &cache.keys[l];
        let values = &cache.values[l];
        for (r, (q_row, o_row)) in qkv
            .chunks_exact(3 * d)
            .zip(out.chunks_exact_mut(d))
            .enumerate()
        {
            let (b, i) = (r / t, r % t);
            let len = past + i + 1;
            for h in 0..self.n_heads {
                let bh = b * self.n_heads + h;
                let q = &q_row[h * dh..][..dh];
                let k = &keys[bh * dh * cap..][..dh * cap];
                let v = &values[bh * cap * dh..][..cap * dh];
                // scores[j] = Σ_c q[c]·k[c][j]: |score| <= dh·127² < 2^22.
                let s = &mut scores[..len];
                s.fill(0);
                for (&qc, kc) in q.iter().zip(k.chunks_exact(cap)) {
                    axpy(s, i32::from(qc), &kc[..len]);
                }
                let mx = s.iter().copied().max().unwrap_or(0);
                // Weights from the table; mx - s >= 0, so the shift floors.
                let mut sum = 0i32;
                acc.fill(0);
                for (j, &sj) in s.iter().enumerate() {
                    let idx = (((mx - sj) >> layer.exp_shift) as usize).min(last);
                    let p = layer.exp[idx];
                    if p != 0 {
                        sum += p;
                        axpy(&mut acc, p, &v[j * dh..][..dh]);
                    }
                }
                // sum >= 127 (the maximum's own weight) and |acc| <= 127·sum,
                // so the numerator is positive and the quotient in 1..=255.
                // All within i32: sum <= 127·MAX_CONTEXT.
                let o = &mut o_row[h * dh..][..dh];
                for (o, &a) in o.iter_mut().zip(&acc) {
                    *o = ((a + 128 * sum + sum / 2) / sum - 128) as i8;
                }
            }
        }
    }
}

/// `x + req(...)` of a residual branch, clamped to the stream's bound.
#[inline(always)]
fn residual(x: i32, v: i64) -> i32 {
    (i64::from(x) + v.clamp(-XMAX, XMAX)).clamp(-XMAX, XMAX) as i32
}

impl RefCache {
    /// Stores the keys and values of this run's `t` positions per sequence
    /// from the rows of `qkv` (`[batch·t, 3·d]`).
    #[inline(always)]
    fn append(&mut self, l: usize, qkv: &[i8], t: usize, d: usize) {
        let (dh, cap, past) = (self.dh, self.cap, self.len);
        let (keys, values) = (&mut self.keys[l], &mut self.values[l]);
        for (r, row) in qkv.chunks_exact(3 * d).enumerate() {
            let (b, pos) = (r / t, past + r % t);
            for h in 0..self.heads {
                let bh = b * self.heads + h;
                let k = &row[d + h * dh..][..dh];
                for (c, &kc) in k.iter().enumerate() {
                    keys[(bh * dh + c) * cap + pos] = kc;
                }
                let v = &row[2 * d + h * dh..][..dh];
                values[(bh * cap + pos) * dh..][..dh].copy_from_slice(v);
            }
        }
    }
}

impl Linear {
    /// `emit(i, req(acc))` for every output `i` of `input · W` (`[rows, k]`
    /// row-major input, output index `row · n + col`).
    #[inline(always)]
    fn apply(&self, input: &[i8], mut emit: impl FnMut(usize, i64)) {
        for (r, row) in input.chunks_exact(self.k).enumerate() {
            let cols = self.wt.chunks_exact(self.k).zip(&self.mul).zip(&self.add);
            for (c, ((w, &mul), &add)) in cols.enumerate() {
                emit(r * self.n + c, req(dot(row, w), mul, add));
            }
        }
    }
}

/// intmodel.py's `req` before the clamp: floor((acc·mul + add) / 2^24) -
/// 2^31. |acc| <= 1024·127² < 2^24 and 0 <= mul < 2^31, so the product fits
/// an i64; `add` is unbounded, and the sum wraps as numpy's int64 does.
#[inline(always)]
fn req(acc: i32, mul: i64, add: i64) -> i64 {
    ((i64::from(acc) * mul).wrapping_add(add) >> REQ_S) - REQ_OFF
}

/// Σ a[i]·b[i] of two int8 slices (at most 1024 terms of |·| <= 127², so
/// far inside i32). Widening through i16 lets the compiler use the
/// multiply-add of pairs (pmaddwd) when it vectorises the loop.
#[inline(always)]
fn dot(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(i16::from(x) * i16::from(y)))
        .sum()
}

/// acc[i] += s·v[i].
#[inline(always)]
fn axpy(acc: &mut [i32], s: i32, v: &[i8]) {
    for (a, &x) in acc.iter_mut().zip(v) {
        *a += s * i32::from(x);
    }
}

/// RSQRT[v] = round(2^13 / sqrt(max(v, 1))) for v in 0..=255², computed as
/// numpy does (IEEE sqrt and division are exact-rounded; np.round rounds
/// half to even, and no entry is a tie).
fn rsqrt_table() -> Vec<i32> {
    (0..=VAR_CLAMP * VAR_CLAMP)
        .map(|v| {
            let r = f64::from(1u32 << RSQRT_BITS) / (v.max(1) as f64).sqrt();
            r.round_ties_even() as i32
        })
        .collect()
}

/// The parts of `llmfs.config` the engine uses.
struct Config {
    context: usize,
    d_model: usize,
    n_heads: usize,
    layers: Vec<LayerQuant>,
    lnf_k: u32,
}

struct LayerQuant {
    ln1_k: u32,
    ln2_k: u32,
    exp_shift: u32,
}

impl Config {
    fn parse(json: &str) -> Result<Config, ModelError> {
        let v: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| bad(format!("llmfs.config is not JSON: {e}")))?;
        if v.get("semantics").and_then(|s| s.as_str()) != Some(SEMANTICS) {
            return Err(bad(format!("not an {SEMANTICS} model")));
        }
        let context = uint(&v, "context", MAX_CONTEXT as u64)? as usize;
        let d_model = uint(&v, "d_model", MAX_D_MODEL as u64)? as usize;
        let n_heads = uint(&v, "n_heads", MAX_D_MODEL as u64)? as usize;
        let n_layers = uint(&v, "n_layers", MAX_LAYERS as u64)? as usize;
        if context < 2 || d_model == 0 || n_heads == 0 || n_layers == 0 {
            return Err(bad(
                "context, d_model, n_heads and n_layers must be positive",
            ));
        }
        if d_model % n_heads != 0 {
            return Err(bad("d_model must be a multiple of n_heads"));
        }
        if let Some(vocab) = v.get("vocab") {
            if vocab.as_u64() != Some(VOCAB as u64) {
                return Err(bad(format!("vocab {vocab}, expected {VOCAB}")));
            }
        }
        let quant = v.get("quant").ok_or_else(|| bad("config lacks quant"))?;
        let layers = quant
            .get("layers")
            .and_then(|l| l.as_array())
            .ok_or_else(|| bad("quant lacks layers"))?;
        if layers.len() != n_layers {
            return Err(bad(format!("{} quant layers for {n_layers}", layers.len())));
        }
        let layers = layers
            .iter()
            .map(|l| {
                Ok(LayerQuant {
                    ln1_k: uint(l, "ln1_k", MAX_SHIFT)? as u32,
                    ln2_k: uint(l, "ln2_k", MAX_SHIFT)? as u32,
                    exp_shift: uint(l, "exp_shift", MAX_SHIFT)? as u32,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Config {
            context,
            d_model,
            n_heads,
            layers,
            lnf_k: uint(quant, "lnf_k", MAX_SHIFT)? as u32,
        })
    }
}

/// `v[key]` as an integer in 0..=max.
fn uint(v: &serde_json::Value, key: &str, max: u64) -> Result<u64, ModelError> {
    v.get(key)
        .and_then(|x| x.as_u64())
        .filter(|&x| x <= max)
        .ok_or_else(|| bad(format!("config {key} missing or not in 0..={max}")))
}

/// The initializers by name.
struct Params<'t, 'a> {
    by_name: HashMap<&'t str, &'t Tensor<'a>>,
}

impl<'t, 'a> Params<'t, 'a> {
    fn index(tensors: &'t [Tensor<'a>]) -> Result<Self, ModelError> {
        let mut by_name = HashMap::with_capacity(tensors.len());
        for t in tensors {
            if by_name.insert(t.name.as_str(), t).is_some() {
                return Err(bad(format!("initializer {} given twice", t.name)));
            }
        }
        Ok(Params { by_name })
    }

    /// The tensor `name`, which must have shape `dims`.
    fn get(&self, name: &str, dims: Option<&[usize]>) -> Result<&'t Tensor<'a>, ModelError> {
        let t = self
            .by_name
            .get(name)
            .ok_or_else(|| bad(format!("no initializer {name}")))?;
        match dims {
            Some(dims) if t.dims != dims => Err(bad(format!(
                "{name} has shape {:?}, expected {dims:?}",
                t.dims
            ))),
            _ => Ok(t),
        }
    }

    /// An int32 vector (of length `len` when given).
    fn i32s(&self, name: &str, len: Option<usize>) -> Result<Vec<i32>, ModelError> {
        let t = self.get(name, len.as_ref().map(std::slice::from_ref))?;
        if t.dims.len() != 1 {
            return Err(bad(format!("{name} is not a vector")));
        }
        t.to_i32()
    }

    fn embedding(&self, name: &str, rows: usize, d: usize) -> Result<Vec<i32>, ModelError> {
        let e = self.get(name, Some(&[rows, d]))?.to_i32()?;
        if e.iter().any(|v| v.unsigned_abs() > MAX_EMBEDDING as u32) {
            return Err(bad(format!("{name}: embedding of 2^30 or more")));
        }
        Ok(e)
    }

    /// A LayerNorm's divisors: powers of two in 1..=LN_OFF.
    fn norm(&self, name: &str, k: u32, d: usize) -> Result<Norm, ModelError> {
        let div = self.get(name, Some(&[d]))?.to_i32()?;
        let shift = div
            .iter()
            .map(|&v| {
                (v >= 1 && i64::from(v) <= LN_OFF && v.count_ones() == 1)
                    .then(|| v.trailing_zeros())
            })
            .collect::<Option<Vec<u32>>>()
            .ok_or_else(|| {
                bad(format!(
                    "{name}: a divisor is not a power of two in 1..=2^29"
                ))
            })?;
        Ok(Norm { k, shift })
    }

    /// Weights `prefix + w` (`[k, n]` int8, none -128), multipliers `m` (0 <=
    /// m < 2^31) and addends `c` (`[n]` int64).
    fn linear(
        &self,
        prefix: &str,
        w: &str,
        m: &str,
        c: &str,
        k: usize,
        n: usize,
    ) -> Result<Linear, ModelError> {
        let name = format!("{prefix}{w}");
        let weights = self.get(&name, Some(&[k, n]))?.to_i8()?;
        if weights.contains(&i8::MIN) {
            return Err(bad(format!("{name}: int8 weight -128")));
        }
        let mut wt = vec![0i8; k * n];
        for (i, row) in weights.chunks_exact(n).enumerate() {
            for (j, &w) in row.iter().enumerate() {
                wt[j * k + i] = w;
            }
        }
        let m_name = format!("{prefix}{m}");
        let mul = self.get(&m_name, Some(&[n]))?.to_i64()?;
        if mul.iter().any(|&m| !(0..REQ_OFF).contains(&m)) {
            return Err(bad(format!("{m_name}: a multiplier not in 0..2^31")));
        }
        let add = self.get(&format!("{prefix}{c}"), Some(&[n]))?.to_i64()?;
        Ok(Linear { k, n, wt, mul, add })
    }
}

fn bad(detail: impl Into<String>) -> ModelError {
    ModelError::BadModel(format!("{SEMANTICS}: {}", detail.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(name: &str) -> Vec<u8> {
        let path = format!("{}/models/test-int/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn rsqrt_table_is_the_graphs() {
        let bytes = model("model.onnx");
        let proto = onnx_proto::parse_model(&bytes).unwrap();
        let graph = proto
            .initializers
            .iter()
            .find(|t| t.name.starts_with("rsqrt_"))
            .expect("the graph's RSQRT constant");
        assert_eq!(graph.to_i32().unwrap(), rsqrt_table());
    }

    #[test]
    fn vector_and_portable_paths_agree() {
        for name in ["model.onnx", "random-extreme.onnx"] {
            let r = Reference::load(&model(name)).unwrap();
            let (batch, t) = (3, 100);
            let tokens: Vec<i64> = (0..batch * t)
                .map(|i| {
                    if i % t == 0 {
                        BOS
                    } else {
                        (i * 7919 % 256) as i64
                    }
                })
                .collect();
            let mut c1 = RefCache::new(&r, batch);
            let mut c2 = RefCache::new(&r, batch);
            let portable = r.forward(&tokens, batch, t, &mut c1);
            assert_eq!(portable, r.forward_fastest(&tokens, batch, t, &mut c2));
            assert_eq!(c1.keys(1), c2.keys(1));
        }
    }

    #[test]
    fn engines_can_be_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Reference>();
        send_sync::<RefCache>();
    }

    #[test]
    fn rsqrt_table_ends() {
        let t = rsqrt_table();
        assert_eq!(t.len(), 65026);
        assert_eq!((t[0], t[1], t[4], t[65025]), (8192, 8192, 4096, 32));
    }

    #[test]
    fn req_floors_and_wraps_like_numpy() {
        // floor((-1·1 + 2^55) / 2^24) - 2^31 = -1
        assert_eq!(req(-1, 1, 1 << 55), -1);
        assert_eq!(req(0, 0, (1 << 55) + (1 << 24)), 1);
        // A wrapping sum is a large negative value, clamped by every caller.
        assert!(req(1, 1, i64::MAX) < -LOGIT_MAX);
    }

    #[test]
    fn dot_and_axpy() {
        let a: Vec<i8> = (0..100).map(|i| (i * 37 % 255 - 127) as i8).collect();
        let b: Vec<i8> = (0..100).map(|i| (i * 91 % 255 - 127) as i8).collect();
        let want: i32 = a.iter().zip(&b).map(|(&x, &y)| x as i32 * y as i32).sum();
        assert_eq!(dot(&a, &b), want);
        let mut acc = vec![1i32; 100];
        axpy(&mut acc, -127, &a);
        assert_eq!(acc[3], 1 - 127 * a[3] as i32);
    }
}
