"""Quantisation-aware training (QAT) of the integer model (`llmfs-int8-v1`).

`QAT` is a torch model whose forward pass computes exactly the integers of
`intmodel.forward` (the same tables, roundings and clamps), with gradients
through straight-through estimators. Every quantised tensor is

    exact + (surrogate - surrogate.detach())

where `exact` is the integer result computed from the exact integer inputs
(int64, no gradient) and `surrogate` is a smooth float function of the same
inputs and of the float weights (LayerNorm, the linear map with the
fake-quantised weight, softmax attention, GELU). Its value is the integer
exactly; its gradient is the surrogate's. The loss is the cross-entropy of
softmax(logits / 2^LOGIT_FRAC), the integer model's own prediction.

What is learned: the float weights under intmodel's names (train.py's
weights with 1/sqrt(dh) folded into the query columns of attn.wqkv, as
`intmodel.load_float` gives them). What is fixed: the calibration `stats`
(PTQ: `intmodel.calibrate` of the float model on the calibration chunks),
and with them every LayerNorm's k and q_c, the activation scales s_q, s_k,
s_v, s_h, s_g, exp_shift and the exp and GELU tables. Every step the integer
parameters are `intmodel.quantize(cfg, current float weights, stats)`: the
per-column weight scales, int8 weights and requantisation multipliers and
addends come from the current weights by intmodel's own functions, so the
exported model (`intmodel.write_model` of the same call: `build_graph` and its
CPU variant) is what the QAT forward computes.

Integer products: int8 x int8 matrix products are computed in float32; they
are exact because every partial sum is an integer below 2^24 in magnitude (at
most 1024 terms of at most 127 * 127, the bound docs/INTEGER_MODEL.md keeps
for every reduction). Requantisation products (up to 2^56) are int64.

usage:
  qat.py calib FLOAT.onnx OUT_STATS.npz --calib FILE ... [--chunks 4]
  qat.py train --float FLOAT.onnx --stats STATS.npz --data DIR --out RUN_DIR
               [--heldout-list FILE] [--exclude-list FILE] [--steps N] ...
  qat.py export RUN_DIR/checkpoint.pt OUT.onnx [--float-out FLOAT.onnx]
  qat.py eval --model NAME=MODEL.onnx ... --out TABLE.json FILE ...
"""

import argparse
import hashlib
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import intmodel as im  # noqa: E402

BOS = 256
XS = float(1 << im.XFRAC)  # residual units per float unit
LN_EPS = 1e-5 * XS * XS  # nn.LayerNorm's eps in residual units (surrogate only)
G = im.GELU_G


# --------------------------------------------------------------------------
# Exact integer ops (int64 tensors), exactly as intmodel.forward
# --------------------------------------------------------------------------

RSQRT_T = torch.from_numpy(im.RSQRT.astype(np.int64))


def imm(a, b):
    """Integer matrix product of int8-valued tensors: float32 is exact
    (every partial sum is an integer of magnitude < 2^24)."""
    return torch.matmul(a.float(), b.float()).long()


