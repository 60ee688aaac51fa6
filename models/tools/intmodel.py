"""The integer model (semantics `llmfs-int8-v1`): its executable
specification in numpy, post-training quantisation of a float model, and the
ONNX graph that ONNX Runtime runs.

Every value that reaches the logits is an integer computed by the rules
below, so every kernel on every ISA and execution provider gives the same
result (docs/INTEGER_MODEL.md states the same rules op by op, with bounds).
`forward()` here is the reference in numpy; `src/model/reference.rs` is the
reference in Rust; `build_graph()` writes the graph that computes it with
ONNX Runtime's integer kernels. Tests check all three agree bitwise.

Arithmetic rules:
  - tdiv(a, b): division truncating toward zero (C, Rust, ONNX `Div` on
    integers). Where the rounding direction matters the numerator is made
    non-negative by adding a multiple of the divisor first, so truncation is
    floor and the result is round-half-up.
  - Every product of two tensors is MatMulInteger int8 x int8 (values in
    [-127, 127], no zero points) accumulating in int32.
  - Every reduction (ReduceSum, ReduceMax) stays below 2^24 in magnitude, so
    an execution provider that reduces through float32 is exact too.
  - Requantisation of a product multiplies in int64 (`req`).

usage:
  intmodel.py quantize FLOAT.onnx OUT.onnx [--calib FILE ...]   PTQ of a float model
  intmodel.py check MODEL.onnx                                  numpy reference vs ORT, bitwise
  intmodel.py random CONFIG.json OUT.onnx [--seed N] [--extreme] random weights (tests)
  intmodel.py rebuild MODEL.onnx ...                            re-embed the CPU variant, canonical graph unchanged
  intmodel.py speed MODEL.onnx [--past P] [--repeats N]         canonical graph vs CPU variant
"""

import argparse
import hashlib
import json
import math
import os
import re
import sys

import numpy as np

SEMANTICS = "llmfs-int8-v1"
XMAX = 32767  # residual stream bound: |x| <= XMAX
XFRAC = 9  # residual value = x / 2^XFRAC
RSQRT_BITS = 13  # RSQRT[v] = round(2^13 / sqrt(max(v, 1)))
VAR_CLAMP = 255  # |xs| <= 255 in the variance
LOGIT_FRAC = 10  # logit in nats = L / 2^LOGIT_FRAC
LOGIT_MAX = 1 << 20
REQ_S = 24  # requantisation multipliers in Q24
REQ_OFF = 1 << 31  # offset making requantisation numerators non-negative
GELU_G = 2048  # GELU table index = h + G, h in [-G, G]
MASK = 1 << 22  # added (negated) to masked attention scores
LN_OFF = 1 << 29  # offset making the LN output numerators non-negative


def tdiv(a, b):
    """Integer division truncating toward zero, elementwise (int64)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) ^ (b < 0), -q, q)


def rsqrt_table():
    v = np.arange(VAR_CLAMP * VAR_CLAMP + 1, dtype=np.float64)
    return np.round((1 << RSQRT_BITS) / np.sqrt(np.maximum(v, 1))).astype(np.int32)


# --------------------------------------------------------------------------
# The reference forward pass
# --------------------------------------------------------------------------


def layer_norm(x, k, div):
    """x int [..., d] -> int8-valued [..., d]. `k` scales xs for the
    variance; `div[c]` = 2^(RSQRT_BITS + k - q_c) divides the output."""
    d = x.shape[-1]
    s = x.sum(-1, keepdims=True)
    m = tdiv(s, d)
    xc = x - m
    xs = (xc + (1 << 16) + ((1 << k) >> 1)) // (1 << k) - ((1 << 16) >> k)
    xs = np.clip(xs, -VAR_CLAMP, VAR_CLAMP)
    v = (xs * xs).sum(-1, keepdims=True) // d
    r = RSQRT[v].astype(np.int64)
    u = xc * r
    y = (u + LN_OFF + div // 2) // div - LN_OFF // div
    return np.clip(y, -127, 127)


def req(acc, mul, add, lo, hi):
    """Requantisation: clamp(floor((acc * mul + add) / 2^REQ_S) - REQ_OFF)."""
    t = (acc.astype(np.int64) * mul + add) // (1 << REQ_S) - REQ_OFF
    return np.clip(t, lo, hi)


def forward(p, cfg, tokens, cache=None):
    """tokens int [B, T] (BOS first when the cache is empty); cache a list
    of (k [B,H,dh,P], v [B,H,P,dh]) per layer or None. Returns the int
    logits [B, T, V] and the new cache."""
    tokens = np.asarray(tokens, dtype=np.int64)
    b, t = tokens.shape
    d, h, nl = cfg["d_model"], cfg["n_heads"], cfg["n_layers"]
    dh = d // h
    q = cfg["quant"]
    past = 0 if cache is None else cache[0][0].shape[3]
    pos = np.arange(past, past + t)
    x = np.clip(p["tok_emb"][tokens].astype(np.int64) + p["pos_emb"][pos], -XMAX, XMAX)
    # mask[i, j] for query row past + i and key column j
    cols = np.arange(past + t)
    mask = np.where(cols[None, :] > (past + np.arange(t))[:, None], -MASK, 0)
    new_cache = []
    for l in range(nl):
        lq = q["layers"][l]
        pre = f"h{l}."
        y = layer_norm(x, lq["ln1_k"], p[pre + "ln1.div"].astype(np.int64))
        acc = y @ p[pre + "attn.wqkv"].astype(np.int64)
        qkv = req(acc, p[pre + "attn.mqkv"], p[pre + "attn.cqkv"], -127, 127)
        qh = qkv[..., :d].reshape(b, t, h, dh).transpose(0, 2, 1, 3)
        kh = qkv[..., d : 2 * d].reshape(b, t, h, dh).transpose(0, 2, 3, 1)
        vh = qkv[..., 2 * d :].reshape(b, t, h, dh).transpose(0, 2, 1, 3)
        if cache is not None:
            kh = np.concatenate([cache[l][0].astype(np.int64), kh], axis=3)
            vh = np.concatenate([cache[l][1].astype(np.int64), vh], axis=2)
        new_cache.append((kh.astype(np.int8), vh.astype(np.int8)))
        scores = qh @ kh + mask  # [B, H, T, P+T]
        mx = scores.max(-1, keepdims=True)
        idx = np.minimum((mx - scores) // (1 << lq["exp_shift"]), len(p[pre + "attn.exp"]) - 1)
        pr = p[pre + "attn.exp"][idx].astype(np.int64)
        ssum = pr.sum(-1, keepdims=True)
        acc = pr @ vh  # [B, H, T, dh]
        o = (acc + 128 * ssum + ssum // 2) // ssum - 128
        o = o.transpose(0, 2, 1, 3).reshape(b, t, d)
        acc = o @ p[pre + "attn.wo"].astype(np.int64)
        x = np.clip(x + req(acc, p[pre + "attn.mo"], p[pre + "attn.co"], -XMAX, XMAX), -XMAX, XMAX)
        y = layer_norm(x, lq["ln2_k"], p[pre + "ln2.div"].astype(np.int64))
        acc = y @ p[pre + "mlp.w1"].astype(np.int64)
        gi = req(acc, p[pre + "mlp.m1"], p[pre + "mlp.c1"], 0, 2 * GELU_G)
        g = p[pre + "mlp.gelu"][gi].astype(np.int64)
        acc = g @ p[pre + "mlp.w2"].astype(np.int64)
        x = np.clip(x + req(acc, p[pre + "mlp.m2"], p[pre + "mlp.c2"], -XMAX, XMAX), -XMAX, XMAX)
    y = layer_norm(x, q["lnf_k"], p["lnf.div"].astype(np.int64))
    acc = y @ p["head.w"].astype(np.int64)
    logits = req(acc, p["head.m"], p["head.c"], -LOGIT_MAX, LOGIT_MAX)
    return logits, new_cache


RSQRT = rsqrt_table()

# --------------------------------------------------------------------------
# Post-training quantisation of a float model
# --------------------------------------------------------------------------


def load_float(path):
    """Float weights of a graph.py model under train.py's names (the
    attention scale is already folded into wq)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(path)
    cfg = json.loads({e.key: e.value for e in m.metadata_props}["llmfs.config"])
    w = {}
    for i in m.graph.initializer:
        n = re.sub(r"_\d+$", "", i.name)
        w[n] = numpy_helper.to_array(i).astype(np.float64)
    out = {"tok_emb": w["tok_emb"], "pos_emb": w["pos_emb"], "lnf.g": w["lnf_g"], "lnf.b": w["lnf_b"],
           "head.w": w["head_w"], "head.b": w["head_b"]}
    for l in range(cfg["n_layers"]):
        for k in ["ln1_g", "ln1_b", "attn_wqkv", "attn_bqkv", "attn_wo", "attn_bo", "ln2_g", "ln2_b",
                  "mlp_w1", "mlp_b1", "mlp_w2", "mlp_b2"]:
            a, b = k.split("_", 1)
            out[f"h{l}.{a}.{b}"] = w[f"h{l}_{k}"]
    return cfg, out


