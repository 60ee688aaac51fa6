# Sourced (bench/scratch.sh, bench/fs.sh): `loop_ext4 GIB` makes and
# mounts a fresh ext4 of GIB GiB, journaled with mkfs.ext4's defaults, in
# an image file under /var/tmp (the root disk) on a loop device, and sets
# $loop_dir to its mount point; `loop_ext4_cleanup` unmounts it and
# removes the image.
#
# Why: this VM's root filesystem is ext4 without a journal, where the
# kernel's inode allocator skips inodes deleted in the last 5 s (305 s
# while their inode table block is dirty) one by one
# (`recently_deleted()` in fs/ext4/ialloc.c, only on a filesystem without
# a journal). After a benchmark round has deleted a tree, creating files
# there cost mergerfs 0.65-4.2 s for the same `cp -r` (docs/MEASUREMENTS.md,
# "The disk under the passthroughs"). llmfs keeps a volume in a few files,
# so it escaped that cost and its peers did not. A journaled ext4 on the
# same disk is what a user's data disk usually is.
loop_ext4() {
  local gib=$1
  loop_img=$(mktemp /var/tmp/llmfs-bench-ext4.XXXXXX)
  loop_dir=$(mktemp -d /tmp/llmfs-bench-ext4.XXXXXX)
  # A failure here (no loop device, a full disk) leaves no image behind:
  # the caller's cleanup is not set up yet.
  if ! { truncate -s "${gib}G" "$loop_img" && mkfs.ext4 -q -F "$loop_img" &&
    mount -o loop "$loop_img" "$loop_dir"; }; then
    rm -f "$loop_img"
    rmdir "$loop_dir"
    echo "loop_ext4: could not make a ${gib} GiB ext4 in $loop_img" >&2
    return 1
  fi
}

loop_ext4_cleanup() {
  if [ -n "${loop_dir:-}" ]; then
    umount "$loop_dir" 2>/dev/null || umount -l "$loop_dir"
    rmdir "$loop_dir"
    rm -f "$loop_img"
    loop_dir=
  fi
}
