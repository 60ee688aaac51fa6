#!/usr/bin/env python3
"""ONNX Runtime's CPU kernels for the integer model's table lookups and
requantisation, alone (1 thread, level basic, microseconds per run of
[64, 768] elements, each result checked equal between the two forms):
Gather against GatherElements on a 1024-entry table, and requantisation
dividing int64 by 2^24, with a uint64 right shift (the CPU variant until
2026-12-02), and in six uint64 passes (Cast, Mul, Add, BitShift, Clip,
Cast: the CPU variant since 2026-12-03). Why the CPU variant uses
GatherElements and the last (docs/INTEGER_MODEL.md, "The CPU variant").

    python3 bench/int_variant_ops.py"""
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto as TP
from onnx import helper
from onnx import numpy_helper as nh

N = helper.make_node


def session(nodes, inputs, outputs, inits):
    g = helper.make_graph(nodes, "g", inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def us(s, feeds, n=200):
    for _ in range(5):
        s.run(None, feeds)
    t = time.perf_counter()
    for _ in range(n):
        s.run(None, feeds)
    return (time.perf_counter() - t) / n * 1e6


rng = np.random.default_rng(0)
n = 64 * 768
table = np.arange(1024, dtype=np.int32) * 7
idx = rng.integers(0, 1024, n).astype(np.int32)
out = helper.make_tensor_value_info("o", TP.INT32, None)
gather = session([N("Gather", ["t", "i"], ["o"], axis=0)],
                 [helper.make_tensor_value_info("i", TP.INT32, [n])], [out], [nh.from_array(table, "t")])
elements = session([N("GatherElements", ["t", "i"], ["o"], axis=1)],
                   [helper.make_tensor_value_info("i", TP.INT32, [1, n])], [out],
                   [nh.from_array(table.reshape(1, -1), "t")])
a = gather.run(None, {"i": idx})[0]
b = elements.run(None, {"i": idx.reshape(1, n)})[0].reshape(-1)
assert (a == b).all()

S, OFF = 24, 1 << 31
shape = [64, 1, 768]
mul = rng.integers(1, 1 << 20, 768).astype(np.int64)
add = (np.int64(OFF) << S) + rng.integers(0, 1 << 20, 768).astype(np.int64)
inits = [nh.from_array(mul, "mul"), nh.from_array(add, "add"), nh.from_array(np.array(1 << S, np.int64), "p"),
         nh.from_array(np.array(OFF - 128, np.int64), "off"), nh.from_array(np.array(1, np.int64), "lo"),
         nh.from_array(np.array(255, np.int64), "hi"), nh.from_array(np.array(S, np.uint64), "s")]
x = helper.make_tensor_value_info("x", TP.INT32, shape)
y = helper.make_tensor_value_info("y", TP.UINT8, shape)
head = [N("Cast", ["x"], ["a"], to=TP.INT64), N("Mul", ["a", "mul"], ["b"]), N("Add", ["b", "add"], ["c"])]
tail = [N("Sub", ["d", "off"], ["e"]), N("Max", ["e", "lo"], ["f"]), N("Min", ["f", "hi"], ["g"]),
        N("Cast", ["g"], ["y"], to=TP.UINT8)]
div = session(head + [N("Div", ["c", "p"], ["d"])] + tail, [x], [y], inits)
shift = session(head + [N("Cast", ["c"], ["cu"], to=TP.UINT64), N("BitShift", ["cu", "s"], ["du"], direction="RIGHT"),
                        N("Cast", ["du"], ["d"], to=TP.INT64)] + tail, [x], [y], inits)
# The same result in six passes: uint64 arithmetic modulo 2^64, the offset
# 2^31 + 128 (times 2^24) in the addend, the clamp on the shifted value and
# the Cast keeping its residue modulo 2^8.
u64 = [nh.from_array(mul.astype(np.uint64), "mul64"),
       nh.from_array((add + ((OFF + 128) << S)).astype(np.uint64), "add64"),
       nh.from_array(np.array(S, np.uint64), "s"), nh.from_array(np.array(1 + (1 << 32), np.uint64), "lo64"),
       nh.from_array(np.array(255 + (1 << 32), np.uint64), "hi64")]
six = session([N("Cast", ["x"], ["a"], to=TP.UINT64), N("Mul", ["a", "mul64"], ["b"]), N("Add", ["b", "add64"], ["c"]),
               N("BitShift", ["c", "s"], ["d"], direction="RIGHT"), N("Clip", ["d", "lo64", "hi64"], ["e"]),
               N("Cast", ["e"], ["y"], to=TP.UINT8)], [x], [y], u64)
xv = {"x": rng.integers(-(1 << 22), 1 << 22, shape).astype(np.int32)}
assert (div.run(None, xv)[0] == shift.run(None, xv)[0]).all()
assert (div.run(None, xv)[0] == six.run(None, xv)[0]).all()

for r in range(3):
    print(f"round {r + 1}: Gather {us(gather, {'i': idx}):.0f} us, GatherElements "
          f"{us(elements, {'i': idx.reshape(1, n)}):.0f} us; requantisation with Div {us(div, xv):.0f} us, "
          f"with BitShift {us(shift, xv):.0f} us, in six uint64 passes {us(six, xv):.0f} us")
