#!/usr/bin/env python3
"""Where one-token decode steps of the integer default model's CPU variant
spend their time on ONNX Runtime (1 thread, level basic), and what the
choices left to a decoder change (issue 13's speed target).

    python3 bench/int_step_probe.py ops [PAST]   time per operator kind and input shape
                                                 (batch 64, PAST cached positions, default 128)
    python3 bench/int_step_probe.py batch        batch 64 against 128, per sequence-step,
                                                 over pasts 8..248
    python3 bench/int_step_probe.py levels       graph optimisation basic/extended/all
                                                 (and checks that their outputs are equal)
    python3 bench/int_step_probe.py memory       memory arena and memory pattern on/off
    python3 bench/int_step_probe.py attention    the attention products as the graph has them
                                                 against the cache as the left operand

CPU time (`time.process_time`), rounds alternating the contenders; prints
the fastest round and the median. Results of 2026-12-03:
bench/results/2026-12-03-int-step-probe.txt."""
import collections
import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "models", "tools"))
import intmodel as im  # noqa: E402

MODEL = os.path.join(os.path.dirname(__file__), "..", "models", "default", "model.onnx")
LEVELS = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
          "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
          "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}


def session(level="basic", profile=False, arena=True, pattern=True):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    so.graph_optimization_level = LEVELS[level]
    so.enable_profiling = profile
    so.enable_cpu_mem_arena = arena
    so.enable_mem_pattern = pattern
    return ort.InferenceSession(im.cpu_variant(MODEL), so, providers=["CPUExecutionProvider"])


def feeds(s, batch, past):
    rng = np.random.default_rng(batch * 1000 + past)
    return {"tokens": rng.integers(0, 256, (batch, 1)).astype(np.int64), **im.session_cache(s, batch, past)}


def race(contenders, rounds, reps):
    """contenders: name -> function running one step; prints ms per step."""
    times = {k: [] for k in contenders}
    for _ in range(rounds):
        for k, f in contenders.items():
            t = time.process_time()
            for _ in range(reps):
                f()
            times[k].append((time.process_time() - t) / reps * 1000)
    for k, v in times.items():
        v.sort()
        print(f"{k}: fastest {v[0]:.2f} ms, median {v[len(v) // 2]:.2f} ms")


def ops(past):
    s = session(profile=True)
    f = feeds(s, 64, past)
    n = 40
    for _ in range(n):
        s.run(None, f)
    trace = s.end_profiling()
    by = collections.Counter()
    for e in json.load(open(trace)):
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            shapes = e["args"].get("input_type_shape", [])
            first = tuple(next(iter(shapes[0].values()))) if shapes else ()
            by[(e["args"]["op_name"], first)] += e["dur"]
    os.remove(trace)
    total = sum(by.values())
    print(f"batch 64, past {past}: {total / n:.0f} us per step in kernels")
    for (op, shape), d in by.most_common(30):
        print(f"{op:16s} {str(shape):22s} {d / n:7.0f} us {100 * d / total:5.1f}%")


def batch():
    s = session()
    pasts = (8, 64, 128, 192, 248)
    fs = {(b, p): feeds(s, b, p) for b in (64, 128) for p in pasts}

    def run(b):
        def go():
            for p in pasts:
                s.run(None, fs[(b, p)])
        return go
    print("per 5 steps (one at each past); per sequence-step divide by 5 x batch")
    race({"batch 64 x2": lambda: (run(64)(), run(64)()), "batch 128": run(128)}, 6, 2)


def levels():
    ss = {k: session(k) for k in LEVELS}
    f = feeds(ss["basic"], 64, 128)
    want = ss["basic"].run(None, f)
    for k, s in ss.items():
        assert all((a == b).all() for a, b in zip(want, s.run(None, f))), k
    print("outputs equal at every level; batch 64, past 128")
    race({k: (lambda s=s: s.run(None, f)) for k, s in ss.items()}, 12, 4)


def memory():
    ss = {"arena+pattern (default)": session(), "no arena": session(arena=False),
          "no pattern": session(pattern=False), "neither": session(arena=False, pattern=False)}
    f = feeds(ss["no arena"], 64, 128)
    print("batch 64, past 128")
    race({k: (lambda s=s: s.run(None, f)) for k, s in ss.items()}, 10, 4)


def attention():
    """MatMulInteger alone, uint8 with zero points as in the CPU variant,
    batch 64, 6 heads, head size 32, 129 positions."""
    from onnx import TensorProto, helper, numpy_helper

    def product(a_zp):
        zp = numpy_helper.from_array(np.array(128, np.uint8), "zp")
        node = helper.make_node("MatMulInteger", ["a", "b", "zp" if a_zp else "", "zp"], ["y"])
        g = helper.make_graph([node], "g", [helper.make_tensor_value_info("a", TensorProto.UINT8, None),
                                            helper.make_tensor_value_info("b", TensorProto.UINT8, None)],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, None)], [zp])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 9
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])

    rng = np.random.default_rng(0)
    u8 = lambda *shape: rng.integers(0, 256, shape).astype(np.uint8)  # noqa: E731
    p = 129
    cases = {
        "scores as built: q[64,6,1,32] x K[64,6,32,P]": (product(True), u8(64, 6, 1, 32), u8(64, 6, 32, p)),
        "scores, cache on the left: K[64,6,P,32] x q[64,6,32,1]": (product(True), u8(64, 6, p, 32), u8(64, 6, 32, 1)),
        "values as built: p[64,6,1,P] x V[64,6,P,32]": (product(False), u8(64, 6, 1, p), u8(64, 6, p, 32)),
        "values, cache on the left: V[64,6,32,P] x p[64,6,P,1]": (product(True), u8(64, 6, 32, p), u8(64, 6, p, 1)),
    }
    race({k: (lambda s=s, a=a, b=b: s.run(None, {"a": a, "b": b})) for k, (s, a, b) in cases.items()}, 8, 10)


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "ops"
    if cmd == "ops":
        ops(int(sys.argv[2]) if len(sys.argv) > 2 else 128)
    elif cmd in ("batch", "levels", "memory", "attention"):
        globals()[cmd]()
    else:
        sys.exit(__doc__)
