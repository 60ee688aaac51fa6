"""Evaluates a model as llmfs uses it: `llmfs compress` (64 KiB blocks, the
per-block choice of llm/zstd/raw) and `llmfs decompress` on every file of a
directory, against xz -9e and zstd -19, each per 64 KiB block and
whole-file, all measured in the same run. Writes a markdown table and JSON.

usage: evaluate.py LLMFS_BINARY MODEL.onnx DIR OUT_PREFIX [--workers N]

`llmfs bench DIR --model MODEL.onnx --llm-max-bytes all` measures all of
this and more (gzip, brotli, zstd -3, the llm codec on every block, the
model's decode against its full pass) without Python or the zstd binary;
this script stays for the model card's existing tables.
"""

import json
import lzma
import os
import subprocess
import sys
import tempfile
import time

BLOCK = 65536


def zstd19(data):
    return len(subprocess.run(["zstd", "-19", "-q", "-c"], input=data, capture_output=True, check=True).stdout)


def xz9e(data):
    return len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))


def per_block(fn, data):
    return sum(fn(data[i:i + BLOCK]) for i in range(0, len(data), BLOCK))


def run_json(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)}: {out.stderr}")
    return json.loads(out.stderr.strip().splitlines()[-1])


def main():
    binary, model, directory, prefix = sys.argv[1:5]
    workers = sys.argv[sys.argv.index("--workers") + 1] if "--workers" in sys.argv else "2"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if not os.path.isfile(path):
                continue
            data = open(path, "rb").read()
            packed, back = os.path.join(tmp, "p"), os.path.join(tmp, "b")
            common = ["--model", model, "--workers", workers, "--json"]
            c = run_json([binary, "compress", path, packed] + common)
            d = run_json([binary, "decompress", packed, back] + common)
            assert open(back, "rb").read() == data, f"{name}: round trip differs"
            row = {
                "file": name, "bytes": len(data), "llmfs": c["stored_bytes"],
                "llm_blocks": c["codecs"]["llm"]["blocks"], "blocks": sum(v["blocks"] for v in c["codecs"].values()),
                "encode_kb_s": c["kb_per_s"], "decode_kb_s": d["kb_per_s"],
                "xz9e_block": per_block(xz9e, data), "zstd19_block": per_block(zstd19, data),
                "xz9e_file": xz9e(data), "zstd19_file": zstd19(data),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    total = {k: sum(r[k] for r in rows) for k in ["bytes", "llmfs", "xz9e_block", "zstd19_block", "xz9e_file", "zstd19_file"]}
    bpb = lambda n, raw: 8 * n / max(raw, 1)
    lines = ["| file | bytes | llmfs | llm blocks | bits/byte | xz -9e /64K | zstd -19 /64K | xz -9e file | zstd -19 file | encode KB/s | decode KB/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['file']} | {r['bytes']} | {r['llmfs']} | {r['llm_blocks']}/{r['blocks']} | "
                     f"{bpb(r['llmfs'], r['bytes']):.3f} | {bpb(r['xz9e_block'], r['bytes']):.3f} | "
                     f"{bpb(r['zstd19_block'], r['bytes']):.3f} | {bpb(r['xz9e_file'], r['bytes']):.3f} | "
                     f"{bpb(r['zstd19_file'], r['bytes']):.3f} | {r['encode_kb_s']:.1f} | {r['decode_kb_s']:.1f} |")
    t = total
    lines.append(f"| **total** | {t['bytes']} | {t['llmfs']} | | {bpb(t['llmfs'], t['bytes']):.3f} | "
                 f"{bpb(t['xz9e_block'], t['bytes']):.3f} | {bpb(t['zstd19_block'], t['bytes']):.3f} | "
                 f"{bpb(t['xz9e_file'], t['bytes']):.3f} | {bpb(t['zstd19_file'], t['bytes']):.3f} | | |")
    lines.append("\n(bits/byte columns: stored bits per input byte; llmfs includes container and record headers.)")
    open(prefix + ".md", "w").write("\n".join(lines) + "\n")
    json.dump({"rows": rows, "total": total, "date": time.strftime("%Y-%m-%d"), "workers": int(workers)},
              open(prefix + ".json", "w"), indent=1)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
