#!/usr/bin/env bash
# The fsync'd sequential write of bench/fs.sh (256 MiB in 1 MiB writes,
# fsync at the end, fio's half-compressible data) on a fresh llmfs mount,
# for several llmfs builds alternated round by round, with the daemon's CPU
# time: for comparing builds of the write path in one run.
#
#   bench/seqwrite.sh [ROUNDS] BIN [BIN ...]     (root: mounts)
#
# Prints one line per build and round: build, MiB/s, daemon CPU seconds.
# Extra `llmfs mount` flags for every build: $MOUNT_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: bench/seqwrite.sh ROUNDS BIN [BIN ...]}
shift
[ $# -ge 1 ] || { echo "usage: bench/seqwrite.sh ROUNDS BIN [BIN ...]" >&2; exit 2; }
bin=$1   # for scratch.sh's cleanup
. bench/scratch.sh
scratch seqwrite
printf 'build\tround\tMiB_s\tdaemon_cpu_s\n'
for round in $(seq 1 "$rounds"); do
  for b in "$@"; do
    store=$work/store; rm -rf "$store"
    # shellcheck disable=SC2086
    "$b" mount "$mnt" --store "$store" ${MOUNT_ARGS:-}
    pid=$(cat "$store/lock")
    before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    bw=$(fio --name=w --directory="$mnt" --filename=seqfile --size=256M --rw=write --bs=1M \
      --ioengine=psync --end_fsync=1 --buffer_compress_percentage=50 --buffer_compress_chunk=4096 \
      --refill_buffers --output-format=json | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["jobs"][0]["write"]["bw"] / 1024, 1))')
    after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    "$b" umount "$mnt"
    printf '%s\t%s\t%s\t%s\n' "$b" "$round" "$bw" "$(echo "($after - $before) / $(getconf CLK_TCK)" | bc -l | cut -c1-5)"
  done
done
