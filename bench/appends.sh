#!/usr/bin/env bash
# A log writer's small appends (20,000 writes of one 64-byte line to a file
# opened with O_APPEND, as root and as uid 65534) on a fresh llmfs mount,
# for several llmfs builds alternated round by round, with the daemon's CPU
# time. A BIN of `mergerfs` runs the same on Debian's mergerfs with one
# branch on the same disk (issue 14's FUSE passthrough peer). Each append
# is one FUSE write; what else the kernel asks per write (before
# FUSE_HANDLE_KILLPRIV_V2, the file's security.capability every time) is
# what this measures.
#
#   bench/appends.sh [ROUNDS] BIN [BIN ...]     (root: mounts)
#
# Prints a TSV line per build, round and user: appends/s, daemon CPU s.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: bench/appends.sh ROUNDS BIN [BIN ...]}
shift
[ $# -ge 1 ] || { echo "usage: bench/appends.sh ROUNDS BIN [BIN ...]" >&2; exit 2; }
bin=$1   # for scratch.sh's cleanup
. bench/scratch.sh
. bench/contender.sh
scratch appends
chmod 755 "$work"
MOUNT_ARGS="${MOUNT_ARGS:-} -o allow_other"
export MERGERFS_OPTS=allow_other
appends='
import os, sys, time
n = 20000
line = b"2026-12-04T21:40:00Z INFO request served in 3 ms from 10.0.0.1\n"
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o666)
t = time.perf_counter()
for _ in range(n):
    os.write(fd, line)
print(f"{n / (time.perf_counter() - t):.0f}")
os.close(fd)
'
printf 'build\tround\tuser\tappends_s\tdaemon_cpu_s\n'
for round in $(seq 1 "$rounds"); do
  for b in "$@"; do
    contender_mount "$b"
    chmod 777 "$target"
    contender_rate root /usr/bin/python3 -c "$appends" "$target/log-root"
    contender_rate nobody setpriv --reuid=65534 --regid=65534 --clear-groups \
      /usr/bin/python3 -c "$appends" "$target/log-nobody"
    contender_umount "$b"
  done
done
