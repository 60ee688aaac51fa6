"""Tests of qat.py: the QAT forward pass computes intmodel.forward's integer
logits bitwise, before and after a training step, and the model it exports
(intmodel.write_model: the canonical graph and its embedded CPU variant)
gives the same logits under ONNX Runtime.

    python3 models/tools/test_qat.py        (about 15 s on one thread)
"""

import hashlib
import os
import sys
import tempfile
import unittest

import numpy as np
import onnxruntime as ort
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import intmodel as im  # noqa: E402
import qat  # noqa: E402

torch.set_num_threads(1)


def chunks(n, length, seed):
    """BOS-first token rows: text of this repository and random bytes."""
    with open(os.path.join(HERE, "intmodel.py"), "rb") as f:
        text = f.read()
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        if i % 2 == 0:
            at = int(rng.integers(0, len(text) - length))
            y = np.frombuffer(text[at:at + length], np.uint8).astype(np.int64)
        else:
            y = rng.integers(0, 256, length)
        rows.append(np.concatenate([[qat.BOS], y[:-1]]))
    return np.stack(rows), np.stack([np.concatenate([r[1:], [0]]) for r in rows])


def ort_logits(path, cfg, tokens, level="basic"):
    sess = im.ort_session(path, level, 1)
    return sess.run(["logits"], {"tokens": tokens, **im.empty_cache(cfg, tokens.shape[0])})[0]


class Case:
    float_path = None
    n_chunks = 3
    length = 256

    @classmethod
    def setUpClass(cls):
        cls.cfg, cls.w = im.load_float(os.path.join(ROOT, cls.float_path))
        cls.stats = cls.calibration(cls)

    def setUp(self):
        self.model = qat.QAT(self.cfg, self.w, self.stats)
        self.tokens, self.targets = chunks(self.n_chunks, self.length, seed=3)

    def check_exact(self, tag):
        """QAT forward == intmodel.forward == ONNX Runtime on the export."""
        logits, exact = self.model(torch.from_numpy(self.tokens))
        icfg, p = self.model.quantize()
        ref, _ = im.forward(p, icfg, self.tokens)
        self.assertTrue(np.array_equal(exact.numpy(), ref), f"{tag}: QAT exact logits != intmodel.forward")
        self.assertTrue(np.array_equal(logits.detach().numpy(), ref.astype(np.float32)),
                        f"{tag}: the differentiable logits' values are not the integers")
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "model.onnx")
            self.model.export(path)
            got = ort_logits(path, icfg, self.tokens)
            self.assertEqual(got.dtype, np.int32)
            self.assertTrue(np.array_equal(got, ref), f"{tag}: ONNX Runtime on the export != intmodel.forward")
            sess = ort.InferenceSession(im.cpu_variant(path), providers=["CPUExecutionProvider"])
            feeds = {k: v.astype(np.uint8) for k, v in im.empty_cache(icfg, self.tokens.shape[0]).items()}
            got = sess.run(["logits"], {"tokens": self.tokens, **feeds})[0]
            self.assertTrue(np.array_equal(got, ref), f"{tag}: the export's CPU variant != intmodel.forward")
            ecfg, ep = im.load_int(path)
            self.assertEqual(ecfg, icfg)
            self.assertEqual(set(ep), set(p))
            for k in p:
                self.assertTrue(np.array_equal(ep[k], p[k]), k)
        return logits, ref

    def test_exact_before_and_after_a_step(self):
        logits, ref0 = self.check_exact("initial weights")
        opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]) / 1024,
                                                 torch.from_numpy(self.targets).reshape(-1))
        loss.backward()
        for name, prm in self.model.named_parameters():
            self.assertIsNotNone(prm.grad, name)
            self.assertTrue(torch.isfinite(prm.grad).all(), name)
        self.assertGreater(sum(float(prm.grad.abs().sum()) for prm in self.model.parameters()), 0)
        opt.step()
        _, ref1 = self.check_exact("after a step")
        self.assertFalse(np.array_equal(ref0, ref1), "a step changed no logit")


class TestModel(Case, unittest.TestCase):
    """The test model (random weights, d_model 32), calibrated here."""
    float_path = "models/test/model.onnx"

    def calibration(self):
        tokens, _ = chunks(4, 256, seed=1)
        return im.calibrate(self.w, self.cfg, [np.concatenate([r[1:], [0]]) for r in tokens])


class TestDefault(Case, unittest.TestCase):
    """The float default with the PTQ calibration: at its initial weights the
    QAT model is models/default/model.onnx, byte for byte."""
    float_path = "models/float-d192l3/model.onnx"
    n_chunks = 2

    def calibration(self):
        return qat.load_stats(os.path.join(ROOT, "models/candidates/int-qat/ptq_stats.npz"))

    def test_initial_weights_are_the_ptq_default(self):
        icfg, p = self.model.quantize()
        graph = im.with_cpu_variant(im.build_graph(icfg, p), icfg, p).SerializeToString()
        with open(os.path.join(ROOT, "models/default/model.onnx"), "rb") as f:
            want = f.read()
        self.assertEqual(hashlib.sha256(graph).hexdigest(), hashlib.sha256(want).hexdigest())
        _, exact = self.model(torch.from_numpy(self.tokens))
        got = ort_logits(os.path.join(ROOT, "models/default/model.onnx"), icfg, self.tokens)
        self.assertTrue(np.array_equal(exact.numpy(), got))


if __name__ == "__main__":
    unittest.main()
