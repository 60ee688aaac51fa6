#!/usr/bin/env bash
# A sustained stream of small files: COUNT (default 3) `tar x` of a tree
# (default /usr/include) in a row onto one fresh mount, for llmfs builds
# (and mergerfs or the floor, bench/contender.sh) alternated round by
# round. Long enough that the store's WAL passes the 64 MiB at which the
# checkpoint thread restarts it (src/store/sqlite/checkpoint.rs) several
# times: a single `tar x` of /usr/include passes it once, near its end
# (docs/MEASUREMENTS.md, "The WAL's restart inside one `tar x`").
#
#   bench/sustained_tar.sh ROUNDS BIN|mergerfs|floor ...     (root: mounts)
#
# With REPLACE=1 each `tar x` after the first first removes the tree the
# one before it wrote (`rm -rf`, timed with it): a volume whose files are
# replaced, whose database reuses the pages deletions freed.
#
# Prints a TSV line per contender and round: seconds, daemon CPU seconds.
# With TRACE=1 each run is traced with the kernel's fuse:fuse_request_send
# and fuse:fuse_request_end tracepoints (perf), which slows every
# contender alike, and the line adds the longest request's wait and the
# milliseconds spent in requests that waited over 4 ms: the stalls a
# whole mount sees.
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: bench/sustained_tar.sh ROUNDS BIN|mergerfs|floor ..."
rounds=${1:?$usage}
shift
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
bin=$1   # for scratch.sh's cleanup
tree=${TREE:-/usr/include}
count=${COUNT:-3}
. bench/scratch.sh
. bench/contender.sh
scratch sustained-tar
tar cf "$work/tree.tar" -C "$(dirname "$tree")" "$(basename "$tree")"
untar_all() {
  for i in $(seq 1 "$count"); do
    if [ "${REPLACE:-0}" = 1 ] && [ "$i" -gt 1 ]; then rm -rf "$target/t$((i - 1))"; fi
    mkdir "$target/t$i"
    tar xf "$work/tree.tar" -C "$target/t$i"
  done
}
printf 'build\tround\tcase\tseconds\tdaemon_cpu_s%s\n' "$([ "${TRACE:-0}" = 1 ] && printf '\tlongest_wait_ms\tstalls_over_4ms_ms')"
for round in $(seq 1 "$rounds"); do
  for b in "$@"; do
    contender_mount "$b"
    sync
    before=$(contender_cpu)
    start=$(date +%s.%N)
    if [ "${TRACE:-0}" = 1 ]; then
      perf record -q -e fuse:fuse_request_send -e fuse:fuse_request_end -a \
        -o "$work/perf.data" -- bash -c "$(declare -f untar_all); target='$target' work='$work' count=$count REPLACE=${REPLACE:-0} untar_all" 2>/dev/null
    else
      untar_all
    fi
    end=$(date +%s.%N)
    after=$(contender_cpu)
    extra=
    if [ "${TRACE:-0}" = 1 ]; then
      extra=$(perf script -i "$work/perf.data" 2>/dev/null | python3 -c '
import re, sys
line = re.compile(r"\s(\d+\.\d+):\s+fuse:(fuse_request_send|fuse_request_end):.*?req (\d+)")
sent, waits = {}, []
for l in sys.stdin:
    m = line.search(l)
    if not m:
        continue
    t, event, unique = float(m.group(1)), m.group(2), m.group(3)
    if event == "fuse_request_send":
        sent[unique] = t
    elif unique in sent:
        waits.append((t - sent.pop(unique)) * 1e3)
print("\t%.1f\t%.0f" % (max(waits, default=0), sum(w for w in waits if w > 4)))')
    fi
    printf '%s\t%s\t%s x tar x%s\t%.3f\t%.2f%s\n' "$b" "$round" "$count" \
      "$([ "${REPLACE:-0}" = 1 ] && printf ', replacing')" "$(echo "$end - $start" | bc -l)" "$(echo "($after - $before) / $(getconf CLK_TCK)" | bc -l)" "$extra"
    contender_umount "$b"
  done
done
