#!/usr/bin/env bash
# The cold 4 KiB random read of bench/fs.sh (a 256 MiB file of fio's
# half-compressible data; 16 MiB of 4 KiB reads after the page cache is
# dropped, and llmfs remounted so that its block cache is empty), for one
# or more llmfs builds against Debian's mergerfs with one branch on the
# same disk (a FUSE passthrough, as fs.py mounts it), alternated round by
# round, with each daemon's CPU time: for comparing cold-read paths
# quickly.
#
#   bench/cold_read.sh [ROUNDS] [BIN ...]     (root: mounts, drops caches)
#
# With WARM_BACKING=1 the page cache is not dropped but filled with the
# backing files (llmfs's database and segments, mergerfs's branch), and
# each contender is remounted as before: what is left is the software
# path of a read that misses in the kernel's FUSE page cache and in
# llmfs's block cache, without the disk's latency.
#
# Prints one line per contender and round: reads/s, mean latency (µs),
# daemon CPU seconds, MiB the daemon read from storage (/proc/PID/io's
# read_bytes: what missed the page cache).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
shift || true
[ $# -ge 1 ] || set -- "$PWD/target/release/llmfs"
bin=$1   # for scratch.sh's cleanup
. bench/scratch.sh
. bench/read_case.sh
scratch coldread
branch=$work/branch merged=$work/merged
mkdir -p "$branch" "$merged"
scratch_cleanup_more() {
  if grep -q " $merged " /proc/self/mountinfo 2>/dev/null; then umount "$merged"; fi
}
readjob() {
  fio --name=randread --directory="$1" --filename=seqfile --size=256M --rw=randread --bs=4k \
    --ioengine=psync --io_size=16M --output-format=json |
    python3 -c 'import json, sys; r = json.load(sys.stdin)["jobs"][0]["read"]; print("%.0f\t%.1f" % (r["iops"], r["clat_ns"]["mean"] / 1000))'
}
io() { awk '/^read_bytes/ {print $2}' "/proc/$1/io"; }
mib() { echo $((($2 - $1) >> 20)); }
n=0
for b in "$@"; do
  n=$((n + 1))
  "$b" mount "$mnt" --store "$work/store$n" && write "$mnt" && "$b" umount "$mnt"
done
mergerfs "$branch" "$merged" && write "$merged" && umount "$merged"
printf 'contender\tround\treads_s\tmean_latency_us\tdaemon_cpu_s\tdaemon_read_mib\n'
for round in $(seq 1 "$rounds"); do
  n=0
  for b in "$@"; do
    n=$((n + 1))
    settle "$work/store$n"
    "$b" mount "$mnt" --store "$work/store$n"
    pid=$(cat "$work/store$n/lock")
    before=$(cpu "$pid") read_before=$(io "$pid")
    r=$(readjob "$mnt")
    printf '%s\t%s\t%s\t%s\t%s\n' "$b" "$round" "$r" "$(secs "$before" "$(cpu "$pid")")" \
      "$(mib "$read_before" "$(io "$pid")")"
    "$b" umount "$mnt"
  done
  settle "$branch"
  mergerfs "$branch" "$merged"
  pid=$(pgrep -n -x mergerfs)
  before=$(cpu "$pid") read_before=$(io "$pid")
  r=$(readjob "$merged")
  printf 'mergerfs\t%s\t%s\t%s\t%s\n' "$round" "$r" "$(secs "$before" "$(cpu "$pid")")" \
    "$(mib "$read_before" "$(io "$pid")")"
  umount "$merged"
done
