"""Runs integer models on ONNX Runtime's CUDA execution provider with CPU
fallback disabled (every node must run on the GPU, or the session fails) and
compares their int32 logits bitwise with the numpy specification
(intmodel.forward).

Needs an onnxruntime build with the CUDA provider (the onnxruntime-gpu
wheel, 1.31.1) and a GPU; run on a GPU machine:

  python3 models/tools/cuda_check.py models/default/model.onnx \
      models/test-int/random-extreme.onnx --json cuda-check.json

`--provider CPUExecutionProvider` rehearses the same script on a CPU.
For each model it checks: full passes at every graph optimisation level on
three batch shapes (one token; a short batch; a full context), and the
decoder's path (cached steps in runs of unequal length, batches of several
sequences) against the full pass. Exits 0 when every comparison is equal,
1 otherwise.
"""

import argparse
import json
import sys
import time

import numpy as np

import intmodel

LEVELS = ["disabled", "basic", "extended", "all"]


def session(path, provider, level):
    import onnxruntime as ort

    if provider not in ort.get_available_providers():
        sys.exit(f"this onnxruntime has no {provider} (install onnxruntime-gpu==1.31.1)")
    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, {
        "disabled": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
        "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}[level])
    if provider != "CPUExecutionProvider":
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=[provider])
    assert sess.get_providers()[0] == provider, sess.get_providers()
    return sess


def cached_steps(sess, cfg, tokens):
    """Logits of `tokens` fed in runs of unequal length through the cache:
    one token, then half the rest, then one token at a time."""
    b, t = tokens.shape
    names = [o.name for o in sess.get_outputs()]
    cache, rows = intmodel.empty_cache(cfg, b), []
    cuts = [0, 1, max(1, t // 2), *range(max(1, t // 2) + 1, t + 1)]
    for i0, i1 in zip(cuts, cuts[1:]):
        if i0 >= i1:
            continue
        out = sess.run(None, {"tokens": tokens[:, i0:i1], **cache})
        rows.append(out[0])
        cache = {n.replace("present", "past"): v for n, v in zip(names[1:], out[1:])}
    return np.concatenate(rows, axis=1)


def check_model(path, provider, results):
    cfg, p = intmodel.load_int(path)
    intmodel.validate(cfg, p)
    rng = np.random.default_rng(7)
    ctx = cfg["context"]
    shapes = [(1, 1), (3, 64), (8, ctx)]
    inputs = []
    for b, t in shapes:
        tokens = rng.integers(0, 256, size=(b, min(t, ctx)))
        tokens[:, 0] = 256
        ref, _ = intmodel.forward(p, cfg, tokens)
        inputs.append((tokens, ref))
    bad = 0

    def record(what, got, ref, seconds):
        nonlocal bad
        ok = got.dtype == np.int32 and np.array_equal(got, ref)
        bad += not ok
        results.append({"model": path, "check": what, "equal": bool(ok),
                        "seconds": round(seconds, 4)})
        print(f"{path}: {what}: {'equal' if ok else 'DIFFERENT'} ({seconds:.3f} s)", flush=True)

    for level in LEVELS:
        sess = session(path, provider, level)
        for tokens, ref in inputs:
            b = tokens.shape[0]
            feeds = {"tokens": tokens, **intmodel.empty_cache(cfg, b)}
            sess.run(["logits"], feeds)  # the first run includes kernel set-up
            start = time.perf_counter()
            got = sess.run(["logits"], feeds)[0]
            record(f"full pass {level} batch {b} length {tokens.shape[1]}", got, ref,
                   time.perf_counter() - start)
    sess = session(path, provider, "basic")
    for tokens, ref in inputs[1:]:
        # The decoder's path: at most 40 positions, to keep the check short.
        tokens, ref = tokens[:, :40], ref[:, :40]
        start = time.perf_counter()
        got = cached_steps(sess, cfg, tokens)
        record(f"cached steps batch {tokens.shape[0]} length {tokens.shape[1]}", got, ref,
               time.perf_counter() - start)
    return bad


def speed(path, provider, results):
    """Full-pass throughput at level basic: the median of five timed runs
    per batch size, after one untimed run."""
    cfg, _ = intmodel.load_int(path)
    ctx = cfg["context"]
    sess = session(path, provider, "basic")
    rng = np.random.default_rng(1)
    for b in (8, 64):
        tokens = rng.integers(0, 256, size=(b, ctx))
        tokens[:, 0] = 256
        feeds = {"tokens": tokens, **intmodel.empty_cache(cfg, b)}
        sess.run(["logits"], feeds)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            sess.run(["logits"], feeds)
            times.append(time.perf_counter() - start)
        med = sorted(times)[2]
        results.append({"model": path, "speed": f"full pass batch {b} length {ctx}",
                        "median_seconds": round(med, 5), "min_seconds": round(min(times), 5),
                        "max_seconds": round(max(times), 5), "tokens_per_second": round(b * ctx / med)})
        print(f"{path}: {provider} full pass batch {b} x {ctx}: median {med * 1000:.1f} ms "
              f"({min(times) * 1000:.1f}-{max(times) * 1000:.1f}), {b * ctx / med:,.0f} tokens/s", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--provider", default="CUDAExecutionProvider")
    ap.add_argument("--json", help="write the results here as JSON")
    ap.add_argument("--speed", action="store_true",
                    help="also time full passes of the first model (no comparison)")
    args = ap.parse_args()
    import onnxruntime as ort

    results = []
    bad = sum(check_model(m, args.provider, results) for m in args.models)
    if args.speed:
        speed(args.models[0], args.provider, results)
    summary = {"provider": args.provider, "onnxruntime": ort.__version__,
               "device": ort.get_device(), "different": bad, "results": results}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    compared = [r for r in results if "equal" in r]
    print(f"{len(compared) - bad} of {len(compared)} comparisons equal on {args.provider}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
