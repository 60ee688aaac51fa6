# Sourced by bench/seqwrite.sh and bench/write_stall.sh: `seqwrite_fio DIR`
# runs bench/fs.sh's fsync'd sequential write in DIR (256 MiB in 1 MiB
# writes, fsync at the end, fio's half-compressible data) and prints its
# MiB/s. With WRITERS=N (default 1), N writers at once, each on a file of
# its own and 256/N MiB (bench/fs.sh's parallel case is WRITERS=2), and
# their MiB/s together.
seqwrite_fio() {
  local writers=${WRITERS:-1}
  fio --name=w --directory="$1" --filename_format='seqfile.$jobnum' --numjobs="$writers" \
    --group_reporting --size=$((256 / writers))M --rw=write --bs=1M \
    --ioengine=psync --end_fsync=1 --buffer_compress_percentage=50 --buffer_compress_chunk=4096 \
    --refill_buffers --output-format=json |
    python3 -c 'import json,sys; print(round(json.load(sys.stdin)["jobs"][0]["write"]["bw"] / 1024, 1))'
}
