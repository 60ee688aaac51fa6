#!/usr/bin/env bash
# The cold 4 KiB random read of bench/fs.sh (a 256 MiB file of fio's
# half-compressible data; 16 MiB of 4 KiB reads after the page cache is
# dropped, and llmfs remounted so that its block cache is empty), for an
# llmfs build against Debian's mergerfs with one branch on the same disk (a
# FUSE passthrough, as fs.py mounts it), alternated round by round, with
# each daemon's CPU time: for comparing cold-read paths quickly.
#
#   bench/cold_read.sh [ROUNDS] [BIN]     (root: mounts, drops caches)
#
# Prints one line per contender and round: reads/s, mean latency (µs),
# daemon CPU seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
bin=${2:-$PWD/target/release/llmfs}
. bench/scratch.sh
scratch coldread
store=$work/store branch=$work/branch merged=$work/merged
mkdir -p "$branch" "$merged"
scratch_cleanup_more() {
  if grep -q " $merged " /proc/self/mountinfo 2>/dev/null; then umount "$merged"; fi
}
write() {
  fio --name=w --directory="$1" --filename=seqfile --size=256M --rw=write --bs=1M \
    --ioengine=psync --buffer_compress_percentage=50 --buffer_compress_chunk=4096 \
    --refill_buffers --end_fsync=1 --output-format=terse >/dev/null
}
readjob() {
  fio --name=randread --directory="$1" --filename=seqfile --size=256M --rw=randread --bs=4k \
    --ioengine=psync --io_size=16M --output-format=json |
    python3 -c 'import json, sys; r = json.load(sys.stdin)["jobs"][0]["read"]; print("%.0f\t%.1f" % (r["iops"], r["clat_ns"]["mean"] / 1000))'
}
cold() { sync; echo 3 > /proc/sys/vm/drop_caches; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
secs() { echo "($2 - $1) / $(getconf CLK_TCK)" | bc -l | cut -c1-5; }
"$bin" mount "$mnt" --store "$store" && write "$mnt" && "$bin" umount "$mnt"
mergerfs "$branch" "$merged" && write "$merged" && umount "$merged"
printf 'contender\tround\treads_s\tmean_latency_us\tdaemon_cpu_s\n'
for round in $(seq 1 "$rounds"); do
  cold
  "$bin" mount "$mnt" --store "$store"
  pid=$(cat "$store/lock")
  before=$(cpu "$pid")
  r=$(readjob "$mnt")
  printf 'llmfs\t%s\t%s\t%s\n' "$round" "$r" "$(secs "$before" "$(cpu "$pid")")"
  "$bin" umount "$mnt"
  cold
  mergerfs "$branch" "$merged"
  pid=$(pgrep -n -x mergerfs)
  before=$(cpu "$pid")
  r=$(readjob "$merged")
  printf 'mergerfs\t%s\t%s\t%s\n' "$round" "$r" "$(secs "$before" "$(cpu "$pid")")"
  umount "$merged"
done
