# Sourced by the bench scripts that compare llmfs builds with mergerfs
# (seqwrite.sh, small_files.sh), after scratch.sh and `scratch NAME`.
#
# `contender_mount B`: mounts contender B on a fresh volume: an llmfs
# binary (with $MOUNT_ARGS) on $mnt, or for B = `mergerfs` Debian's
# mergerfs with one branch on the same disk (a FUSE passthrough; extra
# options in $MERGERFS_OPTS), or for B = `plain` a fresh directory on
# that disk (no daemon: its CPU time reads 0), or for B = `floor` or
# `floor+uring` examples/floor_fs (the floor: a daemon that keeps
# everything in one map in memory, mounted as llmfs mounts; build it with
# `cargo build --release --example floor_fs`). Sets
# $target (where to work) and $pid (the daemon, for its CPU time).
# `contender_umount B` unmounts it; `contender_cpu` prints the daemon's
# CPU time so far in clock ticks.
#
# An llmfs binary may carry a transport: `BIN+uring` mounts with the fuse
# module's enable_uring set (FUSE over io_uring, where the kernel has it)
# and the build's default ring priority, `BIN+uring-idle` as `+uring`
# with `--ring-idle` (SCHED_IDLE ring threads),
# `BIN+uring-normal` with `--ring-priority normal` (builds that have
# it), `BIN+dev` with enable_uring cleared (/dev/fuse). The setting is put
# back on exit.
uring_param=/sys/module/fuse/parameters/enable_uring
uring_was=$(cat "$uring_param" 2>/dev/null || true)
contender_mount() {
  if [ "$1" = plain ]; then
    target=$work/plain
    rm -rf "$target"
    mkdir -p "$target"
    pid=
  elif [ "$1" = mergerfs ]; then
    rm -rf "$work/branch"; mkdir -p "$work/branch" "$work/mergerfs"
    mergerfs -o "cache.files=off,dropcacheonclose=false,category.create=mfs${MERGERFS_OPTS:+,$MERGERFS_OPTS}" "$work/branch" "$work/mergerfs"
    pid=$(pgrep -n -x mergerfs)
    target=$work/mergerfs
  elif [ "${1%+*}" = floor ]; then
    case $1 in
      *+uring) echo 1 > "$uring_param" ;;
      *) [ -z "$uring_was" ] || echo 0 > "$uring_param" ;;
    esac
    target/release/examples/floor_fs "$mnt" &
    pid=$!
    while ! grep -q " $mnt " /proc/self/mountinfo; do
      kill -0 "$pid" || { echo "contender.sh: floor_fs did not mount" >&2; return 1; }
      sleep 0.05
    done
    target=$mnt
  else
    local store=$work/store
    rm -rf "$store"
    local transport=()
    case $1 in
      *+uring-idle) echo 1 > "$uring_param"; transport=(--ring-idle) ;;
      *+uring-normal) echo 1 > "$uring_param"; transport=(--ring-priority normal) ;;
      *+uring) echo 1 > "$uring_param" ;;
      *+dev) [ -z "$uring_was" ] || echo 0 > "$uring_param" ;;
    esac
    # shellcheck disable=SC2086
    "${1%+*}" mount "$mnt" --store "$store" ${MOUNT_ARGS:-} "${transport[@]}"
    pid=$(cat "$store/lock")
    target=$mnt
  fi
}

contender_umount() {
  case $1 in
    plain) rm -rf "$work/plain" ;;
    mergerfs) umount "$work/mergerfs" ;;
    floor | floor+*) umount "$mnt"; wait "$pid" ;;
    *) "${1%+*}" umount "$mnt" ;;
  esac
}

contender_cpu() {
  if [ -z "$pid" ]; then echo 0; else awk '{print $14 + $15}' "/proc/$pid/stat"; fi
}

# `contender_timed NAME CMD...`: runs CMD (output dropped) and prints
# "$b<TAB>$round<TAB>NAME<TAB>seconds<TAB>daemon CPU seconds".
contender_timed() {
  local name=$1 before after start end
  shift
  before=$(contender_cpu)
  start=$(date +%s.%N)
  "$@" >/dev/null
  end=$(date +%s.%N)
  after=$(contender_cpu)
  printf '%s\t%s\t%s\t%.3f\t%.2f\n' "$b" "$round" "$name" "$(echo "$end - $start" | bc -l)" \
    "$(echo "($after - $before) / $(getconf CLK_TCK)" | bc -l)"
}

# `contender_rate LABEL CMD...`: runs CMD, which prints a rate, and prints
# "$b<TAB>$round<TAB>LABEL<TAB>the rate<TAB>daemon CPU seconds".
contender_rate() {
  local label=$1 before after rate
  shift
  before=$(contender_cpu)
  rate=$("$@")
  after=$(contender_cpu)
  printf '%s\t%s\t%s\t%s\t%.2f\n' "$b" "$round" "$label" "$rate" \
    "$(echo "($after - $before) / $(getconf CLK_TCK)" | bc -l)"
}

# Unmounts a mergerfs left mounted by a failure; scratch.sh's cleanup calls
# it (a script with more to clean up defines its own scratch_cleanup_more,
# which calls this).
contender_cleanup() {
  if grep -q " $work/mergerfs " /proc/self/mountinfo 2>/dev/null; then umount "$work/mergerfs"; fi
  if [ -n "$uring_was" ]; then echo "$uring_was" > "$uring_param"; fi
}
scratch_cleanup_more() { contender_cleanup; }
