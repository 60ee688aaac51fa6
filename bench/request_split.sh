#!/usr/bin/env bash
# Where each FUSE request's latency goes, daemon side: `tar x` or `cp -r`
# of a tree (default /usr/include) onto a fresh mount, with the kernel's
# fuse:fuse_request_send/_end tracepoints and a uprobe pair on the daemon's
# `fuser::request::RequestWithSender::dispatch`, for llmfs builds and the
# floor (examples/floor_fs) alternated round by round. Per opcode: the
# wait for a daemon thread, the daemon's work, and the reply's way back
# (bench/request_split.py). bench/request_latency.sh gives the kernel's
# whole latency for any contender; this one needs a daemon built from
# this tree's vendored fuser (with symbols: the release profile keeps
# them), so mergerfs is not a contender here.
#
#   bench/request_split.sh ROUNDS tar|cp BIN[+uring] floor[+uring] ...
#                                                   (root: mounts, uprobes)
#
# Prints a TSV line per contender, round and opcode: requests, medians of
# the whole latency and its three parts (µs), their totals (s), and the
# workload's traced seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: bench/request_split.sh ROUNDS tar|cp BIN|floor ..."
rounds=${1:?$usage}
workload=${2:?$usage}
shift 2
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
case $workload in tar | cp) ;; *) echo "$usage" >&2; exit 2 ;; esac
[ -d /sys/kernel/tracing/events/fuse/fuse_request_send ] ||
  { echo "request_split.sh: this kernel has no fuse tracepoints" >&2; exit 1; }
command -v perf >/dev/null || { echo "request_split.sh: needs perf (linux-perf)" >&2; exit 1; }
bin=$1   # for scratch.sh's cleanup
tree=${TREE:-/usr/include}
. bench/scratch.sh
. bench/contender.sh
scratch request-split
scratch_cleanup_more() { perf probe -q -d 'split:*' 2>/dev/null || true; }
tar cf "$work/tree.tar" -C "$(dirname "$tree")" "$(basename "$tree")"
find "$tree" -type f -exec cat {} + >/dev/null

# The file offset of the dispatch function in daemon binary $1 (perf
# probe takes an offset into the file, not the symbol's address).
dispatch_offset() {
  python3 - "$1" <<'EOF'
import re, subprocess, sys
binary = sys.argv[1]
syms = [l.split() for l in subprocess.run(["nm", binary], capture_output=True, text=True, check=True).stdout.splitlines()]
found = [int(s[0], 16) for s in syms if len(s) == 3 and re.search(r"RequestWithSender8dispatch", s[2])]
if len(found) != 1:
    sys.exit("request_split.sh: %d dispatch symbols in %s" % (len(found), binary))
addr = found[0]
for line in subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True, check=True).stdout.splitlines():
    f = line.split()
    if f and f[0] == "LOAD":
        offset, vaddr, filesz = int(f[1], 16), int(f[2], 16), int(f[4], 16)
        if vaddr <= addr < vaddr + filesz:
            print(hex(addr - vaddr + offset))
            break
else:
    sys.exit("request_split.sh: no segment holds the dispatch function")
EOF
}

printf 'contender\tround\topcode\trequests\tp50_total_us\tp50_wait_us\tp50_work_us\tp50_back_us\ttotal_s\twait_s\twork_s\tback_s\tworkload_s\n'
for round in $(seq 1 "$rounds"); do
  for b in "$@"; do
    case ${b%+*} in
      floor) daemon=target/release/examples/floor_fs ;;
      *) daemon=${b%+*} ;;
    esac
    offset=$(dispatch_offset "$daemon")
    perf probe -q -x "$daemon" -a "split:dispatch=$offset"
    perf probe -q -x "$daemon" -a "split:dispatch=$offset%return"
    contender_mount "$b"
    case $workload in
      tar) cmd=(tar xf "$work/tree.tar" -C "$target") ;;
      cp) cmd=(cp -r "$tree" "$target/") ;;
    esac
    start=$(date +%s.%N)
    perf record -q -e fuse:fuse_request_send -e fuse:fuse_request_end \
      -e split:dispatch -e split:dispatch__return -a \
      -o "$work/perf.data" -- "${cmd[@]}" 2>/dev/null
    end=$(date +%s.%N)
    secs=$(echo "$end - $start" | bc -l)
    contender_umount "$b"
    perf probe -q -d 'split:*'
    perf script -i "$work/perf.data" -F tid,time,event,trace 2>/dev/null |
      python3 bench/request_split.py |
      python3 -c '
import json, sys
b, r, secs = sys.argv[1:]
keys = ("count", "p50_total_us", "p50_wait_us", "p50_work_us", "p50_back_us", "total_s", "wait_s", "work_s", "back_s")
for op, s in json.load(sys.stdin).items():
    print("\t".join([b, r, op] + [str(s[k]) for k in keys] + ["%.3f" % float(secs)]))
' "$b" "$round" "$secs"
  done
done
