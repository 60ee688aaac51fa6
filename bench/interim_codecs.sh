#!/usr/bin/env bash
# What a faster interim codec would buy: the zstd and lz4 command-line
# tools' own benchmarks (in memory, one core) on the text of a tree
# (default /usr/include, its files concatenated), cut in blocks of the
# sizes llmfs encodes: zstd at level -1 (`--fast=1`) in 16 KiB and 64 KiB
# blocks (the interim encoding's frames, and a whole block), lz4 at its
# default level
# in independent 64 KiB blocks (the smallest the lz4 tool cuts). Compression speed
# is what a small file's close waits for (bench/request_latency.sh);
# decompression speed, what a cold 4 KiB read does after the disk.
#
#   bench/interim_codecs.sh [ROUNDS]      (needs zstd and lz4)
#
# Prints a TSV line per round and codec: ratio, compression MB/s,
# decompression MB/s.
set -euo pipefail
rounds=${1:-3}
tree=${TREE:-/usr/include}
for t in zstd lz4; do
  command -v "$t" >/dev/null || { echo "interim_codecs.sh: needs $t" >&2; exit 1; }
done
text=$(mktemp /tmp/llmfs-interim-codecs.XXXXXX)
trap 'rm -f "$text"' EXIT
find "$tree" -type f -exec cat {} + >"$text"
# The tools print progress with carriage returns; the last figures are
# the result: "... (x4.277), 364.0 MB/s, 1051.2 MB/s" (zstd) or
# "(3.255), 692.9 MB/s ,2594.9 MB/s" (lz4).
last() { tr '\r' '\n' | grep 'MB/s' | tail -1 | sed -E 's/.*\(x?([0-9.]+)\), *([0-9.]+) MB\/s *, *([0-9.]+) MB\/s.*/\1\t\2\t\3/'; }
printf 'round\tcodec\tratio\tcompress_MB_s\tdecompress_MB_s\n'
for round in $(seq 1 "$rounds"); do
  printf '%s\tzstd -1, 16 KiB blocks\t%s\n' "$round" "$(zstd --fast=1 -b -B16384 "$text" 2>&1 | last)"
  printf '%s\tzstd -1, 64 KiB blocks\t%s\n' "$round" "$(zstd --fast=1 -b -B65536 "$text" 2>&1 | last)"
  printf '%s\tlz4 -1, 64 KiB blocks\t%s\n' "$round" "$(lz4 -b1 -B4 "$text" 2>&1 | last)"
done
