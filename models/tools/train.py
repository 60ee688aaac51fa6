"""Trains the transformer that the graph builder exports.

The architecture is exactly the one graph.py writes: token + learned position
embeddings, pre-LayerNorm blocks (causal attention, GELU MLP), final
LayerNorm, untied output head. Every sample starts with BOS, as every coded
chunk does.

Two input schemes: bytes (vocabulary 256, BOS 256; the default), or with
--tokenizer a byte-pair tokenizer (tokenizer.py: all 256 bytes plus merges,
BOS = vocabulary size). Held-out figures are bits per *byte* either way.

Resumable: a checkpoint (weights, optimiser, step, RNG state) is written every
--checkpoint-minutes and at the end; rerunning the same command continues. The
learning-rate schedule is planned for --steps in total, across sessions.

usage: train.py --corpus DIR --out RUN_DIR [--d-model 192 --layers 3 ...]
"""

import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

BOS = 256


class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.ln1 = nn.LayerNorm(d)
        self.wqkv = nn.Linear(d, 3 * d)
        self.wo = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.w1 = nn.Linear(d, 4 * d)
        self.w2 = nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.wqkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.h, d // self.h).transpose(1, 2) for z in (q, k, v))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.wo(o.transpose(1, 2).reshape(b, t, d))
        return x + self.w2(F.gelu(self.w1(self.ln2(x))))


class Model(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["d_model"]
        vocab = cfg.get("vocab", 256)
        self.tok = nn.Embedding(vocab + 1, d)
        self.pos = nn.Embedding(cfg["context"], d)
        self.blocks = nn.ModuleList(Block(d, cfg["n_heads"]) for _ in range(cfg["n_layers"]))
        self.lnf = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, tokens):
        t = tokens.shape[1]
        x = self.tok(tokens) + self.pos(torch.arange(t, device=tokens.device))
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.lnf(x))

    def export_weights(self):
        """Weights under the names graph.py reads (x @ W layout)."""
        g = lambda p: p.detach().cpu().float().numpy()
        w = {"tok_emb": g(self.tok.weight), "pos_emb": g(self.pos.weight),
             "lnf.g": g(self.lnf.weight), "lnf.b": g(self.lnf.bias),
             "head.w": g(self.head.weight).T.copy(), "head.b": g(self.head.bias)}
        for i, blk in enumerate(self.blocks):
            p = f"h{i}."
            w.update({p + "ln1.g": g(blk.ln1.weight), p + "ln1.b": g(blk.ln1.bias),
                      p + "attn.wqkv": g(blk.wqkv.weight).T.copy(), p + "attn.bqkv": g(blk.wqkv.bias),
                      p + "attn.wo": g(blk.wo.weight).T.copy(), p + "attn.bo": g(blk.wo.bias),
                      p + "ln2.g": g(blk.ln2.weight), p + "ln2.b": g(blk.ln2.bias),
                      p + "mlp.w1": g(blk.w1.weight).T.copy(), p + "mlp.b1": g(blk.w1.bias),
                      p + "mlp.w2": g(blk.w2.weight).T.copy(), p + "mlp.b2": g(blk.w2.bias)})
        return w


def load_split(corpus, split, tok=None, cache_dir=None, max_bytes=None):
    """Each source of a split as a symbol array: its bytes, or its tokens
    (cached in cache_dir, since tokenizing the corpus takes minutes)."""
    data = {}
    for f in sorted(os.listdir(os.path.join(corpus, split))):
        arr = np.fromfile(os.path.join(corpus, split, f), dtype=np.uint8)
        if max_bytes:
            arr = arr[:max_bytes]
        if len(arr) <= 4096:
            continue
        if tok is not None:
            cache = os.path.join(cache_dir, f"tokens-{split}-{f[:-4]}-{max_bytes or 0}.npy")
            if os.path.exists(cache):
                arr = np.load(cache)
            else:
                arr = np.array(tok.encode(arr.tobytes()), dtype=np.uint16)
                np.save(cache + ".tmp.npy", arr)
                os.replace(cache + ".tmp.npy", cache)
        data[f[:-4]] = arr
    return data


def sampler(data, weights, ctx, batch, rng, bos=BOS):
    names = sorted(data)
    p = np.array([weights.get(n, 1.0) * len(data[n]) for n in names], dtype=np.float64)
    p /= p.sum()
    while True:
        src = rng.choice(len(names), size=batch, p=p)
        rows = []
        for s in src:
            arr = data[names[s]]
            start = rng.integers(0, len(arr) - ctx)
            rows.append(np.concatenate([[bos], arr[start:start + ctx - 1]]))
            rows[-1] = np.concatenate([rows[-1], arr[start + ctx - 1:start + ctx]])
        yield torch.from_numpy(np.stack(rows).astype(np.int64))


