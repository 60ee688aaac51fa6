#!/usr/bin/env bash
# How long other requests wait while a file is written: bench/seqwrite.sh's
# fsync'd sequential write (256 MiB in 1 MiB writes, fio's
# half-compressible data) on a fresh mount, while a second process opens,
# reads 4 KiB of and closes another file in a loop, for several llmfs
# builds alternated round by round.
#
#   bench/write_stall.sh [ROUNDS] BIN [BIN ...]     (root: mounts)
#
# Prints one line per build and round: build, the write's MiB/s, and the
# probe's open+read+close latencies in milliseconds (median, 99th percentile,
# largest) with how many took over 50 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: bench/write_stall.sh ROUNDS BIN [BIN ...]}
shift
[ $# -ge 1 ] || { echo "usage: bench/write_stall.sh ROUNDS BIN [BIN ...]" >&2; exit 2; }
bin=$1   # for scratch.sh's cleanup
. bench/scratch.sh
. bench/seqwrite_fio.sh
scratch write_stall
printf 'build\tround\twrite_MiB_s\tprobe_ms_p50\tprobe_ms_p99\tprobe_ms_max\tprobes_over_50ms\tprobes\n'
for round in $(seq 1 "$rounds"); do
  for b in "$@"; do
    store=$work/store; rm -rf "$store"
    "$b" mount "$mnt" --store "$store"
    head -c 65536 /dev/urandom > "$mnt/probe"
    sync "$mnt/probe"
    python3 bench/write_stall_probe.py "$mnt/probe" "$work/stop" > "$work/probe.txt" &
    probe=$!
    bw=$(seqwrite_fio "$mnt")
    touch "$work/stop"
    wait "$probe"
    rm -f "$work/stop"
    "$b" umount "$mnt"
    printf '%s\t%s\t%s\t%s\n' "$b" "$round" "$bw" "$(cat "$work/probe.txt")"
  done
done
