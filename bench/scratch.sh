# Sourced by the bench scripts that mount a volume (tiers.sh, first_byte.sh, umount_wait.sh,
# dictionary.sh, archive_workers.sh): `scratch NAME` makes a scratch
# folder $work holding a mountpoint $mnt, and on exit unmounts $mnt (with
# $bin, else lazily), runs `scratch_cleanup_more` if the script defines it,
# and removes $work.
scratch() {
  work=$(mktemp -d "/tmp/llmfs-$1.XXXXXX")
  mnt=$work/mnt
  mkdir -p "$mnt"
  trap scratch_cleanup EXIT
}

scratch_cleanup() {
  if grep -q " $mnt " /proc/self/mountinfo 2>/dev/null; then "${bin%+*}" umount "$mnt" || umount -l "$mnt"; fi
  if declare -F scratch_cleanup_more >/dev/null; then scratch_cleanup_more; fi
  rm -rf "$work"
}
