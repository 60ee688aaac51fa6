#!/usr/bin/env bash
# The filesystem core's share of a cold 4 KiB random read (bench/fs.sh's
# case, bench/cold_read.sh's reads), without FUSE: a 256 MiB file of fio's
# half-compressible data written through a mount, then, with the store in
# the page cache, 4096 random 4 KiB reads through `Fs::read` (nearly all
# missing the block cache: each reads its frame's bytes from the segment,
# decodes and checks them) against `pread`s of the same offsets of a plain
# copy of the file (examples/core_reads.rs), alternated round by round;
# then one `perf record` of the core's reads for where their time goes.
#
#   bench/cold_read_core.sh [ROUNDS] [BIN]      (root: mounts)
#
# Prints a TSV line per round: microseconds per read, core and pread;
# then perf's largest shares (children included) of the core's run.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
bin=${2:-$PWD/target/release/llmfs}
cargo build --release --locked --example core_reads
reads=target/release/examples/core_reads
. bench/scratch.sh
scratch coldcore
"$bin" mount "$mnt" --store "$work/store"
fio --name=w --directory="$mnt" --filename=seqfile --size=256M --rw=write --bs=1M \
  --ioengine=psync --buffer_compress_percentage=50 --buffer_compress_chunk=4096 \
  --refill_buffers --end_fsync=1 --output-format=terse >/dev/null
cp "$mnt/seqfile" "$work/plain"
"$bin" umount "$mnt"
printf 'round\tcore_us\tpread_us\n'
for round in $(seq 1 "$rounds"); do
  find "$work/store" "$work/plain" -type f -exec cat {} + >/dev/null
  "$reads" "$work/store" seqfile "$work/plain" |
    awk -v r="$round" '{v[$1] = $2} END {printf "%s\t%s\t%s\n", r, v["core"], v["pread"]}'
done
if command -v perf >/dev/null; then
  find "$work/store" -type f -exec cat {} + >/dev/null
  perf record -q -F 20000 -g -o "$work/perf.data" -- "$reads" "$work/store" seqfile - 16000 >/dev/null 2>&1
  perf report -i "$work/perf.data" --children --sort sym --stdio -g none 2>/dev/null |
    grep -E '^ +[0-9]' | head -40
fi
