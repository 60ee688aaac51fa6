#!/usr/bin/env bash
# Filesystem benchmark (README, "Benchmarks"): fio and a metadata workload
# on an llmfs mount and on a plain directory of the same filesystem, in the
# same run, each llmfs figure as a ratio to the plain directory.
#
# usage: bench/fs.sh [OUT_PREFIX]   (needs root: drop_caches, FUSE)
# default OUT_PREFIX: bench/results/<date>-<host>-fs-<HHMM>; writes .json and .md
# FS_BENCH_MIB: size of the sequential file (default 512)
# FS_BENCH_DIR: parent of the work directory (default /var/tmp)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
[ "$(id -u)" = 0 ] || { echo "fs.sh: run as root (drop_caches, mounts)" >&2; exit 1; }
if ! command -v fio >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fio >/dev/null
fi
command -v fusermount3 >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3 >/dev/null
cargo build --release --locked
bin="${CARGO_TARGET_DIR:-target}/release/llmfs"
out="${1:-bench/results/$(date -u +%F)-$(hostname -s)-fs-$(date -u +%H%M)}"
mkdir -p "$(dirname "$out")"
exec nice -n 10 python3 bench/fs.py "$bin" "$out"
