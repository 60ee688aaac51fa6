#!/usr/bin/env bash
# When the watchdog lifts idle ring threads, and what a lift costs the next
# step: on a fresh mount over io_uring, create FILES (default 20000) files
# of 1 KiB, then stat each (bench/wakeup.sh's steps, as placed), with the
# ring threads' lifts counted from the daemon's debug log
# (RUST_LOG=fuser::ring_priority=debug) and the stat step's FUSE requests
# counted from the kernel's fuse:fuse_request_send tracepoint (perf; "-"
# where perf or the tracepoint is missing).
#
#   bench/ring_lifts.sh [ROUNDS] BIN [BIN ...]   (root: mounts, enable_uring,
#                                                 tracing)
#
# Prints a TSV line per build and round: creates/s, stats/s, lifts logged
# during the create step, lifts logged by the end of the stat step, and the
# GETATTR requests the stat step sent.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: bench/ring_lifts.sh ROUNDS BIN [BIN ...]}
shift
[ $# -ge 1 ] || { echo "usage: bench/ring_lifts.sh ROUNDS BIN [BIN ...]" >&2; exit 2; }
bin=$1   # for scratch.sh's cleanup
files=${FILES:-20000}
. bench/scratch.sh
scratch ring-lifts
param=/sys/module/fuse/parameters/enable_uring
was=$(cat "$param")
scratch_cleanup_more() { echo "$was" > "$param"; }
echo 1 > "$param"
tracing=
if command -v perf >/dev/null && [ -d /sys/kernel/tracing/events/fuse/fuse_request_send ]; then
  tracing=1
fi
lifts() { grep -c 'starving at SCHED_IDLE' "$work/store/llmfs.log" || true; }
printf 'build\tround\tcreate_s\tstat_s\tlifts_in_create\tlifts_by_end\tstat_getattrs\n'
for round in $(seq 1 "$rounds"); do
  for b in "$@"; do
    rm -rf "$work/store"
    RUST_LOG=fuser::ring_priority=debug "$b" mount "$mnt" --store "$work/store"
    mkdir "$mnt/d"
    created=$(python3 bench/small_file_step.py "$mnt/d" "$files" create)
    in_create=$(lifts)
    if [ -n "$tracing" ]; then
      stated=$(perf record -q -e fuse:fuse_request_send -a -o "$work/perf.data" -- \
        python3 bench/small_file_step.py "$mnt/d" "$files" stat 2>/dev/null)
      getattrs=$(perf script -i "$work/perf.data" 2>/dev/null | grep -c '(FUSE_GETATTR)' || true)
    else
      stated=$(python3 bench/small_file_step.py "$mnt/d" "$files" stat)
      getattrs=-
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$b" "$round" "$created" "$stated" "$in_create" "$(lifts)" "$getattrs"
    "$b" umount "$mnt"
  done
done
