#!/usr/bin/env bash
# `rm -rf` of a tree whose data is no longer in memory: COPIES copies of
# $TREE (default /usr/include) written through a fresh mount, the mount
# taken down, the page cache dropped, the volume mounted again and the
# copies removed, as a user deleting old files does. For llmfs builds and
# Debian's mergerfs with one branch on the same disk (issue 14's FUSE
# passthrough peer), alternated round by round.
#
#   bench/cold_remove.sh ROUNDS COPIES BIN|mergerfs ...   (root)
#
# BIN may carry a transport (BIN+uring, bench/contender.sh). Prints a TSV
# line per contender and round: seconds, the daemon's CPU seconds, and
# the MiB it read from storage (/proc/PID/io's read_bytes: what missed
# the page cache). mergerfs's removal reads nothing of the files' data;
# a store that must read a record to free its space reads it here.
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: bench/cold_remove.sh ROUNDS COPIES BIN|mergerfs ..."
[ $# -ge 3 ] || { echo "$usage" >&2; exit 2; }
rounds=$1 copies=$2
shift 2
bin=$1   # for scratch.sh's cleanup
tree=${TREE:-/usr/include}
. bench/scratch.sh
. bench/contender.sh
scratch cold-remove
io() { awk '/^read_bytes/ {print $2}' "/proc/$1/io"; }
# Mounts contender $1 on the volume it wrote (contender_mount made it).
remount() {
  if [ "$1" = mergerfs ]; then
    mergerfs -o "cache.files=off,dropcacheonclose=false,category.create=mfs" "$work/branch" "$work/mergerfs"
    pid=$(pgrep -n -x mergerfs)
  else
    # shellcheck disable=SC2086
    "${1%+*}" mount "$mnt" --store "$work/store" ${MOUNT_ARGS:-}
    pid=$(cat "$work/store/lock")
  fi
}
printf 'contender\tround\tseconds\tdaemon_cpu_s\tdaemon_read_mib\n'
for round in $(seq 1 "$rounds"); do
  for b in "$@"; do
    contender_mount "$b"
    for i in $(seq 1 "$copies"); do cp -r "$tree" "$target/copy$i"; done
    contender_umount "$b"
    sync
    echo 3 > /proc/sys/vm/drop_caches
    remount "$b"
    cpu_before=$(contender_cpu) read_before=$(io "$pid")
    start=$(date +%s.%N)
    for i in $(seq 1 "$copies"); do rm -rf "$target/copy$i"; done
    end=$(date +%s.%N)
    printf '%s\t%s\t%.3f\t%.2f\t%d\n' "$b" "$round" "$(echo "$end - $start" | bc -l)" \
      "$(echo "($(contender_cpu) - $cpu_before) / $(getconf CLK_TCK)" | bc -l)" \
      $((($(io "$pid") - read_before) >> 20))
    contender_umount "$b"
  done
done
