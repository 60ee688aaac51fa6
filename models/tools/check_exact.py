"""Checks the model contract on a graph with the pinned ONNX Runtime:
the full pass (encoder path) and one-token cached steps (decoder path) give
bitwise-identical logits, in any batch composition and thread count.

usage: check_exact.py MODEL.onnx [LEVEL]   (LEVEL: basic | extended | all)
"""

import json
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort

LEVELS = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def session(path, level, threads):
    so = ort.SessionOptions()
    so.graph_optimization_level = LEVELS[level]
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def empty_cache(cfg, b):
    d, h = cfg["d_model"], cfg["n_heads"]
    feeds = {}
    for l in range(cfg["n_layers"]):
        feeds[f"past_k_{l}"] = np.zeros((b, h, d // h, 0), np.float32)
        feeds[f"past_v_{l}"] = np.zeros((b, h, 0, d // h), np.float32)
    return feeds


def full(sess, cfg, tokens):
    return sess.run(["logits"], {"tokens": tokens, **empty_cache(cfg, tokens.shape[0])})[0]


def stepwise(sess, cfg, tokens):
    b, t = tokens.shape
    cache = empty_cache(cfg, b)
    names = [o.name for o in sess.get_outputs()]
    rows = []
    for i in range(t):
        outs = sess.run(None, {"tokens": tokens[:, i:i + 1], **cache})
        res = dict(zip(names, outs))
        rows.append(res["logits"])
        cache = {k.replace("present", "past"): v for k, v in res.items() if k.startswith("present")}
    return np.concatenate(rows, axis=1)


def main():
    path = sys.argv[1]
    level = sys.argv[2] if len(sys.argv) > 2 else "basic"
    cfg = json.loads({p.key: p.value for p in onnx.load(path).metadata_props}["llmfs.config"])
    rng = np.random.default_rng(1)
    ctx = cfg["context"]
    text = open(__file__, "rb").read()
    seqs = [np.frombuffer(text[i * ctx:(i + 1) * ctx - 1], np.uint8) for i in range(3)]
    seqs.append(rng.integers(0, 256, ctx - 1, dtype=np.uint8))
    tokens = np.stack([np.concatenate([[256], s]).astype(np.int64) for s in seqs])
    ok = True
    s1, s2 = session(path, level, 1), session(path, level, 2)
    t0 = time.time()
    ref = full(s1, cfg, tokens)
    print(f"full pass {tokens.shape}: {time.time() - t0:.3f}s")
    checks = {
        "full pass, 2 threads": full(s2, cfg, tokens),
        "full pass, batch 1": np.concatenate([full(s1, cfg, tokens[i:i + 1]) for i in range(4)]),
        "full pass, prefix": np.concatenate([full(s1, cfg, tokens[:, :37]), ref[:, 37:]], axis=1),
    }
    t0 = time.time()
    checks["decode steps, batch 4"] = stepwise(s1, cfg, tokens)
    print(f"decode steps: {time.time() - t0:.3f}s")
    checks["decode steps, batch 1, 2 threads"] = np.concatenate(
        [stepwise(s2, cfg, tokens[i:i + 1]) for i in range(4)])
    for what, got in checks.items():
        same = np.array_equal(ref.view(np.uint32), got.view(np.uint32))
        diff = np.mean(ref.view(np.uint32) != got.view(np.uint32))
        print(f"{what:40s} {'bitwise equal' if same else f'DIFFERS at {diff:.2%}'}")
        ok &= same
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
