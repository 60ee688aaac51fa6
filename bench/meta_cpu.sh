#!/usr/bin/env bash
# bench/fs.sh's create/stat/unlink case (10,000 files of 1 KiB, one
# process) on a fresh volume per build and round, with the daemon's CPU
# time per file for each phase: on this machine the rates move
# several-fold between runs, and the daemon's CPU per operation moves
# less, so two builds of the metadata path compare better by it. A BIN
# of `mergerfs` runs the same on Debian's mergerfs with one branch on the
# same disk (it refuses to create files on a branch with less than 4 GiB
# free, its `minfreespace`: with BENCH_LOOP_GIB, take 8 or more).
#
#   bench/meta_cpu.sh [ROUNDS] BIN [BIN ...]     (root: mounts)
#
# Prints a TSV line per build, round and phase: operations per second,
# and the daemon's CPU microseconds per operation (the sum over its
# threads of /proc/PID/task/*/schedstat, nanosecond resolution).
# BIN+uring and the other transports: bench/contender.sh. Files per
# round: $FILES (default 10000).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: bench/meta_cpu.sh ROUNDS BIN [BIN ...]}
shift
[ $# -ge 1 ] || { echo "usage: bench/meta_cpu.sh ROUNDS BIN [BIN ...]" >&2; exit 2; }
bin=$1   # for scratch.sh's cleanup
. bench/scratch.sh
. bench/contender.sh
scratch meta-cpu

printf 'build\tround\tphase\tper_s\tdaemon_us_per_op\n'
for round in $(seq 1 "$rounds"); do
  for b in "$@"; do
    contender_mount "$b"
    python3 - "$target/d" "${pid:-0}" "${FILES:-10000}" "$b" "$round" <<'PY'
import glob, os, sys, time

d, pid, n, build, rnd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]


def cpu_ns():
    if not pid:
        return 0
    total = 0
    for f in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            total += int(open(f).read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended meanwhile
    return total


os.mkdir(d)
names = [os.path.join(d, f"f{i:05d}") for i in range(n)]
data = os.urandom(1024)


def create():
    for p in names:
        fd = os.open(p, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
        os.write(fd, data)
        os.close(fd)


def stat():
    for p in names:
        os.stat(p)


def unlink():
    for p in names:
        os.unlink(p)


for phase, fn in (("create", create), ("stat", stat), ("unlink", unlink)):
    c0, t0 = cpu_ns(), time.perf_counter()
    fn()
    t1, c1 = time.perf_counter(), cpu_ns()
    print(f"{build}\t{rnd}\t{phase}\t{n / (t1 - t0):.0f}\t{(c1 - c0) / n / 1000:.1f}", flush=True)
os.rmdir(d)
PY
    contender_umount "$b"
  done
done
