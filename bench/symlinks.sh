#!/usr/bin/env bash
# Paths through symlinks (a venv's bin/, node_modules/.bin, /usr-like
# trees): 2,000 symlinks to 2,000 files, each followed by a stat, three
# passes, on a fresh mount. For several llmfs builds and `mergerfs`
# (Debian's mergerfs with one branch on the same disk), alternated round
# by round, with the daemon's CPU time.
#
#   bench/symlinks.sh [ROUNDS] BIN [BIN ...]     (root: mounts)
#
# Prints a TSV line per contender, round and pass: stats through a
# symlink per second, daemon CPU seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: bench/symlinks.sh ROUNDS BIN [BIN ...]}
shift
[ $# -ge 1 ] || { echo "usage: bench/symlinks.sh ROUNDS BIN [BIN ...]" >&2; exit 2; }
bin=$1   # for scratch.sh's cleanup
. bench/scratch.sh
. bench/contender.sh
scratch symlinks
follow='
import os, sys, time
d = os.path.join(sys.argv[1], "links")
if sys.argv[2] == "make":
    os.makedirs(os.path.join(d, "t"))
    for i in range(2000):
        open(os.path.join(d, "t", f"f{i}"), "w").close()
        os.symlink(f"t/f{i}", os.path.join(d, f"l{i}"))
    sys.exit(0)
t = time.perf_counter()
for i in range(2000):
    os.stat(os.path.join(d, f"l{i}"))
print(f"{2000 / (time.perf_counter() - t):.0f}")
'
printf 'contender\tround\tpass\tstats_s\tdaemon_cpu_s\n'
for round in $(seq 1 "$rounds"); do
  for b in "$@"; do
    contender_mount "$b"
    python3 -c "$follow" "$target" make
    for pass in 1 2 3; do contender_rate "$pass" python3 -c "$follow" "$target" follow; done
    contender_umount "$b"
  done
done
