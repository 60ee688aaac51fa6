#!/usr/bin/env bash
# How long `llmfs mount` of a volume takes with nothing in the page cache,
# and how much it reads, as the volume grows: COPIES copies of $TREE
# (default /usr/include) are written through a mount of the first build,
# then each build mounts the same volume in turn, round by round, after
# the page cache is dropped.
#
#   bench/mount_time.sh ROUNDS COPIES BIN [BIN ...]     (root)
#
# Prints a TSV line per build and round: the seconds `llmfs mount` took
# to return (the mount is up), and the MiB the daemon had read from
# storage by then (/proc/PID/io's read_bytes: what missed the page
# cache), beside the store's size.
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: bench/mount_time.sh ROUNDS COPIES BIN [BIN ...]"
[ $# -ge 3 ] || { echo "$usage" >&2; exit 2; }
rounds=$1 copies=$2
shift 2
bin=$1   # for scratch.sh's cleanup
tree=${TREE:-/usr/include}
. bench/scratch.sh
scratch mount-time
store=$work/store
"$bin" mount "$mnt" --store "$store"
for i in $(seq 1 "$copies"); do cp -r "$tree" "$mnt/copy$i"; done
"$bin" umount "$mnt"
store_mib=$(($(du -sb "$store" | cut -f1) >> 20))
printf 'build\tround\tmount_s\tread_mib\tstore_mib\n'
for round in $(seq 1 "$rounds"); do
  for b in "$@"; do
    sync
    echo 3 > /proc/sys/vm/drop_caches
    start=$(date +%s.%N)
    "$b" mount "$mnt" --store "$store"
    end=$(date +%s.%N)
    read_bytes=$(awk '/^read_bytes/ {print $2}' "/proc/$(cat "$store/lock")/io")
    printf '%s\t%s\t%.3f\t%d\t%d\n' "$b" "$round" "$(echo "$end - $start" | bc -l)" \
      $((read_bytes >> 20)) "$store_mib"
    "$b" umount "$mnt"
  done
done
