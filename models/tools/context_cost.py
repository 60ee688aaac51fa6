"""Measures what coding independent chunks costs against longer context.

llmfs codes each chunk of `context` bytes from BOS, with no memory of the
previous chunk. For a file this prints bits per byte for:
  - independent chunks of 64, 128 and `context` bytes (what llmfs could do);
  - a sliding window: every byte predicted from up to `context` - 1
    preceding bytes, approximated by windows of `context` at stride
    context/2, scoring only their second half (each scored byte sees at
    least context/2 bytes of history), which is what carrying a cache across
    chunks or a sliding window would reach.

usage: context_cost.py RUN_DIR FILE [FILE...]   (RUN_DIR holds config.json and checkpoint.pt)
"""

import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train import BOS, Model  # noqa: E402


@torch.no_grad()
def chunked(model, data, n):
    usable = len(data) // n * n
    y = torch.from_numpy(data[:usable].reshape(-1, n).astype(np.int64))
    bits = 0.0
    for i in range(0, len(y), 64):
        yy = y[i:i + 64]
        x = torch.cat([torch.full((len(yy), 1), BOS), yy[:, :-1]], 1)
        bits += F.cross_entropy(model(x).reshape(-1, 256), yy.reshape(-1), reduction="sum").item()
    return bits / usable / math.log(2)


@torch.no_grad()
def sliding(model, data, ctx):
    half = ctx // 2
    bits, count = 0.0, 0
    starts = list(range(0, len(data) - ctx, half))
    for i in range(0, len(starts), 64):
        rows = np.stack([data[s:s + ctx] for s in starts[i:i + 64]]).astype(np.int64)
        y = torch.from_numpy(rows)
        x = torch.cat([torch.full((len(y), 1), BOS), y[:, :-1]], 1)
        logits = model(x)[:, half:]
        bits += F.cross_entropy(logits.reshape(-1, 256), y[:, half:].reshape(-1), reduction="sum").item()
        count += y[:, half:].numel()
    return bits / count / math.log(2)


def main():
    run = sys.argv[1]
    cfg = json.load(open(os.path.join(run, "config.json")))
    model = Model(cfg)
    model.load_state_dict(torch.load(os.path.join(run, "checkpoint.pt"), map_location="cpu", weights_only=False)["model"])
    model.eval()
    ctx = cfg["context"]
    print(f"| file | chunks of 64 | chunks of 128 | chunks of {ctx} (llmfs) | sliding window {ctx} |")
    print("|---|---:|---:|---:|---:|")
    for path in sys.argv[2:]:
        data = np.fromfile(path, dtype=np.uint8)[: 1 << 17]
        row = [chunked(model, data, 64), chunked(model, data, 128), chunked(model, data, ctx), sliding(model, data, ctx)]
        print(f"| {os.path.basename(path)} | " + " | ".join(f"{v:.3f}" for v in row) + " |", flush=True)


if __name__ == "__main__":
    main()
