#!/usr/bin/env bash
# Reading back what was just written through write-only descriptors
# (which skip the kernel's page cache: src/fs/page_cache.rs), for llmfs
# builds alternated round by round, on a fresh mount each: a tree
# unpacked with `tar x` and then read whole (`find -exec cat`), and a
# large file written with `dd` (write-only, 1 MiB writes) and then read
# with `cat`. A BIN of `mergerfs` or `plain` runs the same on Debian's
# mergerfs with one branch or a plain directory on the same disk.
#
#   bench/read_after_write.sh [ROUNDS] BIN [BIN ...]     (root: mounts)
#
# Prints a TSV line per build, round and case: seconds, daemon CPU
# seconds. The tree: $TREE (default /usr/include); the large file:
# $BIG_FILE (default target/release/llmfs, 80-90 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: bench/read_after_write.sh ROUNDS BIN [BIN ...]}
shift
[ $# -ge 1 ] || { echo "usage: bench/read_after_write.sh ROUNDS BIN [BIN ...]" >&2; exit 2; }
bin=$1   # for scratch.sh's cleanup
tree=${TREE:-/usr/include}
big=${BIG_FILE:-target/release/llmfs}
. bench/scratch.sh
. bench/contender.sh
. bench/timed.sh
scratch read-after-write
tar cf "$work/tree.tar" -C "$(dirname "$tree")" "$(basename "$tree")"
cp "$big" "$work/big"

read_tree() { find "$1" -type f -exec cat {} + >/dev/null; }
read_file() { cat "$1" >/dev/null; }

printf 'build\tround\tcase\tseconds\tdaemon_cpu_s\n'
for round in $(seq 1 "$rounds"); do
  for b in "$@"; do
    contender_mount "$b"
    mkdir "$target/tar"
    timed "tar x" tar xf "$work/tree.tar" -C "$target/tar"
    timed "read the tree back" read_tree "$target/tar"
    timed "dd a large file" dd if="$work/big" of="$target/big" bs=1M status=none
    timed "read it back" read_file "$target/big"
    contender_umount "$b"
  done
done