def gelu(z):
    erf = np.vectorize(math.erf)
    return 0.5 * z * (1 + erf(z / math.sqrt(2)))


def float_forward(w, cfg, tokens, stats):
    """The float model on one chunk [T], recording the ranges PTQ needs."""
    d, h = cfg["d_model"], cfg["n_heads"]
    dh = d // h
    t = len(tokens)

    def rec(k, a, axis=None):
        v = np.abs(a).max(axis=axis) if axis is not None else np.abs(a).max()
        stats[k] = np.maximum(stats.get(k, 0), v)

    def ln(x, g, b, key):
        xc = x - x.mean(-1, keepdims=True)
        rec(key + ".xc", xc)
        z = xc / np.sqrt((xc ** 2).mean(-1, keepdims=True) + 1e-5)
        rec(key + ".z", z, axis=0)
        return z * g + b

    x = w["tok_emb"][tokens] + w["pos_emb"][:t]
    mask = np.triu(np.full((t, t), -np.inf), 1)
    for l in range(cfg["n_layers"]):
        pre = f"h{l}."
        hh = ln(x, w[pre + "ln1.g"], w[pre + "ln1.b"], pre + "ln1")
        qkv = hh @ w[pre + "attn.wqkv"] + w[pre + "attn.bqkv"]
        q, k, v = qkv[:, :d], qkv[:, d : 2 * d], qkv[:, 2 * d :]
        rec(pre + "q", q), rec(pre + "k", k), rec(pre + "v", v)
        q = q.reshape(t, h, dh).transpose(1, 0, 2)
        k = k.reshape(t, h, dh).transpose(1, 0, 2)
        v = v.reshape(t, h, dh).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        o = ((s / s.sum(-1, keepdims=True)) @ v).transpose(1, 0, 2).reshape(t, d)
        x = x + o @ w[pre + "attn.wo"] + w[pre + "attn.bo"]
        hh = ln(x, w[pre + "ln2.g"], w[pre + "ln2.b"], pre + "ln2")
        hh = hh @ w[pre + "mlp.w1"] + w[pre + "mlp.b1"]
        rec(pre + "mlp.h", hh)
        hh = gelu(hh)
        rec(pre + "mlp.g", hh)
        x = x + hh @ w[pre + "mlp.w2"] + w[pre + "mlp.b2"]
    hh = ln(x, w["lnf.g"], w["lnf.b"], "lnf")
    return hh @ w["head.w"] + w["head.b"]


def calibrate(w, cfg, samples):
    stats = {}
    for s in samples:
        float_forward(w, cfg, np.array([256] + list(s[:-1])), stats)
    return stats


