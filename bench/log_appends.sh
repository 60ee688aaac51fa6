#!/usr/bin/env bash
# Log writers that do not keep one descriptor's appends in memory: one
# line at a time, each appended (O_APPEND) and then either the file
# closed (`reopen`: a shell's `echo ... >> log` in a loop; every close
# writes the file back) or the line made durable (`fsync`: fdatasync
# after each line), on a fresh llmfs mount, for several llmfs builds
# alternated round by round, with the daemon's CPU time. A BIN of
# `mergerfs` runs the same on Debian's mergerfs with one branch on the
# same disk (issue 14's FUSE passthrough peer). Every append after the
# first of a block lands in a block already committed: what it costs to
# get that block's bytes back is what tells builds apart.
#
#   bench/log_appends.sh [ROUNDS] BIN [BIN ...]     (root: mounts)
#
# Prints a TSV line per build, round and pattern: lines/s, daemon CPU s.
# Lines per run: $LINES (default 5000 for reopen, a fifth of it for
# fsync, whose every line waits for the disk).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: bench/log_appends.sh ROUNDS BIN [BIN ...]}
shift
[ $# -ge 1 ] || { echo "usage: bench/log_appends.sh ROUNDS BIN [BIN ...]" >&2; exit 2; }
bin=$1   # for scratch.sh's cleanup
lines=${LINES:-5000}
. bench/scratch.sh
. bench/contender.sh
scratch log-appends
writer='
import os, sys, time
path, pattern, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
line = b"2026-12-04T21:40:00Z INFO request served in 3 ms from 10.0.0.1\n"
flags = os.O_CREAT | os.O_WRONLY | os.O_APPEND
t = time.perf_counter()
if pattern == "reopen":
    for _ in range(n):
        fd = os.open(path, flags, 0o644)
        os.write(fd, line)
        os.close(fd)
else:
    fd = os.open(path, flags, 0o644)
    for _ in range(n):
        os.write(fd, line)
        os.fdatasync(fd)
    os.close(fd)
print(f"{n / (time.perf_counter() - t):.0f}")
'
printf 'build\tround\tpattern\tlines_s\tdaemon_cpu_s\n'
for round in $(seq 1 "$rounds"); do
  for b in "$@"; do
    contender_mount "$b"
    contender_rate reopen python3 -c "$writer" "$target/reopen.log" reopen "$lines"
    contender_rate fsync python3 -c "$writer" "$target/fsync.log" fsync "$((lines / 5))"
    contender_umount "$b"
  done
done
