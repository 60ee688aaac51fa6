"""Per-opcode FUSE request counts and latencies from `perf script` output
of the fuse:fuse_request_send and fuse:fuse_request_end tracepoints
(bench/request_latency.sh).

A request's latency is from the kernel queueing it to the daemon's reply
ending it, as the kernel saw them: the round trip plus the daemon's work.
SETATTR requests are numbered by their place in a run of SETATTRs (a
GETXATTR between them does not end the run): `tar x` sends three per
file (times, owner, mode), and the first of them differs.

Reads stdin; prints JSON: {"opcode": {"count", "mean_us", "p50_us",
"p90_us", "p99_us", "total_s"}, ...}.
"""

import json
import re
import sys

LINE = re.compile(
    r"\s(\d+\.\d+):\s+fuse:(fuse_request_send|fuse_request_end):.*?req (\d+)(?:.*?\((FUSE_[A-Z_]+)\))?"
)


def main():
    sent = {}
    latencies = {}
    previous, run = None, 0
    for line in sys.stdin:
        m = LINE.search(line)
        if not m:
            continue
        t, event, unique, name = float(m.group(1)), m.group(2), m.group(3), m.group(4)
        if event == "fuse_request_send":
            label = name
            if name == "FUSE_SETATTR":
                run = run + 1 if previous == "FUSE_SETATTR" or (previous == "FUSE_GETXATTR" and run) else 1
                label = f"FUSE_SETATTR#{run}"
            elif name != "FUSE_GETXATTR":
                run = 0
            previous = name
            sent[unique] = (t, label)
        elif unique in sent:
            t0, label = sent.pop(unique)
            latencies.setdefault(label, []).append(t - t0)
    out = {}
    for label, values in sorted(latencies.items(), key=lambda kv: -sum(kv[1])):
        values.sort()
        n = len(values)
        out[label] = {
            "count": n,
            "mean_us": round(1e6 * sum(values) / n, 1),
            "p50_us": round(1e6 * values[n // 2], 1),
            "p90_us": round(1e6 * values[int(n * 0.9)], 1),
            "p99_us": round(1e6 * values[int(n * 0.99)], 1),
            "total_s": round(sum(values), 4),
        }
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
