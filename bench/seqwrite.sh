#!/usr/bin/env bash
# The fsync'd sequential write of bench/fs.sh (256 MiB in 1 MiB writes,
# fsync at the end, fio's half-compressible data) on a fresh llmfs mount,
# for several llmfs builds alternated round by round, with the daemon's CPU
# time: for comparing builds of the write path in one run. A BIN of
# `mergerfs` runs the same job on Debian's mergerfs with one branch on the
# same disk (a FUSE passthrough, the peer of issue 14's write target).
#
#   bench/seqwrite.sh [ROUNDS] BIN [BIN ...]     (root: mounts)
#
# Prints one line per build and round: build, MiB/s, daemon CPU seconds.
# Extra `llmfs mount` flags for every build: $MOUNT_ARGS. With
# PASSES=N (default 1) each round runs the job N times on the same mount,
# so that passes after the first overwrite the file in place (as bench/fs.sh's
# later rounds do), and prints a line per pass.
# With WRITERS=N (default 1), N writers at once, each on a file of its own
# (bench/fs.sh's parallel case is WRITERS=2; bench/seqwrite_fio.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: bench/seqwrite.sh ROUNDS BIN [BIN ...]}
shift
[ $# -ge 1 ] || { echo "usage: bench/seqwrite.sh ROUNDS BIN [BIN ...]" >&2; exit 2; }
bin=$1   # for scratch.sh's cleanup
. bench/scratch.sh
. bench/seqwrite_fio.sh
. bench/contender.sh
scratch seqwrite
printf 'build\tround\tpass\tMiB_s\tdaemon_cpu_s\n'
for round in $(seq 1 "$rounds"); do
  for b in "$@"; do
    contender_mount "$b"
    for pass in $(seq 1 "${PASSES:-1}"); do
      before=$(contender_cpu)
      bw=$(seqwrite_fio "$target")
      after=$(contender_cpu)
      printf '%s\t%s\t%s\t%s\t%s\n' "$b" "$round" "$pass" "$bw" "$(echo "($after - $before) / $(getconf CLK_TCK)" | bc -l | cut -c1-5)"
    done
    contender_umount "$b"
  done
done
