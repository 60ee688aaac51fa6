#!/usr/bin/env bash
# Unlinks of small files while llmfs's block cache is empty, and while it
# is full of another file's blocks (a 270 MB file read through the mount
# with a 64 MiB cache), for several llmfs builds alternated round by
# round: dropping an unlinked inode's cached blocks used to walk every
# entry of the cache.
#
#   bench/unlink_cached.sh [ROUNDS] BIN [BIN ...]     (root: mounts)
#
# Prints a TSV line per build, round and cache state: unlinks per second
# of 5000 files of 1 KiB, created (and synced) just before.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: bench/unlink_cached.sh ROUNDS BIN [BIN ...]}
shift
[ $# -ge 1 ] || { echo "usage: bench/unlink_cached.sh ROUNDS BIN [BIN ...]" >&2; exit 2; }
bin=$1   # for scratch.sh's cleanup
. bench/scratch.sh
scratch unlink-cached
head -c 200M /dev/urandom | base64 > "$work/big"
printf 'build\tround\tcache\tunlinks_s\n'
for round in $(seq 1 "$rounds"); do
  for b in "$@"; do
    for cache in empty full; do
      rm -rf "$work/store"
      "$b" mount "$mnt" --store "$work/store" --cache-mb 64
      if [ "$cache" = full ]; then
        cp "$work/big" "$mnt/big"
        sync
        echo 3 > /proc/sys/vm/drop_caches
        cat "$mnt/big" >/dev/null
      fi
      rate=$(python3 - "$mnt/d" <<'PY'
import os, sys, time
d = sys.argv[1]
os.mkdir(d)
data = os.urandom(1024)
names = [os.path.join(d, f"f{i:05d}") for i in range(5000)]
for n in names:
    fd = os.open(n, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
    os.write(fd, data)
    os.close(fd)
os.sync()
t = time.perf_counter()
for n in names:
    os.unlink(n)
print("%.0f" % (len(names) / (time.perf_counter() - t)))
PY
)
      printf '%s\t%s\t%s\t%s\n' "$b" "$round" "$cache" "$rate"
      "$b" umount "$mnt"
    done
  done
done
