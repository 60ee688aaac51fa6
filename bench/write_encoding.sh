#!/usr/bin/env bash
# What the write path's encoding costs and buys, for several llmfs builds
# alternated round by round, each on a fresh volume with the default
# settings: the fsync'd sequential write of bench/fs.sh (256 MiB, fio's
# half-compressible data) and the daemon's CPU for it; `cp -r /usr/include`
# (text, thousands of small files) with a sync, and the daemon's CPU; the
# bytes stored before the archiver takes anything; the cold sequential
# read of the fio file after a remount with the page cache dropped.
#
#   bench/write_encoding.sh [ROUNDS] BIN [BIN ...]     (root: mounts)
#
# Prints a TSV line per build and round.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: bench/write_encoding.sh ROUNDS BIN [BIN ...]}
shift
[ $# -ge 1 ] || { echo "usage: bench/write_encoding.sh ROUNDS BIN [BIN ...]" >&2; exit 2; }
bin=$1   # for scratch.sh's cleanup
. bench/scratch.sh
. bench/seqwrite_fio.sh
scratch write-encoding
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
secs() { echo "$1 / $(getconf CLK_TCK)" | bc -l | cut -c1-5; }
printf 'build\tround\tseqwrite_MiB_s\tseqwrite_cpu_s\tcp_r_s\tcp_r_cpu_s\tstored_bytes\tcold_read_MiB_s\n'
for round in $(seq 1 "$rounds"); do
  for b in "$@"; do
    store=$work/store; rm -rf "$store"
    "$b" mount "$mnt" --store "$store"
    pid=$(cat "$store/lock")
    c0=$(cpu "$pid")
    bw=$(seqwrite_fio "$mnt")
    c1=$(cpu "$pid")
    t0=$(date +%s.%N)
    cp -r /usr/include "$mnt/include"
    sync "$mnt/include"
    t1=$(date +%s.%N)
    c2=$(cpu "$pid")
    stored=$("$b" stats "$mnt" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["stored_bytes"])')
    "$b" umount "$mnt"
    sync; echo 3 > /proc/sys/vm/drop_caches
    # compress=off: no archiver takes the blocks before they are read.
    "$b" mount "$mnt" --store "$store" --compress off
    rd=$(fio --name=r --directory="$mnt" --filename=seqfile --size=256M --rw=read --bs=1M \
      --ioengine=psync --output-format=json |
      python3 -c 'import json,sys; print(round(json.load(sys.stdin)["jobs"][0]["read"]["bw"] / 1024, 1))')
    "$b" umount "$mnt"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$b" "$round" "$bw" "$(secs $((c1 - c0)))" \
      "$(echo "$t1 - $t0" | bc | cut -c1-5)" "$(secs $((c2 - c1)))" "$stored" "$rd"
  done
done
