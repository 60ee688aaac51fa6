#!/usr/bin/env bash
# A compiler's include-path search (or a shell's $PATH, or Python's
# sys.path) on a fresh mount: 8 directories of 200 files each; every file
# name is looked for in the directories in order, as `-I inc0 ... -I inc7`
# would, so a name in inc<d> costs d failed lookups first (5,600 failed and
# 1,600 found per pass). Three passes, as three compilation units including
# the same headers. For several llmfs builds alternated round by round, and
# `mergerfs` (Debian's mergerfs with one branch on the same disk, issue
# 14's FUSE passthrough peer), with the daemon's CPU time.
#
#   bench/path_search.sh [ROUNDS] BIN [BIN ...]     (root: mounts)
#
# Prints a TSV line per build, round and pass: lookups/s (failed and found
# together), daemon CPU seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: bench/path_search.sh ROUNDS BIN [BIN ...]}
shift
[ $# -ge 1 ] || { echo "usage: bench/path_search.sh ROUNDS BIN [BIN ...]" >&2; exit 2; }
bin=$1   # for scratch.sh's cleanup
. bench/scratch.sh
. bench/contender.sh
scratch path-search
search='
import os, sys, time
root, dirs, per = sys.argv[1], 8, 200
paths = [os.path.join(root, f"inc{d}") for d in range(dirs)]
if sys.argv[2] == "make":
    for d, p in enumerate(paths):
        os.mkdir(p)
        for i in range(per):
            open(os.path.join(p, f"h{d}_{i}.h"), "w").close()
    sys.exit(0)
names = [f"h{d}_{i}.h" for i in range(per) for d in range(dirs)]
n = 0
t = time.perf_counter()
for name in names:
    for p in paths:
        n += 1
        try:
            os.stat(os.path.join(p, name))
            break
        except FileNotFoundError:
            pass
print(f"{n / (time.perf_counter() - t):.0f}")
'
printf 'build\tround\tpass\tlookups_s\tdaemon_cpu_s\n'
for round in $(seq 1 "$rounds"); do
  for b in "$@"; do
    contender_mount "$b"
    python3 -c "$search" "$target" make
    sync
    for pass in 1 2 3; do contender_rate "$pass" python3 -c "$search" "$target" search; done
    contender_umount "$b"
  done
done
