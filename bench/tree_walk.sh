#!/usr/bin/env bash
# Walking a tree that does not change, as everyday tools do again and
# again: `find`, `du -s`, `git status` and `grep -r` (which opens, reads and
# closes every file) over a copy of /usr/include
# committed to a git repository on the mount, each run three times in a
# row (the first after the copy and commit, the others repeats). On a fresh
# volume per round, for several llmfs builds, `plain` (a directory of the
# same disk) and `mergerfs` (Debian's mergerfs with one branch on it),
# alternated round by round, with the daemon's CPU time.
#
#   bench/tree_walk.sh [ROUNDS] BIN [BIN ...]     (root: mounts)
#
# Prints a TSV line per contender, round, tool and run: seconds, daemon CPU
# seconds (0 for the plain directory). The tree: $TREE (default
# /usr/include).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: bench/tree_walk.sh ROUNDS BIN [BIN ...]}
shift
[ $# -ge 1 ] || { echo "usage: bench/tree_walk.sh ROUNDS BIN [BIN ...]" >&2; exit 2; }
bin=$1   # for scratch.sh's cleanup
tree=${TREE:-/usr/include}
. bench/scratch.sh
. bench/contender.sh
scratch tree-walk

printf 'contender\tround\trun\tseconds\tdaemon_cpu_s\n'
for round in $(seq 1 "$rounds"); do
  for b in plain "$@"; do
    contender_mount "$b"
    repo=$target/repo
    mkdir "$repo"
    cp -r "$tree" "$repo/tree"
    git -C "$repo" init -q
    git -C "$repo" add -A
    git -C "$repo" -c user.name=bench -c user.email=bench@localhost commit -q -m tree
    sync
    for run in 1 2 3; do contender_timed "find $run" find "$repo/tree"; done
    for run in 1 2 3; do contender_timed "du -s $run" du -s "$repo/tree"; done
    for run in 1 2 3; do contender_timed "git status $run" git -C "$repo" status --porcelain; done
    # grep finds nothing and says so with status 1.
    for run in 1 2 3; do
      contender_timed "grep -r $run" sh -c 'grep -r -c -F no-such-string-anywhere "$1" || [ $? = 1 ]' _ "$repo/tree"
    done
    contender_umount "$b"
  done
done
