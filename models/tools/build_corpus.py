"""Builds the training corpus from ../shared/training plus what a Debian
machine of this kind carries (Python sources, C headers, man pages, docs,
configuration, Rust crate sources).

Deterministic: files are visited in sorted order, choices hang on content
hashes. Files sharing long lines with the evaluation corpora are dropped;
exact duplicates are dropped; each source keeps a held-out split.

usage: build_corpus.py OUT_DIR   (writes OUT_DIR/{train,heldout}/<source>.bin
                                  and OUT_DIR/manifest.tsv)
"""

import glob
import gzip
import hashlib
import os
import sys
import sysconfig

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared"))
EVAL = os.path.join(SHARED, "corpora")
MIN_LINE = 32


def sha(data):
    return hashlib.sha256(data).hexdigest()


def long_lines(data):
    for line in data.split(b"\n"):
        line = line.strip()
        if len(line) >= MIN_LINE:
            yield hashlib.blake2b(line, digest_size=8).digest()


def eval_lines():
    seen = set()
    for path in sorted(glob.glob(os.path.join(EVAL, "**", "*"), recursive=True)):
        if os.path.isfile(path):
            seen.update(long_lines(open(path, "rb").read()))
    return seen


def read(path):
    data = open(path, "rb").read()
    if path.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except Exception:
            return None
    return data


def is_text(data):
    if not data or b"\0" in data[:4096]:
        return False
    try:
        data[:65536].decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start > 65000  # cut inside a character at the end
    return True


def walk(patterns, exclude=()):
    out = []
    for pattern in patterns:
        out += glob.glob(pattern, recursive=True)
    return sorted(p for p in set(out) if os.path.isfile(p) and not os.path.islink(p)
                  and not any(x in p for x in exclude))


def sources():
    stdlib = sysconfig.get_paths()["stdlib"]
    cargo = os.path.expanduser("~/.cargo/registry/src")
    shared = os.path.join(SHARED, "training")
    return [
        # name, files, byte cap
        ("prose_en", walk([f"{shared}/en_gutenberg/**/*"]), None),
        ("wiki", walk([f"{shared}/wiki/**/*"]), None),
        ("structured", walk([f"{shared}/structured/**/*"]), None),
        ("other_lang", walk([f"{shared}/other_lang/**/*"]), None),
        ("python", walk([f"{stdlib}/**/*.py"], ("site-packages", "/test/", "/tests/", "idle_test")), 24 << 20),
        ("c_headers", walk(["/usr/include/**/*.h"]), 12 << 20),
        ("rust", walk([f"{cargo}/**/*.rs"], ("/tests/", "/benches/")), 12 << 20),
        ("man", walk(["/usr/share/man/man[1-8]/*"]), 8 << 20),
        ("markup", walk(["/usr/share/**/*.html", "/usr/share/**/*.htm", "/usr/share/**/*.xml",
                         f"{stdlib}/**/*.html", f"{cargo}/**/*.md", "/usr/share/**/*.svg"]), 10 << 20),
        ("docs", walk(["/usr/share/doc/**/*", "/usr/share/info/*"], (".html", ".png", ".jpg")), 6 << 20),
        ("config", walk(["/etc/**/*", "/usr/lib/systemd/**/*.service", f"{cargo}/**/Cargo.toml"]), 3 << 20),
    ]


def main():
    out = sys.argv[1]
    os.makedirs(f"{out}/train", exist_ok=True)
    os.makedirs(f"{out}/heldout", exist_ok=True)
    banned = eval_lines()
    seen = set()
    manifest = ["source\tpath\tbytes\tsha256\tsplit\tnote"]
    for name, files, cap in sources():
        kept, total = [], 0
        # Spread a capped source over its whole tree rather than its first
        # directories: order by content hash of the path.
        for path in sorted(files, key=lambda p: sha(p.encode())):
            data = read(path)
            if data is None or not is_text(data) or len(data) < 64:
                continue
            digest = sha(data)
            if digest in seen:
                continue
            lines = list(long_lines(data))
            shared_lines = sum(1 for h in lines if h in banned)
            if shared_lines >= 5 or (lines and shared_lines / len(lines) > 0.01):
                manifest.append(f"{name}\t{path}\t{len(data)}\t{digest}\texcluded\tshares {shared_lines} long lines with the evaluation corpora")
                continue
            seen.add(digest)
            if b"\r\n" in data[:65536] and int(digest[:8], 16) % 10 < 6:
                data = data.replace(b"\r\n", b"\n")  # a filesystem holds both
            kept.append((path, data, digest))
            total += len(data)
            if cap and total >= cap:
                break
        held_target = max(total // 50, 1)
        held, held_bytes = [], 0
        for item in sorted(kept, key=lambda k: k[2]):
            if held_bytes >= held_target or len(kept) - len(held) <= 1:
                break
            held.append(item[0])
            held_bytes += len(item[1])
        held = set(held)
        with open(f"{out}/train/{name}.bin", "wb") as tr, open(f"{out}/heldout/{name}.bin", "wb") as ho:
            for path, data, digest in kept:
                split = "heldout" if path in held else "train"
                (ho if split == "heldout" else tr).write(data + b"\n")
                manifest.append(f"{name}\t{path}\t{len(data)}\t{digest}\t{split}\t")
        print(f"{name:12s} {len(kept):6d} files {total / 1e6:8.1f} MB  held out {held_bytes / 1e6:.2f} MB", flush=True)
    open(f"{out}/manifest.tsv", "w").write("\n".join(manifest) + "\n")


if __name__ == "__main__":
    main()
