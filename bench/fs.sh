#!/usr/bin/env bash
# Filesystem benchmark (README, "Benchmarks"): fio and a metadata workload
# on an llmfs mount, a plain directory of the same filesystem and two FUSE
# passthroughs of it (mergerfs with one branch, bindfs), in the same run,
# each case repeated with the order alternating; each llmfs figure as a
# ratio to the plain directory and to the best passthrough.
#
# usage: bench/fs.sh [OUT_PREFIX]   (needs root: drop_caches, FUSE)
# default OUT_PREFIX: bench/results/<date>-<host>-fs-<HHMM>; writes .json and .md
# FS_BENCH_ROUNDS: rounds per case, alternating the order (default 2)
# FS_BENCH_FILES: small files of the metadata case (default 10000)
# FS_BENCH_DIR_ENTRIES: files of the directory the listing case lists (default 20000)
# FS_BENCH_MIB: size of the sequential file (default 256)
# FS_BENCH_DIR: parent of the work directory (default /var/tmp)
# BENCH_LOOP_GIB: the work directory on a fresh journaled ext4 of that many
#   GiB made for the run on the same disk (bench/loop_ext4.sh; what every
#   figure since 2026-12-05's run -8 uses: the root filesystem here has no
#   journal, which slows the passthroughs' creates after a deletion)
# FS_BENCH_BASELINE: another llmfs binary, run as one more column (before/after)
# FS_BENCH_BASELINE_ARGS: extra `llmfs mount` flags of that column (the same
#   binary with another setting, say)
# FS_BENCH_ONLY=meta: only the metadata cases (small files, cp -r, tar x, rm -rf);
#   =data: only the fio cases
# FS_BENCH_FLOOR=0: without the floor column (examples/floor_fs, a daemon
#   that keeps everything in memory and does nothing else, mounted as llmfs
#   mounts: what any FUSE daemon's figure is bounded by on this kernel)
# FS_BENCH_PG: a postgres:// database (default $LLMFS_TEST_PG, as .ci/postgres.sh
#   sets it): llmfs with its volume stored there, as one more column, with its
#   ratio to llmfs on SQLite
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
[ "$(id -u)" = 0 ] || { echo "fs.sh: run as root (drop_caches, mounts)" >&2; exit 1; }
if ! command -v fio >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fio >/dev/null
fi
command -v fusermount3 >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3 >/dev/null
if ! command -v mergerfs >/dev/null || ! command -v bindfs >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mergerfs bindfs >/dev/null
fi
cargo build --release --locked
bin="${CARGO_TARGET_DIR:-target}/release/llmfs"
if [ "${FS_BENCH_FLOOR:-1}" != 0 ]; then
  cargo build --release --locked --example floor_fs
  export FS_BENCH_FLOOR="${CARGO_TARGET_DIR:-target}/release/examples/floor_fs"
else
  unset FS_BENCH_FLOOR
fi
out="${1:-bench/results/$(date -u +%F)-$(hostname -s)-fs-$(date -u +%H%M)}"
mkdir -p "$(dirname "$out")"
export FS_BENCH_PG="${FS_BENCH_PG:-${LLMFS_TEST_PG:-}}"
if [ -n "${BENCH_LOOP_GIB:-}" ]; then
  . bench/loop_ext4.sh
  loop_ext4 "$BENCH_LOOP_GIB"
  trap loop_ext4_cleanup EXIT
  export FS_BENCH_DIR=$loop_dir
  export FS_BENCH_SCRATCH="a fresh ext4 of ${BENCH_LOOP_GIB} GiB (journaled, mkfs.ext4 defaults) on a loop device over an image file on the root disk"
fi
nice -n 10 python3 bench/fs.py "$bin" "$out"
