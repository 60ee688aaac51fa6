#!/usr/bin/env bash
# The volume dictionary on logs: a volume holding the held-out log files,
# archived offline to the archive tier with and without a dictionary,
# against xz -9e and zstd -19 on the same files (whole file and per 64 KiB
# block), in the same run.
#
#   bench/dictionary.sh [LOG...]     (default: ../shared/training/structured/logs/*)
#
# Prints one TSV row per volume: stored bytes of the blocks, of the
# dictionary, their sum, and that sum over whole-file xz -9e and over
# per-block xz -9e. Needs root (mount) and xz, zstd.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${LLMFS:-target/release/llmfs}
logs=("$@")
[ ${#logs[@]} -gt 0 ] || logs=(../shared/training/structured/logs/*)
. bench/scratch.sh
scratch dict

raw=0; xz_file=0; xz_block=0; zstd_block=0
for f in "${logs[@]}"; do
  raw=$((raw + $(stat -c %s "$f")))
  xz_file=$((xz_file + $(xz -9e -T1 -c "$f" | wc -c)))
  mkdir -p "$work/split"; rm -f "$work/split/"*
  split -b 65536 -a 4 "$f" "$work/split/b"
  for b in "$work/split/"*; do
    xz_block=$((xz_block + $(xz -9e -T1 -c "$b" | wc -c)))
    zstd_block=$((zstd_block + $(zstd -19 -q -c "$b" | wc -c)))
  done
done

printf 'volume\traw_bytes\tblock_bytes\tdictionary_bytes\ttotal_bytes\tover_xz9e_file\tover_xz9e_block\tover_zstd19_block\tarchive_s\n'
printf 'xz -9e/file\t%s\t%s\t0\t%s\t1.0000\t%.4f\t-\t-\n' "$raw" "$xz_file" "$xz_file" "$(echo "$xz_file / $xz_block" | bc -l)"
for mode in dictionary plain; do
  store=$work/store-$mode
  "$bin" mount "$mnt" --store "$store" --compress off
  cp "${logs[@]}" "$mnt/"
  "$bin" umount "$mnt"
  flag=; [ $mode = plain ] && flag=--no-dictionary
  t0=$(date +%s.%N)
  "$bin" archive --tier archive $flag "$store" > /dev/null
  t1=$(date +%s.%N)
  read -r blocks dict < <("$bin" stats --json "$store" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(d["stored_bytes"], sum(x["stored_bytes"] for x in d["dictionaries"]))')
  "$bin" mount "$mnt" --store "$store" --compress off
  for f in "${logs[@]}"; do cmp -s "$f" "$mnt/$(basename "$f")" || { echo "dictionary: $f read back differently" >&2; exit 1; }; done
  "$bin" umount "$mnt"
  total=$((blocks + dict))
  printf 'llmfs %s\t%s\t%s\t%s\t%s\t%.4f\t%.4f\t%.4f\t%.1f\n' "$mode" "$raw" "$blocks" "$dict" "$total" \
    "$(echo "$total / $xz_file" | bc -l)" "$(echo "$total / $xz_block" | bc -l)" \
    "$(echo "$total / $zstd_block" | bc -l)" "$(echo "$t1 - $t0" | bc -l)"
done
