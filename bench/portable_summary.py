"""Summarises bench/portable.sh's outputs: per repeat, the full predictor's
bits per byte and encode/decode KB/s for the float and the integer model,
the transformer alone's bits per byte, and the integer/float ratios.

usage: python3 bench/portable_summary.py OUT_PREFIX   (writes OUT_PREFIX-summary.json)
"""

import glob
import json
import sys


def alone(path):
    """Total stored and raw bytes of the transformer-alone runs."""
    stored = raw = 0
    for line in open(path):
        if line.startswith("{"):
            d = json.loads(line)
            stored += d["stored_bytes"]
            raw += d["raw_bytes"]
    return stored, raw


def main():
    prefix = sys.argv[1]
    runs = []
    for m in ("float", "int"):
        for path in sorted(glob.glob(f"{prefix}-{m}-[0-9]*.json")):
            t = json.load(open(path))["totals"]["all_files"]["results"]["llmfs"]
            runs.append({"model": m, "file": path, "bits_per_byte": t["bits_per_byte"],
                         "stored_bytes": t["stored_bytes"], "encode_kb_s": t["encode_kb_s"],
                         "decode_kb_s": t["decode_kb_s"]})
    by = {m: [r for r in runs if r["model"] == m] for m in ("float", "int")}
    summary = {"runs": runs}
    if by["float"] and by["int"]:
        f, i = by["float"][0], by["int"][0]
        summary["full_predictor_ratio_int_over_float"] = round(i["stored_bytes"] / f["stored_bytes"], 4)
        dec = [r["decode_kb_s"] for r in by["int"]], [r["decode_kb_s"] for r in by["float"]]
        summary["decode_kb_s"] = {"int": dec[0], "float": dec[1]}
        summary["decode_ratio_int_over_float"] = {
            "per_repeat": [round(a / b, 3) for a, b in zip(*dec)],
            "best_over_best": round(max(dec[0]) / max(dec[1]), 3),
        }
        summary["decode_over_encode_int"] = [round(r["decode_kb_s"] / r["encode_kb_s"], 3) for r in by["int"]]
    fa, ia = glob.glob(f"{prefix}-float-alone.txt"), glob.glob(f"{prefix}-int-alone.txt")
    if fa and ia:
        (fs, fr), (is_, ir) = alone(fa[0]), alone(ia[0])
        summary["transformer_alone"] = {
            "float_bits_per_byte": round(8 * fs / fr, 4), "int_bits_per_byte": round(8 * is_ / ir, 4),
            "ratio_int_over_float": round(is_ / fs, 4)}
    with open(f"{prefix}-summary.json", "w") as out:
        json.dump(summary, out, indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
