# Sourced by the read benches that write one file and read it back cold
# (cold_read.sh, seq_read.sh):
#
# `write DIR`: fio writes DIR/seqfile, 256 MiB of half-compressible data
#   (bench/fs.sh's), in 1 MiB writes with an fsync at the end.
# `settle DIR`: before a read, the page cache dropped, or with
#   WARM_BACKING=1 filled with DIR's files (what backs a mount).
# `cpu PID`: the process's CPU time so far in clock ticks; `secs A B`:
#   the seconds between two such readings.
write() {
  fio --name=w --directory="$1" --filename=seqfile --size=256M --rw=write --bs=1M \
    --ioengine=psync --buffer_compress_percentage=50 --buffer_compress_chunk=4096 \
    --refill_buffers --end_fsync=1 --output-format=terse >/dev/null
}
settle() {
  sync
  if [ "${WARM_BACKING:-0}" = 1 ]; then
    find "$1" -type f -exec cat {} + >/dev/null
  else
    echo 3 > /proc/sys/vm/drop_caches
  fi
}
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
secs() { echo "($2 - $1) / $(getconf CLK_TCK)" | bc -l | cut -c1-5; }
