"""Tests of the byte-pair tokenizer (tokenizer.py): every byte string, binary
included, tokenizes and decodes back to itself; tokenization and training are
deterministic; the committed tokenizer's output is pinned.

Standard library only, so CI runs it with the system python3:
    python3 models/tools/test_tokenizer.py
"""

import os
import random
import sys
import unittest
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tokenizer import Tokenizer, pieces, train  # noqa: E402

SHIPPED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "candidates", "tok1024-d192l3",
                       "tokenizer.json")
SENTENCE = b"The quick brown fox jumps over the lazy dog.\r\n\tint main(void) { return 0; }\n"


class Reversible(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tok = Tokenizer.load(SHIPPED)

    def check(self, data):
        self.assertEqual(b"".join(pieces(data)), data)
        ids = self.tok.encode(data)
        self.assertTrue(all(0 <= i < self.tok.vocab for i in ids))
        self.assertEqual(self.tok.decode(ids), data)
        self.assertEqual(self.tok.encode(data), ids)
        return ids

    def test_random_binary(self):
        rng = random.Random(1)
        for n in [0, 1, 2, 3, 63, 64, 65, 255, 256, 257, 4096, 65536]:
            self.check(bytes(rng.randrange(256) for _ in range(n)))

    def test_every_byte_value_and_pair(self):
        self.check(bytes(range(256)))
        self.check(bytes(range(256))[::-1])
        self.check(bytes(b for a in range(0, 256, 5) for b in (a, 32, a)))
        for b in range(256):
            self.assertEqual(self.check(bytes([b])), [b])

    def test_adversarial_runs(self):
        # Runs longer than the 64-byte piece cap, of every character class.
        for unit in [b"a", b"7", b"\xe9", b"!", b" ", b"\n", b"\r\n", b"\t ", b"\x00", b"ab ", b" \xff"]:
            for n in [1, 63, 64, 65, 200, 1000]:
                self.check(unit * n)
        self.check(b" " * 100 + b"word" + b"\n" * 70 + b"x")
        self.check("żółć — naïve café ☃ 日本語\n".encode() * 20)
        self.check(b"\xff\xfe" + "text in UTF-16".encode("utf-16-le"))

    def test_merges_shorten_text(self):
        ids = self.check(SENTENCE * 10)
        self.assertLess(len(ids), len(SENTENCE * 10) / 2)


class Deterministic(unittest.TestCase):
    def test_training_is_deterministic_and_ranked(self):
        text = (SENTENCE * 3 + b"the theme of the thesis, then the other one\n") * 5
        counts = Counter(pieces(text))
        a = train(counts, 40)
        b = train(Counter(dict(reversed(list(counts.items())))), 40)
        self.assertEqual(a, b)
        self.assertEqual(len(a), 40)
        tok = Tokenizer(a)
        self.assertEqual(tok.decode(tok.encode(text)), text)
        self.assertLess(len(tok.encode(text)), len(text) / 2)

    def test_shipped_tokenizer_is_pinned(self):
        tok = Tokenizer.load(SHIPPED)
        self.assertEqual(tok.vocab, 1024)
        self.assertEqual(tok.bos, 1024)
        self.assertEqual(tok.encode(SENTENCE), [
            648, 545, 303, 107, 287, 324, 864, 281, 111, 120, 611, 389, 112, 115, 992, 270, 740, 122, 121,
            637, 103, 46, 474, 9, 454, 286, 506, 40, 118, 788, 41, 458, 666, 452, 59, 537, 10])

    def test_other_piece_rules_are_refused(self):
        import json
        import tempfile
        spec = json.load(open(SHIPPED))
        spec["pieces"] = "."
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(spec, f)
        try:
            with self.assertRaises(ValueError):
                Tokenizer.load(f.name)
        finally:
            os.unlink(f.name)


if __name__ == "__main__":
    unittest.main(verbosity=1)
