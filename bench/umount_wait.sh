#!/usr/bin/env bash
# How long `llmfs umount` takes (it returns once the daemon has let go of
# the store) right after a read of a cold deep-tier block was answered from
# the block's first wave: what the decode threads still running then cost.
#
#   [LLMFS_BASE=/path/to/base/llmfs] [BASE_ARGS=--early-reads] bench/umount_wait.sh [ROUNDS]
#
# Per build: write 128 KiB of text (two 64 KiB blocks) through a mount,
# `llmfs archive --tier deep`, then per round: mount, drop the kernel's page
# cache, `head -c 4096 FILE` (answered after wave 0 of block 0: checked
# waves of llm payload version 5, or any wave with --early-reads), time
# `llmfs umount`. BASE_ARGS: extra mount flags of the base build (an older
# build needs --early-reads for its read to return after wave 0). Needs
# root (drop_caches, mount).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${LLMFS:-target/release/llmfs}
base=${LLMFS_BASE:-}
rounds=${1:-2}
corpora=${LLMFS_CORPORA:-../shared/corpora}
. bench/scratch.sh
scratch umount-wait
head -c 131072 "$corpora/large/bible.txt" > "$work/f"

printf 'build\tround\tumount_s\n'
for build in new ${base:+base}; do
  if [ "$build" = base ]; then b=$base; extra=${BASE_ARGS:-}; else b=$bin; extra=; fi
  store=$work/store-$build
  "$b" mount "$mnt" --store "$store" --compress off
  cp "$work/f" "$mnt/f"
  "$b" umount "$mnt"
  "$b" archive --tier deep "$store" > /dev/null 2>&1
  for round in $(seq 1 "$rounds"); do
    # shellcheck disable=SC2086
    "$b" mount "$mnt" --store "$store" --compress off $extra
    sync; echo 3 > /proc/sys/vm/drop_caches
    head -c 4096 "$mnt/f" | cmp -s - <(head -c 4096 "$work/f") || { echo "umount_wait: $b read back differently" >&2; exit 1; }
    t0=$(date +%s.%N); "$b" umount "$mnt"; t1=$(date +%s.%N)
    printf '%s\t%s\t%.3f\n' "$build" "$round" "$(echo "$t1 - $t0" | bc -l)"
  done
done
