#!/usr/bin/env python3
"""The markdown table of a bench/media.sh run: per file and per kind, llmfs's
bytes as a ratio of each peer's, and decode speeds (KB/s, min..max)."""
import csv
import sys

rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
print("| file | raw | peer | peer bytes | llmfs bytes | llmfs/peer | llmfs/xz -9e | llmfs/zstd -19 | llmfs decode KB/s | peer decode KB/s |")
print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    l, p, x, z = (int(r[k]) for k in ("llmfs", "peer_bytes", "xz_block", "zstd_block"))
    print(f"| {r['file']} | {r['raw']} | {r['peer']} | {p} | {l} | {l/p:.3f} | {l/x:.3f} | {l/z:.3f} | {r['llmfs_kbs']} | {r['peer_kbs']} |")
print()
print("| kind | files | raw | peer bytes | llmfs bytes | llmfs/peer (total) | llmfs/peer (per-file range) | llmfs/xz | llmfs/zstd |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for kind in ("image", "audio"):
    rs = [r for r in rows if r["kind"] == kind]
    if not rs:
        continue
    s = {k: sum(int(r[k]) for r in rs) for k in ("raw", "peer_bytes", "llmfs", "xz_block", "zstd_block")}
    per = [int(r["llmfs"]) / int(r["peer_bytes"]) for r in rs]
    print(f"| {kind} | {len(rs)} | {s['raw']} | {s['peer_bytes']} | {s['llmfs']} | {s['llmfs']/s['peer_bytes']:.3f} "
          f"| {min(per):.3f}..{max(per):.3f} | {s['llmfs']/s['xz_block']:.3f} | {s['llmfs']/s['zstd_block']:.3f} |")
