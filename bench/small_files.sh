#!/usr/bin/env bash
# The small-file cases of bench/fs.sh (`cp -r` and `tar x` of a tree,
# then `rm -rf` of it) on a fresh llmfs mount, for several llmfs builds
# alternated round by round, with the daemon's CPU time: for comparing
# builds of the close path in one run. A BIN of `mergerfs` runs the same
# on Debian's mergerfs with one branch on the same disk (the FUSE
# passthrough of issue 14's targets), and one of `floor` or `floor+uring`
# on examples/floor_fs (a daemon that answers from memory, mounted as
# llmfs mounts: what the kernel's requests cost whatever a daemon does).
#
#   bench/small_files.sh [ROUNDS] BIN [BIN ...]     (root: mounts)
#
# Prints a TSV line per build, round and case: seconds, daemon CPU
# seconds. The tree: $TREE (default /usr/include). Extra `llmfs mount`
# flags for every build: $MOUNT_ARGS. CASES=tar runs only `tar x`, on a
# fresh mount each time (`cp` alone: only `cp -r`); a difference of a few
# percent between builds needs ten rounds or more on this machine, read
# as paired ratios (bench/paired.py).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: bench/small_files.sh ROUNDS BIN [BIN ...]}
shift
[ $# -ge 1 ] || { echo "usage: bench/small_files.sh ROUNDS BIN [BIN ...]" >&2; exit 2; }
bin=$1   # for scratch.sh's cleanup
tree=${TREE:-/usr/include}
cases=${CASES:-all}
case $cases in all | tar | cp) ;; *) echo "small_files.sh: CASES is all, tar or cp" >&2; exit 2 ;; esac
. bench/scratch.sh
. bench/contender.sh
. bench/timed.sh
scratch small-files
tar cf "$work/tree.tar" -C "$(dirname "$tree")" "$(basename "$tree")"

printf 'build\tround\tcase\tseconds\tdaemon_cpu_s\n'
for round in $(seq 1 "$rounds"); do
  for b in "$@"; do
    contender_mount "$b"
    mkdir "$target/cp" "$target/tar"
    # Each case starts with the disk quiet.
    sync
    if [ "$cases" != tar ]; then
      timed "cp -r" cp -r "$tree" "$target/cp/"
      sync
    fi
    if [ "$cases" != cp ]; then
      timed "tar x" tar xf "$work/tree.tar" -C "$target/tar"
      sync
    fi
    if [ "$cases" = all ]; then
      timed "rm -rf" rm -rf "$target/cp"
    fi
    contender_umount "$b"
  done
done