def ln_params(stats, key, margin=1.0):
    """k (variance shift) and the per-channel output power q_c."""
    xc_max = stats[key + ".xc"] * (1 << XFRAC) * margin
    k = 0
    while xc_max / (1 << k) > VAR_CLAMP:
        k += 1
    zmax = np.maximum(stats[key + ".z"] * margin, 1e-3)
    qc = np.clip(np.floor(np.log2(127.0 / zmax)), 0, RSQRT_BITS + k).astype(np.int64)
    div = (1 << (RSQRT_BITS + k - qc)).astype(np.int32)
    return k, qc, div


def quant_weight(wf):
    """Per-output-column symmetric int8: (int8 weights, column scales)."""
    s = np.maximum(np.abs(wf).max(axis=0), 1e-12) / 127.0
    return np.clip(np.round(wf / s), -127, 127).astype(np.int8), s


def req_consts(col_scale, bias, out_scale, offset=0):
    """Multiplier and addend of `req` so that the result is
    round((acc * col_scale + bias) / out_scale) + offset."""
    mul = np.round(col_scale / out_scale * (1 << REQ_S)).astype(np.int64)
    assert (mul < (1 << 31)).all(), "requantisation multiplier out of range"
    b = np.round(bias / out_scale * (1 << REQ_S))
    assert (np.abs(b) < (1 << 54)).all(), "requantisation bias out of range"
    add = (b.astype(np.int64) + (1 << (REQ_S - 1))
           + (REQ_OFF + offset) * (1 << REQ_S))
    return mul, add


def quantize(cfg, w, stats):
    d, nh = cfg["d_model"], cfg["n_heads"]
    p = {}
    quant = {"layers": []}
    xs = float(1 << XFRAC)
    p["tok_emb"] = np.clip(np.round(w["tok_emb"] * xs), -XMAX, XMAX).astype(np.int32)
    p["pos_emb"] = np.clip(np.round(w["pos_emb"] * xs), -XMAX, XMAX).astype(np.int32)
    for l in range(cfg["n_layers"]):
        pre = f"h{l}."
        lq = {}
        k1, q1, div1 = ln_params(stats, pre + "ln1")
        lq["ln1_k"] = k1
        p[pre + "ln1.div"] = div1
        # Fold the LN gain, bias and the per-channel power into the product.
        wf = (w[pre + "ln1.g"] * 2.0 ** -q1)[:, None] * w[pre + "attn.wqkv"]
        bias = w[pre + "ln1.b"] @ w[pre + "attn.wqkv"] + w[pre + "attn.bqkv"]
        wi, cs = quant_weight(wf)
        p[pre + "attn.wqkv"] = wi
        s_q, s_k, s_v = (stats[pre + n] / 127.0 for n in ("q", "k", "v"))
        out_scale = np.concatenate([np.full(d, s_q), np.full(d, s_k), np.full(d, s_v)])
        p[pre + "attn.mqkv"], p[pre + "attn.cqkv"] = req_consts(cs, bias, out_scale)
        # Softmax table: step 2^e * s_q * s_k nats, about 1/64 nat or finer.
        unit = s_q * s_k
        e = max(0, int(math.floor(math.log2(1.0 / (64.0 * unit)))))
        step = (1 << e) * unit
        n = int(math.ceil(math.log(127.0 / 0.5) / step)) + 1
        table = np.round(127.0 * np.exp(-np.arange(n) * step))
        table[-1] = 0
        p[pre + "attn.exp"] = table.astype(np.int32)
        lq["exp_shift"] = e
        wi, cs = quant_weight(s_v * w[pre + "attn.wo"])
        p[pre + "attn.wo"] = wi
        p[pre + "attn.mo"], p[pre + "attn.co"] = req_consts(cs, w[pre + "attn.bo"], 1.0 / xs)
        k2, q2, div2 = ln_params(stats, pre + "ln2")
        lq["ln2_k"] = k2
        p[pre + "ln2.div"] = div2
        wf = (w[pre + "ln2.g"] * 2.0 ** -q2)[:, None] * w[pre + "mlp.w1"]
        bias = w[pre + "ln2.b"] @ w[pre + "mlp.w1"] + w[pre + "mlp.b1"]
        wi, cs = quant_weight(wf)
        p[pre + "mlp.w1"] = wi
        s_h = stats[pre + "mlp.h"] / GELU_G
        p[pre + "mlp.m1"], p[pre + "mlp.c1"] = req_consts(cs, bias, s_h, offset=GELU_G)
        s_g = stats[pre + "mlp.g"] / 127.0
        gt = gelu((np.arange(2 * GELU_G + 1) - GELU_G) * s_h) / s_g
        p[pre + "mlp.gelu"] = np.clip(np.round(gt), -127, 127).astype(np.int32)
        wi, cs = quant_weight(s_g * w[pre + "mlp.w2"])
        p[pre + "mlp.w2"] = wi
        p[pre + "mlp.m2"], p[pre + "mlp.c2"] = req_consts(cs, w[pre + "mlp.b2"], 1.0 / xs)
        quant["layers"].append(lq)
    kf, qf, divf = ln_params(stats, "lnf")
    quant["lnf_k"] = kf
    p["lnf.div"] = divf
    wf = (w["lnf.g"] * 2.0 ** -qf)[:, None] * w["head.w"]
    bias = w["lnf.b"] @ w["head.w"] + w["head.b"]
    wi, cs = quant_weight(wf)
    p["head.w"] = wi
    p["head.m"], p["head.c"] = req_consts(cs, bias, 2.0 ** -LOGIT_FRAC)
    cfg = dict(cfg)
    cfg["semantics"] = SEMANTICS
    cfg["quant"] = quant
    return cfg, p


# --------------------------------------------------------------------------
# The ONNX graph
# --------------------------------------------------------------------------

OPSET = 18


