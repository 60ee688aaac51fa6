#!/usr/bin/env bash
# What a FUSE round trip costs in waking the other side: bench/fs.sh's
# create/stat/unlink of small files (one client, one request at a time)
# on a fresh mount, with the client and the daemon placed three ways:
#
#   spread    as the scheduler places them (the usual case: the daemon's
#             worker wakes on the other core, the client's core idles)
#   one-core  the daemon's threads and the client pinned to core 0, so
#             every wakeup of either side is on the core already running
#   halt-poll as spread, with the guest's cpuidle halt polling on
#             (/sys/module/haltpoll/parameters/guest_halt_poll_ns set to
#             $HALT_POLL_NS, default 200000, and put back after): an idle
#             virtual CPU polls before it halts, so waking it needs no exit
#             to the hypervisor. Only on a guest with the haltpoll
#             governor; skipped elsewhere.
#
# For several llmfs builds and `mergerfs` (Debian's mergerfs with one
# branch on the same disk, issue 14's FUSE passthrough peer), alternated
# round by round, with the daemon's CPU time.
#
#   bench/wakeup.sh [ROUNDS] BIN [BIN ...]     (root: mounts, pins, and
#                                               for halt-poll a sysfs knob)
#
# Prints a TSV line per build, round, placement and step: operations/s,
# daemon CPU seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: bench/wakeup.sh ROUNDS BIN [BIN ...]}
shift
[ $# -ge 1 ] || { echo "usage: bench/wakeup.sh ROUNDS BIN [BIN ...]" >&2; exit 2; }
bin=$1   # for scratch.sh's cleanup
files=${FILES:-20000}
. bench/scratch.sh
. bench/contender.sh
scratch wakeup
knob=/sys/module/haltpoll/parameters/guest_halt_poll_ns
placements="spread one-core"
if [ -w "$knob" ] && grep -qx haltpoll /sys/devices/system/cpu/cpuidle/current_governor 2>/dev/null; then
  placements="$placements halt-poll"
  knob_was=$(cat "$knob")
  scratch_cleanup_more() {
    echo "$knob_was" >"$knob"
    contender_cleanup
  }
fi
printf 'build\tround\tplacement\tstep\tops_s\tdaemon_cpu_s\n'
for round in $(seq 1 "$rounds"); do
  for placement in $placements; do
    for b in "$@"; do
      contender_mount "$b"
      pin=()
      case $placement in
        one-core) taskset -a -p -c 0 "$pid" >/dev/null; pin=(taskset -c 0) ;;
        halt-poll) echo "${HALT_POLL_NS:-200000}" >"$knob" ;;
      esac
      mkdir "$target/d"
      for s in create stat unlink; do
        contender_rate "$placement	$s" "${pin[@]}" python3 bench/small_file_step.py "$target/d" "$files" "$s"
      done
      rmdir "$target/d"
      [ "$placement" != halt-poll ] || echo "$knob_was" >"$knob"
      contender_umount "$b"
    done
  done
done
