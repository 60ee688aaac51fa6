"""Splits each FUSE request's latency into waiting for a daemon thread,
the daemon's work, and the reply's way back, from `perf script -F
tid,time,event,trace` output of the fuse:fuse_request_send and
fuse:fuse_request_end tracepoints and a uprobe pair on the daemon's
request dispatch (`SPLIT=1 bash bench/request_latency.sh`).

- wait: from the kernel queueing the request to a daemon thread entering
  `RequestWithSender::dispatch` (the transport's wakeup, and any queueing
  behind other requests on that thread's CPU);
- work: the dispatch itself (the handler, with its reply written);
- back: from the dispatch's return to the kernel ending the request.

The kernel ends a request in the context of the daemon thread that
commits its reply, so the dispatch a request belongs to is the last one
that thread ran: the pairing is exact, whatever order the threads serve
requests in. Requests whose thread ran no dispatch before the end (none
over the rings) are left out.

SETATTRs are split into the first after a WRITE (`tar x`'s first per
file, where llmfs stores the file's data) and the rest. Reads stdin;
prints JSON: {"opcode": {"count", "p50_total_us", "p50_wait_us",
"p50_work_us", "p50_back_us", "total_s", "wait_s", "work_s",
"back_s"}, ...}.

`request_split.py offset BIN` prints the file offset of the dispatch
function in daemon binary BIN, which is where perf probe takes a uprobe
(an offset into the file, not the symbol's address).
"""

import json
import re
import statistics
import subprocess
import sys

LINE = re.compile(r"\s*(\d+)\s+(\d+\.\d+):\s+(\S+):\s*(.*)")
SEND = re.compile(r"req (\d+) opcode \d+ \((FUSE_[A-Z_]+)\)")
END = re.compile(r"req (\d+)")
PARTS = ("total", "wait", "work", "back")


def main():
    sent = {}
    dispatch = {}
    split = {}
    previous = None
    for line in sys.stdin:
        m = LINE.match(line)
        if not m:
            continue
        tid, t, event, rest = int(m.group(1)), float(m.group(2)), m.group(3), m.group(4)
        if event == "fuse:fuse_request_send":
            s = SEND.search(rest)
            if not s:
                continue
            op = s.group(2)
            name = op
            if op == "FUSE_SETATTR":
                name = "FUSE_SETATTR_AFTER_WRITE" if previous == "FUSE_WRITE" else "FUSE_SETATTR"
            if op != "FUSE_RELEASE":  # sent in the background, out of the caller's order
                previous = op
            sent[int(s.group(1))] = (t, name)
        elif event.endswith(":dispatch"):
            dispatch[tid] = [t, None]
        elif event.endswith(":dispatch__return"):
            if tid in dispatch:
                dispatch[tid][1] = t
        elif event == "fuse:fuse_request_end":
            e = END.search(rest)
            if not e or int(e.group(1)) not in sent:
                continue
            queued, name = sent.pop(int(e.group(1)))
            d = dispatch.pop(tid, None)
            if not d or d[1] is None or d[0] < queued:
                continue
            parts = split.setdefault(name, {p: [] for p in PARTS})
            parts["total"].append(t - queued)
            parts["wait"].append(d[0] - queued)
            parts["work"].append(d[1] - d[0])
            parts["back"].append(t - d[1])
    out = {}
    for name, parts in sorted(split.items(), key=lambda kv: -sum(kv[1]["total"])):
        row = {"count": len(parts["total"])}
        for p in PARTS:
            row["p50_%s_us" % p] = round(statistics.median(parts[p]) * 1e6, 1)
        for p in PARTS:
            row["%s_s" % p] = round(sum(parts[p]), 4)
        out[name] = row
    json.dump(out, sys.stdout)


def dispatch_offset(binary):
    nm = subprocess.run(["nm", binary], capture_output=True, text=True, check=True).stdout
    found = [int(f[0], 16) for f in (l.split() for l in nm.splitlines())
             if len(f) == 3 and "RequestWithSender8dispatch" in f[2]]
    if len(found) != 1:
        sys.exit("request_split.py: %d dispatch functions in %s" % (len(found), binary))
    addr = found[0]
    segments = subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True, check=True).stdout
    for f in (l.split() for l in segments.splitlines()):
        if f and f[0] == "LOAD":
            offset, vaddr, filesz = int(f[1], 16), int(f[2], 16), int(f[4], 16)
            if vaddr <= addr < vaddr + filesz:
                return addr - vaddr + offset
    sys.exit("request_split.py: no segment of %s holds the dispatch function" % binary)


if __name__ == "__main__":
    if sys.argv[1:2] == ["offset"] and len(sys.argv) == 3:
        print(hex(dispatch_offset(sys.argv[2])))
    else:
        main()
