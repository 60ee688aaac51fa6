#!/usr/bin/env bash
# The cold sequential read of bench/fs.sh (a 256 MiB file of fio's
# half-compressible data read in 1 MiB reads after the page cache is
# dropped, llmfs remounted so that its block cache is empty), for one or
# more llmfs builds against Debian's mergerfs with one branch on the same
# disk, alternated round by round, with each daemon's CPU time.
#
#   bench/seq_read.sh [ROUNDS] [BIN ...]     (root: mounts, drops caches)
#
# A BIN may carry a transport as in bench/contender.sh: `BIN+uring`
# (enable_uring set), `BIN+dev` (cleared); and after an `@`, extra
# `llmfs mount` arguments separated by commas: `BIN+uring@--read-ahead-kib,0`. With WARM_BACKING=1 the page
# cache is not dropped but filled with the backing files (llmfs's
# database and segments, mergerfs's branch): what is left is the
# software path, without the disk.
#
# Prints a TSV line per contender and round: MB/s, daemon CPU seconds.
# With TRACE=1 the kernel's fuse_request_send/end tracepoints are recorded
# during the read (perf; the tracing slows every contender), and the line
# also gives the READ requests' count and their mean and p90 latency in
# µs, queueing to reply (bench/request_latency.py).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
shift || true
[ $# -ge 1 ] || set -- "$PWD/target/release/llmfs"
# The binary of a contender, and its extra mount arguments.
binary() { local b=${1%%@*}; echo "${b%+*}"; }
extra() { case $1 in *@*) echo "${1#*@}" | tr ',' ' ' ;; esac; }
bin=$(binary "$1")   # for scratch.sh's cleanup
. bench/scratch.sh
. bench/read_case.sh
scratch seqread
branch=$work/branch merged=$work/merged
mkdir -p "$branch" "$merged"
uring_param=/sys/module/fuse/parameters/enable_uring
uring_was=$(cat "$uring_param" 2>/dev/null || true)
scratch_cleanup_more() {
  if grep -q " $merged " /proc/self/mountinfo 2>/dev/null; then umount "$merged"; fi
  if [ -n "$uring_was" ]; then echo "$uring_was" > "$uring_param"; fi
}
transport() {
  case ${1%%@*} in
    *+uring) echo 1 > "$uring_param" ;;
    *+dev) [ -z "$uring_was" ] || echo 0 > "$uring_param" ;;
  esac
}
readjob() {
  if [ "${TRACE:-0}" = 1 ]; then
    perf record -q -e fuse:fuse_request_send -e fuse:fuse_request_end -a \
      -o "$work/perf.data" -- bash -c "$(declare -f fio_read); fio_read $1"
    perf script -i "$work/perf.data" 2>/dev/null | python3 bench/request_latency.py |
      python3 -c 'import json, sys; r = json.load(sys.stdin)["FUSE_READ"]; print("\t%d\t%.0f\t%.0f" % (r["count"], r["mean_us"], r["p90_us"]))' >"$work/trace"
  else
    fio_read "$1"
    : >"$work/trace"
  fi
}
fio_read() {
  fio --name=seqread --directory="$1" --filename=seqfile --size=256M --rw=read --bs=1M \
    --ioengine=psync --output-format=json |
    python3 -c 'import json, sys; print("%.0f" % (json.load(sys.stdin)["jobs"][0]["read"]["bw_bytes"] / 1e6))'
}
n=0
for b in "$@"; do
  n=$((n + 1))
  transport "$b"
  # shellcheck disable=SC2046
  "$(binary "$b")" mount "$mnt" --store "$work/store$n" $(extra "$b") && write "$mnt" &&
    "$(binary "$b")" umount "$mnt"
done
mergerfs "$branch" "$merged" && write "$merged" && umount "$merged"
if [ "${TRACE:-0}" = 1 ]; then
  printf 'contender\tround\tMB_s\tdaemon_cpu_s\treads\tread_mean_us\tread_p90_us\n'
else
  printf 'contender\tround\tMB_s\tdaemon_cpu_s\n'
fi
for round in $(seq 1 "$rounds"); do
  n=0
  for b in "$@"; do
    n=$((n + 1))
    settle "$work/store$n"
    transport "$b"
    # shellcheck disable=SC2046
    "$(binary "$b")" mount "$mnt" --store "$work/store$n" $(extra "$b")
    pid=$(cat "$work/store$n/lock")
    before=$(cpu "$pid")
    r=$(readjob "$mnt")
    printf '%s\t%s\t%s\t%s%s\n' "$b" "$round" "$r" "$(secs "$before" "$(cpu "$pid")")" "$(cat "$work/trace")"
    "$(binary "$b")" umount "$mnt"
  done
  settle "$branch"
  mergerfs "$branch" "$merged"
  pid=$(pgrep -n -x mergerfs)
  before=$(cpu "$pid")
  r=$(readjob "$merged")
  printf 'mergerfs\t%s\t%s\t%s%s\n' "$round" "$r" "$(secs "$before" "$(cpu "$pid")")" "$(cat "$work/trace")"
  umount "$merged"
done
