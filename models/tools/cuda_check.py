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
sequences) against the full pass. Where ONNX Runtime will not place every
node on the provider, the nodes it leaves to the CPU are listed (from a
profile of one run) and the comparisons run with them on the CPU. Exits 0
when every comparison is equal and every node ran on the provider, 2 when
every comparison is equal but some nodes ran on the CPU, 1 otherwise.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

import intmodel

LEVELS = ["disabled", "basic", "extended", "all"]


def session(model, provider, level, strict=True, profile=False):
    """An ONNX Runtime session of `model` (a path or the serialised bytes)
    on `provider` alone; `strict`: with no fallback to the CPU."""
    import onnxruntime as ort

    if provider not in ort.get_available_providers():
        sys.exit(f"this onnxruntime has no {provider} (install onnxruntime-gpu==1.31.1)")
    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, {
        "disabled": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
        "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}[level])
    if strict and provider != "CPUExecutionProvider":
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    so.enable_profiling = profile
    so.profile_file_prefix = os.path.join(tempfile.gettempdir(), "cuda_check_profile")
    so.log_severity_level = 3
    return ort.InferenceSession(model, so, providers=[provider])


def placements(path, provider, level, cfg):
    """Which provider ran each node, from ONNX Runtime's profile of one run:
    {provider: {op type: count}}."""
    sess = session(path, provider, level, strict=False, profile=True)
    tokens = np.full((2, 8), 256)
    sess.run(["logits"], {"tokens": tokens, **intmodel.empty_cache(cfg, 2)})
    with open(sess.end_profiling()) as f:
        events = json.load(f)
    seen = {}
    for e in events:
        args = e.get("args", {})
        if e.get("cat") == "Node" and "provider" in args and e["name"].endswith("_kernel_time"):
            by_op = seen.setdefault(args["provider"], {})
            by_op[args["op_name"]] = by_op.get(args["op_name"], 0) + 1
    return seen


def open_session(path, provider, level, cfg, strictness):
    """A session that runs every node on `provider`; where ONNX Runtime
    refuses that, the nodes it leaves to the CPU are recorded and the check
    goes on with them on the CPU (still integer code, still compared)."""
    try:
        return session(path, provider, level)
    except Exception as e:  # onnxruntime raises its own Fail type
        placed = placements(path, provider, level, cfg)
        strictness.append({"model": path, "level": level, "error": str(e).strip(),
                           "placements": placed})
        print(f"{path}: level {level}: not every node runs on {provider}: {placed}", flush=True)
        return session(path, provider, level, strict=False)


def cached_steps(sess, cfg, tokens):
    """Logits of `tokens` fed in runs of unequal length through the cache:
    4, 4 and 8 tokens (lengths that are multiples of 4, as llmfs pads them
    for this provider), then one token at a time."""
    b, t = tokens.shape
    names = [o.name for o in sess.get_outputs()]
    cache, rows = intmodel.empty_cache(cfg, b), []
    cuts = sorted({0, *[c for c in (4, 8, 16) if c < t], *range(17, t + 1)})
    for i0, i1 in zip(cuts, cuts[1:]):
        if i0 >= i1:
            continue
        out = sess.run(None, {"tokens": tokens[:, i0:i1], **cache})
        rows.append(out[0])
        cache = {n.replace("present", "past"): v for n, v in zip(names[1:], out[1:])}
    return np.concatenate(rows, axis=1)


def check_model(path, provider, results, strictness):
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

    def record(what, run, ref):
        """Times `run()` and compares its logits with `ref`; a run that
        fails is recorded with its error and counts as different."""
        nonlocal bad
        start = time.perf_counter()
        try:
            got, error = run(), None
        except Exception as e:  # onnxruntime raises its own Fail type
            got, error = None, str(e).strip()
        seconds = time.perf_counter() - start
        ok = got is not None and got.dtype == np.int32 and np.array_equal(got, ref)
        bad += not ok
        results.append({"model": path, "check": what, "equal": bool(ok),
                        "seconds": round(seconds, 4), "error": error})
        verdict = "equal" if ok else f"FAILED: {error}" if error else "DIFFERENT"
        print(f"{path}: {what}: {verdict} ({seconds:.3f} s)", flush=True)

    for level in LEVELS:
        sess = open_session(path, provider, level, cfg, strictness)
        for tokens, ref in inputs:
            b = tokens.shape[0]
            feeds = {"tokens": tokens, **intmodel.empty_cache(cfg, b)}
            try:
                sess.run(["logits"], feeds)  # the first run includes kernel set-up
            except Exception:  # recorded by the timed run below
                pass
            record(f"full pass {level} batch {b} length {tokens.shape[1]}",
                   lambda: sess.run(["logits"], feeds)[0], ref)
    sess = open_session(path, provider, "basic", cfg, [])
    for tokens, ref in inputs[1:]:
        # The decoder's path: at most 40 positions, to keep the check short.
        tokens, ref = tokens[:, :40], ref[:, :40]
        record(f"cached steps batch {tokens.shape[0]} length {tokens.shape[1]}",
               lambda: cached_steps(sess, cfg, tokens), ref)
    return bad


def speed(path, provider, results):
    """Full-pass throughput at level basic: the median of five timed runs
    per batch size, after one untimed run."""
    cfg, _ = intmodel.load_int(path)
    ctx = cfg["context"]
    sess = session(path, provider, "basic", strict=False)
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


def shape_probe(provider):
    """Which int8 x int8 MatMulInteger shapes the provider runs, refuses or
    gets wrong: a one-node graph over a grid of (rows m, inner k, columns n),
    as a plain and a batched (rank 4) product."""
    import itertools

    import onnxruntime as ort
    from onnx import TensorProto, helper

    ort.set_default_logger_severity(4)  # the refusals log one error each
    found = {"ran": 0, "refused": [], "different": []}
    rng = np.random.default_rng(0)
    for rank in (2, 4):
        lead = [f"d{i}" for i in range(rank - 2)]
        node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
        g = helper.make_graph(
            [node], "probe",
            [helper.make_tensor_value_info("a", TensorProto.INT8, lead + ["m", "k"]),
             helper.make_tensor_value_info("b", TensorProto.INT8, lead + ["k", "n"])],
            [helper.make_tensor_value_info("y", TensorProto.INT32, None)])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        sess = session(m.SerializeToString(), provider, "basic")
        sizes = [1, 2, 3, 4, 5, 8, 12, 19, 31, 32, 33, 64]
        for rows, inner, cols in itertools.product(sizes, sizes, sizes + [256, 768]):
            shape = [2, 3] if rank == 4 else []
            a = rng.integers(-127, 128, size=shape + [rows, inner], dtype=np.int8)
            b = rng.integers(-127, 128, size=shape + [inner, cols], dtype=np.int8)
            try:
                y = sess.run(None, {"a": a, "b": b})[0]
            except Exception:  # onnxruntime raises its own Fail type
                found["refused"].append([rank, rows, inner, cols])
                continue
            if not np.array_equal(y, np.matmul(a.astype(np.int32), b.astype(np.int32))):
                found["different"].append([rank, rows, inner, cols])
            found["ran"] += 1
    ort.set_default_logger_severity(2)
    fours = [x for x in found["refused"] if x[1] == 1 or all(v % 4 == 0 for v in x[1:])]
    print(f"MatMulInteger shapes on {provider}: {found['ran']} ran, {len(found['refused'])} refused "
          f"({len(fours)} of them shapes llmfs runs: one row, or every dimension a multiple of 4), "
          f"{len(found['different'])} different", flush=True)
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--provider", default="CUDAExecutionProvider")
    ap.add_argument("--json", help="write the results here as JSON")
    ap.add_argument("--no-shapes", action="store_true",
                    help="skip the probe of MatMulInteger shapes")
    ap.add_argument("--speed", action="store_true",
                    help="also time full passes of the first model (no comparison)")
    args = ap.parse_args()
    import onnxruntime as ort

    results, strictness = [], []
    shapes = None if args.no_shapes else shape_probe(args.provider)
    bad = sum(check_model(m, args.provider, results, strictness) for m in args.models)
    if args.speed:
        speed(args.models[0], args.provider, results)
    summary = {"provider": args.provider, "onnxruntime": ort.__version__,
               "device": ort.get_device(), "different": bad,
               "every_node_on_provider": not strictness, "cpu_nodes": strictness,
               "matmulinteger_shapes": shapes,
               "results": results}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    compared = [r for r in results if "equal" in r]
    print(f"{len(compared) - bad} of {len(compared)} comparisons equal on {args.provider}; "
          f"{'every node ran on it' if not strictness else 'some nodes ran on the CPU'}")
    if shapes and shapes["different"]:
        bad += 1
    sys.exit(1 if bad else 2 if strictness else 0)


if __name__ == "__main__":
    main()
