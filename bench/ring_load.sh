#!/usr/bin/env bash
# FUSE over io_uring under CPU load: `tar x` of a tree onto a fresh mount
# with the ring threads at normal priority (`--ring-priority normal`) and
# at SCHED_IDLE (`--ring-priority idle`, lifted while they starve),
# alternated round by round, under three loads:
#   none    nothing else running;
#   own     HOGS busy loops (`yes` at nice -5, default 4) keep every core
#           busy, the daemon in a session of its own (as `llmfs mount`
#           detaches, and as a service runs in a cgroup of its own: the
#           scheduler shares the CPU between groups first);
#   shared  the same hogs, the daemon in their session (`mount -f` from the
#           same shell, or one container's cgroup): its threads compete
#           with the hogs one by one, the hardest case for SCHED_IDLE.
# What the idle priority gains when the cores are free and costs when
# other work wants them. WORKLOAD=write instead writes 256 MiB of random
# bytes with dd and fsyncs them (a large write: the write-back threads'
# work). REPS runs of the workload per mount (default 1);
# LOADS and SETTINGS narrow the cases (default "none own shared" and
# "normal idle"). Several builds are alternated within each case.
#
#   bench/ring_load.sh [ROUNDS] BIN [BIN ...]   (root: mounts, enable_uring)
#
# Prints a TSV line per round, load and setting (and build, given
# several): seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: bench/ring_load.sh ROUNDS BIN [BIN ...]}
shift
bin=${1:?usage: bench/ring_load.sh ROUNDS BIN [BIN ...]}   # for scratch.sh's cleanup
builds=("$@")
tree=${TREE:-/usr/include}
hogs=${HOGS:-4}
reps=${REPS:-1}
. bench/scratch.sh
scratch ring-load
param=/sys/module/fuse/parameters/enable_uring
was=$(cat "$param")
scratch_cleanup_more() {
  pkill -x yes 2>/dev/null || true
  echo "$was" > "$param"
}
echo 1 > "$param"
workload=${WORKLOAD:-tar}
case $workload in
  tar) tar cf "$work/tree.tar" -C "$(dirname "$tree")" "$(basename "$tree")" ;;
  write) head -c 256M /dev/urandom >"$work/random" ;;
  *) echo "ring_load.sh: WORKLOAD is tar or write" >&2; exit 2 ;;
esac
column() { [ "${#builds[@]}" -eq 1 ] || printf '%s\t' "$1"; }
printf '%sround\tload\tsetting\tseconds\n' "$(column build)"
for round in $(seq 1 "$rounds"); do
  for load in ${LOADS:-none own shared}; do
    for setting in ${SETTINGS:-normal idle}; do
      for b in "${builds[@]}"; do
        bin=$b
        rm -rf "$work/store"
        daemon=
        if [ "$load" = shared ]; then
          # In the foreground, so in this script's session; ready once the
          # mount is live.
          "$b" mount "$mnt" --store "$work/store" --ring-priority "$setting" -f 2>/dev/null &
          daemon=$!
          while ! grep -q " $mnt " /proc/self/mountinfo; do sleep 0.05; done
        else
          "$b" mount "$mnt" --store "$work/store" --ring-priority "$setting"
        fi
        if [ "$load" != none ]; then
          for _ in $(seq 1 "$hogs"); do nice -n -5 yes >/dev/null & done
        fi
        start=$(date +%s.%N)
        for r in $(seq 1 "$reps"); do
          mkdir "$mnt/t$r"
          if [ "$workload" = tar ]; then
            tar xf "$work/tree.tar" -C "$mnt/t$r"
          else
            dd if="$work/random" of="$mnt/t$r/random" bs=1M conv=fsync status=none
          fi
        done
        end=$(date +%s.%N)
        pkill -x yes 2>/dev/null || true
        printf '%s%s\t%s\t%s\t%.3f\n' "$(column "$b")" "$round" "$load" "$setting" \
          "$(echo "$end - $start" | bc -l)"
        "$b" umount "$mnt"
        [ -z "$daemon" ] || wait "$daemon"
      done
    done
  done
done
