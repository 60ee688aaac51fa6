#!/bin/bash
# The first read of a primed cm block after a fresh mount: a volume of 2 MiB
# of a held-out log archived to the archive tier (32 blocks: the archiver
# builds a dictionary and primes every cm block with it), mounted, 3 s
# later one 4 KiB read of block 16 with the page cache dropped; this build
# against LLMFS_BASE, alternated, ROUNDS rounds. Needs root.
#
#   LLMFS_BASE=/path/to/other/llmfs bench/dictionary_first_read.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
new=$PWD/${LLMFS:-target/release/llmfs}
bin=$new
old=${LLMFS_BASE:?LLMFS_BASE: the build to compare with}
rounds=${1:-4}
. bench/scratch.sh
scratch first-read
L=${LLMFS_LOG:-../shared/training/structured/logs/elastic_apache_access.log}
head -c 2097152 "$L" > "$work/f"
for b in new:$new old:$old; do
  name=${b%%:*}; bin=${b#*:}
  st=$work/store-$name
  rm -rf "$st"
  $bin mount $mnt --store $st --compress off
  cp "$work/f" $mnt/f
  $bin umount $mnt
  $bin archive --tier archive $st > /dev/null 2>&1
done
printf 'round\tbuild\tseconds\n'
for r in $(seq 1 "$rounds"); do
  for b in new:$new old:$old; do
    name=${b%%:*}; bin=${b#*:}
    st=$work/store-$name
    $bin mount $mnt --store $st --compress off
    sleep 3
    sync; echo 3 > /proc/sys/vm/drop_caches
    t0=$(date +%s.%N); dd if=$mnt/f of=/dev/null bs=4096 skip=256 count=1 status=none; t1=$(date +%s.%N)
    $bin umount $mnt
    echo -e "$r\t$name\t$(echo "$t1 - $t0" | bc -l)"
  done
done
