#!/bin/bash
# Cold sequential read with cat (128 KiB reads) of a 256 MiB file (fio data, half compressible) on
# two llmfs mounts of the same build: read-ahead 1024 KiB (default) and the kernel's (--read-ahead-kb 0 (a flag of that build only)), alternating.
set -e
B=${1:-/var/tmp/ra/llmfs-l3}; rounds=${2:-5}
cd /var/tmp/ra; rm -rf sa sb; mkdir -p ma mb
mnt() { if [ $1 = a ]; then $B mount /var/tmp/ra/ma --store /var/tmp/ra/sa; else $B mount /var/tmp/ra/mb --store /var/tmp/ra/sb --read-ahead-kb 0; fi; }
for v in a b; do mnt $v; fio --name=w --directory=m$v --filename=seqfile --rw=write --bs=1M --size=256M --end_fsync=1 --buffer_compress_percentage=50 --buffer_compress_chunk=4096 --refill_buffers --randseed=7 --output-format=terse >/dev/null; done
for r in $(seq $rounds); do
  for v in $([ $((r % 2)) = 1 ] && echo a b || echo b a); do
    $B umount /var/tmp/ra/m$v; sync; echo 3 > /proc/sys/vm/drop_caches; mnt $v
    s=$(date +%s.%N); cat m$v/seqfile > /dev/null; e=$(date +%s.%N)
    printf 'round %s %s %.1f MB/s\n' $r $([ $v = a ] && echo readahead_1024 || echo kernel_128) $(echo "268.435456 / ($e - $s)" | bc -l)
  done
done
$B umount /var/tmp/ra/ma; $B umount /var/tmp/ra/mb
