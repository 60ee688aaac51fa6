#!/usr/bin/env bash
# Where a small-file workload's time goes, request by request: `tar x` or
# `cp -r` of a tree (default /usr/include) onto a fresh mount, or `rm -rf`
# of such a copy (made untraced just before, as bench/fs.sh's is), with the
# kernel's fuse:fuse_request_send and fuse:fuse_request_end tracepoints
# recorded (perf), for llmfs builds, mergerfs (Debian's, one branch on
# the same disk: issue 14's FUSE passthrough peer) and the floor
# (examples/floor_fs: a daemon that answers from memory, mounted as llmfs
# mounts) alternated round by round. Per contender, round and opcode: how many requests, and their
# latency from queueing to reply as the kernel saw it
# (bench/request_latency.py). The tracing slows every contender alike
# (the elapsed time is printed too, traced).
#
#   bench/request_latency.sh ROUNDS WORKLOAD BIN|mergerfs|floor ...
#       WORKLOAD: tar, cp or rm. BIN and floor may carry a transport
#       (BIN+uring, floor+uring; bench/contender.sh).   (root: mounts, tracing)
#
# Prints a TSV line per contender, round and opcode: requests, mean, p50,
# p90, p99 (µs), total seconds in requests of that opcode, and the
# workload's traced seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: bench/request_latency.sh ROUNDS tar|cp|rm BIN|mergerfs|floor ..."
rounds=${1:?$usage}
workload=${2:?$usage}
shift 2
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
case $workload in tar | cp | rm) ;; *) echo "$usage" >&2; exit 2 ;; esac
[ -d /sys/kernel/tracing/events/fuse/fuse_request_send ] ||
  { echo "request_latency.sh: this kernel has no fuse tracepoints" >&2; exit 1; }
command -v perf >/dev/null || { echo "request_latency.sh: needs perf (linux-perf)" >&2; exit 1; }
bin=$1   # for scratch.sh's cleanup
tree=${TREE:-/usr/include}
. bench/scratch.sh
. bench/contender.sh
scratch request-latency
tar cf "$work/tree.tar" -C "$(dirname "$tree")" "$(basename "$tree")"
find "$tree" -type f -exec cat {} + >/dev/null
printf 'contender\tround\topcode\trequests\tmean_us\tp50_us\tp90_us\tp99_us\ttotal_s\tworkload_s\n'
for round in $(seq 1 "$rounds"); do
  for b in "$@"; do
    contender_mount "$b"
    case $workload in
      tar) cmd=(tar xf "$work/tree.tar" -C "$target") ;;
      cp) cmd=(cp -r "$tree" "$target/") ;;
      rm)
        cp -r "$tree" "$target/copy"
        cmd=(rm -rf "$target/copy")
        ;;
    esac
    start=$(date +%s.%N)
    perf record -q -e fuse:fuse_request_send -e fuse:fuse_request_end -a \
      -o "$work/perf.data" -- "${cmd[@]}" 2>/dev/null
    end=$(date +%s.%N)
    secs=$(echo "$end - $start" | bc -l)
    perf script -i "$work/perf.data" 2>/dev/null | python3 bench/request_latency.py |
      python3 -c '
import json, sys
b, r, secs = sys.argv[1:]
for op, s in json.load(sys.stdin).items():
    print("\t".join([b, r, op] + [str(s[k]) for k in ("count", "mean_us", "p50_us", "p90_us", "p99_us", "total_s")] + ["%.3f" % float(secs)]))
' "$b" "$round" "$secs"
    contender_umount "$b"
  done
done
