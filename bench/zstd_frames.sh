#!/usr/bin/env bash
# What coding a 64 KiB block as independent zstd frames costs in size
# (src/codec/zstd_frames.rs): for each corpus file cut into 64 KiB
# blocks, the bytes of zstd at the two write levels (--fast=1, the
# interim encoding; -3, the fast codec) with one frame per block, and
# with frames of 32 KiB and 16 KiB plus each block's frame table
# (12 + 8 bytes per frame), as Debian's zstd writes them (the same
# library llmfs links). Also fio's half-compressible data, as bench/fs.sh
# writes it. FRAMES="65536 16384 8192 4096" (frame sizes, the first of
# them the one each ratio is against) tries others.
#
#   bench/zstd_frames.sh [FILE ...]   (default: Canterbury, bible, world192)
#
# Prints a TSV: file, level, frame bytes, stored bytes, ratio against the
# first frame size (one frame per block by default) at the same level.
set -euo pipefail
cd "$(dirname "$0")/.."
corpora=../shared/corpora
[ $# -ge 1 ] || set -- "$corpora"/cantrbry/* "$corpora"/large/*
work=$(mktemp -d /tmp/llmfs-zframes.XXXXXX)
trap 'rm -rf "$work"' EXIT
fio --name=w --directory="$work" --filename=fio-half --size=16M --rw=write --bs=1M \
  --ioengine=psync --buffer_compress_percentage=50 --buffer_compress_chunk=4096 \
  --refill_buffers --output-format=terse >/dev/null
block=65536
printf 'file\tlevel\tframe_bytes\tstored_bytes\tratio_vs_first_size\n'
for f in "$@" "$work/fio-half"; do
  size=$(stat -c %s "$f")
  full=$((size / block)) tail=$((size % block))
  for level in --fast=1 -3; do
    base=
    for frame in ${FRAMES:-65536 32768 16384}; do
      rm -rf "$work/chunks"; mkdir "$work/chunks"
      split -b "$frame" -a 6 "$f" "$work/chunks/c"
      bytes=$(zstd -q "$level" -c "$work/chunks"/c* | wc -c)
      if [ "$frame" -lt "$block" ]; then
        # A table in every block longer than one frame.
        framed=$full
        if [ "$tail" -gt "$frame" ]; then framed=$((framed + 1)); fi
        per=$((block / frame))
        bytes=$((bytes + framed * (12 + 8 * per)))
      fi
      base=${base:-$bytes}
      printf '%s\t%s\t%s\t%s\t%s\n' "$(basename "$f")" "$level" "$frame" "$bytes" \
        "$(echo "scale=4; $bytes / $base" | bc)"
    done
  done
done
