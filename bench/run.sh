#!/usr/bin/env bash
# The published corpus benchmark (README, "Benchmarks"): builds the release
# binary and runs `llmfs bench` on the text files of ../shared/corpora (or
# $LLMFS_CORPORA), writing bench/results/<date>-<host>-corpus.{json,md}.
# Extra arguments go to `llmfs bench`, e.g. `--llm-max-bytes all` (the model
# on every block; about 1.5 h on 2 cores) or no `--only-text` via
# `LLMFS_BENCH_ALL=1` (every corpus file).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked
bin="${CARGO_TARGET_DIR:-target}/release/llmfs"
mkdir -p bench/results
out="bench/results/$(date -u +%F)-$(hostname -s)-corpus"
scope=(--only-text)
[ "${LLMFS_BENCH_ALL:-0}" = 1 ] && scope=()
nice -n 10 "$bin" bench "${scope[@]}" --out "$out" "$@"