def x_layer_norm(x, k, div):
    d = x.shape[-1]
    s = x.sum(-1, keepdim=True)
    m = torch.div(s, d, rounding_mode="trunc")  # tdiv
    xc = x - m
    xs = torch.div(xc + (1 << 16) + ((1 << k) >> 1), 1 << k, rounding_mode="floor") - ((1 << 16) >> k)
    xs = xs.clamp(-im.VAR_CLAMP, im.VAR_CLAMP)
    v = torch.div((xs * xs).sum(-1, keepdim=True), d, rounding_mode="floor")
    r = RSQRT_T[v]
    u = xc * r
    y = torch.div(u + im.LN_OFF + div // 2, div, rounding_mode="floor") - im.LN_OFF // div
    return y.clamp(-127, 127)


def x_req(acc, mul, add, lo, hi):
    """Requantisation in int64 (products up to 2^56); the numerator is
    non-negative, and an arithmetic shift is floor division anyway."""
    t = (acc * mul).add_(add).bitwise_right_shift_(im.REQ_S).sub_(im.REQ_OFF)
    return t.clamp_(lo, hi)


def ste(exact, sur):
    """The value of `exact`, the gradient of `sur`."""
    return exact.to(sur.dtype) + (sur - sur.detach())


def fake_quant(wf, wi):
    """wf with the value of its per-column int8 quantisation wi * scale
    (intmodel.quant_weight) and wf's gradient."""
    cs = wf.detach().abs().amax(0).clamp_min(1e-12) / 127.0
    return wf + (wi * cs - wf).detach()


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------


def fixed_constants(cfg, stats):
    """The quantities that depend on the calibration only (as in
    intmodel.quantize): per-LN k and 2^q_c, and the activation scales."""
    c = {}
    d = cfg["d_model"]
    keys = [f"h{l}.{n}" for l in range(cfg["n_layers"]) for n in ("ln1", "ln2")] + ["lnf"]
    for key in keys:
        k, qc, div = im.ln_params(stats, key)
        c[key + ".k"] = k
        c[key + ".pow"] = 2.0 ** qc
    for l in range(cfg["n_layers"]):
        pre = f"h{l}."
        s_q, s_k, s_v = (float(stats[pre + n]) / 127.0 for n in ("q", "k", "v"))
        c[pre + "qkv.scale"] = np.concatenate([np.full(d, s_q), np.full(d, s_k), np.full(d, s_v)])
        c[pre + "unit"] = s_q * s_k
        c[pre + "s_v"] = s_v
        c[pre + "s_h"] = float(stats[pre + "mlp.h"]) / G
        c[pre + "s_g"] = float(stats[pre + "mlp.g"]) / 127.0
    return c


class QAT(nn.Module):
    def __init__(self, cfg, w, stats):
        """cfg, w: intmodel.load_float's; stats: intmodel.calibrate's."""
        super().__init__()
        self.cfg = dict(cfg)
        self.stats = {k: (np.float64(v) if np.ndim(v) == 0 else np.asarray(v, np.float64)) for k, v in stats.items()}
        self.w = nn.ParameterDict({k.replace(".", "__"): nn.Parameter(torch.tensor(np.asarray(v), dtype=torch.float32))
                                   for k, v in sorted(w.items())})
        self.c = fixed_constants(cfg, self.stats)
        self.ct = {k: torch.tensor(v, dtype=torch.float32) for k, v in self.c.items() if isinstance(v, np.ndarray)}
        self.last_export = None

    def W(self, key):
        return self.w[key.replace(".", "__")]

    def float_weights(self):
        """The float weights (float64 numpy, intmodel names)."""
        return {k.replace("__", "."): v.detach().double().numpy() for k, v in self.w.items()}

    def quantize(self):
        """(integer config, integer parameters) of the current weights:
        exactly what `intmodel.quantize` gives and what export writes."""
        icfg, p = im.quantize(self.cfg, self.float_weights(), self.stats)
        return icfg, p

    def export(self, path):
        """The model file, as `intmodel.py quantize` writes one: the
        canonical graph with its CPU variant embedded (intmodel.write_model)."""
        icfg, p = self.quantize()
        im.validate(icfg, p)
        im.write_model(icfg, p, path)
        return icfg, p

    @staticmethod
    def int_tensors(p):
        t = {}
        for k, v in p.items():
            v = np.asarray(v)
            t[k] = torch.from_numpy(v.astype(np.float32)) if v.dtype == np.int8 else torch.from_numpy(v.astype(np.int64))
        return t

    def forward(self, tokens, qp=None):
        """tokens int64 [B, T] (BOS first). Returns (logits, exact): logits
        float32 with the integer logits' values and the surrogate's
        gradient, exact the int64 logits of intmodel.forward. qp: the
        (icfg, p) to use, by default self.quantize() (the current weights)."""
        cfg = self.cfg
        d, nh, nl = cfg["d_model"], cfg["n_heads"], cfg["n_layers"]
        dh = d // nh
        icfg, p = self.quantize() if qp is None else qp
        q = icfg["quant"]
        P = self.int_tensors(p)
        W, c, ct = self.W, self.c, self.ct
        b, t = tokens.shape
        pos = torch.arange(t)
        xmax = im.XMAX

        with torch.no_grad():
            xe = (P["tok_emb"][tokens] + P["pos_emb"][pos]).clamp(-xmax, xmax)
            causal = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
        x = ste(xe, ((W("tok_emb")[tokens] + W("pos_emb")[pos]) * XS).clamp(-xmax, xmax))

        def ln_sur(x, key):
            xc = x - x.mean(-1, keepdim=True)
            z = xc * torch.rsqrt((xc * xc).mean(-1, keepdim=True) + LN_EPS)
            return (z * ct[key + ".pow"]).clamp(-127, 127)

        def folded(ln, wkey, bkey):
            """LN gain / 2^q_c folded into the weight, LN bias into the bias
            (as intmodel.quantize folds them)."""
            wf = (W(ln + ".g") / ct[ln + ".pow"])[:, None] * W(wkey)
            return wf, W(ln + ".b") @ W(wkey) + W(bkey)

        for l in range(nl):
            pre = f"h{l}."
            lq = q["layers"][l]
            # LayerNorm 1
            with torch.no_grad():
                ye = x_layer_norm(xe, lq["ln1_k"], P[pre + "ln1.div"])
            y = ste(ye, ln_sur(x, pre + "ln1"))
            # q, k, v
            wf, bias = folded(pre + "ln1", pre + "attn.wqkv", pre + "attn.bqkv")
            sur = ((y @ fake_quant(wf, P[pre + "attn.wqkv"]) + bias) / ct[pre + "qkv.scale"]).clamp(-127, 127)
            with torch.no_grad():
                qkve = x_req(imm(ye, P[pre + "attn.wqkv"]), P[pre + "attn.mqkv"], P[pre + "attn.cqkv"], -127, 127)
            qkv = ste(qkve, sur)
            # attention: exact table softmax; surrogate float softmax
            with torch.no_grad():
                # In float32, exactly: scores are integers below 2^20 in
                # magnitude, pr @ v partial sums below 2^24. Masked scores
                # (score - 2^22) always reach the table's last entry, 0
                # (intmodel.validate), and the row maximum is always an
                # unmasked score, so masking to -inf gives the same pr.
                qe, ke, ve = qkve.float().split(d, dim=-1)
                qhe = qe.reshape(b, t, nh, dh).transpose(1, 2)
                khe = ke.reshape(b, t, nh, dh).permute(0, 2, 3, 1)
                vhe = ve.reshape(b, t, nh, dh).transpose(1, 2)
                scores = torch.matmul(qhe, khe).masked_fill_(causal, -math.inf)
                mx = scores.amax(-1, keepdim=True)
                tab = P[pre + "attn.exp"]
                idx = torch.sub(mx, scores, out=scores).mul_(2.0 ** -lq["exp_shift"]).floor_()
                idx = idx.clamp_max_(len(tab) - 1).long()
                pr = F.embedding(idx, tab.float()[:, None]).squeeze(-1)  # tab[idx], the fastest gather here
                ssum = pr.sum(-1, keepdim=True).long()
                acc = torch.matmul(pr, vhe).long()
                oe = torch.div(acc + 128 * ssum + ssum // 2, ssum, rounding_mode="floor") - 128
                oe = oe.transpose(1, 2).reshape(b, t, d)
            qh, kh, vh = (z.reshape(b, t, nh, dh).transpose(1, 2) for z in qkv.split(d, dim=-1))
            osur = F.scaled_dot_product_attention(qh, kh, vh, is_causal=True, scale=c[pre + "unit"])
            o = ste(oe, osur.transpose(1, 2).reshape(b, t, d))
            # output projection and residual
            wf = c[pre + "s_v"] * W(pre + "attn.wo")
            delta = ((o @ fake_quant(wf, P[pre + "attn.wo"]) + W(pre + "attn.bo")) * XS).clamp(-xmax, xmax)
            with torch.no_grad():
                de = x_req(imm(oe, P[pre + "attn.wo"]), P[pre + "attn.mo"], P[pre + "attn.co"], -xmax, xmax)
                xe = (xe + de).clamp(-xmax, xmax)
            x = ste(xe, (x + delta).clamp(-xmax, xmax))
            # LayerNorm 2, MLP
            with torch.no_grad():
                ye = x_layer_norm(xe, lq["ln2_k"], P[pre + "ln2.div"])
            y = ste(ye, ln_sur(x, pre + "ln2"))
            wf, bias = folded(pre + "ln2", pre + "mlp.w1", pre + "mlp.b1")
            s_h, s_g = c[pre + "s_h"], c[pre + "s_g"]
            sur = ((y @ fake_quant(wf, P[pre + "mlp.w1"]) + bias) / s_h + G).clamp(0, 2 * G)
            with torch.no_grad():
                gie = x_req(imm(ye, P[pre + "mlp.w1"]), P[pre + "mlp.m1"], P[pre + "mlp.c1"], 0, 2 * G)
                ge = P[pre + "mlp.gelu"][gie]
            gi = ste(gie, sur)
            g = ste(ge, (F.gelu((gi - G) * s_h) / s_g).clamp(-127, 127))
            wf = s_g * W(pre + "mlp.w2")
            delta = ((g @ fake_quant(wf, P[pre + "mlp.w2"]) + W(pre + "mlp.b2")) * XS).clamp(-xmax, xmax)
            with torch.no_grad():
                de = x_req(imm(ge, P[pre + "mlp.w2"]), P[pre + "mlp.m2"], P[pre + "mlp.c2"], -xmax, xmax)
                xe = (xe + de).clamp(-xmax, xmax)
            x = ste(xe, (x + delta).clamp(-xmax, xmax))
        with torch.no_grad():
            ye = x_layer_norm(xe, q["lnf_k"], P["lnf.div"])
        y = ste(ye, ln_sur(x, "lnf"))
        wf, bias = folded("lnf", "head.w", "head.b")
        lmax = im.LOGIT_MAX
        sur = ((y @ fake_quant(wf, P["head.w"]) + bias) * float(1 << im.LOGIT_FRAC)).clamp(-lmax, lmax)
        with torch.no_grad():
            le = x_req(imm(ye, P["head.w"]), P["head.m"], P["head.c"], -lmax, lmax)
        return ste(le, sur), le


def load_stats(path):
    z = np.load(path)
    return {k: (np.float64(z[k]) if z[k].ndim == 0 else z[k].astype(np.float64)) for k in z.files}


# --------------------------------------------------------------------------
# Evaluation: bits per byte, independent chunks from BOS
# --------------------------------------------------------------------------


def eval_chunks(data, ctx, max_chunks):
    """Start offsets of the chunks evaluated in a file of len(data) bytes:
    every full chunk if there are at most max_chunks, else max_chunks evenly
    spaced ones (chunk i * n // max_chunks)."""
    n = len(data) // ctx
    if n <= max_chunks:
        return [i * ctx for i in range(n)]
    return [(i * n // max_chunks) * ctx for i in range(max_chunks)]


def chunk_bits(logits_nats, y):
    """Bits of coding y [B, T] under softmax(logits_nats) [B, T, V] (float64)."""
    z = logits_nats - logits_nats.max(-1, keepdims=True)
    lse = np.log(np.exp(z).sum(-1))
    lp = np.take_along_axis(z, y[..., None], axis=-1)[..., 0] - lse
    return -lp.sum() / math.log(2)


class OrtModel:
    def __init__(self, path, threads=1):
        import onnx

        m = onnx.load(path)
        self.cfg = json.loads({e.key: e.value for e in m.metadata_props}["llmfs.config"])
        self.integer = self.cfg.get("semantics") == im.SEMANTICS
        self.sess = im.ort_session(path, "basic", threads)

    def logits_nats(self, x):
        cfg, b = self.cfg, x.shape[0]
        d, h = cfg["d_model"], cfg["n_heads"]
        dt = np.int8 if self.integer else np.float32
        feeds = {"tokens": x}
        for l in range(cfg["n_layers"]):
            feeds[f"past_k_{l}"] = np.zeros((b, h, d // h, 0), dt)
            feeds[f"past_v_{l}"] = np.zeros((b, h, 0, d // h), dt)
        out = self.sess.run(["logits"], feeds)[0]
        if self.integer:
            assert out.dtype == np.int32
            return out.astype(np.float64) / (1 << im.LOGIT_FRAC)
        return out.astype(np.float64)


def file_bits(models, path, ctx, max_chunks, batch=16):
    data = np.fromfile(path, dtype=np.uint8).astype(np.int64)
    starts = eval_chunks(data, ctx, max_chunks)
    bits = {name: 0.0 for name in models}
    for i in range(0, len(starts), batch):
        y = np.stack([data[s:s + ctx] for s in starts[i:i + batch]])
        x = np.concatenate([np.full((len(y), 1), BOS, np.int64), y[:, :-1]], axis=1)
        for name, m in models.items():
            bits[name] += chunk_bits(m.logits_nats(x), y)
    return bits, len(starts) * ctx, len(data)


def cmd_eval(args):
    models = {}
    for spec in args.model:
        name, path = spec.split("=", 1)
        models[name] = OrtModel(path, args.threads)
    ctx = next(iter(models.values())).cfg["context"]
    res = {"models": {s.split("=", 1)[0]: {"path": s.split("=", 1)[1],
                                           "sha256": hashlib.sha256(open(s.split("=", 1)[1], "rb").read()).hexdigest()}
                      for s in args.model},
           "method": f"independent {ctx}-byte chunks, each from BOS; per file every chunk if at most {args.max_chunks}, "
                     f"else {args.max_chunks} evenly spaced (chunk i*n//{args.max_chunks}); bits = -log2 softmax "
                     "(integer models: logits / 1024; no coder frequency floor)",
           "files": {}, "groups": {}}
    groups = {}
    for spec in args.files:
        group, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        t0 = time.time()
        bits, nbytes, size = file_bits(models, path, ctx, args.max_chunks)
        entry = {"group": group, "file_bytes": size, "bytes_evaluated": nbytes,
                 "bpb": {k: v / nbytes for k, v in bits.items()}}
        res["files"][path] = entry
        g = groups.setdefault(group, {"bytes": 0, "bits": {k: 0.0 for k in models}})
        g["bytes"] += nbytes
        for k, v in bits.items():
            g["bits"][k] += v
        print(f"{path}: {nbytes} bytes, " + ", ".join(f"{k} {v:.4f}" for k, v in entry["bpb"].items())
              + f" ({time.time() - t0:.0f}s)", flush=True)
    for group, g in groups.items():
        res["groups"][group] = {"bytes_evaluated": g["bytes"], "bpb": {k: v / g["bytes"] for k, v in g["bits"].items()}}
        print(f"[{group}] " + ", ".join(f"{k} {v:.4f}" for k, v in res["groups"][group]["bpb"].items()))
    json.dump(res, open(args.out, "w"), indent=1)


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------


def read_list(path):
    if not path:
        return set()
    return {line.strip() for line in open(path) if line.strip() and not line.startswith("#")}


def training_files(root, exclude):
    out = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            path = os.path.join(dirpath, n)
            if dirpath == root or path in exclude:  # MANIFEST.tsv, README.md, EXCLUSIONS.tsv
                continue
            out.append(path)
    return sorted(out)


def heldout_eval(model, chunks, batch=16):
    """Bits per byte of the exact integer model on held-out chunks [N, ctx]."""
    qp = model.quantize()
    bits = 0.0
    with torch.no_grad():
        for i in range(0, len(chunks), batch):
            y = chunks[i:i + batch]
            x = torch.cat([torch.full((len(y), 1), BOS, dtype=torch.long), y[:, :-1]], dim=1)
            _, le = model(x, qp)
            z = le.double().reshape(-1, le.shape[-1]) / (1 << im.LOGIT_FRAC)
            bits += F.cross_entropy(z, y.reshape(-1), reduction="sum").item()
    return bits / chunks.numel() / math.log(2)


def cmd_train(args):
    from train import sampler

    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    cfg, w = im.load_float(args.float)
    ctx = cfg["context"]
    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    heldout = read_list(args.heldout_list)
    exclude = read_list(args.exclude_list) | heldout
    files = training_files(args.data, exclude)
    train = {}
    for f in files:
        arr = np.fromfile(f, dtype=np.uint8)
        if len(arr) > 4096:
            train[os.path.relpath(f, args.data)] = arr
    held = []
    for f in sorted(heldout):
        arr = np.fromfile(f, dtype=np.uint8).astype(np.int64)
        for s in eval_chunks(arr, ctx, args.heldout_chunks):
            held.append(arr[s:s + ctx])
    held = torch.from_numpy(np.stack(held))

    step, log, train_seconds = 0, [], 0.0
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, weights_only=False)
        stats = ck["stats"]
    else:
        stats = load_stats(args.stats)
    model = QAT(cfg, w, stats)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    other = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": other, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98))
    if os.path.exists(ckpt_path):
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, log, train_seconds = ck["step"], ck["log"], ck["train_seconds"]
        rng.bit_generator.state = ck["rng"]
        torch.set_rng_state(ck["torch_rng"])
        print(f"resumed at step {step}", flush=True)
    batches = sampler(train, {}, ctx, args.batch, rng)
    print(f"{sum(p.numel() for p in model.parameters())} parameters, {len(train)} training files "
          f"({sum(map(len, train.values())) / 1e6:.1f} MB), {len(heldout)} held-out files "
          f"({held.shape[0]} chunks)", flush=True)
    if step == 0:
        bpb = heldout_eval(model, held)
        log.append({"step": 0, "heldout_bpb": bpb})
        print(json.dumps(log[-1]), flush=True)

    def save():
        tmp = ckpt_path + ".tmp"
        torch.save({"config": cfg, "model": model.state_dict(), "opt": opt.state_dict(), "step": step, "log": log,
                    "train_seconds": train_seconds, "rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(), "stats": stats, "args": vars(args),
                    "train_files": sorted(train), "heldout_files": sorted(heldout)}, tmp)
        os.replace(tmp, ckpt_path)
        icfg, p = model.export(os.path.join(args.out, "model.onnx"))
        json.dump({"step": step, "steps_planned": args.steps, "train_seconds": train_seconds,
                   "tokens": step * args.batch * ctx, "batch": args.batch, "context": ctx, "args": vars(args),
                   "train_files": len(train), "heldout_files": sorted(heldout), "heldout_chunks": int(held.shape[0]),
                   "log": log}, open(os.path.join(args.out, "train_log.json"), "w"), indent=1)

    start = last_ckpt = t_mark = time.time()
    loss_acc, n_acc = 0.0, 0
    while step < args.steps:
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        tokens = next(batches)
        logits, _ = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]) / (1 << im.LOGIT_FRAC), tokens[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        loss_acc += loss.item()
        n_acc += 1
        if step % args.log_every == 0 or step == args.steps:
            now = time.time()
            train_seconds += now - t_mark
            entry = {"step": step, "bits_per_byte": loss_acc / n_acc / math.log(2), "lr": lr,
                     "s_per_step": (now - t_mark) / n_acc}
            if step % args.eval_every == 0 or step == args.steps:
                entry["heldout_bpb"] = heldout_eval(model, held)
            log.append(entry)
            print(json.dumps(entry), flush=True)
            t_mark, loss_acc, n_acc = time.time(), 0.0, 0
        if time.time() - last_ckpt > args.checkpoint_minutes * 60:
            t_save = time.time()
            save()
            last_ckpt = time.time()
            t_mark += last_ckpt - t_save  # checkpointing is not training time
        if time.time() - start > args.stop_after_minutes * 60:
            break
    if n_acc:
        train_seconds += time.time() - t_mark
    if step == args.steps and "heldout_bpb" not in log[-1]:
        log.append({"step": step, "heldout_bpb": heldout_eval(model, held)})
    save()
    print(f"stopped at step {step} of {args.steps}", flush=True)


def cmd_export(args):
    ck = torch.load(args.checkpoint, weights_only=False)
    cfg = ck["config"]
    model = QAT(cfg, {k.replace("__", "."): v.double().numpy() for k, v in
                      ((k.split(".", 1)[1], v) for k, v in ck["model"].items())}, ck["stats"])
    model.export(args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    if args.float_out:
        # The same float weights as a float graph (graph.py; the attention
        # scale is already folded in): the float model QAT trained, not shipped.
        import onnx
        import graph

        w = {k: v.astype(np.float32) for k, v in model.float_weights().items()}
        onnx.save(graph.build(cfg, w), args.float_out)
        print(f"wrote {args.float_out}", file=sys.stderr)


def cmd_calib(args):
    cfg, w = im.load_float(args.float_model)
    samples = im.calibration_samples(args.calib, args.chunks, cfg["context"])
    print(f"calibrating on {len(samples)} chunks from {len(args.calib)} files", file=sys.stderr)
    stats = im.calibrate(w, cfg, samples)
    np.savez(args.out, **stats)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("calib")
    a.add_argument("float_model")
    a.add_argument("out")
    a.add_argument("--calib", nargs="+", required=True)
    a.add_argument("--chunks", type=int, default=4)
    a = sub.add_parser("train")
    a.add_argument("--float", required=True, help="the float model (graph.py ONNX) to start from")
    a.add_argument("--stats", required=True, help="calibration stats (qat.py calib)")
    a.add_argument("--data", required=True, help="training text (every file under it, less the lists)")
    a.add_argument("--out", required=True)
    a.add_argument("--heldout-list", help="files held out (evaluated, never trained on)")
    a.add_argument("--exclude-list", help="files neither trained on nor evaluated")
    a.add_argument("--heldout-chunks", type=int, default=16, help="evaluated chunks per held-out file")
    a.add_argument("--batch", type=int, default=16)
    a.add_argument("--lr", type=float, default=2e-4)
    a.add_argument("--weight-decay", type=float, default=0.01)
    a.add_argument("--warmup", type=int, default=30)
    a.add_argument("--steps", type=int, default=600, help="planned total, across sessions")
    a.add_argument("--stop-after-minutes", type=float, default=1e9)
    a.add_argument("--checkpoint-minutes", type=float, default=5)
    a.add_argument("--log-every", type=int, default=10)
    a.add_argument("--eval-every", type=int, default=100)
    a.add_argument("--threads", type=int, default=1)
    a.add_argument("--seed", type=int, default=4321)
    a = sub.add_parser("export")
    a.add_argument("checkpoint")
    a.add_argument("out")
    a.add_argument("--float-out", help="also write the float weights as a float graph (graph.py)")
    a = sub.add_parser("eval")
    a.add_argument("--model", action="append", required=True, help="NAME=MODEL.onnx (float or integer)")
    a.add_argument("--out", required=True)
    a.add_argument("--max-chunks", type=int, default=256)
    a.add_argument("--threads", type=int, default=1)
    a.add_argument("files", nargs="+", help="[GROUP=]FILE")
    args = ap.parse_args()
    {"calib": cmd_calib, "train": cmd_train, "export": cmd_export, "eval": cmd_eval}[args.cmd](args)


if __name__ == "__main__":
    main()
