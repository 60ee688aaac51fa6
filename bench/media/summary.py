#!/usr/bin/env python3
"""The markdown table of a bench/media.sh run: per file and per kind, the media
codec's and the archive tier's bytes as ratios of each peer's, and decode
speeds (KB/s, min..max)."""
import csv
import sys

rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
print("| file | raw | peer | peer bytes | media bytes | media/peer | archive tier/peer | media/xz -9e | media/zstd -19 | media decode KB/s | peer decode KB/s |")
print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    l, p, x, z = (int(r[k]) for k in ("llmfs", "peer_bytes", "xz_block", "zstd_block"))
    a = int(r["archive"])
    print(f"| {r['file']} | {r['raw']} | {r['peer']} | {p} | {l} | {l/p:.3f} | {a/p:.3f} | {l/x:.3f} | {l/z:.3f} | {r['llmfs_kbs']} | {r['peer_kbs']} |")
print()
print("| kind | files | raw | peer bytes | media bytes | media/peer (total) | media/peer (per-file range) | archive tier/peer (total) | media/xz | media/zstd |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for kind in ("image", "audio"):
    rs = [r for r in rows if r["kind"] == kind]
    if not rs:
        continue
    s = {k: sum(int(r[k]) for r in rs) for k in ("raw", "peer_bytes", "llmfs", "archive", "xz_block", "zstd_block")}
    per = [int(r["llmfs"]) / int(r["peer_bytes"]) for r in rs]
    print(f"| {kind} | {len(rs)} | {s['raw']} | {s['peer_bytes']} | {s['llmfs']} | {s['llmfs']/s['peer_bytes']:.3f} "
          f"| {min(per):.3f}..{max(per):.3f} | {s['archive']/s['peer_bytes']:.3f} | {s['llmfs']/s['xz_block']:.3f} | {s['llmfs']/s['zstd_block']:.3f} |")