def build_graph(cfg, p, u8=False):
    """The graph computing `forward` with ONNX Runtime's integer kernels.
    Inputs: tokens int64 [B, T], past_k_<l> int8 [B, H, dh, P], past_v_<l>
    int8 [B, H, P, dh]. Outputs: logits int32 [B, T, V], present_k_<l>,
    present_v_<l> (int8). Parameters are initializers under their names in
    `p`, which is how the Rust reference engine finds them.

    `u8` builds the CPU variant of the same semantics: every int8 operand of
    a product is stored as uint8 `value + 128` and multiplied with zero
    point 128, which gives the same int32 products (`(a+128) - 128 = a`)
    through ONNX Runtime's vectorised uint8 x uint8 kernels instead of its
    scalar int8 x int8 loop; the cache is uint8 too. Its requantisation and
    clamps take fewer passes (`req_u64`, `Clip`). The CUDA provider has no
    uint8 MatMulInteger, so the canonical graph stays int8 x int8, and
    `with_cpu_variant` embeds this one beside it (docs/INTEGER_MODEL.md,
    "The CPU variant")."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    d, nh, nl, ctx = cfg["d_model"], cfg["n_heads"], cfg["n_layers"], cfg["context"]
    dh = d // nh
    vocab = p["head.w"].shape[1]
    q = cfg["quant"]
    nodes, inits = [], []
    counter = [0]
    consts = {}

    def name(prefix):
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def const(arr, prefix="c"):
        arr = np.asarray(arr)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in consts:
            n = name(prefix)
            inits.append(numpy_helper.from_array(arr, n))
            consts[key] = n
        return consts[key]

    def i32(v):
        return const(np.array(v, dtype=np.int32))

    def i64(v):
        return const(np.array(v, dtype=np.int64))

    def node(op, inputs, prefix=None, **attrs):
        out = name(prefix or op.lower())
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    act = TensorProto.UINT8 if u8 else TensorProto.INT8
    shift = 128 if u8 else 0
    zp = [const(np.array(128, dtype=np.uint8), "zp")] * 2 if u8 else []
    exp_shifts = {f"h{l}.attn.exp": q["layers"][l]["exp_shift"] for l in range(nl)}

    def expand_exp(n, e):
        """Whether the CPU variant's softmax table is expanded to n 2^e
        entries, `exp[min(i >> e, n - 1)]` at `i`: then `min(mx - sc, n 2^e
        - 1)` indexes it, the same entry as `min((mx - sc) >> e, n - 1)`
        (`mx - sc >= 0`), one integer division pass fewer per layer."""
        return u8 and n << e <= 1 << 16

    for key, arr in p.items():
        arr = np.asarray(arr)
        if u8 and arr.dtype == np.int64:
            continue  # requantisation constants: `req` writes them as uint64
        if u8 and arr.dtype == np.int8:
            arr = (arr.astype(np.int16) + 128).astype(np.uint8)
        if u8 and key.endswith(".mlp.gelu"):
            arr = arr + 128
        if u8 and (key.endswith(".mlp.gelu") or key.endswith(".attn.exp")):
            # Table rows for `lookup` (GatherElements): the GELU row as
            # uint8 (its values + 128 lie in 1..255), so no Cast follows.
            row = arr.astype(np.uint8 if key.endswith(".mlp.gelu") else arr.dtype).reshape(1, -1)
            e = exp_shifts.get(key)
            if e is not None and expand_exp(len(arr), e):
                # Indexed by the score difference itself, no division.
                row = row[:, np.minimum(np.arange(len(arr) << e) >> e, len(arr) - 1)]
            inits.append(numpy_helper.from_array(row, key + ".row"))
            continue
        inits.append(numpy_helper.from_array(arr, key))

    def clamp(x, lo, hi, c):
        if u8:  # one pass instead of two (the CUDA provider lacks int32 Clip)
            return node("Clip", [x, c(lo), c(hi)])
        return node("Min", [node("Max", [x, c(lo)]), c(hi)])

    def lookup(key, idx):
        """`p[key][idx]`, elementwise. The CPU variant looks the table up
        with GatherElements on a [1, n] row: the same values, and ONNX
        Runtime's CPU kernel for it is several times faster than Gather's
        element-by-element copy."""
        if not u8:
            return node("Gather", [key, idx], axis=0)
        flat = node("Reshape", [idx, i64([1, -1])])
        looked = node("GatherElements", [key + ".row", flat], axis=1)
        return node("Reshape", [looked, node("Shape", [idx])])

    def matmul(a, b, a_zp=True):
        """MatMulInteger of two int8-semantics operands (uint8 + 128 with
        zero point 128 in the u8 variant); `a_zp` False: `a` holds plain
        non-negative values (attention probabilities) in either variant."""
        if not u8:
            return node("MatMulInteger", [a, b])
        return node("MatMulInteger", [a, b, zp[0] if a_zp else "", zp[1]])

    def layer_norm(x, k, div_key):
        div = p[div_key].astype(np.int64)
        s = node("ReduceSum", [x, i64([-1])], keepdims=1)
        xc = node("Sub", [x, node("Div", [s, i32(d)])])
        xs = node("Sub", [node("Div", [node("Add", [xc, i32((1 << 16) + ((1 << k) >> 1))]), i32(1 << k)]),
                          i32((1 << 16) >> k)])
        xs = clamp(xs, -VAR_CLAMP, VAR_CLAMP, i32)
        v = node("Div", [node("ReduceSum", [node("Mul", [xs, xs]), i64([-1])], keepdims=1), i32(d)])
        r = node("Gather", [const(RSQRT, "rsqrt"), v], axis=0)
        u = node("Mul", [xc, r])
        y = node("Add", [u, i32((LN_OFF + div // 2).astype(np.int32))])
        y = node("Sub", [node("Div", [y, div_key]), i32((LN_OFF // div - shift).astype(np.int32))])
        return node("Cast", [clamp(y, -127 + shift, 127 + shift, i32)], to=act)

    def req(acc, mul_key, add_key, lo, hi, to):
        """`to` None: an int8-semantics operand (`act`)."""
        s = shift if to is None else 0
        if u8:
            return req_u64(acc, mul_key, add_key, s, lo, hi, act if to is None else to)
        t = node("Add", [node("Mul", [node("Cast", [acc], to=TensorProto.INT64), mul_key]), add_key])
        t = node("Div", [t, i64(1 << REQ_S)])
        t = node("Sub", [t, i64(REQ_OFF - s)])
        return node("Cast", [clamp(t, lo + s, hi + s, i64)], to=act if to is None else to)

    def req_u64(acc, mul_key, add_key, s, lo, hi, to):
        """The CPU variant's requantisation: six passes instead of ten, in
        uint64 arithmetic modulo 2^64 (docs/INTEGER_MODEL.md, "The CPU
        variant", has the bounds). The addend also carries (2^31 + s) 2^24:
        the numerator `acc * m + c + (2^31 + s) 2^24` lies in (2^54, 2^57), so
        its residue modulo 2^64 is the numerator itself, the right shift is
        the floor division, and the quotient is the canonical value + s +
        2^32 (or below the clamp where the canonical numerator is
        negative); the final Cast keeps its residue modulo 2^32 (int32) or
        2^8 (uint8), which is the value + s."""
        mul = np.asarray(p[mul_key]).astype(np.uint64)
        add = np.asarray(p[add_key]).astype(np.int64) + np.int64((REQ_OFF + s) << REQ_S)
        t = node("Mul", [node("Cast", [acc], to=TensorProto.UINT64), const(mul, "m")])
        t = node("BitShift", [node("Add", [t, const(add.astype(np.uint64), "a")]),
                              const(np.array(REQ_S, dtype=np.uint64), "s")], direction="RIGHT")
        u64 = lambda v: const(np.array(v + s + (1 << 32), dtype=np.uint64))  # noqa: E731
        return node("Cast", [node("Clip", [t, u64(lo), u64(hi)])], to=to)

    tokens = "tokens"
    shape_k0 = node("Shape", ["past_k_0"])
    past = node("Gather", [shape_k0, i64(3)], axis=0)
    shape_tok = node("Shape", [tokens])
    t = node("Gather", [shape_tok, i64(1)], axis=0)
    p_end = node("Add", [past, t])
    positions = node("Range", [past, p_end, i64(1)])
    x = node("Add", [node("Gather", ["tok_emb", tokens], axis=0), node("Gather", ["pos_emb", positions], axis=0)])
    x = clamp(x, -XMAX, XMAX, i32)

    tri = np.triu(np.full((ctx, ctx), -MASK, dtype=np.int32), k=1)
    starts = node("Concat", [node("Unsqueeze", [past, i64([0])]), i64([0])], axis=0)
    pe1 = node("Unsqueeze", [p_end, i64([0])])
    ends = node("Concat", [pe1, pe1], axis=0)
    mask = node("Slice", [const(tri, "causal"), starts, ends, i64([0, 1])])

    b1 = node("Unsqueeze", [node("Gather", [shape_tok, i64(0)], axis=0), i64([0])])
    t1 = node("Unsqueeze", [t, i64([0])])
    heads_shape = node("Concat", [b1, t1, i64([nh, dh])], axis=0)
    model_shape = node("Concat", [b1, t1, i64([d])], axis=0)

    for l in range(nl):
        pre = f"h{l}."
        lq = q["layers"][l]
        y = layer_norm(x, lq["ln1_k"], pre + "ln1.div")
        acc = matmul(y, pre + "attn.wqkv")
        qkv = req(acc, pre + "attn.mqkv", pre + "attn.cqkv", -127, 127, None)
        qn, kn, vn = name("q"), name("k"), name("v")
        nodes.append(helper.make_node("Split", [qkv, i64([d, d, d])], [qn, kn, vn], axis=2))
        qh = node("Transpose", [node("Reshape", [qn, heads_shape])], perm=[0, 2, 1, 3])
        kh = node("Transpose", [node("Reshape", [kn, heads_shape])], perm=[0, 2, 3, 1])
        vh = node("Transpose", [node("Reshape", [vn, heads_shape])], perm=[0, 2, 1, 3])
        k_all, v_all = f"present_k_{l}", f"present_v_{l}"
        nodes.append(helper.make_node("Concat", [f"past_k_{l}", kh], [k_all], axis=3))
        nodes.append(helper.make_node("Concat", [f"past_v_{l}", vh], [v_all], axis=2))
        scores = node("Add", [matmul(qh, k_all), mask])
        mx = node("ReduceMax", [scores, i64([-1])], keepdims=1)
        n_exp = len(p[pre + "attn.exp"])
        if expand_exp(n_exp, lq["exp_shift"]):
            idx = node("Min", [node("Sub", [mx, scores]), i32((n_exp << lq["exp_shift"]) - 1)])
        else:
            idx = node("Min", [node("Div", [node("Sub", [mx, scores]), i32(1 << lq["exp_shift"])]),
                               i32(n_exp - 1)])
        pr = lookup(pre + "attn.exp", idx)
        ssum = node("ReduceSum", [pr, i64([-1])], keepdims=1)
        acc = matmul(node("Cast", [pr], to=act), v_all, a_zp=False)
        bias = node("Add", [node("Mul", [ssum, i32(128)]), node("Div", [ssum, i32(2)])])
        o = node("Div", [node("Add", [acc, bias]), ssum])
        if not u8:  # the u8 variant keeps o + 128
            o = node("Sub", [o, i32(128)])
        o = node("Cast", [o], to=act)
        o = node("Reshape", [node("Transpose", [o], perm=[0, 2, 1, 3]), model_shape])
        acc = matmul(o, pre + "attn.wo")
        x = clamp(node("Add", [x, req(acc, pre + "attn.mo", pre + "attn.co", -XMAX, XMAX, TensorProto.INT32)]),
                  -XMAX, XMAX, i32)
        y = layer_norm(x, lq["ln2_k"], pre + "ln2.div")
        acc = matmul(y, pre + "mlp.w1")
        gi = req(acc, pre + "mlp.m1", pre + "mlp.c1", 0, 2 * GELU_G, TensorProto.INT32)
        g = lookup(pre + "mlp.gelu", gi)
        if not u8:
            g = node("Cast", [g], to=act)
        acc = matmul(g, pre + "mlp.w2")
        x = clamp(node("Add", [x, req(acc, pre + "mlp.m2", pre + "mlp.c2", -XMAX, XMAX, TensorProto.INT32)]),
                  -XMAX, XMAX, i32)

    y = layer_norm(x, q["lnf_k"], "lnf.div")
    acc = matmul(y, "head.w")
    logits = req(acc, "head.m", "head.c", -LOGIT_MAX, LOGIT_MAX, TensorProto.INT32)
    nodes.append(helper.make_node("Identity", [logits], ["logits"]))

    inputs = [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["B", "T"])]
    outs = [helper.make_tensor_value_info("logits", TensorProto.INT32, ["B", "T", vocab])]
    for l in range(nl):
        inputs.append(helper.make_tensor_value_info(f"past_k_{l}", act, ["B", nh, dh, "P"]))
        inputs.append(helper.make_tensor_value_info(f"past_v_{l}", act, ["B", nh, "P", dh]))
        outs.append(helper.make_tensor_value_info(f"present_k_{l}", act, ["B", nh, dh, "PT"]))
        outs.append(helper.make_tensor_value_info(f"present_v_{l}", act, ["B", nh, "PT", dh]))
    graph = helper.make_graph(nodes, "llmfs-int", inputs, outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="llmfs-intmodel")
    model.ir_version = 9
    entry = model.metadata_props.add()
    entry.key, entry.value = "llmfs.config", json.dumps(cfg, sort_keys=True)
    onnx.checker.check_model(model)
    return model


CPU_GRAPH = "llmfs.cpu_graph"


def with_cpu_variant(model, cfg, p):
    """The canonical graph with its u8 CPU variant embedded as the uint8
    initializer `llmfs.cpu_graph` (the serialised ModelProto): one model
    file, one model id; llmfs's CPU engine runs the variant, every other
    engine the canonical graph, and both compute the same integers."""
    from onnx import numpy_helper

    variant = build_graph(cfg, p, u8=True).SerializeToString()
    model.graph.initializer.append(
        numpy_helper.from_array(np.frombuffer(variant, dtype=np.uint8), CPU_GRAPH))
    return model


def canonical_bytes(model):
    """The serialised model without its embedded CPU variant: what
    `rebuild` must leave unchanged."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    keep = [i for i in m.graph.initializer if i.name != CPU_GRAPH]
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep)
    return m.SerializeToString()


