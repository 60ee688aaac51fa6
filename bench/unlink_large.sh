#!/usr/bin/env bash
# What deleting a large file costs the requests after it, for several
# llmfs builds alternated round by round: on a fresh volume, a 1 GiB file
# (fio's half-compressible data, 16384 blocks), then `rm` of it, then,
# a second later, `touch` of a new file: the first write transaction
# after the unlink, which deleted the file's rows when the kernel let go
# of it, before the reaper (src/fs/reaper.rs).
#
#   bench/unlink_large.sh [ROUNDS] BIN [BIN ...]     (root: mounts)
#
# Prints a TSV line per build and round: milliseconds of the rm and of
# the touch, and the block rows left 3 s after the rm.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: bench/unlink_large.sh ROUNDS BIN [BIN ...]}
shift
[ $# -ge 1 ] || { echo "usage: bench/unlink_large.sh ROUNDS BIN [BIN ...]" >&2; exit 2; }
bin=$1   # for scratch.sh's cleanup
. bench/scratch.sh
scratch unlink-large
ms() { echo "($2 - $1) * 1000" | bc | cut -d. -f1; }
printf 'build\tround\trm_ms\ttouch_after_ms\tblock_rows_3s_after\n'
for round in $(seq 1 "$rounds"); do
  for b in "$@"; do
    store=$work/store; rm -rf "$store"
    "$b" mount "$mnt" --store "$store"
    fio --name=w --directory="$mnt" --filename=big --size=1G --rw=write --bs=1M \
      --ioengine=psync --end_fsync=1 --buffer_compress_percentage=50 \
      --buffer_compress_chunk=4096 --refill_buffers >/dev/null
    sync
    t0=$(date +%s.%N); rm "$mnt/big"; t1=$(date +%s.%N)
    sleep 1
    t2=$(date +%s.%N); touch "$mnt/after"; t3=$(date +%s.%N)
    sleep 2
    rows=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM blocks").fetchone()[0])' "$store/llmfs.db")
    "$b" umount "$mnt"
    printf '%s\t%s\t%s\t%s\t%s\n' "$b" "$round" "$(ms "$t0" "$t1")" "$(ms "$t2" "$t3")" "$rows"
  done
done
