"""Runs an integer model on ONNX Runtime's CUDA execution provider with CPU
fallback disabled (every node must run on the GPU, or the session fails) and
compares its logits bitwise with the numpy reference (intmodel.forward).

Needs an onnxruntime build with the CUDA provider (the onnxruntime-gpu
wheel, 1.31.1) and a GPU; run on a GPU machine:

  python3 models/tools/cuda_check.py models/default/model.onnx

Exits 0 when the full pass and the cached steps equal the reference on every
input, 1 otherwise; prints the logits digest of intmodel's fixed input.
"""

import sys

import numpy as np

import intmodel


def session(path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        sys.exit("this onnxruntime has no CUDA execution provider (install onnxruntime-gpu==1.31.1)")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    return ort.InferenceSession(path, so, providers=["CUDAExecutionProvider"])


def main():
    path = sys.argv[1]
    cfg, p = intmodel.load_int(path)
    intmodel.validate(cfg, p)
    sess = session(path)
    rng = np.random.default_rng(7)
    bad = 0
    for b, t in [(3, 64), (8, cfg["context"]), (1, 1)]:
        tokens = rng.integers(0, 256, size=(b, t))
        tokens[:, 0] = 256
        ref, _ = intmodel.forward(p, cfg, tokens)
        got = sess.run(["logits"], {"tokens": tokens, **intmodel.empty_cache(cfg, b)})[0]
        ok = np.array_equal(got, ref)
        bad += not ok
        print(f"cuda full pass batch {b} length {t}: {'equal' if ok else 'DIFFERENT'}")
        names = [o.name for o in sess.get_outputs()]
        cache, rows = intmodel.empty_cache(cfg, b), []
        for i in range(min(t, 32)):
            out = sess.run(None, {"tokens": tokens[:, i : i + 1], **cache})
            rows.append(out[0])
            cache = {n.replace("present", "past"): v for n, v in zip(names[1:], out[1:])}
        ok = np.array_equal(np.concatenate(rows, axis=1), ref[:, : len(rows)])
        bad += not ok
        print(f"cuda cached steps batch {b}: {'equal' if ok else 'DIFFERENT'}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
