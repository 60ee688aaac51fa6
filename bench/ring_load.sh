#!/usr/bin/env bash
# FUSE over io_uring under CPU load: `tar x` of a tree onto a fresh mount
# while HOGS busy loops (`yes` at nice -5, default 4) keep every core
# busy, with the ring threads at normal priority and at SCHED_IDLE
# (`--ring-idle`), alternated round by round; the same without the hogs.
# What `ring_idle` costs when other work wants the CPUs.
#
#   bench/ring_load.sh [ROUNDS] BIN     (root: mounts, enable_uring)
#
# Prints a TSV line per round, load and setting: seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: bench/ring_load.sh ROUNDS BIN}
bin=${2:?usage: bench/ring_load.sh ROUNDS BIN}
tree=${TREE:-/usr/include}
hogs=${HOGS:-4}
. bench/scratch.sh
scratch ring-load
param=/sys/module/fuse/parameters/enable_uring
was=$(cat "$param")
scratch_cleanup_more() {
  pkill -x yes 2>/dev/null || true
  echo "$was" > "$param"
}
echo 1 > "$param"
tar cf "$work/tree.tar" -C "$(dirname "$tree")" "$(basename "$tree")"
printf 'round\tload\tsetting\tseconds\n'
for round in $(seq 1 "$rounds"); do
  for load in none hogs; do
    for setting in normal ring_idle; do
      rm -rf "$work/store"
      args=()
      [ "$setting" = normal ] || args=(--ring-idle)
      "$bin" mount "$mnt" --store "$work/store" "${args[@]}"
      mkdir "$mnt/t"
      if [ "$load" = hogs ]; then
        for _ in $(seq 1 "$hogs"); do nice -n -5 yes >/dev/null & done
      fi
      start=$(date +%s.%N)
      tar xf "$work/tree.tar" -C "$mnt/t"
      end=$(date +%s.%N)
      pkill -x yes 2>/dev/null || true
      printf '%s\t%s\t%s\t%.3f\n' "$round" "$load" "$setting" "$(echo "$end - $start" | bc -l)"
      "$bin" umount "$mnt"
    done
  done
done
