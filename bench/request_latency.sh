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
#
# With SPLIT=1 each latency is split, daemon side, into the wait for a
# daemon thread, the daemon's work and the reply's way back, from a
# uprobe pair on the daemon's `fuser::request::RequestWithSender::dispatch`
# recorded with the tracepoints (bench/request_split.py). That needs a
# daemon built from this tree's vendored fuser, with its symbols (the
# release profile keeps them): llmfs builds and the floor, not mergerfs.
# The lines then carry requests, the medians of the whole latency and of
# its three parts (µs), their totals (s), and the workload's traced
# seconds.
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
split=${SPLIT:-}
if [ -n "$split" ]; then
  for b in "$@"; do
    [ "$b" != mergerfs ] || { echo "request_latency.sh: SPLIT=1 needs daemons with fuser's dispatch (not mergerfs)" >&2; exit 2; }
  done
fi
scratch request-latency
scratch_cleanup_more() {
  contender_cleanup
  [ -z "$split" ] || perf probe -q -d 'split:*' 2>/dev/null || true
}
tar cf "$work/tree.tar" -C "$(dirname "$tree")" "$(basename "$tree")"
find "$tree" -type f -exec cat {} + >/dev/null
if [ -n "$split" ]; then
  columns=(count p50_total_us p50_wait_us p50_work_us p50_back_us total_s wait_s work_s back_s)
  events=(-e split:dispatch -e split:dispatch__return)
  analyse=(python3 bench/request_split.py)
else
  columns=(count mean_us p50_us p90_us p99_us total_s)
  events=()
  analyse=(python3 bench/request_latency.py)
fi
printf 'contender\tround\topcode\t%s\tworkload_s\n' "$(IFS=$'\t'; echo "${columns[*]}" | sed 's/^count/requests/')"
for round in $(seq 1 "$rounds"); do
  for b in "$@"; do
    if [ -n "$split" ]; then
      case ${b%+*} in
        floor) daemon=target/release/examples/floor_fs ;;
        *) daemon=${b%+*} ;;
      esac
      offset=$(python3 bench/request_split.py offset "$daemon")
      perf probe -q -x "$daemon" -a "split:dispatch=$offset"
      perf probe -q -x "$daemon" -a "split:dispatch=$offset%return"
    fi
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
    perf record -q -e fuse:fuse_request_send -e fuse:fuse_request_end "${events[@]}" -a \
      -o "$work/perf.data" -- "${cmd[@]}" 2>/dev/null
    end=$(date +%s.%N)
    secs=$(echo "$end - $start" | bc -l)
    perf script -i "$work/perf.data" -F tid,time,event,trace 2>/dev/null | "${analyse[@]}" |
      python3 -c '
import json, sys
b, r, secs, columns = sys.argv[1:]
for op, s in json.load(sys.stdin).items():
    print("\t".join([b, r, op] + [str(s[k]) for k in columns.split()] + ["%.3f" % float(secs)]))
' "$b" "$round" "$secs" "${columns[*]}"
    contender_umount "$b"
    [ -z "$split" ] || perf probe -q -d 'split:*'
  done
done
