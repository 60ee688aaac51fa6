"""Compares models, byte-level or tokenizer-based, on the same files and in
the same run: the transformer's own bits per byte, coded as llmfs codes a
block (64 KiB blocks, independent chunks of `context` symbols, each from
BOS), and the ONNX Runtime throughput of the encoder path (full pass) and of
the decoder path (one-token cached steps, a batch of 64 chunks in lockstep),
as symbols/s and bytes/s, with the pinned runtime and graph optimisation
level "basic", as llmfs runs it.

The bits are those of llmfs's integer frequency tables (src/coder/freq.rs:
total 2^16, a floor of 1 per symbol, the rest shared by probability), taken
as -log2((1 + p * (2^16 - V)) / 2^16) for the coded symbol's softmax
probability p over a vocabulary of V symbols: without the floor a model that
is confidently wrong (on binary data) would cost unboundedly many bits.
For byte models `llmfs compress --codec llm-alone` measures the real codec
and `mix_tune` the mixed predictor; this script is what puts the tokenizer
models next to them.

usage: compare.py --model NAME=MODEL.onnx[,TOKENIZER.json] ... [--threads 1]
                  [--no-speed | --speed-only] [--out PREFIX] FILE[:MAX_BYTES] ...

--speed-only skips the bits (the files then only give bytes per symbol), so
that throughput can be measured on an otherwise idle machine in a minute.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_exact import empty_cache, session  # noqa: E402
from tokenizer import Tokenizer  # noqa: E402

BLOCK = 65536
TOTAL = 1 << 16  # the coder's table total (src/coder/freq.rs)


def load(spec, threads):
    name, rest = spec.split("=", 1)
    path, _, tok_path = rest.partition(",")
    graph = onnx.load(path)
    cfg = json.loads({p.key: p.value for p in graph.metadata_props}["llmfs.config"])
    tok = Tokenizer.load(tok_path) if tok_path else None
    if tok is not None and tok.vocab != cfg.get("vocab"):
        sys.exit(f"{spec}: tokenizer vocabulary {tok.vocab} != model's {cfg.get('vocab')}")
    sess = session(path, "basic", threads)
    params = sum(int(np.prod(t.dims)) for t in graph.graph.initializer
                 if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) >= 1 and not t.name.startswith("causal"))
    return {"name": name, "path": path, "cfg": cfg, "tok": tok, "sess": sess, "params": params,
            "size": os.path.getsize(path)}


def symbols(m, block):
    if m["tok"] is None:
        return np.frombuffer(block, np.uint8).astype(np.int64)
    return np.array(m["tok"].encode(block), np.int64)


def bits_of(m, syms):
    """Bits to code `syms` as independent chunks of `context` symbols."""
    ctx, bos = m["cfg"]["context"], m["cfg"].get("vocab", 256)
    chunks = [syms[i:i + ctx] for i in range(0, len(syms), ctx)]
    total = 0.0
    by_len = {}
    for c in chunks:
        by_len.setdefault(len(c), []).append(c)
    for n, group in by_len.items():
        for i in range(0, len(group), 32):
            y = np.stack(group[i:i + 32])
            x = np.concatenate([np.full((len(y), 1), bos, np.int64), y[:, :-1]], axis=1)
            logits = m["sess"].run(["logits"], {"tokens": x, **empty_cache(m["cfg"], len(y))})[0]
            z = logits.astype(np.float64)
            z -= z.max(axis=-1, keepdims=True)
            p = np.exp(z)
            p = np.take_along_axis(p, y[:, :, None], axis=-1)[..., 0] / p.sum(axis=-1)
            vocab = logits.shape[-1]
            total -= np.log2((1 + p * (TOTAL - vocab)) / TOTAL).sum()
    return total


def speed(m, seconds=3.0):
    """Symbols per second on the encoder path and on the decoder path."""
    cfg, sess = m["cfg"], m["sess"]
    ctx, bos = cfg["context"], cfg.get("vocab", 256)
    rng = np.random.default_rng(7)
    x = rng.integers(0, bos, (16, ctx)).astype(np.int64)
    x[:, 0] = bos
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        sess.run(["logits"], {"tokens": x, **empty_cache(cfg, 16)})
        n += x.size
    full = n / (time.perf_counter() - t0)
    names = [o.name for o in sess.get_outputs()]
    batch = 64
    steps, t0 = 0, time.perf_counter()
    while steps == 0 or time.perf_counter() - t0 < seconds:
        cache = empty_cache(cfg, batch)
        tok = np.full((batch, 1), bos, np.int64)
        for _ in range(ctx):
            res = dict(zip(names, sess.run(None, {"tokens": tok, **cache})))
            cache = {k.replace("present", "past"): v for k, v in res.items() if k.startswith("present")}
            tok = res["logits"][:, -1:, :].argmax(axis=-1).astype(np.int64)
            steps += 1
    step = steps * batch / (time.perf_counter() - t0)
    return full, step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--speed-only", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    models = [load(s, args.threads) for s in args.model]
    files = []
    for f in args.files:
        path, _, cap = f.partition(":")
        data = open(path, "rb").read()
        files.append((os.path.basename(path), data[:int(cap)] if cap else data))
    result = {"threads": args.threads, "files": [[n, len(d)] for n, d in files], "models": []}
    for m in models:
        r = {"name": m["name"], "config": m["cfg"], "parameters": m["params"], "onnx_bytes": m["size"],
             "files": {}}
        n_bytes = n_syms = 0
        bits_total = 0.0
        for name, data in files:
            bits = syms_n = 0
            for i in range(0, len(data), BLOCK):
                s = symbols(m, data[i:i + BLOCK])
                bits += 0.0 if args.speed_only else bits_of(m, s)
                syms_n += len(s)
            r["files"][name] = {"bits_per_byte": bits / len(data), "bytes_per_symbol": len(data) / syms_n}
            bits_total += bits
            n_bytes += len(data)
            n_syms += syms_n
            print(f"{m['name']:>12s} {name:>16s} {bits / len(data):.4f} bits/byte, "
                  f"{len(data) / syms_n:.3f} bytes/symbol", flush=True)
        r["bits_per_byte"] = bits_total / n_bytes
        r["bytes_per_symbol"] = n_bytes / n_syms
        if not args.no_speed:
            full, step = speed(m)
            r.update({"full_pass_symbols_s": full, "decode_symbols_s": step,
                      "full_pass_bytes_s": full * r["bytes_per_symbol"],
                      "decode_bytes_s": step * r["bytes_per_symbol"]})
        print(json.dumps({k: v for k, v in r.items() if k != "files"}), flush=True)
        result["models"].append(r)
    if args.out:
        json.dump(result, open(args.out + ".json", "w"), indent=1)
        base = result["models"][0]
        lines = ["| model | parameters | bytes/symbol | bits/byte | vs " + base["name"] + " |"
                 + (" full pass KB/s | decode KB/s | decode vs " + base["name"] + " |" if not args.no_speed else ""),
                 "|---|---:|---:|---:|---:|" + ("---:|---:|---:|" if not args.no_speed else "")]
        for r in result["models"]:
            row = (f"| {r['name']} | {r['parameters']:,} | {r['bytes_per_symbol']:.3f} | {r['bits_per_byte']:.4f} "
                   f"| {r['bits_per_byte'] / base['bits_per_byte']:.3f} |")
            if not args.no_speed:
                row += (f" {r['full_pass_bytes_s'] / 1e3:.1f} | {r['decode_bytes_s'] / 1e3:.2f} "
                        f"| {r['decode_bytes_s'] / base['decode_bytes_s']:.2f} |")
            lines.append(row)
        names = [n for n, _ in files]
        lines += ["", "| model | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for r in result["models"]:
            lines.append(f"| {r['name']} | " + " | ".join(f"{r['files'][n]['bits_per_byte']:.3f}" for n in names) + " |")
        open(args.out + ".md", "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
