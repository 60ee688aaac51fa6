# Sourced by the bench scripts that mount a volume (tiers.sh, first_byte.sh, umount_wait.sh,
# dictionary.sh, archive_workers.sh): `scratch NAME` makes a scratch
# folder $work holding a mountpoint $mnt, and on exit unmounts $mnt (with
# $bin, else lazily), runs `scratch_cleanup_more` if the script defines it,
# and removes $work.
#
# With BENCH_LOOP_GIB=N, $work is on a fresh ext4 of N GiB made for the
# run (bench/loop_ext4.sh: journaled, mkfs's defaults, an image file on
# the root disk), unmounted and removed on exit: the peers that keep
# every file as a file of the disk's filesystem (the plain directory,
# mergerfs, bindfs) then create them on a filesystem that no earlier run
# has just emptied (docs/MEASUREMENTS.md, "The disk under the
# passthroughs").
scratch() {
  local base=/tmp
  if [ -n "${BENCH_LOOP_GIB:-}" ]; then
    . "$(dirname "${BASH_SOURCE[0]}")/loop_ext4.sh"
    loop_ext4 "$BENCH_LOOP_GIB"
    base=$loop_dir
  fi
  work=$(mktemp -d "$base/llmfs-$1.XXXXXX")
  mnt=$work/mnt
  mkdir -p "$mnt"
  trap scratch_cleanup EXIT
}

scratch_cleanup() {
  if grep -q " $mnt " /proc/self/mountinfo 2>/dev/null; then "${bin%+*}" umount "$mnt" || umount -l "$mnt"; fi
  if declare -F scratch_cleanup_more >/dev/null; then scratch_cleanup_more; fi
  rm -rf "$work"
  if declare -F loop_ext4_cleanup >/dev/null; then loop_ext4_cleanup; fi
}
