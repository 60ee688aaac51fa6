#!/usr/bin/env bash
# Cold sequential read of an archived text file, per archive tier, against
# the plain directory on the same disk, in the same run (alternating).
#
#   [TIERS="archive deep"] [LLMFS_BASE=/path/to/base/llmfs] \
#     bench/tiers.sh [ROUNDS] [ARCHIVE_BYTES] [DEEP_BYTES]
#
# For each tier: write the file through a mount (compress=off: no
# archiver), unmount, `llmfs archive --tier TIER`, mount again (a fresh
# daemon: its block cache is empty), drop the kernel's page cache, and time
# `cat FILE > /dev/null`; the plain directory's copy is read the same way
# right after. The text is the start of bible.txt followed by world192.txt
# (../shared/corpora/large). The deep tier (the model) reads at a few KB/s,
# so it gets a smaller file by default. Needs root (drop_caches, mount).
# LLMFS_BASE adds an older build, alternated with this one in every round,
# each with its own store (a newer format locks an older build out); a
# build whose `archive` has no --tier (before the tiers) archives with the
# model, which is the deep tier.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${LLMFS:-target/release/llmfs}
base=${LLMFS_BASE:-}
rounds=${1:-2}
archive_bytes=${2:-4194304}
deep_bytes=${3:-262144}
corpora=${LLMFS_CORPORA:-../shared/corpora}
. bench/scratch.sh
scratch tiers
mkdir -p "$work/plain"
cat "$corpora/large/bible.txt" "$corpora/large/world192.txt" > "$work/text"

seconds() { # seconds to read $1 cold
  sync; echo 3 > /proc/sys/vm/drop_caches
  local t0 t1
  t0=$(date +%s.%N); cat "$1" > /dev/null; t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}

builds=("$bin"); [ -n "$base" ] && builds+=("$base")
printf 'round\ttier\tbytes\tllmfs_s\tplain_s\tllmfs_MB_s\tplain_MB_s\tstored_bytes\tbuild\n'
for round in $(seq 1 "$rounds"); do
  for tier in ${TIERS:-archive deep}; do
    for b in "${builds[@]}"; do
      name=new; [ "$b" = "$bin" ] || name=base
      tier_arg=(--tier "$tier")
      if ! "$b" archive --help | grep -q -- --tier; then
        [ "$tier" = deep ] || continue
        tier_arg=()
      fi
      bytes=$archive_bytes; [ "$tier" = deep ] && bytes=$deep_bytes
      store=$work/store-$tier-$round-$name
      head -c "$bytes" "$work/text" > "$work/plain/f"
      "$b" mount "$mnt" --store "$store" --compress off
      cp "$work/plain/f" "$mnt/f"
      "$b" umount "$mnt"
      "$b" archive "${tier_arg[@]}" "$store" > /dev/null
      stored=$("$b" stats --json "$store" | python3 -c 'import json,sys; print(json.load(sys.stdin)["stored_bytes"])')
      "$b" mount "$mnt" --store "$store" --compress off
      l=$(seconds "$mnt/f")
      p=$(seconds "$work/plain/f")
      cmp -s "$mnt/f" "$work/plain/f" || { echo "tiers: $tier ($name) read back differently" >&2; exit 1; }
      "$b" umount "$mnt"
      printf '%s\t%s\t%s\t%.3f\t%.4f\t%.3f\t%.1f\t%s\t%s\n' "$round" "$tier" "$bytes" "$l" "$p" \
        "$(echo "$bytes / $l / 1000000" | bc -l)" "$(echo "$bytes / $p / 1000000" | bc -l)" "$stored" "$name"
    done
  done
done