@torch.no_grad()
def evaluate(model, data, ctx, device, max_symbols=1 << 18, vocab=256, symbol_bytes=None):
    """Bits per byte on held-out text, coded as llmfs codes it: independent
    chunks of ctx symbols, each starting from BOS. symbol_bytes[i] is the
    length in bytes of symbol i (all 1 for bytes)."""
    model.eval()
    out = {}
    for name, arr in sorted(data.items()):
        arr = arr[:max_symbols]
        n = len(arr) // ctx * ctx
        n_bytes = n if symbol_bytes is None else int(symbol_bytes[arr[:n]].sum())
        chunks = torch.from_numpy(arr[:n].reshape(-1, ctx).astype(np.int64))
        bits = 0.0
        for i in range(0, len(chunks), 32):
            y = chunks[i:i + 32].to(device)
            x = torch.cat([torch.full((len(y), 1), vocab, device=device), y[:, :-1]], dim=1)
            bits += F.cross_entropy(model(x).reshape(-1, vocab), y.reshape(-1), reduction="sum").item()
        out[name] = bits / n_bytes / math.log(2)
    model.train()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--d-model", type=int, default=192)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--steps", type=int, default=20000, help="planned total, across sessions")
    ap.add_argument("--stop-after-minutes", type=float, default=1e9, help="this session's share")
    ap.add_argument("--checkpoint-minutes", type=float, default=10)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--tokenizer", help="tokenizer.json (tokenizer.py); bytes without it")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = {"d_model": args.d_model, "n_layers": args.layers, "n_heads": args.heads, "context": args.context}
    os.makedirs(args.out, exist_ok=True)
    tok, symbol_bytes = None, None
    if args.tokenizer:
        from tokenizer import Tokenizer
        tok = Tokenizer.load(args.tokenizer)
        tok.save(os.path.join(args.out, "tokenizer.json"))
        cfg["vocab"] = tok.vocab
        symbol_bytes = np.array([len(b) for b in tok.bytes_of], dtype=np.int64)
    vocab = cfg.get("vocab", 256)
    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    torch.manual_seed(args.seed)
    model = Model(cfg).to(args.device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    other = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": other, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98))
    step, rng, log = 0, np.random.default_rng(args.seed), []
    train_seconds = 0.0
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, map_location=args.device, weights_only=False)
        assert ck["config"] == cfg, f"checkpoint config {ck['config']} differs from {cfg}"
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, log, train_seconds = ck["step"], ck["log"], ck["train_seconds"]
        rng.bit_generator.state = ck["rng"]
        print(f"resumed at step {step}", flush=True)
    train = load_split(args.corpus, "train", tok, args.out)
    held = load_split(args.corpus, "heldout", tok, args.out, max_bytes=1 << 16)
    batches = sampler(train, {}, args.context, args.batch, rng, bos=vocab)
    nparams = sum(p.numel() for p in model.parameters())
    print(f"{nparams} parameters, config {cfg}, {sum(map(len, train.values())) / 1e6:.1f}M training symbols",
          flush=True)

    def save():
        tmp = ckpt_path + ".tmp"
        torch.save({"config": cfg, "model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "log": log, "train_seconds": train_seconds, "rng": rng.bit_generator.state,
                    "args": vars(args)}, tmp)
        os.replace(tmp, ckpt_path)
        np.savez(os.path.join(args.out, "weights.npz"), **model.export_weights())
        json.dump(cfg, open(os.path.join(args.out, "config.json"), "w"), sort_keys=True)
        json.dump({"step": step, "steps_planned": args.steps, "train_seconds": train_seconds,
                   "tokens": step * args.batch * args.context, "parameters": nparams,
                   "device": args.device, "log": log}, open(os.path.join(args.out, "train_log.json"), "w"), indent=1)

    start = time.time()
    last_ckpt = time.time()
    t_mark, loss_acc, n_acc = time.time(), 0.0, 0
    while step < args.steps:
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        tokens = next(batches).to(args.device)
        logits = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, vocab), tokens[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        loss_acc += loss.item()
        n_acc += 1
        if step % 100 == 0:
            now = time.time()
            train_seconds += now - t_mark
            rate = 100 * args.batch * args.context / (now - t_mark)
            # bits per symbol (a token, for a tokenizer model); held out is per byte
            entry = {"step": step, "bits_per_symbol": loss_acc / n_acc / math.log(2), "lr": lr, "tok_s": rate}
            if step % 1000 == 0 or step == args.steps:
                entry["heldout_bpb"] = evaluate(model, held, args.context, args.device, 1 << 16, vocab,
                                                symbol_bytes)
            log.append(entry)
            print(json.dumps(entry), flush=True)
            t_mark, loss_acc, n_acc = time.time(), 0.0, 0
        if time.time() - last_ckpt > args.checkpoint_minutes * 60:
            save()
            last_ckpt = time.time()
        if time.time() - start > args.stop_after_minutes * 60:
            break
    save()
    print(f"stopped at step {step} of {args.steps}", flush=True)


if __name__ == "__main__":
    main()
