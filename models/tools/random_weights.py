"""Fixed-seed random weights for a given config: the committed test model.

The test model predicts badly on purpose-free random weights, but it runs the
same graph, the same runtime and the same coder as a trained model, at a
fraction of the cost, so tests can push whole corpora through it.
"""

import json
import sys

import numpy as np


def random_weights(config, seed):
    rng = np.random.default_rng(seed)
    d, ctx = config["d_model"], config["context"]
    f = lambda *shape, s=0.02: (rng.standard_normal(shape) * s).astype(np.float32)
    w = {"tok_emb": f(257, d, s=0.5), "pos_emb": f(ctx, d, s=0.1)}
    for l in range(config["n_layers"]):
        p = f"h{l}."
        w[p + "ln1.g"] = np.ones(d, np.float32) + f(d, s=0.1)
        w[p + "ln1.b"] = f(d)
        w[p + "attn.wqkv"] = f(d, 3 * d, s=0.3)
        w[p + "attn.bqkv"] = f(3 * d)
        w[p + "attn.wo"] = f(d, d, s=0.1)
        w[p + "attn.bo"] = f(d)
        w[p + "ln2.g"] = np.ones(d, np.float32) + f(d, s=0.1)
        w[p + "ln2.b"] = f(d)
        w[p + "mlp.w1"] = f(d, 4 * d, s=0.1)
        w[p + "mlp.b1"] = f(4 * d)
        w[p + "mlp.w2"] = f(4 * d, d, s=0.05)
        w[p + "mlp.b2"] = f(d)
    w["lnf.g"] = np.ones(d, np.float32)
    w["lnf.b"] = f(d)
    w["head.w"] = f(d, 256, s=0.3)
    w["head.b"] = f(256, s=0.5)
    return w


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: random_weights.py CONFIG.json SEED OUT.npz")
    config = json.load(open(sys.argv[1]))
    np.savez(sys.argv[3], **random_weights(config, int(sys.argv[2])))
