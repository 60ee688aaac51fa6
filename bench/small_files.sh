#!/usr/bin/env bash
# The small-file cases of bench/fs.sh (`cp -r` and `tar x` of a tree,
# then `rm -rf` of it) on a fresh llmfs mount, for several llmfs builds
# alternated round by round, with the daemon's CPU time: for comparing
# builds of the close path in one run. A BIN of `mergerfs` runs the same
# on Debian's mergerfs with one branch on the same disk (the FUSE
# passthrough of issue 14's targets).
#
#   bench/small_files.sh [ROUNDS] BIN [BIN ...]     (root: mounts)
#
# Prints a TSV line per build, round and case: seconds, daemon CPU
# seconds. The tree: $TREE (default /usr/include). Extra `llmfs mount`
# flags for every build: $MOUNT_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: bench/small_files.sh ROUNDS BIN [BIN ...]}
shift
[ $# -ge 1 ] || { echo "usage: bench/small_files.sh ROUNDS BIN [BIN ...]" >&2; exit 2; }
bin=$1   # for scratch.sh's cleanup
tree=${TREE:-/usr/include}
. bench/scratch.sh
scratch small-files
scratch_cleanup_more() {
  if grep -q " $work/mergerfs " /proc/self/mountinfo 2>/dev/null; then umount "$work/mergerfs"; fi
}
tar cf "$work/tree.tar" -C "$(dirname "$tree")" "$(basename "$tree")"

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# timed NAME PID CMD...: runs CMD, prints its line.
timed() {
  local name=$1 pid=$2
  shift 2
  sync
  local before start end after
  before=$(cpu "$pid")
  start=$(date +%s.%N)
  "$@"
  end=$(date +%s.%N)
  after=$(cpu "$pid")
  printf '%s\t%s\t%s\t%.3f\t%.2f\n' "$b" "$round" "$name" "$(echo "$end - $start" | bc -l)" \
    "$(echo "($after - $before) / $(getconf CLK_TCK)" | bc -l)"
}

printf 'build\tround\tcase\tseconds\tdaemon_cpu_s\n'
for round in $(seq 1 "$rounds"); do
  for b in "$@"; do
    if [ "$b" = mergerfs ]; then
      rm -rf "$work/branch"; mkdir -p "$work/branch" "$work/mergerfs"
      mergerfs -o cache.files=off,dropcacheonclose=false,category.create=mfs "$work/branch" "$work/mergerfs"
      pid=$(pgrep -n -x mergerfs)
      target=$work/mergerfs
    else
      store=$work/store; rm -rf "$store"
      # shellcheck disable=SC2086
      "$b" mount "$mnt" --store "$store" ${MOUNT_ARGS:-}
      pid=$(cat "$store/lock")
      target=$mnt
    fi
    mkdir "$target/cp" "$target/tar"
    timed "cp -r" "$pid" cp -r "$tree" "$target/cp/"
    timed "tar x" "$pid" tar xf "$work/tree.tar" -C "$target/tar"
    timed "rm -rf" "$pid" rm -rf "$target/cp"
    if [ "$b" = mergerfs ]; then umount "$work/mergerfs"; else "$b" umount "$mnt"; fi
  done
done