def cmd_rebuild(args):
    """Replaces the CPU variant embedded in each model file by the one
    this build of `build_graph` writes; the canonical graph, its
    parameters and metadata stay byte for byte (checked)."""
    import onnx

    for path in args.models:
        model = onnx.load(path)
        before = canonical_bytes(model)
        cfg, p = load_int(path)
        validate(cfg, p)
        keep = [i for i in model.graph.initializer if i.name != CPU_GRAPH]
        del model.graph.initializer[:]
        model.graph.initializer.extend(keep)
        with_cpu_variant(model, cfg, p)
        assert canonical_bytes(model) == before, f"{path}: canonical graph changed"
        onnx.save(model, path)
        digest = hashlib.sha256(before).hexdigest()
        print(f"{path}: CPU variant rebuilt; canonical part sha256 {digest}", file=sys.stderr)


def write_model(cfg, p, path):
    import onnx

    onnx.save(with_cpu_variant(build_graph(cfg, p), cfg, p), path)


def load_int(path):
    """(config, parameters) of an integer model file."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(path)
    cfg = json.loads({e.key: e.value for e in m.metadata_props}["llmfs.config"])
    if cfg.get("semantics") != SEMANTICS:
        raise SystemExit(f"{path}: not an {SEMANTICS} model")
    p = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer
         if not re.match(r"^[a-z]+_\d+$", i.name) and i.name != CPU_GRAPH}
    return cfg, p


def validate(cfg, p):
    """The bounds docs/INTEGER_MODEL.md requires of a model's parameters."""
    d, nh = cfg["d_model"], cfg["n_heads"]
    dh = d // nh
    assert d <= 256 and d % nh == 0, "d_model <= 256"
    assert 4 * d <= 1024, "products of at most 1024 terms"
    assert 2 <= cfg["context"] <= 1024, "attention products of at most 1024 terms"
    assert cfg.get("vocab", 256) == 256, "byte models only"
    q = cfg["quant"]
    shifts = [q["lnf_k"]] + [lq[k] for lq in q["layers"] for k in ("ln1_k", "ln2_k", "exp_shift")]
    assert all(isinstance(k, int) and 0 <= k <= 16 for k in shifts), "shifts in 0..=16"
    types = {"tok_emb": np.int32, "pos_emb": np.int32, "head.w": np.int8, "head.m": np.int64,
             "head.c": np.int64, "lnf.div": np.int32}
    for key, arr in p.items():
        want = types.get(key)
        if re.match(r"h\d+\.", key):
            kind = key.split(".", 1)[1]
            want = {"ln1.div": np.int32, "ln2.div": np.int32, "attn.exp": np.int32,
                    "mlp.gelu": np.int32}.get(kind)
            if want is None:
                want = np.int8 if kind.split(".")[1].startswith("w") else np.int64
        assert arr.dtype == want, f"{key}: {arr.dtype}, expected {np.dtype(want)}"
        if arr.dtype == np.int8:
            assert arr.min() >= -127, f"{key}: int8 weight -128"
    for key in ("tok_emb", "pos_emb"):
        assert np.abs(p[key].astype(np.int64)).max() < (1 << 30), f"{key}: |value| >= 2^30"
    maxscore = dh * 127 * 127
    for l in range(cfg["n_layers"]):
        lq = cfg["quant"]["layers"][l]
        e, n = lq["exp_shift"], len(p[f"h{l}.attn.exp"])
        assert (MASK - 2 * maxscore) >> e >= n - 1, "masked scores must reach the table's end"
        tab = p[f"h{l}.attn.exp"]
        assert tab[0] == 127 and tab[-1] == 0 and (tab >= 0).all() and (tab <= 127).all()
        assert ((p[f"h{l}.mlp.gelu"] >= -127) & (p[f"h{l}.mlp.gelu"] <= 127)).all()
        assert len(p[f"h{l}.mlp.gelu"]) == 2 * GELU_G + 1
    for key in [k for k in p if k.endswith(".div")]:
        div = p[key].astype(np.int64)
        assert ((div >= 1) & (div <= LN_OFF) & ((div & (div - 1)) == 0)).all(), key
    for key in [k for k in p if re.search(r"\.m(qkv|o|1|2)?$", k)]:
        assert ((p[key] >= 0) & (p[key] < (1 << 31))).all(), key
    for key in [k for k in p if re.search(r"\.c(qkv|o|1|2)?$", k)]:
        dev = p[key].astype(np.int64) - REQ_OFF * (1 << REQ_S)
        assert (np.abs(dev) <= (1 << 54)).all(), f"{key}: addend out of range"


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------


