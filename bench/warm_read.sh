#!/usr/bin/env bash
# The warm sequential read of bench/fs.sh for one or more llmfs builds
# against the plain directory on the same disk, alternated round by
# round (the plain directory first in odd rounds, last in even ones): a
# 256 MiB file of fio's half-compressible data is written, the
# page cache dropped, the file read once (the kernel's read-ahead fills
# the cache, as in fs.sh, where the cold read comes first), then read
# again and again from the cache for 5 s in 1 MiB reads
# (`--invalidate=0 --time_based`). One pass takes about 30 ms on the
# plain directory here, too short to time alone.
#
#   bench/warm_read.sh [ROUNDS] [BIN ...]     (root: mounts, drops caches)
#
# Debian's bindfs (a FUSE passthrough of a directory beside the plain
# one, as fs.py mounts it) runs after the llmfs builds: it keeps pages in
# the page cache too, where mergerfs's default reads go to its daemon.
#
# Prints a TSV line per contender and round: MB/s, and the page-cache
# folios that held the file (bench/page_cache_folios.py): their count
# and mean size in KiB.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
shift || true
[ $# -ge 1 ] || set -- "$PWD/target/release/llmfs"
bin=$1   # for scratch.sh's cleanup
. bench/scratch.sh
. bench/read_case.sh
scratch warmread
plain=$work/plain branch=$work/branch passthrough=$work/bindfs
mkdir -p "$plain" "$branch" "$passthrough"
scratch_cleanup_more() {
  if grep -q " $passthrough " /proc/self/mountinfo 2>/dev/null; then umount "$passthrough"; fi
}
warm() {
  WARM_BACKING=0 settle "$1"   # read_case.sh: the page cache dropped
  cat "$1/seqfile" >/dev/null
  fio --name=seqread --directory="$1" --filename=seqfile --size=256M --rw=read --bs=1M \
    --ioengine=psync --invalidate=0 --runtime=5 --time_based --output-format=json |
    python3 -c 'import json, sys; print("%.0f" % (json.load(sys.stdin)["jobs"][0]["read"]["bw_bytes"] / 1e6))'
}
folios() {
  python3 bench/page_cache_folios.py "$1/seqfile" |
    python3 -c 'import json, sys; r = json.load(sys.stdin); print("%d\t%.1f" % (r["folios"], r["mean_folio_kib"]))'
}
n=0
for b in "$@"; do
  n=$((n + 1))
  "$b" mount "$mnt" --store "$work/store$n" && write "$mnt" && "$b" umount "$mnt"
done
write "$plain"
write "$branch"
printf 'contender\tround\tMB_s\tfolios\tmean_folio_kib\n'
plain_round() {
  r=$(warm "$plain")
  printf 'plain\t%s\t%s\t%s\n' "$1" "$r" "$(folios "$plain")"
}
for round in $(seq 1 "$rounds"); do
  # The plain directory first in odd rounds, last in even ones.
  [ $((round % 2)) = 0 ] || plain_round "$round"
  n=0
  for b in "$@"; do
    n=$((n + 1))
    "$b" mount "$mnt" --store "$work/store$n"
    r=$(warm "$mnt")
    printf '%s\t%s\t%s\t%s\n' "$b" "$round" "$r" "$(folios "$mnt")"
    "$b" umount "$mnt"
  done
  bindfs "$branch" "$passthrough"
  r=$(warm "$passthrough")
  printf 'bindfs\t%s\t%s\t%s\n' "$round" "$r" "$(folios "$passthrough")"
  umount "$passthrough"
  [ $((round % 2)) = 1 ] || plain_round "$round"
done
