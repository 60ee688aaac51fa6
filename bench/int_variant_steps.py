#!/usr/bin/env python3
"""One-token decode steps of integer models' embedded CPU variants, on ONNX
Runtime (1 thread, level basic): batch 64 after 128 cached positions, CPU
time, 15 rounds of 5 steps alternating the models; prints the fastest round
and the median per model.

    python3 bench/int_variant_steps.py MODEL.onnx [MODEL.onnx ...]

The model card's before/after step times compare the committed model with
the one before its CPU variant was rebuilt (`git show REV:models/default/model.onnx`)."""
import os
import sys
import time

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "models", "tools"))
import intmodel as im  # noqa: E402

PAST = 128
sessions = []
for path in sys.argv[1:]:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    s = ort.InferenceSession(im.cpu_variant(path), so, providers=["CPUExecutionProvider"])
    feeds = {"tokens": np.zeros((64, 1), np.int64), **im.session_cache(s, 64, PAST)}
    sessions.append((path, s, feeds, []))
for _ in range(15):
    for path, s, feeds, times in sessions:
        s.run(None, feeds)
        t = time.process_time()
        for _ in range(5):
            s.run(None, feeds)
        times.append((time.process_time() - t) / 5 * 1000)
for path, s, feeds, times in sessions:
    times.sort()
    print(f"{path}: fastest {times[0]:.2f} ms, median {times[len(times) // 2]:.2f} ms")