def calibration_samples(files, n_chunks, ctx, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for f in files:
        data = open(f, "rb").read()
        if len(data) < ctx + 1:
            continue
        for _ in range(n_chunks):
            at = int(rng.integers(0, len(data) - ctx))
            out.append(np.frombuffer(data[at : at + ctx], dtype=np.uint8).astype(np.int64))
    return out


def cmd_quantize(args):
    cfg, w = load_float(args.float_model)
    files = args.calib
    samples = calibration_samples(files, args.chunks, cfg["context"])
    print(f"calibrating on {len(samples)} chunks of {cfg['context']} bytes from {len(files)} files", file=sys.stderr)
    stats = calibrate(w, cfg, samples)
    icfg, p = quantize(cfg, w, stats)
    validate(icfg, p)
    write_model(icfg, p, args.out)
    print(f"wrote {args.out}", file=sys.stderr)


def ort_session(path, level="basic", threads=1):
    import onnxruntime as ort

    levels = {"disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    so = ort.SessionOptions()
    so.graph_optimization_level = levels[level]
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # not the note that the embedded CPU variant is unused
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def empty_cache(cfg, b):
    d, h = cfg["d_model"], cfg["n_heads"]
    feeds = {}
    for l in range(cfg["n_layers"]):
        feeds[f"past_k_{l}"] = np.zeros((b, h, d // h, 0), np.int8)
        feeds[f"past_v_{l}"] = np.zeros((b, h, 0, d // h), np.int8)
    return feeds


def session_cache(sess, b, past=0):
    """A zero cache of `past` positions for `b` sequences in the layout and
    type `sess`'s graph declares."""
    types = {"tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(float)": np.float32}
    feeds = {}
    for i in sess.get_inputs():
        if i.name.startswith("past_"):
            shape = [b if dim == "B" else past if isinstance(dim, str) else dim for dim in i.shape]
            feeds[i.name] = np.zeros(shape, types[i.type])
    return feeds


def cpu_variant(path):
    """The serialised CPU variant a model file embeds, or None."""
    import onnx

    for i in onnx.load(path).graph.initializer:
        if i.name == CPU_GRAPH:
            return i.raw_data
    return None


def logits_digest(logits):
    return hashlib.sha256(np.ascontiguousarray(logits, dtype="<i4").tobytes()).hexdigest()


def cmd_check(args):
    cfg, p = load_int(args.model)
    validate(cfg, p)
    rng = np.random.default_rng(7)
    ctx = cfg["context"]
    b, t = 3, min(ctx, args.length)
    tokens = rng.integers(0, 256, size=(b, t))
    tokens[:, 0] = 256
    ref, _ = forward(p, cfg, tokens)
    bad = 0
    for level in ["disabled", "basic", "extended", "all"]:
        for threads in [1, 2]:
            sess = ort_session(args.model, level, threads)
            got = sess.run(["logits"], {"tokens": tokens, **empty_cache(cfg, b)})[0]
            ok = got.dtype == np.int32 and np.array_equal(got, ref)
            bad += not ok
            print(f"full pass  {level:9s} threads {threads}: {'equal' if ok else 'DIFFERENT'}")
    # Cached steps, one token at a time, against the reference's full pass.
    sess = ort_session(args.model, "basic", 1)
    names = [o.name for o in sess.get_outputs()]
    cache = empty_cache(cfg, b)
    rows = []
    for i in range(t):
        out = sess.run(None, {"tokens": tokens[:, i : i + 1], **cache})
        rows.append(out[0])
        cache = {n.replace("present", "past"): v for n, v in zip(names[1:], out[1:])}
    ok = np.array_equal(np.concatenate(rows, axis=1), ref)
    bad += not ok
    print(f"cached steps vs full pass: {'equal' if ok else 'DIFFERENT'}")
    variant = cpu_variant(args.model)
    if variant is not None:
        import onnxruntime as ort

        for level in ["disabled", "basic", "all"]:
            so = ort.SessionOptions()
            so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, {
                "disabled": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "all": "ORT_ENABLE_ALL"}[level])
            so.intra_op_num_threads = 1
            vs = ort.InferenceSession(variant, so, providers=["CPUExecutionProvider"])
            got = vs.run(["logits"], {"tokens": tokens, **session_cache(vs, b)})[0]
            ok = np.array_equal(got, ref)
            bad += not ok
            print(f"cpu variant {level:9s}: {'equal' if ok else 'DIFFERENT'}")
        # The decoder's path on the variant: cached steps (its own cache
        # layout), in two runs of unequal length, against the full pass.
        names = [o.name for o in vs.get_outputs()]
        cache, rows = session_cache(vs, b), []
        for i0, i1 in [(0, 1), (1, t // 2), *[(i, i + 1) for i in range(t // 2, t)]]:
            if i0 >= i1:
                continue
            out = vs.run(None, {"tokens": tokens[:, i0:i1], **cache})
            rows.append(out[0])
            cache = {n.replace("present", "past"): v for n, v in zip(names[1:], out[1:])}
        ok = np.array_equal(np.concatenate(rows, axis=1), ref)
        bad += not ok
        print(f"cpu variant cached steps: {'equal' if ok else 'DIFFERENT'}")
    print(f"logits sha256 {logits_digest(ref)}")
    sys.exit(1 if bad else 0)


def cmd_speed(args):
    """ONNX Runtime, 1 thread, level basic: one-token steps (batch 64 after
    `--past` cached positions) and a full pass (8 x context), on the
    canonical graph and on its embedded CPU variant, alternating."""
    import time

    import onnxruntime as ort

    cfg, _ = load_int(args.model)
    variant = cpu_variant(args.model)
    graphs = [("canonical", args.model)]
    if variant is not None:
        graphs.append(("cpu variant", variant))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.log_severity_level = 3
    sessions = [(n, ort.InferenceSession(g, so, providers=["CPUExecutionProvider"])) for n, g in graphs]
    step_tokens = np.zeros((64, 1), np.int64)
    full_tokens = np.full((8, cfg["context"]), 97, np.int64)
    full_tokens[:, 0] = 256
    for rep in range(args.repeats):
        for name, sess in sessions:
            feeds = {"tokens": step_tokens, **session_cache(sess, 64, args.past)}
            sess.run(None, feeds)
            t = time.perf_counter()
            for _ in range(10):
                sess.run(None, feeds)
            step = (time.perf_counter() - t) / 10
            t = time.perf_counter()
            sess.run(["logits"], {"tokens": full_tokens, **session_cache(sess, 8)})
            full = time.perf_counter() - t
            print(f"repeat {rep + 1} {name:11s}: step {step * 1000:6.2f} ms ({64 / step / 1000:5.1f} KB/s), "
                  f"full pass {full_tokens.size / full / 1000:5.1f} KB/s")


def random_model(cfg, seed, extreme):
    """Random parameters within the documented bounds; `extreme` puts every
    weight at +-127 and every table at its limits."""
    rng = np.random.default_rng(seed)
    d, nh, nl, ctx = cfg["d_model"], cfg["n_heads"], cfg["n_layers"], cfg["context"]
    v = cfg.get("vocab", 256)

    def w8(k, n):
        if extreme:
            return (rng.integers(0, 2, size=(k, n)) * 254 - 127).astype(np.int8)
        return rng.integers(-127, 128, size=(k, n)).astype(np.int8)

    def mul(n, hi):
        return rng.integers(1, hi, size=n).astype(np.int64)

    def add(n, offset=0):
        return (rng.integers(-1 << 40, 1 << 40, size=n) + (1 << (REQ_S - 1))
                + (REQ_OFF + offset) * (1 << REQ_S)).astype(np.int64)

    def div(k):
        lo = 0 if extreme else max(0, RSQRT_BITS + k - 8)
        return (1 << rng.integers(lo, RSQRT_BITS + k + 1, size=d)).astype(np.int32)

    p, quant = {}, {"layers": []}
    emb = XMAX if extreme else 2000
    p["tok_emb"] = rng.integers(-emb, emb + 1, size=(v + 1, d)).astype(np.int32)
    p["pos_emb"] = rng.integers(-emb, emb + 1, size=(ctx, d)).astype(np.int32)
    hi = (1 << 31) - 1 if extreme else 1 << 20
    for l in range(nl):
        pre = f"h{l}."
        k1, k2 = int(rng.integers(0, 9)), int(rng.integers(0, 9))
        e = int(rng.integers(0, 8))
        n = int(rng.integers(16, 400))
        tab = np.round(127 * np.exp(-np.arange(n) * 5.5 / n))
        tab[0], tab[-1] = 127, 0
        p[pre + "ln1.div"], p[pre + "ln2.div"] = div(k1), div(k2)
        p[pre + "attn.wqkv"], p[pre + "attn.mqkv"], p[pre + "attn.cqkv"] = w8(d, 3 * d), mul(3 * d, hi), add(3 * d)
        p[pre + "attn.exp"] = tab.astype(np.int32)
        p[pre + "attn.wo"], p[pre + "attn.mo"], p[pre + "attn.co"] = w8(d, d), mul(d, hi), add(d)
        p[pre + "mlp.w1"], p[pre + "mlp.m1"], p[pre + "mlp.c1"] = w8(d, 4 * d), mul(4 * d, hi), add(4 * d, GELU_G)
        p[pre + "mlp.gelu"] = rng.integers(-127, 128, size=2 * GELU_G + 1).astype(np.int32)
        p[pre + "mlp.w2"], p[pre + "mlp.m2"], p[pre + "mlp.c2"] = w8(4 * d, d), mul(d, hi), add(d)
        quant["layers"].append({"ln1_k": k1, "ln2_k": k2, "exp_shift": e})
    kf = int(rng.integers(0, 9))
    quant["lnf_k"] = kf
    p["lnf.div"] = div(kf)
    p["head.w"], p["head.m"], p["head.c"] = w8(d, v), mul(v, hi), add(v)
    cfg = dict(cfg)
    cfg["semantics"] = SEMANTICS
    cfg["quant"] = quant
    return cfg, p


def cmd_random(args):
    cfg = json.load(open(args.config))
    icfg, p = random_model(cfg, args.seed, args.extreme)
    validate(icfg, p)
    write_model(icfg, p, args.out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("quantize")
    a.add_argument("float_model")
    a.add_argument("out")
    a.add_argument("--calib", nargs="+", required=True)
    a.add_argument("--chunks", type=int, default=8)
    a = sub.add_parser("check")
    a.add_argument("model")
    a.add_argument("--length", type=int, default=64)
    a = sub.add_parser("random")
    a.add_argument("config")
    a.add_argument("out")
    a.add_argument("--seed", type=int, default=1)
    a.add_argument("--extreme", action="store_true")
    a = sub.add_parser("rebuild")
    a.add_argument("models", nargs="+")
    a = sub.add_parser("speed")
    a.add_argument("model")
    a.add_argument("--past", type=int, default=128)
    a.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    {"quantize": cmd_quantize, "check": cmd_check, "random": cmd_random, "rebuild": cmd_rebuild,
     "speed": cmd_speed}[args.cmd](args)


if __name__ == "__main__":
    main()
