"""Byte-pair tokenizer for the second input scheme: a vocabulary holding all
256 single bytes plus learned merges, so any byte string, binary included,
has a tokenization and every token sequence decodes to exactly one string.

The rule, fixed so that another implementation reproduces it token for token:
1. Cut the input into pieces with PIECE (every byte falls in exactly one of
   its classes, and runs are capped at 64 bytes, so the pieces always
   concatenate back to the input).
2. In each piece start from its single bytes (ids 0..255) and repeatedly
   merge the adjacent pair whose merge has the lowest rank, all occurrences
   of it left to right, until no adjacent pair has a merge. Merge i makes id
   256 + i.
BOS is 256 + len(merges): it starts every coded chunk, as 256 does for the
byte models.

File format (tokenizer.json): {"kind": "llmfs-bpe-1", "pieces": PIECE's
pattern, "merges": [[a, b], ...]}.

usage: tokenizer.py train CORPUS_DIR N_MERGES OUT.json [--sample-mb 24]
       tokenizer.py stats TOKENIZER.json FILE...
"""

import argparse
import heapq
import json
import os
import re
import sys
from collections import Counter, defaultdict

PIECE_PATTERN = (rb" ?[A-Za-z]{1,64}| ?[0-9]{1,64}| ?[\x80-\xff]{1,64}"
                 rb"| ?[^\sA-Za-z0-9\x80-\xff]{1,64}|\s{1,64}(?!\S)|\s{1,64}")
PIECE = re.compile(PIECE_PATTERN)
KIND = "llmfs-bpe-1"


def pieces(data):
    return PIECE.findall(data)


def merge_pair(word, a, b, new):
    out, i, n = [], 0, len(word)
    while i < n:
        if i + 1 < n and word[i] == a and word[i + 1] == b:
            out.append(new)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def train(counts, n_merges):
    """Classic BPE over piece frequencies, with incremental pair counts.
    Ties go to the numerically smallest pair, so training is deterministic."""
    words = [list(w) for w in counts]
    freqs = list(counts.values())
    pair_count = defaultdict(int)
    where = defaultdict(set)
    for i, w in enumerate(words):
        for p in zip(w, w[1:]):
            pair_count[p] += freqs[i]
            where[p].add(i)
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)
    merges = []
    while len(merges) < n_merges and heap:
        c, p = heapq.heappop(heap)
        if pair_count.get(p, 0) != -c or c == 0:
            continue  # stale entry
        new = 256 + len(merges)
        merges.append(p)
        changed = set()
        for i in where.pop(p, ()):
            w, f = words[i], freqs[i]
            for q in zip(w, w[1:]):
                pair_count[q] -= f
                changed.add(q)
            w = merge_pair(w, p[0], p[1], new)
            words[i] = w
            for q in zip(w, w[1:]):
                pair_count[q] += f
                where[q].add(i)
                changed.add(q)
        pair_count.pop(p, None)
        for q in changed:
            if pair_count.get(q, 0) > 0:
                heapq.heappush(heap, (-pair_count[q], q))
    return merges


class Tokenizer:
    def __init__(self, merges):
        self.merges = [tuple(m) for m in merges]
        self.rank = {p: r for r, p in enumerate(self.merges)}
        self.vocab = 256 + len(self.merges)
        self.bos = self.vocab
        self.bytes_of = [bytes([i]) for i in range(256)]
        for a, b in self.merges:
            self.bytes_of.append(self.bytes_of[a] + self.bytes_of[b])
        self.cache = {}

    @classmethod
    def load(cls, path):
        spec = json.load(open(path))
        if spec.get("kind") != KIND or spec.get("pieces") != PIECE_PATTERN.decode("latin-1"):
            raise ValueError(f"{path}: not an {KIND} tokenizer with this piece rule")
        return cls(spec["merges"])

    def save(self, path):
        json.dump({"kind": KIND, "pieces": PIECE_PATTERN.decode("latin-1"),
                   "merges": [list(m) for m in self.merges]}, open(path, "w"))

    def encode_piece(self, piece):
        hit = self.cache.get(piece)
        if hit is not None:
            return hit
        word = list(piece)
        while len(word) > 1:
            best = min(zip(word, word[1:]), key=lambda p: self.rank.get(p, 1 << 30))
            r = self.rank.get(best)
            if r is None:
                break
            word = merge_pair(word, best[0], best[1], 256 + r)
        if len(self.cache) < 1 << 20:
            self.cache[piece] = word
        return word

    def encode(self, data):
        out = []
        for piece in pieces(data):
            out += self.encode_piece(piece)
        return out

    def decode(self, ids):
        return b"".join(self.bytes_of[i] for i in ids)


def sample_counts(corpus, sample_mb):
    """Piece counts over an even sample of every training source, each source
    weighted by its share of the corpus (as the trainer samples it)."""
    split = os.path.join(corpus, "train")
    names = sorted(os.listdir(split))
    sizes = {n: os.path.getsize(os.path.join(split, n)) for n in names}
    total = sum(sizes.values())
    counts = Counter()
    for n in names:
        want = int(sample_mb * (1 << 20) * sizes[n] / total)
        data = open(os.path.join(split, n), "rb").read()
        # 64 KiB slices spread over the file, like the blocks of a volume
        n_slices = max(1, want // 65536)
        step = max(65536, len(data) // n_slices)
        for off in range(0, len(data), step):
            counts.update(pieces(data[off:off + 65536]))
    return counts


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("corpus")
    t.add_argument("n_merges", type=int)
    t.add_argument("out")
    t.add_argument("--sample-mb", type=float, default=24)
    s = sub.add_parser("stats")
    s.add_argument("tokenizer")
    s.add_argument("files", nargs="+")
    args = ap.parse_args()
    if args.cmd == "train":
        counts = sample_counts(args.corpus, args.sample_mb)
        print(f"{len(counts)} distinct pieces, {sum(len(p) * c for p, c in counts.items()) / 1e6:.1f} MB sampled",
              flush=True)
        tok = Tokenizer(train(counts, args.n_merges))
        tok.save(args.out)
        print(f"{len(tok.merges)} merges, vocabulary {tok.vocab} + BOS", flush=True)
    else:
        tok = Tokenizer.load(args.tokenizer)
        for f in args.files:
            data = open(f, "rb").read()
            ids = tok.encode(data)
            assert tok.decode(ids) == data
            print(f"{f}: {len(data)} bytes, {len(ids)} tokens, {len(data) / max(1, len(ids)):.3f} bytes/token")


if __name__ == "__main__":
    sys.exit(main())
