#!/usr/bin/env bash
# `cp -r` of a folder of large files (default 100 files of 2 MiB of random
# bytes, which stay raw: every close writes 2 MiB of records) onto a fresh
# llmfs mount, then `sync -f`, for several llmfs builds alternated round
# by round; a BIN of `mergerfs` copies onto Debian's mergerfs with one
# branch on the same disk (a FUSE passthrough). For the write path of
# files written whole and closed, as a copy of photos or archives does.
#
#   bench/cp_large_files.sh [ROUNDS] BIN [BIN ...]     (root: mounts)
#
# Prints one line per build and round: build, MiB/s. Files and size:
# $FILES (100) and $FILE_KIB (2048).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: bench/cp_large_files.sh ROUNDS BIN [BIN ...]}
shift
[ $# -ge 1 ] || { echo "usage: bench/cp_large_files.sh ROUNDS BIN [BIN ...]" >&2; exit 2; }
bin=$1   # for scratch.sh's cleanup
. bench/scratch.sh
scratch cplarge
scratch_cleanup_more() {
  if grep -q " $work/mergerfs " /proc/self/mountinfo 2>/dev/null; then umount "$work/mergerfs"; fi
}
files=${FILES:-100}
kib=${FILE_KIB:-2048}
mkdir -p "$work/src"
for i in $(seq 1 "$files"); do
  head -c "$((kib * 1024))" /dev/urandom > "$work/src/f$i"
done
sync
total_mib=$(echo "$files * $kib / 1024" | bc -l)
printf 'build\tround\tMiB_s\n'
for round in $(seq 1 "$rounds"); do
  for b in "$@"; do
    if [ "$b" = mergerfs ]; then
      rm -rf "$work/branch"; mkdir -p "$work/branch" "$work/mergerfs"
      mergerfs -o cache.files=off,dropcacheonclose=false,category.create=mfs "$work/branch" "$work/mergerfs"
      target=$work/mergerfs
    else
      rm -rf "$work/store"
      "$b" mount "$mnt" --store "$work/store" --compress off
      target=$mnt
    fi
    start=$(date +%s.%N)
    cp -r "$work/src" "$target/"
    sync -f "$target/"
    end=$(date +%s.%N)
    printf '%s\t%s\t%.1f\n' "$b" "$round" "$(echo "$total_mib / ($end - $start)" | bc -l)"
    if [ "$b" = mergerfs ]; then umount "$target"; else "$b" umount "$target"; fi
  done
done
